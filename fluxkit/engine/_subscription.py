"""Subscriptions (frames) and event listeners: bounded queues that the publisher fills without ever waiting.

Strategy: the publisher runs `_push` synchronously for every subscriber; `_push` appends the *same* frame object
to a deque (no copy: the payload bytes are shared by every subscriber) and wakes the consumer through a
`trio.lowlevel.ParkingLot` only when one is parked. A full queue is never waited on: for video, the queued
frames are dropped and the subscriber skips everything up to the next keyframe, because a decoder cannot use
frames between a gap and the next keyframe anyway. The skip is counted and reported (`SubscriberLagging`).
Event listeners use the simpler policy events allow: drop the oldest and count.

Receiving follows trio's memory channels: a cancellation point before, a schedule point after taking an item.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import attrs
import trio

from fluxkit.protocols import MediaFrame

from ._events import EngineEvent

__all__ = [
    "DEFAULT_EVENT_BUFFER",
    "DEFAULT_QUEUE_SIZE",
    "EventListener",
    "EventListenerStatistics",
    "Subscription",
    "SubscriptionStatistics",
]

#: Frames a subscriber may have queued before it is considered lagging (about 4 s of 25 fps video plus audio).
DEFAULT_QUEUE_SIZE = 256
#: Events a listener may have pending before the oldest are dropped.
DEFAULT_EVENT_BUFFER = 1024

# Subscriber states.
_FLOWING = 0
_STARTING = 1  # joined without a cached GOP: waits for a keyframe, not counted as a skip
_SKIPPING = 2  # overflowed: drops frames until the next keyframe, counted


@attrs.frozen(kw_only=True, slots=True)
class SubscriptionStatistics:
    """Counters of one subscription.

    Attributes:
        name: the subscription's name.
        stream_id: the stream it follows.
        delivered: frames handed to the consumer.
        queued: frames waiting in its queue.
        queue_size: the queue's bound.
        skipped_frames: frames it missed because it lagged (dropped from the queue, then skipped to a keyframe).
        skip_events: how many times its queue overflowed.
    """

    name: str
    stream_id: str
    delivered: int
    queued: int
    queue_size: int
    skipped_frames: int
    skip_events: int


class Subscription(trio.abc.AsyncResource):
    """One consumer of a stream: an async iterator of `MediaFrame`s, ending when the stream stops.

    Made by `VideoEngine.subscribe_stream`. Use as `async with engine.subscribe_stream("cam1") as sub:
    async for frame in sub: ...`. Frames are the publisher's own objects, shared with every other subscriber:
    treat them as read-only (they are frozen).
    """

    def __init__(
        self,
        *,
        stream_id: str,
        name: str,
        queue_size: int,
        on_lag: Callable[[Subscription, int], None],
        on_close: Callable[[Subscription], None],
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.stream_id = stream_id
        self.name = name
        self._queue: deque[MediaFrame] = deque()
        self._queue_size = queue_size
        self._lot = trio.lowlevel.ParkingLot()
        self._state = _STARTING
        self._ended = False  # the stream stopped: end after draining
        self._closed = False  # the consumer closed it
        self._delivered = 0
        self._skipped = 0
        self._skip_events = 0
        self._on_lag = on_lag
        self._on_close = on_close

    # -- publisher side (synchronous, never blocks) -------------------------------------------------------------

    def _prime(self, frames: list[MediaFrame]) -> None:
        """Start with the cached GOP (from its keyframe), when it fits in the queue."""
        if frames and len(frames) < self._queue_size:
            self._queue.extend(frames)
            self._state = _FLOWING
            self._lot.unpark_all()

    def _push(self, frame: MediaFrame, resume: bool) -> None:
        state = self._state
        if state:
            if not resume:
                if state == _SKIPPING:
                    self._skipped += 1
                return
            self._state = _FLOWING
        queue = self._queue
        if len(queue) >= self._queue_size:
            dropped = len(queue)
            queue.clear()
            self._skipped += dropped
            self._skip_events += 1
            if not resume:
                self._state = _SKIPPING
                self._skipped += 1
            self._on_lag(self, dropped)
            if not resume:
                return
        queue.append(frame)
        if self._lot:
            self._lot.unpark()

    def _end(self) -> None:
        self._ended = True
        self._lot.unpark_all()

    # -- consumer side -----------------------------------------------------------------------------------------

    def receive_nowait(self) -> MediaFrame:
        """The next frame, without waiting.

        Raises:
            trio.WouldBlock: none is queued yet.
            trio.EndOfChannel: the stream stopped and every queued frame was delivered.
            trio.ClosedResourceError: this subscription was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError("subscription was closed")
        if self._queue:
            self._delivered += 1
            return self._queue.popleft()
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> MediaFrame:
        """The next frame, waiting for it. Raises as `receive_nowait`, except that it waits instead of WouldBlock."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            frame = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return frame
        while True:
            await self._lot.park()
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                continue

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> MediaFrame:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Leave the stream now (synchronous). Queued frames are dropped; a waiting `receive` raises."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._lot.unpark_all()
        self._on_close(self)

    async def aclose(self) -> None:
        """Leave the stream (see `close`)."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> SubscriptionStatistics:
        """Counters: delivered, skipped frames, skip events, queue fill."""
        return SubscriptionStatistics(
            name=self.name,
            stream_id=self.stream_id,
            delivered=self._delivered,
            queued=len(self._queue),
            queue_size=self._queue_size,
            skipped_frames=self._skipped,
            skip_events=self._skip_events,
        )


