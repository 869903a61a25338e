"""Decoder configuration records and NAL unit framing: avcC (ISO/IEC 14496-15 §5.3.3), hvcC (§8.3.3), the AAC
AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), and length-prefixed <-> Annex-B conversion.

Strategy: records are read with slicing and `int.from_bytes` (their loops run once per parameter set, not per
byte); Annex-B splitting is `fluxkit.protocols.nalu.split_annexb` (bytes.split/find), and length-prefixed NAL
units are walked one NAL unit at a time, so a frame costs a few Python steps per NAL unit.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.nalu import parse_sps, split_annexb, unescape_rbsp

__all__ = [
    "AacConfig",
    "DecoderConfig",
    "annexb_to_length_prefixed",
    "build_avcc",
    "build_hvcc",
    "length_prefixed_to_annexb",
    "parse_aac_config",
    "parse_avcc",
    "parse_hvcc",
    "split_length_prefixed",
]

_START = b"\x00\x00\x00\x01"
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@attrs.frozen(kw_only=True, slots=True)
class DecoderConfig:
    """What an avcC/hvcC record holds that fluxkit uses.

    Attributes:
        length_size: bytes of the NAL unit length prefix (1, 2 or 4).
        parameter_sets: VPS/SPS/PPS NAL units in record order (without start codes).
    """

    length_size: int
    parameter_sets: tuple[bytes, ...]


@attrs.frozen(kw_only=True, slots=True)
class AacConfig:
    """The fields of an AudioSpecificConfig fluxkit needs."""

    object_type: int
    sample_rate: int
    channels: int


def _u16(data: bytes, pos: int, what: str) -> int:
    if pos + 2 > len(data):
        raise ParseError(f"{what} truncated", offset=pos)
    return int.from_bytes(data[pos : pos + 2], "big")


def _take(data: bytes, pos: int, n: int, what: str) -> bytes:
    if pos + n > len(data):
        raise ParseError(f"{what} truncated", offset=pos)
    return bytes(data[pos : pos + n])


def parse_avcc(data: bytes) -> DecoderConfig:
    """Parse an AVCDecoderConfigurationRecord.

    Raises:
        ParseError: truncated record or a version other than 1.
    """
    if len(data) < 7:
        raise ParseError("avcC shorter than 7 bytes", offset=0)
    if data[0] != 1:
        raise ParseError(f"avcC configurationVersion {data[0]} (expected 1)", offset=0)
    length_size = (data[4] & 3) + 1
    if length_size == 3:
        raise ParseError("avcC lengthSizeMinusOne of 2 is not allowed", offset=4)
    sets: list[bytes] = []
    pos = 6
    for _ in range(data[5] & 0x1F):
        n = _u16(data, pos, "avcC SPS")
        sets.append(_take(data, pos + 2, n, "avcC SPS"))
        pos += 2 + n
    count = _take(data, pos, 1, "avcC PPS count")[0]
    pos += 1
    for _ in range(count):
        n = _u16(data, pos, "avcC PPS")
        sets.append(_take(data, pos + 2, n, "avcC PPS"))
        pos += 2 + n
    return DecoderConfig(length_size=length_size, parameter_sets=tuple(s for s in sets if s))


def build_avcc(parameter_sets: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Build an AVCDecoderConfigurationRecord (4-byte lengths) from H.264 SPS and PPS NAL units.

    Raises:
        LocalProtocolError: no SPS, or an SPS shorter than 4 bytes.
    """
    sps = [p for p in parameter_sets if p and p[0] & 0x1F == 7]
    pps = [p for p in parameter_sets if p and p[0] & 0x1F == 8]
    if not sps or len(sps[0]) < 4:
        raise LocalProtocolError("an avcC needs an SPS")
    out = bytearray((1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE0 | len(sps)))
    for nal in sps:
        out += len(nal).to_bytes(2, "big") + nal
    out.append(len(pps))
    for nal in pps:
        out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def parse_hvcc(data: bytes) -> DecoderConfig:
    """Parse an HEVCDecoderConfigurationRecord.

    Raises:
        ParseError: truncated record or a version other than 1.
    """
    if len(data) < 23:
        raise ParseError("hvcC shorter than 23 bytes", offset=0)
    if data[0] != 1:
        raise ParseError(f"hvcC configurationVersion {data[0]} (expected 1)", offset=0)
    length_size = (data[21] & 3) + 1
    if length_size == 3:
        raise ParseError("hvcC lengthSizeMinusOne of 2 is not allowed", offset=21)
    sets: list[bytes] = []
    pos = 23
    for _ in range(data[22]):
        pos += 1  # array_completeness, NAL_unit_type
        count = _u16(data, pos, "hvcC array")
        pos += 2
        for _ in range(count):
            n = _u16(data, pos, "hvcC NAL unit")
            sets.append(_take(data, pos + 2, n, "hvcC NAL unit"))
            pos += 2 + n
    return DecoderConfig(length_size=length_size, parameter_sets=tuple(s for s in sets if s))


