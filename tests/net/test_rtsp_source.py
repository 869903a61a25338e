"""RtspSource against an in-process fake camera (tests/net/conftest.py), and the per-track pipeline in isolation.

The fake camera makes the failure cases deterministic: garbage instead of RTSP, a stall after PLAY, refused
credentials, a port nobody listens on. Each networked test runs a real engine on the real clock with short
timeouts (the sockets are real, so MockClock cannot drive them) under `trio.fail_after`.
"""

from __future__ import annotations

import functools
import random

import pytest
import trio

from fluxkit.engine import (
    EngineEvent,
    RestartPolicy,
    SourceReconnecting,
    StreamFailed,
    VideoEngine,
    open_engine,
)
from fluxkit.net._rtp_track import RtpTrackReceiver, UnsupportedTrack
from fluxkit.net.rtsp_source import RtspSource, RtspSourceError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp import ReceiverReport, RtpPacket, Sdes, parse_rtcp
from fluxkit.protocols.rtp.payload import AacDepacketizer, G711Depacketizer
from fluxkit.protocols.rtsp import Track as RtspTrack
from tests.mediagen import encode_annexb

from .conftest import FakeCamera, packetize_h264, sprop

FAST_RETRY = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=2)


@functools.cache
def clip() -> tuple[list[list[bytes]], str]:
    annexb = encode_annexb("h264", width=320, height=240, frames=50, gop=25)
    return packetize_h264(annexb), sprop(annexb)


def camera(**kwargs: object) -> FakeCamera:
    frames, sets = clip()
    return FakeCamera(frames, sets, **kwargs)  # type: ignore[arg-type]


async def first_frames(engine: VideoEngine, stream_id: str, count: int) -> list[MediaFrame]:
    out = []
    async with engine.subscribe_stream(stream_id) as frames:
        async for frame in frames:
            out.append(frame)
            if len(out) == count:
                break
    return out


async def wait_event(events: trio.abc.ReceiveChannel[EngineEvent] | object, kind: type, stream_id: str) -> EngineEvent:
    async for event in events:  # type: ignore[attr-defined]
        if isinstance(event, kind) and event.stream_id == stream_id:
            return event
    raise AssertionError("event stream ended")


@pytest.mark.trio
async def test_fake_camera_frames_rtcp_and_teardown() -> None:
    cam = camera(fps=100.0)
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            await nursery.start(cam.serve)
            async with open_engine(rng=random.Random(0)) as engine:
                source = RtspSource(cam.url(), rng=random.Random(1), rtcp_interval=0.1)
                engine.add_source("cam", source)
                frames = await first_frames(engine, "cam", 40)
                info = engine.list_streams()[0]
                track = info.tracks[0]
                assert (track.codec, track.width, track.height) == ("h264", 320, 240)
                assert frames[0].keyframe
                assert frames[0].data.startswith(b"\x00\x00\x00\x01")
                assert [f.pts for f in frames] == sorted({f.pts for f in frames})  # type: ignore[type-var]
                assert sum(f.keyframe for f in frames) == 2
                await trio.sleep(0.3)
                engine.remove_source("cam")
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    assert cam.methods[:4] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]
    assert cam.methods[-1] == "TEARDOWN"
    assert cam.rtcp, "no RTCP receiver report was sent"
    packets = parse_rtcp(cam.rtcp[-1])
    assert isinstance(packets[0], ReceiverReport)
    assert packets[0].reports[0].ssrc == 0x1234
    assert isinstance(packets[1], Sdes)
    assert packets[1].chunks[0].items[0].value.startswith(b"fluxkit@")