@attrs.frozen(kw_only=True, slots=True)
class EventListenerStatistics:
    """Counters of one event listener: events `delivered`, `dropped` (oldest, on overflow), `pending`."""

    delivered: int
    dropped: int
    pending: int
    buffer_size: int


_E = TypeVar("_E", bound=EngineEvent)


class EventListener(trio.abc.AsyncResource, Generic[_E]):
    """An async iterator of engine events with its own bounded buffer (drop-oldest, counted).

    Made by `VideoEngine.events()`; it ends when the engine closes. Several listeners may exist at once, each
    sees every event emitted after it was made.
    """

    def __init__(self, *, buffer_size: int, on_close: Callable[[EventListener[_E]], None]) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self._buffer: deque[_E] = deque()
        self._buffer_size = buffer_size
        self._lot = trio.lowlevel.ParkingLot()
        self._delivered = 0
        self._dropped = 0
        self._ended = False
        self._closed = False
        self._on_close = on_close

    def _push(self, event: _E) -> None:
        if len(self._buffer) >= self._buffer_size:
            self._buffer.popleft()
            self._dropped += 1
        self._buffer.append(event)
        if self._lot:
            self._lot.unpark()

    def _end(self) -> None:
        self._ended = True
        self._lot.unpark_all()

    def receive_nowait(self) -> _E:
        """The next event without waiting; raises like `Subscription.receive_nowait`."""
        if self._closed:
            raise trio.ClosedResourceError("event listener was closed")
        if self._buffer:
            self._delivered += 1
            return self._buffer.popleft()
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> _E:
        """The next event, waiting for it; `trio.EndOfChannel` once the engine closed and all were read."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            event = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event
        while True:
            await self._lot.park()
            try:
                return self.receive_nowait()
            except trio.WouldBlock:
                continue

    def __aiter__(self) -> EventListener[_E]:
        return self

    async def __anext__(self) -> _E:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop listening now (synchronous)."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._lot.unpark_all()
        self._on_close(self)

    async def aclose(self) -> None:
        """Stop listening."""
        self.close()
        await trio.lowlevel.checkpoint()

    def statistics(self) -> EventListenerStatistics:
        """Counters: delivered, dropped, pending."""
        return EventListenerStatistics(
            delivered=self._delivered, dropped=self._dropped, pending=len(self._buffer), buffer_size=self._buffer_size
        )
