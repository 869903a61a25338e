"""Settings of the simulated GB28181 device.

Strategy: one frozen attrs record, validated once at construction, so the Trio driver never re-checks a field.
Channel IDs are derived from the device ID (Appendix D: same centre/industry code, type 131 "camera") unless given.
"""

from __future__ import annotations

import os
from typing import Literal

import attrs

from fluxkit.protocols.manscdp import RecordItem

__all__ = ["DEFAULT_CATALOG_PAGE_SIZE", "KNOWN_QUIRKS", "DeviceSettings"]

#: Catalog/RecordInfo items per MESSAGE (Appendix N allows up to 10000; real devices page small to stay under
#: the UDP MTU, which is what multi-part assembly on the platform has to cope with).
DEFAULT_CATALOG_PAGE_SIZE = 8

#: Vendor quirks the simulator can imitate (gb28181.md "Surprises" and the issue list):
#: hik_psm: Hikvision "HK" PSM descriptors and a private 0xBD PES per keyframe pack;
#: gb2312_bare_amp: GB2312 bodies with a bare `&` in channel names and addresses;
#: ssrc_zero: RTP SSRC 0 whatever y= says (Dahua);
#: slow_200: 100 Trying at once, the 200 to INVITE only after `slow_200_delay` seconds (Uniview, TP-Link);
#: restart: the device "reboots" `restart_after` seconds into its first stream (no BYE) and registers again;
#: ignore_scale: a MANSRTSP Scale change is answered 200 but playback goes on at 1x (Hikvision NVRs, wvp#2069).
KNOWN_QUIRKS = frozenset({"hik_psm", "gb2312_bare_amp", "ssrc_zero", "slow_200", "restart", "ignore_scale"})


def _digits20(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not (len(value) == 20 and value.isascii() and value.isdigit()):
        raise ValueError(f"{attribute.name} must be a 20-digit GB28181 ID (Appendix D), got {value!r}")


def _domain(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value or not value.isascii() or any(c.isspace() for c in value):
        raise ValueError(f"domain must be a non-empty SIP domain, got {value!r}")


def _port(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} {value} is out of range")


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _quirks(instance: object, attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]) -> None:
    unknown = set(value) - KNOWN_QUIRKS
    if unknown:
        raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(KNOWN_QUIRKS)}")


@attrs.frozen(kw_only=True, slots=True)
class DeviceSettings:
    """What the simulated device is and where it registers.

    Attributes:
        server_host, server_port: the platform's SIP address.
        server_id: the platform's 20-digit SIP ID (Request-URI user of REGISTER and MESSAGE).
        domain: the 10-digit SIP domain (realm) of the platform.
        device_id: our 20-digit ID (Digest user name).
        password: our Digest password.
        channels: number of video channels (IPC: usually 1; NVR: many).
        kind: "ipc" or "nvr" (DeviceInfo model, catalog shape).
        transport: SIP transport to the platform, "udp" or "tcp".
        keepalive_interval: seconds between Keepalive MESSAGEs (9.6; default 60).
        keepalive_timeouts: unanswered keepalives in a row after which the device registers again.
        register_expires: the Expires asked for in REGISTER; the device refreshes at 3/4 of what is granted.
        clip: an Annex-B/MP4 clip to stream; None for fluxkit's generated demo clip.
        records: RecordInfo answers; an item with an empty `device_id` belongs to every channel.
        quirks: vendor behaviours to imitate, see `KNOWN_QUIRKS`.
        local_host, local_port: the SIP address to bind (0: any free port); media binds `local_host` too.
        catalog_page_size: items per Catalog/RecordInfo MESSAGE.
        channel_ids: explicit channel IDs (default: derived from `device_id`).
        name: the device name (DeviceInfo, catalog items are "<name> <n>").
        charset: the charset MANSCDP bodies are sent in (GB2312 like most devices; "UTF-8" also works).
        slow_200_delay: seconds between 100 Trying and 200 under the `slow_200` quirk.
        restart_after: seconds of streaming before the `restart` quirk reboots the device.
        retry_backoff: first and largest wait (seconds) between failed registrations.
    """

    server_host: str
    server_port: int = attrs.field(validator=_port)
    server_id: str = attrs.field(validator=_digits20)
    domain: str = attrs.field(validator=_domain)
    device_id: str = attrs.field(validator=_digits20)
    password: str
    channels: int = attrs.field(
        default=1, validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(10000))
    )
    kind: Literal["ipc", "nvr"] = attrs.field(default="ipc", validator=attrs.validators.in_(("ipc", "nvr")))
    transport: Literal["udp", "tcp"] = attrs.field(default="udp", validator=attrs.validators.in_(("udp", "tcp")))
    keepalive_interval: float = attrs.field(default=60.0, validator=_positive)
    keepalive_timeouts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    register_expires: int = attrs.field(default=3600, validator=attrs.validators.ge(1))
    clip: str | os.PathLike[str] | None = None
    records: tuple[RecordItem, ...] = attrs.field(default=(), converter=tuple)
    quirks: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset, validator=_quirks)
    local_host: str = "127.0.0.1"
    local_port: int = attrs.field(default=0, validator=_port)
    catalog_page_size: int = attrs.field(default=DEFAULT_CATALOG_PAGE_SIZE, validator=attrs.validators.ge(1))
    channel_ids: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    name: str = "fluxkit 模拟设备"
    charset: str = "GB2312"
    slow_200_delay: float = attrs.field(default=4.0, validator=_positive)
    restart_after: float = attrs.field(default=5.0, validator=_positive)
    retry_backoff: tuple[float, float] = (1.0, 30.0)

    def __attrs_post_init__(self) -> None:
        if self.channel_ids and len(self.channel_ids) != self.channels:
            raise ValueError(f"{len(self.channel_ids)} channel_ids given for {self.channels} channels")
        for cid in self.channel_ids:
            if not (len(cid) == 20 and cid.isascii() and cid.isdigit()):
                raise ValueError(f"channel IDs must have 20 digits (Appendix D), got {cid!r}")

    @property
    def channel_list(self) -> tuple[str, ...]:
        """The channel IDs: given ones, else `<first 10 digits of device_id>131<flag><serial>` per channel."""
        if self.channel_ids:
            return self.channel_ids
        prefix = self.device_id[:10] + "131" + self.device_id[13]
        base = int(self.device_id[14:]) * 100  # keeps devices with neighbouring serials apart for N < 100
        return tuple(f"{prefix}{(base + n) % 1_000_000:06d}" for n in range(1, self.channels + 1))
