"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand (no client library).

Strategy: every scrape builds the whole page from the engine's per-stream statistics and, when storage is
present, one index read (bytes and latest segment end per stream) and one `statvfs` of the storage root. Each
family is printed with its `# HELP` and `# TYPE` lines once, then one sample per stream; label values are escaped
as the format requires (backslash, double quote, newline).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable
from typing import Any

import trio

from fluxkit.engine import StreamNotFoundError, VideoEngine

__all__ = ["CONTENT_TYPE", "STREAM_STATES", "render_metrics"]

#: Content type of the exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The engine's stream states, each exported as a 0/1 sample of `fluxkit_stream_state`.
STREAM_STATES = ("waiting", "live", "reconnecting")

# (name, type, help, StreamStatistics attribute)
_STREAM_FAMILIES = (
    ("fluxkit_stream_fps", "gauge", "Video frames per second over the last window.", "fps"),
    ("fluxkit_stream_bitrate_bits_per_second", "gauge", "Payload bits per second over the last window.", "bitrate"),
    ("fluxkit_stream_frames_total", "counter", "Frames published, all tracks.", "frames"),
    ("fluxkit_stream_keyframes_total", "counter", "Video keyframes published.", "keyframes"),
    ("fluxkit_stream_bytes_total", "counter", "Payload bytes published.", "bytes"),
    ("fluxkit_stream_losses_total", "counter", "Frames or packets the source reported lost.", "losses"),
    ("fluxkit_stream_subscribers", "gauge", "Live subscriptions.", "subscribers"),
    ("fluxkit_stream_restarts_total", "counter", "Source restarts after a failure.", "restarts"),
    ("fluxkit_stream_jitter_seconds", "gauge", "Interarrival jitter as the source last reported it.", "jitter"),
    ("fluxkit_stream_last_keyframe_age_seconds", "gauge", "Seconds since the last keyframe.", "last_keyframe_age"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Page:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def _storage_usage(storage: Any) -> tuple[dict[str, tuple[int, int, int]], tuple[int, int] | None]:
    """({stream: (bytes, segments, latest end µs)}, (free, total) bytes of the storage file system)."""

    # The index has its own lock, so reading it from a worker thread is safe beside the recorder's writes.
    rows: list[tuple[str, int, int, int]] = await trio.to_thread.run_sync(storage.index.sizes)
    usage: dict[str, tuple[int, int, int]] = {}
    for stream, _seg_id, end_us, size in rows:
        total, count, latest = usage.get(stream, (0, 0, 0))
        usage[stream] = (total + size, count + 1, max(latest, end_us))
    try:
        disk = await trio.to_thread.run_sync(shutil.disk_usage, storage.root)
    except OSError:
        return usage, None
    return usage, (disk.free, disk.total)


async def render_metrics(engine: VideoEngine, storage: Any, wall_clock: Callable[[], float]) -> str:
    """The metrics page: per-stream engine figures, plus recording lag and disk use when `storage` is not None."""
    stats = []
    for info in engine.list_streams():
        try:
            stats.append(engine.stream_statistics(info.stream_id))
        except StreamNotFoundError:  # stopped between the two calls
            continue
    page = _Page()
    page.family("fluxkit_streams", "gauge", "Streams registered in the engine.", [({}, len(stats))])
    page.family(
        "fluxkit_stream_state",
        "gauge",
        "1 for the state the stream is in (waiting, live, reconnecting), else 0.",
        [({"stream": s.stream_id, "state": state}, int(s.state == state)) for s in stats for state in STREAM_STATES],
    )
    for name, kind, help_text, attribute in _STREAM_FAMILIES:
        samples = []
        for s in stats:
            value = getattr(s, attribute)
            if value is not None:
                samples.append(({"stream": s.stream_id}, value))
        page.family(name, kind, help_text, samples)
    if storage is not None:
        usage, disk = await _storage_usage(storage)
        now_us = round(wall_clock() * 1_000_000)
        page.family(
            "fluxkit_recording_bytes",
            "gauge",
            "Bytes of recorded segments kept, per stream.",
            [({"stream": s}, u[0]) for s, u in sorted(usage.items())],
        )
        page.family(
            "fluxkit_recording_segments",
            "gauge",
            "Recorded segments kept, per stream.",
            [({"stream": s}, u[1]) for s, u in sorted(usage.items())],
        )
        page.family(
            "fluxkit_recording_lag_seconds",
            "gauge",
            "Seconds from the end of the latest durable segment to now, per live stream.",
            [
                ({"stream": s.stream_id}, max(0.0, (now_us - usage[s.stream_id][2]) / 1e6))
                for s in stats
                if s.stream_id in usage
            ],
        )
        if disk is not None:
            page.family("fluxkit_disk_free_bytes", "gauge", "Free bytes on the recording file system.", [({}, disk[0])])
            page.family("fluxkit_disk_total_bytes", "gauge", "Size of the recording file system.", [({}, disk[1])])
    return page.text()
