"""The simulated GB28181 device against a small in-test platform built on the sans-IO `SipUserAgent`.

The platform here is deliberately minimal (one UDP socket, Digest checked by the user agent): it registers the
device, queries it, sends PTZ, INVITEs it over UDP, TCP passive and TCP active, receives the RTP with
`PsOverRtpReceiver` and decodes the frames with PyAV. Pacing is checked under `MockClock(autojump_threshold=0)`,
so "real time" is exact virtual time and nothing is timed on the wall clock.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import av
import pytest
import trio
import trio.testing

from fluxkit.gb28181.device import DeviceSettings, PtzPosition, SimulatedDevice, hik_ps
from fluxkit.protocols.digest import DigestServer
from fluxkit.protocols.manscdp import (
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
    MediaStatus,
    PtzCommand,
    RecordInfoQuery,
    RecordInfoResponse,
    RecordItem,
    ResponseAssembler,
    parse_manscdp,
)
from fluxkit.protocols.ps import PsDemuxer, parse_psm
from fluxkit.protocols.rtp import Rfc4571Deframer, RtpPacket, parse_rtp
from fluxkit.protocols.rtp.payload import PsOverRtpReceiver
from fluxkit.protocols.sdp import build_gb28181_offer, parse_sdp
from fluxkit.protocols.sip import (
    Dialog,
    RequestReceived,
    ResponseReceived,
    SipRequest,
    SipResponse,
    SipUserAgent,
    TransactionTimedOut,
)
from fluxkit.sim import LoadedClip, load_clip
from tests.mediagen import encode_annexb

PLATFORM_ID = "34020000002000000001"
DOMAIN = "3402000000"
DEVICE_ID = "34020000001320000001"
PASSWORD = "12345678"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> LoadedClip:
    # Loaded here, not in the device's worker thread: under autojump the virtual clock would run away meanwhile.
    path = tmp_path_factory.mktemp("clip") / "clip.h264"
    path.write_bytes(encode_annexb("h264", width=160, height=96, frames=50, gop=25, fps=25))
    return load_clip(path)


class MiniPlatform:
    """A test platform: registrar, MANSCDP sink, INVITE sender, on one UDP socket."""

    def __init__(self, passwords: dict[str, str] | None = None) -> None:
        self.passwords = passwords if passwords is not None else {DEVICE_ID: PASSWORD}
        self.ua: SipUserAgent | None = None
        self.port = 0
        self.registered: list[tuple[str | None, int]] = []  # (user, expires)
        self.device_addr: tuple[str, int] | None = None
        self.messages: list[ManscdpMessage] = []
        self.requests: list[SipRequest] = []
        self.changed = trio.Event()
        self._waiters: dict[str, list[Any]] = {}
        self._wake = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.ua = SipUserAgent(
            user=PLATFORM_ID,
            host="127.0.0.1",
            port=self.port,
            rng=random.Random(7),
            domain=DOMAIN,
            authenticator=DigestServer(DOMAIN, random.Random(8)),
            lookup=self.passwords.get,
        )
        nursery.start_soon(self._receive)
        nursery.start_soon(self._timers)

    async def _receive(self) -> None:
        try:
            await self._receive_loop()
        finally:
            self.sock.close()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()

    async def _flush(self, *, poke: bool = True) -> None:
        assert self.ua is not None
        if poke:
            self._wake.set()
        for data, addr in self.ua.datagrams_to_send():
            await self.sock.sendto(data, addr)

    async def _receive_loop(self) -> None:
        assert self.ua is not None
        while True:
            data, addr = await self.sock.recvfrom(65536)
            self.ua.receive_datagram(data, (addr[0], addr[1]), trio.current_time())
            self._events()
            await self._flush()

    async def _timers(self) -> None:
        assert self.ua is not None
        while True:
            deadline = self.ua.get_timer()
            with trio.move_on_at(float("inf") if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            self.ua.handle_timer(trio.current_time())
            self._events()
            await self._flush(poke=False)

    def _events(self) -> None:
        assert self.ua is not None
        now = trio.current_time()
        while (event := self.ua.next_event()) is not None:
            if isinstance(event, RequestReceived):
                request = event.request
                self.requests.append(request)
                if request.method == "REGISTER":
                    expires = int(request.headers.get("Expires") or "3600")
                    self.registered.append((event.username, expires))
                    self.device_addr = event.addr
                    self.ua.respond(
                        request, 200, now, headers=[("Expires", str(expires)), ("Date", "2024-01-01T12:00:00.000")]
                    )
                elif request.method == "MESSAGE":
                    self.messages.append(parse_manscdp(request.body))
                    self.ua.respond(request, 200, now)
                else:
                    self.ua.respond(request, 200, now)
            elif isinstance(event, ResponseReceived) and event.response.status_code >= 200:
                slot = self._waiters.get(event.request.call_id)
                if slot is not None:
                    slot[1] = (event.response, event.dialog)
                    slot[0].set()
            elif isinstance(event, TransactionTimedOut) and event.client:
                slot = self._waiters.get(event.request.call_id)
                if slot is not None:
                    slot[0].set()
        self._notify()

    async def _transact(self, build: Callable[[SipUserAgent, float], SipRequest]) -> tuple[SipResponse, Dialog | None]:
        assert self.ua is not None
        request = build(self.ua, trio.current_time())
        slot: list[Any] = [trio.Event(), None]
        self._waiters[request.call_id] = slot
        await self._flush()
        await slot[0].wait()
        assert slot[1] is not None, f"{request.method} timed out"
        return slot[1]  # type: ignore[no-any-return]

    async def query(self, message: ManscdpMessage, target: str = DEVICE_ID) -> SipResponse:
        assert self.device_addr is not None
        body = message.encode()
        response, _ = await self._transact(
            lambda ua, now: ua.message(f"sip:{target}@{DOMAIN}", self.device_addr, now, body)  # type: ignore[arg-type]
        )
        return response

    async def invite(self, channel: str, sdp: bytes) -> tuple[SipResponse, Dialog | None]:
        assert self.device_addr is not None
        addr = self.device_addr
        return await self._transact(
            lambda ua, now: ua.invite(
                f"sip:{channel}@{DOMAIN}",
                addr,
                now,
                body=sdp,
                headers=[("Subject", f"{channel}:0100000001,{PLATFORM_ID}:0")],
            )
        )

    async def subscribe(
        self, event: str, message: ManscdpMessage, *, expires: int = 3600
    ) -> tuple[SipResponse, Dialog | None]:
        """SUBSCRIBE (9.11) with `message` as the query body; NOTIFYs land in `requests`."""
        assert self.device_addr is not None
        addr = self.device_addr
        body = message.encode()
        return await self._transact(
            lambda ua, now: ua.subscribe(
                f"sip:{DEVICE_ID}@{DOMAIN}",
                addr,
                now,
                event=event,
                expires=expires,
                body=body,
                content_type="Application/MANSCDP+xml",
            )
        )

    def notifies(self) -> list[ManscdpMessage]:
        """The MANSCDP bodies of the NOTIFYs received so far (subscription ends without a body are skipped)."""
        return [parse_manscdp(r.body) for r in self.requests if r.method == "NOTIFY" and r.body]

    async def bye(self, dialog: Dialog) -> None:
        assert self.ua is not None
        self.ua.bye(dialog, trio.current_time())
        await self._flush()

    async def info(self, dialog: Dialog, request: MansrtspRequest) -> SipResponse:
        response, _ = await self._transact(lambda ua, now: ua.info(dialog, now, request.serialize()))
        return response


def _settings(platform: MiniPlatform, **kw: Any) -> DeviceSettings:
    base: dict[str, Any] = {
        "server_host": "127.0.0.1",
        "server_port": platform.port,
        "server_id": PLATFORM_ID,
        "domain": DOMAIN,
        "device_id": DEVICE_ID,
        "password": PASSWORD,
    }
    base.update(kw)
    return DeviceSettings(**base)


async def _boot(
    nursery: trio.Nursery, platform: MiniPlatform, *, clip: LoadedClip | None = None, **kw: Any
) -> SimulatedDevice:
    await platform.start(nursery)
    lines: list[str] = []
    device = SimulatedDevice(_settings(platform, **kw), rng=random.Random(5), report=lines.append, clip=clip)
    device.lines = lines  # type: ignore[attr-defined]
    await nursery.start(device.run)
    return device


# ---- registration -------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_registers_with_digest_and_reports_it() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform)
            await device.wait_registered()
            assert platform.registered == [(DEVICE_ID, 3600)]  # the user agent checked the digest
            assert device.server_date == "2024-01-01T12:00:00.000"
            assert any("registration registered" in line for line in device.lines)  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_wrong_password_is_reported_and_retried(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, password="wrong")
            await device.wait_state(lambda d: d.state == "rejected")
            assert device.last_status == 403
            lines = device.lines  # type: ignore[attr-defined]
            assert any("403" in line and "wrong password" in line for line in lines)
            first = sum("rejected" in line for line in lines)
            await trio.sleep(10)  # back-off 1, 2, 4 s: retried, not hammering
            again = sum("rejected" in line for line in lines)
            assert first + 2 <= again <= first + 4
            assert platform.registered == []
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_keepalives_and_refresh_under_autojump(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, keepalive_interval=60, register_expires=400)
            await device.wait_registered()
            t0 = trio.current_time()
            await trio.sleep(610)
            keepalives = [m for m in platform.messages if isinstance(m, Keepalive)]
            assert len(keepalives) == 10
            assert all(k.device_id == DEVICE_ID and k.status == "OK" for k in keepalives)
            assert len({k.sn for k in keepalives}) == 10
            assert device.keepalives_answered == 10
            # Refreshed at 3/4 of 400 s: t0+300 and t0+600.
            assert len(platform.registered) == 3
            assert trio.current_time() - t0 >= 610
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_tcp_signalling_registers() -> None:
    # The platform helper owns SIP-over-TCP platforms; here the device's TCP side meets a TCP user agent.
    with trio.fail_after(10):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        ua = SipUserAgent(
            user=PLATFORM_ID,
            host="127.0.0.1",
            port=port,
            rng=random.Random(1),
            domain=DOMAIN,
            transport="TCP",
            authenticator=DigestServer(DOMAIN, random.Random(2)),
            lookup={DEVICE_ID: PASSWORD}.get,
        )
        users: list[str | None] = []

        async def serve(stream: trio.SocketStream) -> None:
            addr = stream.socket.getpeername()[:2]
            while data := await stream.receive_some(65536):
                ua.receive_data(data, addr, trio.current_time())
                while (event := ua.next_event()) is not None:
                    if isinstance(event, RequestReceived):
                        if event.request.method == "REGISTER":
                            users.append(event.username)
                        ua.respond(event.request, 200, trio.current_time())
                for out, _ in ua.datagrams_to_send():
                    await stream.send_all(out)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, serve, listeners)
            platform = MiniPlatform()
            platform.port = port
            device = SimulatedDevice(_settings(platform, transport="tcp"), rng=random.Random(3), report=lambda _: None)
            nursery.start_soon(device.run)
            await device.wait_registered()
            assert users == [DEVICE_ID]
            nursery.cancel_scope.cancel()


# ---- MANSCDP -------------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_catalog_of_20_channels_comes_in_parts_and_assembles() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, channels=20, kind="nvr")
            await device.wait_registered()
            response = await platform.query(CatalogQuery(sn=17, device_id=DEVICE_ID))
            assert response.status_code == 200
            await platform.wait_for(lambda: sum(isinstance(m, CatalogResponse) for m in platform.messages) >= 3)
            parts = [m for m in platform.messages if isinstance(m, CatalogResponse)]
            assert [len(p.items) for p in parts] == [8, 8, 4]
            assert {p.sn for p in parts} == {17}
            assert {p.sum_num for p in parts} == {20}
            assembler = ResponseAssembler()
            done = [r for p in parts if (r := assembler.feed(p, now=0.0)) is not None]
            assert len(done) == 1
            ids = [item.device_id for item in done[0].items]
            assert ids == list(device.channel_ids)
            assert len(set(ids)) == 20
            first = done[0].items[0]
            assert first.name == "fluxkit 模拟设备 1"
            assert first.status == "ON"
            assert first.parent_id == DEVICE_ID
            assert parts[0].charset is not None
            assert "GB" in parts[0].charset.upper()
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_device_info_status_and_records() -> None:
    records = (
        RecordItem(
            device_id="", name="r1", start_time="2024-01-01T00:00:00", end_time="2024-01-01T01:00:00", type="time"
        ),
        RecordItem(
            device_id="", name="r2", start_time="2024-01-02T00:00:00", end_time="2024-01-02T01:00:00", type="time"
        ),
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, records=records)
            await device.wait_registered()
            channel = device.channel_ids[0]
            await platform.query(DeviceInfoQuery(sn=1, device_id=DEVICE_ID))
            await platform.query(DeviceStatusQuery(sn=2, device_id=DEVICE_ID))
            await platform.query(
                RecordInfoQuery(
                    sn=3, device_id=channel, start_time="2024-01-01T00:30:00", end_time="2024-01-01T12:00:00"
                )
            )
            await platform.wait_for(lambda: len(platform.messages) >= 3)
            by_type = {type(m): m for m in platform.messages}
            info = by_type[DeviceInfoResponse]
            assert isinstance(info, DeviceInfoResponse)
            assert info.sn == 1
            assert info.result == "OK"
            assert info.channel == "1"
            assert info.manufacturer == "fluxkit"
            status = by_type[DeviceStatusResponse]
            assert isinstance(status, DeviceStatusResponse)
            assert status.online == "ONLINE"
            assert status.sn == 2
            rec = by_type[RecordInfoResponse]
            assert isinstance(rec, RecordInfoResponse)
            assert rec.sn == 3
            assert rec.sum_num == 1
            assert [i.name for i in rec.items] == ["r1"]
            assert rec.items[0].device_id == channel
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_ptz_is_recorded_byte_exact_and_moves_the_head(autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform)
            await device.wait_registered()
            channel = device.channel_ids[0]
            right = PtzCommand.move(pan="right", pan_speed=0x80)
            assert right.encode() == "A50F010180000036"
            response = await platform.query(DeviceControl.ptz(sn=5, device_id=channel, command=right), target=channel)
            assert response.status_code == 200
            await trio.sleep(2)
            await platform.query(DeviceControl.ptz(sn=6, device_id=channel, command=PtzCommand.stop()), target=channel)
            moved = device.ptz_position(channel)
            await trio.sleep(5)
            assert device.ptz_position(channel) == moved  # stopped
            assert moved.tilt == 0.0
            assert moved.zoom == 1.0
            assert moved.pan == pytest.approx(2 * 0x80 / 255 * 100.0, abs=1.0)
            assert [(e.hex, e.channel_id, e.sn) for e in device.ptz_log] == [
                ("A50F010180000036", channel, 5),
                ("A50F0100000000B5", channel, 6),
            ]
            assert "PTZCmd A50F010180000036" in device.lines  # type: ignore[attr-defined]
            # Presets: set here, move away, call back.
            from fluxkit.protocols.manscdp import PtzAction

            await platform.query(
                DeviceControl.ptz(sn=7, device_id=channel, command=PtzCommand.preset_command(PtzAction.PRESET_SET, 3))
            )
            await platform.query(
                DeviceControl.ptz(sn=8, device_id=channel, command=PtzCommand.move(tilt="up", tilt_speed=255))
            )
            await trio.sleep(1)
            assert device.ptz_position(channel).tilt == pytest.approx(60.0, abs=1.0)
            await platform.query(
                DeviceControl.ptz(sn=9, device_id=channel, command=PtzCommand.preset_command(PtzAction.PRESET_CALL, 3))
            )
            assert device.ptz_position(channel) == moved
            assert not platform.messages or all(isinstance(m, Keepalive) for m in platform.messages)  # 9.3.1
            nursery.cancel_scope.cancel()


def test_ptz_head_clamps_and_wraps() -> None:
    from fluxkit.gb28181.device import PtzHead

    head = PtzHead()
    head.apply(PtzCommand.move(pan="left", tilt="down", zoom="in", pan_speed=255, tilt_speed=255, zoom_speed=15), 0.0)
    pos = head.position(10.0)
    assert pos == PtzPosition(pan=(-1000.0) % 360.0, tilt=-90.0, zoom=30.0)
    assert head.moving


# ---- media -----------------------------------------------------------------------------------------------------


class RtpSink:
    """The platform's media side for one transport: collects RTP packets with their arrival time."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.packets: list[tuple[float, RtpPacket]] = []
        self.port = 0
        self.changed = trio.Event()
        self._udp: trio.socket.SocketType | None = None
        self._listener: trio.SocketListener | None = None

    async def open(self) -> None:
        if self.transport == "udp":
            self._udp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await self._udp.bind(("127.0.0.1", 0))
            self.port = self._udp.getsockname()[1]
        elif self.transport == "tcp-passive":
            self._listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
            self.port = self._listener.socket.getsockname()[1]

    def _got(self, data: bytes) -> None:
        self.packets.append((trio.current_time(), parse_rtp(data)))
        self.changed.set()
        self.changed = trio.Event()

    async def run(self, answer_port: int = 0) -> None:
        try:
            await self._run(answer_port)
        finally:
            if self._udp is not None:
                self._udp.close()
            if self._listener is not None:
                await trio.aclose_forcefully(self._listener)

    async def _run(self, answer_port: int) -> None:
        if self._udp is not None:
            while True:
                data, _ = await self._udp.recvfrom(65536)
                self._got(data)
        if self._listener is not None:
            stream: trio.abc.Stream = await self._listener.accept()
        else:  # tcp-active: we connect to the device's answer port
            stream = await trio.open_tcp_stream("127.0.0.1", answer_port)
        deframer = Rfc4571Deframer()
        async with stream:
            while data := await stream.receive_some(65536):
                for packet in deframer.feed(data):
                    self._got(packet)

    async def wait_packets(self, predicate: Callable[[list[tuple[float, RtpPacket]]], bool]) -> None:
        while not predicate(self.packets):
            await self.changed.wait()


