"""WHIP media: Opus passthrough into the engine and the recording, and keyframe requests (RTCP PLI) to the publisher.

The publishing aiortc client (from test_whip.py) sends H.264 from its own encoder, which forces an IDR when its
sender receives a PLI (counted on the client), and pre-encoded Opus packets (`OpusTrack`: aiortc sends a
`av.Packet` as it is), so what was sent is known byte for byte.
"""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import trio
import trio_asyncio

from fluxkit.engine import StreamStopped, Track
from fluxkit.net import _webrtc
from fluxkit.storage._mux import SegmentMuxer
from tests.mediagen import encode_annexb
from tests.net import test_whip
from tests.net.test_whip import SDP, Harness

# The WHIP harness fixtures, shared with test_whip.py.
harness = test_whip.harness
loopback_only = test_whip.loopback_only

aiortc = pytest.importorskip("aiortc")
from aiortc import MediaStreamTrack  # noqa: E402

OPUS_RATE = 48000
OPUS_STEP = 960  # 20 ms


@functools.cache
def opus_packets(count: int = 500) -> tuple[bytes, ...]:
    """`count` 20 ms Opus packets of a rising tone (each packet differs), encoded by libopus."""
    ctx: Any = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = OPUS_RATE
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.time_base = Fraction(1, OPUS_RATE)
    ctx.open()
    t = np.arange(count * OPUS_STEP) / OPUS_RATE
    tone = (8000 * np.sin(2 * np.pi * (300 + 60 * t) * t)).astype(np.int16)
    packets: list[bytes] = []
    for i in range(count):
        frame = av.AudioFrame.from_ndarray(tone[None, i * OPUS_STEP : (i + 1) * OPUS_STEP], format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = i * OPUS_STEP
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    assert len(set(packets)) == len(packets)
    return tuple(packets)


class OpusTrack(MediaStreamTrack):
    """Pre-encoded Opus, paced at real time; `sent` lists every packet handed to aiortc."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.packets = opus_packets()
        self.sent: list[bytes] = []
        self.start = time.monotonic()

    async def recv(self) -> av.Packet:
        n = len(self.sent)
        await asyncio.sleep(max(0.0, self.start + n * OPUS_STEP / OPUS_RATE - time.monotonic()))
        data = self.packets[n % len(self.packets)]
        packet = av.Packet(data)
        packet.pts = n * OPUS_STEP
        packet.time_base = Fraction(1, OPUS_RATE)
        self.sent.append(data)
        return packet


def assert_run_of(got: list[bytes], sent: list[bytes]) -> None:
    """`got` is a contiguous run of `sent`: nothing lost, reordered or altered in between."""
    assert got
    start = sent.index(got[0])
    assert got == sent[start : start + len(got)]


def session_of(harness: Harness, stream_id: str) -> Any:
    (session,) = [s for s in harness.whip._sessions.values() if s.stream_id == stream_id]  # type: ignore[attr-defined]
    return session


async def _start(harness: Harness, stream_id: str, audio: Any = None) -> str:
    offer = await harness.offer(audio)
    response = await harness.http.post(f"/api/video/whip/{stream_id}", content=offer, headers=SDP)
    assert response.status_code == 201, response.text
    return str(response.text)


async def _stop(harness: Harness, stream_id: str) -> None:
    events = harness.engine.events()
    harness.engine.stop_stream(stream_id)
    async with events:
        async for event in events:
            if isinstance(event, StreamStopped) and event.stream_id == stream_id:
                break
    await harness.recorder.wait_idle()  # type: ignore[attr-defined]


@pytest.mark.trio
async def test_opus_passthrough_to_engine_and_recording(harness: Harness) -> None:
    track = OpusTrack()
    with trio.fail_after(40):
        answer = await _start(harness, "av1", track)
        assert "opus/48000/2" in answer
        video: list[Any] = []
        audio: list[Any] = []
        async with harness.engine.subscribe_stream("av1") as frames:
            await harness.answer(answer)
            async for frame in frames:
                (audio if frame.kind == "audio" else video).append(frame)
                if len(video) >= 45 and len(audio) >= 60:
                    break
        (info,) = [s for s in harness.engine.list_streams() if s.stream_id == "av1"]
        assert [t.codec for t in info.tracks] == ["h264", "opus"]
        assert (info.tracks[1].clock_rate, info.tracks[1].sample_rate, info.tracks[1].channels) == (48000, 48000, 2)
        await _stop(harness, "av1")
        result = await harness.storage.query_segments("av1", 0, 4e9)  # type: ignore[attr-defined]

    # The engine got the Opus packets as sent, one per frame, 20 ms apart on the 48 kHz RTP clock.
    assert video[0].keyframe
    assert video[0].codec == "h264"
    assert {f.codec for f in audio} == {"opus"}
    assert all(f.keyframe and f.dts is None for f in audio)
    assert_run_of([f.data for f in audio], track.sent)
    assert {b.pts - a.pts for a, b in itertools.pairwise(audio)} == {OPUS_STEP}

    # The recording holds H.264 and Opus, the Opus packets copied unchanged and evenly spaced.
    assert result.segments
    recorded: list[bytes] = []
    stamps: list[int] = []
    video_packets = decoded_audio = 0
    for seg in result.segments:
        with av.open(seg.path) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "opus"
            assert stream.codec_context.sample_rate == OPUS_RATE
            assert stream.time_base == Fraction(1, OPUS_RATE)
            for packet in container.demux():
                if not packet.size:
                    continue
                if packet.stream.type == "video":
                    video_packets += 1
                else:
                    recorded.append(bytes(packet))
                    stamps.append(packet.pts)
            container.seek(0)
            decoded_audio += sum(1 for _ in container.decode(audio=0))
    assert video_packets >= 30
    assert len(recorded) >= 40
    assert_run_of(recorded, track.sent)
    assert {b - a for a, b in itertools.pairwise(stamps)} == {OPUS_STEP}
    assert decoded_audio >= len(recorded) - 2  # FFmpeg's Opus decoder reads them back


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"pli_interval": 0.0}], indirect=True)
async def test_engine_keyframe_request_reaches_the_publisher(harness: Harness) -> None:
    with trio.fail_after(30):
        answer = await _start(harness, "kf1")
        async with harness.engine.subscribe_stream("kf1") as frames:
            await harness.answer(answer)
            first = await frames.receive()
            assert first.keyframe
            for _ in range(5):
                await frames.receive()
            client = harness.clients[-1]
            session = session_of(harness, "kf1")
            before, asked = client.plis, session.plis["consumer"]
            assert harness.engine.request_keyframe("kf1")
            assert session.plis["consumer"] == asked + 1
            # The client's encoder is told to make a keyframe; one arrives after that.
            keyframes_after = 0
            async for frame in frames:
                if client.plis > before and frame.keyframe:
                    keyframes_after += 1
                    break
    assert keyframes_after == 1


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"pli_interval": 0.0, "gop_cache_frames": 0}], indirect=True)
async def test_late_subscriber_without_gop_asks_for_a_keyframe(harness: Harness) -> None:
    with trio.fail_after(30):
        answer = await _start(harness, "kf2")
        async with harness.engine.subscribe_stream("kf2") as frames:
            await harness.answer(answer)
            assert (await frames.receive()).keyframe
            for _ in range(10):
                await frames.receive()
            client = harness.clients[-1]
            session = session_of(harness, "kf2")
            before, asked = client.plis, session.plis["consumer"]
            # No GOP cache: a newcomer waits for the next keyframe, so the engine asks the source for one.
            async with harness.engine.subscribe_stream("kf2") as late:
                assert session.plis["consumer"] == asked + 1
                frame = await late.receive()
                assert frame.keyframe
            while client.plis == before:  # noqa: ASYNC110 - the PLI reached the client's sender
                await trio.sleep(0.01)


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"pli_interval": 0.25, "segment_duration": 1.0}], indirect=True)
async def test_segment_boundary_asks_for_a_keyframe(harness: Harness) -> None:
    # aiortc's encoder makes an IDR every 250 frames on its own; the 1 s segment cuts come from the PLIs.
    with trio.fail_after(40):
        answer = await _start(harness, "kf3")
        async with harness.engine.subscribe_stream("kf3") as frames:
            await harness.answer(answer)
            assert (await frames.receive()).keyframe
            client = harness.clients[-1]
            session = session_of(harness, "kf3")
            keys = 0
            async for frame in frames:
                keys += frame.keyframe
                if keys >= 2 and client.plis:
                    break
        assert session.plis["consumer"] >= 1
        await _stop(harness, "kf3")
        result = await harness.storage.query_segments("kf3", 0, 4e9)  # type: ignore[attr-defined]
    assert len(result.segments) >= 2


@pytest.mark.trio
@pytest.mark.parametrize("harness", [{"pli_interval": 0.0}], indirect=True)
async def test_loss_pli_goes_through_the_shared_gate(harness: Harness) -> None:
    with trio.fail_after(30):
        answer = await _start(harness, "kf4")
        async with harness.engine.subscribe_stream("kf4") as frames:
            await harness.answer(answer)
            assert (await frames.receive()).keyframe
            for _ in range(5):
                await frames.receive()
            client = harness.clients[-1]
            session = session_of(harness, "kf4")
            receiver = session.video_receiver
            ssrc = receiver.getSynchronizationSources()[0].source
            before = client.plis
            # What aiortc's jitter buffer does when packets are lost for good (overflow, sequence jump).
            await trio_asyncio.aio_as_trio(receiver._send_rtcp_pli, loop=harness.loop)(ssrc)
            assert session.plis["loss"] == 1
            async for frame in frames:
                if client.plis > before and frame.keyframe:
                    break
            # Within the interval since that PLI, aiortc's and the engine's requests are all held back.
            session.pli_gate.interval = 3600.0
            sent, suppressed, client_plis = session.pli_gate.sent, session.pli_gate.suppressed, client.plis
            await trio_asyncio.aio_as_trio(receiver._send_rtcp_pli, loop=harness.loop)(ssrc)
            await trio_asyncio.aio_as_trio(receiver._send_rtcp_pli, loop=harness.loop)(ssrc)
            assert harness.engine.request_keyframe("kf4")
            assert harness.engine.request_keyframe("kf4")
            assert session.pli_gate.sent == sent
            assert session.pli_gate.suppressed == suppressed + 4
            for _ in range(10):
                await frames.receive()
            assert client.plis == client_plis


def test_pli_gate() -> None:
    gate = _webrtc.PliGate(1.0)
    assert gate.allow(100.0)
    assert not gate.allow(100.5)
    assert not gate.allow(100.99)
    assert gate.allow(101.0)
    assert gate.allow(250.0)
    assert (gate.sent, gate.suppressed) == (3, 2)
    assert all(_webrtc.PliGate(0.0).allow(5.0) for _ in range(3))


def test_negotiated_codecs() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 102 103\r\na=mid:0\r\na=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:2\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 8\r\na=mid:3\r\na=rtpmap:8 PCMA/8000\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 9\r\na=rtpmap:9 G722/8000\r\n"
    )
    assert _webrtc.negotiated_codecs(sdp) == {
        "0": ("H264", 90000, 1),
        "1": ("opus", 48000, 2),
        "3": ("PCMA", 8000, 1),
    }
    assert _webrtc.negotiated_codecs("garbage") == {}
    assert _webrtc.negotiated_codecs("v=0\nm=audio\nm=audio 9 X 1\na=mid:x\na=rtpmap:1 opus/x\n") == {}


def test_check_aiortc_internals_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc import RTCRtpReceiver

    _webrtc.check_aiortc_internals()  # the pinned aiortc passes
    assert aiortc.__version__ == _webrtc.AIORTC_VERSION

    async def changed(self: Any, media_ssrc: int, reason: str) -> None:
        pass

    monkeypatch.setattr(RTCRtpReceiver, "_send_rtcp_pli", changed)
    monkeypatch.delattr(RTCRtpReceiver, "getSynchronizationSources")
    with pytest.raises(RuntimeError) as info:
        _webrtc.check_aiortc_internals()
    message = str(info.value)
    assert "needs aiortc 1.16.0" in message
    assert f"found aiortc {aiortc.__version__} at " in message
    assert "RTCRtpReceiver._send_rtcp_pli(self, media_ssrc)" in message
    assert "getSynchronizationSources" in message
    assert "pip install 'aiortc==1.16.0'" in message
    assert "decoder_queue" not in message  # only what is broken is listed
    assert message.count("\n  - ") == 2


def test_segment_muxer_copies_opus(tmp_path: Path) -> None:
    """The recorder's muxer writes Opus as received (dOps from an OpusHead), read back unchanged by PyAV."""
    annexb = encode_annexb(codec="h264", width=160, height=96, frames=50, gop=25, fps=25, bframes=0)
    parser: Any = av.CodecContext.create("h264", "r")
    units = [bytes(p) for p in parser.parse(annexb)] + [bytes(p) for p in parser.parse(b"")]
    video = Track.for_video("h264", [])
    audio = Track(codec="opus", clock_rate=OPUS_RATE, sample_rate=OPUS_RATE, channels=2)
    muxer = SegmentMuxer(
        stream_id="s",
        partial_path=tmp_path / ".s.partial",
        final_path=tmp_path / "s.mp4",
        start_us=0,
        run_id=0,
        video=video,
        audio=audio,
        first_keyframe=units[0],
        part_duration=0.5,
        fsync_parts=False,
        comment="{}",
    )
    packets = opus_packets()[:100]  # 2 s, as the 50 video frames at 25 fps
    items = [(True, unit, i * 3600, i * 3600, i % 25 == 0, 0.0) for i, unit in enumerate(units)]
    items += [(False, data, i * OPUS_STEP, i * OPUS_STEP, True, 0.0) for i, data in enumerate(packets)]
    items.sort(key=lambda item: item[2] / (90000 if item[0] else OPUS_RATE))
    muxer.write(items)
    muxer.finish(None, 2_000_000)
    with av.open(io.BytesIO((tmp_path / ".s.partial").read_bytes())) as container:
        stream = container.streams.audio[0]
        assert (stream.codec_context.name, stream.codec_context.sample_rate) == ("opus", OPUS_RATE)
        assert stream.codec_context.channels == 2
        got = [(bytes(p), p.pts) for p in container.demux(stream) if p.size]
    assert [g[0] for g in got] == list(packets)
    assert [g[1] for g in got] == [i * OPUS_STEP for i in range(len(packets))]
