"""RTCP packets (RFC 3550 §6.4-§6.7), feedback messages (RFC 4585 §6, RFC 5104 §4.3.1) and rtcp-mux demux.

Strategy: `parse_rtcp` walks a compound packet by the common header's length field (RFC 3550 §6.4.1, 32-bit
words minus one), checks each length against what is left, strips padding, and hands the body to a parser chosen
by packet type (and FMT for feedback). Fixed fields come from `struct.unpack_from`; only SDES, whose items are
variable-length, is walked item by item (RTCP is a few packets per second, never a hot path). Unknown packet
types and feedback formats are kept raw as `UnknownRtcp`, so a compound packet re-serializes byte for byte
(padding excepted: it is dropped on parse, and `serialize` writes it only where a body is not whole 32-bit
words, which keeps `parse_rtcp(serialize_rtcp(x)) == x` for any field values).

Every record validates its fields in `serialize()` (raising `LocalProtocolError`), not on construction.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_RTPFB",
    "RTCP_SDES",
    "RTCP_SR",
    "SDES_CNAME",
    "SDES_EMAIL",
    "SDES_LOC",
    "SDES_NAME",
    "SDES_NOTE",
    "SDES_PHONE",
    "SDES_PRIV",
    "SDES_TOOL",
    "App",
    "Bye",
    "FirEntry",
    "FullIntraRequest",
    "GenericNack",
    "PictureLossIndication",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "Sdes",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "UnknownRtcp",
    "is_rtcp",
    "parse_rtcp",
    "serialize_rtcp",
]

# Packet types (RFC 3550 §12.1, RFC 4585 §6.1).
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
RTCP_RTPFB = 205
RTCP_PSFB = 206

# SDES item types (RFC 3550 §6.5).
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8

_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")
_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_NACK_ITEM = struct.Struct("!HH")
_FIR_ITEM = struct.Struct("!IB3x")

_U32_MAX = 0xFFFFFFFF


def _check_u(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise LocalProtocolError(f"RTCP {name}={value} does not fit in {bits} bits")


def _packet(count: int, packet_type: int, body: bytes) -> bytes:
    # RFC 3550 §6.4.1: length is the packet size in 32-bit words minus one, header included.
    _check_u("count", count, 5)
    b0 = 0x80 | count
    if len(body) % 4:
        # A body that is not whole words (APP data, an extension) gets RFC 3550 §6.4.1 padding: zeros, then
        # the count, with the P bit set, which parse_rtcp strips again.
        pad = 4 - len(body) % 4
        body += bytes(pad - 1) + bytes((pad,))
        b0 |= 0x20
    words = (len(body) + 4) // 4 - 1
    if words > 0xFFFF:
        raise LocalProtocolError(f"RTCP packet of {len(body) + 4} bytes is longer than 262144")
    return _HEADER.pack(b0, packet_type, words) + body


@attrs.frozen(kw_only=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 §6.4.1).

    `fraction_lost` is the 8-bit fixed-point fraction (lost/expected * 256); `cumulative_lost` is the signed
    24-bit count; `last_sr` (LSR) is the middle 32 bits of the last SR's NTP timestamp; `delay_since_last_sr`
    (DLSR) is in units of 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    last_sr: int = 0
    delay_since_last_sr: int = 0

    def serialize(self) -> bytes:
        """The 24-byte block. Raises LocalProtocolError for an out-of-range field."""
        _check_u("ssrc", self.ssrc, 32)
        _check_u("fraction_lost", self.fraction_lost, 8)
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise LocalProtocolError(f"RTCP cumulative_lost={self.cumulative_lost} does not fit in 24 signed bits")
        for name in ("highest_sequence", "jitter", "last_sr", "delay_since_last_sr"):
            _check_u(name, getattr(self, name), 32)
        return _BLOCK.pack(
            self.ssrc,
            (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _blocks(blocks: Sequence[ReportBlock]) -> bytes:
    if len(blocks) > 31:
        raise LocalProtocolError("an RTCP report holds at most 31 report blocks")
    return b"".join(b.serialize() for b in blocks)


@attrs.frozen(kw_only=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1). `ntp_timestamp` is the 64-bit NTP time; `extension` is profile-specific data."""

    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        """The SR on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("ssrc", self.ssrc, 32)
        _check_u("ntp_timestamp", self.ntp_timestamp, 64)
        for name in ("rtp_timestamp", "packet_count", "octet_count"):
            _check_u(name, getattr(self, name), 32)
        body = (
            _SR_INFO.pack(self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count)
            + _blocks(self.reports)
            + self.extension
        )
        return _packet(len(self.reports), RTCP_SR, body)


@attrs.frozen(kw_only=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        """The RR on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("ssrc", self.ssrc, 32)
        return _packet(len(self.reports), RTCP_RR, _U32.pack(self.ssrc) + _blocks(self.reports) + self.extension)


