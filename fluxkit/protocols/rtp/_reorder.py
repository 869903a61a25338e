"""Reorder (jitter) buffer: RTP packets in arrival order in, packets in sequence order and discontinuities out.

Strategy. Sequence numbers are handled as extended (unwrapped) integers relative to `next`, the extended number
expected next; a packet's place is the signed 16-bit distance from `next` (RFC 1982 arithmetic), so the
65535 -> 0 wrap needs no special case. The hot path, an in-order packet with nothing buffered, is one
attribute compare, one subtraction and a one-element list. Packets ahead of `next` wait in a dict keyed by
extended number, whose insertion order is arrival order, so the first entry is the one that has waited longest
and gives the timer (`arrival + max_delay`). Time only moves through the `now` arguments.

Rules, with `d` the signed distance of a packet from `next`:

* `d == 0`: emitted, followed by any buffered packets that are now contiguous.
* `0 < d <= max_misorder`: buffered. When the longest-waiting packet has waited `max_delay`, or the buffer
  holds `max_packets`, the missing numbers before it are declared lost (`RtpGap`) and it is released.
* `d > max_misorder`: a jump too big to wait for (a burst loss or a sender restart): everything buffered is
  released, the jump becomes one `RtpGap`, and the packet is emitted at once.
* `-max_misorder <= d < 0`: late (its number was already emitted or declared lost) or a duplicate: dropped.
* `d < -max_misorder`: a sender that restarted its numbering lower. Like RFC 3550 §A.1, the jump is trusted
  only when the next packet continues it (`seq + 1`); then `RtpSequenceReset` is emitted and numbering goes
  on from there. A lone stray packet is dropped.
* A duplicate of a buffered packet is dropped.

SSRC policy. The buffer follows one source at a time (demultiplex by SSRC before it when a port carries
several). A packet from another SSRC starts a probation: once `ssrc_probation` consecutive packets of that SSRC
have arrived with no packet of the current source in between, the old source's buffered packets are emitted
(with their gaps), then `RtpSourceChanged`, then the new source's packets in order. A packet of the current
source during the probation cancels it and the held packets are dropped (counted in `stale`). A source that was
retired by a change needs `max(ssrc_probation, 16)` consecutive packets to come back, so a burst of delayed
packets from the old device cannot flip the buffer back. Anything not an `RtpPacket` in the output is an
`RtpDiscontinuity`: a depacketizer should drop the frame it was assembling.

Extended numbers. Emitted packets are the parsed `RtpPacket`s themselves (no wrapper, no allocation).
Their extended sequence numbers follow from the output: between discontinuities, consecutive packets have
consecutive extended numbers, `RtpGap.first_missing`/`count` say where numbering resumes, and
`last_extended_seq` is the extended number of the last packet emitted. The first packet of a source maps to
its own 16-bit value.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from fluxkit.errors import LocalProtocolError

from ._packet import RtpPacket

__all__ = [
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_MISORDER",
    "DEFAULT_MAX_PACKETS",
    "DEFAULT_SSRC_PROBATION",
    "ReorderBuffer",
    "ReorderStatistics",
    "RtpDiscontinuity",
    "RtpGap",
    "RtpSequenceReset",
    "RtpSourceChanged",
]

#: Longest time (seconds) a packet waits for the ones missing before it.
DEFAULT_MAX_DELAY = 0.2
#: Most packets held while waiting; reaching it declares the first hole lost at once.
DEFAULT_MAX_PACKETS = 256
#: A forward jump bigger than this is not waited for; a backward one bigger than this is a restart candidate.
DEFAULT_MAX_MISORDER = 256
#: Consecutive packets a new SSRC needs before the buffer switches to it.
DEFAULT_SSRC_PROBATION = 2

_RETIRED_PROBATION = 16
_MAX_RETIRED = 8


@attrs.frozen(kw_only=True, slots=True)
class RtpDiscontinuity:
    """Base of every non-packet item a `ReorderBuffer` emits: the packet stream is not continuous here."""


@attrs.frozen(kw_only=True, slots=True)
class RtpGap(RtpDiscontinuity):
    """`count` packets of `ssrc` from extended sequence number `first_missing` on were declared lost."""

    ssrc: int
    first_missing: int
    count: int


@attrs.frozen(kw_only=True, slots=True)
class RtpSourceChanged(RtpDiscontinuity):
    """The buffer switched from `old_ssrc` to `new_ssrc`; extended numbers start again from the new source."""

    old_ssrc: int
    new_ssrc: int


@attrs.frozen(kw_only=True, slots=True)
class RtpSequenceReset(RtpDiscontinuity):
    """`ssrc` restarted its numbering below what was expected; `next_extended_seq` is where numbering goes on
    (extended numbers stay increasing: the new 16-bit numbers are placed after the old ones)."""

    ssrc: int
    next_extended_seq: int


@attrs.frozen(kw_only=True, slots=True)
class ReorderStatistics:
    """Counters of a `ReorderBuffer` since it was made.

    Attributes:
        emitted: packets emitted.
        gaps: `RtpGap` events emitted.
        lost: packets declared lost (sum of the gaps' counts).
        duplicates: dropped because the same number was already buffered.
        late: dropped because the number was already emitted or declared lost (includes duplicates of emitted
            packets).
        stale: dropped while on probation (another SSRC, or a restart that was not confirmed).
        forced: gaps declared early because the buffer held `max_packets`.
        resets: `RtpSequenceReset` events.
        source_changes: `RtpSourceChanged` events.
        buffered: packets held right now.
    """

    emitted: int
    gaps: int
    lost: int
    duplicates: int
    late: int
    stale: int
    forced: int
    resets: int
    source_changes: int
    buffered: int


class ReorderBuffer:
    """Reorders one RTP source, bounded in time (`max_delay`, driven by `now`) and space (`max_packets`).

    Datagram semantics: nothing raises on bad input; what cannot be used is dropped and counted in
    `statistics()`. See the module docstring for the rules and the SSRC policy.

    Args:
        max_delay: seconds a packet may wait for the ones missing before it.
        max_packets: packets held at most; when reached, the first hole is declared lost.
        max_misorder: larger forward jumps are not waited for; larger backward jumps are restart candidates.
        ssrc_probation: consecutive packets a new SSRC needs before the buffer follows it.
    """

    def __init__(
        self,
        *,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_packets: int = DEFAULT_MAX_PACKETS,
        max_misorder: int = DEFAULT_MAX_MISORDER,
        ssrc_probation: int = DEFAULT_SSRC_PROBATION,
    ) -> None:
        if max_delay < 0:
            raise LocalProtocolError(f"max_delay={max_delay} must be >= 0")
        if max_packets < 1:
            raise LocalProtocolError(f"max_packets={max_packets} must be >= 1")
        if not 1 <= max_misorder < 0x8000:
            raise LocalProtocolError(f"max_misorder={max_misorder} must be 1..32767")
        if ssrc_probation < 1:
            raise LocalProtocolError(f"ssrc_probation={ssrc_probation} must be >= 1")
        self._max_delay = max_delay
        self._max_packets = max_packets
        self._max_misorder = max_misorder
        self._probation = ssrc_probation
        self._ssrc: int | None = None
        self._next = 0  # extended number expected next
        self._buf: dict[int, tuple[RtpPacket, float]] = {}
        self._held: list[RtpPacket] = []  # packets on probation (another SSRC, or a restart)
        self._retired: list[int] = []
        self._emitted = 0
        self._gaps = 0
        self._lost = 0
        self._duplicates = 0
        self._late = 0
        self._stale = 0
        self._forced = 0
        self._resets = 0
        self._source_changes = 0

    @property
    def ssrc(self) -> int | None:
        """The source followed now (None before the first packet)."""
        return self._ssrc

    @property
    def last_extended_seq(self) -> int | None:
        """Extended sequence number of the last packet emitted (or declared lost), None before the first."""
        return None if self._ssrc is None else self._next - 1

    def statistics(self) -> ReorderStatistics:
        """The counters so far."""
        return ReorderStatistics(
            emitted=self._emitted,
            gaps=self._gaps,
            lost=self._lost,
            duplicates=self._duplicates,
            late=self._late,
            stale=self._stale,
            forced=self._forced,
            resets=self._resets,
            source_changes=self._source_changes,
            buffered=len(self._buf),
        )

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called (the longest-waiting packet's deadline), or None."""
        if not self._buf:
            return None
        return next(iter(self._buf.values()))[1] + self._max_delay

    def handle_timer(self, now: float) -> list[RtpPacket | RtpDiscontinuity]:
        """Release what has waited `max_delay` by `now`, declaring the holes before it lost."""
        out: list[RtpPacket | RtpDiscontinuity] = []
        if self._buf:
            self._expire(now, out)
        return out

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket | RtpDiscontinuity]:
        """Add one received packet; return what can be emitted now, in order."""
        if (
            packet.ssrc == self._ssrc
            and (packet.sequence_number - self._next) & 0xFFFF == 0
            and not self._buf
            and not self._held
        ):
            # Hot path: the expected packet, nothing waiting.
            self._next += 1
            self._emitted += 1
            return [packet]
        out: list[RtpPacket | RtpDiscontinuity] = []
        self._push_slow(packet, now, out)
        return out

    def push_many(self, packets: Iterable[RtpPacket], now: float) -> list[RtpPacket | RtpDiscontinuity]:
        """`push` for a batch received together (one `now` for all), returning everything emitted."""
        out: list[RtpPacket | RtpDiscontinuity] = []
        append = out.append
        for packet in packets:
            if (
                packet.ssrc == self._ssrc
                and (packet.sequence_number - self._next) & 0xFFFF == 0
                and not self._buf
                and not self._held
            ):
                self._next += 1
                self._emitted += 1
                append(packet)
            else:
                self._push_slow(packet, now, out)
        return out

    def flush(self) -> list[RtpPacket | RtpDiscontinuity]:
        """End of stream (or a pause): emit everything buffered, with its gaps; drop packets on probation.

        Numbering state is kept, so packets pushed later continue from here.
        """
        out: list[RtpPacket | RtpDiscontinuity] = []
        self._drop_held()
        if self._buf:
            self._release_through(max(self._buf), out)
        return out

    # -- internals ------------------------------------------------------------------------------------------

    def _emit(self, packet: RtpPacket, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        out.append(packet)
        self._next += 1
        self._emitted += 1

    def _gap(self, upto: int, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        # Declare [self._next, upto) lost.
        count = upto - self._next
        assert self._ssrc is not None
        out.append(RtpGap(ssrc=self._ssrc, first_missing=self._next, count=count))
        self._gaps += 1
        self._lost += count
        self._next = upto

    def _drain(self, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        buf = self._buf
        while self._next in buf:
            self._emit(buf.pop(self._next)[0], out)

    def _release_through(self, target: int, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        """Emit every buffered packet up to extended number `target`, with gaps for the holes, then drain."""
        buf = self._buf
        for ext in sorted(k for k in buf if k <= target):
            if ext > self._next:
                self._gap(ext, out)
            self._emit(buf.pop(ext)[0], out)
        self._drain(out)

    def _expire(self, now: float, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        buf = self._buf
        max_delay = self._max_delay
        while buf:
            ext, (_, arrival) = next(iter(buf.items()))
            # The same sum get_timer() reports: `arrival > now - max_delay` can differ from it by a rounding
            # step, and then a driver woken at the deadline would release nothing and spin.
            if arrival + max_delay > now:
                return
            self._release_through(ext, out)

    def _drop_held(self) -> None:
        self._stale += len(self._held)
        self._held = []

    def _start(self, packet: RtpPacket, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        self._ssrc = packet.ssrc
        self._next = packet.sequence_number
        self._emit(packet, out)

    def _push_slow(self, packet: RtpPacket, now: float, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        if self._buf:
            self._expire(now, out)
        if packet.ssrc != self._ssrc:
            if self._ssrc is None:
                self._start(packet, out)
            else:
                self._other_source(packet, now, out)
            return
        held = self._held
        if held:
            if held[0].ssrc == packet.ssrc and (packet.sequence_number - held[-1].sequence_number) & 0xFFFF == 1:
                self._confirm_reset(packet, now, out)
                return
            # The current numbering goes on: the probation candidate was a stray.
            self._drop_held()
        delta = (packet.sequence_number - self._next) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        self._place(packet, delta, now, out)

    def _place(self, packet: RtpPacket, delta: int, now: float, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        buf = self._buf
        if delta == 0:
            self._emit(packet, out)
            if buf:
                self._drain(out)
        elif 0 < delta <= self._max_misorder:
            ext = self._next + delta
            if ext in buf:
                self._duplicates += 1
                return
            buf[ext] = (packet, now)
            if len(buf) >= self._max_packets:
                self._forced += 1
                self._release_through(min(buf), out)
        elif delta > 0:
            # Too far ahead to wait for: release everything, declare the jump lost, go on from here.
            ext = self._next + delta
            if buf:
                self._release_through(max(buf), out)
            if ext > self._next:
                self._gap(ext, out)
            self._emit(packet, out)
        elif delta >= -self._max_misorder:
            self._late += 1
        else:
            # Far behind: maybe the sender restarted its numbering. Hold it until the next packet confirms.
            self._held = [packet]

    def _confirm_reset(self, packet: RtpPacket, now: float, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        assert self._ssrc is not None
        first = self._held[0]
        self._held = []
        if self._buf:
            self._release_through(max(self._buf), out)
        # Place the new numbering after the old one so extended numbers keep increasing.
        self._next += (first.sequence_number - self._next) & 0xFFFF
        self._resets += 1
        out.append(RtpSequenceReset(ssrc=self._ssrc, next_extended_seq=self._next))
        self._emit(first, out)
        self._emit(packet, out)

    def _other_source(self, packet: RtpPacket, now: float, out: list[RtpPacket | RtpDiscontinuity]) -> None:
        held = self._held
        if held and held[0].ssrc == packet.ssrc:
            held.append(packet)
        else:
            self._drop_held()
            held = self._held = [packet]
        needed = self._probation
        if packet.ssrc in self._retired:
            needed = max(needed, _RETIRED_PROBATION)
        if len(held) < needed:
            return
        # Switch: finish the old source, then start the new one from its lowest held number.
        old = self._ssrc
        assert old is not None
        if self._buf:
            self._release_through(max(self._buf), out)
        self._held = []
        if old in self._retired:
            self._retired.remove(old)
        self._retired.append(old)
        if len(self._retired) > _MAX_RETIRED:
            del self._retired[0]
        if packet.ssrc in self._retired:
            self._retired.remove(packet.ssrc)
        self._source_changes += 1
        out.append(RtpSourceChanged(old_ssrc=old, new_ssrc=packet.ssrc))
        s0 = held[0].sequence_number
        ordered = sorted(held, key=lambda p: ((p.sequence_number - s0 + 0x8000) & 0xFFFF))
        self._start(ordered[0], out)
        for p in ordered[1:]:
            delta = (p.sequence_number - self._next) & 0xFFFF
            if delta >= 0x8000:
                delta -= 0x10000
            self._place(p, delta, now, out)
