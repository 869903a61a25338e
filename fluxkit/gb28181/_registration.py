"""Registration and liveness of the GB28181 platform's devices (GB/T 28181-2016 9.1, 9.6, 9.10).

Strategy: REGISTER is authenticated here, not in the user agent, because the password is per device (a
per-device table, then the global default; `no_auth_devices` and a None password skip Digest): one
`DigestServer` shared by both transports keeps the nonces with their expiry and rejects replays (verdict REPLAY:
a new 401). A wrong password is 403 (§9.1.2.1). The final 200 carries `Date` in the ISO form of §9.10 (time
sync). `Expires: 0` unregisters.

Liveness is kept in memory per device: the time of its last request (keepalives and any other) and the time its
registration runs out. The platform's timer wakes at the earliest of these deadlines (`liveness_deadline`); a
device silent for `keepalive_interval x keepalive_count` (§9.6), or whose registration expired, goes offline.
Each device has a generation, bumped when it restarts, re-registers after being offline, or goes offline: live
sessions and subscriptions watch it.

A restart is a REGISTER with a new Call-ID while registered, or (UDP) from a new source address; over TCP a new
source port is only a new connection, so there it is a new Contact. The Contact's host:port is kept in the
registry: it is where the platform opens a TCP connection to a device whose own one has gone.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import attrs

from fluxkit.errors import ProtocolError
from fluxkit.protocols.digest import DigestServer, DigestVerdict
from fluxkit.protocols.sip import RequestReceived, SipRequest, SipUserAgent

from ._events import DeviceOffline, DeviceOnline
from ._registry import DeviceRecord

if TYPE_CHECKING:
    from ._platform import Gb28181Platform
    from ._transport import Addr

__all__ = ["Registrar", "gb_date", "user_of"]

logger = logging.getLogger("fluxkit.gb28181")


def user_of(uri: str) -> str:
    """The user part of a SIP URI: `sip:34020000001320000001@3402000000` -> `34020000001320000001`."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0].split(";", 1)[0]


def _is_device_id(text: str) -> bool:
    return len(text) == 20 and text.isascii() and text.isdigit()


def gb_date(wall: float) -> str:
    """GB/T 28181-2016 §9.10: `Date: 2024-01-01T12:00:00.000` (local time, ISO style, not RFC 1123)."""
    local = time.localtime(wall)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(wall * 1000) % 1000:03d}"


def contact_address(request: SipRequest) -> Addr | None:
    """host:port of the request's Contact URI (None when absent, `*`, or without a usable host)."""
    try:
        contact = request.contact
    except ProtocolError:
        return None
    if contact is None or contact.uri == "*":
        return None
    uri = contact.uri
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    hostport = rest.rsplit("@", 1)[-1].split(";", 1)[0].split("?", 1)[0]
    if hostport.startswith("["):  # IPv6 reference
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        return None
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 5060
    return (host, port) if 0 < port < 65536 else None