@attrs.frozen(kw_only=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): `type` is SDES_CNAME etc., `value` the raw bytes (UTF-8 by the RFC)."""

    type: int
    value: bytes


@attrs.frozen(kw_only=True, slots=True)
class SdesChunk:
    """The items describing one source (RFC 3550 §6.5)."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def get(self, item_type: int) -> bytes | None:
        """The value of the first item of `item_type` (e.g. SDES_CNAME), or None."""
        for item in self.items:
            if item.type == item_type:
                return item.value
        return None

    def _serialize(self) -> bytes:
        _check_u("ssrc", self.ssrc, 32)
        parts = [_U32.pack(self.ssrc)]
        size = 4
        for item in self.items:
            if not 1 <= item.type <= 255:
                raise LocalProtocolError(f"SDES item type {item.type} must be 1..255 (0 ends the list)")
            if len(item.value) > 255:
                raise LocalProtocolError("an SDES item value holds at most 255 bytes")
            parts.append(bytes((item.type, len(item.value))) + item.value)
            size += 2 + len(item.value)
        # RFC 3550 §6.5: one or more null octets end the list and pad the chunk to a 32-bit boundary.
        parts.append(bytes(4 - size % 4))
        return b"".join(parts)


@attrs.frozen(kw_only=True, slots=True)
class Sdes:
    """SDES (RFC 3550 §6.5): one chunk per source."""

    chunks: tuple[SdesChunk, ...] = ()

    def serialize(self) -> bytes:
        """The SDES packet on the wire. Raises LocalProtocolError for an out-of-range field."""
        if len(self.chunks) > 31:
            raise LocalProtocolError("an SDES packet holds at most 31 chunks")
        return _packet(len(self.chunks), RTCP_SDES, b"".join(c._serialize() for c in self.chunks))


@attrs.frozen(kw_only=True, slots=True)
class Bye:
    """BYE (RFC 3550 §6.6) with an optional reason (raw bytes, UTF-8 by the RFC)."""

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None

    def serialize(self) -> bytes:
        """The BYE on the wire. Raises LocalProtocolError for an out-of-range field."""
        if len(self.ssrcs) > 31:
            raise LocalProtocolError("a BYE packet holds at most 31 SSRCs")
        for ssrc in self.ssrcs:
            _check_u("ssrc", ssrc, 32)
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise LocalProtocolError("a BYE reason holds at most 255 bytes")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _packet(len(self.ssrcs), RTCP_BYE, body)


@attrs.frozen(kw_only=True, slots=True)
class App:
    """APP (RFC 3550 §6.7): `subtype` (5 bits), a 4-byte ASCII `name`, application `data` (padded if need be)."""

    ssrc: int
    name: bytes
    subtype: int = 0
    data: bytes = b""

    def serialize(self) -> bytes:
        """The APP packet on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("ssrc", self.ssrc, 32)
        if len(self.name) != 4:
            raise LocalProtocolError("an APP name is exactly 4 bytes")
        return _packet(self.subtype, RTCP_APP, _U32.pack(self.ssrc) + self.name + self.data)


@attrs.frozen(kw_only=True, slots=True)
class GenericNack:
    """Generic NACK (RFC 4585 §6.2.1, RTPFB FMT 1).

    `items` are the wire's (PID, BLP) pairs: PID is a lost sequence number, bit i of BLP marks PID + i + 1 lost
    too. Build one from a list of lost sequence numbers with `GenericNack.from_lost`, and read them back with
    `lost_sequence_numbers()`.
    """

    FMT = 1

    sender_ssrc: int
    media_ssrc: int
    items: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_lost(cls, *, sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> GenericNack:
        """Pack lost 16-bit sequence numbers into as few (PID, BLP) pairs as their order allows.

        Numbers are sorted relative to the first one given (so a list crossing the 65535 -> 0 wrap stays in
        order when it starts before the wrap) and duplicates removed.
        """
        seqs = [s & 0xFFFF for s in lost]
        if not seqs:
            return cls(sender_ssrc=sender_ssrc, media_ssrc=media_ssrc)
        base = seqs[0]
        items: list[tuple[int, int]] = []
        pid = -1
        blp = 0
        for seq in sorted(set(seqs), key=lambda s: (s - base) & 0xFFFF):
            offset = (seq - pid) & 0xFFFF
            if pid >= 0 and 1 <= offset <= 16:
                blp |= 1 << (offset - 1)
                continue
            if pid >= 0:
                items.append((pid, blp))
            pid, blp = seq, 0
        items.append((pid, blp))
        return cls(sender_ssrc=sender_ssrc, media_ssrc=media_ssrc, items=tuple(items))

    def lost_sequence_numbers(self) -> list[int]:
        """Every sequence number the pairs mark as lost, in wire order."""
        out: list[int] = []
        for pid, blp in self.items:
            out.append(pid)
            out.extend((pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1)
        return out

    def serialize(self) -> bytes:
        """The NACK on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("sender_ssrc", self.sender_ssrc, 32)
        _check_u("media_ssrc", self.media_ssrc, 32)
        for pid, blp in self.items:
            _check_u("NACK PID", pid, 16)
            _check_u("NACK BLP", blp, 16)
        fci = b"".join(_NACK_ITEM.pack(pid, blp) for pid, blp in self.items)
        return _packet(self.FMT, RTCP_RTPFB, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + fci)


