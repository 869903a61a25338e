"""Access units of generated clips, and reference decoding with a fresh PyAV decoder."""

from __future__ import annotations

import functools

import av
import numpy as np

from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from tests.mediagen import encode_annexb

PS_TYPES = {"h264": {7, 8}, "hevc": {32, 33, 34}}


@functools.cache
def clip_frames(codec: str, *, in_band: bool = True, frames: int = 60, gop: int = 10) -> tuple[MediaFrame, ...]:
    """One MediaFrame per access unit of a generated clip (25 fps, 90 kHz pts).

    With `in_band=False` every parameter set is stripped from the frames (they travel out of band, as with RTSP's
    sprop-parameter-sets): see `clip_parameter_sets`.
    """
    assembler = AccessUnitAssembler(codec, insert_parameter_sets=False)
    units = []
    for nal in split_annexb(encode_annexb(codec, frames=frames, gop=gop)):
        units += assembler.feed(nal)
    units += assembler.flush()
    out = []
    for i, unit in enumerate(units):
        nals = unit.nals
        if not in_band:
            nals = tuple(n for n, t in zip(nals, unit.nal_types, strict=True) if t not in PS_TYPES[codec])
        data = b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01".join(nals)
        out.append(MediaFrame(codec=codec, data=data, pts=i * 3600, dts=None, keyframe=unit.keyframe))
    return tuple(out)


def clip_parameter_sets(codec: str) -> tuple[bytes, ...]:
    """The parameter sets of the clip `clip_frames` makes, without start codes."""
    first = clip_frames(codec)[0].data
    return tuple(n for n in split_annexb(first) if _nal_type(codec, n) in PS_TYPES[codec])


def _nal_type(codec: str, nal: bytes) -> int:
    return nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F


def decode_alone(codec: str, data: bytes) -> av.VideoFrame:
    """Decode one access unit with a brand-new decoder (drained), failing if it gives no picture."""
    ctx = av.CodecContext.create(codec, "r")
    frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
    assert len(frames) == 1, f"expected one picture, got {len(frames)}"
    frame = frames[0]
    assert isinstance(frame, av.VideoFrame)
    return frame


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images of the same shape, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
