"""H.265 over RTP (RFC 7798): single NAL unit packets, aggregation packets (AP, type 48), fragmentation units (FU, 49).

Strategy: as for H.264 (see `_h264` and `_video`): `feed` reads the two-byte payload header and appends a start
code and `bytes` slices per NAL unit or fragment; the access unit is joined once. PACI packets (type 50,
RFC 7798 §4.4.4) are counted as `unsupported` and break their frame; reserved types 51..63 are ignored (§4.4).

DONL/DOND fields (§4.4) are present only when the SDP gives sprop-max-don-diff > 0; pass it as
`sprop_max_don_diff` and they are parsed and skipped. NAL units are emitted in transmission order: a sender
with sprop-max-don-diff > 0 may send them out of decoding order, which this depacketizer does not undo (no
common camera does so). `H265Packetizer` never sends DONL (it sends in decoding order).
"""

from __future__ import annotations

from typing import ClassVar

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols._media import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket

from ._common import BYTE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MTU, START_CODE, NalPacketizer
from ._video import AUD, CLASS_KEY_SLICE, CLASS_SLICE, KEY, PS_SHIFT, VCL, VideoDepacketizer, rbsp_prefix, read_ue

__all__ = ["H265Depacketizer", "H265Packetizer"]

_AP = 48
_FU = 49
_PACI = 50

_VPS = 1 << PS_SHIFT
_SPS = 2 << PS_SHIFT
_PPS = 4 << PS_SHIFT


def _flags() -> tuple[int, ...]:
    table = [0] * 64
    for t in range(32):  # H.265 Table 7-1: 0..31 are VCL, 16..21 IRAP (BLA, IDR, CRA)
        table[t] = VCL | (KEY if 16 <= t <= 21 else 0)
    table[32] = _VPS
    table[33] = _SPS
    table[34] = _PPS
    table[35] = AUD
    return tuple(table)


_FLAGS = _flags()


