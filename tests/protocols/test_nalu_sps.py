"""SPS/VPS parsing.

Golden vectors are real SPS NAL units from libx264/libx265 (made with PyAV, checked against what FFmpeg decodes:
see tests/interop/test_nalu_interop.py for the live comparison). They cover the syntax paths that change the bit
alignment before the VUI timing: H.264 high profiles, 4:2:2 interlaced
(frame_mbs_only_flag 0, doubled crop units), 4:4:4, 10-bit, monochrome and baseline; H.265 Main/Main10/RExt,
temporal sub-layers in profile_tier_level, explicit scaling_list_data and inter-predicted short-term RPS. Since
fps sits after all of them, a correct fps proves every skipped element was sized right.

x264 never writes SPS scaling matrices (it signals them in the PPS), so a small bit writer builds synthetic H.264
SPS units (with scaling lists, every POC type, cropping, field coding and VUI) and H.265 VPS units for a
Hypothesis round trip over the fields that decide the picture size and frame rate.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError
from fluxkit.protocols.nalu import (
    SpsInfo,
    escape_rbsp,
    parse_h264_sps,
    parse_h265_sps,
    parse_h265_vps_fps,
    parse_sps,
)

# (codec, SPS NAL hex, (width, height, profile_idc, level_idc, chroma_format_idc, bit_depth_luma, fps, codec string))
GOLDEN = [
    # x264 330x250 cqm=jvt (scaling matrix flags), crop 6x6.
    ("h264", "6764000dacb40a843c9242000003000200000300641e285540", (330, 250, 100, 13, 1, 8, 25.0, "avc1.64000d")),
    # x264 1920x1080 4:2:2 interlaced: 1088 lines of field pairs, crop unit 2 * SubHeightC.
    ("h264", "677a0028bce8078044fcb08000000300800000190f8b1750", (1920, 1080, 122, 40, 2, 8, 25.0, "avc1.7a0028")),
    ("h264", "67f4000d91968150878f8f84000003000400000300c83c50aa80", (322, 242, 244, 13, 3, 8, 25.0, "avc1.f4000d")),
    ("h264", "676e000da6cb40a0fd080000030008000003019078a155", (320, 240, 110, 13, 1, 10, 25.0, "avc1.6e000d")),
    ("h264", "6764000bf2d0589d080000030008000003019078a155", (176, 144, 100, 11, 0, 8, 25.0, "avc1.64000b")),
    ("h264", "6742c00dda0507e840000003004000000c83c50aa8", (320, 240, 66, 13, 1, 8, 25.0, "avc1.42c00d")),
    ("h264", "6742c01fda014016e840000003004000000c83c60ca8", (1280, 720, 66, 31, 1, 8, 25.0, "avc1.42c01f")),
    # avatar.h264 (x264, High, 768x320, 25 fps).
    ("h264", "67640020acd940c029b011000003000100000300320f183196", (768, 320, 100, 32, 1, 8, 25.0, "avc1.640020")),
    (
        "hevc",
        "42010101600000030090000003000003003ca00a880407249965654a4c2e6808000003000800000300c840",
        (330, 250, 1, 60, 1, 8, 25.0, "hvc1.1.6.L60.90"),
    ),
    (
        "hevc",
        "4201010408000003009d08000003000078b003c0801107c4b65959529385cd010000030001000003001908",
        (1920, 1080, 4, 120, 2, 10, 25.0, "hvc1.4.10.L120.9D.8"),
    ),
    # 4:4:4 with three temporal sub-layers (sub_layer flags in profile_tier_level).
    (
        "hevc",
        "4201040408000003009e0800000300003c00009001510080e3e3f2caca5652b2a5261734040000030004000003006420",
        (322, 242, 4, 60, 3, 8, 25.0, "hvc1.4.10.L60.9E.8"),
    ),
    (
        "hevc",
        "42010102200000030090000003000003003ca00a080f136595952930b9a02000000300200000030321",
        (320, 240, 2, 60, 1, 10, 25.0, "hvc1.2.4.L60.90"),
    ),
    (
        "hevc",
        "4201010408000003009fc800000300003cc028203c5965654a4c2e6808000003000800000300c840",
        (320, 240, 4, 60, 0, 8, 25.0, "hvc1.4.10.L60.9F.C8"),
    ),
    # Sub-layers plus B-frames: inter-predicted short-term reference picture sets.
    (
        "hevc",
        "42010401600000030090000003000003003f0000a005020171f2e59594aca5654a4c2e6808000003000800000300c840",
        (640, 360, 1, 63, 1, 8, 25.0, "hvc1.1.6.L63.90"),
    ),
    # avatar.h265 (x265, Main, 768x320).
    (
        "hevc",
        "42010101600000030090000003000003003fa00602014165959a4932bc05a708000003000800000300c840",
        (768, 320, 1, 63, 1, 8, 25.0, "hvc1.1.6.L63.90"),
    ),
]

# x265 with an explicit HM scaling-list file: scaling_list_data() with every matrix coded.
HEVC_SCALING_SPS = bytes.fromhex(
    "42010101600000030090000003000003003ca00a880407249965654a4f8401c02b090260561504c0ac130541302b090260c91111420080"
    "260c826131a0f82613304c260f8260e41f04c261307c09c260f826130984c1e04c261307c130984c1e04c26130983e0982707c130984c"
    "26180983e0984cc130983e1a130983209831222228604820098320984c683e0984cc130983e0983907c130984c1f0270983e0984c2613"
    "078130984c1f04c2613078130984c260f82609c1f04c261309860260f82613304c260f8684c260c8260c48888a1812080260c826131a0"
    "f82613304c260f8260e41f04c261307c09c260f826130984c1e04c261307c130984c1e04c26130983e0982707c130984c26180983e098"
    "4cc130983e1a13098320983121734040000003004000000642"
)
AVATAR_VPS = bytes.fromhex("40010c01ffff01600000030090000003000003003f959809")


def _check(info: SpsInfo, codec: str, expected: tuple[int, int, int, int, int, int, float, str]) -> None:
    width, height, profile, level, chroma, depth, fps, codec_string = expected
    assert info.codec == codec
    assert (info.width, info.height) == (width, height)
    assert (info.profile_idc, info.level_idc) == (profile, level)
    assert (info.chroma_format_idc, info.bit_depth_luma) == (chroma, depth)
    assert info.fps == pytest.approx(fps)
    assert info.codec_string == codec_string


@pytest.mark.parametrize(("codec", "hexdata", "expected"), GOLDEN)
def test_golden(codec: str, hexdata: str, expected: tuple[int, int, int, int, int, int, float, str]) -> None:
    nal = bytes.fromhex(hexdata)
    parse = parse_h264_sps if codec == "h264" else parse_h265_sps
    _check(parse(nal), codec, expected)
    _check(parse_sps(codec, nal), codec, expected)
    if codec == "hevc":
        _check(parse_sps("h265", nal), codec, expected)


def test_hevc_explicit_scaling_lists() -> None:
    _check(parse_h265_sps(HEVC_SCALING_SPS), "hevc", (330, 250, 1, 60, 1, 8, 25.0, "hvc1.1.6.L60.90"))


@pytest.mark.parametrize(("codec", "hexdata", "expected"), GOLDEN)
def test_truncated(codec: str, hexdata: str, expected: tuple[int, int, int, int, int, int, float, str]) -> None:
    """Every prefix either raises ParseError or (when cut after the timing info) parses to the same values."""
    nal = bytes.fromhex(hexdata)
    raised = 0
    for end in range(len(nal)):
        try:
            info = parse_sps(codec, nal[:end])
        except ParseError:
            raised += 1
        else:
            _check(info, codec, expected)
    assert raised >= len(nal) // 2


def test_wrong_nal_type_and_codec() -> None:
    with pytest.raises(ParseError):
        parse_h264_sps(b"\x68\xce\x3c\x80")
    with pytest.raises(ParseError):
        parse_h264_sps(b"")
    with pytest.raises(ParseError):
        parse_h265_sps(b"\x44\x01\xc1")
    with pytest.raises(ParseError):
        parse_h265_vps_fps(b"\x42\x01\x01")
    with pytest.raises(LocalProtocolError):
        parse_sps("vp9", b"\x67")


def test_vps_without_timing() -> None:
    assert parse_h265_vps_fps(AVATAR_VPS) is None


def test_hevc_codec_string_profile_space_and_tier() -> None:
    # Patch general_profile_space = 1 and general_tier_flag = 1 into the avatar SPS (byte 3 of the NAL unit).
    nal = bytearray(bytes.fromhex(GOLDEN[-1][1]))
    nal[3] = 0b01_1_00001
    info = parse_h265_sps(bytes(nal))
    assert info.codec_string == "hvc1.A1.6.H63.90"


class BitWriter:
    """MSB-first bit writer for building synthetic parameter sets."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


