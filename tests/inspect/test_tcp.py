"""TCP reassembly: order, retransmissions, overlaps, sequence wrap, holes given up, and a Hypothesis property."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from fluxkit.inspect import Segment, TcpReassembler
from fluxkit.inspect._tcp import GAP


def seg(seq: int, payload: bytes = b"", *, syn: bool = False, fin: bool = False) -> Segment:
    return Segment(
        src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", sport=1, dport=2, seq=seq & 0xFFFFFFFF,
        syn=syn, fin=fin, rst=False, payload=payload,
    )  # fmt: skip


def run(r: TcpReassembler, segments: list[Segment]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for s in segments:
        out += r.segment(s)
    return out + r.flush()


def joined(items: list[bytes | None]) -> bytes:
    assert GAP not in items
    return b"".join(x for x in items if x is not None)


def test_in_order_after_syn() -> None:
    r = TcpReassembler()
    assert run(r, [seg(99, syn=True), seg(100, b"abc"), seg(103, b"def"), seg(106, fin=True)]) == [b"abc", b"def"]
    assert r.delivered == 6


def test_out_of_order_waits() -> None:
    r = TcpReassembler()
    assert r.segment(seg(0, syn=True)) == []
    assert r.segment(seg(4, b"def")) == []
    assert r.segment(seg(1, b"abc")) == [b"abc", b"def"]


def test_retransmission_and_overlap() -> None:
    r = TcpReassembler()
    out = run(r, [seg(0, syn=True), seg(1, b"abcd"), seg(1, b"abcd"), seg(3, b"cdefg"), seg(6, b"fgh")])
    assert joined(out) == b"abcdefgh"
    assert r.retransmitted == 4 + 2 + 2


def test_overlapping_pending_segment() -> None:
    r = TcpReassembler()
    out = run(r, [seg(0, syn=True), seg(5, b"efgh"), seg(1, b"abcdef")])
    assert joined(out) == b"abcdefgh"


def test_sequence_wraps() -> None:
    r = TcpReassembler()
    start = 0xFFFFFFFA
    out = run(r, [seg(start, syn=True), seg(start + 1, b"12345"), seg(start + 11, b"xyz"), seg(start + 6, b"67890")])
    assert joined(out) == b"1234567890xyz"


def test_no_syn_starts_at_first_data() -> None:
    r = TcpReassembler()
    assert run(r, [seg(5000, b"mid"), seg(5003, b"stream")]) == [b"mid", b"stream"]


def test_hole_given_up_when_pending_exceeds_limit() -> None:
    r = TcpReassembler(max_pending=10)
    out: list[bytes | None] = []
    out += r.segment(seg(0, syn=True))
    out += r.segment(seg(1, b"aa"))
    out += r.segment(seg(5, b"cccccc"))  # 2 bytes at 3..4 missing
    assert out == [b"aa"]
    out += r.segment(seg(11, b"dddddd"))  # 12 pending > 10: give the hole up
    assert out == [b"aa", GAP, b"cccccc", b"dddddd"]
    assert r.gap_bytes == 2


def test_flush_reports_holes() -> None:
    r = TcpReassembler()
    out = run(r, [seg(0, syn=True), seg(1, b"a"), seg(5, b"e"), seg(9, b"i")])
    assert out == [b"a", GAP, b"e", GAP, b"i"]
    assert r.gap_bytes == 6


def test_empty_segments_ignored() -> None:
    r = TcpReassembler()
    assert run(r, [seg(1), seg(2), seg(3, b"x")]) == [b"x"]


@given(st.binary(min_size=1, max_size=3000), st.randoms(use_true_random=False), st.integers(0, 0xFFFFFFFF))
def test_any_arrival_order_reassembles(data: bytes, rnd: random.Random, isn: int) -> None:
    # Cut the stream at random points, add overlapping retransmissions, shuffle: the bytes come back whole.
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randint(0, 20))))
    bounds = [0, *cuts, len(data)]
    pieces = [(a, data[a:b]) for a, b in itertools.pairwise(bounds)]
    extra = []
    for _ in range(rnd.randint(0, 5)):
        a = rnd.randrange(len(data))
        b = rnd.randint(a + 1, len(data))
        extra.append((a, data[a:b]))
    segments = pieces + extra
    rnd.shuffle(segments)
    r = TcpReassembler()
    out = run(r, [seg(isn, syn=True)] + [seg(isn + 1 + a, p) for a, p in segments])
    assert joined(out) == data
