"""Decide what kind of media file a byte prefix comes from.

Strategy: look only at the first chunk of the file (the caller reads at most `SNIFF_SIZE` bytes), in order of
how unambiguous each signature is: pcap/pcapng magic; an MPEG-PS pack start code (`00 00 01 BA` can never occur
inside a valid H.264/H.265 byte stream: 0xBA would be a NAL header with the forbidden bit set); a run of RFC 4571
frames (2-byte length, then an RTP version-2 header) whose lengths chain consistently and share one SSRC; and
finally an Annex-B start code followed by NAL headers that make sense for H.264 or H.265, with the file name's
extension breaking ties.
"""

from __future__ import annotations

import struct

from fluxkit.errors import ParseError
from fluxkit.inspect._pcap import PCAP_MAGICS, PCAPNG_MAGIC

__all__ = ["SNIFF_SIZE", "sniff"]

#: How many leading bytes `sniff` wants (more is ignored).
SNIFF_SIZE = 1 << 16

_H264_EXT = frozenset({".h264", ".264", ".avc", ".jsv", ".jvt", ".26l"})
_H265_EXT = frozenset({".h265", ".265", ".hevc", ".hvc"})
_PS_PACK = b"\x00\x00\x01\xba"
_RTP_FRAMES_NEEDED = 3
# H.264 7.4.1: these non-VCL NAL types must have nal_ref_idc == 0 (SEI, AUD, end of sequence/stream, filler)...
_H264_NRI_ZERO = frozenset({6, 9, 10, 11, 12})
# ...and these must not (IDR slice, SPS, PPS).
_H264_NRI_SET = frozenset({5, 7, 8})
_H264_VALID = frozenset(range(1, 13)) | {13, 14, 15, 19, 20}
# H.265 Table 7-1: VCL 0..9 and 16..21, non-VCL 32..40; the rest is reserved or unspecified.
_H265_VALID = frozenset(range(10)) | frozenset(range(16, 22)) | frozenset(range(32, 41))
_MAX_NALS_CHECKED = 16


def sniff(head: bytes, name: str = "") -> str:
    """Name the format of a file from its first bytes and its name.

    Args:
        head: the first bytes of the file (up to `SNIFF_SIZE`; fewer only when the file is that short).
        name: the file name, whose extension decides H.264 against H.265 for Annex-B streams.

    Returns:
        "pcap", "pcapng", "mpeg-ps", "rtp" (RFC 4571 framed RTP dump), "h264" or "hevc".

    Raises:
        ParseError: none of those (the message says what was looked for).
    """
    if not head:
        raise ParseError("not a recognised media file (the file is empty)")
    magic = head[:4]
    if magic in PCAP_MAGICS:
        return "pcap"
    if magic == PCAPNG_MAGIC:
        return "pcapng"
    if head.startswith(_PS_PACK) and _plausible_pack(head, 0):
        return "mpeg-ps"
    # Before searching further for a pack header: PS-over-RTP dumps hold pack headers inside their frames.
    if _looks_rfc4571(head):
        return "rtp"
    pack = head.find(_PS_PACK)
    if pack >= 0 and _plausible_pack(head, pack):
        return "mpeg-ps"
    codec = _annexb_codec(head, name.lower())
    if codec is not None:
        return codec
    raise ParseError(
        "not a recognised media file (no pcap/pcapng magic, MPEG-PS pack header, RFC 4571 RTP framing or "
        f"H.264/H.265 start code in the first {min(len(head), SNIFF_SIZE)} bytes)"
    )


def _plausible_pack(head: bytes, pos: int) -> bool:
    # ISO 13818-1 §2.5.3.3: an MPEG-2 pack header starts '01' with marker bits; MPEG-1 (ISO 11172-1) starts '0010'.
    if pos + 5 > len(head):
        return pos == 0
    b = head[pos + 4]
    return (b & 0xC4) == 0x44 or (b & 0xF1) == 0x21


def _looks_rfc4571(head: bytes) -> bool:
    n = len(head)
    pos = 0
    frames = 0
    ssrc: int | None = None
    while pos + 2 + 12 <= n and frames < 8:
        (length,) = struct.unpack_from("!H", head, pos)
        if length < 12 or head[pos + 2] >> 6 != 2:
            return False
        (this_ssrc,) = struct.unpack_from("!I", head, pos + 10)
        if ssrc is None:
            ssrc = this_ssrc
        elif this_ssrc != ssrc:
            return False
        frames += 1
        pos += 2 + length
    # A short file that is exactly a few frames is accepted; otherwise several frames must chain.
    return frames >= _RTP_FRAMES_NEEDED or (frames >= 1 and pos == n)


def _annexb_codec(head: bytes, name: str) -> str | None:
    first = head.find(b"\x00\x00\x01")
    # Only zero bytes (leading_zero_8bits, Annex B.2) may come before the first start code.
    if first < 0 or head[:first].strip(b"\x00"):
        return None
    dot = name.rfind(".")
    ext = name[dot:] if dot >= 0 else ""
    if ext in _H264_EXT:
        return "h264"
    if ext in _H265_EXT:
        return "hevc"
    h264 = h265 = total = 0
    pos = first
    while total < _MAX_NALS_CHECKED:
        pos += 3
        if pos + 2 > len(head):
            break
        b0, b1 = head[pos], head[pos + 1]
        total += 1
        if not b0 & 0x80:
            t4 = b0 & 0x1F
            nri = b0 >> 5
            if t4 in _H264_VALID and not (t4 in _H264_NRI_ZERO and nri) and not (t4 in _H264_NRI_SET and not nri):
                h264 += 1
            # H.265 7.3.1.2: nuh_layer_id is 0 in single-layer streams and nuh_temporal_id_plus1 is never 0.
            if (b0 >> 1) & 0x3F in _H265_VALID and b1 & 0x07 and not (b0 & 1) and not b1 >> 3:
                h265 += 1
        pos = head.find(b"\x00\x00\x01", pos)
        if pos < 0:
            break
    if not total:
        return None
    if h265 == total and h264 < total:
        return "hevc"
    if h264 == total:
        return "h264"
    return None
