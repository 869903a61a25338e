"""RTMP play flow control against real players: GStreamer's rtmp2src and librtmp (GStreamer's rtmpsrc).

librtmp also opens chunk stream 2 with a type-1 header, which the chunk reader once refused (see
tests/protocols/test_rtmp_chunk.py); this test is where that was found.

fluxkit asks players to acknowledge every `window_ack_size` bytes and treats one whose unacknowledged bytes pass
`max_unacknowledged` as slow (frames dropped, then disconnected). With both limits made small here (32 KB and
256 KB) and a ~6 Mbit/s stream pushed by ffmpeg, a real player must keep acknowledging for the stream to reach it:
each one here receives many times the limit without ever being called slow.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from fluxkit.engine import StreamPublished, open_engine
from fluxkit.net.rtmp_server import serve_rtmp
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

WINDOW = 32 * 1024
LIMIT = 256 * 1024


def _push_cmd(ffmpeg: str, url: str, seconds: float) -> list[str]:
    # Noise keeps the bitrate at its ceiling (~6 Mbit/s): several MB in a few seconds.
    return [
        ffmpeg, "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "color=c=gray:s=640x360:r=25,noise=alls=60:allf=t", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "2M", "-g", "25",
        "-f", "flv", url,
    ]  # fmt: skip


@pytest.mark.trio
@pytest.mark.parametrize(
    ("element", "location_suffix"),
    [("rtmp2src", ""), ("rtmpsrc", " live=1")],
    ids=["gstreamer-rtmp2src", "librtmp-rtmpsrc"],
)
async def test_real_players_acknowledge_and_are_never_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, element: str, location_suffix: str
) -> None:
    ffmpeg = require_tool("ffmpeg")
    gst = require_tool("gst-launch-1.0")
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    out = tmp_path / "played.flv"
    with trio.fail_after(60):
        async with open_engine() as engine, trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rtmp(
                    engine,
                    "127.0.0.1",
                    0,
                    window_ack_size=WINDOW,
                    max_unacknowledged=LIMIT,
                    task_status=task_status,
                )
            )
            port = listeners[0].socket.getsockname()[1]
            url = f"rtmp://127.0.0.1:{port}/live/cam1"
            published = trio.Event()

            async def watch() -> None:
                async with engine.events() as events:
                    async for event in events:
                        if isinstance(event, StreamPublished) and event.stream_id == "cam1":
                            published.set()
                            return

            async def push() -> None:
                await trio.run_process(_push_cmd(ffmpeg, url, 12), check=False, capture_stderr=True)

            nursery.start_soon(watch)
            await trio.sleep(0.05)
            nursery.start_soon(push)
            await published.wait()
            player = [gst, "-q", element, f"location={url}{location_suffix}", "!", "filesink", f"location={out}"]
            with trio.move_on_after(6):  # ~4.5 MB at 6 Mbit/s
                await trio.run_process(player, check=False, capture_stderr=True)
            nursery.cancel_scope.cancel()
    received = out.stat().st_size
    assert received > 8 * LIMIT, received
    assert "is not acknowledging" not in caplog.text
    assert "stopped acknowledging" not in caplog.text


@pytest.mark.trio
@pytest.mark.parametrize("element", ["rtmp2sink", "rtmpsink"], ids=["gstreamer-rtmp2sink", "librtmp-rtmpsink"])
async def test_real_publishers_push_into_the_engine(caplog: pytest.LogCaptureFixture, element: str) -> None:
    # librtmp is what OBS (before 30) and many encoders publish with.
    gst = require_tool("gst-launch-1.0")
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    frames = 0
    with trio.fail_after(60):
        async with open_engine() as engine, trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rtmp(engine, "127.0.0.1", 0, task_status=task_status)
            )
            port = listeners[0].socket.getsockname()[1]
            url = f"rtmp://127.0.0.1:{port}/live/pushed"
            counted = trio.Event()

            async def count() -> None:
                nonlocal frames
                async with engine.events() as events:
                    async for event in events:
                        if isinstance(event, StreamPublished) and event.stream_id == "pushed":
                            break
                async with engine.subscribe_stream("pushed", queue_size=1024) as subscription:
                    async for frame in subscription:
                        frames += frame.kind == "video"
                counted.set()

            nursery.start_soon(count)
            await trio.sleep(0.05)
            pipeline = [
                gst, "-q", "videotestsrc", "num-buffers=75", "!", "video/x-raw,width=320,height=240,framerate=25/1",
                "!", "x264enc", "key-int-max=25", "tune=zerolatency", "!", "h264parse", "!",
                "flvmux", "streamable=true", "!", element, f"location={url}",
            ]  # fmt: skip
            pushed = await trio.run_process(pipeline, check=False, capture_stderr=True)
            assert pushed.returncode == 0, pushed.stderr.decode()[-2000:]
            with trio.move_on_after(10):
                await counted.wait()
            nursery.cancel_scope.cancel()
    assert "protocol error" not in caplog.text
    assert frames >= 70, frames  # all 75 but what a closing publisher may cut
