"""HEVC in FLV as FFmpeg 8.1 (PyAV) writes it (Enhanced RTMP, FourCC "hvc1"), read by `FlvDemuxer`.

Debian's ffmpeg 5.1 cannot put HEVC in FLV at all ("Video codec hevc not compatible with flv"), so it cannot
push H.265 over RTMP; PyAV's FFmpeg 8.1 can mux it, and its rtmp protocol can push it. The FLV bytes it writes
are walked tag by tag here, turned into frames and decoded with PyAV; then a live push from PyAV into
`serve_rtmp` must arrive in the engine as the same H.265 access units.
"""

from __future__ import annotations

import io
import logging
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import trio

from fluxkit.engine import StreamPublished, open_engine
from fluxkit.net.rtmp_server import serve_rtmp
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.flv import FlvDemuxer, parse_video_tag
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from tests.mediagen import encode_annexb

pytestmark = pytest.mark.interop


def _hevc_flv(frames: int) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="flv") as out:
        stream = out.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        stream.options = {"x265-params": "keyint=10:log-level=none"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 8 % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def test_ffmpeg8_hevc_flv() -> None:
    data = _hevc_flv(30)
    assert data[:3] == b"FLV"
    demuxer = FlvDemuxer()
    frames: list[MediaFrame] = []
    enhanced = []
    pos = 9 + 4
    while pos + 11 <= len(data):
        tag_type, size = data[pos], int.from_bytes(data[pos + 1 : pos + 4], "big")
        ms = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11 : pos + 11 + size]
        if tag_type == 9:
            enhanced.append(parse_video_tag(body).enhanced)
            frame = demuxer.video(ms, body)
            if frame is not None:
                frames.append(frame)
        pos += 11 + size + 4
    assert all(enhanced)  # FFmpeg 8.1 writes the Enhanced RTMP header for HEVC
    assert demuxer.video_config is not None
    assert demuxer.video_config.codec == "hevc"
    assert len(frames) == 30
    assert frames[0].keyframe
    assert sum(f.keyframe for f in frames) >= 3  # keyint 10, plus any scene cut x265 adds
    assert all(f.pts is not None and f.dts is not None and f.pts >= f.dts for f in frames)
    decoder = av.CodecContext.create("hevc", "r")
    decoded = sum(len(decoder.decode(av.Packet(f.data))) for f in frames) + len(decoder.decode(None))
    assert decoded == 30


# PyAV (FFmpeg 8.1) remuxes a raw H.265 stream into FLV and pushes it over rtmp://. It runs in a subprocess: PyAV
# 18.1 calls avio_open (which, for rtmp://, does the whole handshake/connect/publish dialogue) and
# avformat_write_header without releasing the GIL, so a server in the same process could never answer: that is
# why an in-process push hangs. Timestamps are set by hand (a raw stream has none), 40 ms per frame.
_PUSH = """
import sys
import time
from fractions import Fraction
import av
src, url = sys.argv[1], sys.argv[2]
with av.open(src, format="hevc") as inp, av.open(url, "w", format="flv") as out:
    ist = inp.streams.video[0]
    ost = out.add_stream_from_template(ist)
    tb = Fraction(1, 1000)
    ost.time_base = tb
    for n, pkt in enumerate(p for p in inp.demux(ist) if p.size):
        pkt.pts = pkt.dts = n * 40
        pkt.duration = 40
        pkt.time_base = tb
        pkt.stream = ost
        out.mux(pkt)
        time.sleep(0.02)  # paced, like ffmpeg -re, so the test subscribes before the end
"""


def _nals_without_parameter_sets(annexb: bytes) -> list[bytes]:
    return [n for n in split_annexb(annexb) if not 32 <= (n[0] >> 1) & 0x3F <= 34]


@pytest.mark.trio
async def test_pyav_pushes_hevc_over_enhanced_rtmp(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    clip = encode_annexb("hevc", width=160, height=96, frames=30, gop=10)
    src = tmp_path / "in.h265"
    src.write_bytes(clip)
    assembler = AccessUnitAssembler("hevc")
    units = [u for nal in split_annexb(clip) for u in assembler.feed(nal)] + assembler.flush()
    expected = [[n for n in u.nals if not 32 <= (n[0] >> 1) & 0x3F <= 34] for u in units]
    frames: list[MediaFrame] = []
    with trio.fail_after(60):
        async with open_engine() as engine, trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rtmp(engine, "127.0.0.1", 0, task_status=task_status)
            )  # type: ignore[arg-type]
            port = listeners[0].socket.getsockname()[1]
            published: list[StreamPublished] = []
            done = trio.Event()

            async def collect() -> None:
                async with engine.events() as events:
                    async for event in events:
                        if isinstance(event, StreamPublished) and event.stream_id == "h265":
                            published.append(event)
                            break
                async with engine.subscribe_stream("h265", queue_size=1000) as sub:
                    async for frame in sub:
                        frames.append(frame)
                done.set()

            nursery.start_soon(collect)
            await trio.sleep(0.1)
            url = f"rtmp://127.0.0.1:{port}/live/h265"
            result = await trio.run_process(
                [sys.executable, "-c", _PUSH, str(src), url], check=False, capture_stderr=True
            )
            assert result.returncode == 0, result.stderr.decode()
            await done.wait()
            nursery.cancel_scope.cancel()
    assert [t.codec for t in published[0].tracks] == ["hevc"]
    assert (published[0].tracks[0].width, published[0].tracks[0].height) == (160, 96)
    assert [f.codec for f in frames] == ["hevc"] * 30
    assert [_nals_without_parameter_sets(f.data) for f in frames] == expected
    assert [f.keyframe for f in frames] == [u.keyframe for u in units]
    assert [f.dts for f in frames] == [n * 3600 for n in range(30)]
    assert "digest handshake" in caplog.text  # FFmpeg 8.1 signs its C1
