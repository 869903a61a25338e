"""Pieces shared by the payload formats: limits, statistics, the packet-numbering helper.

Loss model shared by every depacketizer here (RFC 3550 §5.1 sequence numbers; RFC 6184 §5.8 / RFC 7798 §4.4.3
for fragments): a frame hit by a loss is discarded whole and counted, never spliced into the next one. A loss is
known either from the reorder buffer (`feed_gap()`) or from the depacketizer's own check that each packet's
sequence number follows the previous one, so a depacketizer also works fed straight from the network. Packets
older than the last one accepted (duplicates, stragglers a reorder buffer did not hold back) are dropped and
counted as `late`.

Garbage payloads are counted as `malformed` and dropped (with the frame they belonged to) instead of raising:
RTP is a datagram stream, one bad packet must not tear down the session, and the layer above watches the counts.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.nalu import split_annexb
from fluxkit.protocols.rtp._packet import RTP_HEADER_SIZE, RtpPacket

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MTU",
    "DepacketizerStatistics",
    "NalPacketizer",
    "SequenceCounter",
]

#: Largest frame (sum of the RTP payload bytes of one frame) a depacketizer assembles before dropping it: 4 MiB
#: holds an intra frame of a 4K camera at a high bitrate with room to spare.
DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024

#: Largest RTP packet (12-byte header included) a packetizer emits: 1200 bytes stays under every common path MTU
#: once IP/UDP (28 bytes), a VPN or an RTSP interleaved frame are added.
DEFAULT_MTU = 1200

#: The smallest MTU that leaves room for a fragmentation header and at least one byte of payload.
MIN_MTU = RTP_HEADER_SIZE + 4

#: One-byte bytes objects, so a reconstructed FU header costs no allocation.
BYTE = tuple(bytes((i,)) for i in range(256))

#: H.264 / H.265 Annex-B start code put before each NAL unit in the frames we emit.
START_CODE = b"\x00\x00\x00\x01"


@attrs.frozen(kw_only=True, slots=True)
class DepacketizerStatistics:
    """Counters of one depacketizer since it was created.

    Attributes:
        packets: RTP packets fed (late ones included).
        frames: frames emitted.
        frames_dropped: frames discarded because a loss, a malformed or unsupported packet, or the size limit hit
            them. Frames that were lost whole are not seen at all, so they are not in this count.
        malformed: packets whose payload broke the payload format (truncated headers, lengths running past the
            packet, a fragment with no start).
        unsupported: packets of a valid but unsupported packetization (H.264 STAP-B/MTAP/FU-B, H.265 PACI) or of
            a reserved type.
        late: packets older than one already accepted (duplicates, reordering beyond what was buffered), dropped.
    """

    packets: int = 0
    frames: int = 0
    frames_dropped: int = 0
    malformed: int = 0
    unsupported: int = 0
    late: int = 0


class SequenceCounter:
    """Numbers packets for a packetizer: sequence numbers continue across calls and wrap at 65536 (RFC 3550 §5.1).

    The SSRC and the first sequence number are given by the caller (RFC 3550 wants them random; drawing them is
    the caller's job, as this core holds no randomness).
    """

    __slots__ = ("_next", "max_payload", "payload_type", "ssrc")

    def __init__(self, *, payload_type: int, ssrc: int, mtu: int, initial_sequence: int) -> None:
        if not 0 <= payload_type < 128:
            raise LocalProtocolError(f"RTP payload type {payload_type} does not fit in 7 bits")
        if not 0 <= ssrc < 1 << 32:
            raise LocalProtocolError(f"RTP SSRC {ssrc} does not fit in 32 bits")
        if not 0 <= initial_sequence < 1 << 16:
            raise LocalProtocolError(f"RTP sequence number {initial_sequence} does not fit in 16 bits")
        if mtu < MIN_MTU:
            raise LocalProtocolError(f"MTU {mtu} is below the minimum of {MIN_MTU} bytes")
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.max_payload = mtu - RTP_HEADER_SIZE
        self._next = initial_sequence

    @property
    def next_sequence(self) -> int:
        """The sequence number the next packet will carry."""
        return self._next

    def packets(self, payloads: list[bytes], timestamp: int) -> list[RtpPacket]:
        """One RTP packet per payload, all with `timestamp`, the marker on the last one."""
        ts = timestamp & 0xFFFFFFFF
        seq = self._next
        pt = self.payload_type
        ssrc = self.ssrc
        last = len(payloads) - 1
        self._next = (seq + len(payloads)) & 0xFFFF
        return [
            RtpPacket(
                payload_type=pt,
                sequence_number=(seq + i) & 0xFFFF,
                timestamp=ts,
                ssrc=ssrc,
                payload=p,
                marker=i == last,
            )
            for i, p in enumerate(payloads)
        ]


class NalPacketizer(abc.ABC):
    """The packetization plan RFC 6184 (H.264) and RFC 7798 (H.265) share; subclasses supply the codec's headers.

    Each NAL unit goes in a single-NAL packet when it fits; a run of consecutive small units that fits one packet
    goes in an aggregation packet (STAP-A / AP: 2-byte length before each unit); a unit larger than the payload
    room is cut into fragmentation units (FU-A / FU) whose header replaces the NAL header.
    """

    __slots__ = ("_aggregate", "_counter")

    #: Size of the codec's NAL unit header: 1 byte for H.264, 2 for H.265.
    NAL_HEADER_SIZE: ClassVar[int]

    def __init__(self, *, payload_type: int, ssrc: int, mtu: int, initial_sequence: int, aggregate: bool) -> None:
        self._counter = SequenceCounter(
            payload_type=payload_type, ssrc=ssrc, mtu=mtu, initial_sequence=initial_sequence
        )
        self._aggregate = aggregate

    @property
    def next_sequence(self) -> int:
        """Sequence number of the next packet."""
        return self._counter.next_sequence

    def packetize(self, access_unit: bytes | list[bytes], timestamp: int) -> list[RtpPacket]:
        """Packets for one access unit, all stamped `timestamp` (taken modulo 2**32), the marker on the last.

        Args:
            access_unit: Annex-B bytes, or the list of its NAL units (without start codes).
            timestamp: the RTP timestamp (90 kHz).

        Raises:
            LocalProtocolError: a NAL unit shorter than its header or of a type the payload format reserves.
        """
        nals = split_annexb(access_unit) if isinstance(access_unit, bytes | bytearray) else access_unit
        return self._counter.packets(self._payloads(nals), timestamp)

    @abc.abstractmethod
    def _check(self, nal: bytes) -> None: ...

    @abc.abstractmethod
    def _aggregation_packet(self, nals: list[bytes]) -> bytes: ...

    @abc.abstractmethod
    def _fragment(self, nal: bytes, chunk: int, out: list[bytes]) -> None: ...

    def _payloads(self, nals: list[bytes]) -> list[bytes]:
        room = self._counter.max_payload
        header = self.NAL_HEADER_SIZE
        out: list[bytes] = []
        count = len(nals)
        i = 0
        while i < count:
            nal = nals[i]
            size = len(nal)
            if not size:
                i += 1
                continue
            self._check(nal)
            # An aggregation packet costs its own NAL-style header plus 2 length bytes per unit.
            if self._aggregate and size + header + 2 < room:
                j = i
                total = header
                while j < count and len(nals[j]) >= header and total + 2 + len(nals[j]) <= room:
                    total += 2 + len(nals[j])
                    j += 1
                if j - i >= 2:
                    out.append(self._aggregation_packet(nals[i:j]))
                    i = j
                    continue
            if size <= room:
                out.append(bytes(nal))
            else:
                # A fragment carries the payload header plus a one-byte FU header instead of the NAL header.
                self._fragment(nal, room - header - 1, out)
            i += 1
        return out