def _offer(transport: str, port: int, *, kind: str = "Play", start: int = 0, end: int = 0, channel: str = "") -> bytes:
    sdp = build_gb28181_offer(
        kind=kind,  # type: ignore[arg-type]
        origin_id=PLATFORM_ID,
        address="127.0.0.1",
        port=port,
        ssrc="0100000001" if kind == "Play" else "1100000002",
        transport=transport,  # type: ignore[arg-type]
        channel_id=channel or None,
        start=start,
        end=end,
    )
    return sdp.serialize().encode()


def _decode(packets: list[RtpPacket]) -> tuple[int, list[int]]:
    receiver = PsOverRtpReceiver()
    frames = []
    for packet in packets:
        frames += receiver.feed(packet)
    frames += receiver.flush()
    codec = av.CodecContext.create("h264", "r")
    decoded = 0
    for frame in frames:
        decoded += len(codec.decode(av.Packet(frame.data)))
    decoded += len(codec.decode(None))
    return decoded, [f.dts if f.dts is not None else -1 for f in frames]


@pytest.mark.trio
@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
async def test_live_invite_streams_ps_over_rtp_at_real_time(
    transport: str, clip: LoadedClip, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, clip=clip, channels=2)
            await device.wait_registered()
            channel = device.channel_ids[1]
            sink = RtpSink(transport)
            await sink.open()
            if transport != "tcp-active":
                nursery.start_soon(sink.run)
            response, dialog = await platform.invite(channel, _offer(transport, sink.port))
            assert response.status_code == 200
            assert dialog is not None
            answer = parse_sdp(response.body.decode())
            assert answer.ssrc == "0100000001"
            media = answer.media[0]
            assert media.port > 0
            if transport == "udp":
                assert media.proto == "RTP/AVP"
            else:
                assert media.proto == "TCP/RTP/AVP"
                assert media.setup == ("active" if transport == "tcp-passive" else "passive")
                if transport == "tcp-active":
                    nursery.start_soon(sink.run, media.port)
            # 4 s of virtual time = 100 frames: two passes of the 50-frame clip.
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 100)
            await platform.bye(dialog)
            await trio.sleep(1)
            count = len(sink.packets)
            await trio.sleep(2)
            assert len(sink.packets) == count  # BYE stopped it
            assert device.sessions == []
            packets = [p for _, p in sink.packets]
            assert {p.ssrc for p in packets} == {100000001}
            assert {p.payload_type for p in packets} == {96}
            seqs = [p.sequence_number for p in packets]
            assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
            # Frames every 3600 ticks (25 fps), continuous over the loop, sent when due (virtual clock).
            firsts: dict[int, float] = {}
            for when, p in sink.packets:
                firsts.setdefault(p.timestamp, when)
            stamps = sorted(firsts, key=lambda t: (t - packets[0].timestamp) & 0xFFFFFFFF)
            deltas = {(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)}
            assert deltas == {3600}
            t0, ts0 = firsts[stamps[0]], stamps[0]
            for ts in stamps:
                assert firsts[ts] - t0 == pytest.approx(((ts - ts0) & 0xFFFFFFFF) / 90000, abs=1e-6)
            decoded, dts = _decode(packets)
            assert decoded >= 99
            assert all(b - a == 3600 for a, b in itertools.pairwise(dts))
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_playback_scale_pause_seek_and_end_of_file(
    clip: LoadedClip, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, clip=clip)
            await device.wait_registered()
            channel = device.channel_ids[0]
            sink = RtpSink("udp")
            await sink.open()
            nursery.start_soon(sink.run)
            start = 1_704_067_200
            response, dialog = await platform.invite(
                channel, _offer("udp", sink.port, kind="Playback", start=start, end=start + 6, channel=channel)
            )
            assert response.status_code == 200
            assert dialog is not None
            assert parse_sdp(response.body.decode()).ssrc == "1100000002"
            t0 = trio.current_time()
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 25)  # 1 s of media at 1x
            assert trio.current_time() - t0 == pytest.approx(24 / 25, abs=1e-6)
            ok = await platform.info(dialog, MansrtspRequest.play(1, scale=4.0))
            assert ok.status_code == 200
            assert ok.body.startswith(b"RTSP/1.0 200 OK")
            t1 = trio.current_time()
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 75)  # 2 s more media at 4x
            assert trio.current_time() - t1 == pytest.approx(0.5, abs=0.05)
            await platform.info(dialog, MansrtspRequest.pause(2))
            paused_at = len(sink.packets)
            await trio.sleep(3)
            assert len(sink.packets) == paused_at
            await platform.info(dialog, MansrtspRequest.play(3, seek=1.0))  # back to 1 s (keyframe at 1 s)
            await platform.info(dialog, MansrtspRequest.play(4, scale=1.0))
            await platform.wait_for(lambda: any(isinstance(m, MediaStatus) for m in platform.messages))
            status = next(m for m in platform.messages if isinstance(m, MediaStatus))
            assert status.notify_type == "121"
            assert status.device_id == channel
            stamps = [p.timestamp for _, p in sink.packets]
            base = stamps[0]
            rel = sorted({(t - base) & 0xFFFFFFFF for t in stamps})
            assert rel[-1] == 6 * 90000 - 3600  # the whole 6 s range, timestamps not rescaled by the speed
            after_seek = [(t - base) & 0xFFFFFFFF for t in stamps[paused_at:]]
            assert after_seek[0] == 90000  # resumed at the keyframe of 1 s
            await platform.bye(dialog)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_ignore_scale_quirk_answers_200_and_stays_at_1x(
    clip: LoadedClip, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, clip=clip, quirks={"ignore_scale"})
            await device.wait_registered()
            channel = device.channel_ids[0]
            sink = RtpSink("udp")
            await sink.open()
            nursery.start_soon(sink.run)
            start = 1_704_067_200
            response, dialog = await platform.invite(
                channel, _offer("udp", sink.port, kind="Playback", start=start, end=start + 6, channel=channel)
            )
            assert response.status_code == 200
            assert dialog is not None
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 10)
            ok = await platform.info(dialog, MansrtspRequest.play(1, scale=4.0))
            assert ok.status_code == 200  # acknowledged, like a Hikvision NVR...
            assert ok.body.startswith(b"RTSP/1.0 200 OK")
            t1 = trio.current_time()
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 60)
            assert trio.current_time() - t1 == pytest.approx(2.0, abs=0.05)  # ...but 50 frames take 2 s: 1x
            session = device.sessions[0]
            assert session.control.scale == 1.0
            assert [r.scale for r in session.control.requests] == [4.0]
            await platform.bye(dialog)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_invite_for_unknown_channel_is_404() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform)
            await device.wait_registered()
            response, _ = await platform.invite("34020000001319999999", _offer("udp", 9))
            assert response.status_code == 404
            nursery.cancel_scope.cancel()


