"""`FakeBackend`: deterministic streams, devices, recordings and events for snapshot and latency tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
from fluxkit_tui.backend import (
    BackendError,
    Channel,
    Device,
    EventLine,
    HttpAnswer,
    PtzResult,
    Recordings,
    Span,
    StorageReport,
    StreamStatus,
    storage_report,
    storage_status,
)

T0 = dt.datetime(2026, 1, 2, 3, 4, 0, tzinfo=dt.UTC)


def make_jpeg(width: int = 64, height: int = 36) -> bytes:
    """A small JPEG of four coloured quadrants, made with PyAV."""
    import av
    import numpy as np

    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2 :] = (0, 255, 0)
    image[height // 2 :, : width // 2] = (0, 0, 255)
    image[height // 2 :, width // 2 :] = (255, 255, 0)
    out = io.BytesIO()
    with av.open(out, "w", format="image2pipe") as container:
        stream = container.add_stream("mjpeg", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


@functools.cache
def make_fmp4(frames: int = 50, fps: int = 25, width: int = 64, height: int = 36) -> bytes:
    """A fragmented MP4 (`empty_moov`, a fragment per keyframe) of H.264 like the playback endpoint sends."""
    import av
    import numpy as np

    out = io.BytesIO()
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
    with av.open(out, "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(fps), "bf": "0", "sc_threshold": "0"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), (i * 5) % 256, dtype=np.uint8)
            image[:, (i % width) :, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def make_metrics(streams: int = 3, tick: int = 0) -> str:
    """A `/metrics` page as fluxkit writes it, with deterministic storage figures (cam000 has no lag sample)."""
    lines = ["# HELP fluxkit_streams Streams registered in the engine.", "# TYPE fluxkit_streams gauge",
             f"fluxkit_streams {streams}", "# TYPE fluxkit_recording_bytes gauge"]  # fmt: skip
    lines += [
        f'fluxkit_recording_bytes{{stream="cam{i:03d}"}} {(i + 1) * 7_340_032 + tick * 1000}' for i in range(streams)
    ]
    lines.append("# TYPE fluxkit_recording_segments gauge")
    lines += [f'fluxkit_recording_segments{{stream="cam{i:03d}"}} {(i + 1) * 12 + tick}' for i in range(streams)]
    lines.append("# TYPE fluxkit_recording_lag_seconds gauge")
    lines += [f'fluxkit_recording_lag_seconds{{stream="cam{i:03d}"}} {1.5 + 20.0 * i}' for i in range(1, streams)]
    lines += ["fluxkit_disk_free_bytes 53687091200", "fluxkit_disk_total_bytes 214748364800"]
    return "\n".join(lines) + "\n"


def make_storage_status(tick: int = 0) -> dict[str, Any]:
    """A `GET /api/video/storage` answer: a tiered storage, hot disk and cold S3, with a migration under way."""
    return {
        "policy": "tiered",
        "backends": [
            {"name": "hot", "type": "local", "role": "hot", "healthy": True, "used_bytes": 40 * 1024**3 + tick,
             "segments": 1200 + tick, "free_bytes": 50 * 1024**3, "total_bytes": 200 * 1024**3,
             "retention": {"max_age_days": 7, "max_bytes": None, "min_free_bytes": 5 * 1024**3}},
            {"name": "cold", "type": "s3", "role": "cold", "healthy": tick % 2 == 0, "used_bytes": 3 * 1024**4,
             "segments": 90_000, "free_bytes": None, "total_bytes": None,
             "retention": {"max_age_days": 90, "max_bytes": 5 * 1024**4, "min_free_bytes": None}},
        ],
        "migration": {"running": True, "done": 30 + tick, "total": 120},
        "pending_repairs": 2,
    }  # fmt: skip


def make_rows(count: int, tick: int = 0) -> list[StreamStatus]:
    return [
        StreamStatus(
            stream_id=f"cam{i:03d}",
            protocol="rtsp" if i % 3 else "gb28181",
            codec="h264" if i % 2 else "hevc",
            width=1920,
            height=1080,
            fps=25.0 - (i + tick) % 3,
            bitrate=2_000_000 + ((i * 7919 + tick * 104729) % 1_000_000),
            gop=50,
            losses=(i * tick) % 5,
            viewers=i % 4,
            recording="rec" if i % 5 else "-",
            state="live" if i % 11 else "reconnecting",
            restarts=0 if i % 11 else 2,
            frames=1000 * (tick + 1),
            keyframes=20 * (tick + 1),
        )
        for i in range(count)
    ]


class FakeBackend:
    """Everything in memory; `tick()` moves the statistics on; commands are recorded."""

    description = "fake"

    def __init__(self, streams: int = 3, *, tiers: bool = False) -> None:
        self.count = streams
        #: Answer like a server with `GET /api/video/storage` (else like one without: /metrics only).
        self.tiers = tiers
        self.ticks = 0
        self.ptz_calls: list[dict[str, Any]] = []
        self.exports: list[tuple[str, dt.datetime, dt.datetime, float | None]] = []
        self.jpeg = make_jpeg()
        self.events_out: asyncio.Queue[EventLine] = asyncio.Queue()
        self.closed = False
        self.live_calls: list[tuple[str, ...]] = []
        self.live_streams: set[str] = set()
        self.storage_reads = 0
        #: What `playback` does: None streams `make_fmp4()`, a BackendError is raised instead.
        self.playback_error: BackendError | None = BackendError(503, "recordings are not enabled")
        self.playbacks: list[tuple[str, dt.datetime, dt.datetime, float | None]] = []

    def tick(self) -> None:
        self.ticks += 1

    async def start(self) -> None:
        for i, text in enumerate(("new stream (live)", "live -> reconnecting", "restarted (2)")):
            self.events_out.put_nowait(
                EventLine(
                    time=T0 + dt.timedelta(seconds=i),
                    kind=("stream", "state", "restart")[i],
                    stream_id=f"cam{i:03d}",
                    text=text,
                )
            )

    async def aclose(self) -> None:
        self.closed = True

    async def list_streams(self) -> list[StreamStatus]:
        return make_rows(self.count, self.ticks)

    async def get_stream(self, stream_id: str) -> dict[str, Any]:
        return {"stream_id": stream_id, "tracks": [{"kind": "video", "codec": "h264", "width": 1920, "height": 1080}],
                "source": {"protocol": "rtsp", "source_url": f"rtsp://10.0.0.1/{stream_id}"}}  # fmt: skip

    async def snapshot(self, stream_id: str) -> bytes:
        return self.jpeg

    async def recordings(self, stream_id: str, start: dt.datetime, end: dt.datetime) -> Recordings:
        span = (end - start) / 10
        segments = tuple(
            Span(start=start + span * i, end=start + span * (i + 1), size=100_000) for i in (0, 1, 2, 5, 6, 7, 8)
        )
        gaps = (Span(start=start + span * 3, end=start + span * 5, reason="source lost"),)
        return Recordings(stream_id=stream_id, start=start, end=end, segments=segments, gaps=gaps)

    async def export(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        path: Path,
        *,
        speed: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        self.exports.append((stream_id, start, end, speed))
        data = b"\0" * 4096
        path.write_bytes(data)
        if progress is not None:
            progress(len(data))
        return len(data)

    async def playback(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float | None = None,
        on_first_frame: Callable[[dt.datetime], None] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        self.playbacks.append((stream_id, start, end, speed))
        if self.playback_error is not None:
            raise self.playback_error
        data = make_fmp4()
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]
            await asyncio.sleep(0)

    async def devices(self) -> list[Device]:
        return [
            Device(device_id="34020000001320000001", online=True, name="gate", address="127.0.0.1:5062",
                   transport="UDP", last_keepalive=(T0 - dt.timedelta(seconds=12)).timestamp(), channels=(
                Channel(channel_id="34020000001320000001", name="gate cam", status="ON"),)),
            Device(device_id="34020000001180000002", online=False, name="nvr", address="127.0.0.1:5070",
                   transport="TCP", channels=(
                Channel(channel_id="34020000001310000003", name="hall", status="OFF"),)),
        ]  # fmt: skip

    async def ptz(
        self, device_id: str, channel_id: str, command: str, *, speed: int = 128, preset: int | None = None
    ) -> PtzResult:
        request: dict[str, Any] = {"channel_id": channel_id, "command": command, "speed": speed}
        if preset is not None:
            request["preset"] = preset
        self.ptz_calls.append({"device_id": device_id, **request})
        if device_id.endswith("2"):
            return PtzResult(request=request, status=409, answer=f"device {device_id} is offline")
        return PtzResult(request=request, status=200, answer='{"status": 200}')

    async def start_live(self, device_id: str, channel_id: str, transport: str = "udp") -> HttpAnswer:
        self.live_calls.append(("start", device_id, channel_id, transport))
        path = f"/api/video/gb28181/devices/{device_id}/live"
        request = {"channel_id": channel_id, "transport": transport}
        if device_id.endswith("2"):
            answer = f"GB28181 device {device_id} is offline"
            return HttpAnswer(method="POST", path=path, request=request, status=409, answer=answer)
        body = {"stream_id": channel_id, "device_id": device_id, "channel_id": channel_id, "transport": transport}
        self.live_streams.add(channel_id)
        return HttpAnswer(method="POST", path=path, request=request, status=201, answer=json.dumps(body), body=body)

    async def stop_live(self, stream_id: str) -> HttpAnswer:
        self.live_calls.append(("stop", stream_id))
        path = f"/api/video/gb28181/streams/{stream_id}"
        if stream_id not in self.live_streams:
            answer = f"no GB28181 stream {stream_id!r} started through this API"
            return HttpAnswer(method="DELETE", path=path, request=None, status=404, answer=answer)
        self.live_streams.discard(stream_id)
        return HttpAnswer(method="DELETE", path=path, request=None, status=204, answer="")

    async def storage(self) -> StorageReport:
        self.storage_reads += 1
        report = storage_report(make_metrics(self.count, self.ticks))
        if self.tiers:
            return storage_status(report, make_storage_status(self.ticks))
        return attrs.evolve(report, status_error="404: not found")

    async def events(self) -> AsyncIterator[EventLine]:
        while True:
            yield await self.events_out.get()
