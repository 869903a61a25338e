"""The RTMP server (`fluxkit.net.rtmp_server`) against ffmpeg: ffmpeg pushes H.264+AAC in, ffmpeg plays out.

Approach: a real engine and `serve_rtmp` on a free loopback port; ffmpeg (Debian 5.1) runs as a subprocess with
`-re`, so each push lasts as long as its clip. The frames that reach the engine are decoded with PyAV; the FLV
that an ffmpeg player writes is read back with PyAV. A second publisher on the same key must be refused. Every
connection uses the digest handshake (ffmpeg signs its C1, and checks our S1/S2 when it plays).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import StreamPublished, VideoEngine, open_engine
from fluxkit.net.rtmp_server import serve_rtmp
from fluxkit.protocols import MediaFrame
from tests.conftest import require_tool

pytestmark = pytest.mark.interop


def _push_cmd(ffmpeg: str, url: str, seconds: float) -> list[str]:
    return [
        ffmpeg, "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
        "-f", "lavfi", "-i", "sine", "-t", str(seconds),
        "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "flv", url,
    ]  # fmt: skip


@asynccontextmanager
async def _server(**kwargs: object) -> AsyncIterator[tuple[VideoEngine, int]]:
    async with open_engine() as engine, trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_rtmp(engine, "127.0.0.1", 0, task_status=task_status, **kwargs)
        )  # type: ignore[arg-type]
        yield engine, listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def _wait_published(engine: VideoEngine, stream_id: str) -> StreamPublished:
    async with engine.events() as events:
        async for event in events:
            if isinstance(event, StreamPublished) and event.stream_id == stream_id:
                return event
    raise AssertionError("event listener ended")


@pytest.mark.trio
async def test_ffmpeg_push_h264_aac() -> None:
    ffmpeg = require_tool("ffmpeg")
    frames: list[MediaFrame] = []
    with trio.fail_after(30):
        async with _server() as (engine, port):
            async with trio.open_nursery() as nursery:
                published: list[StreamPublished] = []

                async def collect() -> None:
                    published.append(await _wait_published(engine, "cam1"))
                    async with engine.subscribe_stream("cam1", queue_size=1000) as sub:
                        async for frame in sub:
                            frames.append(frame)

                nursery.start_soon(collect)
                await trio.sleep(0.1)
                result = await trio.run_process(
                    _push_cmd(ffmpeg, f"rtmp://127.0.0.1:{port}/live/cam1", 2), check=False, capture_stderr=True
                )
                assert result.returncode == 0, result.stderr.decode()
    tracks = {t.codec: t for t in published[0].tracks}
    assert tracks["h264"].width == 320
    assert tracks["h264"].height == 240
    assert tracks["aac"].sample_rate == 44100
    assert tracks["aac"].extradata
    video = [f for f in frames if f.codec == "h264"]
    audio = [f for f in frames if f.codec == "aac"]
    assert len(video) == 50
    assert video[0].keyframe
    assert sum(f.keyframe for f in video) == 2
    # 25 fps: dts steps of 40 ms = 3600 ticks, from 0.
    assert [f.dts for f in video[:3]] == [0, 3600, 7200]
    assert all(f.pts is not None and f.dts is not None and f.pts >= f.dts for f in video)
    decoder = av.CodecContext.create("h264", "r")
    decoded = 0
    for f in video:
        decoded += len(decoder.decode(av.Packet(f.data)))
    decoded += len(decoder.decode(None))
    assert decoded == 50
    aac = av.CodecContext.create("aac", "r")
    aac.extradata = tracks["aac"].extradata
    samples = sum(fr.samples for f in audio for fr in aac.decode(av.Packet(f.data)))
    assert abs(samples / 44100 - 2.0) < 0.2


@pytest.mark.trio
async def test_second_publisher_refused_and_ffmpeg_plays(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path / "pull.flv"
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    with trio.fail_after(40):
        async with _server() as (engine, port):
            url = f"rtmp://127.0.0.1:{port}/live/cam1"
            async with trio.open_nursery() as nursery:
                first = trio.Event()

                async def push() -> None:
                    await trio.run_process(_push_cmd(ffmpeg, url, 6), check=False, capture_stderr=True)

                async def watch() -> None:
                    await _wait_published(engine, "cam1")
                    first.set()

                nursery.start_soon(watch)
                await trio.sleep(0.1)
                nursery.start_soon(push)
                await first.wait()
                second = await trio.run_process(_push_cmd(ffmpeg, url, 1), check=False, capture_stderr=True)
                assert second.returncode != 0
                pull = await trio.run_process(
                    [ffmpeg, "-nostdin", "-loglevel", "error", "-i", url, "-t", "2", "-c", "copy", "-y", str(out)],
                    check=False,
                    capture_stderr=True,
                )
                assert pull.returncode == 0, pull.stderr.decode()
                nursery.cancel_scope.cancel()
    assert "refused: stream is already being published" in caplog.text
    # ffmpeg signs its C1; the server answers with a digest S1 and a signed S2, which ffmpeg, when playing,
    # validates (rtmpproto.c rtmp_handshake: is_input and S1's first version byte >= 3): the pull succeeded.
    assert caplog.text.count("digest handshake") == 3
    assert "simple handshake" not in caplog.text
    with av.open(str(out)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "h264", "audio": "aac"}
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        packets = [p for p in container.demux(video) if p.size]
    assert packets[0].is_keyframe
    assert len(packets) >= 40
    decoded = 0
    with av.open(str(out)) as container:
        for _ in container.decode(video=0):
            decoded += 1
    assert decoded == len(packets)