@pytest.mark.trio
async def test_garbage_and_stall_restart_while_other_streams_run() -> None:
    good, garbage, stall = camera(fps=100.0), camera(mode="garbage"), camera(mode="stall")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for cam in (good, garbage, stall):
                await nursery.start(cam.serve)
            async with open_engine(rng=random.Random(0)) as engine, engine.events() as events:
                engine.add_source("good", RtspSource(good.url(), rng=random.Random(1)))
                engine.add_source("junk", RtspSource(garbage.url(), rng=random.Random(2)), restart=FAST_RETRY)
                engine.add_source(
                    "stall", RtspSource(stall.url(), rng=random.Random(3), stall_timeout=0.3), restart=FAST_RETRY
                )
                failures: dict[str, StreamFailed] = {}
                reconnects: dict[str, list[str]] = {"junk": [], "stall": []}
                async for event in events:
                    if isinstance(event, SourceReconnecting):
                        reconnects[event.stream_id].append(event.error)
                    if isinstance(event, StreamFailed):
                        failures[event.stream_id] = event
                        if len(failures) == 2:
                            break
                assert set(failures) == {"junk", "stall"}
                assert not failures["junk"].permanent
                assert failures["junk"].attempts == 2
                assert all("RtspSourceError" in e and "broke RTSP" in e for e in reconnects["junk"])
                assert all("no media" in e for e in reconnects["stall"])
                assert failures["stall"].error.startswith("RtspSourceError: no media")
                # The good stream kept going through all of it.
                frames = await first_frames(engine, "good", 10)
                assert frames[0].keyframe
            nursery.cancel_scope.cancel()
    assert garbage.connections == 3
    assert stall.connections == 3
    assert stall.methods.count("TEARDOWN") == 3  # a stalled session is still torn down
    assert good.connections == 1


@pytest.mark.trio
async def test_refused_credentials_fail_permanently_without_retry() -> None:
    cam = camera(mode="refuse")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(cam.serve)
            async with open_engine(rng=random.Random(0)) as engine, engine.events() as events:
                url = cam.url().replace("rtsp://", "rtsp://admin:wrong@")
                engine.add_source("cam", RtspSource(url, rng=random.Random(1)))
                event = await wait_event(events, StreamFailed, "cam")
            nursery.cancel_scope.cancel()
    assert isinstance(event, StreamFailed)
    assert event.permanent
    assert event.attempts == 0
    assert "authentication failed" in event.error
    assert "wrong" not in event.error.split("authentication")[0]
    assert "admin:wrong" not in event.error
    assert cam.connections == 1


@pytest.mark.trio
async def test_connection_refused_retries_with_backoff_then_fails() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with trio.fail_after(10):
            async with open_engine(rng=random.Random(0)) as engine, engine.events() as events:
                engine.add_source("cam", RtspSource(f"rtsp://127.0.0.1:{port}/x"), restart=FAST_RETRY)
                errors = []
                async for event in events:
                    if isinstance(event, SourceReconnecting):
                        errors.append(event.error)
                    if isinstance(event, StreamFailed):
                        break
    assert isinstance(event, StreamFailed)
    assert not event.permanent
    assert event.attempts == 2
    assert len(errors) == 2
    assert all("cannot connect to 127.0.0.1" in e for e in errors)


def test_bad_transport_is_rejected() -> None:
    with pytest.raises(ValueError, match="transport"):
        RtspSource("rtsp://127.0.0.1/x", transport="sctp")  # type: ignore[arg-type]


def test_rtsp_source_error_is_a_fluxkit_error() -> None:
    from fluxkit.errors import FluxkitError

    assert issubclass(RtspSourceError, FluxkitError)


# -- the per-track pipeline ---------------------------------------------------------------------------------------


def _packet(seq: int, ts: int, payload: bytes, *, pt: int = 8, marker: bool = False) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=7, payload=payload, marker=marker
    ).serialize()


def test_g711_track_counts_gaps_and_unwraps_timestamps() -> None:
    track = RtspTrack(index=1, url="x", media="audio", payload_type=8, encoding="PCMA", clock_rate=8000)
    rx = RtpTrackReceiver(track, reorder=False)
    assert (rx.track.codec, rx.track.sample_rate) == ("pcm_alaw", 8000)
    frames = rx.receive_rtp(
        [_packet(65534, 0xFFFFFF00, b"a" * 160), _packet(65535, 0xFFFFFFA0, b"b" * 160), _packet(2, 0xE0, b"c")],
        now=0.0,
    )
    assert [f.pts for f in frames] == [0xFFFFFF00, 0xFFFFFFA0, 0x1000000E0]
    assert all(f.keyframe and f.codec == "pcm_alaw" for f in frames)
    assert rx.take_losses() == 2
    assert rx.take_losses() == 0
    assert rx.receive_rtp([b"\x00junk", _packet(3, 0, b"x", pt=0)], now=0.1) == []
    assert (rx.malformed, rx.foreign) == (1, 1)


