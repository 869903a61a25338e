"""Export of a recorded range as one fragmented MP4, streamed while it is produced, optionally paced.

Strategy: `plan_export` asks the index for the segments overlapping [start, end] and picks the starting point:
the last keyframe at or before `start` in the segment holding `start` (or the first keyframe of the first segment
after `start` when `start` falls in a gap), so the first exported frame decodes. `export_plan` then remuxes with
PyAV, never transcoding: each segment is opened through `_SplicedFile`, a read-only view made of the segment's
`ftyp moov` followed by the file from the chosen keyframe's fragment on, so the demuxer never reads the skipped
fragments (the recorder indexes each keyframe fragment's byte offset; fragments use `default-base-is-moof` and
carry a `tfdt`, so they are position-independent). Packets go to one PyAV MP4 muxer in fragmented mode
(`empty_moov+frag_keyframe+default_base_moof`, fragments of at most `fragment_duration`) writing into a sink that
is drained after every step; each step (demux and mux until a fragment comes out) runs in
`trio.to_thread.run_sync`, so memory holds about one fragment, never the range.

Timestamps: rebased so the first frame has decode time 0. Segments of one run that follow each other are
chained by their media durations in ticks (exact, so the timeline is continuous across segment boundaries); a
segment after a gap is placed at its wall-clock distance from the first frame: the gap stays in the file as a
timestamp jump (players hold the last frame before it on screen). The cut at the end is on decode time: the last
frame exported is the last one whose decode time is before `end` (with no B-frames, its presentation time).

Pacing (`speed`): fragments are released at `speed` x real time, each when the media time it ends at is due
(trio's clock, so tests run on MockClock). Only the sending is paced; timestamps are never rescaled (a timelapse
would need dropping or retiming frames, which is a different feature).

All segments of the range must share their codec parameters (one sample description is written, from the first
segment); in-band parameter sets, which the recorder keeps, let decoders follow a change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import os
import struct
from collections.abc import AsyncGenerator, Iterator
from fractions import Fraction
from typing import Any, BinaryIO

import attrs
import av
import trio

from fluxkit.storage import LocalStorage, SegmentRecord

from ._errors import InvalidRange, NoRecording, RangeTooLarge

__all__ = [
    "DEFAULT_FRAGMENT_DURATION",
    "DEFAULT_MAX_DURATION",
    "MAX_SPEED",
    "MIN_SPEED",
    "ExportPlan",
    "check_speed",
    "export_plan",
    "export_range",
    "plan_export",
]

#: Longest range `export_range` accepts by default (seconds).
DEFAULT_MAX_DURATION = 24 * 3600.0
#: Longest fragment of the exported MP4 (seconds): what one step holds in memory, and the pacing granularity.
DEFAULT_FRAGMENT_DURATION = 1.0
#: Accepted playback speeds.
MIN_SPEED = 0.25
MAX_SPEED = 4.0

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_HEADER = struct.Struct(">I4s")
TimeArg = dt.datetime | float | int


def _us(value: TimeArg) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return round(value * 1_000_000)


def _dt(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


@attrs.frozen(kw_only=True, slots=True)
class ExportPlan:
    """What `export_plan` will stream: made by `plan_export`, which raises every request error up front.

    Attributes:
        stream_id: the stream.
        start: requested start (UTC).
        end: requested end (UTC).
        first_frame: wall time of the first exported frame (a keyframe at or before `start`, or the first one
            after it when `start` is not recorded).
        segments: the segments to read, oldest first.
        first_offset: byte offset of the fragment holding the first frame in `segments[0]`.
        gaps: number of holes between the segments (kept as timestamp jumps).
    """

    stream_id: str
    start: dt.datetime
    end: dt.datetime
    first_frame: dt.datetime
    segments: tuple[SegmentRecord, ...]
    first_offset: int
    gaps: int

    @property
    def duration(self) -> float:
        """Seconds of timeline from the first frame to `end` (an upper bound of the media exported)."""
        return (self.end - self.first_frame).total_seconds()


def check_speed(speed: float | None) -> None:
    """Raise InvalidRange unless `speed` is None or within MIN_SPEED..MAX_SPEED."""
    if speed is not None and not (MIN_SPEED <= speed <= MAX_SPEED):
        raise InvalidRange(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, not {speed}")


async def plan_export(
    storage: LocalStorage,
    stream_id: str,
    start: TimeArg,
    end: TimeArg,
    *,
    max_duration: float = DEFAULT_MAX_DURATION,
) -> ExportPlan:
    """Validate a range and find what to read. Times are aware datetimes (naive = UTC) or epoch seconds.

    Raises:
        InvalidRange: `end` is not after `start`. RangeTooLarge: longer than `max_duration` seconds.
        NoRecording: no frame recorded in [start, end). LocalProtocolError: an invalid stream id.
    """
    start_us, end_us = _us(start), _us(end)
    if end_us <= start_us:
        raise InvalidRange(f"end ({_dt(end_us).isoformat()}) must be after start ({_dt(start_us).isoformat()})")
    if end_us - start_us > max_duration * 1_000_000:
        raise RangeTooLarge(f"range of {(end_us - start_us) / 1e6:.0f} s exceeds the maximum of {max_duration:.0f} s")
    query = await storage.query_segments(stream_id, start_us / 1e6, end_us / 1e6)
    segments = [s for s in query.segments if _us(s.end) > start_us and _us(s.start) < end_us and s.frames]
    first_index = None
    first_time = first_offset = 0
    for i, seg in enumerate(segments):
        seg_start = _us(seg.start)
        keys = seg.keyframes or ((0.0, -1),)
        if seg_start <= start_us < _us(seg.end):
            # The last keyframe at or before `start` (the first one always is: segments start on a keyframe).
            t, offset = keys[0]
            for kt, koff in keys:
                if seg_start + round(kt * 1e6) <= start_us:
                    t, offset = kt, koff
            first_index, first_time, first_offset = i, seg_start + round(t * 1e6), offset
            break
        if seg_start >= start_us:
            first_index, first_time, first_offset = i, seg_start + round(keys[0][0] * 1e6), keys[0][1]
            break
    if first_index is None or first_time >= end_us:
        raise NoRecording(f"nothing recorded for {stream_id!r} between {_dt(start_us)} and {_dt(end_us)}")
    chosen = tuple([await _localize(storage, seg) for seg in segments[first_index:]])
    gaps = sum(1 for a, b in itertools.pairwise(chosen) if not _contiguous(a, b))
    return ExportPlan(
        stream_id=stream_id,
        start=_dt(start_us),
        end=_dt(end_us),
        first_frame=_dt(first_time),
        segments=chosen,
        first_offset=first_offset,
        gaps=gaps,
    )


async def _localize(storage: Any, seg: SegmentRecord) -> SegmentRecord:
    """The record with a local path: a segment kept only on a remote tier (S3, an NVR) is fetched into the
    storage's verified read cache first (`fetch_to_cache`, tiered storages only)."""
    fetch = getattr(storage, "fetch_to_cache", None)
    if fetch is None or await trio.to_thread.run_sync(os.path.isfile, seg.path):
        return seg
    path = await fetch(seg)
    return attrs.evolve(seg, path=str(path))


