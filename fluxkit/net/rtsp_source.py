"""`RtspSource`: an engine `Source` that pulls a camera's stream with the sans-IO `RtspClientConnection`.

Strategy: one `run` call is one connection (a "try"); the engine's supervisor restarts it with backoff when it
raises anything but `PermanentSourceError`. A try opens the TCP connection under `fail_after(connect_timeout)`
and starts a reader task that owns the socket's receiving side (style.md §6.11): it drains `next_event()`,
hands interleaved RTP straight to the track receivers (one batch per `receive_some`), sends the control events
(replies) to the handshake through a small channel, flushes `data_to_send()` under the write lock, and waits for
bytes or the machine's timer (reply deadlines, keepalive) with `move_on_at`. The handshake (OPTIONS, DESCRIBE,
SETUP per supported track, PLAY) runs in the try's own task under `fail_after`; the tracks are published just
before PLAY so that no frame of the first GOP is lost.

Over UDP each track gets an even/odd port pair on the local address of the RTSP connection; a task per socket
waits for readability and drains the socket in batches (`DatagramReceiver`, performance.md), and the RTP task
also serves the track's reorder-buffer timer. Every `rtcp_interval` seconds a receiver report with a CNAME goes
out per track on its RTCP channel or port (RFC 3550 §6.4.2, §6.1: compound RR + SDES). A watchdog raises
`RtspSourceError` when no media packet came for `stall_timeout` seconds.

Failures: wrong or missing credentials, a path the server does not have (404), a transport it refuses (461)
and a stream with no supported track raise `PermanentSourceError` (no retry storm); connection refused or reset,
a protocol violation, a reply timeout, a stall or the server closing raise `RtspSourceError`, and the engine
retries. Leaving a try for any reason while a session exists sends TEARDOWN in a shielded scope bounded by
`teardown_timeout`. Every state change is one log line on the "fluxkit.net.rtsp" logger.
"""

from __future__ import annotations

import logging
import math
import random
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import trio

from fluxkit.engine import PermanentSourceError, Publisher, SourceSession
from fluxkit.errors import FluxkitError, ProtocolError
from fluxkit.protocols.rtp import SDES_CNAME, ReceiverReport, Sdes, SdesChunk, SdesItem, serialize_rtcp
from fluxkit.protocols.rtp.payload import DEFAULT_MAX_FRAME_SIZE
from fluxkit.protocols.rtsp import (
    DEFAULT_REPLY_TIMEOUT,
    NEED_DATA,
    AuthenticationFailed,
    ClientState,
    ConnectionClosed,
    Described,
    Event,
    InterleavedData,
    OptionsReplied,
    Playing,
    Redirect,
    ReplyTimeout,
    RequestFailed,
    RtspClientConnection,
    ServerRequest,
    SetUp,
    TornDown,
)

from ._rtp_track import RtpTrackReceiver, UnsupportedTrack
from ._udp import DatagramReceiver, bind_rtp_pair

if TYPE_CHECKING:
    from fluxkit.engine import Track
    from fluxkit.protocols import MediaFrame

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_RTCP_INTERVAL",
    "DEFAULT_STALL_TIMEOUT",
    "DEFAULT_TEARDOWN_TIMEOUT",
    "RtspSource",
    "RtspSourceError",
]

_log = logging.getLogger("fluxkit.net.rtsp")

#: Seconds allowed for the TCP connect, and again for the whole OPTIONS..PLAY handshake.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds without any media packet after which the try fails (and the engine reconnects).
DEFAULT_STALL_TIMEOUT = 10.0
#: Seconds between RTCP receiver reports (RFC 3550 §6.2 suggests 5 s as the minimum interval).
DEFAULT_RTCP_INTERVAL = 5.0
#: Seconds a TEARDOWN may take when leaving.
DEFAULT_TEARDOWN_TIMEOUT = 1.0
#: Bytes asked of one `receive_some`.
MAX_RECEIVE = 1 << 18
# Control events (replies) in flight are bounded by our own requests, so this never fills.
_CONTROL_QUEUE = 16
_MAX_REDIRECTS = 5
# Reply statuses a retry may cure (timeouts, overload, a session the server lost); other 4xx are permanent.
_TRANSIENT_4XX = frozenset({408, 429, 453, 454, 455})