class Registrar:
    """REGISTER handling, Digest, and each device's liveness (see the module docstring)."""

    def __init__(self, platform: Gb28181Platform) -> None:
        self._platform = platform
        s = platform.settings
        self.digest = DigestServer(s.domain, platform.rng, nonce_ttl=s.nonce_ttl)
        self.last_seen: dict[str, float] = {}  # device -> trio time of its last request
        self._reg_until: dict[str, float] = {}  # device -> trio time its registration expires
        self._reg_call_id: dict[str, str] = {}
        self._generation: dict[str, int] = {}

    def restore(self, now: float) -> None:
        """After a platform restart: each device the registry has online gets a full keepalive window."""
        for device in self._platform.registry.all():
            if device.online:
                self.last_seen[device.device_id] = now
                self._reg_until[device.device_id] = now + device.expires

    def is_registered(self, device_id: str) -> bool:
        """Registered and not timed out (its requests are accepted)."""
        return device_id in self.last_seen

    def touch(self, device_id: str, now: float) -> None:
        """The device sent a request: it is alive."""
        self.last_seen[device_id] = now

    def generation(self, device_id: str) -> int:
        """A counter bumped whenever the device restarts, re-registers after being offline, or goes offline."""
        return self._generation.get(device_id, 0)

    # ---- liveness ------------------------------------------------------------------------------------------------

    def liveness_deadline(self) -> float:
        """When the next device runs out of keepalive window or registration (inf: none registered)."""
        window = self._platform.settings.keepalive_interval * self._platform.settings.keepalive_count
        deadline = math.inf
        for device_id, seen in self.last_seen.items():
            deadline = min(deadline, seen + window, self._reg_until.get(device_id, math.inf))
        return deadline

    def check_liveness(self, now: float) -> None:
        """Take offline every device whose window or registration ran out."""
        window = self._platform.settings.keepalive_interval * self._platform.settings.keepalive_count
        for device_id, seen in list(self.last_seen.items()):
            if now >= seen + window:
                self.set_offline(device_id, "keepalive timeout", now)
            elif now >= self._reg_until.get(device_id, math.inf):
                self.set_offline(device_id, "registration expired", now)

    def set_offline(self, device_id: str, reason: str, now: float) -> None:
        """Forget the registration, stop the device's subscriptions, mark it offline and say so (once)."""
        platform = self._platform
        self.last_seen.pop(device_id, None)
        self._reg_until.pop(device_id, None)
        self._reg_call_id.pop(device_id, None)
        self._generation[device_id] = self._generation.get(device_id, 0) + 1
        platform._subs.stop(device_id)
        device = platform.registry.get(device_id)
        if device is not None and device.online:
            platform.registry.put(attrs.evolve(device, online=False))
            logger.info("gb28181 device %s offline: %s", device_id, reason)
            platform._emit(DeviceOffline(device_id=device_id, time=now, reason=reason))

    # ---- REGISTER ------------------------------------------------------------------------------------------------

    def password_for(self, device_id: str) -> str | None:
        """The device's Digest password (None: registers without Digest)."""
        s = self._platform.settings
        if device_id in s.no_auth_devices:
            return None
        return s.device_passwords.get(device_id, s.password)

    def on_register(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        """Answer a REGISTER and update the registry (online, address, Contact, transport, expiry)."""
        platform = self._platform
        request = event.request
        device_id = user_of(request.to.uri)
        if not _is_device_id(device_id):
            ua.respond(request, 400, now, reason="Bad Device ID")
            return
        password = self.password_for(device_id)
        if password is not None and not self._authenticate(ua, request, device_id, password, now):
            return
        expires = _expires(request)
        if expires == 0:
            ua.respond(request, 200, now, headers=[("Date", gb_date(time.time())), ("Expires", "0")])
            self.set_offline(device_id, "unregistered", now)
            return
        ua.respond(request, 200, now, headers=[("Date", gb_date(time.time())), ("Expires", str(expires))])
        transport = platform._transport.transport_of(ua)
        contact = contact_address(request)
        previous = platform.registry.get(device_id)
        was_online = previous is not None and previous.online and device_id in self.last_seen
        known_call_id = self._reg_call_id.get(device_id)
        moved = previous is not None and (
            previous.contact != contact
            if transport == "TCP" and previous.transport == "TCP"
            else previous.address != event.addr
        )
        restarted = was_online and ((known_call_id is not None and known_call_id != request.call_id) or moved)
        self._reg_call_id[device_id] = request.call_id
        self.last_seen[device_id] = now
        self._reg_until[device_id] = now + expires
        wall = time.time()
        if previous is None:
            record = DeviceRecord(
                device_id=device_id,
                online=True,
                address=event.addr,
                transport=transport,
                contact=contact,
                expires=expires,
                registered_at=wall,
                charset=platform.settings.charsets.get(device_id),
            )
        else:
            record = attrs.evolve(
                previous,
                online=True,
                address=event.addr,
                transport=transport,
                contact=contact,
                expires=expires,
                registered_at=wall,
            )
        platform.registry.put(record)
        if restarted or not was_online:
            self._generation[device_id] = self._generation.get(device_id, 0) + 1
            logger.info("gb28181 device %s online at %s:%d over %s", device_id, *event.addr, transport)
            platform._emit(DeviceOnline(device_id=device_id, time=now, address=event.addr, restarted=restarted))
            platform._device_online(device_id)

    def _authenticate(self, ua: SipUserAgent, request: SipRequest, device_id: str, password: str, now: float) -> bool:
        value = request.headers.get("Authorization")
        if value is None:
            ua.respond(request, 401, now, headers=[("WWW-Authenticate", self.digest.challenge(now))])
            return False
        verdict = self.digest.verify(
            value, method="REGISTER", now=now, lookup=lambda user: password if user == device_id else None
        )
        if verdict is DigestVerdict.OK:
            return True
        if verdict in (DigestVerdict.BAD_PASSWORD, DigestVerdict.UNKNOWN_USER):
            ua.respond(request, 403, now)  # GB/T 28181-2016 §9.1.2.1
            logger.info("gb28181 device %s: registration refused (%s)", device_id, verdict.value)
        else:
            stale = verdict is DigestVerdict.STALE
            ua.respond(request, 401, now, headers=[("WWW-Authenticate", self.digest.challenge(now, stale=stale))])
        return False


def _expires(request: SipRequest) -> int:
    contact = request.contact
    text = contact.param("expires") if contact is not None else None
    if text is None:
        text = request.headers.get("Expires")
    try:
        return max(0, int(text)) if text is not None else 3600
    except ValueError:
        return 3600
