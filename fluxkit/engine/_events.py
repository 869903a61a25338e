"""Engine events: frozen records that the event bus hands to every listener and to the log.

Names are past-tense facts (style.md §6.5). Every event carries the `stream_id` it is about and the engine time
(`trio.current_time()`) it happened at, so listeners can order and age them.
"""

from __future__ import annotations

import attrs

from ._track import Track

__all__ = [
    "EngineEvent",
    "SourceConnected",
    "SourceReconnecting",
    "StreamFailed",
    "StreamPublished",
    "StreamStopped",
    "SubscriberLagging",
    "TimelineRunStarted",
]


@attrs.frozen(kw_only=True, slots=True)
class EngineEvent:
    """Base of every engine event.

    Attributes:
        stream_id: the stream the event is about.
        time: engine time (seconds, `trio.current_time()`) when it happened.
    """

    stream_id: str
    time: float


@attrs.frozen(kw_only=True, slots=True)
class StreamPublished(EngineEvent):
    """A stream became live, or announced new tracks (a source reconnected, parameters changed)."""

    tracks: tuple[Track, ...]


@attrs.frozen(kw_only=True, slots=True)
class StreamStopped(EngineEvent):
    """A stream left the registry; its subscriptions end once drained. `reason` says why, in words."""

    reason: str


@attrs.frozen(kw_only=True, slots=True)
class StreamFailed(EngineEvent):
    """A stream's source gave up: a permanent error, or too many failed attempts. A `StreamStopped` follows.

    Attributes:
        error: the last error, as text (`ExceptionType: message`).
        permanent: True for a `PermanentSourceError` (no retry was tried), False when the attempts ran out.
        attempts: how many restarts were tried before giving up.
    """

    error: str
    permanent: bool
    attempts: int


@attrs.frozen(kw_only=True, slots=True)
class SourceConnected(EngineEvent):
    """A supervised source announced its tracks (connected). `attempt` is 0 for the first try."""

    attempt: int


@attrs.frozen(kw_only=True, slots=True)
class SourceReconnecting(EngineEvent):
    """A supervised source failed and will be restarted after `delay` seconds.

    Attributes:
        attempt: 1 for the first restart after a failure, counting up while failures continue.
        delay: seconds until the restart (exponential backoff with jitter).
        error: the error that ended the previous try, as text.
    """

    attempt: int
    delay: float
    error: str


@attrs.frozen(kw_only=True, slots=True)
class SubscriberLagging(EngineEvent):
    """A subscriber's queue overflowed: its queued frames were dropped and it skips to the next keyframe.

    Attributes:
        subscriber: the subscription's name.
        dropped: frames dropped from its queue at this overflow.
        skipped_frames: frames it has missed in total, including those skipped while waiting for a keyframe.
        skip_events: overflows so far, this one included.
    """

    subscriber: str
    dropped: int
    skipped_frames: int
    skip_events: int


@attrs.frozen(kw_only=True, slots=True)
class TimelineRunStarted(EngineEvent):
    """The stream's media clock jumped (or the source restarted): a new run starts and is never glued to the old.

    Attributes:
        run_id: the new run's number (the first run of a stream is 0 and is not announced).
        reason: "backward_jump", "forward_jump" or "reset" (the source reconnected).
        codec: the codec of the track whose timestamp started the run.
    """

    run_id: int
    reason: str
    codec: str