@st.composite
def h264_sps(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    w = BitWriter()
    profile = draw(st.sampled_from([66, 77, 100, 110, 122, 244]))
    w.u(8, profile)
    w.u(8, draw(st.integers(0, 255)))
    level = draw(st.integers(0, 255))
    w.u(8, level)
    w.ue(draw(st.integers(0, 31)))
    chroma = 1
    if profile >= 100:
        chroma = draw(st.integers(0, 3))
        w.ue(chroma)
        separate = chroma == 3 and draw(st.booleans())
        if chroma == 3:
            w.u(1, separate)
        if separate:
            chroma = 0  # ChromaArrayType 0 for cropping
        w.ue(draw(st.integers(0, 6)))
        w.ue(draw(st.integers(0, 6)))
        w.u(1, 0)
        w.u(1, 1)  # seq_scaling_matrix_present_flag
        for i in range(12 if chroma == 3 or separate else 8):
            present = draw(st.booleans())
            w.u(1, present)
            if present:
                # scaling_list(): deltas are sent until nextScale becomes 0 (then the rest repeat the last).
                last = 8
                for _ in range(16 if i < 6 else 64):
                    delta = draw(st.integers(-128, 127))
                    w.se(delta)
                    nxt = (last + delta + 256) % 256
                    if nxt == 0:
                        break
                    last = nxt
    w.ue(draw(st.integers(0, 12)))
    poc_type = draw(st.integers(0, 2))
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(draw(st.integers(0, 12)))
    elif poc_type == 1:
        w.u(1, 1)
        w.se(draw(st.integers(-100, 100)))
        w.se(draw(st.integers(-100, 100)))
        cycle = draw(st.lists(st.integers(-50, 50), max_size=5))
        w.ue(len(cycle))
        for v in cycle:
            w.se(v)
    w.ue(draw(st.integers(0, 16)))
    w.u(1, 0)
    mbs_w, mbs_h = draw(st.integers(1, 240)), draw(st.integers(1, 135))
    w.ue(mbs_w - 1)
    w.ue(mbs_h - 1)
    frame_mbs_only = draw(st.booleans())
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1)
    sub_w, sub_h = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma]
    unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
    width, height = mbs_w * 16, mbs_h * 16 * (2 - frame_mbs_only)
    crop = draw(st.tuples(*[st.integers(0, 3)] * 4))
    if width - unit_x * (crop[0] + crop[1]) > 0 and height - unit_y * (crop[2] + crop[3]) > 0 and any(crop):
        w.u(1, 1)
        for c in crop:
            w.ue(c)
        width -= unit_x * (crop[0] + crop[1])
        height -= unit_y * (crop[2] + crop[3])
    else:
        w.u(1, 0)
    fps: float | None = None
    vui = draw(st.booleans())
    w.u(1, vui)
    if vui:
        w.u(1, 1)
        w.u(8, 255)
        w.u(32, 0x00010001)
        w.u(1, 0)
        w.u(1, 1)
        w.u(4, 5)
        w.u(1, 1)
        w.u(24, 0x010101)
        w.u(1, 1)
        w.ue(1)
        w.ue(2)
        timing = draw(st.booleans())
        w.u(1, timing)
        if timing:
            tick, scale = draw(st.integers(1, 100000)), draw(st.integers(1, 1 << 31))
            w.u(32, tick)
            w.u(32, scale)
            w.u(1, 1)
            fps = scale / (2 * tick)
    nal = b"\x67" + escape_rbsp(w.rbsp())
    return nal, {"width": width, "height": height, "profile_idc": profile, "level_idc": level, "fps": fps}


