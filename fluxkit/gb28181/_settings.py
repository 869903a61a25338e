"""Settings and errors of the GB28181 platform."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from fluxkit.errors import FluxkitError

__all__ = ["DeviceNotFoundError", "DeviceOfflineError", "Gb28181Error", "PlatformSettings", "SubscriptionRefusedError"]


class Gb28181Error(FluxkitError):
    """Base of the platform's errors."""


class DeviceNotFoundError(Gb28181Error):
    """No device with that ID ever registered."""


class DeviceOfflineError(Gb28181Error):
    """The device is known but not online."""


class SubscriptionRefusedError(Gb28181Error):
    """The device refused a SUBSCRIBE (`status` is its SIP status)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen(kw_only=True)
class PlatformSettings:
    """Settings of a `Gb28181Platform` (the lead maps `[video.gb28181]` onto these).

    Attributes:
        server_id: the platform's 20-digit SIP ID.
        domain: the 10-digit SIP domain (also the Digest realm).
        password: default Digest password for devices; None lets any device register without Digest.
        device_passwords: per-device passwords (device ID -> password), checked before `password`.
        no_auth_devices: devices that cannot do Digest: accepted without a challenge.
        host: the address the SIP server binds (UDP and TCP) and writes in Via/Contact.
        sip_port: the SIP port (0: any free port, see `Gb28181Platform.sip_port` once serving).
        media_host: the address media is received on and written in SDP offers (default `host`).
        media_port_range: first and last port of the RTP port pool (UDP and TCP).
        shared_media_port: receive every UDP stream on this one port, demultiplexed by SSRC (0: any free port;
            None: one port per stream from the pool).
        keepalive_interval, keepalive_count: a device is offline after `interval * count` seconds without a
            keepalive or other request (§9.6: 60 s x 3).
        nonce_ttl: seconds a Digest nonce stays valid.
        request_timeout: seconds to wait for a device's answer to a MESSAGE query.
        invite_timeout: seconds to wait for the final response to an INVITE.
        tcp_connect_timeout: seconds to wait for a TCP connection the platform opens to a device registered over
            TCP whose own connection has gone (to its Contact, else the address it registered from).
        media_timeout: seconds without media before a live stream is declared dead (the engine restarts it).
        assembly_deadline: seconds to wait for the remaining parts of a multi-part answer.
        catalog_on_register: query the catalog after each (re)registration.
        subscribe_events: the subscriptions (RFC 6665 SUBSCRIBE, GB/T 28181-2016 9.11) made to each device after
            it first registers: any of "Catalog", "Alarm" and "MobilePosition" (empty: none). Refreshed at 3/4 of
            the granted Expires and renewed after each re-registration; `Gb28181Platform.subscribe` /
            `unsubscribe` (and the REST routes) change a device's set at run time.
        subscription_expires: the Expires asked for in those SUBSCRIBEs (seconds).
        charsets: per-device charset override for MANSCDP bodies (device ID -> codec name).
    """

    server_id: str = "34020000002000000001"
    domain: str = "3402000000"
    password: str | None = None
    device_passwords: Mapping[str, str] = attrs.field(factory=dict)
    no_auth_devices: frozenset[str] = frozenset()
    host: str = "127.0.0.1"
    sip_port: int = 5060
    media_host: str | None = None
    media_port_range: tuple[int, int] = (30000, 30999)
    shared_media_port: int | None = None
    keepalive_interval: float = 60.0
    keepalive_count: int = 3
    nonce_ttl: float = 300.0
    request_timeout: float = 10.0
    invite_timeout: float = 10.0
    tcp_connect_timeout: float = 5.0
    media_timeout: float = 10.0
    assembly_deadline: float = 30.0
    catalog_on_register: bool = True
    subscribe_events: tuple[str, ...] = ("Catalog", "Alarm")
    subscription_expires: int = 3600
    charsets: Mapping[str, str] = attrs.field(factory=dict)
