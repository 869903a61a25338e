"""H.264 over RTP (RFC 6184), non-interleaved mode: single NAL unit packets, STAP-A and FU-A.

Strategy: `H264Depacketizer.feed` reads the one or two header bytes of the payload and appends a start code and
a `bytes` slice per NAL unit (or per FU-A fragment) to the access unit's list; the access unit is joined once
when it ends (see `_video` for the access-unit and loss rules). STAP-B, MTAP16/24 and FU-B belong to the
interleaved mode (RFC 6184 §6.3), which we do not negotiate: such packets are counted as `unsupported` and break
the frame they carry data of. Reserved types 0, 30 and 31 are ignored (RFC 6184 §5.2).

`H264Packetizer` sends a NAL unit as a single NAL unit packet when it fits (§5.6), aggregates runs of small
ones (SPS, PPS, SEI) into STAP-A packets (§5.7.1), and fragments larger ones with FU-A (§5.8).
"""

from __future__ import annotations

from typing import ClassVar

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols._media import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket

from ._common import BYTE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MTU, START_CODE, NalPacketizer
from ._video import AUD, CLASS_KEY_SLICE, CLASS_SLICE, KEY, PS_SHIFT, VCL, VideoDepacketizer, rbsp_prefix, read_ue

__all__ = ["H264Depacketizer", "H264Packetizer"]

_STAP_A = 24
_FU_A = 28
# RFC 6184 Table 3: interleaved-mode types, not supported here.
_INTERLEAVED = frozenset({25, 26, 27, 29})

_SPS = 1 << PS_SHIFT
_PPS = 2 << PS_SHIFT


def _flags() -> tuple[int, ...]:
    table = [0] * 32
    for t in (1, 2, 3, 4):  # non-IDR slice, data partitions A, B, C (H.264 Table 7-1)
        table[t] = VCL
    table[5] = VCL | KEY
    table[7] = _SPS
    table[8] = _PPS
    table[9] = AUD
    return tuple(table)


_FLAGS = _flags()


class H264Depacketizer(VideoDepacketizer):
    """RTP packets in, H.264 access units (Annex-B, 4-byte start codes) out.

    Args:
        max_frame_size: most payload bytes assembled for one access unit; a larger one is dropped and counted
            (datagram stream: nothing is raised).
        parameter_sets: SPS/PPS known beforehand (the SDP's sprop-parameter-sets, decoded), each a NAL unit
            with or without a start code; prepended to keyframes that lack them until the stream sends its own.

    Frames carry `pts` = the RTP timestamp unwrapped to an unbounded int (90 kHz), `dts=None`, and `keyframe` =
    an IDR slice is present. A keyframe missing its SPS or PPS gets the latest ones seen inserted before its
    first slice, so every keyframe decodes on its own. Payloads that break the format are counted in
    `statistics().malformed` and dropped with their frame rather than raised.
    """

    __slots__ = ()

    CODEC: ClassVar[str] = "h264"
    FLAGS: ClassVar[tuple[int, ...]] = _FLAGS
    NEEDED: ClassVar[int] = _SPS | _PPS
    STRONG: ClassVar[frozenset[int]] = frozenset({9, 7})  # AUD, SPS

    def __init__(
        self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, parameter_sets: list[bytes] | None = None
    ) -> None:
        super().__init__(max_frame_size=max_frame_size, parameter_sets=parameter_sets)

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """Take one RTP packet (in sequence order); return the access units it completes (zero or one, rarely two).

        An access unit completes at its marker bit or, when the sender sets none, at the first packet with
        another timestamp.
        """
        self._packets += 1
        seq = packet.sequence_number
        if seq != self._next_seq and self._sequence_break(packet):
            return []
        self._next_seq = (seq + 1) & 0xFFFF
        payload = packet.payload
        out: list[MediaFrame] = []
        if not payload:
            self._malformed += 1  # RFC 6184 §5.2: a payload holds at least the NAL unit header
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
                self._after_gap = False  # the gap lay inside this access unit, already marked broken
            b0 = payload[0]
            t = b0 & 0x1F
            if t == _FU_A and len(payload) > 2:
                # RFC 6184 §5.8: FU indicator (F, NRI, 28), FU header (S, E, R, type), fragment.
                fu = payload[1]
                if fu & 0x80:
                    t = fu & 0x1F
                    if self._fu or not 0 < t < 24:
                        self._bad_fragment()
                    parts = self._parts
                    parts.append(START_CODE)
                    parts.append(BYTE[(b0 & 0xE0) | t])
                    parts.append(payload[2:])
                    self._flags |= _FLAGS[t]
                    self._fu = not fu & 0x40
                elif self._fu:
                    self._parts.append(payload[2:])
                    if fu & 0x40:
                        self._fu = False
                else:
                    self._bad_fragment()  # a fragment whose start we never saw
            elif 0 < t < 24:
                # RFC 6184 §5.6: single NAL unit packet.
                if self._fu:
                    self._bad_fragment()
                parts = self._parts
                parts.append(START_CODE)
                parts.append(payload)
                self._flags |= _FLAGS[t]
            elif t == _STAP_A:
                self._stap_a(payload)
            else:
                self._reject(t)
            self._size += len(payload)
            if self._size > self._max:
                self._overflow()
        if packet.marker and self._au_ts >= 0:
            self._markers = True
            frame = self._finish()
            if frame is not None:
                out.append(frame)
        return out

    def _bad_fragment(self) -> None:
        # An FU that did not end before another NAL unit began, or a fragment with no start: data is missing.
        # When no loss explains it the sender broke the format.
        if not self._broken:
            self._malformed += 1
            self._broken = True
        self._fu = False

    def _stap_a(self, payload: bytes) -> None:
        # RFC 6184 §5.7.1: STAP-A = header byte, then (16-bit size, NAL unit) repeated.
        if self._fu:
            self._bad_fragment()
        n = len(payload)
        pos = 1
        flags = 0
        parts = self._parts
        ok = n > 1
        while pos < n:
            size = int.from_bytes(payload[pos : pos + 2], "big")
            pos += 2
            end = pos + size
            if not size or end > n or not 0 < payload[pos] & 0x1F < 24:
                ok = False
                break
            parts.append(START_CODE)
            parts.append(payload[pos:end])
            flags |= _FLAGS[payload[pos] & 0x1F]
            pos = end
        if not ok:
            self._malformed += 1
            self._broken = True
        self._flags |= flags

    def _reject(self, t: int) -> None:
        if t == _FU_A:
            self._malformed += 1  # an FU-A of two bytes or less carries no fragment
            self._broken = True
        elif t in _INTERLEAVED:
            self._unsupported += 1
            self._broken = True
        else:
            self._unsupported += 1  # reserved types 0, 30, 31: ignored

    def _nal_type(self, header: bytes) -> int:
        return header[0] & 0x1F

    def _first_class(self, payload: bytes) -> tuple[int, bool] | None:
        n = len(payload)
        t = payload[0] & 0x1F
        if t == _STAP_A:
            if n < 5:
                return None
            t = payload[3] & 0x1F
            pos = 4
        elif t == _FU_A:
            if n < 3 or not payload[1] & 0x80:
                return None
            t = payload[1] & 0x1F
            pos = 2
        elif 0 < t < 24:
            pos = 1
        else:
            return None
        flags = _FLAGS[t]
        if flags & VCL:
            # first_mb_in_slice == 0 is ue(v) "1": the slice header's first bit. Partitions B/C carry no such field.
            first = t in (1, 2, 5) and pos < n and bool(payload[pos] & 0x80)
            return (CLASS_KEY_SLICE if flags & KEY else CLASS_SLICE), first
        return t, True

    def _set_key(self, nal_type: int, nal: bytes) -> tuple[int, int] | None:
        if nal_type == 7:
            # H.264 §7.3.2.1.1: profile_idc u(8), constraint flags u(8), level_idc u(8), seq_parameter_set_id ue(v).
            got = read_ue(rbsp_prefix(nal, 1, 8), 24)
            return (0, got[0]) if got is not None and got[0] < 32 else None
        # H.264 §7.3.2.2: pic_parameter_set_id ue(v) comes first.
        got = read_ue(rbsp_prefix(nal, 1, 4), 0)
        return (1, got[0]) if got is not None and got[0] < 256 else None


