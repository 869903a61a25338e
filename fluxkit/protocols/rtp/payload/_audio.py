"""Audio payload formats: G.711 (RFC 3551) and MPEG-4 AAC in mpeg4-generic (RFC 3640), depacketizing (sans-IO).

Audio frames stand alone: every frame is a keyframe, timestamps are the unwrapped RTP timestamps in the track's
clock (8 kHz for G.711, the sample rate for AAC).
"""

from __future__ import annotations

from fluxkit.protocols._media import MediaFrame, new_media_frame
from fluxkit.protocols.rtp._packet import RtpPacket
from fluxkit.protocols.rtp._seq import TimestampUnwrapper

from ._common import DEFAULT_MAX_FRAME_SIZE

__all__ = ["AacDepacketizer", "G711Depacketizer"]


class G711Depacketizer:
    """G.711 A-law/mu-law (RFC 3551 §4.5.14): one frame per packet, pts in 8 kHz ticks, every frame a keyframe."""

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._unwrap = TimestampUnwrapper()

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """The packet's samples as one frame (none for an empty payload)."""
        if not packet.payload:
            return []
        return [new_media_frame(self.codec, packet.payload, self._unwrap.unwrap(packet.timestamp), None, True, 0)]

    def feed_gap(self) -> None:
        """Nothing to drop: every packet stands alone."""

    def flush(self) -> list[MediaFrame]:
        """Nothing is ever held."""
        return []


class AacDepacketizer:
    """MPEG-4 AAC in RFC 3640 mpeg4-generic, modes AAC-hbr and AAC-lbr: AU headers, then the access units.

    Each packet starts with AU-headers-length (16 bits, in bits), then one AU header per access unit: AU-size
    (`size_length` bits) and AU-Index (`index_length` bits; AU-Index-delta, `index_delta_length` bits, for the
    following ones) (RFC 3640 §3.2.1). The n-th AU of a packet has timestamp RTP timestamp + n x `frame_samples`
    (§3.2.3.2, with index deltas of 0). An AU larger than a packet is fragmented over packets with one AU header
    giving the whole size; the last fragment has the marker bit (§3.2.3.1). A loss drops a fragmented AU in
    progress. Malformed packets are dropped and counted (`malformed`).

    Args:
        size_length: the fmtp `sizeLength` (13 for AAC-hbr, 6 for AAC-lbr).
        index_length: the fmtp `indexLength`.
        index_delta_length: the fmtp `indexDeltaLength`.
        frame_samples: samples per access unit (fmtp `constantDuration`, else 1024).
        max_frame_size: a fragmented AU bigger than this is dropped.
    """

    def __init__(
        self,
        *,
        size_length: int = 13,
        index_length: int = 3,
        index_delta_length: int = 3,
        frame_samples: int = 1024,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self._size_length = size_length
        self._first_bits = size_length + index_length
        self._next_bits = size_length + index_delta_length
        self._frame_samples = frame_samples
        self._max = max_frame_size
        self._unwrap = TimestampUnwrapper()
        self._frag: list[bytes] = []
        self._frag_size = 0  # the whole AU's size while a fragmented AU is open, else 0
        self._frag_have = 0
        self.malformed = 0

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """The access units the packet completes."""
        payload = packet.payload
        if len(payload) < 2:
            self.malformed += 1
            return []
        header_bits = int.from_bytes(payload[:2], "big")
        start = 2 + (header_bits + 7) // 8
        if start > len(payload) or header_bits < self._first_bits:
            self.malformed += 1
            return []
        headers = int.from_bytes(payload[2:start], "big")
        left = (start - 2) * 8  # bits of `headers` not consumed yet
        sizes = []
        width = self._first_bits
        mask = (1 << self._size_length) - 1
        consumed = 0
        while consumed + width <= header_bits:
            sizes.append((headers >> (left - consumed - self._size_length)) & mask)
            consumed += width
            width = self._next_bits
        data = payload[start:]
        pts = self._unwrap.unwrap(packet.timestamp)
        if self._frag_size:
            return self._continue(data, sizes, packet.marker, pts)
        if len(sizes) == 1 and sizes[0] > len(data):
            # First fragment of a large AU (§3.2.3.1).
            if packet.marker or sizes[0] > self._max:
                self.malformed += 1
                return []
            self._frag = [data]
            self._frag_size = sizes[0]
            self._frag_have = len(data)
            return []
        out = []
        pos = 0
        for i, size in enumerate(sizes):
            if pos + size > len(data):
                self.malformed += 1
                break
            out.append(new_media_frame("aac", data[pos : pos + size], pts + i * self._frame_samples, None, True, 0))
            pos += size
        return out

    def _continue(self, data: bytes, sizes: list[int], marker: bool, pts: int) -> list[MediaFrame]:
        if len(sizes) != 1 or sizes[0] != self._frag_size:
            self.feed_gap()  # not a continuation of the open AU: drop it
            self.malformed += 1
            return []
        self._frag.append(data)
        self._frag_have += len(data)
        if self._frag_have > self._frag_size:
            self.feed_gap()
            self.malformed += 1
            return []
        if not marker:
            return []
        complete = self._frag_have == self._frag_size
        au = b"".join(self._frag)
        self.feed_gap()
        return [new_media_frame("aac", au, pts, None, True, 0)] if complete else []

    def feed_gap(self) -> None:
        """A loss: drop the fragmented AU in progress."""
        self._frag = []
        self._frag_size = 0
        self._frag_have = 0

    def flush(self) -> list[MediaFrame]:
        """An unfinished fragmented AU is incomplete: dropped."""
        self.feed_gap()
        return []
