"""WHIP ingest end to end: an aiortc client in the test publishes over WHIP to the REST app on loopback.

The client runs on the same trio-asyncio loop as the service (`open_whip_service(..., loop=loop)`). Both sides
gather host candidates through `fluxkit.net._webrtc.HOST_ADDRESSES` only: the `loopback_only` fixture makes the
system address lookup fail the test if anything asks for it, and no STUN server is configured on either side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import trio
import trio_asyncio

from fluxkit.api import ApiServices, serve_api
from fluxkit.engine import EngineSettings, StreamFailed, StreamStopped, open_engine
from fluxkit.net import _webrtc
from fluxkit.net.whip import WhipSettings, open_whip_service, whip_routes
from fluxkit.storage import LocalStorage, RecordingSettings, open_recorder

aiortc = pytest.importorskip("aiortc")
from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)

WIDTH, HEIGHT = 320, 240


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any gathering outside the fluxkit loopback restriction (the system's addresses) fails the test."""
    _webrtc.install_host_address_hook()

    def forbidden(**_kwargs: Any) -> list[str]:
        raise AssertionError("ICE gathered on the system's addresses: loopback restriction bypassed")

    monkeypatch.setattr(_webrtc, "_system_host_addresses", forbidden)
    return


class PatternTrack(VideoStreamTrack):
    """A moving synthetic pattern, paced by aiortc at 30 fps."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[:, :, 0] = (np.arange(WIDTH, dtype=np.uint16) + self.count * 4) % 256
        image[:, :, 1] = (np.arange(HEIGHT, dtype=np.uint16)[:, None] * 2) % 256
        self.count += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Client:
    """A publishing aiortc peer: `plis` counts the keyframe requests (PLI/FIR) its video sender received."""

    def __init__(self, pc: Any, sender: Any, audio: Any) -> None:
        self.pc = pc
        self.audio = audio
        self.plis = 0
        # aiortc's sender handles PLI/FIR by calling self._send_keyframe(): count, then let it force the keyframe.
        original = sender._send_keyframe

        def counted() -> None:
            self.plis += 1
            original()

        sender._send_keyframe = counted


async def _make_offer(audio: Any = None) -> tuple[Client, str]:
    _webrtc.HOST_ADDRESSES.set(("127.0.0.1",))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(PatternTrack(), direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    )
    if audio is not None:
        audio_transceiver = pc.addTransceiver(audio, direction="sendonly")
        audio_transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/opus"]
        )
    await pc.setLocalDescription(await pc.createOffer())
    return Client(pc, transceiver.sender, audio), pc.localDescription.sdp


class Harness:
    def __init__(self, loop: Any, base: str, engine: Any, token: str | None) -> None:
        self.loop = loop
        self.engine = engine
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=base, headers=headers, timeout=30)
        self.peers: list[Any] = []
        self.clients: list[Client] = []

    async def offer(self, audio: Any = None) -> str:
        """A new client's offer; `audio`: an aiortc audio track to send too."""
        client, sdp = await trio_asyncio.aio_as_trio(_make_offer, loop=self.loop)(audio)
        self.peers.append(client.pc)
        self.clients.append(client)
        return sdp

    async def answer(self, sdp: str) -> None:
        await trio_asyncio.aio_as_trio(self.peers[-1].setRemoteDescription, loop=self.loop)(
            RTCSessionDescription(sdp=sdp, type="answer")
        )

    async def close(self) -> None:
        for pc in self.peers:
            await trio_asyncio.aio_as_trio(pc.close, loop=self.loop)()
        await self.http.aclose()


