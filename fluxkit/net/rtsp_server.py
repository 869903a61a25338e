"""The RTSP output: every engine stream playable at `rtsp://HOST:PORT/<stream_id>` (TCP interleaved or UDP).

Strategy: `serve_rtsp` is `trio.serve_tcp` with one handler task per client connection, each driving its own
sans-IO `RtspServerConnection` (style §11): a reader loop drains `next_event()` into handlers, waits for bytes
until the machine's session timer, and flushes `data_to_send()` under the connection's write lock. DESCRIBE
builds the SDP from the stream's tracks (`_rtsp_sdp`); SETUP binds a UDP port pair on the listening host or
assigns interleaved channels; PLAY starts one sender task for the session, which subscribes to the engine stream
and packetizes frames (RFC 6184 / RFC 7798 / RFC 3640 / RFC 3551).

The sender works in batches: it takes one frame with `await`, then every frame already queued, packetizes them
all, and writes the result once. Over TCP the packets are queued in the machine and written by one `send_all`
under the write lock (with the RTSP replies in order); over UDP each packet is a non-blocking `sendto`, and a
datagram the kernel will not take is dropped and counted (as a network would).

Buffering per client is bounded: while a write is in progress the sender does not read its subscription, so
frames wait in the engine's bounded subscription queue, which on overflow skips to the next keyframe without
touching other subscribers; a write that makes no progress for `send_timeout` seconds drops the client. Any
error in one connection closes that connection only (it is logged), never the server.

RTP timestamps are the frames' 90 kHz pts plus a random offset per track (RFC 3550 §5.1), scaled to the track's
clock rate for audio; SSRCs and first sequence numbers come from the injected rng. A sender report goes out on
each track every `sr_interval` seconds (and before the first media), mapping the RTP clock to wall time.
"""

from __future__ import annotations

import logging
import math
import random
import socket as _socket
import struct
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote

import attrs
import trio

from fluxkit.engine import StreamNotFoundError, Track
from fluxkit.errors import RemoteProtocolError
from fluxkit.protocols.digest import DigestServer
from fluxkit.protocols.rtp import SenderReport, serialize_rtcp
from fluxkit.protocols.rtp.payload import DEFAULT_MTU, H264Packetizer, H265Packetizer
from fluxkit.protocols.rtsp import (
    NEED_DATA,
    ConnectionClosed,
    DescribeRequest,
    InterleavedData,
    PauseRequest,
    PlayRequest,
    RtpInfo,
    RtspServerConnection,
    SessionExpired,
    SetupRequest,
    TeardownRequest,
    Transport,
)

from ._rtsp_sdp import TrackFormat, build_sdp

if TYPE_CHECKING:
    from fluxkit.engine import Subscription, VideoEngine
    from fluxkit.protocols import MediaFrame

__all__ = [
    "DEFAULT_DESCRIBE_WAIT",
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_SEND_TIMEOUT",
    "DEFAULT_SR_INTERVAL",
    "MAX_RECV",
    "RtspOutputStatistics",
    "serve_rtsp",
]

_log = logging.getLogger("fluxkit.net.rtsp_server")

#: Bytes asked of the socket per read.
MAX_RECV = 65536
#: Seconds a write to a client may make no progress before the client is dropped.
DEFAULT_SEND_TIMEOUT = 10.0
#: Frames a client's engine subscription may hold (it skips to the next keyframe beyond that).
DEFAULT_QUEUE_SIZE = 128
#: Bytes of RTP one sender batch may gather before it writes (bounds a client's pending output).
DEFAULT_MAX_BATCH_BYTES = 2 * 1024 * 1024
#: Seconds between RTCP sender reports on each track (RFC 3550 §6.2 suggests about 5 s).
DEFAULT_SR_INTERVAL = 5.0
#: Seconds DESCRIBE waits for a registered stream to announce its tracks (a source still connecting).
DEFAULT_DESCRIBE_WAIT = 5.0
#: Seconds between 1900 (NTP epoch) and 1970 (Unix epoch).
_NTP_OFFSET = 2_208_988_800
_RTP_HEADER = struct.Struct(">BBHII")
_UDP_PORT_RANGE = (20000, 60000)


