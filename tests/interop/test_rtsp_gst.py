"""The RTSP client machine against GStreamer's gst-rtsp-server (a camera-like peer on 127.0.0.1).

A small Trio driver in this file owns the socket: it flushes `data_to_send()`, feeds `receive_some()` into the
machine and drains `next_event()`, the way fluxkit's own Trio layer will. Each test starts the server script
(tests/interop/rtsp_server.py, Debian's /usr/bin/python3 with `gi`) on a free port and reads the port it bound.
Media checks: RTP packets parse with fluxkit's `parse_rtp`; H.264 and H.265 are depacketized with fluxkit's
depacketizers and decoded by PyAV (FFmpeg) as the oracle; PCMA packets carry 8 kHz timestamps.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import Iterator

import av
import pytest
import trio

from fluxkit.protocols.rtp import parse_rtp
from fluxkit.protocols.rtp.payload import H264Depacketizer, H265Depacketizer
from fluxkit.protocols.rtsp import (
    NEED_DATA,
    AuthenticationFailed,
    Described,
    Event,
    InterleavedData,
    Playing,
    RequestFailed,
    RtspClientConnection,
    SetUp,
    TornDown,
    Track,
)
from tests.peers import GstRtspServer, require_gst_rtsp_server

pytestmark = pytest.mark.interop

USER, PASSWORD = "admin", "secret"


def _start(*auth: str) -> Iterator[int]:
    require_gst_rtsp_server()
    server = GstRtspServer(*auth)
    try:
        yield server.start()
    finally:
        server.kill()


@pytest.fixture(scope="module")
def gst_port() -> Iterator[int]:
    yield from _start()


@pytest.fixture(scope="module")
def gst_auth_port() -> Iterator[int]:
    yield from _start(USER, PASSWORD)


class Driver:
    """A minimal Trio driver of RtspClientConnection, collecting interleaved frames by channel."""

    def __init__(self, client: RtspClientConnection, stream: trio.SocketStream) -> None:
        self.client = client
        self.stream = stream
        self.frames: dict[int, list[bytes]] = {}

    async def flush(self) -> None:
        data = self.client.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def until(self, *kinds: type[Event]) -> Event:
        """Run until an event of one of `kinds`; interleaved frames met on the way are kept."""
        client = self.client
        with trio.fail_after(15):
            while True:
                event = client.next_event()
                if event is NEED_DATA:
                    await self.flush()
                    timer = client.get_timer()
                    with trio.move_on_at(float("inf") if timer is None else timer):
                        client.receive_data(await self.stream.receive_some(65536))
                        continue
                    client.handle_timer(trio.current_time())
                    continue
                if isinstance(event, InterleavedData):
                    self.frames.setdefault(event.channel, []).append(event.data)
                    continue
                if isinstance(event, kinds):
                    return event
                if isinstance(event, RequestFailed | AuthenticationFailed):
                    pytest.fail(f"unexpected {event}")

    async def packets_on(self, channel: int, count: int) -> list[bytes]:
        """Receive until `count` frames arrived on `channel`."""
        client = self.client
        with trio.fail_after(15):
            while len(self.frames.get(channel, [])) < count:
                event = client.next_event()
                if event is NEED_DATA:
                    await self.flush()
                    client.receive_data(await self.stream.receive_some(65536))
                elif isinstance(event, InterleavedData):
                    self.frames.setdefault(event.channel, []).append(event.data)
        return self.frames[channel]


def _sprop(track: Track) -> list[bytes]:
    sets = []
    for name in ("sprop-vps", "sprop-sps", "sprop-pps"):
        value = track.fmtp_param(name)
        if value:
            sets.append(base64.b64decode(value))
    value = track.fmtp_param("sprop-parameter-sets")
    if value:
        sets.extend(base64.b64decode(part) for part in value.split(","))
    return sets


def _decode(codec: str, track: Track, packets: list[bytes]) -> tuple[int, int]:
    """Depacketize with fluxkit and decode with PyAV; (access units, decoded pictures)."""
    depacketizer = (H264Depacketizer if codec == "h264" else H265Depacketizer)(parameter_sets=_sprop(track))
    units = []
    for data in packets:
        units.extend(depacketizer.feed(parse_rtp(data)))
    units.extend(depacketizer.flush())
    decoder = av.CodecContext.create(codec, "r")
    pictures = 0
    for unit in units:
        pictures += len(decoder.decode(av.Packet(unit.data)))
    pictures += len(decoder.decode(None))
    return len(units), pictures


async def _session(port: int, path: str, password: str | None) -> tuple[Driver, Described]:
    client = RtspClientConnection(
        f"rtsp://127.0.0.1:{port}{path}",
        username=USER if password is not None else None,
        password=password,
        rng=random.Random(7),
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    driver = Driver(client, stream)
    client.options(now=trio.current_time())
    await driver.until(Event)
    client.describe(now=trio.current_time())
    described = await driver.until(Described, AuthenticationFailed)
    assert isinstance(described, Described | AuthenticationFailed)
    return driver, described  # type: ignore[return-value]


def test_digest_wrong_password_is_refused(gst_auth_port: int) -> None:
    async def main() -> None:
        client = RtspClientConnection(
            f"rtsp://127.0.0.1:{gst_auth_port}/test", username=USER, password="wrong", rng=random.Random(1)
        )
        async with await trio.open_tcp_stream("127.0.0.1", gst_auth_port) as stream:
            driver = Driver(client, stream)
            client.describe(now=trio.current_time())
            failed = await driver.until(AuthenticationFailed, Described)
            assert isinstance(failed, AuthenticationFailed)
            assert failed.status_code == 401
            assert client.data_to_send() == b""  # no further attempt

    trio.run(main)


def test_digest_h264_tcp_describe_setup_play_teardown(gst_auth_port: int) -> None:
    async def main() -> None:
        driver, described = await _session(gst_auth_port, "/test", PASSWORD)
        client = driver.client
        assert isinstance(described, Described)
        (video,) = described.tracks
        assert (video.encoding, video.clock_rate, video.payload_type) == ("H264", 90000, 96)
        assert video.fmtp_param("profile-level-id") is not None
        client.setup(video, now=trio.current_time())
        set_up = await driver.until(SetUp)
        assert isinstance(set_up, SetUp)
        assert set_up.transport.interleaved == (0, 1)
        client.play(now=trio.current_time())
        playing = await driver.until(Playing)
        assert isinstance(playing, Playing)
        assert playing.rtp_info[0].seq is not None
        packets = await driver.packets_on(0, 150)  # about 2 s of 25 fps 640x480
        first = parse_rtp(packets[0])
        assert first.payload_type == 96
        assert first.ssrc == set_up.transport.ssrc
        units, pictures = _decode("h264", video, packets)
        assert units >= 10
        assert pictures >= units - 2  # every assembled access unit decodes (the decoder may hold the last)
        client.teardown(now=trio.current_time())
        assert isinstance(await driver.until(TornDown), TornDown)
        await driver.stream.aclose()

    trio.run(main)


def test_h265_without_auth(gst_port: int) -> None:
    async def main() -> None:
        driver, described = await _session(gst_port, "/h265", None)
        client = driver.client
        assert isinstance(described, Described)
        (video,) = described.tracks
        assert video.encoding == "H265"
        client.setup(video, now=trio.current_time())
        await driver.until(SetUp)
        client.play(now=trio.current_time())
        await driver.until(Playing)
        packets = await driver.packets_on(0, 150)
        units, pictures = _decode("hevc", video, packets)
        assert units >= 5
        assert pictures >= units - 2
        client.teardown(now=trio.current_time())
        await driver.until(TornDown)
        await driver.stream.aclose()

    trio.run(main)


def test_av_two_tracks_interleaved(gst_port: int) -> None:
    async def main() -> None:
        driver, described = await _session(gst_port, "/av", None)
        client = driver.client
        assert isinstance(described, Described)
        video, audio = described.tracks
        assert (audio.media, audio.encoding, audio.clock_rate, audio.payload_type) == ("audio", "PCMA", 8000, 8)
        client.setup(video, now=trio.current_time())
        await driver.until(SetUp)
        client.setup(audio, now=trio.current_time())
        set_up = await driver.until(SetUp)
        assert isinstance(set_up, SetUp)
        assert set_up.transport.interleaved == (2, 3)
        assert client.channels[2] == audio
        client.play(now=trio.current_time())
        playing = await driver.until(Playing)
        assert isinstance(playing, Playing)
        assert len(playing.rtp_info) == 2
        audio_packets = [parse_rtp(p) for p in await driver.packets_on(2, 20)]
        assert {p.payload_type for p in audio_packets} == {8}
        steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(audio_packets)}
        assert all(0 < step <= 8000 for step in steps)  # 8 kHz clock: well under a second per packet
        assert len(driver.frames.get(0, [])) > 0
        client.teardown(now=trio.current_time())
        await driver.until(TornDown)
        await driver.stream.aclose()

    trio.run(main)


def test_h264_over_udp(gst_port: int) -> None:
    async def main() -> None:
        driver, described = await _session(gst_port, "/test", None)
        client = driver.client
        assert isinstance(described, Described)
        rtp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        rtcp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with rtp, rtcp:
            await rtp.bind(("127.0.0.1", 0))
            await rtcp.bind(("127.0.0.1", 0))
            ports = (rtp.getsockname()[1], rtcp.getsockname()[1])
            client.setup(described.tracks[0], now=trio.current_time(), transport="udp", client_ports=ports)
            set_up = await driver.until(SetUp)
            assert isinstance(set_up, SetUp)
            assert set_up.transport.client_port == ports
            assert set_up.transport.server_port is not None
            client.play(now=trio.current_time())
            await driver.until(Playing)
            packets = []
            with trio.fail_after(15):
                while len(packets) < 100:
                    packets.append(await rtp.recv(65536))
            units, pictures = _decode("h264", described.tracks[0], packets)
            assert pictures >= 1
            assert units >= 1
        client.teardown(now=trio.current_time())
        await driver.until(TornDown)
        await driver.stream.aclose()

    trio.run(main)