class H264Packetizer(NalPacketizer):
    """H.264 access units in, RTP packets out (RFC 6184 non-interleaved mode).

    Args:
        payload_type: the dynamic payload type negotiated in the SDP.
        ssrc: the stream's SSRC (drawn by the caller: no randomness here).
        mtu: largest RTP packet in bytes, header included.
        initial_sequence: sequence number of the first packet (drawn by the caller, RFC 3550 §5.1).
        use_stap_a: aggregate consecutive NAL units that fit one packet together (SPS + PPS + SEI typically).

    Raises:
        LocalProtocolError: a field out of range, or an MTU too small to carry anything.
    """

    __slots__ = ()

    NAL_HEADER_SIZE = 1

    def __init__(
        self,
        *,
        payload_type: int = 96,
        ssrc: int,
        mtu: int = DEFAULT_MTU,
        initial_sequence: int = 0,
        use_stap_a: bool = True,
    ) -> None:
        super().__init__(
            payload_type=payload_type, ssrc=ssrc, mtu=mtu, initial_sequence=initial_sequence, aggregate=use_stap_a
        )

    def _check(self, nal: bytes) -> None:
        if not 0 < nal[0] & 0x1F < 24:
            raise LocalProtocolError(f"H.264 NAL unit type {nal[0] & 0x1F} cannot be sent over RTP")

    def _aggregation_packet(self, nals: list[bytes]) -> bytes:
        return _stap_a(nals)

    def _fragment(self, nal: bytes, chunk: int, out: list[bytes]) -> None:
        _fu_a(nal, chunk, out)


def _stap_a(nals: list[bytes]) -> bytes:
    # RFC 6184 §5.7.1: F is the OR of the units' F bits, NRI their maximum.
    f = 0
    nri = 0
    pieces = [b""]
    for nal in nals:
        f |= nal[0] & 0x80
        nri = max(nri, nal[0] & 0x60)
        pieces.append(len(nal).to_bytes(2, "big"))
        pieces.append(nal)
    pieces[0] = BYTE[f | nri | _STAP_A]
    return b"".join(pieces)


def _fu_a(nal: bytes, chunk: int, out: list[bytes]) -> None:
    # RFC 6184 §5.8: the NAL header is not sent; its F/NRI go in the FU indicator, its type in the FU header.
    indicator = BYTE[(nal[0] & 0xE0) | _FU_A]
    t = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    n = len(body)
    for k in range(0, n, chunk):
        fu = t | (0x80 if k == 0 else 0) | (0x40 if k + chunk >= n else 0)
        out.append(b"".join((indicator, BYTE[fu], body[k : k + chunk])))
