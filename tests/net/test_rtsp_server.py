"""The RTSP output (`fluxkit.net.rtsp_server`) against ffmpeg, and against a raw socket client for the edge cases.

Approach: an engine stream is fed by a looping `FileSource` over a clip made with tests/mediagen.py, and ffmpeg
pulls it with `-c copy` into Matroska. Matroska stores H.264/H.265 as length-prefixed NAL units, so both sides
are normalised to lists of NAL units, leaving out parameter sets and AUDs (ffmpeg moves those into the
codec configuration); the frames ffmpeg wrote must then be a run of consecutive frames of the clip (modulo the
loop), with the same keyframe flags. ffmpeg paces itself at real time (25 fps), so each pull takes ~1-2 s.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import Track, VideoEngine, open_engine
from fluxkit.net._rtsp_sdp import aac_config, build_sdp
from fluxkit.net.rtsp_server import serve_rtsp
from fluxkit.protocols.nalu import split_annexb
from fluxkit.protocols.sdp import parse_sdp
from fluxkit.sim import FileSource, load_clip
from tests.conftest import require_tool
from tests.mediagen import encode_annexb

_PARAMETER_SETS = {"h264": {7, 8, 9}, "hevc": {32, 33, 34, 35}}


def _nal_type(codec: str, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def _normalise(codec: str, nals: list[bytes]) -> tuple[bytes, ...]:
    # A NAL unit never ends in a zero byte (its last byte holds the RBSP stop bit); zeros after it are
    # trailing_zero_8bits of the byte stream (H.264/H.265 Annex B), which ffmpeg sometimes leaves attached.
    skip = _PARAMETER_SETS[codec]
    return tuple(n.rstrip(b"\x00") for n in nals if _nal_type(codec, n) not in skip)


def _length_prefixed(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(data):
        size = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 4 + size])
        i += 4 + size
    return out


def _mkv_frames(path: Path, codec: str) -> list[tuple[tuple[bytes, ...], bool]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (_normalise(codec, _length_prefixed(bytes(p))), bool(p.is_keyframe))
            for p in container.demux(stream)
            if p.size
        ]


def _assert_same_frames(clip_path: Path, out: Path, codec: str, count: int) -> None:
    clip = load_clip(clip_path)
    source = [(_normalise(codec, split_annexb(data)), key) for data, _pts, _dts, key in clip.frames]
    got = _mkv_frames(out, codec)
    assert len(got) == count
    assert got[0][1], "ffmpeg's first frame is a keyframe"
    starts = [i for i, frame in enumerate(source) if frame == got[0]]
    assert starts, "ffmpeg's first frame is not a frame of the clip"
    first = starts[0]
    expected = [source[(first + k) % len(source)] for k in range(count)]
    assert got == expected


def _clip(tmp_path: Path, codec: str = "h264") -> Path:
    path = tmp_path / ("cam.h264" if codec == "h264" else "cam.h265")
    path.write_bytes(encode_annexb(codec, width=320, height=240, frames=50, gop=25))
    return path


@asynccontextmanager
async def _serving(clip: Path, **kwargs: object) -> AsyncIterator[tuple[VideoEngine, int]]:
    """An engine playing `clip` as stream "cam", served over RTSP on a free port."""
    async with open_engine(rng=random.Random(1)) as engine, trio.open_nursery() as nursery:
        engine.add_source("cam", FileSource(clip))
        listeners = await nursery.start(
            partial(serve_rtsp, engine, "127.0.0.1", 0, rng=random.Random(2), **kwargs)  # type: ignore[arg-type]
        )
        port = listeners[0].socket.getsockname()[1]
        while not any(s.tracks for s in engine.list_streams()):  # noqa: ASYNC110 - polling the engine's registry
            await trio.sleep(0.01)
        yield engine, port
        nursery.cancel_scope.cancel()


async def _ffmpeg(url: str, out: Path, *, transport: str, frames: int = 50) -> trio.CompletedProcess[bytes]:
    ffmpeg = require_tool("ffmpeg")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-rtsp_transport", transport, "-i", url]
    cmd += ["-frames:v", str(frames), "-c", "copy", str(out)]
    return await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)


@pytest.mark.interop
@pytest.mark.trio
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_ffmpeg_pulls_the_frames_that_went_in(tmp_path: Path, transport: str) -> None:
    clip = _clip(tmp_path)
    with trio.fail_after(20):
        async with _serving(clip) as (_engine, port):
            out = tmp_path / "out.mkv"
            result = await _ffmpeg(f"rtsp://127.0.0.1:{port}/cam", out, transport=transport)
    assert result.returncode == 0, result.stderr.decode()
    _assert_same_frames(clip, out, "h264", 50)


@pytest.mark.interop
@pytest.mark.trio
async def test_ffmpeg_pulls_h265(tmp_path: Path) -> None:
    clip = _clip(tmp_path, "hevc")
    with trio.fail_after(20):
        async with _serving(clip) as (_engine, port):
            out = tmp_path / "out.mkv"
            result = await _ffmpeg(f"rtsp://127.0.0.1:{port}/cam", out, transport="tcp", frames=30)
    assert result.returncode == 0, result.stderr.decode()
    _assert_same_frames(clip, out, "hevc", 30)


@pytest.mark.interop
@pytest.mark.trio
async def test_digest_auth(tmp_path: Path) -> None:
    clip = _clip(tmp_path)
    with trio.fail_after(20):
        async with _serving(clip, auth=("admin", "s3cret")) as (_engine, port):
            good = await _ffmpeg(f"rtsp://admin:s3cret@127.0.0.1:{port}/cam", tmp_path / "a.mkv", transport="tcp")
            bad = await _ffmpeg(f"rtsp://admin:wrong@127.0.0.1:{port}/cam", tmp_path / "b.mkv", transport="tcp")
            none = await _describe(port, "/cam")
    assert good.returncode == 0, good.stderr.decode()
    _assert_same_frames(clip, tmp_path / "a.mkv", "h264", 50)
    assert bad.returncode != 0
    assert b"401" in bad.stderr
    assert none.startswith(b"RTSP/1.0 401")
    assert b'WWW-Authenticate: Digest realm="fluxkit"' in none


async def _describe(port: int, path: str) -> bytes:
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(f"DESCRIBE rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        return await _read_reply(stream)


async def _read_reply(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.trio
async def test_unknown_path_is_404_and_known_path_describes(tmp_path: Path) -> None:
    clip = _clip(tmp_path)
    with trio.fail_after(10):
        async with _serving(clip, describe_wait=0.2) as (_engine, port):
            missing = await _describe(port, "/nope")
            found = await _describe(port, "/cam")
    assert missing.startswith(b"RTSP/1.0 404")
    assert found.startswith(b"RTSP/1.0 200")
    assert b"a=control:trackID=0" in found
    assert b"sprop-parameter-sets=" in found


@pytest.mark.interop
@pytest.mark.trio
async def test_two_clients_and_a_stalled_one(tmp_path: Path) -> None:
    """A client that plays over TCP and never reads is dropped; two ffmpeg pulls at the same time are unaffected."""
    clip = tmp_path / "big.h264"
    clip.write_bytes(encode_annexb("h264", width=640, height=480, frames=50, gop=25))
    with trio.fail_after(25):
        async with _serving(clip, send_timeout=1.0) as (engine, port):
            stalled = await _stalled_client(port)
            results: dict[str, trio.CompletedProcess[bytes]] = {}

            async def pull(name: str, transport: str) -> None:
                results[name] = await _ffmpeg(f"rtsp://127.0.0.1:{port}/cam", tmp_path / name, transport=transport)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(pull, "tcp.mkv", "tcp")
                nursery.start_soon(pull, "udp.mkv", "udp")
            # The stalled client's subscription goes away once its write times out.
            while engine.list_streams()[0].subscribers:  # noqa: ASYNC110 - polling the engine's registry
                await trio.sleep(0.05)
            stalled.close()
    for name, result in results.items():
        assert result.returncode == 0, result.stderr.decode()
        _assert_same_frames(clip, tmp_path / name, "h264", 50)


async def _stalled_client(port: int) -> socket.socket:
    """Connect with a tiny receive buffer, DESCRIBE/SETUP(TCP)/PLAY, then never read again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
    base = f"rtsp://127.0.0.1:{port}/cam"
    await stream.send_all(f"DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
    reply = await _read_reply(stream)
    length = int(reply.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    body = reply.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += await stream.receive_some(65536)
    setup = f"SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    await stream.send_all(setup.encode())
    reply = await _read_reply(stream)
    assert reply.startswith(b"RTSP/1.0 200"), reply
    session = reply.split(b"Session: ")[1].split(b";")[0].split(b"\r\n")[0].decode()
    await stream.send_all(f"PLAY {base}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n".encode())
    return sock


def test_sdp_for_every_codec() -> None:
    h264 = encode_annexb("h264", width=320, height=240, frames=2, gop=25)
    sps, pps = (n for n in split_annexb(h264) if n[0] & 0x1F in (7, 8))
    tracks = [
        Track(codec="h264", parameter_sets=(sps, pps), width=320, height=240, fps=25.0),
        Track(codec="pcm_alaw", clock_rate=8000, sample_rate=8000, channels=1),
        Track(codec="aac", clock_rate=48000, sample_rate=48000, channels=2),
        Track(codec="svac"),
    ]
    text, formats = build_sdp(tracks, stream_id="cam", host="127.0.0.1", session_id=7)
    sdp = parse_sdp(text)
    assert [m.media for m in sdp.media] == ["video", "audio", "audio"]
    assert formats[3] is None
    video, alaw, aac = sdp.media
    assert video.rtpmaps[96].encoding == "H264"
    params = video.fmtps[96].parameters
    assert params["profile-level-id"] == sps[1:4].hex().upper()
    assert params["packetization-mode"] == "1"
    assert video.attribute("control") == "trackID=0"
    assert alaw.formats == ("8",)
    assert aac.rtpmaps[98].clock_rate == 48000
    assert aac.fmtps[98].parameters["config"] == "1190"  # AAC-LC, 48 kHz, stereo
    assert aac_config(Track(codec="aac", extradata=b"\x12\x10")) == b"\x12\x10"