def test_udp_track_reorders() -> None:
    track = RtspTrack(index=0, url="x", media="audio", payload_type=0, encoding="PCMU", clock_rate=8000)
    rx = RtpTrackReceiver(track, reorder=True)
    frames = rx.receive_rtp([_packet(1, 0, b"1", pt=0), _packet(3, 320, b"3", pt=0)], now=0.0)
    assert [f.data for f in frames] == [b"1"]
    frames = rx.receive_rtp([_packet(2, 160, b"2", pt=0)], now=0.01)
    assert [f.data for f in frames] == [b"2", b"3"]
    assert rx.receive_rtp([_packet(5, 640, b"5", pt=0)], now=0.02) == []
    timer = rx.get_timer()
    assert timer is not None
    assert [f.data for f in rx.handle_timer(timer)] == [b"5"]
    assert rx.take_losses() == 1
    assert rx.report_block(1.0) is not None
    assert rx.jitter_seconds() >= 0


def test_aac_hbr_depacketizer() -> None:
    dep = AacDepacketizer()

    def headers(*sizes: int) -> bytes:
        bits = "".join(f"{s:013b}000" for s in sizes)
        return (16 * len(sizes)).to_bytes(2, "big") + int(bits, 2).to_bytes(2 * len(sizes), "big")

    def rtp(payload: bytes, ts: int, marker: bool = True) -> RtpPacket:
        return RtpPacket(payload_type=97, sequence_number=1, timestamp=ts, ssrc=1, payload=payload, marker=marker)

    frames = dep.feed(rtp(headers(3, 2) + b"abcde", 1000))
    assert [(f.data, f.pts, f.codec) for f in frames] == [(b"abc", 1000, "aac"), (b"de", 2024, "aac")]
    # A fragmented AU: one header with the whole size, the last fragment has the marker bit.
    assert dep.feed(rtp(headers(6) + b"abc", 3048, marker=False)) == []
    frames = dep.feed(rtp(headers(6) + b"def", 3048))
    assert [f.data for f in frames] == [b"abcdef"]
    # A loss in the middle of a fragmented AU drops it.
    assert dep.feed(rtp(headers(6) + b"abc", 4072, marker=False)) == []
    dep.feed_gap()
    assert dep.feed(rtp(headers(6) + b"def", 4072)) == []
    assert dep.feed(rtp(b"\x00", 0)) == []
    assert dep.malformed == 2
    assert dep.flush() == []


def test_aac_track_from_sdp_and_unsupported_tracks() -> None:
    fmtp = (("mode", "AAC-hbr"), ("sizelength", "13"), ("indexlength", "3"), ("config", "1408"))
    track = RtspTrack(
        index=0, url="x", media="audio", payload_type=97, encoding="MPEG4-GENERIC", clock_rate=16000, fmtp=fmtp
    )
    rx = RtpTrackReceiver(track, reorder=False)
    assert (rx.track.codec, rx.track.extradata, rx.track.sample_rate) == ("aac", b"\x14\x08", 16000)
    with pytest.raises(UnsupportedTrack):
        RtpTrackReceiver(RtspTrack(index=0, url="x", encoding="MPEG4-GENERIC", fmtp=(("mode", "generic"),)), reorder=0)
    with pytest.raises(UnsupportedTrack):
        RtpTrackReceiver(RtspTrack(index=0, url="x", encoding="JPEG"), reorder=False)
    assert G711Depacketizer("pcm_mulaw").feed(RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)) == []


def test_h264_track_from_sprop() -> None:
    _, sets = clip()
    track = RtspTrack(
        index=0, url="x", media="video", payload_type=96, encoding="H264", clock_rate=90000,
        fmtp=(("sprop-parameter-sets", sets),),
    )  # fmt: skip
    rx = RtpTrackReceiver(track, reorder=False)
    assert (rx.track.codec, rx.track.width, rx.track.height, len(rx.track.parameter_sets)) == ("h264", 320, 240, 2)
