"""RtspSource ingesting GStreamer's gst-rtsp-server (tests/interop/rtsp_server.py) into a real engine.

Checks per mount and transport: the announced tracks (codec, width/height from the SPS), that the first video
frame is a keyframe, that timestamps increase, and that PyAV (FFmpeg) decodes the frames. Then Digest auth, a
wrong password (a permanent failure after one connection), and a server killed and started again on the same
port (the source reconnects and frames flow again).
"""

from __future__ import annotations

import itertools
import random

import av
import pytest
import trio

from fluxkit.engine import RestartPolicy, SourceConnected, SourceReconnecting, StreamFailed, VideoEngine, open_engine
from fluxkit.net.rtsp_source import RtspSource
from fluxkit.protocols import MediaFrame

from .conftest import GstRtspServer

pytestmark = pytest.mark.interop


async def collect(engine: VideoEngine, stream_id: str, video: int, *, audio: int = 0) -> list[MediaFrame]:
    out: list[MediaFrame] = []
    async with engine.subscribe_stream(stream_id) as frames:
        async for frame in frames:
            out.append(frame)
            if sum(f.kind == "video" for f in out) >= video and sum(f.kind == "audio" for f in out) >= audio:
                break
    return out


def decode(codec: str, frames: list[MediaFrame]) -> int:
    ctx = av.CodecContext.create(codec, "r")
    decoded = 0
    for frame in frames:
        for picture in ctx.decode(av.Packet(frame.data)):
            assert (picture.width, picture.height) == (640, 480)
            decoded += 1
    return decoded


@pytest.mark.trio
@pytest.mark.parametrize(
    ("path", "transport", "codecs"),
    [
        ("/test", "tcp", ("h264",)),
        ("/av", "udp", ("h264", "pcm_alaw")),
        ("/h265", "tcp", ("hevc",)),
    ],
)
async def test_ingest(gst_server: GstRtspServer, path: str, transport: str, codecs: tuple[str, ...]) -> None:
    with trio.fail_after(20):
        async with open_engine(rng=random.Random(0)) as engine:
            engine.add_source("cam", RtspSource(gst_server.url(path), transport=transport, rng=random.Random(1)))  # type: ignore[arg-type]
            frames = await collect(engine, "cam", 12, audio=5 if len(codecs) > 1 else 0)
            tracks = engine.list_streams()[0].tracks
    assert tuple(t.codec for t in tracks) == codecs
    assert (tracks[0].width, tracks[0].height) == (640, 480)
    video = [f for f in frames if f.kind == "video"]
    assert video[0].keyframe
    assert video[0].codec == codecs[0]
    pts = [f.pts for f in video]
    assert all(b > a for a, b in itertools.pairwise(pts))  # type: ignore[operator]
    assert decode(codecs[0], video) >= len(video) - 2  # the decoder may hold the last frames back
    if len(codecs) > 1:
        audio = [f for f in frames if f.kind == "audio"]
        assert all(f.codec == "pcm_alaw" and f.keyframe and f.data for f in audio)
        apts = [f.pts for f in audio]
        assert all(b > a for a, b in itertools.pairwise(apts))  # type: ignore[operator]


@pytest.mark.trio
async def test_digest_auth(gst_auth_server: GstRtspServer) -> None:
    with trio.fail_after(15):
        async with open_engine(rng=random.Random(0)) as engine:
            url = gst_auth_server.url("/test", "admin", "secret")
            engine.add_source("cam", RtspSource(url, rng=random.Random(1)))
            frames = await collect(engine, "cam", 3)
    assert frames[0].keyframe


@pytest.mark.trio
async def test_wrong_password_fails_permanently(gst_auth_server: GstRtspServer) -> None:
    with trio.fail_after(10):
        async with open_engine(rng=random.Random(0)) as engine, engine.events() as events:
            url = gst_auth_server.url("/test", "admin", "nope")
            engine.add_source("cam", RtspSource(url, rng=random.Random(1)))
            async for event in events:
                assert not isinstance(event, SourceReconnecting)
                if isinstance(event, StreamFailed):
                    break
    assert isinstance(event, StreamFailed)
    assert event.permanent
    assert event.attempts == 0
    assert "authentication failed" in event.error
    assert "nope" not in event.error


@pytest.mark.trio
async def test_server_restart_reconnects(gst_server: GstRtspServer) -> None:
    policy = RestartPolicy(initial_delay=0.2, max_delay=0.5, jitter=0.0, max_attempts=20)
    with trio.fail_after(30):
        async with open_engine(rng=random.Random(0)) as engine, engine.events() as events:
            source = RtspSource(gst_server.url("/test"), rng=random.Random(1), stall_timeout=3)
            engine.add_source("cam", source, restart=policy)
            await collect(engine, "cam", 3)
            gst_server.kill()
            async for event in events:
                if isinstance(event, SourceReconnecting):
                    break
            gst_server.start()
            async for connected in events:
                if isinstance(connected, SourceConnected):
                    break
            frames = await collect(engine, "cam", 3)
            assert engine.stream_statistics("cam").restarts >= 1
    assert isinstance(event, SourceReconnecting)
    assert "RtspSourceError" in event.error
    assert isinstance(connected, SourceConnected)
    assert connected.attempt >= 1
    assert frames[0].keyframe
