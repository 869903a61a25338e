"""NALU parsing checked against FFmpeg (through PyAV) as the oracle.

* SPS: width, height, frame rate and profile equal what FFmpeg's decoder reports for the same stream, over sizes
  that need cropping (1080 lines are coded as 1088; 330x250 needs both a right and a bottom crop), 4:2:2
  interlaced, 4:4:4, 10-bit, monochrome, and x264/x265 options that change the SPS syntax before the VUI.
* Access units: the count, keyframe count and NAL units equal the packets of FFmpeg's parser
  (`CodecContext.parse`), with and without B-frames, and on the real clips.
* Parameter-set insertion: with the parameter sets sent only once (as many cameras do), every keyframe access
  unit the assembler emits decodes alone in a fresh decoder.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fluxkit.protocols.nalu import (
    AccessUnit,
    AccessUnitAssembler,
    nal_types,
    parse_sps,
    split_annexb,
)
from tests.mediagen import encode_annexb

pytestmark = pytest.mark.interop

H264_PROFILES = {66: {"Baseline", "Constrained Baseline"}, 77: {"Main"}, 100: {"High"}, 110: {"High 10"},
                 122: {"High 4:2:2"}, 244: {"High 4:4:4 Predictive"}}  # fmt: skip
HEVC_PROFILES = {1: {"Main"}, 2: {"Main 10"}, 4: {"Rext"}}


def _encode(codec: str, width: int, height: int, pix_fmt: str, params: str, fps: int = 30, frames: int = 3) -> bytes:
    """A few frames with encoder options mediagen does not expose."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264" if codec == "h264" else "hevc") as out:
        stream = out.add_stream("libx264" if codec == "h264" else "libx265", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = Fraction(1, fps)
        if codec == "h264":
            stream.options = {"preset": "ultrafast", "x264-params": params}
        else:
            stream.options = {"preset": "ultrafast", "x265-params": f"{params}:log-level=error".lstrip(":")}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _ffmpeg_view(codec: str, data: bytes) -> tuple[int, int, Fraction | None, str | None]:
    ctx = av.CodecContext.create(codec, "r")
    for packet in [*ctx.parse(data), *ctx.parse(None)]:
        frames = ctx.decode(packet)
        if frames:
            return frames[0].width, frames[0].height, ctx.framerate, ctx.profile
    raise AssertionError("FFmpeg decoded nothing")


def _first_sps(codec: str, data: bytes) -> bytes:
    sps_type = 7 if codec == "h264" else 33
    return next(n for n, t in zip(split_annexb(data), nal_types(codec, data), strict=True) if t == sps_type)


def _compare(codec: str, data: bytes) -> None:
    info = parse_sps(codec, _first_sps(codec, data))
    width, height, framerate, profile = _ffmpeg_view(codec, data)
    assert (info.width, info.height) == (width, height)
    assert framerate is not None
    assert info.fps == pytest.approx(float(framerate))
    assert profile in (H264_PROFILES if codec == "h264" else HEVC_PROFILES)[info.profile_idc]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720), (1920, 1080), (330, 250), (176, 144)])
def test_sps_matches_ffmpeg(codec: str, width: int, height: int) -> None:
    _compare(codec, encode_annexb(codec, width=width, height=height, frames=2, gop=2, fps=30))


@pytest.mark.parametrize(
    ("codec", "width", "height", "pix_fmt", "params"),
    [
        ("h264", 330, 250, "yuv420p", "cqm=jvt"),
        ("h264", 1920, 1080, "yuv422p", "interlaced=1"),
        ("h264", 322, 242, "yuv444p", ""),
        ("h264", 320, 240, "yuv420p10le", ""),
        ("h264", 176, 144, "gray", ""),
        ("hevc", 1920, 1080, "yuv422p10le", "scaling-list=default"),
        ("hevc", 322, 242, "yuv444p", "temporal-layers=3:bframes=3"),
        ("hevc", 320, 240, "yuv420p10le", ""),
        ("hevc", 320, 240, "gray", ""),
    ],
)
def test_sps_variants_match_ffmpeg(codec: str, width: int, height: int, pix_fmt: str, params: str) -> None:
    _compare(codec, _encode(codec, width, height, pix_fmt, params, fps=24))


