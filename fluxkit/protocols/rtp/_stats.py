"""Per-source reception statistics and RTCP report blocks (RFC 3550 §6.4.1, §A.1, §A.3, §A.8).

Strategy: `RtpSourceTracker.update` runs on every received packet (before any reordering), so it is kept to a
few integer operations. Sequence validation follows §A.1 (`update_seq`): a jump of up to MAX_DROPOUT ahead is
accepted, a packet up to MAX_MISORDER behind is a reordered or duplicate one, anything else is held as a
possible restart and only accepted (resetting the counters, as `init_seq` does) if the next packet follows it.
Duplicates are recognised with a ring of the last 1024 extended numbers seen. Interarrival jitter is §A.8's
estimator, with the arrival time taken as `now * clock_rate` and the timestamp difference taken modulo 2**32.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError

from ._packet import RtpPacket
from ._rtcp import ReportBlock, SenderReport

__all__ = ["DEFAULT_CLOCK_RATE", "RtpSourceStatistics", "RtpSourceTracker"]

#: Video RTP clock (RFC 6184 §8.2.1, RFC 7798 §7.1, GB28181 PS).
DEFAULT_CLOCK_RATE = 90000
# RFC 3550 §A.1 constants.
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_SEQ_MOD = 1 << 16
_RING = 1024


@attrs.frozen(kw_only=True, slots=True)
class RtpSourceStatistics:
    """Reception statistics of one source (RFC 3550 §6.4.1 and §A.3 definitions).

    Attributes:
        ssrc: the source.
        received: packets received, duplicates included (RFC 3550 §6.4.1).
        expected: extended highest number minus the first, plus one.
        lost: `expected - received`; negative when duplicates outnumber losses (see `lost_clamped`).
        duplicates: packets whose number was already received (within the last 1024 numbers).
        reordered: packets that arrived after one with a higher number (duplicates excluded).
        jitter: interarrival jitter estimate in RTP clock units (§A.8); `jitter_seconds` converts it.
        extended_highest_seq: highest extended sequence number received (cycles << 16 | seq).
        first_seen, last_seen: `now` of the first and last packet.
        bytes: payload bytes received (headers and padding excluded, as the SR octet count).
        resyncs: times the numbering restarted (§A.1), resetting received/expected.
        clock_rate: the RTP clock rate used for jitter.
    """

    ssrc: int
    received: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    jitter: float
    extended_highest_seq: int
    first_seen: float
    last_seen: float
    bytes: int
    resyncs: int
    clock_rate: int

    @property
    def lost_clamped(self) -> int:
        """`lost`, never below zero, for display."""
        return max(0, self.lost)

    @property
    def jitter_seconds(self) -> float:
        """`jitter` in seconds."""
        return self.jitter / self.clock_rate


class RtpSourceTracker:
    """Tracks one source's reception statistics and makes its RTCP report blocks.

    Call `update(packet, now)` for every packet as it arrives, `on_sender_report(sr, now)` when an SR from the
    source arrives, and `report_block(now)` when sending an RR/SR.

    Args:
        clock_rate: the payload's RTP clock rate in Hz (90000 for video).
    """

    def __init__(self, *, clock_rate: int = DEFAULT_CLOCK_RATE) -> None:
        if clock_rate <= 0:
            raise LocalProtocolError(f"clock_rate={clock_rate} must be positive")
        self._clock_rate = clock_rate
        self._ssrc: int | None = None
        self._base = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq = _SEQ_MOD + 1
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._duplicates = 0
        self._reordered = 0
        self._resyncs = 0
        self._bytes = 0
        self._first_seen = 0.0
        self._last_seen = 0.0
        self._jitter = 0.0
        self._last_arrival = 0.0
        self._last_ts = 0
        self._ring = [-1] * _RING
        self._sr_lsr = 0
        self._sr_time: float | None = None

    @property
    def ssrc(self) -> int | None:
        """The tracked source (None before the first packet)."""
        return self._ssrc

    def _init_seq(self, seq: int) -> None:
        # RFC 3550 §A.1 init_seq.
        self._base = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._ring = [-1] * _RING

    def update(self, packet: RtpPacket, now: float) -> None:
        """Account for one received packet (call in arrival order, before reordering).

        Raises:
            LocalProtocolError: the packet belongs to another SSRC (use one tracker per source).
        """
        seq = packet.sequence_number
        if self._ssrc is None:
            self._ssrc = packet.ssrc
            self._init_seq(seq)
            self._first_seen = now
            self._last_arrival = now * self._clock_rate
            self._last_ts = packet.timestamp
        elif packet.ssrc != self._ssrc:
            raise LocalProtocolError(f"packet of SSRC {packet.ssrc:#x} given to the tracker of {self._ssrc:#x}")
        max_seq = self._max_seq
        udelta = (seq - max_seq) & 0xFFFF
        if udelta < _MAX_DROPOUT:
            # In order, with a permissible gap (§A.1).
            if seq < max_seq:
                self._cycles += _SEQ_MOD
            self._max_seq = seq
            ext = self._cycles + seq
            highest = ext
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            # A very large jump: a restart only if the next packet follows this one (§A.1).
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return
            self._resyncs += 1
            self._init_seq(seq)
            ext = highest = seq
        else:
            # Duplicate or reordered (behind the highest number).
            ext = self._cycles + seq - (_SEQ_MOD if seq > max_seq else 0)
            highest = self._cycles + max_seq
        self._received += 1
        self._bytes += len(packet.payload)
        self._last_seen = now
        slot = ext & (_RING - 1)
        if self._ring[slot] == ext:
            self._duplicates += 1
            return
        self._ring[slot] = ext
        if ext < highest:
            self._reordered += 1
        # §A.8: D(i-1, i) = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16.
        arrival = now * self._clock_rate
        dts = (packet.timestamp - self._last_ts) & 0xFFFFFFFF
        if dts >= 0x80000000:
            dts -= 0x100000000
        d = (arrival - self._last_arrival) - dts
        self._jitter += (abs(d) - self._jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = packet.timestamp

    def on_sender_report(self, sr: SenderReport, now: float) -> None:
        """Remember the source's last SR for LSR/DLSR (RFC 3550 §6.4.1: middle 32 bits of its NTP time)."""
        self._sr_lsr = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
        self._sr_time = now

    def statistics(self) -> RtpSourceStatistics:
        """The statistics so far.

        Raises:
            LocalProtocolError: no packet was received yet.
        """
        if self._ssrc is None:
            raise LocalProtocolError("no packet received yet")
        highest = self._cycles + self._max_seq
        expected = highest - self._base + 1
        return RtpSourceStatistics(
            ssrc=self._ssrc,
            received=self._received,
            expected=expected,
            lost=expected - self._received,
            duplicates=self._duplicates,
            reordered=self._reordered,
            jitter=self._jitter,
            extended_highest_seq=highest,
            first_seen=self._first_seen,
            last_seen=self._last_seen,
            bytes=self._bytes,
            resyncs=self._resyncs,
            clock_rate=self._clock_rate,
        )

    def report_block(self, now: float) -> ReportBlock:
        """A reception report block for this source, as of `now` (RFC 3550 §6.4.1, §A.3).

        Fraction lost covers the interval since the previous call; the cumulative count is clamped to 24 signed
        bits.

        Raises:
            LocalProtocolError: no packet was received yet.
        """
        stats = self.statistics()
        expected_interval = stats.expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = stats.expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        cumulative = max(-0x800000, min(0x7FFFFF, stats.lost))
        dlsr = 0
        if self._sr_time is not None:
            dlsr = max(0, min(0xFFFFFFFF, int((now - self._sr_time) * 65536)))
        return ReportBlock(
            ssrc=stats.ssrc,
            fraction_lost=fraction,
            cumulative_lost=cumulative,
            highest_sequence=stats.extended_highest_seq & 0xFFFFFFFF,
            jitter=min(0xFFFFFFFF, int(self._jitter)),
            last_sr=self._sr_lsr,
            delay_since_last_sr=dlsr,
        )
