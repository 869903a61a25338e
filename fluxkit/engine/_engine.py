"""`VideoEngine`: the registry of live streams, zero-copy fan-out, the event bus and source supervision.

Strategy: everything on the frame path is synchronous and allocation-light. `Publisher.send` runs in the source's
task: it updates the stream's timeline and counters, then hands the *same* `MediaFrame` object to every
subscription's bounded queue (`Subscription._push`), which never waits; consumers run in their own tasks. So a
slow consumer can only lose its own frames (it skips to the next keyframe), never slow the source or the others.

The engine owns one nursery (opened by `open_engine` inside the caller's task): it holds a supervisor task per
source, each in its own cancel scope so that `remove_source` cancels exactly one. Leaving `open_engine` stops every
stream, ends every subscription and event listener, and cancels the nursery: no task outlives the block.

Events go to every listener (each with its own bounded, drop-oldest buffer) and to the `fluxkit.engine` logger,
one line per event.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Self

import attrs
import trio

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame

from ._errors import PermanentSourceError, StreamExistsError, StreamNotFoundError
from ._events import (
    EngineEvent,
    SourceConnected,
    SourceReconnecting,
    StreamFailed,
    StreamPublished,
    StreamStopped,
    SubscriberLagging,
    TimelineRunStarted,
)
from ._source import RestartPolicy, Source
from ._stats import StreamStatistics, _StatsAccumulator
from ._subscription import DEFAULT_EVENT_BUFFER, DEFAULT_QUEUE_SIZE, EventListener, Subscription
from ._timeline import DEFAULT_MAX_BACKWARD, DEFAULT_MAX_FORWARD, Timeline, WallOrigin
from ._track import Track

__all__ = [
    "DEFAULT_MAX_GOP_CACHE",
    "EngineSettings",
    "Publisher",
    "SourceSession",
    "StreamInfo",
    "VideoEngine",
    "open_engine",
]

_log = logging.getLogger("fluxkit.engine")

#: Frames of the current GOP kept so a new subscriber starts at once, from the last keyframe (0 disables).
DEFAULT_MAX_GOP_CACHE = 600


@attrs.frozen(kw_only=True, slots=True)
class EngineSettings:
    """Tunables of a `VideoEngine`.

    Attributes:
        queue_size: default bound of a subscriber's frame queue.
        event_buffer: default bound of an event listener's buffer.
        gop_cache_frames: frames of the current GOP cached for new subscribers; a longer GOP is not cached (the
            new subscriber waits for the next keyframe instead); 0 disables the cache.
        restart: the default restart policy of supervised sources.
        wrap_bits: width of raw frame timestamps (32: RTP; 33: MPEG PES); None when they never wrap.
        max_backward: seconds a timestamp may step back without starting a new timeline run.
        max_forward: seconds media time may outrun wall time between frames without starting a new run.
    """

    queue_size: int = attrs.field(default=DEFAULT_QUEUE_SIZE, validator=attrs.validators.ge(1))
    event_buffer: int = attrs.field(default=DEFAULT_EVENT_BUFFER, validator=attrs.validators.ge(1))
    gop_cache_frames: int = attrs.field(default=DEFAULT_MAX_GOP_CACHE, validator=attrs.validators.ge(0))
    restart: RestartPolicy = attrs.field(factory=RestartPolicy)
    wrap_bits: int | None = 32
    max_backward: float = DEFAULT_MAX_BACKWARD
    max_forward: float = DEFAULT_MAX_FORWARD


@attrs.frozen(kw_only=True, slots=True)
class StreamInfo:
    """One entry of `VideoEngine.list_streams()`.

    Attributes:
        stream_id: the stream.
        state: "waiting" (its source has not connected yet), "live" or "reconnecting".
        tracks: the announced tracks (empty while waiting).
        subscribers: live subscriptions.
        supervised: True when a `Source` added with `add_source` feeds it.
        wall_origin: where its media time lies on the wall clock, when its source said (a download); None for
            live streams, placed by arrival time.
    """

    stream_id: str
    state: str
    tracks: tuple[Track, ...]
    subscribers: int
    supervised: bool
    wall_origin: WallOrigin | None = None


class _Stream:
    """Registry entry; its `send` is the fan-out hot path."""

    __slots__ = (
        "engine",
        "gop",
        "gop_limit",
        "has_video",
        "need_key",
        "publisher",
        "scope",
        "state",
        "stats",
        "stopped",
        "stream_id",
        "subscribers",
        "timeline",
        "track_index",
        "track_video",
        "tracks",
        "wall_origin",
    )

    def __init__(self, engine: VideoEngine, stream_id: str, *, supervised: bool) -> None:
        settings = engine.settings
        self.engine = engine
        self.stream_id = stream_id
        self.tracks: tuple[Track, ...] = ()
        self.track_index: dict[str, int] = {}
        self.track_video: list[bool] = []
        self.has_video = False
        self.state = "waiting" if supervised else "live"
        self.subscribers: list[Subscription] = []
        self.publisher: Publisher | None = None
        self.timeline = Timeline(
            90000, wrap_bits=settings.wrap_bits, max_backward=settings.max_backward, max_forward=settings.max_forward
        )
        self.stats = _StatsAccumulator()
        self.need_key = True
        self.gop: list[MediaFrame] | None = None
        self.gop_limit = settings.gop_cache_frames
        self.scope: trio.CancelScope | None = trio.CancelScope() if supervised else None
        self.stopped = False
        self.wall_origin: WallOrigin | None = None

    def set_tracks(self, tracks: Sequence[Track], *, restart: bool) -> None:
        tracks = tuple(tracks)
        if not tracks:
            raise LocalProtocolError("a stream needs at least one track")
        index: dict[str, int] = {}
        for i, track in enumerate(tracks):
            if not isinstance(track, Track):
                raise LocalProtocolError(f"tracks[{i}] is not a Track: {track!r}")
            if track.codec in index:
                raise LocalProtocolError(f"two {track.codec} tracks: frames are matched to tracks by codec")
            index[track.codec] = i
        old_rates = [t.clock_rate for t in self.tracks]
        self.tracks = tracks
        self.track_index = index
        self.track_video = [t.kind == "video" for t in tracks]
        self.has_video = any(self.track_video)
        rates = [t.clock_rate for t in tracks]
        if rates != old_rates:
            self.timeline.set_clock_rates(rates)
        elif restart:
            self.timeline.reset()
        if restart:
            # A new connection: nothing goes out before its first keyframe, and the old GOP is no start point.
            self.need_key = True
            self.gop = None

    def send(self, frame: MediaFrame) -> None:
        now = trio.current_time()
        track = self.track_index.get(frame.codec)
        if track is None:
            raise LocalProtocolError(f"stream {self.stream_id!r} has no {frame.codec} track")
        # In a stream with video only video frames are keyframes that a consumer can start from; audio-only
        # streams can start anywhere (every audio frame is a keyframe).
        counts = self.track_video[track] or not self.has_video
        resume = counts and frame.keyframe
        stamp = frame.pts if frame.dts is None else frame.dts
        if stamp is not None:
            timeline = self.timeline
            run = timeline.run_id
            timeline.observe(stamp, now, track=track)
            if timeline.run_id != run and run >= 0:
                self.engine._emit(
                    TimelineRunStarted(
                        stream_id=self.stream_id,
                        time=now,
                        run_id=timeline.run_id,
                        reason=timeline.last_reason,
                        codec=frame.codec,
                    )
                )
        self.stats.record(now, len(frame.data), counts, resume)
        if self.need_key:
            if not resume:
                return
            self.need_key = False
        if resume:
            self.gop = [frame] if self.gop_limit else None
        elif self.gop is not None:
            if len(self.gop) < self.gop_limit:
                self.gop.append(frame)
            else:
                self.gop = None  # GOP longer than the cache: new subscribers wait for the next keyframe
        for subscription in self.subscribers:
            subscription._push(frame, resume)

    def statistics(self) -> StreamStatistics:
        return self.stats.snapshot(
            now=trio.current_time(),
            stream_id=self.stream_id,
            state=self.state,
            run_id=self.timeline.run_id,
            subscribers=len(self.subscribers),
        )


class Publisher:
    """The sending end of a stream: `send(frame)` fans a frame out to every subscriber without waiting.

    Made by `VideoEngine.publish_stream` (closing it stops the stream) or by `SourceSession.publish` (it stops
    working when that try of the source ends; the supervisor decides about the stream).
    """

    __slots__ = ("_keyframe_handler", "_owns_stream", "_stream", "stream_id")

    def __init__(self, stream: _Stream, *, owns_stream: bool) -> None:
        self._stream = stream
        self._owns_stream = owns_stream
        self.stream_id = stream.stream_id
        self._keyframe_handler: Callable[[], None] | None = None

    def send(self, frame: MediaFrame) -> None:
        """Publish one frame: every subscriber gets this very object (no copy). Never blocks.

        Raises:
            trio.ClosedResourceError: the stream stopped, or this publisher's source try ended.
            LocalProtocolError: the stream has no track with the frame's codec.
        """
        stream = self._stream
        if stream.publisher is not self:
            raise trio.ClosedResourceError(f"publisher of {self.stream_id!r} is closed")
        stream.send(frame)

    def send_all(self, frames: Iterable[MediaFrame]) -> None:
        """`send` each frame in order (one depacketizer call often yields several)."""
        for frame in frames:
            self.send(frame)

    @property
    def closed(self) -> bool:
        """True once `send` would raise ClosedResourceError."""
        return self._stream.publisher is not self

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The stream's announced tracks."""
        return self._stream.tracks

    def update_tracks(self, tracks: Sequence[Track]) -> None:
        """Announce changed tracks (new parameter sets, resolution); emits `StreamPublished` again."""
        if self.closed:
            raise trio.ClosedResourceError(f"publisher of {self.stream_id!r} is closed")
        stream = self._stream
        stream.set_tracks(tracks, restart=False)
        stream.engine._emit(StreamPublished(stream_id=stream.stream_id, time=trio.current_time(), tracks=stream.tracks))

    def set_keyframe_handler(self, handler: Callable[[], None] | None) -> None:
        """Let consumers ask this source for a keyframe: `handler()` runs on `VideoEngine.request_keyframe`.

        A source that can ask its sender for one (an RTCP PLI, RFC 4585 §6.3.1; a FIR, RFC 5104 §4.3.1) registers a
        synchronous, non-blocking handler that rate-limits itself (requests may come once per frame). It applies to
        this publisher only: a restarted source registers again. None removes it.
        """
        self._keyframe_handler = handler

    def report_losses(self, count: int) -> None:
        """Add `count` frames or packets the source lost (RTP sequence gaps) to the stream's statistics."""
        self._stream.stats.losses += count

    def report_jitter(self, seconds: float) -> None:
        """Set the stream's current interarrival jitter (RFC 3550 §6.4.1), in seconds."""
        self._stream.stats.jitter = seconds

    def statistics(self) -> StreamStatistics:
        """The stream's statistics."""
        return self._stream.statistics()

    def close(self) -> None:
        """Stop sending. For a `publish_stream` publisher this stops the stream (`StreamStopped`)."""
        stream = self._stream
        if stream.publisher is not self:
            return
        stream.publisher = None
        if self._owns_stream:
            stream.engine._stop(stream, "publisher closed")

    async def aclose(self) -> None:
        """Async form of `close`."""
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class SourceSession:
    """What a supervised `Source` gets for one try: its stream id, the attempt number and `publish`.

    Attributes:
        stream_id: the stream this source feeds.
        attempt: 0 for the first try, then the number of the restart.
        connected_at: engine time of the `publish` call of this try (None before).
    """

    def __init__(self, engine: VideoEngine, stream: _Stream, attempt: int) -> None:
        self._engine = engine
        self._stream = stream
        self._publisher: Publisher | None = None
        self._over = False
        self.stream_id = stream.stream_id
        self.attempt = attempt
        self.connected_at: float | None = None

    @property
    def publisher(self) -> Publisher | None:
        """The publisher `publish` returned, or None before it was called."""
        return self._publisher

    def publish(self, tracks: Sequence[Track], *, wall_origin: WallOrigin | None = None) -> Publisher:
        """Announce the tracks and mark the source connected; returns the publisher to send frames to.

        Calling it again in the same try updates the tracks (as `Publisher.update_tracks`).

        Args:
            tracks: what the stream carries.
            wall_origin: where this try's media time lies on the wall clock, for frames captured long before they
                arrive (a download); consumers such as the recorder then place frames by their timestamps. None
                (live) places them by arrival. Each try sets its own (a retried download restarts its clock).
        """
        if self._over:
            raise trio.ClosedResourceError("this source try has ended")
        if self._publisher is not None:
            if wall_origin is not None:
                self._stream.wall_origin = wall_origin
            self._publisher.update_tracks(tracks)
            return self._publisher
        stream = self._stream
        stream.set_tracks(tracks, restart=True)
        stream.wall_origin = wall_origin
        now = trio.current_time()
        publisher = Publisher(stream, owns_stream=False)
        stream.publisher = publisher
        stream.state = "live"
        self._publisher = publisher
        self.connected_at = now
        self._engine._emit(SourceConnected(stream_id=stream.stream_id, time=now, attempt=self.attempt))
        self._engine._emit(StreamPublished(stream_id=stream.stream_id, time=now, tracks=stream.tracks))
        return publisher

    def _end(self) -> None:
        self._over = True
        if self._publisher is not None and self._stream.publisher is self._publisher:
            self._stream.publisher = None


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_permanent(error: Exception) -> bool:
    if isinstance(error, PermanentSourceError):
        return True
    return isinstance(error, BaseExceptionGroup) and error.subgroup(PermanentSourceError) is not None


