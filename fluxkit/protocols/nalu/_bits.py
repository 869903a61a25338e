"""MSB-first bit reader with Exp-Golomb codes (H.264 9.1 / H.265 9.2), for parameter-set parsing.

Strategy: the whole RBSP becomes one Python int, so a read of n bits is a shift and a mask and a ue(v) prefix
is counted with `int.bit_length` instead of bit by bit. Parameter sets are at most a few hundred bytes and are
parsed once per stream, so this is simple rather than hot. Every read checks the end and raises `ParseError`
with the byte offset, so truncated input can never surface as another exception type.
"""

from __future__ import annotations

from fluxkit.errors import ParseError

__all__ = ["BitReader"]

# A ue(v) value of a legal syntax element fits 32 bits (H.264 9.1: values up to 2**32 - 2).
_MAX_LEADING_ZEROS = 31


class BitReader:
    """Reads big-endian bit fields from a byte string.

    Args:
        data: the RBSP (emulation prevention already removed).
        what: a name for error messages ("H.264 SPS").
    """

    __slots__ = ("_pos", "_size", "_value", "what")

    def __init__(self, data: bytes, what: str = "bitstream") -> None:
        self._value = int.from_bytes(data, "big")
        self._size = len(data) * 8
        self._pos = 0
        self.what = what

    @property
    def bits_left(self) -> int:
        """Bits not yet read."""
        return self._size - self._pos

    def _fail(self, msg: str) -> ParseError:
        return ParseError(f"{self.what}: {msg}", offset=self._pos // 8)

    def u(self, n: int) -> int:
        """Read an n-bit unsigned integer u(n)."""
        end = self._pos + n
        if end > self._size:
            raise self._fail(f"truncated (wanted {n} bits, {self._size - self._pos} left)")
        self._pos = end
        return (self._value >> (self._size - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        """Read a one-bit flag u(1)."""
        return bool(self.u(1))

    def skip(self, n: int) -> None:
        """Skip n bits."""
        if self._pos + n > self._size:
            raise self._fail(f"truncated (skipping {n} bits, {self._size - self._pos} left)")
        self._pos += n

    def ue(self) -> int:
        """Read an unsigned Exp-Golomb code ue(v)."""
        left = self._size - self._pos
        rest = self._value & ((1 << left) - 1)
        if not rest:
            raise self._fail("truncated Exp-Golomb code")
        zeros = left - rest.bit_length()
        if zeros > _MAX_LEADING_ZEROS:
            raise self._fail(f"Exp-Golomb code with {zeros} leading zeros")
        self._pos += zeros
        return self.u(zeros + 1) - 1

    def se(self) -> int:
        """Read a signed Exp-Golomb code se(v) (H.264 9.1.1: 1, -1, 2, -2, ...)."""
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)

    def ue_max(self, limit: int, name: str) -> int:
        """Read ue(v) and check it is at most `limit` (bounds loops driven by the bitstream)."""
        value = self.ue()
        if value > limit:
            raise self._fail(f"{name} = {value} out of range (max {limit})")
        return value