def _contiguous(a: SegmentRecord, b: SegmentRecord) -> bool:
    # One run, and b starts where a ends (the recorder writes them so; 1 ms of slack for rounding).
    return a.run_id == b.run_id and abs(_us(b.start) - _us(a.end)) <= 1000


def _header_length(f: BinaryIO, size: int) -> int:
    """Bytes before the first `moof` (ftyp + moov + anything else at the top level before it)."""
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        box_size, kind = _HEADER.unpack(f.read(8))
        if kind == b"moof":
            return offset
        if box_size == 1:
            box_size = int.from_bytes(f.read(8), "big")
        if box_size < 8:
            break
        offset += box_size
    return size


class _SplicedFile(io.RawIOBase):
    """Read-only file: the segment's header bytes, then the file from `offset` on (skipped fragments unseen)."""

    def __init__(self, path: str, offset: int) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        size = os.fstat(self._f.fileno()).st_size
        head_len = _header_length(self._f, size)
        if offset < head_len or offset > size:
            offset = head_len
        self._f.seek(0)
        self._head = self._f.read(head_len)
        self._offset = offset
        self._size = head_len + size - offset
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        head = len(self._head)
        if self._pos < head:
            n = min(len(view), head - self._pos)
            view[:n] = self._head[self._pos : self._pos + n]
        else:
            self._f.seek(self._offset + self._pos - head)
            n = self._f.readinto(view)
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._f.close()
        super().close()


