"""Guess what an RTP stream carries from its payload type and the first bytes of its payloads.

Strategy: static payload types name their codec (RFC 3551 §6: 0 PCMU, 8 PCMA, ...). Dynamic ones are sniffed:
a payload opening with an MPEG-PS pack header is PS (GB28181 C.1, one pack per frame); otherwise every payload
is checked against the RFC 6184 (H.264) and RFC 7798 (H.265) payload headers: NAL type in range, forbidden bit
clear, the FU / FU-A header consistent; and parameter sets are strong evidence (an H.264 SPS with a known
profile, an H.265 VPS/SPS/PPS with layer 0 and temporal id 1). The payload type only breaks ties: GB28181 uses
96 for PS, 98 for H.264 and 99 for either H.265 or SVAC (gb28181.md, "PT 99 conflict").
"""

from __future__ import annotations

__all__ = ["AUDIO_PT", "CLASSIFY_PACKETS", "agrees", "classify_payloads", "strong_evidence"]

#: RFC 3551 Table 4 audio payload types -> (FFmpeg codec name, clock rate).
AUDIO_PT: dict[int, tuple[str, int]] = {
    0: ("pcm_mulaw", 8000),
    4: ("g723_1", 8000),
    8: ("pcm_alaw", 8000),
    9: ("g722", 8000),
    18: ("g729", 8000),
}

#: Payloads looked at before a dynamic payload type is decided without strong evidence.
CLASSIFY_PACKETS = 24

_PS_PACK = b"\x00\x00\x01\xba"
# ISO 13818-1 Table 2-33 start codes a PS payload may begin with (system header, PSM, PES of video/audio).
_PS_STARTS = (b"\x00\x00\x01\xba", b"\x00\x00\x01\xbb", b"\x00\x00\x01\xbc", b"\x00\x00\x01\xe0", b"\x00\x00\x01\xc0")
# H.264 Table A-1 / A.2 profile_idc values, to trust an SPS header.
_H264_PROFILES = frozenset({44, 66, 77, 83, 86, 88, 100, 110, 118, 122, 128, 134, 135, 138, 139, 144, 244})
# RFC 6184 §5.2: 1-23 single NAL unit, 24 STAP-A, 28 FU-A. Only the types cameras and encoders actually send
# count here: data partitions (2-4, Extended profile only), SVC/MVC types and the interleaved-mode packets
# (25-27, 29) would make many H.265 payload headers (0x02 01 TRAIL_R, 0x62 01 FU) read as valid H.264.
_H264_SINGLE = frozenset({1, 5, 6, 7, 8, 9, 10, 11, 12})
_H264_PACKET = _H264_SINGLE | {24, 28}
# H.265 Table 7-1 valid NAL types, plus RFC 7798 §4.4: 48 AP, 49 FU, 50 PACI.
_H265_SINGLE = frozenset(range(10)) | frozenset(range(16, 22)) | frozenset(range(32, 41))
_H265_PACKET = _H265_SINGLE | {48, 49, 50}


def _h264_ok(p: bytes) -> bool:
    if len(p) < 2 or p[0] & 0x80:
        return False
    t = p[0] & 0x1F
    if t not in _H264_PACKET:
        return False
    nri = p[0] & 0x60
    if t == 28:
        fu = p[1]
        # RFC 6184 §5.8: the R bit is 0; S and E are not both set; the inner type is a single-NAL type.
        return not fu & 0x20 and (fu & 0xC0) != 0xC0 and (fu & 0x1F) in _H264_SINGLE
    if t in (5, 7, 8):
        return bool(nri)  # H.264 7.4.1: IDR slices and parameter sets have nal_ref_idc != 0
    if t in (6, 9, 10, 11, 12):
        return not nri
    return True


def _h265_ok(p: bytes) -> bool:
    # RFC 7798 §1.1.4: F=0, nuh_layer_id (6 bits across the two bytes) 0 for the base layer, TID != 0.
    if len(p) < 3 or p[0] & 0x81 or p[1] & 0xF8 or not p[1] & 0x07:
        return False
    t = (p[0] >> 1) & 0x3F
    if t not in _H265_PACKET:
        return False
    if t == 49:
        fu = p[2]
        return (fu & 0xC0) != 0xC0 and (fu & 0x3F) in _H265_SINGLE
    return True


def strong_evidence(payload: bytes) -> str | None:
    """A payload that settles the question on its own: "ps", "h264" or "hevc" (else None)."""
    if payload.startswith(_PS_PACK):
        return "ps"
    if len(payload) >= 3:
        b0, b1 = payload[0], payload[1]
        if (b0 & 0x9F) == 0x07 and b0 & 0x60 and b1 in _H264_PROFILES:
            return "h264"  # SPS sent as a single NAL unit packet
        if (b0 & 0x9F) == 0x18 and b0 & 0x60 and len(payload) >= 5 and (payload[3] & 0x9F) == 0x07:
            # STAP-A (RFC 6184 §5.7.1: header, 2-byte size, NAL unit) starting with an SPS.
            return "h264" if payload[3] & 0x60 and payload[4] in _H264_PROFILES else None
        if b0 in (0x40, 0x42, 0x44) and b1 == 0x01:
            return "hevc"  # VPS, SPS or PPS, base layer, TID 1
        if b0 == 0x60 and b1 == 0x01 and len(payload) >= 5 and payload[4] in (0x40, 0x42):
            return "hevc"  # aggregation packet starting with a VPS/SPS (2-byte size, then the NAL header)
    return None


def agrees(codec: str, payloads: list[bytes]) -> bool:
    """Whether a clear majority (90 %) of `payloads` have valid payload headers for `codec`.

    Strong evidence from one packet is only trusted when the stream around it agrees: a random payload can look
    like a parameter set by chance, a whole stream of them cannot.
    """
    if codec == "ps":
        return True
    ok = _h264_ok if codec == "h264" else _h265_ok
    return sum(1 for p in payloads if ok(p)) >= _majority(len(payloads))


def _majority(n: int) -> int:
    return max(1, (n * 9 + 9) // 10)


def classify_payloads(pt: int, payloads: list[bytes]) -> str:
    """Decide what a dynamic-PT stream carries: "ps", "h264", "hevc" or "unknown".

    Args:
        pt: the RTP payload type (tie-breaker only).
        payloads: the first payloads of the stream, in arrival order.
    """
    if not payloads:
        return "unknown"
    for p in payloads:
        evidence = strong_evidence(p)
        if evidence is not None and agrees(evidence, payloads):
            return evidence
    if any(p.startswith(_PS_STARTS) for p in payloads):
        return "ps"
    h264 = sum(1 for p in payloads if _h264_ok(p))
    h265 = sum(1 for p in payloads if _h265_ok(p))
    # Allow a stray odd packet, but require a clear majority.
    need = _majority(len(payloads))
    ok264 = h264 >= need
    ok265 = h265 >= need
    if ok264 and ok265:
        if h264 != h265:
            return "h264" if h264 > h265 else "hevc"
        return "hevc" if pt == 99 else "h264"
    if ok264:
        return "h264"
    if ok265:
        return "hevc"
    return "unknown"