class H265Depacketizer(VideoDepacketizer):
    """RTP packets in, H.265 access units (Annex-B, 4-byte start codes) out.

    Args:
        max_frame_size: most payload bytes assembled for one access unit; a larger one is dropped and counted.
        parameter_sets: VPS/SPS/PPS known beforehand (sprop-vps/sps/pps from the SDP, decoded), each a NAL unit
            with or without a start code.
        sprop_max_don_diff: the SDP's sprop-max-don-diff; above 0, packets carry DONL/DOND fields (RFC 7798 §4.4).

    Frames carry `pts` = the unwrapped RTP timestamp (90 kHz), `dts=None` and `keyframe` = an IRAP picture
    (NAL types 16..21). A keyframe missing its VPS, SPS or PPS gets the latest ones seen inserted before its first
    slice. Malformed payloads are counted and dropped with their frame, not raised.
    """

    __slots__ = ("_donl",)

    CODEC: ClassVar[str] = "hevc"
    FLAGS: ClassVar[tuple[int, ...]] = _FLAGS
    NEEDED: ClassVar[int] = _VPS | _SPS | _PPS
    STRONG: ClassVar[frozenset[int]] = frozenset({35, 32, 33})  # AUD, VPS, SPS

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        parameter_sets: list[bytes] | None = None,
        sprop_max_don_diff: int = 0,
    ) -> None:
        super().__init__(max_frame_size=max_frame_size, parameter_sets=parameter_sets)
        self._donl = sprop_max_don_diff > 0

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """Take one RTP packet (in sequence order); return the access units it completes (zero, one, rarely two).

        An access unit completes at its marker bit or at the first packet with another timestamp.
        """
        self._packets += 1
        seq = packet.sequence_number
        if seq != self._next_seq and self._sequence_break(packet):
            return []
        self._next_seq = (seq + 1) & 0xFFFF
        payload = packet.payload
        out: list[MediaFrame] = []
        n = len(payload)
        if n < 2:
            self._malformed += 1  # RFC 7798 §4.4: every payload starts with the 2-byte payload header
        else:
            ts = packet.timestamp
            if ts != self._au_ts:
                if self._au_ts >= 0:
                    frame = self._finish()
                    if frame is not None:
                        out.append(frame)
                # Open the next access unit (inline: this runs once per frame). RFC 3550 §5.1: the timestamp
                # wraps at 2**32; a step is read as signed so B-frames step back instead of jumping ahead.
                if self._last_raw >= 0:
                    step = (ts - self._last_raw) & 0xFFFFFFFF
                    self._pts += step - 0x100000000 if step & 0x80000000 else step
                else:
                    self._pts = ts
                self._last_raw = self._au_ts = ts
                if self._after_gap:
                    self._judge(payload)
                else:
                    self._first = payload
            elif self._after_gap:
                self._after_gap = False
            b0 = payload[0]
            t = (b0 >> 1) & 0x3F
            if t == _FU and n > 3:
                # RFC 7798 §4.4.3: PayloadHdr (type 49), FU header (S, E, type), DONL in the first fragment only.
                fu = payload[2]
                if fu & 0x80:
                    t = fu & 0x3F
                    start = 5 if self._donl else 3
                    if self._fu or t >= _AP or n <= start:
                        self._bad_fragment()
                    parts = self._parts
                    parts.append(START_CODE)
                    parts.append(bytes(((b0 & 0x81) | (t << 1), payload[1])))
                    parts.append(payload[start:])
                    self._flags |= _FLAGS[t]
                    self._fu = not fu & 0x40
                elif self._fu:
                    self._parts.append(payload[3:])
                    if fu & 0x40:
                        self._fu = False
                else:
                    self._bad_fragment()
            elif t < _AP:
                # RFC 7798 §4.4.1: single NAL unit packet, with a DONL after the header when DON is in use.
                if self._fu:
                    self._bad_fragment()
                parts = self._parts
                parts.append(START_CODE)
                if self._donl:
                    if n < 4:
                        self._malformed += 1
                        self._broken = True
                    parts.append(payload[:2])
                    parts.append(payload[4:])
                else:
                    parts.append(payload)
                self._flags |= _FLAGS[t]
            elif t == _AP:
                self._aggregation(payload)
            elif t == _FU:
                self._malformed += 1  # an FU of three bytes or less carries no fragment
                self._broken = True
            else:
                self._unsupported += 1
                if t == _PACI:
                    self._broken = True
            self._size += n
            if self._size > self._max:
                self._overflow()
        if packet.marker and self._au_ts >= 0:
            self._markers = True
            frame = self._finish()
            if frame is not None:
                out.append(frame)
        return out

    def _bad_fragment(self) -> None:
        if not self._broken:
            self._malformed += 1
            self._broken = True
        self._fu = False

    def _aggregation(self, payload: bytes) -> None:
        # RFC 7798 §4.4.2: PayloadHdr, then units of [DONL (first) / DOND (others)] size(16) NAL unit.
        if self._fu:
            self._bad_fragment()
        n = len(payload)
        pos = 2
        flags = 0
        parts = self._parts
        skip = 2 if self._donl else 0
        ok = n > 2
        while pos < n:
            pos += skip + 2
            size = int.from_bytes(payload[pos - 2 : pos], "big")
            end = pos + size
            if size < 2 or end > n or (payload[pos] >> 1) & 0x3F >= _AP:
                ok = False
                break
            parts.append(START_CODE)
            parts.append(payload[pos:end])
            flags |= _FLAGS[(payload[pos] >> 1) & 0x3F]
            pos = end
            if skip:
                skip = 1
        if not ok:
            self._malformed += 1
            self._broken = True
        self._flags |= flags

    def _nal_type(self, header: bytes) -> int:
        return (header[0] >> 1) & 0x3F

    def _first_class(self, payload: bytes) -> tuple[int, bool] | None:
        n = len(payload)
        t = (payload[0] >> 1) & 0x3F
        extra = 2 if self._donl else 0
        if t == _AP:
            pos = 4 + extra  # header, [DONL], size: the first unit's NAL header starts here
            if n < pos + 3:
                return None
            t = (payload[pos] >> 1) & 0x3F
            pos += 2
        elif t == _FU:
            if n < 4 or not payload[2] & 0x80:
                return None
            t = payload[2] & 0x3F
            pos = 3 + extra
        elif t < _AP:
            pos = 2 + extra
        else:
            return None
        if t >= _AP:
            return None
        flags = _FLAGS[t]
        if flags & VCL:
            # H.265 §7.3.6.1: first_slice_segment_in_pic_flag is the slice header's first bit.
            first = pos < n and bool(payload[pos] & 0x80)
            return (CLASS_KEY_SLICE if flags & KEY else CLASS_SLICE), first
        return t, True

    def _set_key(self, nal_type: int, nal: bytes) -> tuple[int, int] | None:
        if len(nal) < 3:
            return None
        if nal_type == 32:
            return 0, nal[2] >> 4  # H.265 §7.3.2.1: vps_video_parameter_set_id u(4) comes first
        if nal_type == 34:
            got = read_ue(rbsp_prefix(nal, 2, 4), 0)  # §7.3.2.3.1: pps_pic_parameter_set_id ue(v) first
            return (2, got[0]) if got is not None and got[0] < 64 else None
        # §7.3.2.2.1: sps_video_parameter_set_id u(4), sps_max_sub_layers_minus1 u(3), nesting flag u(1),
        # profile_tier_level(1, max_sub_layers_minus1) (§7.3.3), then sps_seq_parameter_set_id ue(v).
        rbsp = rbsp_prefix(nal, 2, 112)
        sub_layers = (rbsp[0] >> 1) & 7
        bit = 8 + 96  # general profile (88 bits) and general_level_idc (8 bits)
        if sub_layers:
            flag_bits = int.from_bytes(rbsp[13:15], "big") if len(rbsp) >= 15 else 0
            bit += 16  # two flags per sub-layer, padded with reserved_zero_2bits to eight pairs
            for i in range(sub_layers):
                pair = (flag_bits >> (14 - 2 * i)) & 3
                bit += (88 if pair & 2 else 0) + (8 if pair & 1 else 0)
        got = read_ue(rbsp, bit)
        return (1, got[0]) if got is not None and got[0] < 16 else None


