"""`SimulatedDevice`: a GB28181 IPC or NVR in one Trio task, on the sans-IO `SipUserAgent`.

Strategy: one "boot" at a time. A boot opens the SIP transport (a UDP socket, or a TCP connection to the
platform), makes a fresh `SipUserAgent` and runs three tasks in a nursery: the receiver (bytes -> user agent ->
events -> handlers -> outbox), the timer (sleeps until `get_timer()` or until a new transaction pokes it) and
the registration loop (REGISTER with Digest; refresh at 3/4 of the granted Expires; back off on failure), plus
the keepalive loop (GB/T 28181-2016 9.6; unanswered keepalives trigger a new registration). Requests are answered
from the event handlers; anything that must wait (multi-part answers sent serially, Appendix N; an INVITE
answered after its media socket is bound) runs as a task in the boot's nursery. Ending a boot ends every stream
without a BYE, which is exactly what a device reboot looks like to the platform: the `restart` quirk and
`restart()` use it; a lost TCP connection ends a boot too, and the device reconnects with back-off. Over TCP
the device also listens on its SIP port, so that the platform can open a connection to it when the device's own
is gone (`drop_connection()` closes it on purpose, staying registered).

The handlers:
* MESSAGE (MANSCDP): Catalog, RecordInfo (pages of `catalog_page_size` items with SumNum, each sent after the
  200 of the previous one), DeviceInfo, DeviceStatus, DeviceControl (PTZCmd applied to a `PtzHead` and logged;
  only a SIP 200, 9.3.1; record/guard commands get a `<Result>OK`, 9.3.2). Others get a 200 and are ignored.
* INVITE (Play, Playback, Download): a `MediaSession` is prepared, answered with the GB28181 SDP answer
  (y= as offered), and started by the ACK; BYE stops it; INFO with MANSRTSP controls a playback; a playback
  that reaches its end sends MediaStatus 121.
* SUBSCRIBE (9.11, RFC 6665) to Catalog, Alarm or MobilePosition: answered 200 with the Expires granted (as
  asked), which creates the subscription dialog; a Catalog subscription gets an immediate NOTIFY with the whole
  catalog (paged like the Catalog answer, serially), `Expires: 0` ends a subscription with a final NOTIFY
  (`terminated`), other events get 489 Bad Event. `raise_alarm`, `set_channel_status` and `report_position` send
  their Notify body as a NOTIFY in the live subscription dialog of that event, or as a MESSAGE when there is
  none (or it expired); subscriptions belong to a boot, so a reboot forgets them, as a real device does.
* Filtering (`_filters.py`): RecordInfo answers only the records the query's window, Type, Secrecy, FilePath,
  Address and RecorderID ask for; a subscription's query body narrows what it is sent (Alarm: priorities,
  methods, type, time window, channel; Catalog: one channel, a time window for changes), and an event the live
  subscription does not ask for is withheld (`withheld`), not sent as a MESSAGE instead. An Alarm query
  (MESSAGE `<Query><CmdType>Alarm`) is answered with the matching alarms raised so far (`alarm_log`), each as an
  Alarm notify MESSAGE carrying the query's SN, serially (the standard defines no list answer for it).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from fluxkit.errors import FluxkitError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.manscdp import (
    Alarm,
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
    MansrtspRequest,
    MansrtspResponse,
    MediaStatus,
    MobilePosition,
    PtzCommand,
    RecordInfoQuery,
    RecordInfoResponse,
    RecordItem,
    ResultResponse,
    UnknownMessage,
    parse_manscdp,
    parse_mansrtsp,
)
from fluxkit.protocols.sdp import MediaFormat, build_gb28181_answer, parse_sdp
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
from fluxkit.sim import LoadedClip, generate_demo_clip, load_clip

from ._filters import AlarmFilter, CatalogFilter, local_when, records_matching
from ._media import MediaSession, MediaTransport
from ._ptz import PtzHead, PtzLogEntry, PtzPosition
from ._settings import DeviceSettings

__all__ = ["SimulatedDevice"]

logger = logging.getLogger("fluxkit.gb28181.device")

_MANSCDP = "Application/MANSCDP+xml"
_Addr = tuple[str, int]
_INBOX = 64  # chunks read from TCP connections and not yet handled


class _Waiter:
    __slots__ = ("done", "response")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.response: SipResponse | None = None


class _Transport:
    """The SIP transport of one boot: UDP datagrams, or TCP connections.

    Over TCP the device connects to the platform (its own connection, from the local port) and also listens on
    that same port (the port of its Via and Contact), so that a platform whose connection has gone can open a
    new one to it (RFC 3261 §18.1.1, §18.2.2). Every connection has a reader task feeding one inbox; replies go
    back on the connection their request came on. A request to the platform goes on the device's own connection,
    else on a connection the platform opened (the newest; as devices behind NAT do), else on a new own one.
    """

    def __init__(self, settings: DeviceSettings) -> None:
        self.settings = settings
        self.tcp = settings.transport == "tcp"
        self.server: _Addr = (settings.server_host, settings.server_port)
        self.local: _Addr = (settings.local_host, 0)
        self.accepted = 0  # connections the platform opened to us
        self._sock: trio.socket.SocketType | None = None
        self._listener: trio.SocketListener | None = None
        self._conns: dict[_Addr, trio.SocketStream] = {}  # peer -> connection; ours to the platform is `server`
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[bytes, _Addr]](_INBOX)
        self._nursery: trio.Nursery | None = None
        self._lock = trio.StrictFIFOLock()

    async def open(self) -> None:
        s = self.settings
        family = trio.socket.AF_INET6 if ":" in s.local_host else trio.socket.AF_INET
        sock = trio.socket.socket(family, trio.socket.SOCK_STREAM if self.tcp else trio.socket.SOCK_DGRAM)
        try:
            if self.tcp:
                sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
            await sock.bind((s.local_host, s.local_port))
            if self.tcp:
                await sock.connect(self.server)
        except OSError:
            sock.close()
            raise
        self.local = sock.getsockname()[:2]
        if not self.tcp:
            self._sock = sock
            return
        self._conns[self.server] = trio.SocketStream(sock)
        # Listen on the connection's own port (Linux allows it beside a connected socket with SO_REUSEADDR); if
        # that fails, on any port: the Contact names the listening one either way.
        listener = trio.socket.socket(family, trio.socket.SOCK_STREAM)
        listener.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_REUSEADDR, 1)
        try:
            try:
                await listener.bind(self.local)
            except OSError:
                await listener.bind((s.local_host, 0))
            listener.listen(16)
        except OSError:
            listener.close()
            await trio.aclose_forcefully(self._conns.pop(self.server))
            raise
        self.local = listener.getsockname()[:2]
        self._listener = trio.SocketListener(listener)

    def start(self, nursery: trio.Nursery) -> None:
        """Start the TCP readers and the listener (nothing to do for UDP)."""
        self._nursery = nursery
        if self._listener is not None:
            nursery.start_soon(self._read, self.server, self._conns[self.server])
            nursery.start_soon(self._accept_loop, self._listener)

    def is_own(self, addr: _Addr) -> bool:
        """Whether `addr` is the device's own connection to the platform (losing it ends the boot)."""
        return addr == self.server

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, OSError):
                return
            peer = stream.socket.getpeername()
            addr = (peer[0], peer[1])
            self.accepted += 1
            self._conns[addr] = stream
            assert self._nursery is not None
            self._nursery.start_soon(self._read, addr, stream)

    async def _read(self, addr: _Addr, stream: trio.SocketStream) -> None:
        data = b""
        try:
            while data := await stream.receive_some(65536):
                await self._inbox_send.send((data, addr))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        if self._conns.get(addr) is stream:  # gone by itself (not closed by `drop`): say so once
            del self._conns[addr]
            await self._inbox_send.send((b"", addr))
        await trio.aclose_forcefully(stream)

    async def drop(self, addr: _Addr | None = None) -> None:
        """Close a connection (default: our own to the platform) without ending the boot."""
        stream = self._conns.pop(self.server if addr is None else addr, None)
        if stream is not None:
            await trio.aclose_forcefully(stream)

    async def _to_server(self) -> tuple[_Addr, trio.SocketStream]:
        own = self._conns.get(self.server)
        if own is not None:
            return self.server, own
        for addr in reversed(list(self._conns)):  # the newest connection the platform opened to us
            if addr[0] == self.server[0]:
                return addr, self._conns[addr]
        stream = await trio.open_tcp_stream(*self.server)  # a new own connection, from any port
        self._conns[self.server] = stream
        assert self._nursery is not None
        self._nursery.start_soon(self._read, self.server, stream)
        return self.server, stream

    async def send(self, data: bytes, addr: _Addr) -> None:
        if self.tcp:
            async with self._lock:
                stream = self._conns.get(addr)
                if stream is None and addr == self.server:
                    try:
                        addr, stream = await self._to_server()
                    except OSError as exc:
                        raise trio.BrokenResourceError(f"cannot reach the platform: {exc}") from exc
                if stream is None:
                    return  # a connection the platform opened is gone: the platform's transaction times out
                try:
                    await stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    if self.is_own(addr):
                        raise
                    self._conns.pop(addr, None)
        elif self._sock is not None:
            try:
                await self._sock.sendto(data, addr)
            except OSError as exc:  # ICMP unreachable from an earlier datagram: the platform is down
                logger.debug("SIP send to %s failed: %s", addr, exc)

    async def receive(self) -> tuple[bytes, _Addr]:
        """The next bytes and the connection (peer) they came on; b"" when a connection ended by itself."""
        if self.tcp:
            return await self._inbox.receive()
        assert self._sock is not None
        while True:
            try:
                data, addr = await self._sock.recvfrom(65536)
            except ConnectionError:  # ICMP from an earlier send, reported on this call: keep listening
                continue
            return data, (addr[0], addr[1])

    async def aclose(self) -> None:
        if self._listener is not None:
            await self._listener.aclose()
        for stream in list(self._conns.values()):
            await trio.aclose_forcefully(stream)
        self._conns.clear()
        if self._sock is not None:
            self._sock.close()