@pytest.fixture
async def harness(loopback_only: None, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    param = getattr(request, "param", {})
    token = param.get("token")
    whip_settings = WhipSettings(
        connect_timeout=param.get("connect_timeout", 10.0), pli_interval=param.get("pli_interval", 1.0)
    )
    settings = RecordingSettings(segment_duration=param.get("segment_duration", 10.0), part_duration=0.5)
    engine_settings = EngineSettings(gop_cache_frames=param.get("gop_cache_frames", 600))
    async with (
        open_engine(engine_settings) as engine,
        LocalStorage(tmp_path / "rec") as storage,
        open_recorder(engine, storage, settings) as recorder,
        trio_asyncio.open_loop() as loop,
        open_whip_service(engine, whip_settings, loop=loop) as whip,
        trio.open_nursery() as nursery,
    ):
        services = ApiServices(engine=engine, token=token, extra_routes=tuple(whip_routes(whip)))
        port = await nursery.start(serve_api, services, "127.0.0.1", 0)
        h = Harness(loop, f"http://127.0.0.1:{port}", engine, token)
        h.storage = storage  # type: ignore[attr-defined]
        h.recorder = recorder  # type: ignore[attr-defined]
        h.whip = whip  # type: ignore[attr-defined]
        try:
            yield h
        finally:
            await h.close()
            nursery.cancel_scope.cancel()


SDP = {"Content-Type": "application/sdp"}


@pytest.mark.trio
async def test_publish_record_and_delete(harness: Harness) -> None:
    with trio.fail_after(40):
        offer = await harness.offer()
        response = await harness.http.post("/api/video/whip/cam1", content=offer, headers=SDP)
        assert response.status_code == 201, response.text
        assert response.headers["content-type"].startswith("application/sdp")
        location = response.headers["location"]
        assert location.startswith("/api/video/whip/cam1/")
        assert "a=candidate:" in response.text
        for line in response.text.splitlines():
            if line.startswith("a=candidate:"):
                assert line.split()[4] == "127.0.0.1"
        assert "H264" in response.text
        assert "VP8" not in response.text
        events = harness.engine.events()
        async with harness.engine.subscribe_stream("cam1") as frames:
            await harness.answer(response.text)
            got = []
            async for frame in frames:
                got.append(frame)
                if len(got) >= 45:
                    break
        assert got[0].keyframe
        assert got[0].codec == "h264"
        assert got[0].data.startswith(b"\x00\x00\x00\x01")
        stamps = [f.pts for f in got]
        assert stamps == sorted(stamps)
        assert stamps[0] >= 0
        assert 1.0 < (stamps[-1] - stamps[0]) / 90000 < 3.0  # 45 frames at 30 fps, 90 kHz clock
        (info,) = [s for s in harness.engine.list_streams() if s.stream_id == "cam1"]
        assert info.state == "live"
        assert info.tracks[0].parameter_sets
        assert info.tracks[0].width == WIDTH

        # A second publisher on the same stream id is refused.
        again = await harness.http.post("/api/video/whip/cam1", content=await harness.offer(), headers=SDP)
        assert again.status_code == 409

        deleted = await harness.http.delete(location)
        assert deleted.status_code == 200
        async with events:
            async for event in events:
                if isinstance(event, StreamStopped) and event.stream_id == "cam1":
                    break
        assert (await harness.http.delete(location)).status_code == 404
        assert harness.whip.sessions() == {}  # type: ignore[attr-defined]
        await harness.recorder.wait_idle()  # type: ignore[attr-defined]
        result = await harness.storage.query_segments("cam1", 0, 4e9)  # type: ignore[attr-defined]
    assert result.segments
    packets = keys = 0
    for seg in result.segments:
        with av.open(seg.path) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
                    keys += packet.is_keyframe
            container.seek(0)
            decoded = sum(1 for _ in container.decode(video=0))
    assert packets >= 30
    assert keys >= 1
    assert decoded >= 30


@pytest.mark.trio
async def test_wrong_content_type_is_415(harness: Harness) -> None:
    with trio.fail_after(10):
        r = await harness.http.post("/api/video/whip/cam2", content="v=0\r\n", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert "application/sdp" in r.text


@pytest.mark.trio
@pytest.mark.parametrize(
    "offer",
    [
        "hello",
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "\xff\xfe",
    ],
)
async def test_bad_offer_is_400(harness: Harness, offer: str) -> None:
    with trio.fail_after(10):
        r = await harness.http.post("/api/video/whip/cam3", content=offer.encode("latin-1"), headers=SDP)
    assert r.status_code == 400, r.text
    assert r.text.strip()
    assert not harness.engine.list_streams()


@pytest.mark.trio
async def test_offer_with_foreign_candidates_only_is_400(harness: Harness) -> None:
    with trio.fail_after(20):
        offer = await harness.offer()
        foreign = "\r\n".join(
            line.replace("127.0.0.1", "192.0.2.1") if line.startswith("a=candidate:") else line
            for line in offer.splitlines()
        )
        r = await harness.http.post("/api/video/whip/cam4", content=foreign, headers=SDP)
    assert r.status_code == 400
    assert "candidate" in r.text


@pytest.mark.trio
async def test_unknown_resource_is_404(harness: Harness) -> None:
    with trio.fail_after(10):
        r = await harness.http.delete("/api/video/whip/cam5/nope")
    assert r.status_code == 404


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"token": "s3cret"}], indirect=True)
async def test_wrong_token_is_401(harness: Harness) -> None:
    with trio.fail_after(10):
        r = await harness.http.post(
            "/api/video/whip/cam6", content="v=0\r\n", headers={**SDP, "Authorization": "Bearer wrong"}
        )
        assert r.status_code == 401
        r = await harness.http.post("/api/video/whip/cam6", content="v=0\r\n", headers=SDP)
        assert r.status_code == 400  # right token: past the middleware, then the offer is refused