class H265Packetizer(NalPacketizer):
    """H.265 access units in, RTP packets out (RFC 7798, no DONL: sprop-max-don-diff = 0).

    Args:
        payload_type: the dynamic payload type negotiated in the SDP.
        ssrc: the stream's SSRC (drawn by the caller).
        mtu: largest RTP packet in bytes, header included.
        initial_sequence: sequence number of the first packet.
        use_aggregation: put consecutive NAL units that fit one packet into an aggregation packet (VPS + SPS + PPS).

    Raises:
        LocalProtocolError: a field out of range, or an MTU too small to carry anything.
    """

    __slots__ = ()

    NAL_HEADER_SIZE = 2

    def __init__(
        self,
        *,
        payload_type: int = 96,
        ssrc: int,
        mtu: int = DEFAULT_MTU,
        initial_sequence: int = 0,
        use_aggregation: bool = True,
    ) -> None:
        super().__init__(
            payload_type=payload_type, ssrc=ssrc, mtu=mtu, initial_sequence=initial_sequence, aggregate=use_aggregation
        )

    def _check(self, nal: bytes) -> None:
        if len(nal) < 2 or (nal[0] >> 1) & 0x3F >= _AP:
            raise LocalProtocolError("H.265 NAL unit is too short or of a type RTP reserves (48..63)")

    def _aggregation_packet(self, nals: list[bytes]) -> bytes:
        return _aggregation_packet(nals)

    def _fragment(self, nal: bytes, chunk: int, out: list[bytes]) -> None:
        _fragment(nal, chunk, out)


def _aggregation_packet(nals: list[bytes]) -> bytes:
    # RFC 7798 §4.4.2: F is the OR of the units' F bits; LayerId and TID are the lowest of the units'.
    f = 0
    layer = 63
    tid = 7
    pieces = [b""]
    for nal in nals:
        f |= nal[0] & 0x80
        layer = min(layer, ((nal[0] & 1) << 5) | (nal[1] >> 3))
        tid = min(tid, nal[1] & 7)
        pieces.append(len(nal).to_bytes(2, "big"))
        pieces.append(nal)
    pieces[0] = bytes((f | (_AP << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid))
    return b"".join(pieces)


def _fragment(nal: bytes, chunk: int, out: list[bytes]) -> None:
    # RFC 7798 §4.4.3: PayloadHdr copies the NAL header with type 49; the FU header holds S, E and the real type.
    header = bytes(((nal[0] & 0x81) | (_FU << 1), nal[1]))
    t = (nal[0] >> 1) & 0x3F
    body = memoryview(nal)[2:]
    n = len(body)
    for k in range(0, n, chunk):
        fu = t | (0x80 if k == 0 else 0) | (0x40 if k + chunk >= n else 0)
        out.append(b"".join((header, BYTE[fu], body[k : k + chunk])))
