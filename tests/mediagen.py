"""Synthetic media made in the test itself with PyAV's encoders (so the suite needs no files from outside).

Every function is cached: encoding is the slow part of many tests, and the output is deterministic enough for
equality checks within one run.
"""

from __future__ import annotations

import functools
import io
from fractions import Fraction

import av
import numpy as np

__all__ = ["encode_annexb", "encode_audio"]


def _frame_image(i: int, width: int, height: int) -> np.ndarray:
    # A moving gradient with a bar: enough texture that P-frames are not empty, cheap to make.
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x + 3 * i) & 0xFF
    img[..., 1] = (y + 2 * i) & 0xFF
    img[..., 2] = ((x + y) // 2 + i) & 0xFF
    bar = (8 * i) % max(width - 16, 1)
    img[:, bar : bar + 16, :] = 255
    return img


@functools.cache
def encode_annexb(
    codec: str = "h264",
    *,
    width: int = 320,
    height: int = 240,
    frames: int = 50,
    gop: int = 25,
    fps: int = 25,
    bframes: int = 0,
) -> bytes:
    """Encode `frames` synthetic pictures to an Annex-B elementary stream ("h264" via libx264, "hevc" via libx265).

    Keyframes fall every `gop` frames (closed GOP, scene-cut off) so tests can count them.
    """
    buf = io.BytesIO()
    fmt = "h264" if codec == "h264" else "hevc"
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream("libx264" if codec == "h264" else "libx265", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        if codec == "h264":
            stream.options = {
                "preset": "veryfast",
                "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0",
            }
        else:
            stream.options = {
                "preset": "ultrafast",
                "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0:log-level=error",
            }
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame_image(i, width, height), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@functools.cache
def encode_audio(
    codec: str = "pcm_alaw", *, seconds: float = 1.0, rate: int = 8000, frame_size: int = 320
) -> list[bytes]:
    """Encode a sine tone; returns the encoded packets ("pcm_alaw", "pcm_mulaw" or "aac" as raw AAC frames)."""
    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "fltp" if codec == "aac" else "s16"
    ctx.time_base = Fraction(1, rate)
    ctx.open()
    n = ctx.frame_size or frame_size
    total = int(seconds * rate)
    t = np.arange(total) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    packets: list[bytes] = []
    for start in range(0, total - n + 1, n):
        chunk = tone[start : start + n]
        if ctx.format.name == "s16":
            frame = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16)[None, :], format="s16", layout="mono")
        else:
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    return packets
