"""RtpSourceTracker against hand-computed RFC 3550 §A.1/§A.3/§A.8 figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.rtp import ReportBlock, RtpPacket, RtpSourceTracker, SenderReport

SSRC = 0x5EC


def pkt(seq: int, ts: int = 0, size: int = 10, ssrc: int = SSRC) -> RtpPacket:
    return RtpPacket(payload_type=0, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=bytes(size))


def test_hand_computed_example() -> None:
    # 8 kHz clock, 20 ms packets (160 ticks). Arrival in ticks = now * 8000.
    t = RtpSourceTracker(clock_rate=8000)
    t.update(pkt(100, 0), 0.000)  # R=0: first packet, J=0
    t.update(pkt(101, 160), 0.020)  # R=160: D = 160 - 160 = 0, J = 0
    t.update(pkt(103, 480), 0.070)  # R=560: D = 400 - 320 = 80, J = 80/16 = 5
    t.update(pkt(102, 320), 0.075)  # R=600: D = 40 - (-160) = 200, J = 5 + 195/16 = 17.1875 (reordered)
    t.update(pkt(103, 480), 0.080)  # duplicate: counted as received, no jitter update
    t.update(pkt(106, 960), 0.120)  # R=960: D = 360 - 640 = -280, J = 17.1875 + 262.8125/16 = 33.61328125
    s = t.statistics()
    assert s.ssrc == SSRC
    assert s.received == 6
    assert s.expected == 7  # 106 - 100 + 1
    assert s.lost == 1  # 104 and 105 missing, one duplicate (RFC 3550 §6.4.1 counts it)
    assert s.duplicates == 1
    assert s.reordered == 1
    assert s.jitter == pytest.approx(33.61328125)
    assert s.jitter_seconds == pytest.approx(33.61328125 / 8000)
    assert s.extended_highest_seq == 106
    assert (s.first_seen, s.last_seen) == (0.0, 0.120)
    assert s.bytes == 60
    assert s.clock_rate == 8000

    t.on_sender_report(SenderReport(ssrc=SSRC, ntp_timestamp=0x1122334455667788), 0.5)
    block = t.report_block(1.0)
    assert block == ReportBlock(
        ssrc=SSRC,
        fraction_lost=256 // 7,  # 1 lost of 7 expected in the interval
        cumulative_lost=1,
        highest_sequence=106,
        jitter=33,
        last_sr=0x33445566,  # middle 32 bits of the NTP timestamp
        delay_since_last_sr=32768,  # 0.5 s in 1/65536 s
    )
    t.update(pkt(107, 1120), 0.140)  # R=1120: D = 160 - 160 = 0, J = 33.61328125 * 15/16
    block = t.report_block(2.0)
    assert block.fraction_lost == 0  # nothing lost since the last report
    assert block.cumulative_lost == 1
    assert block.jitter == int(33.61328125 * 15 / 16)
    assert block.delay_since_last_sr == 1.5 * 65536


def test_sequence_wrap() -> None:
    t = RtpSourceTracker()
    for s in (65534, 65535, 0, 1):
        t.update(pkt(s), 0.0)
    s = t.statistics()
    assert s.extended_highest_seq == (1 << 16) | 1
    assert (s.expected, s.received, s.lost, s.reordered) == (4, 4, 0, 0)
    assert t.report_block(0.0).highest_sequence == 65537
    # A straggler from before the wrap is reordered, not a new cycle.
    t.update(pkt(65533), 0.0)
    assert t.statistics().reordered == 1
    assert t.statistics().extended_highest_seq == 65537


def test_restart_needs_two_sequential_packets() -> None:
    t = RtpSourceTracker()
    for s in (10, 11, 12):
        t.update(pkt(s), 0.0)
    t.update(pkt(40000), 0.0)  # a big jump: held as a possible restart, not counted
    assert t.statistics().received == 3
    t.update(pkt(40001), 0.0)  # it continues: restart (counters reset, §A.1 init_seq)
    s = t.statistics()
    assert (s.resyncs, s.received, s.expected, s.extended_highest_seq) == (1, 1, 1, 40001)


def test_negative_loss_with_duplicates() -> None:
    t = RtpSourceTracker()
    for s in (1, 2, 2, 3):
        t.update(pkt(s), 0.0)
    s = t.statistics()
    assert s.lost == -1
    assert s.lost_clamped == 0
    block = t.report_block(0.0)
    assert block.cumulative_lost == -1
    assert block.fraction_lost == 0
    assert ReportBlock(ssrc=1, cumulative_lost=-1).serialize()[4:8] == bytes.fromhex("00ffffff")


def test_cumulative_loss_clamps_to_24_bits() -> None:
    t = RtpSourceTracker()
    seq = 0
    for _ in range(2900):  # jumps of 2999 (< MAX_DROPOUT): 2998 lost each
        t.update(pkt(seq), 0.0)
        seq += 2999
    assert t.statistics().lost > 0x7FFFFF
    assert t.report_block(0.0).cumulative_lost == 0x7FFFFF


def test_errors() -> None:
    t = RtpSourceTracker()
    with pytest.raises(LocalProtocolError):
        t.statistics()
    with pytest.raises(LocalProtocolError):
        t.report_block(0.0)
    t.update(pkt(1), 0.0)
    assert t.ssrc == SSRC
    with pytest.raises(LocalProtocolError):
        t.update(pkt(2, ssrc=SSRC + 1), 0.0)
    with pytest.raises(LocalProtocolError):
        RtpSourceTracker(clock_rate=0)


def test_no_sr_means_zero_lsr_dlsr() -> None:
    t = RtpSourceTracker()
    t.update(pkt(1), 0.0)
    block = t.report_block(5.0)
    assert (block.last_sr, block.delay_since_last_sr) == (0, 0)


def test_constant_transit_has_zero_jitter_even_across_timestamp_wrap() -> None:
    t = RtpSourceTracker()
    ts0 = 0xFFFFFFFF - 3000 * 5
    for i in range(20):
        t.update(pkt(i, (ts0 + 3000 * i) & 0xFFFFFFFF), i / 30)
    assert t.statistics().jitter == pytest.approx(0.0, abs=1e-6)


@given(st.lists(st.integers(0, 90), min_size=1, max_size=80))  # within MAX_MISORDER of each other
def test_counts_are_consistent(seqs: list[int]) -> None:
    t = RtpSourceTracker()
    for s in seqs:
        t.update(pkt(s), 0.0)
    s = t.statistics()
    assert s.received == len(seqs)
    assert s.expected == max(seqs) - seqs[0] + 1
    assert s.lost == s.expected - s.received
    assert s.duplicates == len(seqs) - len(set(seqs))
    block = t.report_block(1.0)
    assert 0 <= block.fraction_lost <= 255
    assert block.serialize()
