"""Annex-B scanning: start-code splitting, NAL header types, keyframes and access-unit starts.

Golden vectors are hand-built byte strings; the real-clip checks count what the H.264/H.265 specs say the clips
hold (avatar.h264: 308 pictures, 13 IDR; avatar.h265: 308 pictures, 8 IRAP).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.nalu import (
    H264_NAL_AUD,
    H264_NAL_IDR,
    H264_NAL_PPS,
    H264_NAL_SPS,
    H265_NAL_AUD,
    H265_NAL_VPS,
    find_au_start,
    h264_nal_type,
    h265_nal_type,
    is_keyframe_au,
    is_keyframe_nal_type,
    nal_types,
    split_annexb,
)
from tests.mediagen import encode_annexb

SC3 = b"\x00\x00\x01"
SC4 = b"\x00\x00\x00\x01"

# H.264 NAL units: SPS (0x67), PPS (0x68), IDR slice with first_mb_in_slice == 0 (0x65 0x88),
# non-IDR slice continuing a picture (0x41 0x20: ue(v) '010' = 1), AUD (0x09 0xf0).
SPS = b"\x67\x42\xc0\x1e\xda"
PPS = b"\x68\xce\x3c\x80"
IDR0 = b"\x65\x88\x84\x00\x33"
P0 = b"\x41\x9a\x02\x03"
P1 = b"\x41\x20\x11\x22"
AUD = b"\x09\xf0"


def test_constants() -> None:
    assert (H264_NAL_IDR, H264_NAL_SPS, H264_NAL_PPS, H264_NAL_AUD) == (5, 7, 8, 9)
    assert (H265_NAL_VPS, H265_NAL_AUD) == (32, 35)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (b"\x12\x34", []),  # no start code at all
        (SC4 + SPS, [SPS]),
        (SC3 + SPS, [SPS]),
        (SC4 + SPS + SC3 + PPS + SC4 + IDR0, [SPS, PPS, IDR0]),
        # The zero_byte of a 4-byte start code and trailing_zero_8bits belong to the framing, not the NAL.
        (SC3 + SPS + b"\x00\x00\x00" + SC4 + PPS + b"\x00\x00", [SPS, PPS]),
        # Leading garbage is dropped; empty NAL units are skipped.
        (b"\xff\xfe" + SC3 + SC3 + SPS + SC4 + SC4 + PPS, [SPS, PPS]),
        # A lone start code at the end is an empty NAL unit.
        (SC4 + SPS + SC3, [SPS]),
        # An H.265 TRAIL_N header begins with a zero byte: it must survive.
        (SC4 + b"\x00\x01\xe0\x44" + SC4 + b"\x02\x01\xd0", [b"\x00\x01\xe0\x44", b"\x02\x01\xd0"]),
    ],
)
def test_split_annexb_golden(data: bytes, expected: list[bytes]) -> None:
    assert split_annexb(data) == expected
    assert split_annexb(memoryview(data)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("nal", "h264", "h265"),
    [
        (b"\x67\x42", 7, 51),
        (b"\x65\x88", 5, 50),
        (b"\x09\xf0", 9, 4),
        (b"\x40\x01\x0c", 0, 32),  # H.265 VPS
        (b"\x42\x01\x01", 2, 33),  # H.265 SPS
        (b"\x44\x01\xc1", 4, 34),  # H.265 PPS
        (b"\x26\x01\xaf", 6, 19),  # H.265 IDR_W_RADL
        (b"\x2a\x01\xaf", 10, 21),  # H.265 CRA
        (b"\x4e\x01\x05", 14, 39),  # H.265 prefix SEI
        (b"", -1, -1),
    ],
)
def test_nal_header_types(nal: bytes, h264: int, h265: int) -> None:
    assert h264_nal_type(nal) == h264
    assert h265_nal_type(nal) == h265


def test_nal_types_match_split() -> None:
    data = SC4 + SPS + SC3 + PPS + b"\x00" + SC4 + IDR0 + SC3 + SC3 + b"\x00\x00" + SC3 + P1
    assert nal_types("h264", data) == [7, 8, 5, 1]
    assert nal_types("h264", data) == [h264_nal_type(n) for n in split_annexb(data)]
    hevc = SC4 + b"\x40\x01\x0c" + SC4 + b"\x00\x01\xe0" + SC3 + b"\x26\x01\xaf"
    assert nal_types("hevc", hevc) == [32, 0, 19]
    assert nal_types("h265", hevc) == [32, 0, 19]


def test_unknown_codec_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        nal_types("vp8", b"")
    with pytest.raises(LocalProtocolError):
        find_au_start("mpeg4", b"")
    with pytest.raises(LocalProtocolError):
        is_keyframe_nal_type("av1", 5)


def test_keyframe_detection() -> None:
    assert is_keyframe_nal_type("h264", 5)
    assert not is_keyframe_nal_type("h264", 1)
    assert all(is_keyframe_nal_type("hevc", t) for t in range(16, 22))
    assert not any(is_keyframe_nal_type("hevc", t) for t in (*range(16), *range(22, 64)))
    assert is_keyframe_au("h264", SC4 + SPS + SC4 + PPS + SC4 + IDR0)
    assert not is_keyframe_au("h264", SC4 + P0)
    assert is_keyframe_au("hevc", SC4 + b"\x2a\x01\xaf")
    assert not is_keyframe_au("hevc", SC4 + b"\x02\x01\xd0")


def test_find_au_start_h264() -> None:
    # Tail of the previous picture (a continuing slice), then AUD + SPS + PPS + IDR.
    tail = SC3 + P1
    data = tail + SC4 + AUD + SC4 + SPS + SC3 + PPS + SC3 + IDR0
    assert find_au_start("h264", data) == len(tail)  # the zero_byte of the 4-byte start code is included
    assert find_au_start("h264", data, len(tail) + 1) == len(tail) + 1  # zero_byte before `start` is not
    after_aud = len(tail) + 4 + len(AUD)
    assert find_au_start("h264", data, after_aud + 1) == after_aud + 1  # SPS
    # A slice with first_mb_in_slice == 0 starts a picture; one continuing a picture does not.
    assert find_au_start("h264", SC3 + P1 + SC3 + P0) == 3 + len(P1)
    assert find_au_start("h264", SC3 + P1 + SC3 + P1) == -1
    # Starting inside a NAL unit; a header at the very end with no slice byte cannot be judged.
    assert find_au_start("h264", b"\x33\x44" + SC3 + IDR0) == 2
    assert find_au_start("h264", b"\x00\x00\x00\x01\x41") == -1
    assert find_au_start("h264", b"") == -1
    assert find_au_start("h264", SC3 + P0, 1) == -1
    assert find_au_start("h264", SC3 + P0, -5) == 0


def test_find_au_start_h265() -> None:
    trail_cont = b"\x02\x01\x20\x11"  # TRAIL_R, first_slice_segment_in_pic_flag = 0
    trail_first = b"\x02\x01\xd0\x11"  # flag = 1
    vps = b"\x40\x01\x0c\x01"
    aud = b"\x46\x01\x50"
    suffix_sei = b"\x50\x01\x05"
    assert find_au_start("hevc", SC3 + trail_cont + SC3 + suffix_sei + SC4 + vps) == 3 + 4 + 3 + 3
    assert find_au_start("hevc", SC3 + trail_cont + SC3 + trail_first) == 7
    assert find_au_start("hevc", SC3 + trail_cont) == -1
    assert find_au_start("hevc", SC4 + aud) == 0
    # nuh_layer_id != 0: an enhancement-layer NAL unit never starts an access unit.
    assert find_au_start("hevc", SC3 + b"\x40\x09\x0c\x01") == -1
    assert find_au_start("hevc", SC3 + b"\x02\x01") == -1  # truncated before the slice byte


def _count_aus(codec: str, data: bytes) -> int:
    """Count access units with find_au_start alone: a match right after a non-VCL match is the same AU."""
    count = 0
    i = find_au_start(codec, data)
    prev_vcl = True
    while i >= 0:
        p = data.find(SC3, i) + 3
        t = h264_nal_type(data[p : p + 1]) if codec == "h264" else h265_nal_type(data[p : p + 1])
        is_vcl = t in (1, 5) if codec == "h264" else t < 32
        if prev_vcl:
            count += 1
        prev_vcl = is_vcl
        i = find_au_start(codec, data, p)
    return count


def test_real_clips(shared_media: object) -> None:
    from pathlib import Path

    assert isinstance(shared_media, Path)
    h264 = (shared_media / "avatar.h264").read_bytes()
    h265 = (shared_media / "avatar.h265").read_bytes()
    t264 = nal_types("h264", h264)
    assert t264.count(5) == 13
    assert t264.count(5) + t264.count(1) == 308
    t265 = nal_types("hevc", h265)
    assert sum(16 <= t <= 21 for t in t265) == 8
    assert sum(t < 32 for t in t265) == 308
    assert len(split_annexb(h264)) == len(t264)
    assert _count_aus("h264", h264) == 308
    assert _count_aus("hevc", h265) == 308


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_generated_streams(codec: str) -> None:
    data = encode_annexb(codec, width=160, height=96, frames=30, gop=10, bframes=2)
    types = nal_types(codec, data)
    if codec == "h264":
        assert types.count(5) == 3
    else:
        assert sum(16 <= t <= 21 for t in types) == 3
    assert _count_aus(codec, data) == 30


@given(st.binary(max_size=300))
def test_scan_garbage(data: bytes) -> None:
    nals = split_annexb(data)
    assert all(n and n[-1] != 0 for n in nals)
    assert nal_types("h264", data) == [h264_nal_type(n) for n in nals]
    assert nal_types("hevc", data) == [h265_nal_type(n) for n in nals]
    for codec in ("h264", "hevc"):
        i = find_au_start(codec, data)
        assert i == -1 or data[i : i + 4] == SC4 or data[i : i + 3] == SC3
        is_keyframe_au(codec, data)


@given(st.lists(st.sampled_from([SPS, PPS, IDR0, P0, P1, AUD]), max_size=8), st.data())
def test_split_roundtrip(nals: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(data.draw(st.sampled_from([SC3, SC4, b"\x00" + SC4])) + n for n in nals)
    assert split_annexb(stream) == nals
