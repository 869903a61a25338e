"""RTP/RTCP over a byte stream: RFC 4571 framing, RTSP interleaved framing, and an auto-detecting GB28181 deframer.

Strategy: each deframer is a feeder. `feed` joins the bytes left over from the last call with the new ones (at
most one partial frame is kept, so the join copies less than `max_packet_size + 4` bytes), then walks the frames
by their length prefixes, slicing each packet out as `bytes`; no Python loop touches the payload bytes.

* `Rfc4571Deframer`: RFC 4571 §2, a 16-bit big-endian length before each packet (GB28181 RTP over TCP).
* `InterleavedDeframer`: RFC 2326 §10.12 / RFC 7826 §14, `$`, a channel byte, a 16-bit length, the packet.
* `TcpRtpDeframer`: GB28181 devices send either framing on the same port, and some send garbage (a half-written
  frame after a reconnect, stray text). It decides the framing from the first bytes, and when a frame header
  stops looking like RTP/RTCP (version 2, a sane length) it scans forward for one that does, counting the
  skipped bytes. The two strict deframers raise instead.
"""

from __future__ import annotations

import re

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "InterleavedDeframer",
    "InterleavedFrame",
    "Rfc4571Deframer",
    "TcpRtpDeframer",
    "frame_interleaved",
    "frame_rfc4571",
]

#: The largest packet a deframer accepts (the 16-bit length field allows 65535).
DEFAULT_MAX_PACKET_SIZE = 65535

# The smallest plausible RTP/RTCP packet: an RTCP RR without blocks or a BYE with one SSRC (RFC 3550 §6.4.2).
_MIN_PACKET = 8

# Where a frame may start during a resync: an RFC 4571 header followed by an RTP/RTCP version-2 byte, or a `$`
# header followed by one. The lookahead finds overlapping candidates.
_CANDIDATE_4571 = re.compile(rb"(?=[\x00-\xff]{2}[\x80-\xbf])")
_CANDIDATE_DOLLAR = re.compile(rb"\$(?=[\x00-\xff]{3}[\x80-\xbf])")
_CANDIDATE_ANY = re.compile(rb"(?=[\x00-\xff]{2}[\x80-\xbf]|\$[\x00-\xff]{3}[\x80-\xbf])")

_MODE_4571 = "rfc4571"
_MODE_INTERLEAVED = "interleaved"


def frame_rfc4571(packet: bytes) -> bytes:
    """`packet` with its RFC 4571 two-byte length prefix.

    Raises:
        LocalProtocolError: the packet is longer than 65535 bytes.
    """
    if len(packet) > 0xFFFF:
        raise LocalProtocolError(f"an RFC 4571 frame holds at most 65535 bytes, got {len(packet)}")
    return len(packet).to_bytes(2, "big") + packet


@attrs.frozen(kw_only=True, slots=True)
class InterleavedFrame:
    """One RTSP interleaved frame: `channel` (RTP is usually even, RTCP odd) and the packet bytes."""

    channel: int
    data: bytes


def frame_interleaved(channel: int, packet: bytes) -> bytes:
    """`packet` framed as `$ channel length16` (RFC 7826 §14).

    Raises:
        LocalProtocolError: the channel is not 0..255 or the packet is longer than 65535 bytes.
    """
    if not 0 <= channel <= 0xFF:
        raise LocalProtocolError(f"interleaved channel {channel} is not 0..255")
    if len(packet) > 0xFFFF:
        raise LocalProtocolError(f"an interleaved frame holds at most 65535 bytes, got {len(packet)}")
    return bytes((0x24, channel)) + len(packet).to_bytes(2, "big") + packet


def _check_max(max_packet_size: int) -> None:
    if not 1 <= max_packet_size <= 0xFFFF:
        raise LocalProtocolError(f"max_packet_size={max_packet_size} must be 1..65535")


