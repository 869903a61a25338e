"""`Gb28181Platform`: fluxkit as the GB/T 28181 platform (SIP server) that cameras and NVRs register to.

Strategy: one sans-IO `SipUserAgent` per SIP transport (UDP and TCP on the same port) does the transactions,
retransmissions and dialogs; this module is the transaction user and the Trio driver around them:

* The UDP socket is drained in batches (wait_readable, then `recvfrom` until `BlockingIOError`); each TCP
  connection has a reader (bytes into `receive_data`) and a writer task fed by a small memory channel, so that
  handing the user agent's output to the network never blocks the code that produced it (`_flush` is sync).
  Replies go to the address a message came from (RFC 3581 rport; NAT-aware), and requests to a device go to the
  address its last request came from, over the transport it registered with.
* REGISTER is authenticated here, not in the user agent, because the password is per device (a per-device
  table, then the global default; `no_auth_devices` and a None password skip Digest): one `DigestServer`
  shared by both transports keeps the nonces with their expiry and rejects replays (verdict REPLAY: a new
  401). A wrong password is 403 (GB/T 28181-2016 §9.1.2.1). The final 200 carries `Date` in the ISO form of
  §9.10 (time sync). `Expires: 0` unregisters.
* One timer task sleeps until the earliest of: the user agents' transaction timers, the multi-part assembler's
  deadline, and the moment a device's keepalives (interval x count, §9.6) or registration run out; anything
  that may move a deadline earlier sets `_wake`.
* Requests the platform sends (Catalog/DeviceInfo/DeviceStatus/RecordInfo queries, DeviceControl, INVITE) wait
  for their final SIP response on a `_Waiter` keyed by (Call-ID, CSeq, method); MANSCDP answers (which come as
  separate MESSAGEs) wait on a `_Waiter` keyed by (CmdType, SN); multi-part Catalog and RecordInfo answers go
  through `ResponseAssembler` (any order, duplicates, deadline).

* Subscriptions (9.11, RFC 6665): after a device comes online the platform SUBSCRIBEs to each event of
  `subscribe_events` (Catalog with a Catalog query body, Alarm with an Alarm query body for priorities 1-4, both
  with `Expires: subscription_expires`) and refreshes each in its dialog at 3/4 of the granted Expires; one task
  per (device, event) runs until the device restarts or goes offline (its generation moves), and the next
  registration starts fresh ones. A refresh the device refuses (481: it forgot the dialog) starts a new
  subscription. NOTIFYs (in those dialogs or not) go the same way as MESSAGEs: a Catalog notify updates the
  registry per item `<Event>` and emits `CatalogUpdated`; Alarm, MobilePosition and MediaStatus bodies emit
  their events whether they came as NOTIFY or MESSAGE.

Live media is `Gb28181Source` (`_media.py`): it asks the platform for a port, an SSRC and an INVITE.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import math
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.net._udp import bind_udp
from fluxkit.protocols.digest import DigestServer, DigestVerdict
from fluxkit.protocols.manscdp import (
    Alarm,
    AssembledResponse,
    CatalogItem,
    CatalogNotify,
    CatalogQuery,
    CatalogResponse,
    DeviceControl,
    DeviceInfoQuery,
    DeviceInfoResponse,
    DeviceStatusQuery,
    DeviceStatusResponse,
    Keepalive,
    ManscdpMessage,
    MediaStatus,
    MobilePosition,
    RecordInfoQuery,
    RecordInfoResponse,
    RecordItem,
    ResponseAssembler,
    UnknownMessage,
    parse_manscdp,
)
from fluxkit.protocols.sip import (
    AckReceived,
    Dialog,
    RequestReceived,
    ResponseReceived,
    SipRequest,
    SipResponse,
    SipUserAgent,
    TransactionTimedOut,
)

from ._events import (
    AlarmReceived,
    CatalogUpdated,
    DeviceOffline,
    DeviceOnline,
    Gb28181Event,
    MediaStatusReceived,
    MobilePositionReceived,
)
from ._ptz import ptz_command
from ._registry import ChannelRecord, DeviceRecord, DeviceRegistry
from ._settings import DeviceNotFoundError, DeviceOfflineError, Gb28181Error, PlatformSettings

if TYPE_CHECKING:
    from fluxkit.engine import VideoEngine

    from ._media import SharedMediaPort

__all__ = ["Gb28181Platform"]

logger = logging.getLogger("fluxkit.gb28181")

Addr = tuple[str, int]
_MAX_SIP_DATAGRAM = 65535
_UDP_BATCH = 256
_TCP_WRITE_QUEUE = 256
_EVENT_QUEUE = 256
_SN_LIMIT = 1 << 31
_MANSCDP = "Application/MANSCDP+xml"


# ---- internals -------------------------------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("event", "provisional", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.provisional = False


def _user_of(uri: str) -> str:
    # sip:34020000001320000001@3402000000 -> 34020000001320000001
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0].split(";", 1)[0]


def _is_device_id(text: str) -> bool:
    return len(text) == 20 and text.isascii() and text.isdigit()


def _granted_expires(response: SipResponse, asked: int) -> int:
    text = response.headers.get("Expires")
    try:
        return max(0, int(text)) if text is not None else asked
    except ValueError:
        return asked


def _gb_date(wall: float) -> str:
    # GB/T 28181-2016 §9.10: `Date: 2024-01-01T12:00:00.000` (local time, ISO style, not RFC 1123).
    local = time.localtime(wall)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{int(wall * 1000) % 1000:03d}"


class Gb28181Platform:
    """The GB28181 platform: SIP server, device registry, queries, PTZ, and the INVITE side of live streams.

    Args:
        engine: the engine that `Gb28181Source` streams publish into (used by callers; kept for them).
        settings: see `PlatformSettings`.
        rng: source of tags, nonces, SSRC serials and SNs.
        registry_path: the SQLite file of the device registry (":memory:" keeps nothing across restarts).

    Use `await nursery.start(platform.serve)`; everything else needs the server running.
    """

    def __init__(
        self,
        engine: VideoEngine | None,
        settings: PlatformSettings,
        *,
        rng: random.Random,
        registry_path: str | Path = ":memory:",
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.registry = DeviceRegistry(registry_path)
        self._rng = rng
        self._digest = DigestServer(settings.domain, rng, nonce_ttl=settings.nonce_ttl)
        self._assembler = ResponseAssembler(deadline=settings.assembly_deadline)
        self.sip_port = settings.sip_port
        self.media_host = settings.media_host or settings.host
        self._udp_ua: SipUserAgent | None = None
        self._tcp_ua: SipUserAgent | None = None
        self._udp_sock: socket.socket | None = None
        self._tcp_out: dict[Addr, trio.MemorySendChannel[bytes]] = {}
        self._pending: dict[tuple[str, int, str], _Waiter] = {}
        self._answers: dict[tuple[str, int], _Waiter] = {}
        self._sn = rng.randrange(1, 1 << 16)
        self._ssrc_serial = rng.randrange(10000)
        self._ssrcs_in_use: set[int] = set()
        self._next_port = settings.media_port_range[0]
        self._last_seen: dict[str, float] = {}  # device -> trio time of its last request
        self._reg_until: dict[str, float] = {}  # device -> trio time its registration expires
        self._reg_call_id: dict[str, str] = {}
        self._generation: dict[str, int] = {}  # bumped at every restart/offline: live sessions watch it
        self._dialog_watch: dict[tuple[str, str, str], trio.Event] = {}  # media dialog -> set on the device's BYE
        self._end_of_file: dict[str, set[trio.Event]] = {}  # device -> playback sessions waiting for MediaStatus 121
        self._subscriptions: dict[tuple[str, str], tuple[Dialog, float]] = {}  # (device, event) -> dialog, expiry
        self._sub_scopes: dict[str, set[trio.CancelScope]] = {}  # device -> its subscription tasks
        self._listeners: list[trio.MemorySendChannel[Gb28181Event]] = []
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.shared_media: SharedMediaPort | None = None
        self.malformed = 0

    # ---- public API ----------------------------------------------------------------------------------------------

    def devices(self) -> list[DeviceRecord]:
        """Every known device with its channels (for the REST layer)."""
        return self.registry.all()

    def device(self, device_id: str) -> DeviceRecord | None:
        """One device, or None."""
        return self.registry.get(device_id)

    def events(self, *, buffer_size: int = _EVENT_QUEUE) -> trio.MemoryReceiveChannel[Gb28181Event]:
        """A channel of platform events from now on (a slow reader loses events rather than blocking the server)."""
        send, receive = trio.open_memory_channel[Gb28181Event](buffer_size)
        self._listeners.append(send)
        return receive

    async def ptz(
        self,
        device_id: str,
        channel_id: str,
        command: str,
        speed: int = 128,
        preset: int | None = None,
        *,
        group: int | None = None,
        switch: int | None = None,
        value: int | None = None,
    ) -> int:
        """Send a PTZ command (DeviceControl/PTZCmd, A.3) to a channel; returns the SIP status (408 on timeout).

        `command` and the parameters are those of `ptz_command` (moves, presets, cruise, scan, aux switches).

        Raises:
            LocalProtocolError: unknown command name, or a bad or missing parameter.
            DeviceNotFoundError, DeviceOfflineError: the device cannot be reached.
        """
        cmd = ptz_command(command, speed=speed, preset=preset, group=group, switch=switch, value=value)
        device = self._online_device(device_id)
        body = DeviceControl.ptz(sn=self._next_sn(), device_id=channel_id, command=cmd).encode(self._charset(device))
        response = await self._message(device, channel_id, body)
        return 408 if response is None else response.status_code

    async def query_catalog(self, device_id: str) -> tuple[ChannelRecord, ...]:
        """Ask for the catalog and wait for all its parts (or the assembly deadline); returns the channels.

        Raises:
            DeviceNotFoundError, DeviceOfflineError; Gb28181Error when the device refuses or never answers.
        """
        device = self._online_device(device_id)
        sn = self._next_sn()
        result = await self._query(device, device.device_id, CatalogQuery(sn=sn, device_id=device_id), "Catalog")
        assert isinstance(result, AssembledResponse)
        return self._catalog_records(result.items)

    async def query_device_info(self, device_id: str) -> DeviceInfoResponse:
        """DeviceInfo query (A.2.4.5); the manufacturer, model and firmware are stored in the registry."""
        device = self._online_device(device_id)
        answer = await self._query(device, device_id, DeviceInfoQuery(sn=self._next_sn(), device_id=device_id))
        assert isinstance(answer, DeviceInfoResponse)
        current = self.registry.get(device_id)
        if current is not None:
            self.registry.put(
                attrs.evolve(
                    current,
                    name=answer.device_name,
                    manufacturer=answer.manufacturer,
                    model=answer.model,
                    firmware=answer.firmware,
                )
            )
        return answer

    async def query_device_status(self, device_id: str) -> DeviceStatusResponse:
        """DeviceStatus query (A.2.4.6)."""
        device = self._online_device(device_id)
        answer = await self._query(device, device_id, DeviceStatusQuery(sn=self._next_sn(), device_id=device_id))
        assert isinstance(answer, DeviceStatusResponse)
        return answer

    async def query_records(
        self, device_id: str, channel_id: str, start_time: str, end_time: str
    ) -> tuple[RecordItem, ...]:
        """RecordInfo query (A.2.4.7) for a channel between two local ISO times ("2024-01-01T00:00:00");
        multi-part answers are assembled. Returns the records (partial after the assembly deadline)."""
        device = self._online_device(device_id)
        query = RecordInfoQuery(sn=self._next_sn(), device_id=channel_id, start_time=start_time, end_time=end_time)
        result = await self._query(device, channel_id, query, "RecordInfo")
        assert isinstance(result, AssembledResponse)
        return tuple(item for item in result.items if isinstance(item, RecordItem))

    # ---- serving -----------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[Gb28181Platform] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the SIP server (UDP and TCP on `sip_port`) until cancelled; `started` gives the platform."""
        sock, listeners = await self._bind()
        s = self.settings
        now = trio.current_time()
        for device in self.registry.all():
            if device.online:
                # A restarted platform gives each device a full keepalive window before calling it offline.
                self._last_seen[device.device_id] = now
                self._reg_until[device.device_id] = now + device.expires
        self.sip_port = sock.getsockname()[1]
        self._udp_sock = sock
        self._udp_ua = SipUserAgent(
            user=s.server_id, host=s.host, port=self.sip_port, rng=self._rng, domain=s.domain, transport="UDP"
        )
        self._tcp_ua = SipUserAgent(
            user=s.server_id, host=s.host, port=self.sip_port, rng=self._rng, domain=s.domain, transport="TCP"
        )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if s.shared_media_port is not None:
                    from ._media import SharedMediaPort

                    self.shared_media = SharedMediaPort(bind_udp(self.media_host, s.shared_media_port))
                    nursery.start_soon(self.shared_media.run)
                nursery.start_soon(self._udp_loop, sock)
                nursery.start_soon(trio.serve_listeners, self._tcp_connection, listeners)
                nursery.start_soon(self._timer_loop)
                logger.info("gb28181 platform %s listening on %s:%d (UDP+TCP)", s.server_id, s.host, self.sip_port)
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            trio.lowlevel.notify_closing(sock)
            sock.close()
            if self.shared_media is not None:
                self.shared_media.close()
            for send in self._listeners:
                send.close()

    def close(self) -> None:
        """Close the registry database (after `serve` ended)."""
        self.registry.close()

    async def _bind(self) -> tuple[socket.socket, list[trio.SocketListener]]:
        s = self.settings
        for _ in range(32):
            sock = bind_udp(s.host, s.sip_port)
            port = sock.getsockname()[1]
            try:
                listeners = await trio.open_tcp_listeners(port, host=s.host)
            except OSError as exc:
                sock.close()
                if s.sip_port == 0 and exc.errno == errno.EADDRINUSE:
                    continue  # the ephemeral UDP port is taken on TCP: try another
                raise
            return sock, listeners
        raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")

    async def _udp_loop(self, sock: socket.socket) -> None:
        ua = self._udp_ua
        assert ua is not None
        recvfrom = sock.recvfrom
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            for _ in range(_UDP_BATCH):
                try:
                    data, addr = recvfrom(_MAX_SIP_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError:
                    continue  # ICMP errors from an earlier send: the socket stays usable
                ua.receive_datagram(data, (addr[0], addr[1]), now)
            self._process(ua, now)

    async def _tcp_connection(self, stream: trio.SocketStream) -> None:
        ua = self._tcp_ua
        assert ua is not None
        peer = stream.socket.getpeername()
        addr: Addr = (peer[0], peer[1])
        send, receive = trio.open_memory_channel[bytes](_TCP_WRITE_QUEUE)
        self._tcp_out[addr] = send
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tcp_writer, stream, receive)
                try:
                    while True:
                        data = await stream.receive_some(65536)
                        now = trio.current_time()
                        try:
                            ua.receive_data(data, addr, now)
                        finally:
                            self._process(ua, now)
                        if not data:
                            break
                except RemoteProtocolError as exc:
                    # A stream that cannot be framed any more: drop the connection, keep serving.
                    self.malformed += 1
                    logger.info("gb28181: closing the SIP/TCP connection from %s:%d: %s", *addr, exc)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()
        finally:
            if self._tcp_out.get(addr) is send:
                del self._tcp_out[addr]
            ua.connection_lost(addr)
            self._process(ua, trio.current_time())
            with trio.CancelScope(shield=True):
                await stream.aclose()

    @staticmethod
    async def _tcp_writer(stream: trio.SocketStream, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        try:
            async for data in receive:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _timer_loop(self) -> None:
        while True:
            deadlines = [self._liveness_deadline()]
            for ua in (self._udp_ua, self._tcp_ua):
                if ua is not None and (t := ua.get_timer()) is not None:
                    deadlines.append(t)
            if (t := self._assembler.get_timer()) is not None:
                deadlines.append(t)
            with trio.move_on_at(min(deadlines)):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            for ua in (self._udp_ua, self._tcp_ua):
                if ua is not None and (t := ua.get_timer()) is not None and t <= now:
                    ua.handle_timer(now)
                    self._process(ua, now)
            if (t := self._assembler.get_timer()) is not None and t <= now:
                for result in self._assembler.handle_timer(now):
                    self._on_assembled(result, now)
            self._check_liveness(now)

    def _liveness_deadline(self) -> float:
        window = self.settings.keepalive_interval * self.settings.keepalive_count
        deadline = math.inf
        for device_id, seen in self._last_seen.items():
            deadline = min(deadline, seen + window, self._reg_until.get(device_id, math.inf))
        return deadline

    def _check_liveness(self, now: float) -> None:
        window = self.settings.keepalive_interval * self.settings.keepalive_count
        for device_id, seen in list(self._last_seen.items()):
            if now >= seen + window:
                self._set_offline(device_id, "keepalive timeout", now)
            elif now >= self._reg_until.get(device_id, math.inf):
                self._set_offline(device_id, "registration expired", now)

    def _set_offline(self, device_id: str, reason: str, now: float) -> None:
        self._last_seen.pop(device_id, None)
        self._reg_until.pop(device_id, None)
        self._reg_call_id.pop(device_id, None)
        self._generation[device_id] = self._generation.get(device_id, 0) + 1
        self._stop_subscriptions(device_id)
        device = self.registry.get(device_id)
        if device is not None and device.online:
            self.registry.put(attrs.evolve(device, online=False))
            logger.info("gb28181 device %s offline: %s", device_id, reason)
            self._emit(DeviceOffline(device_id=device_id, time=now, reason=reason))

    def _emit(self, event: Gb28181Event) -> None:
        for send in list(self._listeners):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                pass  # a slow listener loses events; the server never waits for it
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._listeners.remove(send)

    # ---- the SIP user agents' output and events --------------------------------------------------------------

    def _flush(self, ua: SipUserAgent) -> None:
        out = ua.datagrams_to_send()
        if not out:
            return
        if ua is self._udp_ua:
            sock = self._udp_sock
            assert sock is not None
            for data, addr in out:
                # A full buffer or an unreachable peer: UDP retransmissions cover it.
                with contextlib.suppress(OSError):
                    sock.sendto(data, addr)
        else:
            for data, addr in out:
                channel = self._tcp_out.get(addr)
                if channel is None:
                    continue  # the connection is gone; the transaction will time out
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                    channel.send_nowait(data)
        self._wake.set()

    def _process(self, ua: SipUserAgent, now: float) -> None:
        while (event := ua.next_event()) is not None:
            try:
                if isinstance(event, RequestReceived):
                    self._on_request(ua, event, now)
                elif isinstance(event, ResponseReceived):
                    self._on_response(event)
                elif isinstance(event, TransactionTimedOut):
                    if event.client:
                        self._resolve(event.request, None)
                elif isinstance(event, AckReceived):
                    pass
            except ProtocolError as exc:
                # A message whose headers the TU needs are unreadable: drop it, keep serving.
                self.malformed += 1
                logger.debug("gb28181: dropped a malformed message: %s", exc)
        self._flush(ua)

    def _resolve(self, request: SipRequest, value: ResponseReceived | None) -> None:
        waiter = self._pending.get((request.call_id, request.cseq.seq, request.method))
        if waiter is not None and not waiter.event.is_set():
            waiter.value = value
            waiter.event.set()

    def _on_response(self, event: ResponseReceived) -> None:
        if event.response.status_code < 200:
            waiter = self._pending.get((event.request.call_id, event.request.cseq.seq, event.request.method))
            if waiter is not None:
                waiter.provisional = True
            return
        self._resolve(event.request, event)

    def _on_request(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        request = event.request
        method = request.method
        if method == "REGISTER":
            self._on_register(ua, event, now)
        elif method in ("MESSAGE", "NOTIFY"):
            state = request.headers.get("Subscription-State") or ""
            if method == "NOTIFY" and event.dialog is not None and state.lower().startswith("terminated"):
                self._end_subscription(event.dialog)
            self._on_message(ua, event, now)
        elif method == "BYE":
            ua.respond(request, 200, now)
            if event.dialog is not None:
                watch = self._dialog_watch.get(event.dialog.id)
                if watch is not None:
                    watch.set()
        elif method in ("OPTIONS", "INFO"):
            ua.respond(request, 200, now)
        elif method == "INVITE":
            ua.respond(request, 603, now)  # talk/cascade INVITEs from devices are not served
        else:
            ua.respond(request, 405, now, headers=[("Allow", "REGISTER, MESSAGE, NOTIFY, BYE, OPTIONS, INFO")])

    # ---- registration ------------------------------------------------------------------------------------------

    def _password_for(self, device_id: str) -> str | None:
        s = self.settings
        if device_id in s.no_auth_devices:
            return None
        return s.device_passwords.get(device_id, s.password)

    def _on_register(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        request = event.request
        device_id = _user_of(request.to.uri)
        if not _is_device_id(device_id):
            ua.respond(request, 400, now, reason="Bad Device ID")
            return
        password = self._password_for(device_id)
        if password is not None and not self._authenticate(ua, request, device_id, password, now):
            return
        expires = self._expires(request)
        if expires == 0:
            ua.respond(request, 200, now, headers=[("Date", _gb_date(time.time())), ("Expires", "0")])
            self._set_offline(device_id, "unregistered", now)
            return
        ua.respond(request, 200, now, headers=[("Date", _gb_date(time.time())), ("Expires", str(expires))])
        previous = self.registry.get(device_id)
        was_online = previous is not None and previous.online and device_id in self._last_seen
        known_call_id = self._reg_call_id.get(device_id)
        restarted = (
            was_online
            and previous is not None
            and ((known_call_id is not None and known_call_id != request.call_id) or previous.address != event.addr)
        )
        self._reg_call_id[device_id] = request.call_id
        self._last_seen[device_id] = now
        self._reg_until[device_id] = now + expires
        transport = "UDP" if ua is self._udp_ua else "TCP"
        wall = time.time()
        if previous is None:
            record = DeviceRecord(
                device_id=device_id,
                online=True,
                address=event.addr,
                transport=transport,
                expires=expires,
                registered_at=wall,
                charset=self.settings.charsets.get(device_id),
            )
        else:
            record = attrs.evolve(
                previous, online=True, address=event.addr, transport=transport, expires=expires, registered_at=wall
            )
        self.registry.put(record)
        if restarted or not was_online:
            self._generation[device_id] = self._generation.get(device_id, 0) + 1
            logger.info("gb28181 device %s online at %s:%d over %s", device_id, *event.addr, transport)
            self._emit(DeviceOnline(device_id=device_id, time=now, address=event.addr, restarted=restarted))
            if self.settings.catalog_on_register and self._nursery is not None:
                self._nursery.start_soon(self._catalog_after_register, device_id)
            self._stop_subscriptions(device_id)
            if self._nursery is not None:
                for name in self.settings.subscribe_events:
                    self._nursery.start_soon(self._keep_subscribed, device_id, name)

    def _authenticate(self, ua: SipUserAgent, request: SipRequest, device_id: str, password: str, now: float) -> bool:
        value = request.headers.get("Authorization")
        if value is None:
            ua.respond(request, 401, now, headers=[("WWW-Authenticate", self._digest.challenge(now))])
            return False
        verdict = self._digest.verify(
            value, method="REGISTER", now=now, lookup=lambda user: password if user == device_id else None
        )
        if verdict is DigestVerdict.OK:
            return True
        if verdict in (DigestVerdict.BAD_PASSWORD, DigestVerdict.UNKNOWN_USER):
            ua.respond(request, 403, now)  # GB/T 28181-2016 §9.1.2.1
            logger.info("gb28181 device %s: registration refused (%s)", device_id, verdict.value)
        else:
            stale = verdict is DigestVerdict.STALE
            ua.respond(request, 401, now, headers=[("WWW-Authenticate", self._digest.challenge(now, stale=stale))])
        return False

    @staticmethod
    def _expires(request: SipRequest) -> int:
        contact = request.contact
        text = contact.param("expires") if contact is not None else None
        if text is None:
            text = request.headers.get("Expires")
        try:
            return max(0, int(text)) if text is not None else 3600
        except ValueError:
            return 3600

    async def _catalog_after_register(self, device_id: str) -> None:
        try:
            await self.query_catalog(device_id)
        except Gb28181Error as exc:
            logger.info("gb28181 device %s: catalog query failed: %s", device_id, exc)

    # ---- subscriptions (9.11) ----------------------------------------------------------------------------------

    def subscriptions(self, device_id: str) -> dict[str, float]:
        """The device's active subscriptions: event name -> `trio.current_time()` at which it expires."""
        return {name: until for (dev, name), (_, until) in self._subscriptions.items() if dev == device_id}

    def _stop_subscriptions(self, device_id: str) -> None:
        for scope in self._sub_scopes.pop(device_id, ()):
            scope.cancel()
        for key in [k for k in self._subscriptions if k[0] == device_id]:
            del self._subscriptions[key]

    def _end_subscription(self, dialog: Dialog) -> None:
        """The device ended a subscription (NOTIFY with `Subscription-State: terminated`)."""
        for key, (known, _) in list(self._subscriptions.items()):
            if known.id == dialog.id:
                del self._subscriptions[key]

    def _subscription_body(self, device: DeviceRecord, name: str) -> bytes:
        sn = self._next_sn()
        query: ManscdpMessage
        if name == "Catalog":
            query = CatalogQuery(sn=sn, device_id=device.device_id)
        elif name == "Alarm":
            # A.2.4.6: every priority (1 highest .. 4) and every method (0 = all).
            extra = (("StartAlarmPriority", "1"), ("EndAlarmPriority", "4"), ("AlarmMethod", "0"))
            query = UnknownMessage(root="Query", cmd_type="Alarm", sn=sn, device_id=device.device_id, extra=extra)
        else:
            query = UnknownMessage(root="Query", cmd_type=name, sn=sn, device_id=device.device_id)
        return query.encode(self._charset(device))

    def _build_subscribe(
        self, ua: SipUserAgent, now: float, *, device: DeviceRecord, name: str, dialog: Dialog | None, body: bytes
    ) -> SipRequest:
        asked = self.settings.subscription_expires
        if dialog is None:
            target = self._target(device.device_id, device)
            return ua.subscribe(
                target, device.address, now, event=name, expires=asked, body=body, content_type=_MANSCDP
            )
        headers = [("Event", name), ("Expires", str(asked))]  # a refresh in the dialog (RFC 6665 §4.1.2.2)
        return ua.send_in_dialog(dialog, "SUBSCRIBE", now, headers=headers, body=body, content_type=_MANSCDP)

    async def _keep_subscribed(self, device_id: str, name: str) -> None:
        """Subscribe to `name` and refresh until the device's generation moves (restart, offline)."""
        generation = self.generation(device_id)
        key = (device_id, name)
        self._subscriptions.pop(key, None)  # a dialog from before a restart is gone on the device side
        asked = self.settings.subscription_expires
        scope = trio.CancelScope()
        self._sub_scopes.setdefault(device_id, set()).add(scope)
        try:
            with scope:
                await self._subscribe_loop(device_id, name, generation, asked)
        finally:
            scopes = self._sub_scopes.get(device_id)
            if scopes is not None:
                scopes.discard(scope)
                if not scopes and self._sub_scopes.get(device_id) is scopes:
                    del self._sub_scopes[device_id]

    async def _subscribe_loop(self, device_id: str, name: str, generation: int, asked: int) -> None:
        key = (device_id, name)
        try:
            while self.generation(device_id) == generation:
                device = self.registry.get(device_id)
                if device is None or not device.online:
                    return
                body = self._subscription_body(device, name)
                current = self._subscriptions.get(key)
                ua = self._ua_for(device)
                if current is not None and current[0] not in ua.dialogs:
                    current = None

                dialog = None if current is None else current[0]
                build = functools.partial(self._build_subscribe, device=device, name=name, dialog=dialog, body=body)
                event = await self._request(device, build, self.settings.request_timeout)
                if self.generation(device_id) != generation:
                    return
                if event is None or not 200 <= event.response.status_code < 300:
                    status = "no answer" if event is None else event.response.status_code
                    logger.info("gb28181 device %s: %s subscription refused: %s", device_id, name, status)
                    self._subscriptions.pop(key, None)  # 481 and friends: start a new subscription next time
                    if event is not None and event.response.status_code in (405, 489, 501):
                        return  # the device does not do this event (RFC 6665 §8.3.1 489 Bad Event)
                    await trio.sleep(self.settings.request_timeout)
                    continue
                granted = _granted_expires(event.response, asked)
                dialog = event.dialog if event.dialog is not None else dialog
                if dialog is None or granted <= 0:
                    self._subscriptions.pop(key, None)
                    logger.info("gb28181 device %s: %s subscription not kept (Expires %d)", device_id, name, granted)
                    return
                self._subscriptions[key] = (dialog, trio.current_time() + granted)
                await trio.sleep(granted * 0.75)  # refresh well before expiry (RFC 6665 §4.1.2.2)
        except Gb28181Error as exc:
            logger.info("gb28181 device %s: %s subscription stopped: %s", device_id, name, exc)

    # ---- MANSCDP -----------------------------------------------------------------------------------------------

    def _on_message(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        request = event.request
        device_id = _user_of(request.from_.uri)
        device = self.registry.get(device_id)
        if device is None:
            ua.respond(request, 404, now, reason="Device Not Registered")
            return
        if device_id not in self._last_seen:
            ua.respond(request, 403, now, reason="Not Registered")  # makes a device that lost its registration REGISTER
            return
        try:
            message = parse_manscdp(request.body, charset=self.settings.charsets.get(device_id))
        except ProtocolError:
            self.malformed += 1
            ua.respond(request, 400, now)
            return
        ua.respond(request, 200, now)  # first, so that the next part of a multi-part answer can come (Appendix N)
        self._last_seen[device_id] = now
        changes: dict[str, Any] = {}
        if event.addr != device.address:
            changes["address"] = event.addr  # NAT rebinding: the device's requests now come from here
        if message.charset and message.charset != device.charset and device_id not in self.settings.charsets:
            changes["charset"] = message.charset
        if isinstance(message, Keepalive):
            changes["last_keepalive"] = time.time()
        if changes:
            # Keepalive times alone are kept in memory; they reach the disk with the next real change.
            self.registry.put(attrs.evolve(device, **changes), persist=set(changes) != {"last_keepalive"})
        self._on_manscdp(device_id, message, now)

    def _on_manscdp(self, device_id: str, message: ManscdpMessage, now: float) -> None:
        if isinstance(message, CatalogNotify):
            self._apply_notify(device_id, message, now)
        elif isinstance(message, CatalogResponse | RecordInfoResponse):
            try:
                result = self._assembler.feed(message, now)
            except ProtocolError:
                self.malformed += 1
                return
            self._wake.set()
            if result is not None:
                self._on_assembled(result, now)
        elif isinstance(message, DeviceInfoResponse | DeviceStatusResponse):
            waiter = self._answers.get((message.command_type, message.sn))
            if waiter is not None and not waiter.event.is_set():
                waiter.value = message
                waiter.event.set()
        elif isinstance(message, Alarm):
            self._emit(AlarmReceived(device_id=device_id, time=now, alarm=message))
        elif isinstance(message, MobilePosition):
            self._emit(MobilePositionReceived(device_id=device_id, time=now, position=message))
        elif isinstance(message, MediaStatus):
            if message.end_of_file:
                for watch in self._end_of_file.get(device_id, ()):
                    watch.set()
            self._emit(MediaStatusReceived(device_id=device_id, time=now, status=message))

    def _on_assembled(self, result: AssembledResponse, now: float) -> None:
        waiter = self._answers.get((result.cmd_type, result.sn))
        if result.cmd_type == "Catalog":
            device_id = result.device_id
            channels = self._catalog_records(result.items)
            if self.registry.get(device_id) is not None:
                self.registry.set_channels(device_id, channels)
                self._emit(CatalogUpdated(device_id=device_id, time=now, channels=channels, complete=result.complete))
        if waiter is not None and not waiter.event.is_set():
            waiter.value = result
            waiter.event.set()

    def _apply_notify(self, device_id: str, notify: CatalogNotify, now: float) -> None:
        device = self.registry.get(device_id)
        if device is None:
            return
        channels = {c.channel_id: c for c in device.channels}
        for item in notify.items:
            if (item.event or "").upper() == "DEL":
                channels.pop(item.device_id, None)
            elif (item.event or "").upper() in ("ON", "OFF") and item.device_id in channels:
                channels[item.device_id] = attrs.evolve(channels[item.device_id], status=item.event)
            else:
                channels[item.device_id] = self._catalog_records((item,))[0]
        records = tuple(channels.values())
        self.registry.set_channels(device_id, records)
        self._emit(CatalogUpdated(device_id=device_id, time=now, channels=records))

    @staticmethod
    def _catalog_records(items: tuple[CatalogItem | RecordItem, ...]) -> tuple[ChannelRecord, ...]:
        out = []
        for item in items:
            if not isinstance(item, CatalogItem):
                continue
            out.append(
                ChannelRecord(
                    channel_id=item.device_id,
                    name=item.name,
                    status=item.status,
                    manufacturer=item.manufacturer,
                    model=item.model,
                    parent_id=item.parent_id,
                    ptz_type=item.ptz_type,
                )
            )
        return tuple(out)

    # ---- requests to devices -----------------------------------------------------------------------------------

    def _next_sn(self) -> int:
        self._sn = self._sn % (_SN_LIMIT - 1) + 1
        return self._sn

    def _charset(self, device: DeviceRecord) -> str:
        return self.settings.charsets.get(device.device_id) or (
            "UTF-8" if (device.charset or "").replace("-", "").upper() == "UTF8" else "GB2312"
        )

    def _online_device(self, device_id: str) -> DeviceRecord:
        device = self.registry.get(device_id)
        if device is None:
            raise DeviceNotFoundError(f"no GB28181 device {device_id}")
        if not device.online:
            raise DeviceOfflineError(f"GB28181 device {device_id} is offline")
        return device

    def _ua_for(self, device: DeviceRecord) -> SipUserAgent:
        ua = self._tcp_ua if device.transport == "TCP" else self._udp_ua
        if ua is None:
            raise Gb28181Error("the GB28181 platform is not serving")
        return ua

    def _target(self, target_id: str, device: DeviceRecord) -> str:
        return f"sip:{target_id}@{device.device_id[:10]}"

    async def _request(
        self,
        device: DeviceRecord,
        build: Callable[[SipUserAgent, float], SipRequest],
        wait: float,
    ) -> ResponseReceived | None:
        """Send a request built by `build(ua, now)` and wait for its final response (None: timed out)."""
        ua = self._ua_for(device)
        request = build(ua, trio.current_time())
        key = (request.call_id, request.cseq.seq, request.method)
        waiter = self._pending[key] = _Waiter()
        self._flush(ua)
        try:
            with trio.move_on_after(wait):
                await waiter.event.wait()
        finally:
            self._pending.pop(key, None)
        value: ResponseReceived | None = waiter.value
        return value

    async def _message(self, device: DeviceRecord, target_id: str, body: bytes) -> SipResponse | None:
        event = await self._request(
            device,
            lambda ua, now: ua.message(self._target(target_id, device), device.address, now, body),
            self.settings.request_timeout,
        )
        return None if event is None else event.response

    async def _query(
        self, device: DeviceRecord, target_id: str, query: ManscdpMessage, cmd_type: str | None = None
    ) -> Any:
        key = (cmd_type or query.command_type, query.sn)
        waiter = self._answers[key] = _Waiter()
        try:
            with trio.move_on_after(self.settings.request_timeout + self.settings.assembly_deadline):
                response = await self._message(device, target_id, query.encode(self._charset(device)))
                if response is None or not 200 <= response.status_code < 300:
                    status = "no answer" if response is None else response.status_code
                    raise Gb28181Error(f"{key[0]} query to {device.device_id} refused: {status}")
                await waiter.event.wait()
        finally:
            del self._answers[key]
        if waiter.value is None:
            raise Gb28181Error(f"{key[0]} query to {device.device_id}: no answer")
        return waiter.value

    # ---- media sessions (used by Gb28181Source) --------------------------------------------------------------

    def generation(self, device_id: str) -> int:
        """A counter bumped whenever the device restarts, re-registers after being offline, or goes offline."""
        return self._generation.get(device_id, 0)

    def new_ssrc(self, *, live: bool = True) -> str:
        """A fresh 10-digit SSRC (Appendix F): digit 1 is 0 live / 1 history, digits 2-6 are digits 4-8 of the
        platform's 20-digit ID (its domain), digits 7-10 a serial unique within the platform."""
        prefix = ("0" if live else "1") + self.settings.server_id[3:8]
        for _ in range(10000):
            self._ssrc_serial = (self._ssrc_serial + 1) % 10000
            text = f"{prefix}{self._ssrc_serial:04d}"
            if int(text) not in self._ssrcs_in_use:
                self._ssrcs_in_use.add(int(text))
                return text
        raise Gb28181Error("no free SSRC: 10000 media sessions in use")

    def release_ssrc(self, ssrc: str) -> None:
        """Give an SSRC from `new_ssrc` back."""
        self._ssrcs_in_use.discard(int(ssrc))

    def next_media_port(self) -> int:
        """The next port of the pool to try (round robin over `media_port_range`)."""
        low, high = self.settings.media_port_range
        port = self._next_port
        self._next_port = low if port >= high else port + 1
        return port

    def media_port_count(self) -> int:
        """How many ports the pool has."""
        low, high = self.settings.media_port_range
        return high - low + 1

    async def invite(
        self, device_id: str, channel_id: str, sdp: bytes, ssrc: str
    ) -> tuple[SipResponse, Dialog | None, trio.Event]:
        """Send an INVITE for a channel with an SDP offer and wait for the final response.

        Returns the response, the dialog (2xx only; the ACK went out already) and an event set when the device
        sends BYE in that dialog.

        Raises:
            DeviceNotFoundError, DeviceOfflineError; Gb28181Error on timeout (100 Trying alone included).
        """
        device = self._online_device(device_id)
        # Subject (9.2.2.1): media sender id:SSRC, receiver id:0; playback uses the history SSRC the same way.
        subject = f"{channel_id}:{ssrc},{self.settings.server_id}:0"
        event = await self._request(
            device,
            lambda ua, now: ua.invite(
                self._target(channel_id, device),
                device.address,
                now,
                body=sdp,
                headers=[("Subject", subject)],
            ),
            self.settings.invite_timeout,
        )
        if event is None:
            raise Gb28181Error(f"INVITE to {device_id}/{channel_id}: no final response")
        watch = trio.Event()
        if event.dialog is not None:
            self._dialog_watch[event.dialog.id] = watch
        return event.response, event.dialog, watch

    def watch_end_of_file(self, device_id: str, event: trio.Event, *, add: bool = True) -> None:
        """Have `event` set when the device reports MediaStatus 121 (end of a playback or download)."""
        watchers = self._end_of_file.setdefault(device_id, set())
        if add:
            watchers.add(event)
        else:
            watchers.discard(event)
            if not watchers:
                del self._end_of_file[device_id]

    async def info(self, device_id: str, dialog: Dialog, body: bytes) -> int:
        """Send a MANSRTSP INFO (Appendix B) in a playback dialog; returns the SIP status (408: no answer)."""
        device = self._online_device(device_id)
        event = await self._request(device, lambda ua, now: ua.info(dialog, now, body), self.settings.request_timeout)
        return 408 if event is None else event.response.status_code

    def bye(self, device_id: str, dialog: Dialog) -> None:
        """End a media session (the BYE is retransmitted by the transaction layer; no need to wait)."""
        self._dialog_watch.pop(dialog.id, None)
        device = self.registry.get(device_id)
        ua = self._tcp_ua if device is not None and device.transport == "TCP" else self._udp_ua
        if ua is None or dialog not in ua.dialogs:
            return
        try:
            ua.bye(dialog, trio.current_time())
        except LocalProtocolError:
            return
        self._flush(ua)