# ---- quirks ------------------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_quirks_ssrc_zero_hik_psm_slow_200(clip: LoadedClip, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(
                nursery, platform, clip=clip, quirks={"ssrc_zero", "hik_psm", "slow_200"}, slow_200_delay=4.0
            )
            await device.wait_registered()
            sink = RtpSink("udp")
            await sink.open()
            nursery.start_soon(sink.run)
            t0 = trio.current_time()
            response, dialog = await platform.invite(device.channel_ids[0], _offer("udp", sink.port))
            assert trio.current_time() - t0 >= 4.0  # only 100 Trying until then
            assert response.status_code == 200
            assert dialog is not None
            assert parse_sdp(response.body.decode()).ssrc == "0100000001"  # answers what was offered ...
            await sink.wait_packets(lambda ps: len({p.timestamp for _, p in ps}) >= 30)
            packets = [p for _, p in sink.packets]
            assert {p.ssrc for p in packets} == {0}  # ... and sends SSRC 0 (Dahua)
            ps = b"".join(p.payload for p in packets)
            at = ps.find(b"\x00\x00\x01\xbc")
            psm, _ = parse_psm(ps, at)
            assert psm.program_info[:4] == b"\x40\x0e" + b"HK"
            assert psm.entries[0].descriptors[0] == 0x42
            assert b"\x00\x00\x01\xbd" in ps
            demuxer = PsDemuxer()
            frames = demuxer.feed(ps) + demuxer.flush()
            assert len(frames) >= 29
            assert all(f.codec == "h264" for f in frames)
            await platform.bye(dialog)
            nursery.cancel_scope.cancel()


