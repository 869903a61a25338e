"""Fast scanning of Annex-B byte streams: NAL unit boundaries, NAL types, keyframes and access-unit starts.

Strategy: every function here finds start codes with `bytes.find` / `bytes.split` (C speed) and reads at most the
one to three header bytes after each start code, so the Python work is per NAL unit, never per byte.

Start codes (H.264 / H.265 Annex B.1): a NAL unit is preceded by `00 00 01`, optionally with one more leading
`00` (the `zero_byte` of a 4-byte start code) and any number of `trailing_zero_8bits`. Since the last byte of a
NAL unit is never `00` (H.264 7.4.1, H.265 7.4.2), every zero byte just before a start code belongs to the byte
stream framing, not to the NAL unit, and is stripped. Emulation prevention guarantees that `00 00 01` never
occurs inside a NAL unit, so splitting on it is exact.
"""

from __future__ import annotations

from fluxkit.errors import LocalProtocolError

__all__ = [
    "H264_NAL_AUD",
    "H264_NAL_IDR",
    "H264_NAL_PPS",
    "H264_NAL_SEI",
    "H264_NAL_SLICE",
    "H264_NAL_SPS",
    "H265_NAL_AUD",
    "H265_NAL_PPS",
    "H265_NAL_PREFIX_SEI",
    "H265_NAL_SPS",
    "H265_NAL_SUFFIX_SEI",
    "H265_NAL_VPS",
    "find_au_start",
    "h264_nal_type",
    "h265_nal_type",
    "is_keyframe_au",
    "is_keyframe_nal_type",
    "nal_types",
    "split_annexb",
]

#: H.264 nal_unit_type values (H.264 Table 7-1).
H264_NAL_SLICE = 1
H264_NAL_IDR = 5
H264_NAL_SEI = 6
H264_NAL_SPS = 7
H264_NAL_PPS = 8
H264_NAL_AUD = 9

#: H.265 nal_unit_type values (H.265 Table 7-1).
H265_NAL_VPS = 32
H265_NAL_SPS = 33
H265_NAL_PPS = 34
H265_NAL_AUD = 35
H265_NAL_PREFIX_SEI = 39
H265_NAL_SUFFIX_SEI = 40

_START = b"\x00\x00\x01"
_ZERO = b"\x00"

# H.264 7.4.1.2.3: non-VCL NAL types that, when they follow the last VCL NAL of a picture, begin a new access unit.
_H264_AU_FIRST = frozenset({6, 7, 8, 9, 14, 15, 16, 17, 18})
# H.265 7.4.2.4.4: the same list for H.265 (AUD, VPS, SPS, PPS, prefix SEI, 41..44, 48..55).
_H265_AU_FIRST = frozenset({32, 33, 34, 35, 39, 41, 42, 43, 44, 48, 49, 50, 51, 52, 53, 54, 55})


