"""The fluxkit engine: live streams in, zero-copy fan-out to subscribers, events, supervised sources.

Embed it in any Trio program::

    async with open_engine() as engine:
        publisher = engine.publish_stream("cam1", [Track(codec="h264")])
        async with engine.subscribe_stream("cam1") as frames:
            ...  # publisher.send(frame) in one task; `async for frame in frames` in another

Sources that connect by themselves (RTSP, GB28181) implement `Source` and are added with `engine.add_source`;
the engine restarts them with exponential backoff and reports everything on `engine.events()`.
"""

from __future__ import annotations

from ._engine import DEFAULT_MAX_GOP_CACHE as DEFAULT_MAX_GOP_CACHE
from ._engine import EngineSettings as EngineSettings
from ._engine import Publisher as Publisher
from ._engine import SourceSession as SourceSession
from ._engine import StreamInfo as StreamInfo
from ._engine import VideoEngine as VideoEngine
from ._engine import open_engine as open_engine
from ._errors import PermanentSourceError as PermanentSourceError
from ._errors import StreamExistsError as StreamExistsError
from ._errors import StreamNotFoundError as StreamNotFoundError
from ._events import EngineEvent as EngineEvent
from ._events import SourceConnected as SourceConnected
from ._events import SourceReconnecting as SourceReconnecting
from ._events import StreamFailed as StreamFailed
from ._events import StreamPublished as StreamPublished
from ._events import StreamStopped as StreamStopped
from ._events import SubscriberLagging as SubscriberLagging
from ._events import TimelineRunStarted as TimelineRunStarted
from ._source import RestartPolicy as RestartPolicy
from ._source import Source as Source
from ._stats import StreamStatistics as StreamStatistics
from ._subscription import DEFAULT_EVENT_BUFFER as DEFAULT_EVENT_BUFFER
from ._subscription import DEFAULT_QUEUE_SIZE as DEFAULT_QUEUE_SIZE
from ._subscription import EventListener as EventListener
from ._subscription import EventListenerStatistics as EventListenerStatistics
from ._subscription import Subscription as Subscription
from ._subscription import SubscriptionStatistics as SubscriptionStatistics
from ._timeline import Timeline as Timeline
from ._timeline import TimePoint as TimePoint
from ._timeline import WallOrigin as WallOrigin
from ._track import Track as Track

__all__ = [
    "DEFAULT_EVENT_BUFFER",
    "DEFAULT_MAX_GOP_CACHE",
    "DEFAULT_QUEUE_SIZE",
    "EngineEvent",
    "EngineSettings",
    "EventListener",
    "EventListenerStatistics",
    "PermanentSourceError",
    "Publisher",
    "RestartPolicy",
    "Source",
    "SourceConnected",
    "SourceReconnecting",
    "SourceSession",
    "StreamExistsError",
    "StreamFailed",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamPublished",
    "StreamStatistics",
    "StreamStopped",
    "SubscriberLagging",
    "Subscription",
    "SubscriptionStatistics",
    "TimePoint",
    "Timeline",
    "TimelineRunStarted",
    "Track",
    "VideoEngine",
    "WallOrigin",
    "open_engine",
]