async def _first_frames(harness: Harness, stream_id: str, count: int) -> str:
    offer = await harness.offer()
    response = await harness.http.post(f"/api/video/whip/{stream_id}", content=offer, headers=SDP)
    assert response.status_code == 201, response.text
    async with harness.engine.subscribe_stream(stream_id) as frames:
        await harness.answer(response.text)
        frame = await frames.receive()
        assert frame.keyframe
        for _ in range(count - 1):
            await frames.receive()
    return str(response.headers["location"])


@pytest.mark.trio
async def test_engine_stop_closes_the_peer_connection(harness: Harness) -> None:
    with trio.fail_after(30):
        # Ten frames: the recorder (which follows every stream) has subscribed by then. It does not survive a
        # stream that stops between its StreamPublished event and its subscription (a recorder race).
        await _first_frames(harness, "cam7", 10)
        assert list(harness.whip.sessions().values()) == ["cam7"]  # type: ignore[attr-defined]
        harness.engine.stop_stream("cam7")
        while harness.whip.sessions():  # type: ignore[attr-defined]  # noqa: ASYNC110
            await trio.sleep(0.01)
        client = harness.peers[-1]
        while client.connectionState not in ("closed", "failed"):  # noqa: ASYNC110
            await trio.sleep(0.01)


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"connect_timeout": 0.5}], indirect=True)
async def test_no_ice_connection_fails_the_stream(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    events = harness.engine.events()
    with trio.fail_after(20):
        r = await harness.http.post("/api/video/whip/cam8", content=await harness.offer(), headers=SDP)
        assert r.status_code == 201
        # The answer is never applied: the client never starts ICE.
        async with events:
            async for event in events:
                if isinstance(event, StreamFailed) and event.stream_id == "cam8":
                    break
    assert event.permanent
    assert "ICE/DTLS did not connect" in event.error
    assert any("WHIP stream 'cam8'" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert harness.whip.sessions() == {}  # type: ignore[attr-defined]


def test_filter_candidates() -> None:
    sdp = (
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 10.0.0.5 5000 typ host\r\n"
        "a=candidate:3 1 udp 2130706431 abcd.local 5000 typ host\r\n"
        "a=candidate:4 1 udp 2130706431 ::1 5000 typ host\r\n"
        "a=candidate:bad\r\n"
    )
    out, kept, dropped = _webrtc.filter_candidates(sdp, ("127.0.0.0/8", "::1/128"))
    assert (kept, dropped) == (2, 3)
    assert "10.0.0.5" not in out
    assert ".local" not in out
    assert "127.0.0.1 5000" in out
    assert "::1 5000" in out