class RtspSourceError(FluxkitError):
    """A try of an `RtspSource` failed in a way a reconnect may fix (refused, reset, garbage, timeout, stall)."""


class RtspSource:
    """Pulls one RTSP stream into the engine (implements `fluxkit.engine.Source`).

    Args:
        url: `rtsp://[user:password@]host[:port]/path`.
        transport: "tcp" (RTP interleaved on the RTSP connection, the default) or "udp" (a port pair per track).
        username: user name for Basic/Digest auth (default: from the URL).
        password: password (default: from the URL).
        rng: randomness (Digest cnonces, the RTCP SSRC); pass `random.Random(seed)` in tests.
        connect_timeout: seconds for the TCP connect, and for the handshake.
        stall_timeout: seconds without media before the try fails.
        reply_timeout: seconds to wait for each RTSP reply.
        rtcp_interval: seconds between receiver reports.
        teardown_timeout: seconds the TEARDOWN may take when leaving.
        max_frame_size: bound on one reassembled frame (larger ones are dropped and counted).
    """

    def __init__(
        self,
        url: str,
        *,
        transport: Literal["tcp", "udp"] = "tcp",
        username: str | None = None,
        password: str | None = None,
        rng: random.Random | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        reply_timeout: float = DEFAULT_REPLY_TIMEOUT,
        rtcp_interval: float = DEFAULT_RTCP_INTERVAL,
        teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', not {transport!r}")
        self.url = url
        self.transport = transport
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.reply_timeout = reply_timeout
        self.rtcp_interval = rtcp_interval
        self.teardown_timeout = teardown_timeout
        self.max_frame_size = max_frame_size
        self._rng = rng or random.Random()
        self._redirect: str | None = None
        self._redirects = 0
        self._client(url)  # a bad URL fails here, at configuration time

    def _client(self, url: str) -> RtspClientConnection:
        return RtspClientConnection(
            url, username=self.username, password=self.password, rng=self._rng, reply_timeout=self.reply_timeout
        )

    async def run(self, session: SourceSession) -> None:
        """One try: connect, play, publish frames until cancelled or broken (see the module docstring)."""
        attempt = _Try(self, session)
        try:
            await attempt.run()
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            attempt.close_sockets()


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a nursery's group (so the engine logs `RtspSourceError: ...`), else the group."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    errors = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    if len(errors) == 1:
        return errors[0]
    if not errors and leaves:
        return leaves[0]
    return group


class _UdpTrack:
    __slots__ = ("receiver", "rtcp", "rtcp_to", "rtp")

    def __init__(self, receiver: RtpTrackReceiver, rtp: DatagramReceiver, rtcp: DatagramReceiver) -> None:
        self.receiver = receiver
        self.rtp = rtp
        self.rtcp = rtcp
        self.rtcp_to: tuple[str, int] | None = None


class _Try:
    """One connection of an `RtspSource`."""

    def __init__(self, source: RtspSource, session: SourceSession) -> None:
        self.source = source
        self.session = session
        self.conn = source._client(source._redirect or source.url)
        self.name = session.stream_id
        parts = urlsplit(self.conn.url)
        self.host = parts.hostname or ""
        self.port = parts.port or 554
        self.stream: trio.SocketStream | None = None
        self.lock = trio.Lock()
        self.control_send, self.control_recv = trio.open_memory_channel[Event](_CONTROL_QUEUE)
        self.receivers: list[RtpTrackReceiver] = []
        self.rtp_channels: dict[int, RtpTrackReceiver] = {}
        self.rtcp_channels: dict[int, RtpTrackReceiver] = {}
        self.udp: list[_UdpTrack] = []
        self.publisher: Publisher | None = None
        self.last_media = 0.0
        self.ssrc = source._rng.getrandbits(32)
        self.cname = b"fluxkit"

    def _info(self, message: str, *args: object) -> None:
        _log.info("%s: " + message, self.name, *args)

    # -- the try -----------------------------------------------------------------------------------------------

    async def run(self) -> None:
        source = self.source
        self._info("connecting to %s over %s", self.conn.url, source.transport)
        try:
            with trio.fail_after(source.connect_timeout):
                self.stream = await trio.open_tcp_stream(self.host, self.port)
        except trio.TooSlowError:
            raise RtspSourceError(
                f"connecting to {self.host}:{self.port} timed out after {source.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise RtspSourceError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        stream = self.stream
        local = stream.socket.getsockname()
        self.cname = f"fluxkit@{local[0]}".encode()
        self._info("connected from %s:%s", local[0], local[1])
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader)
                try:
                    with trio.fail_after(source.connect_timeout):
                        await self._handshake(nursery)
                except trio.TooSlowError:
                    raise RtspSourceError(
                        f"the RTSP handshake with {self.host}:{self.port} took over {source.connect_timeout:g} s"
                    ) from None
                source._redirects = 0
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._rtcp_loop)
        finally:
            with trio.CancelScope(shield=True):
                await self._teardown()
                await stream.aclose()

    async def _handshake(self, nursery: trio.Nursery) -> None:
        conn = self.conn
        source = self.source
        conn.options(now=trio.current_time())
        await self._flush()
        await self._reply()  # a refused OPTIONS changes nothing: DESCRIBE decides
        conn.describe(now=trio.current_time())
        await self._flush()
        described = await self._reply()
        assert isinstance(described, Described)
        chosen = []
        codecs: set[str] = set()
        for track in described.tracks:
            try:
                receiver = RtpTrackReceiver(
                    track, reorder=source.transport == "udp", max_frame_size=source.max_frame_size
                )
            except UnsupportedTrack as exc:
                self._info("skipping %s track %d: %s", track.media or "unknown", track.index, exc)
                continue
            if receiver.codec in codecs:
                self._info("skipping track %d: a second %s track", track.index, receiver.codec)
                continue
            codecs.add(receiver.codec)
            chosen.append(receiver)
        if not chosen:
            found = ", ".join(t.encoding or str(t.payload_type) for t in described.tracks) or "none"
            raise PermanentSourceError(f"{conn.url}: no supported track (found: {found})")
        self._info("described: %s", ", ".join(r.codec for r in chosen))
        for receiver in chosen:
            if source.transport == "udp":
                await self._setup_udp(receiver)
            else:
                conn.setup(receiver.rtsp_track, now=trio.current_time(), transport="tcp")
            await self._flush()
            setup = await self._reply()
            assert isinstance(setup, SetUp)
            self._bind(receiver, setup, nursery)
        self.receivers = chosen
        # Publish before PLAY: the first packets may come in the same read as the PLAY reply.
        self.last_media = trio.current_time()
        self.publisher = self.session.publish(self._tracks())
        conn.play(now=trio.current_time())
        await self._flush()
        await self._reply()
        self._info("playing")

    async def _setup_udp(self, receiver: RtpTrackReceiver) -> None:
        assert self.stream is not None
        local_host = self.stream.socket.getsockname()[0]
        rtp_sock, rtcp_sock = bind_rtp_pair(local_host)
        self.udp.append(_UdpTrack(receiver, DatagramReceiver(rtp_sock), DatagramReceiver(rtcp_sock)))
        port = rtp_sock.getsockname()[1]
        self.conn.setup(receiver.rtsp_track, now=trio.current_time(), transport="udp", client_ports=(port, port + 1))

    def _bind(self, receiver: RtpTrackReceiver, setup: SetUp, nursery: trio.Nursery) -> None:
        transport = setup.transport
        if transport.interleaved is not None:
            rtp_channel, rtcp_channel = transport.interleaved
            self.rtp_channels[rtp_channel] = receiver
            self.rtcp_channels[rtcp_channel] = receiver
            self._info("set up %s on interleaved channels %d-%d", receiver.codec, rtp_channel, rtcp_channel)
            return
        udp = next((u for u in self.udp if u.receiver is receiver), None)
        if udp is None:
            raise PermanentSourceError(f"{self.conn.url}: the server answered a TCP SETUP with {transport.protocol}")
        assert self.stream is not None
        server_host = transport.source or self.stream.socket.getpeername()[0]
        if transport.server_port is not None:
            udp.rtcp_to = (server_host, transport.server_port[1])
        nursery.start_soon(self._udp_rtp, udp)
        nursery.start_soon(self._udp_rtcp, udp)
        self._info(
            "set up %s on UDP ports %d-%d (server %s)",
            receiver.codec,
            udp.rtp.sock.getsockname()[1],
            udp.rtcp.sock.getsockname()[1],
            f"{server_host}:{transport.server_port[0]}" if transport.server_port else server_host,
        )

    def _tracks(self) -> list[Track]:
        return [r.track for r in self.receivers]

    async def _reply(self) -> Event:
        """The next reply of the handshake, with failures turned into the right error."""
        event = await self.control_recv.receive()
        if isinstance(event, AuthenticationFailed):
            if self.source.username is None and urlsplit(self.source.url).username is None:
                detail = "the server requires credentials and none were given"
            else:
                detail = "wrong user name or password"
            raise PermanentSourceError(
                f"{self.conn.url}: authentication failed ({detail}): {event.method} -> "
                f"{event.status_code} {event.reason}"
            )
        if isinstance(event, RequestFailed):
            if event.method == "OPTIONS":
                return event
            message = f"{self.conn.url}: {event.method} failed: {event.status_code} {event.reason}"
            if 400 <= event.status_code < 500 and event.status_code not in _TRANSIENT_4XX:
                raise PermanentSourceError(message)
            raise RtspSourceError(message)
        return event

    # -- the reader ---------------------------------------------------------------------------------------------

    async def _reader(self) -> None:
        conn = self.conn
        stream = self.stream
        assert stream is not None
        rtp_channels = self.rtp_channels
        rtcp_channels = self.rtcp_channels
        while True:
            now = trio.current_time()
            batches: dict[int, list[bytes]] | None = None
            while True:
                try:
                    event = conn.next_event()
                except ProtocolError as exc:
                    raise RtspSourceError(f"{self.host}:{self.port} broke RTSP: {exc}") from exc
                if event is NEED_DATA:
                    break
                if type(event) is InterleavedData:
                    channel = event.channel
                    if channel in rtp_channels:
                        if batches is None:
                            batches = {}
                        batches.setdefault(channel, []).append(event.data)
                    elif channel in rtcp_channels:
                        rtcp_channels[channel].receive_rtcp(event.data, now)
                    continue
                self._on_control(event)  # type: ignore[arg-type]  # InterleavedData was handled above
            if batches is not None:
                self.last_media = now
                for channel, packets in batches.items():
                    receiver = rtp_channels[channel]
                    frames = receiver.receive_rtp(packets, now)
                    if frames:
                        self._deliver(receiver, frames)
            await self._flush()
            timer = conn.get_timer()
            data: bytes | None = None
            with trio.move_on_at(math.inf if timer is None else timer):
                try:
                    data = await stream.receive_some(MAX_RECEIVE)
                except trio.BrokenResourceError as exc:
                    cause = exc.__cause__ or exc
                    raise RtspSourceError(f"connection to {self.host}:{self.port} lost: {cause}") from None
            if data is None:
                conn.handle_timer(trio.current_time())
            else:
                conn.receive_data(data)

    def _on_control(self, event: Event) -> None:
        if isinstance(event, ConnectionClosed):
            raise RtspSourceError(f"{self.host}:{self.port} closed the connection")
        if isinstance(event, ReplyTimeout):
            raise RtspSourceError(
                f"no reply to {event.method} from {self.host}:{self.port} within {self.source.reply_timeout:g} s"
            )
        if isinstance(event, Redirect):
            source = self.source
            source._redirects += 1
            if source._redirects > _MAX_REDIRECTS:
                raise PermanentSourceError(f"{self.conn.url}: more than {_MAX_REDIRECTS} redirects")
            source._redirect = event.url
            raise RtspSourceError(f"redirected to {event.url}")
        if isinstance(event, ServerRequest | TornDown):
            return
        if isinstance(event, OptionsReplied | Described | SetUp | Playing | AuthenticationFailed | RequestFailed):
            self.control_send.send_nowait(event)

    def _deliver(self, receiver: RtpTrackReceiver, frames: list[MediaFrame]) -> None:
        publisher = self.publisher
        if publisher is None:
            return
        if receiver.track_changed:
            receiver.track_changed = False
            self._info("new %s parameters: %sx%s", receiver.codec, receiver.track.width, receiver.track.height)
            publisher = self.publisher = self.session.publish(self._tracks())
        send = publisher.send
        for frame in frames:
            send(frame)

    async def _flush(self) -> None:
        assert self.stream is not None
        async with self.lock:
            data = self.conn.data_to_send()
            if data:
                try:
                    await self.stream.send_all(data)
                except trio.BrokenResourceError as exc:
                    cause = exc.__cause__ or exc
                    raise RtspSourceError(f"connection to {self.host}:{self.port} lost: {cause}") from None

    # -- helpers running after PLAY --------------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        stall = self.source.stall_timeout
        while True:
            deadline = self.last_media + stall
            if trio.current_time() >= deadline:
                raise RtspSourceError(f"no media from {self.host}:{self.port} for {stall:g} s")
            await trio.sleep_until(deadline)

    async def _rtcp_loop(self) -> None:
        while True:
            await trio.sleep(self.source.rtcp_interval)
            now = trio.current_time()
            for receiver in self.receivers:
                block = receiver.report_block(now)
                if block is None:
                    continue
                chunk = SdesChunk(ssrc=self.ssrc, items=(SdesItem(type=SDES_CNAME, value=self.cname),))
                report = serialize_rtcp([ReceiverReport(ssrc=self.ssrc, reports=(block,)), Sdes(chunks=(chunk,))])
                self._send_rtcp(receiver, report)
            await self._flush()
            if self.publisher is not None:
                lost = sum(r.take_losses() for r in self.receivers)
                if lost:
                    self.publisher.report_losses(lost)
                self.publisher.report_jitter(self.receivers[0].jitter_seconds())

    def _send_rtcp(self, receiver: RtpTrackReceiver, report: bytes) -> None:
        for channel, owner in self.rtcp_channels.items():
            if owner is receiver:
                self.conn.send_interleaved(channel, report)
                return
        for udp in self.udp:
            if udp.receiver is receiver and udp.rtcp_to is not None:
                try:
                    udp.rtcp.sock.sendto(report, udp.rtcp_to)
                except OSError as exc:  # a full buffer or an ICMP error: the next report will do
                    _log.debug("%s: RTCP send failed: %s", self.name, exc)
                return

    async def _udp_rtp(self, udp: _UdpTrack) -> None:
        receiver = udp.receiver
        rx = udp.rtp
        while True:
            timer = receiver.get_timer()
            batch: list[bytes] | None = None
            with trio.move_on_at(math.inf if timer is None else timer):
                batch = await rx.receive_batch()
            now = trio.current_time()
            frames: list[MediaFrame] = []
            if batch:
                self.last_media = now
                frames = receiver.receive_rtp(batch, now)
            timer = receiver.get_timer()
            if timer is not None and timer <= now:
                frames += receiver.handle_timer(now)
            if frames:
                self._deliver(receiver, frames)

    async def _udp_rtcp(self, udp: _UdpTrack) -> None:
        while True:
            batch = await udp.rtcp.receive_batch()
            now = trio.current_time()
            for data in batch:
                udp.receiver.receive_rtcp(data, now)

    # -- leaving -------------------------------------------------------------------------------------------------

    async def _teardown(self) -> None:
        """TEARDOWN if a session exists; bounded by `teardown_timeout`, errors ignored (we are leaving anyway)."""
        conn = self.conn
        stream = self.stream
        if stream is None or conn.session_id is None or conn.state not in (ClientState.READY, ClientState.PLAYING):
            return
        with trio.move_on_after(self.source.teardown_timeout):
            try:
                conn.teardown(now=trio.current_time())
                await self._flush()
                while True:
                    event = conn.next_event()
                    if isinstance(event, TornDown | ConnectionClosed):
                        self._info("torn down")
                        return
                    if event is NEED_DATA:
                        conn.receive_data(await stream.receive_some(MAX_RECEIVE))
            except (FluxkitError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                _log.debug("%s: TEARDOWN failed: %s", self.name, exc)
                return
        _log.debug("%s: no TEARDOWN reply within %g s", self.name, self.source.teardown_timeout)

    def close_sockets(self) -> None:
        for udp in self.udp:
            udp.rtp.close()
            udp.rtcp.close()
        self.udp = []
