"""Sequence number and timestamp unwrapping (RFC 3550 §A.1 extended numbers, RFC 1982 serial arithmetic)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fluxkit.protocols.rtp import SequenceUnwrapper, TimestampUnwrapper


def test_sequence_wraps_forward_and_back() -> None:
    u = SequenceUnwrapper()
    assert u.highest is None
    assert [u.unwrap(s) for s in (65534, 65535, 0, 65533, 1, 2)] == [65534, 65535, 65536, 65533, 65537, 65538]
    assert u.highest == 65538


def test_sequence_reordering_across_wrap_and_backwards_start() -> None:
    u = SequenceUnwrapper()
    assert u.unwrap(3) == 3
    assert u.unwrap(65535) == -1  # older than the first: before it on the number line
    assert u.unwrap(4) == 4
    assert u.peek(2) == 2
    assert u.peek(40000) == 40000 - 65536
    u.reset()
    assert u.unwrap(40000) == 40000


def test_timestamp_wrap() -> None:
    u = TimestampUnwrapper()
    assert u.unwrap(0xFFFFF000) == 0xFFFFF000
    assert u.unwrap(0x00000E10) == 0x1_00000E10
    assert u.unwrap(0xFFFFFF00) == 0xFFFFFF00  # B-frame style step back across the wrap
    assert u.unwrap(0x00001C20) == 0x1_00001C20
    assert u.highest == 0x1_00001C20


@given(st.integers(0, 2**40), st.lists(st.integers(-30000, 30000), max_size=50))
def test_sequence_matches_truth(start: int, steps: list[int]) -> None:
    # Any walk whose consecutive values differ by less than half the range unwraps to the true values,
    # as long as no value is more than half the range from the highest seen.
    u = SequenceUnwrapper()
    true = start
    highest = start
    base = u.unwrap(start & 0xFFFF) - start
    for step in steps:
        candidate = true + step
        if abs(candidate - highest) >= 0x8000:
            continue
        true = candidate
        highest = max(highest, true)
        assert u.unwrap(true & 0xFFFF) - base == true