@given(h264_sps())
def test_h264_synthetic(case: tuple[bytes, dict[str, object]]) -> None:
    nal, expected = case
    info = parse_h264_sps(nal)
    assert {k: getattr(info, k) for k in expected} == expected


@given(st.integers(1, 1 << 20), st.integers(1, (1 << 32) - 1), st.integers(0, 6), st.integers(0, 3))
def test_vps_timing(tick: int, scale: int, sub_layers: int, layer_sets: int) -> None:
    w = BitWriter()
    w.u(4, 0)
    w.u(2, 3)
    w.u(6, 0)
    w.u(3, sub_layers)
    w.u(1, 1)
    w.u(16, 0xFFFF)
    # profile_tier_level: general part, then sub-layer flags (profile and level present for each).
    w.u(8, 1)
    w.u(32, 0x60000000)
    w.u(48, 0x900000000000)
    w.u(8, 93)
    for _ in range(sub_layers):
        w.u(2, 3)
    if sub_layers:
        w.u(2 * (8 - sub_layers), 0)
    for _ in range(sub_layers):
        w.u(88, 0)
        w.u(8, 90)
    w.u(1, 1)
    for _ in range(sub_layers + 1):
        w.ue(4)
        w.ue(0)
        w.ue(0)
    w.u(6, 2)  # vps_max_layer_id
    w.ue(layer_sets)
    w.u(layer_sets * 3, 0)
    w.u(1, 1)
    w.u(32, tick)
    w.u(32, scale)
    w.u(1, 0)
    nal = b"\x40\x01" + escape_rbsp(w.rbsp())
    assert parse_h265_vps_fps(nal) == pytest.approx(scale / tick)


@given(st.binary(max_size=120))
def test_garbage(data: bytes) -> None:
    for parse, header in ((parse_h264_sps, b"\x67"), (parse_h265_sps, b"\x42\x01"), (parse_h265_vps_fps, b"\x40\x01")):
        for nal in (data, header + data):
            with contextlib.suppress(ParseError):
                parse(nal)


@given(st.sampled_from(GOLDEN), st.integers(0, 10_000), st.integers(1, 255))
def test_corrupted_golden(case: tuple[str, str, object], where: int, xor: int) -> None:
    codec, hexdata, _ = case
    nal = bytearray.fromhex(hexdata)
    nal[1 + where % (len(nal) - 1)] ^= xor
    try:
        info = parse_sps(codec, bytes(nal))
    except ParseError:
        return
    assert info.width > 0
    assert info.height > 0