class _Sink(io.RawIOBase):
    """Where the muxer writes: a list of byte strings drained after each step. Not seekable, so FFmpeg writes
    the fragmented file strictly in order."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class _Exporter:
    """The thread-side remuxer. `step()` is called repeatedly (never concurrently) until it reports done."""

    def __init__(self, plan: ExportPlan, fragment_duration: float) -> None:
        self.plan = plan
        self.sink = _Sink()
        self.out: Any = av.open(
            self.sink,
            "w",
            format="mp4",
            options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(max(1, round(fragment_duration * 1_000_000))),
            },
        )
        self.origin_us = _us(plan.first_frame)
        self.end_rel = (_us(plan.end) - self.origin_us) / 1e6  # seconds of output timeline
        self.out_streams: dict[str, Any] = {}  # "video"/"audio" -> output stream
        self.offsets: dict[str, int] = {}  # per kind: ticks added to this segment's timestamps
        self.prev: SegmentRecord | None = None
        self.index = -1
        self.input: Any = None
        self.packets: Iterator[Any] = iter(())
        self.started = False
        self.media_end = 0.0  # output seconds up to which fragments were emitted
        self.last_end = 0.0  # end (dts + duration) of the last packet muxed, seconds
        self.frames = 0
        self.prev_offsets: dict[str, int] = {}
        self.last_dts: dict[str, int] = {}
        self.done = False

    def _open_next(self) -> bool:
        if self.input is not None:
            self.input.close()
            self.input = None
        self.index += 1
        segments = self.plan.segments
        if self.index >= len(segments):
            return False
        seg = segments[self.index]
        offset = self.plan.first_offset if self.index == 0 else -1
        self.input = av.open(_SplicedFile(seg.path, offset), "r", format="mp4")
        streams = [s for s in self.input.streams if s.type in ("video", "audio")]
        if not self.out_streams:
            for s in streams:
                if s.type not in self.out_streams:
                    out = self.out.add_stream_from_template(s)
                    out.time_base = s.time_base
                    self.out_streams[s.type] = out
        wanted = [s for s in streams if s.type in self.out_streams]
        prev = self.prev
        for s in wanted:
            tb: Fraction = s.time_base
            if prev is not None and _contiguous(prev, seg):
                # Chain by the previous segment's media duration in ticks: exact, no rounding drift.
                self.offsets[s.type] = self.prev_offsets[s.type] + round(prev.duration / tb)
            else:
                self.offsets[s.type] = round(Fraction(_us(seg.start) - self.origin_us, 1_000_000) / tb)
        self.prev_offsets = dict(self.offsets)
        self.prev = seg
        self.packets = self.input.demux(wanted)
        return True

    def step(self) -> tuple[bytes, float]:
        """Demux and mux until a fragment comes out or the range ends; (bytes produced, media end seconds)."""
        sink = self.sink
        while not self.done:
            packet = next(self.packets, None)
            if packet is None:
                if not self._open_next():
                    self._finish()
                    break
                continue
            if packet.dts is None:
                continue
            kind = packet.stream.type
            out = self.out_streams[kind]
            tb = packet.time_base
            dts = packet.dts + self.offsets[kind]
            if not self.started:
                if kind != "video":
                    continue
                # The first segment begins at the keyframe's fragment: anchor the timeline on its first frame.
                self.started = True
                shift = -dts
                for k in self.offsets:
                    self.offsets[k] += shift if k == kind else round(shift * tb / self.out_streams[k].time_base)
                self.prev_offsets = dict(self.offsets)
                dts = 0
            seconds = float(dts * tb)
            if seconds >= self.end_rel:
                if kind == "video":
                    self._finish()
                    break
                continue
            if dts < 0 or dts <= self.last_dts.get(kind, -1):
                # Audio from before the first frame, or overlapping the previous segment's tail (an AAC encoder's
                # priming packets restart each transcoded G.711 segment slightly early): the muxer needs
                # increasing decode times.
                continue
            self.last_dts[kind] = dts
            pts = packet.pts + self.offsets[kind] if packet.pts is not None else dts
            packet.stream = out
            packet.dts = dts
            packet.pts = pts
            if kind == "video":
                self.frames += 1
            self.out.mux(packet)
            self.last_end = max(self.last_end, float((dts + (packet.duration or 0)) * tb))
            if sink.parts:
                self.media_end = seconds  # a fragment ending here was just written
                return sink.drain(), self.media_end
        return sink.drain(), self.media_end

    def _finish(self) -> None:
        self.done = True
        if self.input is not None:
            self.input.close()
            self.input = None
        self.out.close()
        self.media_end = max(self.media_end, self.last_end)

    def header(self) -> bytes:
        """Open the first segment, set up the output and return `ftyp moov` (written when the muxer starts)."""
        self._open_next()
        self.out.start_encoding()
        return self.sink.drain()

    def close(self) -> None:
        if self.input is not None:
            self.input.close()
            self.input = None
        if not self.done:
            self.done = True
            with contextlib.suppress(av.FFmpegError, ValueError, OSError):
                self.out.close()


async def export_plan(
    plan: ExportPlan, *, speed: float | None = None, fragment_duration: float = DEFAULT_FRAGMENT_DURATION
) -> AsyncGenerator[bytes, None]:
    """Stream the MP4 of a plan: `ftyp moov` first, then `moof mdat` fragments; see the module docstring.

    Args:
        plan: from `plan_export`.
        speed: None to produce as fast as possible, else 0.25..4: fragments are released at that multiple of real
            time (pacing only; timestamps are not rescaled).
        fragment_duration: longest fragment, seconds.

    Raises:
        InvalidRange: speed out of range.
    """
    check_speed(speed)
    exporter = _Exporter(plan, fragment_duration)
    try:
        header = await trio.to_thread.run_sync(exporter.header)
        t0 = trio.current_time()
        data = header
        while True:
            if data:
                yield data
            if exporter.done:
                break
            data, media_end = await trio.to_thread.run_sync(exporter.step)
            if speed is not None:
                await trio.sleep_until(t0 + media_end / speed)
    finally:
        exporter.close()


async def export_range(
    storage: LocalStorage,
    stream_id: str,
    start: TimeArg,
    end: TimeArg,
    *,
    max_duration: float = DEFAULT_MAX_DURATION,
    speed: float | None = None,
    fragment_duration: float = DEFAULT_FRAGMENT_DURATION,
) -> AsyncGenerator[bytes, None]:
    """One fragmented MP4 of [start, end] of a recording, as an async iterator of byte chunks.

    The first chunk (`ftyp moov`) comes only after the range was validated, so an HTTP layer can await it before
    sending its status line; or call `plan_export` first and then `export_plan`. Use with
    `contextlib.aclosing` so an abandoned export closes its files at once.

    Raises:
        InvalidRange: end not after start, or speed outside 0.25..4. RangeTooLarge: over `max_duration`.
        NoRecording: nothing recorded in the range.
    """
    check_speed(speed)
    plan = await plan_export(storage, stream_id, start, end, max_duration=max_duration)
    chunks = export_plan(plan, speed=speed, fragment_duration=fragment_duration)
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()
