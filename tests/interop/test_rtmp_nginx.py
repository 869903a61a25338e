"""`RtmpSource` pulling from nginx-rtmp (test-peers.md row 3a, appendix C), with ffmpeg publishing into nginx.

Approach: nginx runs in the foreground on a free loopback port with a config written into tmp_path, is stopped
by its PID, and is skipped where nginx or libnginx-mod-rtmp is absent. The frames that reach the engine through
`RtmpSource` are decoded with PyAV.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import RestartPolicy, StreamPublished, open_engine
from fluxkit.net.rtmp_source import RtmpSource
from fluxkit.protocols import MediaFrame
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def nginx_rtmp(tmp_path: Path) -> Iterator[int]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None or not _MODULE.exists():
        if os.environ.get("CI"):
            pytest.fail("nginx with libnginx-mod-rtmp is required under CI")
        pytest.skip("nginx / libnginx-mod-rtmp not installed")
    port = _free_port()
    conf = tmp_path / "nginx-rtmp.conf"
    conf.write_text(
        f"load_module {_MODULE};\ndaemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log info;\n"
        "events { worker_connections 64; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        "  application live { live on; record off; } } }\n"
    )
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("nginx-rtmp did not start listening")
        yield port
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.trio
async def test_pull_from_nginx(nginx_rtmp: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    ffmpeg = require_tool("ffmpeg")
    url = f"rtmp://127.0.0.1:{nginx_rtmp}/live/cam1"
    push = [
        ffmpeg, "-nostdin", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "5",
        "-c:v", "libx264", "-tune", "zerolatency", "-g", "25", "-c:a", "aac", "-f", "flv", url,
    ]  # fmt: skip
    frames: list[MediaFrame] = []
    with trio.fail_after(30):
        async with open_engine() as engine, trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.run_process, push, check=False, capture_stderr=True))
            await trio.sleep(1.0)  # let ffmpeg publish first: nginx holds a play of a missing stream silently
            async with engine.events() as events:
                engine.add_source(
                    "pulled", RtmpSource(url, connect_timeout=5), restart=RestartPolicy(initial_delay=0.2)
                )
                async for event in events:
                    if isinstance(event, StreamPublished) and event.stream_id == "pulled":
                        tracks = {t.codec: t for t in event.tracks}
                        break
            async with engine.subscribe_stream("pulled", queue_size=1000) as sub:
                async for frame in sub:
                    frames.append(frame)
                    if sum(f.codec == "h264" for f in frames) >= 40:
                        break
            engine.remove_source("pulled")
            nursery.cancel_scope.cancel()
    assert tracks["h264"].width == 320
    assert tracks["h264"].height == 240
    assert tracks["aac"].sample_rate == 44100
    video = [f for f in frames if f.codec == "h264"]
    assert video[0].keyframe
    dts = [f.dts for f in video if f.dts is not None]
    assert all(b - a == 3600 for a, b in itertools.pairwise(dts))
    decoder = av.CodecContext.create("h264", "r")
    decoded = sum(len(decoder.decode(av.Packet(f.data))) for f in video) + len(decoder.decode(None))
    assert decoded == len(video)
    assert any(f.codec == "aac" for f in frames)
    # Our digest C1 made nginx-rtmp answer with its digest S1 and a signed S2, both checked.
    assert "connected (digest handshake)" in caplog.text