@attrs.frozen(kw_only=True, slots=True)
class RtspOutputStatistics:
    """Counters of one client session's sender.

    Attributes:
        packets: RTP packets sent (over all tracks).
        octets: RTP payload bytes sent.
        frames: frames packetized.
        udp_dropped: datagrams the kernel refused (socket buffer full), dropped.
    """

    packets: int
    octets: int
    frames: int
    udp_dropped: int


class _Audio:
    """G.711 (RFC 3551 §4.5.14) and AAC-hbr (RFC 3640 §3.3.6) packetizing: one frame per packet."""

    __slots__ = ("_aac", "_pt", "_room", "_seq", "_ssrc")

    def __init__(self, *, codec: str, payload_type: int, ssrc: int, initial_sequence: int, mtu: int) -> None:
        self._aac = codec == "aac"
        self._pt = payload_type
        self._ssrc = ssrc
        self._seq = initial_sequence
        self._room = mtu - 12 - (4 if self._aac else 0)

    @property
    def next_sequence(self) -> int:
        return self._seq

    def packetize_bytes(self, data: bytes, timestamp: int) -> list[bytes]:
        if self._aac:
            if len(data) >= 7 and data[0] == 0xFF and data[1] & 0xF0 == 0xF0:
                data = data[9 if not data[1] & 1 else 7 :]  # strip the ADTS header (with or without CRC)
            # AU-headers-length = 16 bits, then one AU-header: 13-bit size, 3-bit index 0.
            chunks = [b"\x00\x10" + ((len(data) & 0x1FFF) << 3).to_bytes(2, "big") + data]
        else:
            room = self._room
            chunks = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
        out = []
        seq = self._seq
        pack = _RTP_HEADER.pack
        ts = timestamp & 0xFFFFFFFF
        for chunk in chunks:
            out.append(pack(0x80, 0x80 | self._pt, seq, ts, self._ssrc) + chunk)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        return out


