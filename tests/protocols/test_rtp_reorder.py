"""ReorderBuffer scenarios, driven only by `now`; plus a Hypothesis model of permutation/duplication/loss.

Output is rendered compactly: an emitted packet as its 16-bit sequence number, events as tuples.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.rtp import (
    ReorderBuffer,
    RtpDiscontinuity,
    RtpGap,
    RtpPacket,
    RtpSequenceReset,
    RtpSourceChanged,
)

SSRC = 0xAA


def pkt(seq: int, ssrc: int = SSRC) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=seq * 3000, ssrc=ssrc)


def render(items: list[RtpPacket | RtpDiscontinuity]) -> list[object]:
    out: list[object] = []
    for item in items:
        if isinstance(item, RtpPacket):
            out.append(item.sequence_number if item.ssrc == SSRC else (item.ssrc, item.sequence_number))
        elif isinstance(item, RtpGap):
            out.append(("gap", item.first_missing, item.count))
        elif isinstance(item, RtpSourceChanged):
            out.append(("ssrc", item.old_ssrc, item.new_ssrc))
        else:
            assert isinstance(item, RtpSequenceReset)
            out.append(("reset", item.next_extended_seq))
    return out


def feed(rb: ReorderBuffer, seqs: list[int], now: float = 0.0, ssrc: int = SSRC) -> list[object]:
    out: list[object] = []
    for s in seqs:
        out += render(rb.push(pkt(s, ssrc), now))
    return out


def test_in_order() -> None:
    rb = ReorderBuffer()
    assert rb.last_extended_seq is None
    assert rb.get_timer() is None
    assert feed(rb, [10, 11, 12]) == [10, 11, 12]
    assert rb.last_extended_seq == 12
    assert rb.ssrc == SSRC
    assert rb.statistics().emitted == 3


def test_swapped() -> None:
    rb = ReorderBuffer()
    assert feed(rb, [1, 3]) == [1]
    assert rb.get_timer() == pytest.approx(0.2)
    assert feed(rb, [2, 4]) == [2, 3, 4]
    assert rb.get_timer() is None
    assert rb.statistics().lost == 0


def test_duplicates_and_late() -> None:
    rb = ReorderBuffer()
    assert feed(rb, [1, 3, 3, 2, 2, 1]) == [1, 2, 3]
    stats = rb.statistics()
    assert stats.duplicates == 1  # the second 3, while buffered
    assert stats.late == 2  # 2 and 1 again, after being emitted


def test_gap_declared_after_max_delay() -> None:
    rb = ReorderBuffer(max_delay=0.5)
    assert feed(rb, [1], now=10.0) == [1]
    assert feed(rb, [3], now=10.1) == []
    assert feed(rb, [4], now=10.3) == []
    assert rb.get_timer() == pytest.approx(10.6)
    assert render(rb.handle_timer(10.59)) == []
    assert render(rb.handle_timer(10.6)) == [("gap", 2, 1), 3, 4]
    assert rb.get_timer() is None
    # The missing packet arrives too late.
    assert feed(rb, [2], now=11.0) == []
    stats = rb.statistics()
    assert (stats.gaps, stats.lost, stats.late) == (1, 1, 1)


def test_each_hole_gets_its_own_deadline() -> None:
    rb = ReorderBuffer(max_delay=1.0)
    feed(rb, [1], now=0.0)
    assert feed(rb, [3], now=0.0) == []
    assert feed(rb, [6], now=0.5) == []
    assert render(rb.handle_timer(1.0)) == [("gap", 2, 1), 3]
    assert rb.get_timer() == pytest.approx(1.5)
    assert feed(rb, [4], now=1.2) == [4]
    # The deadline passing is noticed by push too, not only by handle_timer.
    assert feed(rb, [8], now=1.6) == [("gap", 5, 1), 6]
    assert render(rb.flush()) == [("gap", 7, 1), 8]


def test_overflow_forces_gap() -> None:
    rb = ReorderBuffer(max_packets=3)
    feed(rb, [0])
    assert feed(rb, [2, 3]) == []
    assert feed(rb, [5]) == [("gap", 1, 1), 2, 3]
    assert rb.statistics().forced == 1
    assert rb.statistics().buffered == 1


def test_wrap_at_65535() -> None:
    rb = ReorderBuffer()
    assert feed(rb, [65533, 65535, 0, 65534, 1]) == [65533, 65534, 65535, 0, 1]
    assert rb.last_extended_seq == 65537
    assert feed(rb, [3]) == []
    assert render(rb.flush()) == [("gap", 65538, 1), 3]
    assert rb.last_extended_seq == 65539


def test_huge_forward_jump_does_not_wait() -> None:
    rb = ReorderBuffer(max_misorder=100)
    feed(rb, [1, 3])
    assert feed(rb, [5000]) == [("gap", 2, 1), 3, ("gap", 4, 4996), 5000]
    assert feed(rb, [5001]) == [5001]


def test_restart_with_lower_numbers_needs_confirmation() -> None:
    rb = ReorderBuffer(max_misorder=100)
    feed(rb, [30000, 30001])
    # A lone stray far behind is dropped...
    assert feed(rb, [10]) == []
    assert feed(rb, [30002]) == [30002]
    assert rb.statistics().stale == 1
    # ...but a sender restarting its numbering is followed after two packets.
    assert feed(rb, [20, 21, 22]) == [("reset", 30003 + (20 - 30003) % 65536), 20, 21, 22]
    assert rb.statistics().resets == 1
    assert rb.last_extended_seq == 30003 + (20 - 30003) % 65536 + 2


def test_ssrc_change() -> None:
    rb = ReorderBuffer()
    feed(rb, [1, 3])
    assert feed(rb, [500], ssrc=0xBB) == []  # probation
    assert feed(rb, [501], ssrc=0xBB) == [("gap", 2, 1), 3, ("ssrc", SSRC, 0xBB), (0xBB, 500), (0xBB, 501)]
    assert rb.ssrc == 0xBB
    assert rb.last_extended_seq == 501
    assert rb.statistics().source_changes == 1


def test_ssrc_change_reordered_probation_packets() -> None:
    rb = ReorderBuffer()
    feed(rb, [1])
    assert feed(rb, [501, 500], ssrc=0xBB) == [("ssrc", SSRC, 0xBB), (0xBB, 500), (0xBB, 501)]


def test_stale_old_ssrc_does_not_wreck_new_one() -> None:
    rb = ReorderBuffer()
    feed(rb, [1, 2])
    feed(rb, [900, 901], ssrc=0xBB)
    # Stale packets from the old source arrive mixed in: dropped, the new stream goes on untouched.
    out = feed(rb, [3], ssrc=SSRC) + feed(rb, [902], ssrc=0xBB) + feed(rb, [4, 5], ssrc=SSRC)
    out += feed(rb, [903, 904], ssrc=0xBB)
    assert out == [(0xBB, 902), (0xBB, 903), (0xBB, 904)]
    assert rb.ssrc == 0xBB
    assert rb.statistics().stale == 3


def test_retired_ssrc_needs_longer_probation() -> None:
    rb = ReorderBuffer()
    feed(rb, [1, 2])
    feed(rb, [900, 901], ssrc=0xBB)
    # A burst of delayed old packets longer than the normal probation does not flip back.
    assert feed(rb, [3, 4, 5, 6, 7]) == []
    assert rb.ssrc == 0xBB
    # A real, sustained return does.
    out = feed(rb, list(range(8, 8 + 16)))
    assert out[0] == ("ssrc", 0xBB, SSRC)
    assert rb.ssrc == SSRC


def test_flush_drops_probation_and_keeps_numbering() -> None:
    rb = ReorderBuffer()
    feed(rb, [1, 3])
    feed(rb, [77], ssrc=0xBB)
    assert render(rb.flush()) == [("gap", 2, 1), 3]
    assert rb.statistics().stale == 1
    assert feed(rb, [4]) == [4]


def test_push_many_matches_push() -> None:
    seqs = [5, 6, 8, 7, 7, 9, 12, 10, 11, 2]
    rb1, rb2 = ReorderBuffer(), ReorderBuffer()
    one = feed(rb1, seqs)
    many = render(rb2.push_many([pkt(s) for s in seqs], 0.0))
    assert one == many == [5, 6, 7, 8, 9, 10, 11, 12]
    assert rb1.statistics() == rb2.statistics()


def test_zero_max_delay_never_waits() -> None:
    rb = ReorderBuffer(max_delay=0.0)
    feed(rb, [1])
    assert feed(rb, [3], now=1.0) == []
    assert render(rb.handle_timer(1.0)) == [("gap", 2, 1), 3]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_delay": -1}, {"max_packets": 0}, {"max_misorder": 0}, {"max_misorder": 40000}, {"ssrc_probation": 0}],
)
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        ReorderBuffer(**kwargs)  # type: ignore[arg-type]


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, list[int], set[int]]:
    """A run of sequence numbers (possibly across the wrap), some dropped, the rest shuffled locally and some
    duplicated. The first and the last packets always arrive (nothing can reveal a loss at either end), and the
    first arrives first (the buffer starts from the first packet it sees)."""
    start = draw(st.integers(0, 0xFFFF))
    n = draw(st.integers(2, 60))
    seqs = list(range(start, start + n))
    dropped = {s for s in seqs[1:-1] if draw(st.integers(0, 9)) == 0}
    kept = [s for s in seqs if s not in dropped]
    order = kept[:1]
    rest = kept[1:]
    # Local shuffle: each packet may move back by up to 5 places.
    keys = [i + draw(st.integers(0, 5)) for i in range(len(rest))]
    order += [s for _, s in sorted(zip(keys, rest, strict=True), key=lambda t: t[0])]
    dups = [s for s in order[1:] if draw(st.integers(0, 9)) == 0]
    for s in dups:
        order.insert(draw(st.integers(order.index(s) + 1, len(order))), s)
    return start, order, dropped


@given(arrivals())
def test_permutation_duplication_loss_model(case: tuple[int, list[int], set[int]]) -> None:
    start, order, dropped = case
    rb = ReorderBuffer(max_delay=1.0, max_packets=1000)
    out: list[RtpPacket | RtpDiscontinuity] = []
    for s in order:  # all within the delay window: one instant
        out += rb.push(pkt(s), 0.0)
    out += rb.flush()
    packets = [x.sequence_number for x in out if isinstance(x, RtpPacket)]
    kept = [s & 0xFFFF for s in range(start, start + len(set(order)) + len(dropped)) if s not in dropped]
    assert packets == kept
    gaps = [x for x in out if isinstance(x, RtpGap)]
    covered = {(g.first_missing + i) for g in gaps for i in range(g.count)}
    assert covered == dropped
    # Extended numbers: gaps sit exactly where the missing numbers were.
    ext = start
    for item in out:
        if isinstance(item, RtpGap):
            assert item.first_missing == ext
            ext += item.count
        else:
            assert isinstance(item, RtpPacket)
            assert item.sequence_number == ext & 0xFFFF
            ext += 1
    assert rb.last_extended_seq == ext - 1


def test_handle_timer_at_exactly_get_timer_releases() -> None:
    # arrival + max_delay - max_delay can round below arrival (it does for these two values): comparing against
    # `now - max_delay` would then release nothing at the very deadline get_timer() gave, and a driver waiting
    # on that deadline would spin. The buffer must compare with the deadline it reported.
    from fluxkit.protocols.rtp import ReorderBuffer, RtpGap, RtpPacket

    def pkt(seq: int) -> RtpPacket:
        return RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq, ssrc=7)

    arrival, max_delay = 255.99500811216424, 0.05
    assert (arrival + max_delay) - max_delay < arrival
    buf = ReorderBuffer(max_delay=max_delay)
    assert buf.push(pkt(1), arrival - 0.01) == [pkt(1)]
    assert buf.push(pkt(3), arrival) == []
    deadline = buf.get_timer()
    assert deadline is not None
    released = buf.handle_timer(deadline)
    assert [type(x) for x in released] == [RtpGap, RtpPacket]
    assert buf.get_timer() is None
