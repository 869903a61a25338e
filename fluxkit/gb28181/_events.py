"""Events of the GB28181 platform: on `Gb28181Platform.events()` and on the engine's event feed.

Strategy: every event is an `EngineEvent`, so the platform hands each one both to its own listeners and, when it
has an engine, to `VideoEngine.events()` (and from there to the `/api/video/events` WebSocket, serialized like any
engine event). Device events are about no engine stream: their `stream_id` is "" (a `?stream_id=` filter of the
feed leaves them out); `ScaleMismatchDetected` is about a playback stream and carries its id.
"""

from __future__ import annotations

import attrs

from fluxkit.engine import EngineEvent
from fluxkit.protocols.manscdp import Alarm, MediaStatus, MobilePosition

from ._registry import ChannelRecord

__all__ = [
    "AlarmReceived",
    "CatalogUpdated",
    "DeviceOffline",
    "DeviceOnline",
    "Gb28181Event",
    "MediaStatusReceived",
    "MobilePositionReceived",
    "ScaleMismatchDetected",
]

Addr = tuple[str, int]


@attrs.frozen(kw_only=True, slots=True)
class Gb28181Event(EngineEvent):
    """Base of the platform's events (`Gb28181Platform.events()`, and the engine's feed when there is an engine).

    Attributes:
        device_id: the device it is about.
        time: `trio.current_time()` when it happened.
        stream_id: the engine stream it is about; "" for device events (about no stream).
    """

    stream_id: str = ""
    device_id: str


@attrs.frozen(kw_only=True, slots=True)
class DeviceOnline(Gb28181Event):
    """A device registered (or came back). `restarted` is True when it re-registered with a new Call-ID or from
    a new address while registered (a reboot or a NAT change): its live streams are re-INVITEd."""

    address: Addr
    restarted: bool = False


@attrs.frozen(kw_only=True, slots=True)
class DeviceOffline(Gb28181Event):
    """A device unregistered, or its keepalives or registration ran out (`reason`)."""

    reason: str


@attrs.frozen(kw_only=True, slots=True)
class CatalogUpdated(Gb28181Event):
    """A device's channel list changed (a Catalog answer or notify)."""

    channels: tuple[ChannelRecord, ...]
    complete: bool = True


@attrs.frozen(kw_only=True, slots=True)
class AlarmReceived(Gb28181Event):
    """An Alarm notify (A.2.5.2)."""

    alarm: Alarm


@attrs.frozen(kw_only=True, slots=True)
class MobilePositionReceived(Gb28181Event):
    """A MobilePosition notify."""

    position: MobilePosition


@attrs.frozen(kw_only=True, slots=True)
class MediaStatusReceived(Gb28181Event):
    """A MediaStatus notify (121: a playback or download reached the end of the file)."""

    status: MediaStatus


@attrs.frozen(kw_only=True, slots=True)
class ScaleMismatchDetected(Gb28181Event):
    """A device playing a recording back sends at another speed than the MANSCDP Scale asked for (many NVRs answer
    200 to Scale and go on at 1x; Appendix B). Emitted once per playback session (INVITE) of a `Gb28181Source`;
    from then on its timestamps follow the observed rate.

    Attributes:
        stream_id: the engine stream of the playback.
        channel_id: the channel played back.
        requested: the speed asked for.
        observed: the speed measured from the device's sending rate.
    """

    channel_id: str
    requested: float
    observed: float
