"""Unwrapping RTP's modular counters: 16-bit sequence numbers to 64-bit, 32-bit timestamps to unbounded ints.

Strategy: keep the highest value unwrapped so far; a new value is placed at the nearest point to it on the number
line (the signed modular difference, RFC 1982 serial number arithmetic), so values slightly older than the
highest (reordering, also across the wrap) land before it and newer ones after it. The reference only moves
forward, so a late packet never drags it back.
"""

from __future__ import annotations

__all__ = ["SequenceUnwrapper", "TimestampUnwrapper"]


class _Unwrapper:
    __slots__ = ("_half", "_highest", "_mask", "_modulus")

    def __init__(self, bits: int) -> None:
        self._modulus = 1 << bits
        self._mask = self._modulus - 1
        self._half = self._modulus >> 1
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest unwrapped value so far (None before the first)."""
        return self._highest

    def unwrap(self, value: int) -> int:
        """The unwrapped value of `value`; updates the reference when it is the newest so far.

        The first value maps to itself, so values older than the first one can come out negative.
        """
        highest = self._highest
        if highest is None:
            self._highest = value & self._mask
            return self._highest
        delta = (value - highest) & self._mask
        if delta >= self._half:
            delta -= self._modulus
        result = highest + delta
        if delta > 0:
            self._highest = result
        return result

    def peek(self, value: int) -> int:
        """What `unwrap(value)` would return, without updating the reference."""
        highest = self._highest
        if highest is None:
            return value & self._mask
        delta = (value - highest) & self._mask
        if delta >= self._half:
            delta -= self._modulus
        return highest + delta

    def reset(self) -> None:
        """Forget the reference: the next value maps to itself again."""
        self._highest = None


class SequenceUnwrapper(_Unwrapper):
    """16-bit RTP sequence numbers to extended (64-bit in practice) sequence numbers (RFC 3550 §A.1).

    Example: 65534, 65535, 0, 65533, 1 unwrap to 65534, 65535, 65536, 65533, 65537.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(16)


class TimestampUnwrapper(_Unwrapper):
    """32-bit RTP timestamps to an unbounded int, for PTS arithmetic across the 2**32 wrap (13.25 h at 90 kHz).

    B-frame reordering makes timestamps go backwards by a few frames; anything less than 2**31 back is taken as
    "earlier", anything less than 2**31 forward as "later".
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(32)
