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

import attrs

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.rtp._packet import RTP_HEADER_SIZE, RtpPacket

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MTU",
    "DepacketizerStatistics",
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