class _TrackOut:
    """One set-up track: its packetizer, where its packets go, and what its sender report needs."""

    def __init__(
        self, *, index: int, track: Track, fmt: TrackFormat, transport: Transport, rng: random.Random, mtu: int
    ) -> None:
        self.index = index
        self.codec = track.codec
        self.clock_rate = fmt.clock_rate
        self.transport = transport
        self.ssrc = rng.getrandbits(32)
        self.first_sequence = rng.getrandbits(16)
        self.offset = rng.getrandbits(32)
        self.video: H264Packetizer | H265Packetizer | None = None
        self.audio: _Audio | None = None
        if track.codec == "h264":
            self.video = H264Packetizer(
                payload_type=fmt.payload_type, ssrc=self.ssrc, mtu=mtu, initial_sequence=self.first_sequence
            )
        elif track.codec == "hevc":
            self.video = H265Packetizer(
                payload_type=fmt.payload_type, ssrc=self.ssrc, mtu=mtu, initial_sequence=self.first_sequence
            )
        else:
            self.audio = _Audio(
                codec=track.codec,
                payload_type=fmt.payload_type,
                ssrc=self.ssrc,
                initial_sequence=self.first_sequence,
                mtu=mtu,
            )
        # UDP delivery (None over TCP): our RTP/RTCP sockets and the client's RTP/RTCP addresses.
        self.rtp_sock: _socket.socket | None = None
        self.rtcp_sock: _socket.socket | None = None
        self.rtp_addr: tuple[str, int] | None = None
        self.rtcp_addr: tuple[str, int] | None = None
        self.packets = 0
        self.octets = 0
        self.last_rtp: int | None = None  # RTP timestamp of the last frame sent and the time it was sent
        self.last_time = 0.0

    def timestamp(self, frame: MediaFrame) -> int:
        stamp = frame.pts if frame.pts is not None else frame.dts
        if stamp is None:
            stamp = int(trio.current_time() * 90000)
        if self.clock_rate != 90000:
            stamp = stamp * self.clock_rate // 90000
        return (stamp + self.offset) & 0xFFFFFFFF

    def packetize(self, frame: MediaFrame) -> list[bytes]:
        ts = self.timestamp(frame)
        self.last_rtp = ts
        self.last_time = trio.current_time()
        if self.video is not None:
            packets = [p.serialize() for p in self.video.packetize(frame.data, ts)]
        else:
            assert self.audio is not None
            packets = self.audio.packetize_bytes(frame.data, ts)
        self.packets += len(packets)
        self.octets += sum(map(len, packets)) - 12 * len(packets)
        return packets

    def sender_report(self) -> bytes | None:
        if self.last_rtp is None:
            return None
        now_ns = time.time_ns()
        elapsed = trio.current_time() - self.last_time
        rtp = (self.last_rtp + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        seconds, rest = divmod(now_ns, 1_000_000_000)
        ntp = ((seconds + _NTP_OFFSET) << 32 | (rest << 32) // 1_000_000_000) & 0xFFFFFFFFFFFFFFFF
        report = SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp,
            rtp_timestamp=rtp,
            packet_count=self.packets & 0xFFFFFFFF,
            octet_count=self.octets & 0xFFFFFFFF,
        )
        return serialize_rtcp([report])

    def close(self) -> None:
        for sock in (self.rtp_sock, self.rtcp_sock):
            if sock is not None:
                sock.close()
        self.rtp_sock = self.rtcp_sock = None


def _bind_udp_pair(host: str, rng: random.Random) -> tuple[_socket.socket, _socket.socket]:
    """Two non-blocking UDP sockets on `host`, an even RTP port and the next odd one for RTCP (RFC 3550 §11)."""
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    low, high = _UDP_PORT_RANGE
    for _ in range(64):
        port = rng.randrange(low, high, 2)
        socks: list[_socket.socket] = []
        try:
            for p in (port, port + 1):
                sock = _socket.socket(family, _socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((host, p))
                sock.setblocking(False)
        except OSError:
            for sock in socks:
                sock.close()
            continue
        return socks[0], socks[1]
    raise OSError("no free UDP port pair for RTP")


def _stream_of(path: str, *, setup: bool) -> tuple[str, str]:
    """(stream_id, track control) from a request path; the control is "" for DESCRIBE/PLAY paths."""
    path = unquote(path.split("?", 1)[0]).strip("/")
    if setup and "/" in path:
        stream_id, control = path.rsplit("/", 1)
        return stream_id, control
    return path, ""


class _Client:
    """One client connection: the reader loop, the session's tracks and its sender task."""

    def __init__(self, server: _Server, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.conn = RtspServerConnection(
            rng=server.rng, auth=server.digest, lookup=server.lookup, session_timeout=server.session_timeout
        )
        self.write_lock = trio.Lock()
        sockname = stream.socket.getsockname()
        peername = stream.socket.getpeername()
        self.local_host: str = sockname[0]
        self.peer_host: str = peername[0]
        self.peer = f"{peername[0]}:{peername[1]}"
        self.stream_id: str | None = None
        self.tracks: dict[int, _TrackOut] = {}
        self.formats: list[TrackFormat | None] = []
        self.stream_tracks: tuple[Track, ...] = ()
        self.sender_scope: trio.CancelScope | None = None
        self.frames = 0
        self.udp_dropped = 0
        self.nursery: trio.Nursery | None = None

    # -- writing -------------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self.write_lock:
            data = self.conn.data_to_send()
            if data:
                with trio.fail_after(self.server.send_timeout):
                    await self.stream.send_all(data)

    # -- reader loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        conn = self.conn
        handlers: dict[type, Callable[[Any], Any]] = {
            DescribeRequest: self.on_describe,
            SetupRequest: self.on_setup,
            PlayRequest: self.on_play,
            PauseRequest: self.on_pause,
            TeardownRequest: self.on_teardown,
        }
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            try:
                while True:
                    try:
                        event = conn.next_event()
                    except RemoteProtocolError as exc:
                        _log.info("rtsp client %s: bad request: %s", self.peer, exc)
                        hint = exc.event_hint
                        if hint is not None and hasattr(hint, "serialize"):
                            async with self.write_lock:
                                with trio.move_on_after(1):
                                    await self.stream.send_all(hint.serialize())
                        break
                    if event is NEED_DATA:
                        await self.flush()
                        deadline = conn.get_timer()
                        with trio.move_on_at(math.inf if deadline is None else deadline):
                            data = await self.stream.receive_some(MAX_RECV)
                            conn.receive_data(data, now=trio.current_time())
                            continue
                        conn.handle_timer(trio.current_time())
                        continue
                    if type(event) is InterleavedData:
                        continue  # RTCP receiver reports: liveness only (counted by the machine)
                    if isinstance(event, ConnectionClosed):
                        break
                    if isinstance(event, SessionExpired):
                        _log.info("rtsp client %s: session %s expired", self.peer, event.session_id)
                        break
                    handler = handlers.get(type(event))
                    if handler is not None:
                        await handler(event)
            finally:
                self.stop_sender()
                for out in self.tracks.values():
                    out.close()
                nursery.cancel_scope.cancel()

    # -- requests ------------------------------------------------------------------------------------------------

    async def _stream_tracks(self, stream_id: str) -> tuple[Track, ...] | None:
        """The stream's tracks, waiting a little for a registered stream that has not announced them yet."""
        engine = self.server.engine
        with trio.move_on_after(self.server.describe_wait):
            while True:
                for info in engine.list_streams():
                    if info.stream_id == stream_id:
                        if info.tracks:
                            return info.tracks
                        break
                else:
                    return None
                await trio.sleep(0.05)
        return None

    async def on_describe(self, event: DescribeRequest) -> None:
        stream_id, _ = _stream_of(event.path, setup=False)
        tracks = await self._stream_tracks(stream_id)
        if not tracks:
            self.conn.reject(event, 404)
            return
        sdp, _ = build_sdp(
            tracks, stream_id=stream_id, host=self.local_host, session_id=self.server.rng.getrandbits(62)
        )
        self.conn.respond_describe(event, sdp)

    async def on_setup(self, event: SetupRequest) -> None:
        conn = self.conn
        stream_id, control = _stream_of(event.path, setup=True)
        if self.stream_id is not None and stream_id != self.stream_id:
            conn.reject(event, 459)  # RFC 2326 §11.3.10: one stream per session here
            return
        if not control.startswith("trackID="):
            stream_id, control = _stream_of(event.path, setup=False)[0], "trackID=0"
        try:
            index = int(control[len("trackID=") :])
        except ValueError:
            conn.reject(event, 404)
            return
        if self.stream_id is None:
            tracks = await self._stream_tracks(stream_id)
            if not tracks:
                conn.reject(event, 404)
                return
            self.stream_tracks = tracks
            _, self.formats = build_sdp(tracks, stream_id=stream_id, host=self.local_host, session_id=0)
        if not 0 <= index < len(self.formats) or (fmt := self.formats[index]) is None:
            conn.reject(event, 404)
            return
        transport = event.transport
        if index in self.tracks:
            self.tracks.pop(index).close()
        out = _TrackOut(
            index=index,
            track=self.stream_tracks[index],
            fmt=fmt,
            transport=transport,
            rng=self.server.rng,
            mtu=self.server.mtu,
        )
        if transport.is_tcp:
            chosen = conn.accept_setup(event, ssrc=out.ssrc)
        else:
            assert transport.client_port is not None
            try:
                out.rtp_sock, out.rtcp_sock = _bind_udp_pair(self.local_host, self.server.rng)
            except OSError:
                conn.reject(event, 453)  # Not Enough Bandwidth: the closest status for "no ports"
                return
            server_port = (out.rtp_sock.getsockname()[1], out.rtcp_sock.getsockname()[1])
            # Media goes to the TCP peer's address only: a `destination` elsewhere would make us a traffic
            # reflector (RFC 2326 §12.39 lets the server refuse it).
            answer = attrs.evolve(transport, destination=None, source=None)
            chosen = conn.accept_setup(event, transport=answer, server_port=server_port, ssrc=out.ssrc)
            out.rtp_addr = (self.peer_host, transport.client_port[0])
            out.rtcp_addr = (self.peer_host, transport.client_port[1])
        out.transport = chosen
        self.tracks[index] = out
        self.stream_id = stream_id

    async def on_play(self, event: PlayRequest) -> None:
        if not self.tracks or self.stream_id is None:
            self.conn.reject(event, 455)
            return
        base = event.url.rstrip("/")
        if base.endswith(f"/trackID={min(self.tracks)}"):
            base = base.rsplit("/", 1)[0]
        infos = [RtpInfo(url=f"{base}/trackID={i}", seq=self._next_seq(out)) for i, out in sorted(self.tracks.items())]
        try:
            self.conn.accept_play(event, rtp_info=infos)
        except Exception:  # an URL RTP-Info cannot carry: answer without it
            self.conn.accept_play(event)
        if self.sender_scope is None:
            assert self.nursery is not None
            await self.nursery.start(self.send_media, self.stream_id)

    @staticmethod
    def _next_seq(out: _TrackOut) -> int:
        packetizer = out.video if out.video is not None else out.audio
        assert packetizer is not None
        return packetizer.next_sequence

    async def on_pause(self, event: PauseRequest) -> None:
        self.stop_sender()
        self.conn.accept(event)

    async def on_teardown(self, event: TeardownRequest) -> None:
        self.stop_sender()
        self.conn.accept(event)
        for out in self.tracks.values():
            out.close()
        self.tracks.clear()
        self.stream_id = None
        self.formats = []

    def stop_sender(self) -> None:
        if self.sender_scope is not None:
            self.sender_scope.cancel()
            self.sender_scope = None

    # -- media ---------------------------------------------------------------------------------------------------

    async def send_media(self, stream_id: str, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The session's sender: subscribe, packetize in batches, write; ends on cancel or when the stream stops."""
        with trio.CancelScope() as scope:
            self.sender_scope = scope
            try:
                subscription = self.server.engine.subscribe_stream(
                    stream_id, queue_size=self.server.queue_size, name=f"rtsp:{self.peer}"
                )
            except StreamNotFoundError:
                task_status.started()
                await self.close_stream()
                return
            task_status.started()
            async with subscription:
                ended = await self._pump(subscription)
            if ended:
                _log.info("rtsp client %s: stream %s ended", self.peer, stream_id)
                await self.close_stream()

    async def close_stream(self) -> None:
        """End the whole connection (the stream is gone): the handler closes the socket on its way out."""
        assert self.nursery is not None
        self.nursery.cancel_scope.cancel()
        await trio.lowlevel.checkpoint()

    async def _pump(self, subscription: Subscription) -> bool:
        by_codec = {self.stream_tracks[i].codec: out for i, out in self.tracks.items()}
        interval = self.server.sr_interval
        next_report = 0.0
        max_bytes = self.server.max_batch_bytes
        conn = self.conn
        while True:
            try:
                frames = [await subscription.receive()]
            except trio.EndOfChannel:
                return True
            size = len(frames[0].data)
            while size < max_bytes:
                try:
                    frame = subscription.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                frames.append(frame)
                size += len(frame.data)
            udp_packets: list[tuple[_TrackOut, list[bytes]]] = []
            for frame in frames:
                out = by_codec.get(frame.codec)
                if out is None:
                    continue
                packets = out.packetize(frame)
                self.frames += 1
                if out.rtp_sock is None:
                    assert out.transport.interleaved is not None
                    conn.send_interleaved_many(out.transport.interleaved[0], packets)
                else:
                    udp_packets.append((out, packets))
            now = trio.current_time()
            if now >= next_report:
                next_report = now + interval
                self._queue_reports()
            for out, packets in udp_packets:
                self._send_udp(out, packets, out.rtp_sock, out.rtp_addr)
            await self.flush()

    def _queue_reports(self) -> None:
        for out in self.tracks.values():
            report = out.sender_report()
            if report is None:
                continue
            if out.rtcp_sock is None:
                assert out.transport.interleaved is not None
                self.conn.send_interleaved(out.transport.interleaved[1], report)
            else:
                self._send_udp(out, [report], out.rtcp_sock, out.rtcp_addr)

    def _send_udp(
        self, out: _TrackOut, packets: list[bytes], sock: _socket.socket | None, addr: tuple[str, int] | None
    ) -> None:
        if sock is None or addr is None:
            return
        sendto = sock.sendto
        for packet in packets:
            try:
                sendto(packet, addr)
            except BlockingIOError:
                self.udp_dropped += 1
            except OSError:  # ICMP port unreachable reported on a later send: the client went away
                self.udp_dropped += 1

    def statistics(self) -> RtspOutputStatistics:
        return RtspOutputStatistics(
            packets=sum(o.packets for o in self.tracks.values()),
            octets=sum(o.octets for o in self.tracks.values()),
            frames=self.frames,
            udp_dropped=self.udp_dropped,
        )


class _Server:
    """Settings and shared state of one `serve_rtsp` (the Digest nonces are shared by all its connections)."""

    def __init__(
        self,
        engine: VideoEngine,
        *,
        auth: tuple[str, str] | None,
        realm: str,
        rng: random.Random,
        session_timeout: int,
        send_timeout: float,
        queue_size: int,
        max_batch_bytes: int,
        sr_interval: float,
        describe_wait: float,
        mtu: int,
    ) -> None:
        self.engine = engine
        self.rng = rng
        self.session_timeout = session_timeout
        self.send_timeout = send_timeout
        self.queue_size = queue_size
        self.max_batch_bytes = max_batch_bytes
        self.sr_interval = sr_interval
        self.describe_wait = describe_wait
        self.mtu = mtu
        self.clients: set[_Client] = set()
        self.digest: DigestServer | None = None
        self.lookup: Callable[[str], str | None] | None = None
        if auth is not None:
            username, password = auth
            # ffmpeg and VLC answer without qop and send the same nonce on every request of a session.
            self.digest = DigestServer(realm, rng, qop=None, reuse_without_qop=True)
            self.lookup = lambda name: password if name == username else None

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            client = _Client(self, stream)
        except OSError:  # the peer left before we could read its address
            await stream.aclose()
            return
        self.clients.add(client)
        _log.info("rtsp client %s connected", client.peer)
        try:
            await client.run()
        except Exception as exc:  # one client's failure never reaches the server or the other clients
            _log.info("rtsp client %s dropped: %s: %s", client.peer, type(exc).__name__, exc)
        finally:
            self.clients.discard(client)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            _log.info("rtsp client %s disconnected", client.peer)


async def serve_rtsp(
    engine: VideoEngine,
    host: str = "127.0.0.1",
    port: int = 8554,
    *,
    auth: tuple[str, str] | None = None,
    realm: str = "fluxkit",
    rng: random.Random | None = None,
    session_timeout: int = 60,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    sr_interval: float = DEFAULT_SR_INTERVAL,
    describe_wait: float = DEFAULT_DESCRIBE_WAIT,
    mtu: int = DEFAULT_MTU,
    handler_nursery: trio.Nursery | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve every engine stream over RTSP at `rtsp://host:port/<stream_id>` until cancelled.

    Use `listeners = await nursery.start(serve_rtsp, engine, "127.0.0.1", 0)` to learn the bound port
    (`listeners[0].socket.getsockname()[1]`).

    Args:
        engine: the engine whose streams are served.
        host: the address to listen on (also where UDP media ports are bound).
        port: the TCP port (0 picks a free one).
        auth: (username, password) to require Digest authentication (RFC 7616, MD5, no qop: what players
            answer), or None for none.
        realm: the Digest realm.
        rng: randomness for session ids, nonces, SSRCs, sequence numbers, timestamp offsets and UDP ports.
        session_timeout: seconds a session lives without a request or RTCP from the client.
        send_timeout: seconds a write may stall before the client is dropped.
        queue_size: frames a client's engine subscription may queue before it skips to the next keyframe.
        max_batch_bytes: frame bytes one sender batch gathers before writing.
        sr_interval: seconds between RTCP sender reports.
        describe_wait: seconds DESCRIBE waits for a registered stream's tracks.
        mtu: largest RTP packet, header included.
        handler_nursery: where connection tasks run (default: a nursery of `trio.serve_tcp`).
        task_status: started with the list of `trio.SocketListener`s.
    """
    server = _Server(
        engine,
        auth=auth,
        realm=realm,
        rng=rng if rng is not None else random.Random(),
        session_timeout=session_timeout,
        send_timeout=send_timeout,
        queue_size=queue_size,
        max_batch_bytes=max_batch_bytes,
        sr_interval=sr_interval,
        describe_wait=describe_wait,
        mtu=mtu,
    )
    await trio.serve_tcp(server.handle, port, host=host, handler_nursery=handler_nursery, task_status=task_status)
    raise AssertionError("trio.serve_tcp returned")  # pragma: no cover - it only ever raises or is cancelled
