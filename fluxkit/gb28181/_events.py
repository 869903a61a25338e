"""Events of the GB28181 platform (`Gb28181Platform.events()`)."""

from __future__ import annotations

import attrs

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
]

Addr = tuple[str, int]


@attrs.frozen(kw_only=True, slots=True)
class Gb28181Event:
    """Base of the platform's events (`Gb28181Platform.events()`).

    Attributes:
        device_id: the device it is about.
        time: `trio.current_time()` when it happened.
    """

    device_id: str
    time: float


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