def _check_codec(codec: str) -> bool:
    """True for H.265, False for H.264; anything else is the caller's mistake."""
    if codec == "h264":
        return False
    if codec in ("hevc", "h265"):
        return True
    raise LocalProtocolError(f"unknown codec {codec!r}: expected 'h264' or 'hevc'")


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex-B byte stream into NAL units (start codes and framing zero bytes removed).

    Bytes before the first start code are dropped; empty NAL units (two start codes in a row) are skipped.

    Args:
        data: Annex-B bytes (3- or 4-byte start codes).

    Returns:
        The NAL units in order, each beginning with its NAL header.
    """
    pieces = bytes(data).split(_START)
    # pieces[0] is whatever preceded the first start code (garbage, or the zero_byte of a 4-byte start code).
    return [nal for piece in pieces[1:] if (nal := piece.rstrip(_ZERO))]


def h264_nal_type(nal: bytes) -> int:
    """nal_unit_type of an H.264 NAL unit (H.264 7.3.1: the low 5 bits of the first byte); -1 if empty."""
    return nal[0] & 0x1F if nal else -1


def h265_nal_type(nal: bytes) -> int:
    """nal_unit_type of an H.265 NAL unit (H.265 7.3.1.2: bits 1..6 of the first byte); -1 if empty."""
    return (nal[0] >> 1) & 0x3F if nal else -1


def _nal_offsets(data: bytes) -> list[int]:
    """Offsets of the first byte of each non-empty NAL unit (same units as `split_annexb`)."""
    out: list[int] = []
    find = data.find
    n = len(data)
    i = find(_START)
    while i >= 0:
        p = i + 3
        j = find(_START, p)
        # A unit is empty only when it is all zeros up to the next start code; a real header is never `00 00`
        # (H.264 type 0 with ref_idc 0 / H.265 nuh_temporal_id_plus1 == 0), so only then is the slower check needed.
        if p < n and (data[p] or (p + 1 < n and data[p + 1]) or data[p : j if j >= 0 else n].rstrip(_ZERO)):
            out.append(p)
        i = j
    return out


def nal_types(codec: str, annexb: bytes) -> list[int]:
    """nal_unit_type of every NAL unit in an Annex-B buffer, in order.

    Args:
        codec: "h264" or "hevc" ("h265" is accepted too).
        annexb: Annex-B bytes.

    Raises:
        LocalProtocolError: for an unknown codec.
    """
    hevc = _check_codec(codec)
    data = bytes(annexb)
    if hevc:
        return [(data[p] >> 1) & 0x3F for p in _nal_offsets(data)]
    return [data[p] & 0x1F for p in _nal_offsets(data)]


def is_keyframe_nal_type(codec: str, nal_type: int) -> bool:
    """True for a random-access picture's NAL type: H.264 IDR (5); H.265 IRAP (16..21: BLA, IDR, CRA)."""
    if _check_codec(codec):
        return 16 <= nal_type <= 21
    return nal_type == H264_NAL_IDR


def is_keyframe_au(codec: str, annexb: bytes) -> bool:
    """True when an Annex-B access unit holds an H.264 IDR slice or an H.265 IRAP picture."""
    if _check_codec(codec):
        return any(16 <= t <= 21 for t in nal_types(codec, annexb))
    return H264_NAL_IDR in nal_types(codec, annexb)


def find_au_start(codec: str, data: bytes, start: int = 0) -> int:
    """Offset of the start code of the first NAL unit at or after `start` that begins a new access unit.

    A NAL unit begins an access unit when it is one of the non-VCL types that may only come first (H.264
    7.4.1.2.3: AUD, SPS, PPS, SEI, 14..18; H.265 7.4.2.4.4: AUD, VPS, SPS, PPS, prefix SEI, 41..44, 48..55, with
    nuh_layer_id 0), or the first slice of a picture (H.264: a slice of type 1 or 5 with first_mb_in_slice == 0,
    i.e. its ue(v) is the single bit 1; H.265: a VCL NAL unit 0..31 with first_slice_segment_in_pic_flag set).
    Since the first match is returned, a picture's leading parameter sets win over its first slice.

    The returned offset includes the `zero_byte` of a 4-byte start code when that byte is at or after `start`,
    so `data[:offset]` is the complete tail of the previous access unit and `data[offset:]` the new one.

    Args:
        codec: "h264" or "hevc".
        data: Annex-B bytes, possibly beginning inside a NAL unit.
        start: where to start looking.

    Returns:
        The offset, or -1 when no NAL unit in `data` (whose header bytes are all present) begins an access unit.
    """
    hevc = _check_codec(codec)
    find = data.find
    n = len(data)
    i = find(_START, max(start, 0))
    while i >= 0:
        p = i + 3
        if hevc:
            if p + 1 < n:
                b0 = data[p]
                t = (b0 >> 1) & 0x3F
                layer0 = not (b0 & 1) and data[p + 1] < 8
                if layer0 and (t in _H265_AU_FIRST or (t < 32 and p + 2 < n and data[p + 2] & 0x80)):
                    break
        elif p < n:
            t = data[p] & 0x1F
            if t in _H264_AU_FIRST or ((t == 1 or t == 5) and p + 1 < n and data[p + 1] & 0x80):
                break
        i = find(_START, p)
    else:
        return -1
    return i - 1 if i > start and data[i - 1] == 0 else i
