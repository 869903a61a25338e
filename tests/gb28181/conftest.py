"""A scriptable in-test GB28181 device and a running platform, for the platform's end-to-end tests.

`FakeDevice` is a SIP user agent (the sans-IO `SipUserAgent`) on a UDP socket or a TCP connection, with just
enough device behaviour to drive every platform path deterministically: REGISTER (right or wrong password),
keepalive, Catalog answered in pages (optionally out of order and with a duplicate), DeviceInfo, PTZ recorded
verbatim, and INVITE answered with PS over RTP (`PsMuxer` + `PsRtpPacketizer` output) over UDP, TCP passive or
TCP active, with a chosen answer SSRC and a chosen SSRC in the RTP packets (0 for Dahua, another for Hikvision
platforms). It records what it received (PTZ commands, BYEs, INVITE offers) for assertions.
"""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from fluxkit.engine import VideoEngine, open_engine
from fluxkit.gb28181 import Gb28181Platform, PlatformSettings
from fluxkit.protocols.manscdp import (
    CatalogItem,
    CatalogQuery,
    CatalogResponse,
    DeviceControl,
    DeviceInfoQuery,
    DeviceInfoResponse,
    Keepalive,
    parse_manscdp,
)
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from fluxkit.protocols.ps import PsMuxer
from fluxkit.protocols.rtp import frame_rfc4571
from fluxkit.protocols.rtp.payload import PsRtpPacketizer
from fluxkit.protocols.sdp import build_gb28181_answer, parse_sdp
from fluxkit.protocols.sip import (
    RequestReceived,
    ResponseReceived,
    SipResponse,
    SipUserAgent,
    TransactionTimedOut,
)
from tests.mediagen import encode_annexb

DEVICE_ID = "34020000001320000001"
PLATFORM_ID = "34020000002000000001"
DOMAIN = "3402000000"
PASSWORD = "12345678"


@functools.cache
def clip() -> list[tuple[bytes, bool]]:
    """Access units (Annex-B bytes, keyframe) of a small generated H.264 clip."""
    annexb = encode_annexb("h264", width=160, height=120, frames=30, gop=10)
    assembler = AccessUnitAssembler("h264", insert_parameter_sets=False)
    units = [au for nal in split_annexb(annexb) for au in assembler.feed(nal)] + assembler.flush()
    return [
        (b"".join(b"\x00\x00\x00\x01" + n for n in au.nals), any(n[0] & 0x1F == 5 for n in au.nals)) for au in units
    ]


def ps_packets(ssrc: int, *, count: int) -> list[list[bytes]]:
    """RTP packets (serialized) of each frame: the clip looped to `count` frames, PS-muxed, 40 ms apart."""
    muxer = PsMuxer("h264")
    packetizer = PsRtpPacketizer(ssrc=ssrc, initial_sequence=100)
    frames = clip()
    out = []
    for i in range(count):
        data, key = frames[i % len(frames)]
        pts = 3600 * (i + 1)
        ps = muxer.mux_video(data, pts=pts, keyframe=key)
        out.append([p.serialize() for p in packetizer.packetize(ps, pts)])
    return out