class Rfc4571Deframer:
    """Feeder splitting an RFC 4571 stream into packets.

    Zero-length frames are skipped. A frame longer than `max_packet_size` raises `ParseError` (the stream cannot
    be trusted after that: close it, or use `TcpRtpDeframer`, which resynchronises). The buffer holds at most one
    partial frame.
    """

    def __init__(self, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        _check_max(max_packet_size)
        self._max = max_packet_size
        self._pending = b""
        self._offset = 0  # stream offset of self._pending[0], for error offsets

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add stream bytes; return the packets completed by them.

        Raises:
            ParseError: a frame length exceeds `max_packet_size`; `offset` is its position in the stream.
        """
        buf = self._pending + data if self._pending else bytes(data)
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        limit = self._max
        while n - pos >= 2:
            length = buf[pos] << 8 | buf[pos + 1]
            if length > limit:
                raise ParseError(
                    f"RFC 4571 frame of {length} bytes exceeds max_packet_size={limit}", offset=self._offset + pos
                )
            end = pos + 2 + length
            if end > n:
                break
            if length:
                out.append(buf[pos + 2 : end])
            pos = end
        self._pending = buf[pos:]
        self._offset += pos
        return out

    def flush(self) -> list[bytes]:
        """End of stream: drop any incomplete frame (a connection closed mid-frame) and return nothing."""
        self._offset += len(self._pending)
        self._pending = b""
        return []


class InterleavedDeframer:
    """Feeder splitting an RTSP interleaved stream (`$ channel len16 packet`) into `InterleavedFrame`s.

    Anything but `$` where a frame should start (for example an RTSP message, which the RTSP layer must route
    elsewhere first) or a frame longer than `max_packet_size` raises `ParseError`. The buffer holds at most one
    partial frame.
    """

    def __init__(self, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        _check_max(max_packet_size)
        self._max = max_packet_size
        self._pending = b""
        self._offset = 0

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[InterleavedFrame]:
        """Add stream bytes; return the frames completed by them.

        Raises:
            ParseError: no `$` where a frame starts, or a frame longer than `max_packet_size`.
        """
        buf = self._pending + data if self._pending else bytes(data)
        out: list[InterleavedFrame] = []
        pos = 0
        n = len(buf)
        limit = self._max
        while n - pos >= 4:
            if buf[pos] != 0x24:
                raise ParseError(f"interleaved frame starts with {buf[pos]:#04x}, not '$'", offset=self._offset + pos)
            length = buf[pos + 2] << 8 | buf[pos + 3]
            if length > limit:
                raise ParseError(
                    f"interleaved frame of {length} bytes exceeds max_packet_size={limit}",
                    offset=self._offset + pos + 2,
                )
            end = pos + 4 + length
            if end > n:
                break
            out.append(InterleavedFrame(channel=buf[pos + 1], data=buf[pos + 4 : end]))
            pos = end
        if pos < n and buf[pos] != 0x24:
            raise ParseError(f"interleaved frame starts with {buf[pos]:#04x}, not '$'", offset=self._offset + pos)
        self._pending = buf[pos:]
        self._offset += pos
        return out

    def flush(self) -> list[InterleavedFrame]:
        """End of stream: drop any incomplete frame and return nothing."""
        self._offset += len(self._pending)
        self._pending = b""
        return []


class TcpRtpDeframer:
    """Feeder for RTP/RTCP over TCP in either framing, auto-detected, with resynchronisation after garbage.

    The framing is decided by the first plausible frame: `$` + channel + length + a version-2 byte is
    interleaved; a length + a version-2 byte is RFC 4571 (a plausible frame has version 2 and a length from 8
    to `max_packet_size`). Once decided it is kept. When a frame header is implausible, the deframer scans
    forward for the next plausible header of that framing whose following frame header is plausible too (it
    waits for those bytes if needed), counts the bytes skipped in `skipped_bytes` and the event in `resyncs`.
    RTSP text in an interleaved stream is skipped the same way. Garbage that happens to look like a header
    (about one random byte in four has version 2) can swallow up to `max_packet_size` bytes of real frames
    before the next resync, so set it near the largest packet expected (GB28181: a few KB). Returns the
    packets only; RTP and RTCP sharing the stream are told apart with `is_rtcp`. The buffer holds at most one
    frame plus one header.

    Attributes:
        mode: "rfc4571", "interleaved", or None until decided.
        skipped_bytes: bytes discarded as garbage so far.
        resyncs: times the framing was lost and searched for again.
    """

    def __init__(self, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        _check_max(max_packet_size)
        self._max = max_packet_size
        self._pending = b""
        self._synced = False
        self._started = False  # the first frame of the stream needs no confirmation
        self.mode: str | None = None
        self.skipped_bytes = 0
        self.resyncs = 0

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete or unconfirmed frame."""
        return len(self._pending)

    def _plausible(self, buf: bytes, pos: int, mode: str) -> bool | None:
        """Whether a frame of `mode` can start at `pos`; None if more bytes are needed to tell."""
        n = len(buf)
        if mode == _MODE_4571:
            if n - pos < 3:
                return None
            length = buf[pos] << 8 | buf[pos + 1]
            return buf[pos + 2] >> 6 == 2 and _MIN_PACKET <= length <= self._max
        if n - pos < 5:
            return None
        length = buf[pos + 2] << 8 | buf[pos + 3]
        return buf[pos] == 0x24 and buf[pos + 4] >> 6 == 2 and _MIN_PACKET <= length <= self._max

    def _frame_end(self, buf: bytes, pos: int, mode: str) -> int:
        if mode == _MODE_4571:
            return pos + 2 + (buf[pos] << 8 | buf[pos + 1])
        return pos + 4 + (buf[pos + 2] << 8 | buf[pos + 3])

    def _resync(self, buf: bytes, pos: int) -> int | None:
        """Find the next confirmed frame start at or after `pos`; None means "wait for more bytes at `pos`"."""
        n = len(buf)
        if self.mode is None:
            pattern = _CANDIDATE_ANY
        else:
            pattern = _CANDIDATE_4571 if self.mode == _MODE_4571 else _CANDIDATE_DOLLAR
        for match in pattern.finditer(buf, pos):
            start = match.start()
            # `$` first: it is the stronger signature.
            modes = (_MODE_INTERLEAVED, _MODE_4571) if self.mode is None else (self.mode,)
            for mode in modes:
                ok = self._plausible(buf, start, mode)
                if ok is None:
                    self._skip_to(buf, pos, start)
                    return None
                if not ok:
                    continue
                if not self._started and start == 0:
                    # Stream start with no garbage before it: trust the first frame.
                    self._lock(mode)
                    return 0
                end = self._frame_end(buf, start, mode)
                confirm = self._plausible(buf, end, mode) if end < n else None
                if confirm is None:
                    # Cannot confirm yet: keep the candidate and what follows, wait for more bytes.
                    self._skip_to(buf, pos, start)
                    return None
                if confirm:
                    self._lock(mode)
                    self._skip_to(buf, pos, start)
                    return start
        # No candidate: keep only a tail too short to hold a full candidate header.
        self._skip_to(buf, pos, max(pos, n - 4))
        return None

    def _lock(self, mode: str) -> None:
        self.mode = mode
        self._synced = True
        self._started = True

    def _skip_to(self, buf: bytes, pos: int, start: int) -> None:
        if start > pos:
            self.skipped_bytes += start - pos
            self._started = True  # garbage came first: later candidates need confirmation
        self._pending = buf[start:]

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add stream bytes; return the packets completed by them (never raises on bad input)."""
        buf = self._pending + data if self._pending else bytes(data)
        self._pending = b""
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        limit = self._max
        append = out.append
        while True:
            if not self._synced:
                found = self._resync(buf, pos)
                if found is None:
                    return out  # _resync stored what to keep
                pos = found
            # Synced: walk frames with the plausibility test of `_plausible` inlined (once per packet).
            if self.mode == _MODE_4571:
                while n - pos >= 3:
                    length = buf[pos] << 8 | buf[pos + 1]
                    if buf[pos + 2] >> 6 != 2 or not _MIN_PACKET <= length <= limit:
                        break
                    end = pos + 2 + length
                    if end > n:
                        break
                    append(buf[pos + 2 : end])
                    pos = end
                else:
                    break
            else:
                while n - pos >= 5:
                    length = buf[pos + 2] << 8 | buf[pos + 3]
                    if buf[pos] != 0x24 or buf[pos + 4] >> 6 != 2 or not _MIN_PACKET <= length <= limit:
                        break
                    end = pos + 4 + length
                    if end > n:
                        break
                    append(buf[pos + 4 : end])
                    pos = end
                else:
                    break
            if self._plausible(buf, pos, self.mode or _MODE_4571) is not False:
                break  # a complete-looking header whose frame has not fully arrived
            # Lost the framing: skip at least this header's first byte so the scan moves on.
            self._synced = False
            self._started = True
            self.resyncs += 1
            self.skipped_bytes += 1
            pos += 1
        self._pending = buf[pos:]
        return out

    def flush(self) -> list[bytes]:
        """End of stream: drop what is buffered (an incomplete or unconfirmed frame), counting it as skipped."""
        self.skipped_bytes += len(self._pending)
        self._pending = b""
        return []