def _permanent_cause(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        group = error.subgroup(PermanentSourceError)
        if group is None:
            break
        error = group.exceptions[0]
    return error


class VideoEngine:
    """The stream registry: publish, subscribe, supervise sources, read events. Made by `open_engine`.

    All methods are synchronous and must be called from the engine's Trio run (any task).
    """

    def __init__(self, nursery: trio.Nursery, settings: EngineSettings, rng: random.Random) -> None:
        self.settings = settings
        self._nursery = nursery
        self._rng = rng
        self._streams: dict[str, _Stream] = {}
        self._listeners: list[EventListener[EngineEvent]] = []
        self._subscriber_serial = 0
        self._closed = False

    # -- streams -----------------------------------------------------------------------------------------------

    def _new_stream(self, stream_id: str, *, supervised: bool) -> _Stream:
        if self._closed:
            raise trio.ClosedResourceError("the engine is closed")
        if not isinstance(stream_id, str) or not stream_id:
            raise LocalProtocolError("stream_id must be a non-empty string")
        if stream_id in self._streams:
            raise StreamExistsError(f"stream {stream_id!r} already exists")
        stream = _Stream(self, stream_id, supervised=supervised)
        self._streams[stream_id] = stream
        return stream

    def _get(self, stream_id: str) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise StreamNotFoundError(f"no stream {stream_id!r}") from None

    def publish_stream(
        self, stream_id: str, tracks: Sequence[Track], *, wall_origin: WallOrigin | None = None
    ) -> Publisher:
        """Register a live stream fed directly by the caller; emits `StreamPublished`.

        `wall_origin`: as in `SourceSession.publish` (None: a live stream, placed on the wall clock by arrival).

        Raises:
            StreamExistsError: the id is taken.
            LocalProtocolError: no tracks, or two tracks with the same codec.
        """
        stream = self._new_stream(stream_id, supervised=False)
        try:
            stream.set_tracks(tracks, restart=True)
        except BaseException:
            del self._streams[stream_id]
            raise
        stream.wall_origin = wall_origin
        publisher = Publisher(stream, owns_stream=True)
        stream.publisher = publisher
        self._emit(StreamPublished(stream_id=stream_id, time=trio.current_time(), tracks=stream.tracks))
        return publisher

    def wall_origin(self, stream_id: str) -> WallOrigin | None:
        """The wall-clock origin its source published with the stream (see `WallOrigin`); None for live streams.

        Raises:
            StreamNotFoundError: no such stream.
        """
        return self._get(stream_id).wall_origin

    def subscribe_stream(
        self, stream_id: str, *, queue_size: int | None = None, name: str | None = None
    ) -> Subscription:
        """Follow a stream (live, or waiting for its source): an async iterator of frames that starts at a keyframe.

        A new subscription starts with the cached frames of the current GOP when there are any, else at the next
        keyframe. On queue overflow it drops its queue and skips to the next keyframe (`SubscriberLagging`).

        Args:
            stream_id: the stream.
            queue_size: bound of its frame queue (default `EngineSettings.queue_size`).
            name: a label for statistics, events and logs (default "sub-N").

        Raises:
            StreamNotFoundError: no such stream.
        """
        stream = self._get(stream_id)
        self._subscriber_serial += 1
        subscription = Subscription(
            stream_id=stream_id,
            name=name or f"sub-{self._subscriber_serial}",
            queue_size=self.settings.queue_size if queue_size is None else queue_size,
            on_lag=self._on_lag,
            on_close=self._on_subscription_closed,
        )
        if stream.gop is not None and not stream.need_key:
            subscription._prime(stream.gop)
        else:
            self._request_keyframe(stream)  # no GOP to start from: the newcomer waits for the next keyframe
        stream.subscribers.append(subscription)
        return subscription

    def request_keyframe(self, stream_id: str) -> bool:
        """Ask the stream's source for a keyframe soon (a new segment or a new viewer waits for one).

        Only sources that registered a handler (`Publisher.set_keyframe_handler`: WHIP sends an RTCP PLI) can
        act on it; the others (RTSP, GB28181, RTMP) send keyframes on their own schedule. The source rate-limits.

        Returns:
            True when the source has a handler (the request was passed on), else False.

        Raises:
            StreamNotFoundError: no such stream.
        """
        return self._request_keyframe(self._get(stream_id))

    def _request_keyframe(self, stream: _Stream) -> bool:
        publisher = stream.publisher
        handler = None if publisher is None else publisher._keyframe_handler
        if handler is None:
            return False
        try:
            handler()
        except Exception:  # a source's bug must not break the caller (a subscriber, the recorder)
            _log.exception("keyframe request handler of %r failed", stream.stream_id)
        return True

    def list_streams(self) -> list[StreamInfo]:
        """Every registered stream, in registration order."""
        return [
            StreamInfo(
                stream_id=s.stream_id,
                state=s.state,
                tracks=s.tracks,
                subscribers=len(s.subscribers),
                supervised=s.scope is not None,
                wall_origin=s.wall_origin,
            )
            for s in self._streams.values()
        ]

    def stream_statistics(self, stream_id: str) -> StreamStatistics:
        """Statistics of one stream (fps, bitrate, GOP, keyframe age, losses, jitter...)."""
        return self._get(stream_id).statistics()

    def stop_stream(self, stream_id: str) -> None:
        """Stop a stream: its source (if any) is cancelled, its subscriptions end once drained; `StreamStopped`."""
        self._stop(self._get(stream_id), "stopped")

    def _stop(self, stream: _Stream, reason: str) -> None:
        if stream.stopped:
            return
        stream.stopped = True
        stream.publisher = None
        stream.gop = None
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]
        if stream.scope is not None:
            stream.scope.cancel()
        for subscription in stream.subscribers:
            subscription._end()
        stream.subscribers = []
        self._emit(StreamStopped(stream_id=stream.stream_id, time=trio.current_time(), reason=reason))

    def _on_subscription_closed(self, subscription: Subscription) -> None:
        stream = self._streams.get(subscription.stream_id)
        if stream is not None and subscription in stream.subscribers:
            stream.subscribers.remove(subscription)

    def _on_lag(self, subscription: Subscription, dropped: int) -> None:
        stats = subscription.statistics()
        self._emit(
            SubscriberLagging(
                stream_id=subscription.stream_id,
                time=trio.current_time(),
                subscriber=subscription.name,
                dropped=dropped,
                skipped_frames=stats.skipped_frames,
                skip_events=stats.skip_events,
            )
        )

    # -- sources -----------------------------------------------------------------------------------------------

    def add_source(self, stream_id: str, source: Source, *, restart: RestartPolicy | None = None) -> None:
        """Register a stream fed by `source`, run under supervision in its own cancel scope.

        The stream is listed (state "waiting") and can be subscribed to at once; it goes live when the source
        calls `session.publish`.

        Raises:
            StreamExistsError: the id is taken.
        """
        stream = self._new_stream(stream_id, supervised=True)
        self._nursery.start_soon(self._supervise, stream, source, restart or self.settings.restart)

    def remove_source(self, stream_id: str) -> None:
        """Cancel a supervised source and stop its stream.

        Raises:
            StreamNotFoundError: no such stream.
            LocalProtocolError: the stream is not fed by a supervised source.
        """
        stream = self._get(stream_id)
        if stream.scope is None:
            raise LocalProtocolError(f"stream {stream_id!r} has no supervised source")
        self._stop(stream, "source removed")

    async def _supervise(self, stream: _Stream, source: Source, policy: RestartPolicy) -> None:
        assert stream.scope is not None
        try:
            with stream.scope:
                await self._supervise_tries(stream, source, policy)
        except Exception as exc:  # pragma: no cover - a bug in the supervisor itself, or an error mixed with a
            # cancellation in one group: fail this stream only, never the engine.
            _log.exception("supervisor of %r crashed", stream.stream_id)
            self._fail(stream, exc, permanent=True, attempts=0)

    async def _supervise_tries(self, stream: _Stream, source: Source, policy: RestartPolicy) -> None:
        failures = 0
        attempt = 0
        while True:
            session = SourceSession(self, stream, attempt)
            try:
                await source.run(session)
            except Exception as exc:
                error: Exception = exc
            else:
                self._stop(stream, "source finished")
                return
            finally:
                session._end()
            now = trio.current_time()
            if _is_permanent(error):
                self._fail(stream, _permanent_cause(error), permanent=True, attempts=failures)
                return
            if session.connected_at is not None and now - session.connected_at >= policy.reset_after:
                failures = 0
            if policy.max_attempts is not None and failures >= policy.max_attempts:
                self._fail(stream, error, permanent=False, attempts=failures)
                return
            failures += 1
            attempt += 1
            delay = policy.delay(failures, self._rng)
            stream.state = "reconnecting"
            stream.stats.restarts += 1
            self._emit(
                SourceReconnecting(
                    stream_id=stream.stream_id, time=now, attempt=failures, delay=delay, error=_describe(error)
                )
            )
            await trio.sleep(delay)

    def _fail(self, stream: _Stream, error: BaseException, *, permanent: bool, attempts: int) -> None:
        self._emit(
            StreamFailed(
                stream_id=stream.stream_id,
                time=trio.current_time(),
                error=_describe(error),
                permanent=permanent,
                attempts=attempts,
            )
        )
        self._stop(stream, "failed")

    # -- events ------------------------------------------------------------------------------------------------

    def events(self, *, buffer_size: int | None = None) -> EventListener[EngineEvent]:
        """A new listener: an async iterator of every event emitted from now on, ending when the engine closes.

        Its buffer holds `buffer_size` events (default `EngineSettings.event_buffer`); when full the oldest is
        dropped and counted (`statistics().dropped`). Close it (or use `async with`) when done.
        """
        listener: EventListener[EngineEvent] = EventListener(
            buffer_size=self.settings.event_buffer if buffer_size is None else buffer_size,
            on_close=self._on_listener_closed,
        )
        if self._closed:
            listener._end()
        else:
            self._listeners.append(listener)
        return listener

    def _on_listener_closed(self, listener: EventListener[EngineEvent]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish_event(self, event: EngineEvent) -> None:
        """Put an integration's event (GB28181 device events, for one) on the engine's event feed and log.

        Never blocks: every listener is a bounded drop-oldest buffer.
        """
        self._emit(event)

    def _emit(self, event: EngineEvent) -> None:
        level = (
            logging.WARNING
            if isinstance(event, StreamFailed | SubscriberLagging | SourceReconnecting)
            else logging.INFO
        )
        if _log.isEnabledFor(level):
            fields = " ".join(
                f"{a.name}={_log_value(getattr(event, a.name))}"
                for a in attrs.fields(type(event))
                if a.name != "time" and not (a.name == "stream_id" and not event.stream_id)  # device events
            )
            _log.log(level, "%s %s", type(event).__name__, fields)
        for listener in self._listeners:
            listener._push(event)

    # -- lifetime ----------------------------------------------------------------------------------------------

    def _close(self) -> None:
        if self._closed:
            return
        for stream in list(self._streams.values()):
            self._stop(stream, "engine closed")
        self._closed = True
        for listener in self._listeners:
            listener._end()
        self._listeners = []
        self._nursery.cancel_scope.cancel()


_LOG_VALUE_MAX = 240


def _log_value(value: object) -> str:
    if isinstance(value, tuple) and all(isinstance(v, Track) for v in value):
        return ",".join(t.codec for t in value) or "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    if len(text) > _LOG_VALUE_MAX:  # a 500-channel catalog is not a log line
        text = f"{text[:_LOG_VALUE_MAX]}...({len(text)} chars)"
    return repr(text) if (" " in text or not text) else text


@asynccontextmanager
async def open_engine(
    settings: EngineSettings | None = None, *, rng: random.Random | None = None
) -> AsyncIterator[VideoEngine]:
    """Open a `VideoEngine` that owns its tasks for the duration of the block.

    `async with open_engine() as engine:` ... everything (sources, streams, subscriptions, listeners) is stopped
    and cancelled on the way out, also when the block raises or is cancelled (Ctrl-C).

    Args:
        settings: tunables (defaults when None).
        rng: randomness for backoff jitter; pass `random.Random(seed)` for reproducible tests.
    """
    async with trio.open_nursery() as nursery:
        engine = VideoEngine(nursery, settings or EngineSettings(), rng or random.Random())
        try:
            yield engine
        finally:
            engine._close()
