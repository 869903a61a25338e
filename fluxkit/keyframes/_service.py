"""`SnapshotService`: keyframes and snapshots for every stream of a `VideoEngine`.

Strategy: one task per stream follows the stream's subscription and feeds a `KeyframeExtractor` with every frame
(cheap: NAL headers only). Every keyframe becomes the stream's latest one (so a snapshot is fresh within one GOP);
every `interval_seconds` one is also handed, through a small bounded queue, to the stream's emitter task, which
renders its JPEG with the stream's long-lived `ThumbnailDecoder` (in a worker thread) and calls `on_keyframe`.
The follower never waits for decoding, so a slow decode cannot make the subscription lag; when the emitter falls
behind, keyframes are dropped and counted. `snapshot(stream_id)` decodes the latest keyframe lazily, once per
keyframe. New streams are picked up from the engine's `StreamPublished` events.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable

import attrs
import trio

from fluxkit.engine import StreamNotFoundError, StreamPublished, Subscription, VideoEngine
from fluxkit.errors import FluxkitError, LocalProtocolError, RemoteProtocolError

from ._extractor import Keyframe, KeyframeExtractor
from ._thumbnail import DEFAULT_JPEG_QUALITY, DEFAULT_THUMBNAIL_WIDTH, ThumbnailDecoder

__all__ = ["DEFAULT_MAX_PENDING_KEYFRAMES", "KeyframeCallback", "SnapshotService", "SnapshotUnavailable"]

_log = logging.getLogger("fluxkit.keyframes")

#: Keyframes per stream waiting for their JPEG; more are dropped (and counted) while the emitter is busy.
DEFAULT_MAX_PENDING_KEYFRAMES = 4

#: `on_keyframe(stream_id, keyframe, jpeg)`, sync or async.
KeyframeCallback = Callable[[str, Keyframe, bytes], Awaitable[None] | None]


class SnapshotUnavailable(FluxkitError, LookupError):
    """No snapshot can be given: the stream is unknown, or has had no keyframe yet."""


@attrs.define(slots=True)
class _StreamState:
    extractor: KeyframeExtractor
    send: trio.MemorySendChannel[Keyframe]
    decoder: ThumbnailDecoder | None = None
    cached: tuple[int, bytes] | None = None
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    dropped: int = 0


def _wall_clock() -> float:
    return time.time()


class SnapshotService:
    """Keeps every stream's latest keyframe and emits one keyframe + JPEG per stream every interval.

    Run it in a nursery: `nursery.start_soon(service.run)` (or `await nursery.start(service.run)`, which returns
    once the streams present are followed).

    Args:
        engine: the engine whose streams to follow.
        interval_seconds: at most one `on_keyframe` call per stream this often (0: every keyframe).
        width: thumbnail and snapshot width in pixels.
        quality: JPEG quality, 1..100.
        hwaccel: as in `ThumbnailDecoder` ("auto", a device type, or None).
        on_keyframe: called as `on_keyframe(stream_id, keyframe, jpeg)` for each emitted keyframe (may be async);
            an exception it raises is logged and the stream goes on.
        clock: wall-clock time in seconds (default `time.time`); injectable for tests.
        max_pending: keyframes per stream waiting for their JPEG before new ones are dropped.
    """

    def __init__(
        self,
        engine: VideoEngine,
        *,
        interval_seconds: float = 10.0,
        width: int = DEFAULT_THUMBNAIL_WIDTH,
        quality: int = DEFAULT_JPEG_QUALITY,
        hwaccel: str | None = "auto",
        on_keyframe: KeyframeCallback | None = None,
        clock: Callable[[], float] | None = None,
        max_pending: int = DEFAULT_MAX_PENDING_KEYFRAMES,
    ) -> None:
        if not (interval_seconds >= 0 and math.isfinite(interval_seconds)):
            raise LocalProtocolError(f"interval_seconds must be a finite number >= 0, not {interval_seconds!r}")
        if max_pending < 1:
            raise LocalProtocolError(f"max_pending must be >= 1, not {max_pending!r}")
        self.engine = engine
        self.interval_seconds = interval_seconds
        self.width = width
        self.quality = quality
        self.hwaccel = hwaccel
        self.on_keyframe = on_keyframe
        self.max_pending = max_pending
        self._clock = clock or _wall_clock
        self._streams: dict[str, _StreamState] = {}
        self._nursery: trio.Nursery | None = None
        # Fail early on bad width/quality/hwaccel rather than in the first stream's task.
        ThumbnailDecoder("h264", width=width, quality=quality, hwaccel=hwaccel)

    @property
    def streams(self) -> list[str]:
        """The streams being followed."""
        return list(self._streams)

    def latest(self, stream_id: str) -> Keyframe | None:
        """The stream's latest self-contained keyframe, or None (unknown stream or no keyframe yet)."""
        state = self._streams.get(stream_id)
        return None if state is None else state.extractor.latest

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow every stream of the engine, present and future, until cancelled or the engine closes."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async with self.engine.events() as events:
                    for info in self.engine.list_streams():
                        self._follow(info.stream_id)
                    task_status.started()
                    async for event in events:
                        if isinstance(event, StreamPublished):
                            self._follow(event.stream_id)
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    def _follow(self, stream_id: str) -> None:
        if stream_id in self._streams or self._nursery is None:
            return
        try:
            subscription = self.engine.subscribe_stream(stream_id, name=f"keyframes-{stream_id}")
        except StreamNotFoundError:
            return  # stopped before we got to it
        parameter_sets: tuple[bytes, ...] = ()
        codec: str | None = None
        for info in self.engine.list_streams():
            if info.stream_id == stream_id:
                for track in info.tracks:
                    if track.codec in ("h264", "hevc"):
                        codec, parameter_sets = track.codec, track.parameter_sets
                        break
        extractor = KeyframeExtractor(self.interval_seconds, codec=codec, parameter_sets=parameter_sets)
        send, receive = trio.open_memory_channel[Keyframe](self.max_pending)
        state = _StreamState(extractor=extractor, send=send)
        self._streams[stream_id] = state
        self._nursery.start_soon(self._run_stream, stream_id, state, subscription, receive)

    async def _run_stream(
        self,
        stream_id: str,
        state: _StreamState,
        subscription: Subscription,
        receive: trio.MemoryReceiveChannel[Keyframe],
    ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._emit, stream_id, state, receive)
                async with subscription, state.send:
                    await self._extract(state, subscription)
        finally:
            if self._streams.get(stream_id) is state:
                del self._streams[stream_id]

    async def _extract(self, state: _StreamState, subscription: Subscription) -> None:
        extractor = state.extractor
        clock = self._clock
        async for frame in subscription:
            keyframe = extractor.feed(frame, clock())
            if keyframe is not None and self.on_keyframe is not None:
                try:
                    state.send.send_nowait(keyframe)
                except trio.WouldBlock:
                    state.dropped += 1

    async def _emit(self, stream_id: str, state: _StreamState, receive: trio.MemoryReceiveChannel[Keyframe]) -> None:
        async with receive:
            async for keyframe in receive:
                try:
                    jpeg = await self._jpeg(state, keyframe)
                except RemoteProtocolError as exc:
                    _log.warning("stream %r: no thumbnail for keyframe %d: %s", stream_id, keyframe.sequence, exc)
                    continue
                callback = self.on_keyframe
                if callback is None:
                    continue
                try:
                    result = callback(stream_id, keyframe, jpeg)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    _log.exception("stream %r: on_keyframe failed", stream_id)

    async def _jpeg(self, state: _StreamState, keyframe: Keyframe) -> bytes:
        """The JPEG of `keyframe`, from the per-keyframe cache when it was already rendered."""
        async with state.lock:
            cached = state.cached
            if cached is not None and cached[0] == keyframe.sequence:
                return cached[1]
            decoder = state.decoder
            if decoder is None or decoder.codec != keyframe.codec:
                decoder = state.decoder = ThumbnailDecoder(
                    keyframe.codec, width=self.width, quality=self.quality, hwaccel=self.hwaccel
                )
            jpeg = await decoder.thumbnail(keyframe)
            state.cached = (keyframe.sequence, jpeg)
            return jpeg

    async def snapshot(self, stream_id: str) -> bytes:
        """A JPEG of the stream's latest keyframe (fresh within one GOP), decoded once per keyframe.

        Raises:
            SnapshotUnavailable: the stream is not followed, has had no keyframe yet, or its keyframe does not
                decode.
        """
        state = self._streams.get(stream_id)
        if state is None:
            raise SnapshotUnavailable(f"no stream {stream_id!r}")
        keyframe = state.extractor.latest
        if keyframe is None:
            raise SnapshotUnavailable(f"stream {stream_id!r} has had no keyframe yet")
        try:
            return await self._jpeg(state, keyframe)
        except RemoteProtocolError as exc:
            raise SnapshotUnavailable(f"stream {stream_id!r}: latest keyframe does not decode: {exc}") from exc