@attrs.frozen(kw_only=True, slots=True)
class PictureLossIndication:
    """PLI (RFC 4585 §6.3.1, PSFB FMT 1): asks the sender of `media_ssrc` for a keyframe."""

    FMT = 1

    sender_ssrc: int
    media_ssrc: int

    def serialize(self) -> bytes:
        """The PLI on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("sender_ssrc", self.sender_ssrc, 32)
        _check_u("media_ssrc", self.media_ssrc, 32)
        return _packet(self.FMT, RTCP_PSFB, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc))


@attrs.frozen(kw_only=True, slots=True)
class FirEntry:
    """One FIR FCI entry (RFC 5104 §4.3.1.1): the target `ssrc` and the 8-bit command `sequence_number`."""

    ssrc: int
    sequence_number: int


@attrs.frozen(kw_only=True, slots=True)
class FullIntraRequest:
    """FIR (RFC 5104 §4.3.1, PSFB FMT 4). `media_ssrc` SHALL be 0 (the targets are in `entries`)."""

    FMT = 4

    sender_ssrc: int
    entries: tuple[FirEntry, ...] = ()
    media_ssrc: int = 0

    def serialize(self) -> bytes:
        """The FIR on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("sender_ssrc", self.sender_ssrc, 32)
        _check_u("media_ssrc", self.media_ssrc, 32)
        for e in self.entries:
            _check_u("FIR ssrc", e.ssrc, 32)
            _check_u("FIR sequence_number", e.sequence_number, 8)
        fci = b"".join(_FIR_ITEM.pack(e.ssrc, e.sequence_number) for e in self.entries)
        return _packet(self.FMT, RTCP_PSFB, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + fci)


@attrs.frozen(kw_only=True, slots=True)
class UnknownRtcp:
    """Any other packet type, or a feedback FMT not modelled here, kept raw: `count` is the 5-bit RC/FMT field
    and `body` everything after the 4-byte common header, padding stripped."""

    packet_type: int
    count: int = 0
    body: bytes = b""

    def serialize(self) -> bytes:
        """The packet on the wire. Raises LocalProtocolError for an out-of-range field."""
        _check_u("packet_type", self.packet_type, 8)
        return _packet(self.count, self.packet_type, self.body)


RtcpPacket: TypeAlias = (
    SenderReport
    | ReceiverReport
    | Sdes
    | Bye
    | App
    | GenericNack
    | PictureLossIndication
    | FullIntraRequest
    | UnknownRtcp
)