class FakeDevice:
    """A GB28181 device for tests (see the module docstring).

    Args:
        platform_port: the platform's SIP port on 127.0.0.1.
        transport: "UDP" or "TCP" for SIP.
        channels: (channel id, name) of the catalog.
        page: catalog items per MESSAGE part.
        shuffle_parts: send the parts last-first and the first one twice.
        answer_ssrc: the y= of the INVITE answer (None: the offer's).
        rtp_ssrc: the SSRC in the RTP packets (None: the answer's).
        charset: charset of the MANSCDP bodies.
        frame_interval: seconds between the frames of a media session.
        media_frames: frames a media session sends before it ends (the clip looped).
    """

    def __init__(
        self,
        platform_port: int,
        *,
        device_id: str = DEVICE_ID,
        password: str | None = PASSWORD,
        transport: str = "UDP",
        channels: tuple[tuple[str, str], ...] = (),
        page: int = 2,
        shuffle_parts: bool = False,
        answer_ssrc: int | None = None,
        rtp_ssrc: int | None = None,
        charset: str = "GB2312",
        frame_interval: float = 0.01,
        media_frames: int = 200,
    ) -> None:
        self.platform_addr = ("127.0.0.1", platform_port)
        self.device_id = device_id
        self.transport = transport
        self.channels = channels or ((device_id, "Camera"),)
        self.page = page
        self.shuffle_parts = shuffle_parts
        self.answer_ssrc = answer_ssrc
        self.rtp_ssrc = rtp_ssrc
        self.charset = charset
        self.frame_interval = frame_interval
        self.media_frames = media_frames
        self.ua = SipUserAgent(
            user=device_id,
            host="127.0.0.1",
            port=0,
            rng=random.Random(1),
            domain=DOMAIN,
            transport=transport,
            password=password,
        )
        self.ptz: list[str] = []
        self.byes = 0
        self.offers: list[str] = []
        self.frames_sent = 0
        self.messages: list[object] = []
        self._waiters: dict[tuple[str, int, str], tuple[trio.Event, list[SipResponse | None]]] = {}
        self._sock: trio.socket.SocketType | None = None
        self._stream: trio.SocketStream | None = None
        self._nursery: trio.Nursery | None = None
        self._media_scope: trio.CancelScope | None = None
        self._wake = trio.Event()
        self._send_lock = trio.Lock()
        self._changed = trio.Event()
        self.register_call_id: str | None = None
        self.sent_raw: list[bytes] = []

    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        if self.transport == "UDP":
            self._sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await self._sock.bind(("127.0.0.1", 0))
            self.ua.port = self._sock.getsockname()[1]
            nursery.start_soon(self._udp_reader)
        else:
            self._stream = await trio.open_tcp_stream(*self.platform_addr)
            self.ua.port = self._stream.socket.getsockname()[1]
            nursery.start_soon(self._tcp_reader)
        nursery.start_soon(self._timers)

    async def stop(self) -> None:
        if self._media_scope is not None:
            self._media_scope.cancel()
        if self._sock is not None:
            self._sock.close()
        if self._stream is not None:
            await self._stream.aclose()

    # ---- plumbing ----

    async def _udp_reader(self) -> None:
        assert self._sock is not None
        while True:
            data, addr = await self._sock.recvfrom(65535)
            self.ua.receive_datagram(data, (addr[0], addr[1]), trio.current_time())
            await self._process()

    async def _tcp_reader(self) -> None:
        assert self._stream is not None
        while True:
            data = await self._stream.receive_some(65536)
            self.ua.receive_data(data, self.platform_addr, trio.current_time())
            await self._process()
            if not data:
                return

    async def _timers(self) -> None:
        while True:
            t = self.ua.get_timer()
            with trio.move_on_at(float("inf") if t is None else t):
                await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            if (t := self.ua.get_timer()) is not None and t <= now:
                self.ua.handle_timer(now)
                await self._process()

    async def flush(self) -> None:
        async with self._send_lock:
            for data, addr in self.ua.datagrams_to_send():
                self.sent_raw.append(data)
                if self._sock is not None:
                    await self._sock.sendto(data, addr)
                elif self._stream is not None:
                    await self._stream.send_all(data)
        self._wake.set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, predicate: object) -> None:
        """Wait until `predicate()` holds (checked after each request the device receives)."""
        while not predicate():  # type: ignore[operator]
            await self._changed.wait()

    async def send_raw(self, data: bytes) -> None:
        async with self._send_lock:
            if self._sock is not None:
                await self._sock.sendto(data, self.platform_addr)
            else:
                assert self._stream is not None
                await self._stream.send_all(data)

    async def _process(self) -> None:
        while (event := self.ua.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                if event.response.status_code >= 200:
                    self._resolve(event.request, event.response)
            elif isinstance(event, TransactionTimedOut):
                if event.client:
                    self._resolve(event.request, None)
            elif isinstance(event, RequestReceived):
                self._on_request(event)
                self._notify()
        await self.flush()

    def _resolve(self, request: object, response: SipResponse | None) -> None:
        key = (request.call_id, request.cseq.seq, request.method)  # type: ignore[attr-defined]
        entry = self._waiters.get(key)
        if entry is not None:
            entry[1].append(response)
            entry[0].set()

    async def request(self, build: object) -> SipResponse | None:
        request = build(self.ua, trio.current_time())  # type: ignore[operator]
        event = trio.Event()
        box: list[SipResponse | None] = []
        # A 401 retry keeps the Call-ID and bumps the CSeq: wait on the Call-ID and method.
        self._waiters[(request.call_id, request.cseq.seq, request.method)] = (event, box)
        self._waiters[(request.call_id, request.cseq.seq + 1, request.method)] = (event, box)
        await self.flush()
        await event.wait()
        return box[0]

    # ---- device actions ----

    async def register(self, expires: int = 3600) -> SipResponse | None:
        def build(ua: SipUserAgent, now: float) -> object:
            req = ua.register(
                f"sip:{PLATFORM_ID}@{DOMAIN}", self.platform_addr, now, expires=expires, call_id=self.register_call_id
            )
            self.register_call_id = req.call_id
            return req

        return await self.request(build)

    async def send_message(self, message: object) -> SipResponse | None:
        body = message.encode(self.charset)  # type: ignore[attr-defined]
        return await self.request(
            lambda ua, now: ua.message(f"sip:{PLATFORM_ID}@{DOMAIN}", self.platform_addr, now, body)
        )

    async def keepalive(self, sn: int = 1) -> SipResponse | None:
        return await self.send_message(Keepalive(sn=sn, device_id=self.device_id))

    # ---- requests from the platform ----

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        now = trio.current_time()
        assert self._nursery is not None
        if request.method == "MESSAGE":
            self.ua.respond(request, 200, now)
            message = parse_manscdp(request.body)
            self.messages.append(message)
            if isinstance(message, CatalogQuery):
                self._nursery.start_soon(self._send_catalog, message.sn)
            elif isinstance(message, DeviceInfoQuery):
                answer = DeviceInfoResponse(
                    sn=message.sn, device_id=self.device_id, device_name="IPC", manufacturer="Test", result="OK"
                )
                self._nursery.start_soon(self.send_message, answer)
            elif isinstance(message, DeviceControl) and message.ptz_cmd is not None:
                self.ptz.append(message.ptz_cmd)
        elif request.method == "INVITE":
            self._nursery.start_soon(self._answer_invite, request)
        elif request.method == "BYE":
            self.byes += 1
            self.ua.respond(request, 200, now)
            if self._media_scope is not None:
                self._media_scope.cancel()
        else:
            self.ua.respond(request, 200, now)

    async def _send_catalog(self, sn: int) -> None:
        items = [
            CatalogItem(device_id=cid, name=name, status="ON", parent_id=self.device_id) for cid, name in self.channels
        ]
        parts = [
            CatalogResponse(sn=sn, device_id=self.device_id, sum_num=len(items), items=tuple(items[i : i + self.page]))
            for i in range(0, len(items), self.page)
        ]
        if self.shuffle_parts:
            parts = [*reversed(parts), parts[-1]]
        for part in parts:
            await self.send_message(part)

    async def _answer_invite(self, request: object) -> None:
        now = trio.current_time()
        body = request.body.decode()  # type: ignore[attr-defined]
        self.offers.append(body)
        self._notify()
        offer = parse_sdp(body)
        media = offer.media[0]
        ssrc = self.answer_ssrc if self.answer_ssrc is not None else offer.ssrc_int
        assert ssrc is not None
        rtp_ssrc = self.rtp_ssrc if self.rtp_ssrc is not None else ssrc
        target = (offer.connection.address if offer.connection else "127.0.0.1", media.port)
        listener = None
        port = 0
        if media.is_tcp and media.setup == "active":
            listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
            port = listener.socket.getsockname()[1]
        answer = build_gb28181_answer(offer, origin_id=self.device_id, address="127.0.0.1", port=port, ssrc=ssrc)
        self.ua.respond(request, 200, now, body=answer.serialize().encode(), content_type="application/sdp")  # type: ignore[arg-type]
        await self.flush()
        assert self._nursery is not None
        self._nursery.start_soon(self._stream_media, media.is_tcp, target, listener, rtp_ssrc)

    async def _stream_media(
        self, tcp: bool, target: tuple[str, int], listener: trio.SocketListener | None, ssrc: int
    ) -> None:
        packets = ps_packets(ssrc, count=self.media_frames)
        with trio.CancelScope() as scope:
            self._media_scope = scope
            if not tcp:
                sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                await sock.bind(("127.0.0.1", 0))
                with sock:
                    for frame in packets:
                        for packet in frame:
                            await sock.sendto(packet, target)
                        self.frames_sent += 1
                        await trio.sleep(self.frame_interval)
                return
            if listener is not None:
                stream = await listener.accept()
                await listener.aclose()
            else:
                stream = await trio.open_tcp_stream(*target)
            async with stream:
                for frame in packets:
                    await stream.send_all(b"".join(frame_rfc4571(p) for p in frame))
                    self.frames_sent += 1
                    await trio.sleep(self.frame_interval)


@asynccontextmanager
async def running_platform(
    tmp_path: Path | None = None, *, engine: VideoEngine | None = None, **settings: object
) -> AsyncIterator[Gb28181Platform]:
    """A platform serving on free loopback ports (SIP port 0), its registry in `tmp_path` when given."""
    defaults: dict[str, object] = {"sip_port": 0, "password": PASSWORD, "media_port_range": (41000, 41999)}
    defaults.update(settings)
    platform = Gb28181Platform(
        engine,
        PlatformSettings(**defaults),  # type: ignore[arg-type]
        rng=random.Random(7),
        registry_path=tmp_path / "gb28181.sqlite" if tmp_path is not None else ":memory:",
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(platform.serve)
            yield platform
            nursery.cancel_scope.cancel()
    finally:
        platform.close()


@asynccontextmanager
async def engine_and_platform(
    tmp_path: Path | None = None, **settings: object
) -> AsyncIterator[tuple[VideoEngine, Gb28181Platform]]:
    async with open_engine(rng=random.Random(3)) as engine, running_platform(tmp_path, engine=engine, **settings) as p:
        yield engine, p


@asynccontextmanager
async def device_on(platform: Gb28181Platform, **kwargs: object) -> AsyncIterator[FakeDevice]:
    """A started FakeDevice (not yet registered)."""
    device = FakeDevice(platform.sip_port, **kwargs)  # type: ignore[arg-type]
    try:
        async with trio.open_nursery() as nursery:
            await device.start(nursery)
            yield device
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await device.stop()
