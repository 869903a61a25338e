"""The camera simulator: the generated demo clip, `FileSource` pacing and timestamps, and `fluxkit sim-camera`.

Pacing is checked under `autojump_clock`: the virtual clock only moves when every task sleeps, so the time at
which each frame reaches a subscriber equals its schedule exactly, with no timed assertion on a real clock.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import PermanentSourceError, open_engine
from fluxkit.protocols.nalu import split_annexb
from fluxkit.sim import DEMO_CLIP_NAME, FileSource, generate_demo_clip, load_clip
from tests.conftest import require_tool
from tests.mediagen import encode_annexb


def _clip(tmp_path: Path, *, frames: int = 10, gop: int = 5, codec: str = "h264") -> Path:
    path = tmp_path / ("clip.h264" if codec == "h264" else "clip.h265")
    path.write_bytes(encode_annexb(codec, width=160, height=96, frames=frames, gop=gop))
    return path


@pytest.mark.trio
@pytest.mark.parametrize("codec", ["h264", "hevc"])
async def test_file_source_loops_at_real_time_with_continuous_timestamps(
    tmp_path: Path, autojump_clock: trio.abc.Clock, codec: str
) -> None:
    path = _clip(tmp_path, codec=codec)
    source = FileSource(load_clip(path))  # loaded here: autojump would race a worker thread
    received: list[tuple[float, int, int, bool]] = []
    with trio.fail_after(60):  # virtual seconds
        async with open_engine() as engine:
            engine.add_source("cam", source)
            async with engine.subscribe_stream("cam") as frames:
                async for frame in frames:
                    assert frame.pts is not None
                    assert frame.dts is not None
                    received.append((trio.current_time(), frame.pts, frame.dts, frame.keyframe))
                    if len(received) == 35:
                        break
    assert source.clip is not None
    track = source.clip.track
    assert track.codec == codec
    assert (track.width, track.height) == (160, 96)
    assert track.parameter_sets
    dts = [r[2] for r in received]
    assert dts == [k * 3600 for k in range(35)], "25 fps, no jump at the loop seams"
    assert [r[1] for r in received] == dts
    assert [k for k, r in enumerate(received) if r[3]] == [0, 5, 10, 15, 20, 25, 30]
    start = received[0][0]
    assert [round((t - start) * 90000) for t, *_ in received] == dts, "each frame is sent on its schedule"
    assert source.loops == 3


@pytest.mark.trio
async def test_file_source_without_loop_ends_the_stream(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    path = _clip(tmp_path)
    with trio.fail_after(60):
        async with open_engine() as engine:
            engine.add_source("cam", FileSource(load_clip(path), loop=False))
            async with engine.subscribe_stream("cam") as frames:
                got = [frame async for frame in frames]
    assert len(got) == 10
    assert got[0].keyframe


@pytest.mark.trio
async def test_file_source_random_start_and_bad_file(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    import random

    source = FileSource(_clip(tmp_path), rng=random.Random(5))
    assert source.start_pts == random.Random(5).getrandbits(31)
    bad = tmp_path / "bad.h264"
    bad.write_bytes(b"\x00\x00\x00\x01garbage" * 10)
    with pytest.raises(PermanentSourceError):
        load_clip(bad)
    with pytest.raises(PermanentSourceError):
        load_clip(tmp_path / "missing.mp4")


@pytest.mark.interop
def test_mp4_gives_the_same_frames_as_annexb(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    raw = _clip(tmp_path, frames=20)
    mp4 = tmp_path / "clip.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-r", "25", "-i", str(raw), "-c", "copy", str(mp4)], check=True, timeout=30
    )
    a, b = load_clip(raw), load_clip(mp4)
    assert b.track.codec == "h264"
    assert b.track.fps == pytest.approx(25)

    def vcl(data: bytes) -> list[bytes]:
        return [n for n in split_annexb(data) if n[0] & 0x1F in (1, 5)]

    assert [vcl(f[0]) for f in a.frames] == [vcl(f[0]) for f in b.frames]
    assert [f[3] for f in a.frames] == [f[3] for f in b.frames]
    assert [f[2] for f in b.frames] == [k * 3600 for k in range(20)]
    assert b.period == a.period == 20 * 3600


def test_generate_demo_clip_is_camera_like_and_cached(tmp_path: Path) -> None:
    path = generate_demo_clip(tmp_path / "demo.h264", frames=60)
    assert path.stat().st_size > 0
    mtime = path.stat().st_mtime_ns
    assert generate_demo_clip(tmp_path / "demo.h264") == path
    assert path.stat().st_mtime_ns == mtime, "an existing clip is reused"
    clip = load_clip(path)
    assert (clip.track.width, clip.track.height, clip.track.fps) == (640, 360, 25)
    assert [k for k, f in enumerate(clip.frames) if f[3]] == [0, 50]
    with av.open(str(path)) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == 60
    assert list(tmp_path.iterdir()) == [path], "no temporary file left behind"


_COPY_25 = ["-frames:v", "25", "-c", "copy"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.interop
def test_sim_camera_command_serves_the_demo_clip(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    port = _free_port()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fluxkit", "sim-camera", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the clip exists and the server listens
        assert line.startswith(f"rtsp://127.0.0.1:{port}/demo "), line
        out = tmp_path / "out.mkv"
        result = subprocess.run(
            [
                ffmpeg,
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-rtsp_transport",
                "tcp",
                "-i",
                line.split()[0],
                *_COPY_25,
                str(out),
            ],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        with av.open(str(out)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
            assert sum(1 for p in container.demux(stream) if p.size) == 25
        assert (tmp_path / "cache" / "fluxkit" / "sim-v1" / DEMO_CLIP_NAME).is_file()
        process.send_signal(signal.SIGINT)  # Ctrl-C: a clean exit
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