def serialize_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """A compound RTCP packet: the packets' wire forms back to back (RFC 3550 §6.1).

    Raises:
        LocalProtocolError: a packet has an out-of-range field.
    """
    return b"".join(p.serialize() for p in packets)


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP: version 2 and a second byte in 192..223 (RFC 5761 §4).

    RTP payload types 64..95 collide with that range, which is why RFC 5761 forbids them with rtcp-mux.
    """
    return len(data) >= 2 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


def _report_blocks(data: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, pos + 24 * i)
        cumulative = lost_word & 0xFFFFFF
        blocks.append(
            ReportBlock(
                ssrc=ssrc,
                fraction_lost=lost_word >> 24,
                cumulative_lost=cumulative - 0x1000000 if cumulative & 0x800000 else cumulative,
                highest_sequence=highest,
                jitter=jitter,
                last_sr=lsr,
                delay_since_last_sr=dlsr,
            )
        )
    return tuple(blocks)


def _parse_sdes(data: bytes, start: int, end: int, count: int) -> Sdes:
    chunks = []
    pos = start
    for _ in range(count):
        if pos + 4 > end:
            raise ParseError("SDES chunk runs past the packet", offset=pos)
        (ssrc,) = _U32.unpack_from(data, pos)
        pos += 4
        items = []
        while True:
            if pos >= end:
                raise ParseError("SDES item list is not terminated", offset=pos)
            item_type = data[pos]
            if item_type == 0:
                # The null item ends the list; skip it and the padding to the next 32-bit boundary.
                pos += 4 - (pos - start) % 4
                if pos > end:
                    raise ParseError("SDES chunk padding runs past the packet", offset=end)
                break
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise ParseError("SDES item runs past the packet", offset=pos)
            length = data[pos + 1]
            items.append(SdesItem(type=item_type, value=data[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc=ssrc, items=tuple(items)))
    return Sdes(chunks=tuple(chunks))


def _parse_one(data: bytes, start: int, end: int, count: int, pt: int) -> RtcpPacket:
    # `start` is the first byte after the common header, `end` the end of the packet (padding stripped).
    size = end - start
    if pt in (RTCP_SR, RTCP_RR):
        fixed = 24 if pt == RTCP_SR else 4
        if size < fixed + 24 * count:
            raise ParseError(
                f"RTCP {'SR' if pt == RTCP_SR else 'RR'} with {count} report blocks is too short", offset=start
            )
        blocks = _report_blocks(data, start + fixed, count)
        extension = data[start + fixed + 24 * count : end]
        if pt == RTCP_SR:
            ssrc, ntp, rtp_ts, packets, octets = _SR_INFO.unpack_from(data, start)
            return SenderReport(
                ssrc=ssrc,
                ntp_timestamp=ntp,
                rtp_timestamp=rtp_ts,
                packet_count=packets,
                octet_count=octets,
                reports=blocks,
                extension=extension,
            )
        return ReceiverReport(ssrc=_U32.unpack_from(data, start)[0], reports=blocks, extension=extension)
    if pt == RTCP_SDES:
        return _parse_sdes(data, start, end, count)
    if pt == RTCP_BYE:
        if size < 4 * count:
            raise ParseError(f"RTCP BYE with {count} SSRCs is too short", offset=start)
        ssrcs = struct.unpack_from(f"!{count}I", data, start)
        reason = None
        pos = start + 4 * count
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise ParseError("RTCP BYE reason runs past the packet", offset=pos)
            reason = data[pos + 1 : pos + 1 + length]
        return Bye(ssrcs=ssrcs, reason=reason)
    if pt == RTCP_APP:
        if size < 8:
            raise ParseError("RTCP APP is shorter than SSRC + name", offset=start)
        return App(
            ssrc=_U32.unpack_from(data, start)[0],
            name=data[start + 4 : start + 8],
            subtype=count,
            data=data[start + 8 : end],
        )
    if pt in (RTCP_RTPFB, RTCP_PSFB):
        if size < 8:
            raise ParseError("RTCP feedback packet is shorter than its two SSRCs", offset=start)
        sender, media = _TWO_U32.unpack_from(data, start)
        fci = start + 8
        if pt == RTCP_RTPFB and count == GenericNack.FMT:
            if (end - fci) % 4:
                raise ParseError("generic NACK FCI is not a whole number of 4-byte items", offset=fci)
            items = tuple(_NACK_ITEM.iter_unpack(data[fci:end]))
            return GenericNack(sender_ssrc=sender, media_ssrc=media, items=items)
        if pt == RTCP_PSFB and count == PictureLossIndication.FMT:
            return PictureLossIndication(sender_ssrc=sender, media_ssrc=media)
        if pt == RTCP_PSFB and count == FullIntraRequest.FMT:
            if (end - fci) % 8:
                raise ParseError("FIR FCI is not a whole number of 8-byte entries", offset=fci)
            entries = tuple(FirEntry(ssrc=s, sequence_number=n) for s, n in _FIR_ITEM.iter_unpack(data[fci:end]))
            return FullIntraRequest(sender_ssrc=sender, media_ssrc=media, entries=entries)
    return UnknownRtcp(packet_type=pt, count=count, body=data[start:end])


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (or a single one) into its packets, in order.

    No compound-level rule (RFC 3550 §6.1: SR/RR first, CNAME present) is enforced, so reduced-size RTCP
    (RFC 5506) parses too.

    Raises:
        ParseError: empty input, a version other than 2, a length running past the data, or a body too short
            for its count; `offset` is relative to the start of `data`.
    """
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise ParseError("empty RTCP packet", offset=0)
    out: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if n - pos < 4:
            raise ParseError(f"RTCP header needs 4 bytes, {n - pos} left", offset=pos)
        b0, pt, words = _HEADER.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise ParseError(f"RTCP version {b0 >> 6}, expected 2", offset=pos)
        end = pos + 4 * (words + 1)
        if end > n:
            raise ParseError(f"RTCP length {words} runs past the data", offset=pos + 2)
        body_end = end
        if b0 & 0x20:
            # RFC 3550 §6.4.1: the last octet of the packet counts the padding octets, itself included.
            padding = data[end - 1]
            if padding == 0 or padding > end - pos - 4:
                raise ParseError(f"RTCP padding count {padding} is invalid", offset=end - 1)
            body_end = end - padding
        out.append(_parse_one(data, pos + 4, body_end, b0 & 0x1F, pt))
        pos = end
    return out
