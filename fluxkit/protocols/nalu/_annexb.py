"""Streaming Annex-B splitting and emulation-prevention (RBSP) conversion.

Strategy: `AnnexBSplitter` appends each chunk to one `bytearray` and finds start codes with `bytearray.find`,
resuming two bytes before the end of what it had already searched (a start code may straddle two chunks), so
every byte is searched once. Deleting the consumed front of a `bytearray` is O(1) in CPython, so a NAL unit
arriving in many small chunks costs no quadratic copying. The escape/unescape functions are single
`bytes.replace` / `re.sub` calls, never Python loops over bytes.
"""

from __future__ import annotations

import re

from fluxkit.errors import RemoteProtocolError

__all__ = ["DEFAULT_MAX_NAL_SIZE", "AnnexBSplitter", "escape_rbsp", "unescape_rbsp"]

#: Largest NAL unit `AnnexBSplitter` buffers (an 8K intra slice at high quality stays well below this).
DEFAULT_MAX_NAL_SIZE = 16 * 1024 * 1024

_START = b"\x00\x00\x01"
_ZERO = b"\x00"
_EPB = b"\x00\x00\x03"
# H.264 7.4.1 / H.265 7.4.2: an emulation_prevention_three_byte follows every 00 00 that precedes a byte <= 03,
# and is appended when the RBSP ends in 00 00 (only possible with cabac_zero_words). `\Z`, not `$`: bytes `$`
# would also match before a final newline byte.
_NEEDS_EPB = re.compile(rb"\x00\x00(?=[\x00-\x03]|\Z)")


def unescape_rbsp(data: bytes) -> bytes:
    """Remove emulation-prevention bytes: every `00 00 03` becomes `00 00` (H.264 7.3.1, H.265 7.3.1.1).

    `bytes.replace` scans left to right without overlap, which is exactly the spec's rule: the byte after an
    emulation-prevention byte starts a fresh zero count.
    """
    data = bytes(data)
    if _EPB not in data:
        return data
    return data.replace(_EPB, b"\x00\x00")


def escape_rbsp(data: bytes) -> bytes:
    """Insert emulation-prevention bytes into an RBSP so it can be framed as a NAL unit payload (inverse of
    `unescape_rbsp`)."""
    return _NEEDS_EPB.sub(_EPB, bytes(data))


class AnnexBSplitter:
    """Incremental Annex-B splitter: `feed` chunks of any size, get each NAL unit once it is complete.

    A NAL unit is complete when the next start code has been seen, so the last one comes out of `flush()`.
    NAL units are returned without start codes or the framing zero bytes before a start code, exactly as
    `split_annexb` returns them for the whole stream. Bytes before the first start code are skipped and counted
    in `skipped_bytes`. After `flush()` the splitter is ready for a new stream.

    Args:
        max_nal_size: the largest NAL unit buffered; a longer one raises `RemoteProtocolError`, after which the
            splitter drops what it held and resynchronises on the next start code.
    """

    __slots__ = ("_buf", "_nal_start", "_pending_zeros", "_search_from", "max_nal_size", "skipped_bytes")

    def __init__(self, max_nal_size: int = DEFAULT_MAX_NAL_SIZE) -> None:
        self.max_nal_size = max_nal_size
        #: Bytes dropped because they came before the first start code (or after an over-long NAL unit).
        self.skipped_bytes = 0
        self._buf = bytearray()
        # Offset of the current NAL unit's first byte in _buf, or -1 before the first start code.
        self._nal_start = -1
        self._search_from = 0
        # Zero bytes skipped before any start code: leading zeros if a start code follows, garbage otherwise.
        self._pending_zeros = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add a chunk; return the NAL units it completed (possibly none).

        Raises:
            RemoteProtocolError: a NAL unit grew past `max_nal_size`.
        """
        buf = self._buf
        buf += data
        out: list[bytes] = []
        start = self._nal_start
        if start < 0:
            i = buf.find(_START)
            if i < 0:
                # Keep two bytes: they may begin a start code split across chunks.
                self._skip(len(buf) - 2)
                return out
            self._skip(i)
            if self._pending_zeros:
                # Zero bytes right before the first start code are leading_zero_8bits (Annex B.1), not garbage.
                self._pending_zeros = 0
            start = 3
            self._search_from = 3
        find = buf.find
        j = find(_START, self._search_from)
        if j >= 0:
            with memoryview(buf) as view:
                while j >= 0:
                    nal = bytes(view[start:j]).rstrip(_ZERO)
                    if len(nal) > self.max_nal_size:
                        break
                    if nal:
                        out.append(nal)
                    start = j + 3
                    j = find(_START, start)
            if j >= 0:
                self._overflow()
        # Drop what was consumed (O(1) at a bytearray's front) and remember where searching resumes.
        del buf[:start]
        self._nal_start = 0
        self._search_from = max(len(buf) - 2, 0)
        if len(buf) > self.max_nal_size + 3:
            self._overflow()
        return out

    def _skip(self, n: int) -> None:
        """Drop the first `n` bytes (before any start code) and count the ones that are not leading zeros."""
        if n <= 0:
            return
        buf = self._buf
        dropped = bytes(buf[:n])
        del buf[:n]
        stripped = dropped.rstrip(_ZERO)
        if stripped:
            # Zeros held back earlier were followed by garbage after all.
            self.skipped_bytes += self._pending_zeros + len(stripped)
            self._pending_zeros = len(dropped) - len(stripped)
        else:
            self._pending_zeros += n

    def flush(self) -> list[bytes]:
        """End of stream: return the last NAL unit (if any) and reset for a new stream."""
        out: list[bytes] = []
        if self._nal_start >= 0:
            nal = bytes(self._buf[self._nal_start :]).rstrip(_ZERO)
            if nal:
                out.append(nal)
        else:
            self.skipped_bytes += self._pending_zeros + len(self._buf)
        self._reset()
        return out

    def _reset(self) -> None:
        self._buf.clear()
        self._nal_start = -1
        self._search_from = 0
        self._pending_zeros = 0

    def _overflow(self) -> None:
        size = len(self._buf)
        self.skipped_bytes += size
        self._reset()
        raise RemoteProtocolError(f"NAL unit larger than max_nal_size={self.max_nal_size} bytes ({size} buffered)")