def build_hvcc(parameter_sets: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Build an HEVCDecoderConfigurationRecord (4-byte lengths) from H.265 VPS, SPS and PPS NAL units.

    The profile_tier_level fields are copied from the SPS (H.265 §7.3.2.2: they start byte-aligned right after
    the 2-byte NAL header and one byte of ids); chroma format and bit depths come from the parsed SPS.

    Raises:
        LocalProtocolError: no SPS, or one too short to hold profile_tier_level.
    """
    by_type: dict[int, list[bytes]] = {32: [], 33: [], 34: []}
    for nal in parameter_sets:
        if len(nal) >= 2 and (nal[0] >> 1) & 0x3F in by_type:
            by_type[(nal[0] >> 1) & 0x3F].append(nal)
    if not by_type[33]:
        raise LocalProtocolError("an hvcC needs an SPS")
    sps = by_type[33][0]
    rbsp = unescape_rbsp(sps)
    if len(rbsp) < 15:
        raise LocalProtocolError("H.265 SPS too short for profile_tier_level")
    ptl = rbsp[3:15]
    chroma, luma_depth, chroma_depth = 1, 8, 8
    try:
        info = parse_sps("hevc", sps)
        chroma, luma_depth, chroma_depth = info.chroma_format_idc, info.bit_depth_luma, info.bit_depth_chroma
    except ProtocolError:
        pass
    max_sub_layers = ((rbsp[2] >> 1) & 7) + 1
    nesting = rbsp[2] & 1
    out = bytearray((1,))
    out += ptl  # profile space/tier/idc, compatibility flags (4), constraint flags (6), level
    out += bytes(
        (
            0xF0,
            0x00,  # min_spatial_segmentation_idc 0
            0xFC,  # parallelismType 0
            0xFC | (chroma & 3),
            0xF8 | ((luma_depth - 8) & 7),
            0xF8 | ((chroma_depth - 8) & 7),
            0x00,
            0x00,  # avgFrameRate unknown
            (max_sub_layers << 3) | (nesting << 2) | 3,  # constantFrameRate 0, lengthSizeMinusOne 3
        )
    )
    arrays = [(t, by_type[t]) for t in (32, 33, 34) if by_type[t]]
    out.append(len(arrays))
    for nal_type, nals in arrays:
        out.append(0x80 | nal_type)  # array_completeness: all of them are in the record
        out += len(nals).to_bytes(2, "big")
        for nal in nals:
            out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def split_length_prefixed(data: bytes, length_size: int = 4) -> list[bytes]:
    """Split length-prefixed NAL units (the MP4/FLV framing).

    Raises:
        ParseError: a length running past the end of the data.
    """
    nals: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        if pos + length_size > end:
            raise ParseError("NAL unit length prefix truncated", offset=pos)
        n = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if pos + n > end:
            raise ParseError(f"NAL unit of {n} bytes runs past the end of the frame", offset=pos)
        if n:
            nals.append(bytes(data[pos : pos + n]))
        pos += n
    return nals


def length_prefixed_to_annexb(data: bytes, length_size: int = 4) -> bytes:
    """Length-prefixed NAL units to Annex-B with 4-byte start codes.

    Raises:
        ParseError: a length running past the end of the data.
    """
    nals = split_length_prefixed(data, length_size)
    return _START + _START.join(nals) if nals else b""


def annexb_to_length_prefixed(data: bytes, *, skip_types: frozenset[int] = frozenset(), hevc: bool = False) -> bytes:
    """Annex-B to 4-byte length-prefixed NAL units, leaving out NAL unit types in `skip_types`."""
    parts: list[bytes] = []
    for nal in split_annexb(data):
        nal_type = (nal[0] >> 1) & 0x3F if hevc else nal[0] & 0x1F
        if nal_type in skip_types:
            continue
        parts.append(len(nal).to_bytes(4, "big"))
        parts.append(nal)
    return b"".join(parts)


def parse_aac_config(data: bytes) -> AacConfig:
    """Parse the start of an AudioSpecificConfig (audio object type, sampling frequency, channel configuration).

    Raises:
        ParseError: fewer than 2 bytes, or a reserved frequency index.
    """
    if len(data) < 2:
        raise ParseError("AudioSpecificConfig shorter than 2 bytes", offset=0)
    bits = int.from_bytes(bytes(data[:8]).ljust(8, b"\x00"), "big")  # 64 bits hold every field read here
    width = 64
    object_type = bits >> (width - 5)
    used = 5
    if object_type == 31:
        object_type = 32 + ((bits >> (width - 11)) & 0x3F)
        used = 11
    index = (bits >> (width - used - 4)) & 0xF
    used += 4
    if index == 15:
        rate = (bits >> (width - used - 24)) & 0xFFFFFF
        used += 24
    elif index < len(_AAC_RATES):
        rate = _AAC_RATES[index]
    else:
        raise ParseError(f"AudioSpecificConfig frequency index {index} is reserved", offset=0)
    channels = (bits >> (width - used - 4)) & 0xF
    if rate == 0:
        raise ParseError("AudioSpecificConfig sampling frequency 0", offset=0)
    return AacConfig(object_type=object_type, sample_rate=rate, channels=channels)


def check_length_size(length_size: int) -> None:
    """Raise LocalProtocolError unless 1, 2 or 4."""
    if length_size not in (1, 2, 4):
        raise LocalProtocolError(f"NAL length size {length_size} is not 1, 2 or 4")