class _Subscription:
    __slots__ = ("dialog", "expires_at", "query", "sn")

    def __init__(self, dialog: Dialog, expires_at: float, sn: int, query: ManscdpMessage | None = None) -> None:
        self.dialog = dialog
        self.expires_at = expires_at
        self.sn = sn
        self.query = query  # the SUBSCRIBE's body: what the subscription asks for (`_filters.py`)


#: Alarms `raise_alarm` keeps for Alarm queries (the oldest go first).
DEFAULT_MAX_ALARM_LOG = 1000


_SUBSCRIBABLE = ("Catalog", "Alarm", "MobilePosition")


class _Boot:
    """Per-boot state: the transport, the user agent, the nursery and the streams."""

    def __init__(self, transport: _Transport, ua: SipUserAgent, nursery: trio.Nursery) -> None:
        self.transport = transport
        self.ua = ua
        self.nursery = nursery
        self.waiters: dict[str, _Waiter] = {}
        self.wake = trio.Event()
        self.reregister = trio.Event()
        self.lost = False
        self.subscriptions: dict[str, _Subscription] = {}  # event name -> its dialog (9.11)
        self.notify_lock = trio.Lock()  # NOTIFYs of one dialog share a Call-ID (the waiter key): one at a time


class SimulatedDevice:
    """A simulated GB28181 device (IPC or NVR) that registers to a platform and streams a clip.

    Args:
        settings: what the device is and where it registers.
        rng: tags, Call-IDs, SSRCs and timestamp bases (default: a fresh `random.Random()`).
        report: called with one line per notable event (registration state changes, `PTZCmd <HEX>`);
            default: the `fluxkit.gb28181.device` logger at INFO.
        clip: the clip already in memory (`fluxkit.sim.load_clip`); else `settings.clip` (or the generated demo
            clip) is loaded in a worker thread at the first INVITE.

    Attributes (for tests and the CLI):
        state: "idle", "connecting", "registering", "registered", "rejected", "unreachable", "restarting".
        last_status: the status of the last final REGISTER response (None before any, or after a timeout).
        registrations: successful REGISTERs so far (refreshes included).
        keepalives_sent, keepalives_answered: Keepalive MESSAGEs sent and answered 2xx.
        restarts: reboots (the `restart` quirk, `restart()`, a lost TCP connection).
        ptz_log: every PTZ DeviceControl received, in order.
        sessions: the media sessions of the current boot (live until BYE).
        received: every MANSCDP body received (parsed).
        server_date: the `Date` header of the last 200 to REGISTER (9.10 time sync), if any.
        subscribe_log: every SUBSCRIBE accepted, as (event, refresh) in order (refresh: inside an existing dialog).
        notifies_sent: NOTIFYs sent in subscription dialogs (answered or not).
        alarm_replies: the platform's Alarm responses (`<Response><CmdType>Alarm`, A.2.6) received, in order.
        channel_status: each channel's catalog `<Status>` ("ON" / "OFF"; `set_channel_status`).
        alarm_log: the alarms raised so far (the last `DEFAULT_MAX_ALARM_LOG`), which Alarm queries search.
        withheld: event bodies not sent because the live subscription's query did not ask for them.
    """

    def __init__(
        self,
        settings: DeviceSettings,
        *,
        rng: random.Random | None = None,
        report: Callable[[str], None] | None = None,
        clip: LoadedClip | None = None,
    ) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self._report = report or logger.info
        self.state = "idle"
        self.last_status: int | None = None
        self.registrations = 0
        self.keepalives_sent = 0
        self.keepalives_answered = 0
        self.restarts = 0
        self.ptz_log: list[PtzLogEntry] = []
        self.sessions: list[MediaSession] = []
        self.finished_sessions: list[MediaSession] = []
        self.received: list[ManscdpMessage] = []
        self.server_date: str | None = None
        self.subscribe_log: list[tuple[str, bool]] = []
        self.notifies_sent = 0
        self.alarm_replies: list[ResultResponse] = []
        self.channel_status: dict[str, str] = dict.fromkeys(settings.channel_list, "ON")
        self.alarm_log: deque[Alarm] = deque(maxlen=DEFAULT_MAX_ALARM_LOG)
        self.withheld: list[ManscdpMessage] = []
        self.heads: dict[str, PtzHead] = {cid: PtzHead() for cid in settings.channel_list}
        self._changed = trio.Event()
        self._boot: _Boot | None = None
        self._boot_scope: trio.CancelScope | None = None
        self._restart_requested = False
        self._restart_quirk_done = False
        self._clip: LoadedClip | None = clip
        self._clip_lock = trio.Lock()
        self._sn = self.rng.randrange(1, 1000)
        self._dialogs: dict[str, tuple[Dialog | None, MediaSession, trio.CancelScope]] = {}

    # ---- public ------------------------------------------------------------------------------------------------

    @property
    def channel_ids(self) -> tuple[str, ...]:
        """The channel IDs of the catalog."""
        return self.settings.channel_list

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The SIP address of the current boot (None between boots)."""
        return None if self._boot is None else self._boot.transport.local

    def ptz_position(self, channel_id: str | None = None) -> PtzPosition:
        """Where a channel's head points now (default: the first channel)."""
        return self._head(channel_id or self.channel_ids[0]).position(trio.current_time())

    async def wait_state(self, predicate: Callable[[SimulatedDevice], bool]) -> None:
        """Wait until `predicate(self)` holds (checked at every state change)."""
        while not predicate(self):
            await self._changed.wait()

    async def wait_registered(self, count: int = 1) -> None:
        """Wait for the `count`-th successful registration."""
        await self.wait_state(lambda d: d.registrations >= count and d.state == "registered")

    @property
    def connections_accepted(self) -> int:
        """SIP/TCP connections the platform opened to this boot (0 over UDP or between boots)."""
        return 0 if self._boot is None else self._boot.transport.accepted

    async def drop_connection(self) -> None:
        """Close the device's own SIP/TCP connection to the platform and stay registered (as a device that closes
        idle connections does): the platform must open a new one to reach it, and the device's next request goes
        on that one, or on a new connection of its own. Nothing happens over UDP or between boots."""
        boot = self._boot
        if boot is not None and boot.transport.tcp:
            boot.ua.connection_lost(boot.transport.server)
            await boot.transport.drop()

    def restart(self) -> None:
        """Reboot now: every stream stops without a BYE, then the device registers again."""
        if self._boot_scope is not None:
            self._restart_requested = True
            self._boot_scope.cancel()

    def subscribed(self) -> dict[str, float]:
        """The live subscriptions of this boot: event name -> `trio.current_time()` at which it expires."""
        boot = self._boot
        now = trio.current_time()
        if boot is None:
            return {}
        return {name: sub.expires_at for name, sub in boot.subscriptions.items() if sub.expires_at > now}

    async def raise_alarm(
        self,
        channel_id: str | None = None,
        *,
        priority: int = 1,
        method: int = 5,
        alarm_type: str | None = None,
        description: str | None = None,
    ) -> int | None:
        """Report an alarm (A.2.5.3): `priority` 1 (highest) to 4; `method` 1 phone, 2 device, 3 SMS, 4 GPS,
        5 video, 6 device fault, 7 other; `alarm_type` goes in `<Info><AlarmType>`.

        Returns the platform's SIP status (None: no answer, or withheld: the Alarm subscription does not ask for it).

        Raises:
            FluxkitError: the device is not registered.
        """
        message = Alarm(
            sn=self._next_sn(),
            device_id=channel_id or self.settings.device_id,
            alarm_priority=str(priority),
            alarm_method=str(method),
            alarm_time=_local_time(),
            alarm_description=description,
            info=() if alarm_type is None else (("AlarmType", alarm_type),),
        )
        self.alarm_log.append(message)
        return await self._send_event("Alarm", message)

    async def set_channel_status(self, channel_id: str, status: str) -> int | None:
        """Take a channel ON or OFF line and tell the platform (a Catalog notify whose item has `<Event>`).

        Returns the platform's SIP status (None: no answer, or withheld by the Catalog subscription's query).

        Raises:
            FluxkitError: unknown channel, a status other than ON/OFF, or the device is not registered.
        """
        status = status.upper()
        if channel_id not in self.channel_status or status not in ("ON", "OFF"):
            raise FluxkitError(f"cannot set channel {channel_id!r} to {status!r}")
        self.channel_status[channel_id] = status
        item = next(i for i in self._catalog_items() if i.device_id == channel_id)
        item = attrs.evolve(item, event=status)
        notify = CatalogNotify(sn=self._next_sn(), device_id=self.settings.device_id, sum_num=1, items=(item,))
        return await self._send_event("Catalog", notify)

    async def report_position(
        self,
        channel_id: str | None = None,
        *,
        longitude: float,
        latitude: float,
        speed: float = 0.0,
        direction: float = 0.0,
        altitude: float = 0.0,
    ) -> int | None:
        """Report where the device is (MobilePosition notify, A.2.5.5).

        Returns the platform's SIP status (None: no answer).

        Raises:
            FluxkitError: the device is not registered.
        """
        message = MobilePosition(
            sn=self._next_sn(),
            device_id=channel_id or self.settings.device_id,
            time=_local_time(),
            longitude=f"{longitude:.6f}",
            latitude=f"{latitude:.6f}",
            speed=f"{speed:g}",
            direction=f"{direction:g}",
            altitude=f"{altitude:g}",
        )
        return await self._send_event("MobilePosition", message)

    async def run(self, *, task_status: trio.TaskStatus[SimulatedDevice] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled: (re)connect, register, keep alive, answer. Started once the first boot began."""
        started = False
        first_wait, max_wait = self.settings.retry_backoff
        wait = first_wait
        try:
            while True:
                transport = _Transport(self.settings)
                self._set_state("connecting")
                try:
                    await transport.open()
                except OSError as exc:
                    self._set_state("unreachable", f"{self.settings.server_host}:{self.settings.server_port}: {exc}")
                    if not started:
                        task_status.started(self)
                        started = True
                    await trio.sleep(wait)
                    wait = min(wait * 2, max_wait)
                    continue
                try:
                    async with trio.open_nursery() as nursery:
                        self._boot_scope = nursery.cancel_scope
                        self._boot = _Boot(transport, self._new_ua(transport), nursery)
                        transport.start(nursery)
                        nursery.start_soon(self._receiver, self._boot)
                        nursery.start_soon(self._timer, self._boot)
                        nursery.start_soon(self._register_loop, self._boot)
                        nursery.start_soon(self._keepalive_loop, self._boot)
                        if not started:
                            task_status.started(self)
                            started = True
                finally:
                    boot, self._boot, self._boot_scope = self._boot, None, None
                    for _, session, scope in self._dialogs.values():
                        scope.cancel()
                        self.finished_sessions.append(session)
                    self._dialogs.clear()
                    self.sessions.clear()
                    with trio.CancelScope(shield=True):
                        if boot is not None and not self._restart_requested and self.state == "registered":
                            await self._unregister(boot)
                        await transport.aclose()
                self.restarts += 1
                if self._restart_requested:
                    self._restart_requested = False
                    self._set_state("restarting")
                    await trio.sleep(0.2)  # a reboot takes a moment
                    wait = first_wait
                else:  # the TCP connection was lost
                    self._set_state("unreachable", "connection to the platform lost")
                    await trio.sleep(wait)
                    wait = min(wait * 2, max_wait)
        finally:
            self._set_state("idle")

    # ---- plumbing ----------------------------------------------------------------------------------------------

    def _new_ua(self, transport: _Transport) -> SipUserAgent:
        s = self.settings
        host, port = transport.local
        return SipUserAgent(
            user=s.device_id,
            host=host,
            port=port,
            rng=random.Random(self.rng.getrandbits(64)),
            domain=s.domain,
            transport="TCP" if transport.tcp else "UDP",
            password=s.password,
            user_agent="fluxkit-sim-device",
        )

    def _set_state(self, state: str, detail: str = "") -> None:
        if state != self.state or detail:
            self.state = state
            self._report(f"registration {state}" + (f": {detail}" if detail else ""))
        self._signal()

    def _signal(self) -> None:
        """Wake `wait_state` callers."""
        self._changed.set()
        self._changed = trio.Event()

    def _next_sn(self) -> int:
        self._sn += 1
        return self._sn

    def _head(self, channel_id: str) -> PtzHead:
        head = self.heads.get(channel_id)
        if head is None:
            if channel_id == self.settings.device_id:  # an IPC addressed by its device ID
                return self.heads[self.channel_ids[0]]
            head = self.heads[channel_id] = PtzHead()  # unknown channel: logged on a head of its own
        return head

    async def _flush(self, boot: _Boot, *, poke: bool = True) -> None:
        if poke:  # new transactions may have new timers: let the timer task recompute its deadline
            boot.wake.set()
        for data, addr in boot.ua.datagrams_to_send():
            try:
                await boot.transport.send(data, addr)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._lost(boot)
                return

    def _lost(self, boot: _Boot) -> None:
        boot.lost = True
        boot.nursery.cancel_scope.cancel()

    async def _receiver(self, boot: _Boot) -> None:
        while True:
            try:
                data, addr = await boot.transport.receive()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data, addr = b"", boot.transport.server
            now = trio.current_time()
            if boot.transport.tcp:
                if not data and boot.transport.is_own(addr):
                    self._lost(boot)
                    return
                try:
                    boot.ua.receive_data(data, addr, now)  # b"" from another connection: it is gone
                except RemoteProtocolError as exc:
                    logger.warning("SIP stream from the platform is broken: %s", exc)
                    if boot.transport.is_own(addr):
                        self._lost(boot)
                        return
                    await boot.transport.drop(addr)
            else:
                boot.ua.receive_datagram(data, addr, now)
            self._process(boot)
            await self._flush(boot)

    async def _timer(self, boot: _Boot) -> None:
        while True:
            deadline = boot.ua.get_timer()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await boot.wake.wait()
            boot.wake = trio.Event()
            boot.ua.handle_timer(trio.current_time())
            self._process(boot)
            await self._flush(boot, poke=False)

    async def _request(self, boot: _Boot, build: Callable[[SipUserAgent, float], SipRequest]) -> SipResponse | None:
        """Send a request and wait for its final response (None: timed out)."""
        request = build(boot.ua, trio.current_time())
        waiter = boot.waiters[request.call_id] = _Waiter()
        try:
            await self._flush(boot)
            await waiter.done.wait()
        finally:
            if boot.waiters.get(request.call_id) is waiter:
                del boot.waiters[request.call_id]
        return waiter.response

    async def _send_manscdp(self, boot: _Boot, message: ManscdpMessage) -> SipResponse | None:
        body = self._encode(message)
        target = f"sip:{self.settings.server_id}@{self.settings.domain}"
        server = boot.transport.server
        return await self._request(boot, lambda ua, now: ua.message(target, server, now, body))

    def _encode(self, message: ManscdpMessage) -> bytes:
        body = message.encode(self.settings.charset)
        if "gb2312_bare_amp" in self.settings.quirks:
            body = body.replace(b"&amp;", b"&")  # Hikvision writes names and addresses unescaped
        return body

    # ---- registration and keepalive ----------------------------------------------------------------------------

    async def _register_loop(self, boot: _Boot) -> None:
        s = self.settings
        registrar = f"sip:{s.server_id}@{s.domain}"
        call_id = boot.ua.new_call_id()
        first_wait, max_wait = s.retry_backoff
        wait = first_wait
        while True:
            if self.state != "registered":  # a refresh keeps the device registered (and keeping alive)
                self._set_state("registering")
            response = await self._request(
                boot,
                lambda ua, now: ua.register(
                    registrar, boot.transport.server, now, expires=s.register_expires, call_id=call_id
                ),
            )
            self.last_status = None if response is None else response.status_code
            if response is not None and 200 <= response.status_code < 300:
                self.registrations += 1
                self.server_date = response.headers.get("Date")
                granted = _expires(response, s.register_expires)
                wait = first_wait
                self._set_state("registered", f"{response.status_code} {response.reason}, expires {granted} s")
                with trio.move_on_after(max(1.0, granted * 0.75)):
                    await boot.reregister.wait()
                boot.reregister = trio.Event()
                continue
            if response is None:
                self._set_state("unreachable", "no answer to REGISTER")
            elif response.status_code in (401, 403):
                self._set_state(
                    "rejected", f"{response.status_code} {response.reason}: wrong password for {s.device_id}?"
                )
            else:
                self._set_state("rejected", f"{response.status_code} {response.reason}")
            await trio.sleep(wait)
            wait = min(wait * 2, max_wait)

    async def _unregister(self, boot: _Boot) -> None:
        s = self.settings
        registrar = f"sip:{s.server_id}@{s.domain}"
        # The receiver is gone by now: send and forget (a platform that misses it times the device out).
        boot.ua.register(registrar, boot.transport.server, trio.current_time(), expires=0)
        with trio.move_on_after(1.0):
            await self._flush(boot)

    async def _keepalive_loop(self, boot: _Boot) -> None:
        s = self.settings
        misses = 0
        while True:
            await self.wait_state(lambda d: d.state == "registered")
            await trio.sleep(s.keepalive_interval)
            if self.state != "registered":
                continue
            keepalive = Keepalive(sn=self._next_sn(), device_id=s.device_id, status="OK")
            self.keepalives_sent += 1
            response = await self._send_manscdp(boot, keepalive)
            if response is not None and 200 <= response.status_code < 300:
                self.keepalives_answered += 1
                misses = 0
                self._set_state("registered")
                continue
            misses += 1
            if misses >= s.keepalive_timeouts or (response is not None and response.status_code in (401, 403, 404)):
                misses = 0
                boot.reregister.set()

    # ---- events ------------------------------------------------------------------------------------------------

    def _process(self, boot: _Boot) -> None:
        ua = boot.ua
        while (event := ua.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                if event.response.status_code >= 200:
                    waiter = boot.waiters.get(event.request.call_id)
                    if waiter is not None:
                        waiter.response = event.response
                        waiter.done.set()
            elif isinstance(event, TransactionTimedOut):
                if event.client:
                    waiter = boot.waiters.get(event.request.call_id)
                    if waiter is not None:
                        waiter.done.set()
                elif event.request.method == "INVITE":  # our 200 was never ACKed
                    self._end_session(event.request.call_id)
            elif isinstance(event, AckReceived):
                entry = self._dialogs.get(event.request.call_id)
                if entry is not None and not entry[1].started:
                    entry[1].started = True
                    boot.nursery.start_soon(self._stream, boot, event.request.call_id)
            elif isinstance(event, RequestReceived):
                self._on_request(boot, event)

    def _on_request(self, boot: _Boot, event: RequestReceived) -> None:
        request = event.request
        ua = boot.ua
        now = trio.current_time()
        method = request.method
        if method == "MESSAGE":
            self._on_message(boot, request, now)
        elif method == "INVITE":
            if event.dialog is not None:  # re-INVITE: keep the session as it is
                ua.respond(request, 488, now)
                return
            boot.nursery.start_soon(self._on_invite, boot, request)
        elif method == "BYE":
            ua.respond(request, 200, now)
            self._end_session(request.call_id)
        elif method == "INFO":
            self._on_info(boot, request, now)
        elif method == "CANCEL":
            ua.respond(request, 200, now)
        elif method == "SUBSCRIBE":
            self._on_subscribe(boot, event, now)
        elif method in ("OPTIONS", "NOTIFY"):
            ua.respond(request, 200, now, headers=[("Expires", request.headers.get("Expires") or "0")])
        else:
            ua.respond(request, 405, now, headers=[("Allow", "INVITE, ACK, BYE, CANCEL, INFO, MESSAGE, OPTIONS")])

    # ---- subscriptions (9.11) -------------------------------------------------------------------------------

    def _on_subscribe(self, boot: _Boot, event: RequestReceived, now: float) -> None:
        request = event.request
        ua = boot.ua
        name = (request.headers.get("Event") or "").split(";", 1)[0].strip()
        if name not in _SUBSCRIBABLE:
            ua.respond(request, 489, now, reason="Bad Event")  # RFC 6665 §8.3.1
            return
        try:
            expires = max(0, int(request.headers.get("Expires") or "3600"))
        except ValueError:
            ua.respond(request, 400, now, reason="Bad Expires")
            return
        sn = 0
        query: ManscdpMessage | None = None
        if request.body:
            # The query body narrows what the subscription is sent (`_filters.py`).
            with contextlib.suppress(ProtocolError):
                query = parse_manscdp(request.body)
                sn = query.sn
        response = ua.respond(request, 200, now, headers=[("Expires", str(expires))])
        dialog = event.dialog
        refresh = dialog is not None
        if dialog is None:
            tag = response.to.tag
            dialog = next((d for d in ua.dialogs if d.call_id == request.call_id and d.local_tag == tag), None)
            if dialog is None:
                return  # the dialog table is full: the 200 went out, nothing will follow
        self.subscribe_log.append((name, refresh))
        if expires == 0:
            boot.subscriptions.pop(name, None)
            boot.nursery.start_soon(self._notify, boot, name, dialog, b"", "terminated;reason=timeout")
        else:
            old = boot.subscriptions.get(name)
            if query is None and refresh and old is not None:
                query = old.query  # a refresh without a body keeps what was asked
            boot.subscriptions[name] = _Subscription(dialog, now + expires, sn, query)
        self._signal()
        if expires == 0:
            return
        if name == "Catalog" and not refresh:
            boot.nursery.start_soon(self._notify_catalog, boot, sn, query)

    async def _notify_catalog(self, boot: _Boot, sn: int, query: ManscdpMessage | None = None) -> None:
        # The subscription's first NOTIFY is the catalog it asks for, paged and serial like a Catalog answer.
        wanted = CatalogFilter.from_query(query, channels=self.channel_ids)
        items = [i for i in self._catalog_items() if wanted.channel is None or i.device_id == wanted.channel]
        size = self.settings.catalog_page_size
        for k in range(0, max(len(items), 1), size):
            page = tuple(items[k : k + size])
            notify = CatalogNotify(sn=sn, device_id=self.settings.device_id, sum_num=len(items), items=page)
            response = await self._send_event("Catalog", notify, boot=boot, fallback=False, initial=True)
            if response is None or response >= 300:
                return

    def _live_subscription(self, boot: _Boot, name: str) -> _Subscription | None:
        sub = boot.subscriptions.get(name)
        if sub is None:
            return None
        if sub.expires_at <= trio.current_time() or sub.dialog not in boot.ua.dialogs:
            del boot.subscriptions[name]
            return None
        return sub

    async def _notify(self, boot: _Boot, name: str, dialog: Dialog, body: bytes, state: str) -> SipResponse | None:
        async with boot.notify_lock:
            self.notifies_sent += 1
            return await self._request(
                boot,
                lambda ua, now: ua.notify(
                    dialog, now, event=name, state=state, body=body, content_type=_MANSCDP if body else None
                ),
            )

    async def _send_event(
        self,
        name: str,
        message: ManscdpMessage,
        *,
        boot: _Boot | None = None,
        fallback: bool = True,
        initial: bool = False,
    ) -> int | None:
        """A Notify body as a NOTIFY in the subscription of `name`, else (with `fallback`) as a MESSAGE.

        A live subscription gets only what its query asks for (`initial`: the first catalog NOTIFY, already
        narrowed, outside any time window); the rest is withheld and None returned.
        """
        boot = boot or self._boot
        if boot is None or self.state != "registered":
            raise FluxkitError(f"device {self.settings.device_id} is not registered")
        sub = self._live_subscription(boot, name)
        if sub is not None and not initial:
            narrowed = self._narrow(name, sub.query, message)
            if narrowed is None:
                self.withheld.append(message)
                self._report(f"{name} withheld: the {name} subscription does not ask for it")
                self._signal()
                return None
            message = narrowed
        if sub is not None:
            remaining = max(1, math.ceil(sub.expires_at - trio.current_time()))
            response = await self._notify(boot, name, sub.dialog, self._encode(message), f"active;expires={remaining}")
        elif fallback:
            response = await self._send_manscdp(boot, message)
        else:
            return None
        return None if response is None else response.status_code

    def _on_message(self, boot: _Boot, request: SipRequest, now: float) -> None:
        try:
            message = parse_manscdp(request.body)
        except ProtocolError as exc:
            logger.warning("unparsable MANSCDP body: %s", exc)
            boot.ua.respond(request, 400, now)
            return
        boot.ua.respond(request, 200, now)
        self.received.append(message)
        if isinstance(message, ResultResponse) and message.cmd_type == "Alarm":
            self.alarm_replies.append(message)  # the platform's A.2.6 response to an alarm we reported
            self._signal()
        if isinstance(message, CatalogQuery):
            boot.nursery.start_soon(self._answer_catalog, boot, message)
        elif isinstance(message, RecordInfoQuery):
            boot.nursery.start_soon(self._answer_records, boot, message)
        elif isinstance(message, DeviceInfoQuery):
            boot.nursery.start_soon(self._send_manscdp, boot, self._device_info(message))
        elif isinstance(message, DeviceStatusQuery):
            boot.nursery.start_soon(self._send_manscdp, boot, self._device_status(message))
        elif isinstance(message, DeviceControl):
            self._on_control(boot, message, now)
        elif isinstance(message, UnknownMessage) and (message.root_tag, message.command_type) == ("Query", "Alarm"):
            boot.nursery.start_soon(self._answer_alarms, boot, message)

    # ---- MANSCDP answers ---------------------------------------------------------------------------------------

    def _catalog_items(self) -> list[CatalogItem]:
        s = self.settings
        quirky = "gb2312_bare_amp" in s.quirks
        items = []
        for n, cid in enumerate(self.channel_ids, 1):
            items.append(
                CatalogItem(
                    device_id=cid,
                    name=f"{s.name} {n}" + (" A&B" if quirky else ""),
                    manufacturer="fluxkit",
                    model="SIM-IPC" if s.kind == "ipc" else "SIM-NVR",
                    owner="Owner",
                    civil_code=s.device_id[:6],
                    address="Gate 1 & 2" if quirky else f"Address {n}",
                    parental="0",
                    parent_id=s.device_id,
                    safety_way="0",
                    register_way="1",
                    secrecy="0",
                    status=self.channel_status.get(cid, "ON"),
                    info=(("PTZType", "1"),),
                )
            )
        return items

    async def _answer_catalog(self, boot: _Boot, query: CatalogQuery) -> None:
        items = self._catalog_items()
        await self._paged(
            boot,
            items,
            lambda page: CatalogResponse(
                sn=query.sn, device_id=self.settings.device_id, sum_num=len(items), items=tuple(page)
            ),
        )

    async def _paged(self, boot: _Boot, items: list[Any], build: Callable[[list[Any]], ManscdpMessage]) -> None:
        # Appendix N: parts carry the query's SN and go serially, each after the 200 of the one before.
        size = self.settings.catalog_page_size
        pages = [items[k : k + size] for k in range(0, len(items), size)] or [[]]
        for page in pages:
            response = await self._send_manscdp(boot, build(page))
            if response is None or response.status_code >= 300:
                logger.warning("platform did not take a multi-part answer: %s", response)
                return

    def _records_for(self, query: RecordInfoQuery) -> list[RecordItem]:
        # Window, Type, Secrecy, FilePath, Address, RecorderID; whole items, not clipped (`_filters.py`).
        return records_matching(self.settings.records, query, query.device_id or self.channel_ids[0])

    def _narrow(self, name: str, query: ManscdpMessage | None, message: ManscdpMessage) -> ManscdpMessage | None:
        """`message` as the subscription of `name` with this query body asks for it; None: not asked for."""
        if name == "Alarm" and isinstance(message, Alarm):
            return message if AlarmFilter.from_query(query, channels=self.channel_ids).matches(message) else None
        if name == "Catalog" and isinstance(message, CatalogNotify):
            now = local_when(_local_time())
            return CatalogFilter.from_query(query, channels=self.channel_ids).narrow(message, now)
        return message

    async def _answer_alarms(self, boot: _Boot, query: ManscdpMessage) -> None:
        # No list answer exists for an Alarm query: the matching alarms go as notifies with its SN, one at a time.
        wanted = AlarmFilter.from_query(query, channels=self.channel_ids)
        for alarm in [a for a in self.alarm_log if wanted.matches(a)]:
            response = await self._send_manscdp(boot, attrs.evolve(alarm, sn=query.sn))
            if response is None or response.status_code >= 300:
                logger.warning("platform did not take an alarm query answer: %s", response)
                return

    async def _answer_records(self, boot: _Boot, query: RecordInfoQuery) -> None:
        records = self._records_for(query)
        channel = query.device_id or self.channel_ids[0]
        await self._paged(
            boot,
            records,
            lambda page: RecordInfoResponse(
                sn=query.sn, device_id=channel, name=self.settings.name, sum_num=len(records), items=tuple(page)
            ),
        )

    def _device_info(self, query: DeviceInfoQuery) -> DeviceInfoResponse:
        s = self.settings
        return DeviceInfoResponse(
            sn=query.sn,
            device_id=s.device_id,
            device_name=s.name,
            result="OK",
            manufacturer="fluxkit",
            model="SIM-IPC" if s.kind == "ipc" else "SIM-NVR",
            firmware="fluxkit-sim 1.0",
            channel=str(s.channels),
        )

    def _device_status(self, query: DeviceStatusQuery) -> DeviceStatusResponse:
        return DeviceStatusResponse(
            sn=query.sn,
            device_id=query.device_id or self.settings.device_id,
            result="OK",
            online="ONLINE",
            status="OK",
            encode_status="ON",
            record="OFF",
            device_time=datetime.datetime.now().replace(microsecond=0).isoformat(),
        )

    def _on_control(self, boot: _Boot, control: DeviceControl, now: float) -> None:
        channel = control.device_id or self.settings.device_id
        if control.ptz_cmd is not None:
            try:
                command: PtzCommand | None = control.ptz_command
            except ProtocolError as exc:
                logger.warning("bad PTZCmd %r: %s", control.ptz_cmd, exc)
                command = None
            self.ptz_log.append(
                PtzLogEntry(time=now, channel_id=channel, hex=control.ptz_cmd, command=command, sn=control.sn)
            )
            if command is not None:
                head = self._head(channel)
                head.apply(command, now)
            self._report(f"PTZCmd {control.ptz_cmd}")
            self._signal()
        if control.record_cmd is not None or control.guard_cmd is not None:  # 9.3.2: these get a <Result>
            result = ResultResponse(sn=control.sn, device_id=channel, cmd_type="DeviceControl", result="OK")
            boot.nursery.start_soon(self._send_manscdp, boot, result)
        if control.tele_boot is not None:
            self.restart()

    # ---- media -------------------------------------------------------------------------------------------------

    async def _load_clip(self) -> LoadedClip:
        async with self._clip_lock:
            if self._clip is None:
                path = self.settings.clip
                if path is None:
                    path = await trio.to_thread.run_sync(generate_demo_clip)
                self._clip = await trio.to_thread.run_sync(load_clip, path)
            return self._clip

    async def _on_invite(self, boot: _Boot, request: SipRequest) -> None:
        ua = boot.ua
        s = self.settings
        channel = _uri_user(request.uri)
        if channel not in self.channel_ids and channel != s.device_id:
            ua.respond(request, 404, trio.current_time())
            await self._flush(boot)
            return
        if channel == s.device_id:
            channel = self.channel_ids[0]
        transport: MediaTransport = "udp"
        try:
            offer = parse_sdp(request.body.decode("utf-8", "replace"))
            media = offer.media[0]
            connection = offer.connection_for(media)
            if media.is_tcp:
                transport = "tcp-active" if (media.setup or "passive") == "active" else "tcp-passive"
            # tcp-active: the platform connects to us, so its own port may be anything (even 0).
            if connection is None or (media.port <= 0 and transport != "tcp-active"):
                raise ValueError("no media address")
        except (ProtocolError, IndexError, ValueError) as exc:
            logger.warning("INVITE for %s: unusable offer: %s", channel, exc)
            ua.respond(request, 488, trio.current_time())  # Appendix F note 5
            await self._flush(boot)
            return
        kind = offer.session_name or "Play"
        timing = offer.timing
        y = offer.ssrc
        if y is None or offer.ssrc_int is None:  # the device picks one (Appendix F note 4)
            history = "1" if kind in ("Playback", "Download") else "0"
            y = f"{history}{s.domain[3:8].rjust(5, '0')}{self.rng.randrange(10000):04d}"
        session = MediaSession(
            channel_id=channel,
            kind=kind,
            transport=transport,
            remote=(connection.address, media.port),
            ssrc=0 if "ssrc_zero" in s.quirks else int(y),
            host=s.local_host,
            start=timing.start if timing else 0,
            end=timing.stop if timing else 0,
            download_speed=media.download_speed,
            hik="hik_psm" in s.quirks,
            ignore_scale="ignore_scale" in s.quirks,
        )
        try:
            port = await session.prepare()
            answer = build_gb28181_answer(
                offer,
                origin_id=channel,
                address=s.local_host,
                port=port,
                ssrc=y,
                media_format=MediaFormat.build(
                    video_codec=2, resolution=5, frame_rate=25, bitrate_type=1, video_kbps=2048
                ),
            )
            if "slow_200" in s.quirks:
                await trio.sleep(s.slow_200_delay)  # only the 100 Trying the user agent sent at once
            response = ua.respond(
                request, 200, trio.current_time(), body=answer.serialize().encode(), content_type="application/sdp"
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await session.close()
            raise
        dialog = ua.find_dialog(request.call_id, response.to.tag or "", request.from_.tag or "")
        self._dialogs[request.call_id] = (dialog, session, trio.CancelScope())
        self.sessions.append(session)
        self._signal()
        self._report(f"INVITE {kind} {channel} {transport} -> {connection.address}:{media.port} ssrc={y}")
        await self._flush(boot)

    async def _stream(self, boot: _Boot, call_id: str) -> None:
        entry = self._dialogs.get(call_id)
        if entry is None:
            return
        dialog, session, scope = entry
        clip = await self._load_clip()
        started = trio.current_time()

        async def on_frame(_: MediaSession) -> None:
            if (
                "restart" in self.settings.quirks
                and not self._restart_quirk_done
                and trio.current_time() - started >= self.settings.restart_after
            ):
                self._restart_quirk_done = True
                self._report("restart (quirk): rebooting mid-stream")
                self.restart()

        ended = False
        with scope:
            ended = await session.run(
                clip,
                timestamp_base=self.rng.getrandbits(31),
                sequence_base=self.rng.getrandbits(16),
                on_frame=on_frame,
            )
        if scope.cancelled_caught or call_id not in self._dialogs:
            return
        if ended and session.duration is not None:
            # End of a playback or download: MediaStatus 121; the platform answers with a BYE.
            status = MediaStatus(sn=self._next_sn(), device_id=session.channel_id, notify_type="121")
            await self._send_manscdp(boot, status)
            return
        # The TCP media peer went away: end the call.
        self._end_session(call_id)
        if dialog is not None:
            boot.ua.bye(dialog, trio.current_time())
            await self._flush(boot)

    def _end_session(self, call_id: str) -> None:
        entry = self._dialogs.pop(call_id, None)
        if entry is None:
            return
        _, session, scope = entry
        scope.cancel()
        if session in self.sessions:
            self.sessions.remove(session)
        self.finished_sessions.append(session)
        self._signal()
        if not session.started and self._boot is not None:
            self._boot.nursery.start_soon(session.close)

    def _on_info(self, boot: _Boot, request: SipRequest, now: float) -> None:
        entry = self._dialogs.get(request.call_id)
        if entry is None:
            boot.ua.respond(request, 481, now)
            return
        try:
            rtsp = parse_mansrtsp(request.body)
        except ProtocolError:
            boot.ua.respond(request, 400, now)
            return
        if not isinstance(rtsp, MansrtspRequest):  # a response body in a request
            boot.ua.respond(request, 400, now)
            return
        session = entry[1]
        answer = MansrtspResponse(status_code=200, reason="OK", cseq=rtsp.cseq)
        boot.ua.respond(request, 200, now, body=answer.serialize(), content_type="Application/MANSRTSP")
        if rtsp.method == "TEARDOWN":
            entry[2].cancel()
        else:
            session.control.apply(rtsp)


def _expires(response: SipResponse, default: int) -> int:
    value = response.headers.get("Expires")
    if value is not None and value.strip().isdigit():
        return int(value.strip())
    contact = response.headers.get("Contact") or ""
    for param in contact.split(";")[1:]:
        name, _, val = param.partition("=")
        if name.strip().lower() == "expires" and val.strip().isdigit():
            return int(val.strip())
    return default


def _local_time() -> str:
    """Now as MANSCDP writes times: local, ISO 8601 without a zone (A.2.1)."""
    return datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def _uri_user(uri: str) -> str:
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0].split(";", 1)[0]
