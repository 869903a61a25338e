"""TCP byte-stream reassembly for one direction of a captured connection.

Strategy: keep the next expected sequence number; a segment at that number is delivered at once (the common
case), an earlier one is a retransmission whose new tail (if any) is delivered, and a later one waits in a dict
keyed by sequence number. Waiting bytes are bounded by `max_pending`: past it, the hole is given up as lost, a gap
is reported, and delivery resumes at the earliest waiting segment. Sequence arithmetic is modulo 2**32
(RFC 9293 §3.4). Overlapping retransmissions are resolved "first copy wins", which is what a receiver sees.
"""

from __future__ import annotations

from fluxkit.inspect._ip import Segment

__all__ = ["DEFAULT_MAX_TCP_PENDING", "GAP", "TcpReassembler"]

#: Bytes held out of order per direction before a missing segment is declared lost.
DEFAULT_MAX_TCP_PENDING = 1 << 20

#: Marker in the output of `TcpReassembler.segment` where bytes were lost: the byte stream is not contiguous.
GAP = None

_MASK = 0xFFFFFFFF


def _diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space."""
    return ((a - b + 0x80000000) & _MASK) - 0x80000000


class TcpReassembler:
    """Puts the payloads of one direction of a TCP connection back in sequence order.

    Out-of-order bytes beyond `max_pending` are not an error: the oldest hole is declared lost (counted in
    `gap_bytes`, reported as `GAP`), since a capture may simply have missed a segment.

    Attributes:
        delivered: bytes handed out in order.
        retransmitted: bytes received again after they had been delivered (dropped).
        gap_bytes: bytes never seen (holes given up).
    """

    def __init__(self, *, max_pending: int = DEFAULT_MAX_TCP_PENDING) -> None:
        self._max = max_pending
        self._next: int | None = None
        self._pending: dict[int, bytes] = {}
        self._pending_bytes = 0
        self.delivered = 0
        self.retransmitted = 0
        self.gap_bytes = 0

    def segment(self, seg: Segment) -> list[bytes | None]:
        """Take one segment; return the newly contiguous bytes, with `GAP` where a hole was given up."""
        if seg.syn:
            self._next = (seg.seq + 1) & _MASK
            self._pending.clear()
            self._pending_bytes = 0
            return []
        data = seg.payload
        if not data:
            return []
        if self._next is None:
            # The capture started mid-connection: take the first data segment as the start.
            self._next = seg.seq
        out: list[bytes | None] = []
        d = _diff(seg.seq, self._next)
        if d <= 0:
            self._deliver(data, d, out)
            self._drain(out)
            return out
        old = self._pending.get(seg.seq)
        if old is None or len(old) < len(data):
            self._pending[seg.seq] = data
            self._pending_bytes += len(data) - (len(old) if old else 0)
        while self._pending_bytes > self._max:
            self._skip_hole(out)
            self._drain(out)
        return out

    def flush(self) -> list[bytes | None]:
        """End of capture: hand out every waiting segment in order, with `GAP` before each hole."""
        out: list[bytes | None] = []
        while self._pending:
            self._skip_hole(out)
            self._drain(out)
        return out

    def _deliver(self, data: bytes, d: int, out: list[bytes | None]) -> None:
        # d <= 0: the segment starts at or before the next expected byte.
        assert self._next is not None
        if d < 0:
            if len(data) <= -d:
                self.retransmitted += len(data)
                return
            self.retransmitted += -d
            data = data[-d:]
        out.append(data)
        self.delivered += len(data)
        self._next = (self._next + len(data)) & _MASK

    def _drain(self, out: list[bytes | None]) -> None:
        pending = self._pending
        while pending:
            assert self._next is not None
            data = pending.pop(self._next, None)
            if data is not None:
                self._pending_bytes -= len(data)
                self._deliver(data, 0, out)
                continue
            # No exact match: look for a waiting segment that overlaps the next expected byte.
            found = False
            for seq in list(pending):
                d = _diff(seq, self._next)
                if d <= 0:
                    data = pending.pop(seq)
                    self._pending_bytes -= len(data)
                    self._deliver(data, d, out)
                    found = True
            if not found:
                return

    def _skip_hole(self, out: list[bytes | None]) -> None:
        assert self._next is not None
        nxt = self._next
        first = min(self._pending, key=lambda s: _diff(s, nxt))
        self.gap_bytes += _diff(first, nxt)
        self._next = first
        out.append(GAP)
