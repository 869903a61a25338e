"""HEVC in FLV as FFmpeg 8.1 (PyAV) writes it (Enhanced RTMP, FourCC "hvc1"), read by `FlvDemuxer`.

Debian's ffmpeg 5.1 cannot put HEVC in FLV at all ("Video codec hevc not compatible with flv"), so it cannot
push H.265 over RTMP; PyAV's FFmpeg 8.1 can mux it. The FLV bytes it writes are walked tag by tag here, turned
into frames and decoded with PyAV.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from fluxkit.protocols import MediaFrame
from fluxkit.protocols.flv import FlvDemuxer, parse_video_tag

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
