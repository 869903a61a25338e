"""`Recorder`: records engine streams into a `StorageBackend`, one reader task and one writer worker per stream.

Strategy. The reader task follows the stream's subscription, runs its own `Timeline` (media time -> continuous
run time; wall time anchored once per run) and decides cuts: a segment starts at a video keyframe and ends at the
first keyframe past `segment_duration`; a timeline jump (new run) or a subscription skip (the recorder lagged)
ends it early and records a gap. It turns frames into cheap tuples and sends them down a bounded channel; the
writer task drains the channel in batches and hands each batch to `trio.to_thread.run_sync`, where the thread-side
`SegmentMuxer` (PyAV) does the blocking work, so the event loop never waits on FFmpeg or the disk.

Write failures (ENOSPC, EROFS, EACCES...) abort the segment (its complete parts are kept), publish
`RecordingFailed` and a log line on "fluxkit.recording", ask retention to make room, and retry with exponential
backoff; frames meanwhile are dropped (ingestion and other streams go on), and `RecordingResumed` follows the
first successful write.

Wall time. A run is placed on the wall clock where its first frame arrives, unless the stream was published with
a `WallOrigin` (a GB28181 download: frames recorded earlier, sent N times faster): the run is then placed where its
first frame's own timestamp says, so the recording is indexed at its original times and keeps the source's
timestamps whatever the transfer speed. The origin is read from the engine at every new run (a retried source
publishes a new one) and kept when the stream has already stopped (the reader may still be draining it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from fluxkit.engine import StreamNotFoundError, StreamPublished, StreamStopped, Timeline, Track, VideoEngine, WallOrigin

from ._local import StorageBackend, is_disk_error
from ._model import RecordingFailed, RecordingResumed, RecordingSettings, SegmentRecord, validate_stream_id
from ._mux import FinishedSegment, MuxItem, SegmentMuxer, wall_now_us

__all__ = ["Recorder", "open_recorder"]

_log = logging.getLogger("fluxkit.recording")

_OPEN = 0
_FRAMES = 1
_CLOSE = 2


#: Seconds a stopping recorder may spend finishing each open segment.
FINISH_ON_STOP_TIMEOUT = 10.0


class _StreamRecorder:
    def __init__(self, recorder: Recorder, stream_id: str, tracks: tuple[Track, ...]) -> None:
        self.recorder = recorder
        self.stream_id = stream_id
        self.settings = recorder.settings
        self.video = next((t for t in tracks if t.kind == "video" and t.codec in ("h264", "hevc")), None)
        self.audio = next((t for t in tracks if t.codec in ("aac", "opus", "pcm_alaw", "pcm_mulaw")), None)
        self.tracks = tracks
        self.send, self.receive = trio.open_memory_channel[tuple[int, Any]](self.settings.queue_frames)
        # Reader state.
        self.timeline = Timeline([t.clock_rate for t in tracks], wrap_bits=recorder.wrap_bits)
        self.run_id = -1
        self.run_anchor_us = 0
        self.seg_open = False
        self.seg_start_s = 0.0
        self.seg_start_ticks: list[int] = [0] * len(tracks)
        self.failed_until: float | None = None
        self.failed_at_us = 0
        self.gap_reason: str | None = None
        self.last_end_us = 0
        # Writer state.
        self.muxer: SegmentMuxer | None = None
        self.down_since_us: int | None = None
        #: Partial segments a write error cut short, kept for `recover_kept_partials`.
        self.kept_partials: list[Path] = []
        self.backoff = self.settings.retry_initial
        self.segments: list[SegmentRecord] = []

    # -- reader ------------------------------------------------------------------------------------------------

    async def read(self) -> None:
        engine = self.recorder.engine
        video = self.video
        if video is None:
            _log.warning("stream %r has no H.264/H.265 video track: not recorded", self.stream_id)
            return
        index = {t.codec: i for i, t in enumerate(self.tracks)}
        video_index = index[video.codec]
        audio_index = index.get(self.audio.codec) if self.audio else None
        rates = [t.clock_rate for t in self.tracks]
        seg_len = self.settings.segment_duration
        wall = self.recorder.wall_clock
        wrap_bits = self.recorder.wrap_bits
        skipped = 0
        async with (
            engine.subscribe_stream(
                self.stream_id, queue_size=self.settings.subscription_queue, name=f"recorder:{self.stream_id}"
            ) as sub,
            self.send,
        ):
            wall_origin = self._wall_origin(None)
            async for frame in sub:
                track = index.get(frame.codec)
                if track is None or (track != video_index and track != audio_index):
                    continue
                stamp = frame.dts if frame.dts is not None else frame.pts
                if stamp is None:
                    continue
                now = trio.current_time()
                point = self.timeline.update(stamp, now, track=track)
                stats = sub.statistics()
                if stats.skipped_frames != skipped:
                    skipped = stats.skipped_frames
                    await self._cut("subscriber_lag")
                if point.run_id != self.run_id:
                    if self.run_id >= 0:
                        await self._cut("timeline_jump")
                    self.run_id = point.run_id
                    wall_origin = self._wall_origin(wall_origin)
                    at = None if wall_origin is None else wall_origin.wall_us(stamp, rates[track], wrap_bits)
                    self.run_anchor_us = (wall() if at is None else at) - round(point.seconds * 1_000_000)
                is_video = track == video_index
                if self.failed_until is not None:
                    if self.seg_open:
                        self.seg_open = False  # the writer aborted it
                    if now < self.failed_until:
                        continue
                if is_video and frame.keyframe:
                    if not self.seg_open:
                        if self.failed_until is not None:
                            self.failed_until = None
                        await self._open(point.seconds, point.media, rates, frame.data)
                    elif point.seconds - self.seg_start_s >= seg_len:
                        await self._close(round(point.seconds * rates[track]) - self.seg_start_ticks[track])
                        await self._open(point.seconds, point.media, rates, frame.data)
                elif is_video and self.seg_open and point.seconds - self.seg_start_s >= seg_len:
                    # The cut waits for a keyframe: ask the sources that can send one now (WHIP: an RTCP PLI).
                    self._request_keyframe()
                if not self.seg_open:
                    continue
                base = self.seg_start_ticks[track]
                origin = point.media - round(point.seconds * rates[track])  # the track's run anchor
                dts = point.media - origin - base
                if dts < 0:
                    continue  # audio from before the segment's first keyframe
                pts = dts if frame.pts is None or frame.dts is None else dts + (frame.pts - frame.dts)
                self.recorder.bytes_received += len(frame.data)
                item: MuxItem = (is_video, frame.data, pts, dts, frame.keyframe, now)
                await self.send.send((_FRAMES, item))
            if self.seg_open:
                await self._close(None)

    def _wall_origin(self, known: WallOrigin | None) -> WallOrigin | None:
        """The stream's current `WallOrigin` (None: live); `known` once the stream has stopped."""
        try:
            return self.recorder.engine.wall_origin(self.stream_id)
        except StreamNotFoundError:
            return known

    def _request_keyframe(self) -> None:
        try:  # noqa: SIM105 - one call, no extra import
            self.recorder.engine.request_keyframe(self.stream_id)  # the source rate-limits
        except StreamNotFoundError:
            pass  # stopped: the subscription is draining

    async def _open(self, seconds: float, media: int, rates: list[int], data: bytes) -> None:
        self.seg_open = True
        self.seg_start_s = seconds
        self.seg_start_ticks = [round(seconds * r) for r in rates]
        start_us = self.run_anchor_us + round(seconds * 1_000_000)
        reason, self.gap_reason = self.gap_reason, None
        await self.send.send((_OPEN, (start_us, data, reason)))

    async def _close(self, end_ticks: int | None) -> None:
        self.seg_open = False
        await self.send.send((_CLOSE, end_ticks))

    async def _cut(self, reason: str) -> None:
        if self.seg_open:
            await self._close(None)
        if self.gap_reason is None:
            self.gap_reason = reason  # recorded from the last segment's end to the next one's start

    # -- writer ------------------------------------------------------------------------------------------------

    async def write(self) -> None:
        receive = self.receive
        try:
            async with receive:
                while True:
                    try:
                        first = await receive.receive()
                    except trio.EndOfChannel:
                        break
                    batch = [first]
                    while len(batch) < 256:
                        try:
                            batch.append(receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._apply(batch)
        except trio.Cancelled:
            # A clean stop (the recorder or fluxkit shutting down) finishes the open segment, renamed and
            # indexed, instead of leaving a partial for the next start-up to recover. Bounded, so a stuck disk
            # cannot hold the shutdown; the muxer is consistent here, since its thread calls are not abandoned.
            with trio.CancelScope(shield=True), trio.move_on_after(FINISH_ON_STOP_TIMEOUT):
                if self.muxer is not None:
                    await self._apply([(_CLOSE, None)])
            raise
        if self.muxer is not None:
            await self._apply([(_CLOSE, None)])
        await self.recover_kept_partials()

    async def _apply(self, batch: list[tuple[int, Any]]) -> None:
        try:
            finished, gaps, durable = await trio.to_thread.run_sync(self._apply_sync, batch)
        except Exception as exc:
            if not is_disk_error(exc) and not isinstance(exc.__cause__, OSError):
                _log.exception("recording of %r failed", self.stream_id)
            await self._failed(exc)
            return
        now = trio.current_time()
        self.recorder._latencies += [now - t for t in durable]
        backend = self.recorder.backend
        try:
            for gap in gaps:
                await backend.save_gap(self.stream_id, gap[0] / 1e6, gap[1] / 1e6, gap[2])
            for segment in finished:
                record = await backend.save_segment(segment)
                self.segments.append(record)
        except OSError as exc:
            await self._failed(exc)
            return
        if self.down_since_us is not None and (durable or finished):
            down_for = (wall_now_us() - self.down_since_us) / 1e6
            self.down_since_us = None
            self.backoff = self.settings.retry_initial
            _log.warning("recording of %r resumed after %.1f s", self.stream_id, down_for)
            self.recorder._publish(RecordingResumed(stream_id=self.stream_id, down_for=down_for))
            await self.recover_kept_partials()

    async def recover_kept_partials(self) -> None:
        """Index the complete parts of segments cut short by a write error (the disk takes writes again)."""
        recover = getattr(self.recorder.backend, "recover_partial", None)
        while self.kept_partials and recover is not None:
            try:
                await recover(self.kept_partials[0])
            except OSError as exc:  # still no room: the next resume, or start-up reconciliation, finishes it
                _log.warning("could not yet recover %s: %s", self.kept_partials[0], exc)
                return
            self.kept_partials.pop(0)

    def _apply_sync(
        self, batch: list[tuple[int, Any]]
    ) -> tuple[list[FinishedSegment], list[tuple[int, int, str]], list[float]]:
        """Worker-thread side: run a batch of open / frames / close commands through the muxer."""
        finished: list[FinishedSegment] = []
        gaps: list[tuple[int, int, str]] = []
        durable: list[float] = []
        frames: list[MuxItem] = []
        for kind, payload in batch:
            if kind == _FRAMES:
                if self.muxer is not None:
                    frames.append(payload)
                continue
            if frames and self.muxer is not None:
                durable += self.muxer.write(frames)
            frames = []
            if kind == _CLOSE:
                if self.muxer is not None:
                    muxer, self.muxer = self.muxer, None
                    segment, done = muxer.finish(payload, wall_now_us())
                    durable += done
                    finished.append(segment)
                    self.last_end_us = segment.start_us + segment.media_us
            else:  # _OPEN
                start_us, data, gap_reason = payload
                if gap_reason is not None and self.last_end_us and self.last_end_us < start_us:
                    gaps.append((self.last_end_us, start_us, gap_reason))
                final, partial = self.recorder.backend.segment_paths(self.stream_id, start_us)
                comment = json.dumps({"stream": self.stream_id, "start_us": start_us, "run_id": self.run_id})
                assert self.video is not None
                self.muxer = SegmentMuxer(
                    stream_id=self.stream_id,
                    partial_path=partial,
                    final_path=final,
                    start_us=start_us,
                    run_id=self.run_id,
                    video=self.video,
                    audio=self.audio,
                    first_keyframe=data,
                    part_duration=self.settings.part_duration,
                    fsync_parts=self.settings.fsync_parts,
                    comment=comment,
                )
        if frames and self.muxer is not None:
            durable += self.muxer.write(frames)
        return finished, gaps, durable

    async def _failed(self, exc: BaseException) -> None:
        muxer, self.muxer = self.muxer, None
        kept = 0
        if muxer is not None:
            kept = await trio.to_thread.run_sync(muxer.abort)
            if kept:
                self.kept_partials.append(muxer.partial_path)
        errno_ = exc.errno if isinstance(exc, OSError) and exc.errno else 0
        delay = self.backoff
        self.backoff = min(self.backoff * 2, self.settings.retry_max)
        self.failed_until = trio.current_time() + delay
        if self.down_since_us is None:
            self.down_since_us = wall_now_us()
        self.gap_reason = self.gap_reason or "write_error"
        _log.warning(
            "recording of %r failed: %s (kept %d bytes of the open segment); retrying in %.1f s",
            self.stream_id,
            exc,
            kept,
            delay,
        )
        self.recorder._publish(
            RecordingFailed(
                stream_id=self.stream_id, error=f"{type(exc).__name__}: {exc}", errno=errno_, retry_in=delay
            )
        )
        if errno_ and self.recorder.make_room_on_full:
            try:
                await self.recorder.backend.cleanup_expired(free_bytes=self.recorder.make_room_bytes)
            except OSError as cleanup_error:
                _log.warning("retention could not make room: %s", cleanup_error)


class Recorder:
    """Records engine streams into `backend`. Use `open_recorder(...)` (or `run` in a nursery).

    Args:
        engine: the engine whose streams are recorded.
        backend: where segments go (e.g. `LocalStorage`, already open).
        settings: segment and retention settings.
        streams: the stream ids to record (None: every stream, also those published later).
        on_event: called with `RecordingFailed` / `RecordingResumed` (also logged on "fluxkit.recording").
        wall_clock: epoch microseconds now (injectable for tests).
        make_room_on_full: on ENOSPC, ask retention to delete the oldest segments to free `make_room_bytes`.
    """

    def __init__(
        self,
        engine: VideoEngine,
        backend: StorageBackend,
        settings: RecordingSettings | None = None,
        *,
        streams: Sequence[str] | None = None,
        on_event: Callable[[RecordingFailed | RecordingResumed], None] | None = None,
        wall_clock: Callable[[], int] = wall_now_us,
        make_room_on_full: bool = True,
        make_room_bytes: int = 64 << 20,
    ) -> None:
        self.engine = engine
        self.backend = backend
        self.settings = settings or RecordingSettings()
        self.streams = None if streams is None else {validate_stream_id(s) for s in streams}
        self.on_event = on_event
        self.wall_clock = wall_clock
        self.make_room_on_full = make_room_on_full
        self.make_room_bytes = make_room_bytes
        self.wrap_bits = engine.settings.wrap_bits
        self.active: dict[str, _StreamRecorder] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._latencies: list[float] = []
        self._changed = trio.Event()
        #: Media bytes handed to the writers (for the bytes-written-per-byte-received figure).
        self.bytes_received = 0

    def _publish(self, event: RecordingFailed | RecordingResumed) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _wanted(self, stream_id: str) -> bool:
        if self.streams is not None:
            return stream_id in self.streams
        try:
            validate_stream_id(stream_id)
        except Exception:
            _log.warning("stream id %r cannot be stored: not recorded", stream_id)
            return False
        return True

    def _start(self, stream_id: str, tracks: tuple[Track, ...]) -> None:
        assert self._nursery is not None
        if stream_id in self.active or not tracks or not self._wanted(stream_id):
            return
        worker = _StreamRecorder(self, stream_id, tracks)
        self.active[stream_id] = worker
        self._nursery.start_soon(self._run_stream, worker)

    async def _run_stream(self, worker: _StreamRecorder) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(worker.write)
                try:
                    await worker.read()
                except StreamNotFoundError:
                    # Stopped between its StreamPublished event and our subscription: nothing to record. Close the
                    # channel (the reader never entered it) so the writer ends too.
                    _log.info("stream %r stopped before recording began", worker.stream_id)
                    await worker.send.aclose()
        finally:
            if self.active.get(worker.stream_id) is worker:
                del self.active[worker.stream_id]
            self._changed.set()
            self._changed = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Record until cancelled: every current stream, then follow publish events."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            events = self.engine.events()
            for info in self.engine.list_streams():
                if info.tracks:
                    self._start(info.stream_id, info.tracks)
            nursery.start_soon(self._retention_loop)
            task_status.started()
            async with events:
                async for event in events:
                    if isinstance(event, StreamPublished):
                        self._start(event.stream_id, event.tracks)
                    elif isinstance(event, StreamStopped):
                        pass  # the subscription ends by itself; the writer closes the segment

    async def _retention_loop(self) -> None:
        settings = self.settings
        if (
            settings.retention_days is None
            and settings.max_size_bytes is None
            and settings.max_stream_size_bytes is None
            and settings.min_free_bytes is None
        ):
            return
        while True:
            await self.retention_pass()
            await trio.sleep(settings.retention_interval)

    async def retention_pass(self, now: Any = None) -> list[SegmentRecord]:
        """Apply the settings' retention once (also run periodically by `run`)."""
        settings = self.settings
        # Only when set: a backend written before the free-space limit existed takes the call unchanged.
        extra = {} if settings.min_free_bytes is None else {"min_free_bytes": settings.min_free_bytes}
        try:
            return await self.backend.cleanup_expired(
                now=now,
                max_age=None if settings.retention_days is None else settings.retention_days * 86400.0,
                max_bytes=settings.max_size_bytes,
                max_stream_bytes=settings.max_stream_size_bytes,
                **extra,
            )
        except OSError as exc:
            _log.warning("retention pass failed: %s", exc)
            return []

    async def wait_idle(self) -> None:
        """Wait until no stream is being recorded (after their streams stopped: every segment is indexed)."""
        while self.active:
            await self._changed.wait()

    def latencies(self) -> list[float]:
        """Ingest-to-durable latencies (seconds) of every stream so far (for benchmarks)."""
        return list(self._latencies)


@asynccontextmanager
async def open_recorder(
    engine: VideoEngine, backend: StorageBackend, settings: RecordingSettings | None = None, **kwargs: Any
) -> AsyncIterator[Recorder]:
    """Run a `Recorder` for the duration of the block (arguments as `Recorder`)."""
    recorder = Recorder(engine, backend, settings, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        try:
            yield recorder
        finally:
            nursery.cancel_scope.cancel()
