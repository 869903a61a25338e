"""SIP transport of the GB28181 platform: the UDP socket, TCP connections both ways, and the user agents.

Strategy: one sans-IO `SipUserAgent` per transport (UDP and TCP on the same port) does the transactions,
retransmissions and dialogs; this module moves their bytes and correlates the platform's requests with their
final responses. The transaction user (`Gb28181Platform`) gets every incoming request through `on_request`.

* The UDP socket is drained in batches (wait_readable, then `recvfrom` until `BlockingIOError`).
* Each TCP connection, accepted or opened by the platform, has a reader (bytes into `receive_data`, which frames
  by Content-Length, RFC 3261 §18.3) and a writer task fed by a small memory channel, so that handing a user
  agent's output to the network never blocks the code that produced it (`flush` is sync). Connections are keyed
  by the peer's address: what the user agent's outbox names.
* Platform-initiated connections (RFC 3261 §18.1.1): a device registered over TCP whose connection has gone is
  reached by opening a new one (`connect`, with `tcp_connect_timeout`) to its Contact, else to the address it
  registered from. The new connection is read like an accepted one (the device's requests and responses both
  come back on it) and reused by every later request until either side closes it. Concurrent requests to the
  same address share one connection attempt.
* Requests the platform sends wait for their final response on a `_Waiter` keyed by (Call-ID, CSeq, method);
  provisional responses only mark it (an INVITE answered by 100 Trying alone still times out).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

import trio

from fluxkit.errors import ProtocolError, RemoteProtocolError
from fluxkit.net._udp import bind_udp
from fluxkit.protocols.sip import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
    SipRequest,
    SipUserAgent,
    TransactionTimedOut,
)

from ._settings import Gb28181Error, PlatformSettings

__all__ = ["Addr", "SipTransport"]

logger = logging.getLogger("fluxkit.gb28181")

Addr = tuple[str, int]
_MAX_SIP_DATAGRAM = 65535
_UDP_BATCH = 256
#: Messages queued per TCP connection before further ones are dropped (retransmission timers or the transaction
#: timeout cover a connection that cannot keep up).
DEFAULT_MAX_TCP_WRITE_QUEUE = 256
_RECEIVE_SIZE = 65536


class _Waiter:
    __slots__ = ("event", "provisional", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.provisional = False


class SipTransport:
    """The platform's SIP sockets and user agents (see the module docstring).

    Args:
        settings: host, port, IDs and `tcp_connect_timeout`.
        rng: tags, branches and Call-IDs of the user agents.
        on_request: called with (user agent, event, now) for every incoming request.
        max_write_queue: messages queued per TCP connection (`DEFAULT_MAX_TCP_WRITE_QUEUE`); more are dropped.

    Attributes:
        udp_ua, tcp_ua: the user agents (None before `bind`).
        port: the SIP port, once bound.
        malformed: messages or streams dropped as unreadable.
        connections_opened: TCP connections the platform opened to devices.
    """

    def __init__(
        self,
        settings: PlatformSettings,
        rng: random.Random,
        *,
        on_request: Callable[[SipUserAgent, RequestReceived, float], None],
        max_write_queue: int = DEFAULT_MAX_TCP_WRITE_QUEUE,
    ) -> None:
        self.settings = settings
        self.port = settings.sip_port
        self.udp_ua: SipUserAgent | None = None
        self.tcp_ua: SipUserAgent | None = None
        self.malformed = 0
        self.connections_opened = 0
        self.wake = trio.Event()  # set whenever a transaction timer may have moved earlier
        self._rng = rng
        self._on_request = on_request
        self._max_write_queue = max_write_queue
        self._udp_sock: socket.socket | None = None
        self._listeners: list[trio.SocketListener] = []
        self._tcp_out: dict[Addr, trio.MemorySendChannel[bytes]] = {}
        self._connecting: dict[Addr, trio.Event] = {}
        self._pending: dict[tuple[str, int, str], _Waiter] = {}
        self._nursery: trio.Nursery | None = None

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    async def bind(self) -> None:
        """Bind UDP and TCP on the same port (`sip_port`; 0 picks one free on both) and make the user agents."""
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
            break
        else:
            raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")
        self._udp_sock, self._listeners, self.port = sock, listeners, port
        self.udp_ua, self.tcp_ua = (
            SipUserAgent(user=s.server_id, host=s.host, port=port, rng=self._rng, domain=s.domain, transport=name)
            for name in ("UDP", "TCP")
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the bound sockets until cancelled (`bind` first); closes them at the end."""
        sock = self._udp_sock
        assert sock is not None, "bind() first"
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._udp_loop, sock)
                nursery.start_soon(trio.serve_listeners, self._accepted, self._listeners)
                task_status.started()
        finally:
            self._nursery = None
            trio.lowlevel.notify_closing(sock)
            sock.close()

    # ---- user agents ---------------------------------------------------------------------------------------------

    def ua_for(self, transport: str) -> SipUserAgent:
        """The user agent of a device's transport ("UDP" / "TCP")."""
        ua = self.tcp_ua if transport == "TCP" else self.udp_ua
        if ua is None:
            raise Gb28181Error("the GB28181 platform is not serving")
        return ua

    def transport_of(self, ua: SipUserAgent) -> str:
        """ "UDP" or "TCP"."""
        return "UDP" if ua is self.udp_ua else "TCP"

    def next_timer(self) -> float | None:
        """The earliest transaction timer of both user agents."""
        times = [t for ua in (self.udp_ua, self.tcp_ua) if ua is not None and (t := ua.get_timer()) is not None]
        return min(times) if times else None

    def handle_timers(self, now: float) -> None:
        """Fire the user agents' due timers."""
        for ua in (self.udp_ua, self.tcp_ua):
            if ua is not None and (t := ua.get_timer()) is not None and t <= now:
                ua.handle_timer(now)
                self.process(ua, now)

    def flush(self, ua: SipUserAgent) -> None:
        """Hand the user agent's output to the network (never blocks)."""
        out = ua.datagrams_to_send()
        if not out:
            return
        if ua is self.udp_ua:
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
        self.wake.set()

    def process(self, ua: SipUserAgent, now: float) -> None:
        """Handle the user agent's events (responses resolve waiters, requests go to `on_request`), then flush."""
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
        self.flush(ua)

    async def request(
        self, ua: SipUserAgent, build: Callable[[SipUserAgent, float], SipRequest], wait: float
    ) -> ResponseReceived | None:
        """Send the request `build(ua, now)` makes and wait up to `wait` s for its final response (None: none)."""
        request = build(ua, trio.current_time())
        key = (request.call_id, request.cseq.seq, request.method)
        waiter = self._pending[key] = _Waiter()
        self.flush(ua)
        try:
            with trio.move_on_after(wait):
                await waiter.event.wait()
        finally:
            self._pending.pop(key, None)
        value: ResponseReceived | None = waiter.value
        return value

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

    # ---- TCP connections -----------------------------------------------------------------------------------------

    def has_connection(self, addr: Addr) -> bool:
        """Whether a TCP connection to or from `addr` is open."""
        return addr in self._tcp_out

    async def connect(self, candidates: list[Addr]) -> Addr | None:
        """A TCP connection to the first of `candidates` that takes one: an open one, else a new one.

        Each attempt gives up after `tcp_connect_timeout` s. Returns the connected address, None when none.
        """
        for addr in candidates:
            if addr in self._tcp_out:
                return addr
        for addr in candidates:
            if await self._connect_one(addr):
                return addr
        return None

    async def _connect_one(self, addr: Addr) -> bool:
        while (pending := self._connecting.get(addr)) is not None:
            await pending.wait()  # another request is connecting there: share its connection
        if addr in self._tcp_out:
            return True
        nursery = self._nursery
        if nursery is None:
            return False
        done = self._connecting[addr] = trio.Event()
        try:
            with trio.move_on_after(self.settings.tcp_connect_timeout):
                try:
                    stream = await trio.open_tcp_stream(addr[0], addr[1])
                except OSError as exc:
                    logger.info("gb28181: cannot open a SIP/TCP connection to %s:%d: %s", *addr, exc)
                    return False
                self.connections_opened += 1
                logger.debug("gb28181: opened a SIP/TCP connection to %s:%d", *addr)
                await nursery.start(self._connection, stream, addr)
                return True
            logger.info("gb28181: SIP/TCP connection to %s:%d timed out", *addr)
            return False
        finally:
            del self._connecting[addr]
            done.set()

    async def _accepted(self, stream: trio.SocketStream) -> None:
        peer = stream.socket.getpeername()
        await self._connection(stream, (peer[0], peer[1]))

    async def _connection(
        self, stream: trio.SocketStream, addr: Addr, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        ua = self.tcp_ua
        assert ua is not None
        send, receive = trio.open_memory_channel[bytes](self._max_write_queue)
        self._tcp_out[addr] = send
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, stream, receive)
                try:
                    while True:
                        data = await stream.receive_some(_RECEIVE_SIZE)
                        now = trio.current_time()
                        try:
                            ua.receive_data(data, addr, now)
                        finally:
                            self.process(ua, now)
                        if not data:
                            break
                except RemoteProtocolError as exc:
                    # A stream that cannot be framed any more: drop the connection, keep serving.
                    self.malformed += 1
                    logger.info("gb28181: closing the SIP/TCP connection with %s:%d: %s", *addr, exc)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
                nursery.cancel_scope.cancel()
        finally:
            if self._tcp_out.get(addr) is send:
                del self._tcp_out[addr]
            ua.connection_lost(addr)
            self.process(ua, trio.current_time())
            with trio.CancelScope(shield=True):
                await stream.aclose()

    @staticmethod
    async def _writer(stream: trio.SocketStream, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        try:
            async for data in receive:
                await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # ---- UDP -----------------------------------------------------------------------------------------------------

    async def _udp_loop(self, sock: socket.socket) -> None:
        ua = self.udp_ua
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
            self.process(ua, now)