def test_hik_ps_leaves_packs_without_psm_alone() -> None:
    assert hik_ps(b"\x00\x00\x01\xba" + bytes(20), 0x1B) == b"\x00\x00\x01\xba" + bytes(20)


@pytest.mark.trio
async def test_gb2312_bare_ampersand_quirk() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, quirks={"gb2312_bare_amp"})
            await device.wait_registered()
            await platform.query(CatalogQuery(sn=4, device_id=DEVICE_ID))
            await platform.wait_for(lambda: any(isinstance(m, CatalogResponse) for m in platform.messages))
            catalog = next(m for m in platform.messages if isinstance(m, CatalogResponse))
            assert b"A&B" in catalog.raw
            assert b"&amp;" not in catalog.raw
            assert b'encoding="GB2312"' in catalog.raw
            assert "模拟设备".encode("gb2312") in catalog.raw
            assert catalog.items[0].name is not None
            assert catalog.items[0].name.endswith("A&B")
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_restart_quirk_drops_the_stream_and_registers_again(
    clip: LoadedClip, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _boot(nursery, platform, clip=clip, quirks={"restart"}, restart_after=2.0)
            await device.wait_registered()
            sink = RtpSink("udp")
            await sink.open()
            nursery.start_soon(sink.run)
            response, _dialog = await platform.invite(device.channel_ids[0], _offer("udp", sink.port))
            assert response.status_code == 200
            await device.wait_registered(2)
            assert device.restarts == 1
            assert device.sessions == []
            count = len(sink.packets)
            assert count > 0
            await trio.sleep(3)
            assert len(sink.packets) == count  # no stream after the reboot, and no BYE was sent
            assert not any(r.method == "BYE" for r in platform.requests)
            assert len(platform.registered) == 2
            nursery.cancel_scope.cancel()


def test_settings_are_validated() -> None:
    good = {"server_host": "127.0.0.1", "server_port": 5060, "server_id": PLATFORM_ID, "domain": DOMAIN}
    with pytest.raises(ValueError, match="20-digit"):
        DeviceSettings(**good, device_id="123", password="x")
    with pytest.raises(ValueError, match="unknown quirks"):
        DeviceSettings(**good, device_id=DEVICE_ID, password="x", quirks={"nope"})
    settings = DeviceSettings(**good, device_id=DEVICE_ID, password="x", channels=3)
    assert settings.channel_list == ("34020000001310000101", "34020000001310000102", "34020000001310000103")