def _hm_scaling_list() -> str:
    """An HM-format scaling-list file with every matrix different from the defaults."""
    lines: list[str] = []
    for size, count in (("4X4", 16), ("8X8", 64), ("16X16", 64), ("32X32", 64)):
        for pred in ("INTRA", "INTER"):
            for comp in ("LUMA", "CHROMAU", "CHROMAV"):
                lines += [f"{pred}{size}_{comp} =", ",".join(str(16 + (i * 7) % 40) for i in range(count))]
                if size in ("16X16", "32X32"):
                    lines += [f"{pred}{size}_{comp}_DC =", "20"]
    return "\n".join(lines) + "\n"


def test_hevc_explicit_scaling_lists_match_ffmpeg(tmp_path: Path) -> None:
    path = tmp_path / "scaling.txt"
    path.write_text(_hm_scaling_list())
    _compare("hevc", _encode("hevc", 330, 250, "yuv420p", f"scaling-list={path}"))


def _assemble(codec: str, data: bytes, **kwargs: bool) -> list[AccessUnit]:
    asm = AccessUnitAssembler(codec, **kwargs)  # type: ignore[arg-type]
    out: list[AccessUnit] = []
    for nal in split_annexb(data):
        out += asm.feed(nal)
    return out + asm.flush()


def _ffmpeg_packets(codec: str, data: bytes) -> list[av.Packet]:
    ctx = av.CodecContext.create(codec, "r")
    return [*ctx.parse(data), *ctx.parse(None)]


def _compare_assembly(codec: str, data: bytes) -> list[AccessUnit]:
    aus = _assemble(codec, data, insert_parameter_sets=False)
    packets = _ffmpeg_packets(codec, data)
    assert len(aus) == len(packets)
    assert [au.keyframe for au in aus] == [p.is_keyframe for p in packets]
    assert [list(au.nals) for au in aus] == [split_annexb(bytes(p)) for p in packets]
    return aus


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("bframes", [0, 2, 3])
def test_access_units_match_ffmpeg_parser(codec: str, bframes: int) -> None:
    data = encode_annexb(codec, width=192, height=108, frames=40, gop=12, bframes=bframes)
    aus = _compare_assembly(codec, data)
    assert len(aus) == 40
    assert sum(au.keyframe for au in aus) == 4


@pytest.mark.media
@pytest.mark.parametrize(("name", "codec", "keyframes"), [("avatar.h264", "h264", 13), ("avatar.h265", "hevc", 8)])
def test_real_clips(shared_media: Path, name: str, codec: str, keyframes: int) -> None:
    data = (shared_media / name).read_bytes()
    aus = _compare_assembly(codec, data)
    assert len(aus) == 308
    assert sum(au.keyframe for au in aus) == keyframes
    asm = AccessUnitAssembler(codec)
    for nal in split_annexb(data):
        asm.feed(nal)
    info = asm.parameter_sets.sps_info()
    assert info is not None
    assert (info.width, info.height) == (768, 320)
    assert info.fps == pytest.approx(25.0)


def _decode_alone(codec: str, annexb: bytes) -> int:
    ctx = av.CodecContext.create(codec, "r")
    frames = 0
    for packet in [*ctx.parse(annexb), *ctx.parse(None), None]:
        # A slice without its parameter sets is invalid data to FFmpeg.
        with contextlib.suppress(av.error.InvalidDataError):
            frames += len(ctx.decode(packet))
    return frames


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_keyframes_decode_alone(codec: str) -> None:
    data = encode_annexb(codec, width=192, height=108, frames=30, gop=10, bframes=2)
    ps_types = {7, 8} if codec == "h264" else {32, 33, 34}
    # Keep only the first copy of each parameter set, as a camera that sends them once would.
    kept: list[bytes] = []
    seen: set[int] = set()
    for nal, t in zip(split_annexb(data), nal_types(codec, data), strict=True):
        if t in ps_types:
            if t in seen:
                continue
            seen.add(t)
        kept.append(nal)
    once = b"".join(b"\x00\x00\x00\x01" + n for n in kept)
    bare = [au for au in _assemble(codec, once, insert_parameter_sets=False) if au.keyframe]
    assert len(bare) == 3
    assert _decode_alone(codec, bare[1].annexb) == 0  # the oracle agrees it needs parameter sets
    keyframes = [au for au in _assemble(codec, once) if au.keyframe]
    assert len(keyframes) == 3
    for au in keyframes:
        assert set(au.nal_types) >= ps_types
        assert _decode_alone(codec, au.annexb) == 1
