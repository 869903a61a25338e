"""Streaming readers for classic pcap and pcapng capture files.

Strategy: one feeder, `CaptureReader`, sniffs the format from the first four bytes and then cuts whole records
(pcap) or blocks (pcapng) out of an internal buffer with `struct.unpack_from`; the packet bytes are one slice per
record. Nothing here touches a file: the caller reads the file in chunks and feeds them, so memory is bounded by
one chunk plus one record, and a record longer than `max_record_size` is an error rather than a huge allocation.

Formats:
    * pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html, draft-ietf-opsawg-pcap §4): magic
      0xA1B2C3D4 (microseconds) or 0xA1B23C4D (nanoseconds), written in the writer's byte order; a 24-byte file
      header then 16-byte record headers.
    * pcapng (draft-ietf-opsawg-pcapng §4): Section Header Blocks set the byte order by their byte-order magic
      and reset the interface table; Interface Description Blocks give the link type and `if_tsresol`
      (§4.2, option 9) and `if_tsoffset` (option 14); Enhanced and Simple Packet Blocks (§4.3, §4.4) carry packets;
      the obsolete Packet Block and every other block type are skipped by their length.
"""

from __future__ import annotations

import struct

import attrs

from fluxkit.errors import ParseError

__all__ = [
    "DEFAULT_MAX_RECORD_SIZE",
    "PCAPNG_MAGIC",
    "PCAP_MAGICS",
    "CaptureReader",
    "CapturedPacket",
    "is_capture_magic",
]

#: Largest pcap record / pcapng block accepted. tcpdump's default snap length is 262,144 bytes.
DEFAULT_MAX_RECORD_SIZE = 1 << 20

#: pcap magic numbers as they appear on disk -> (struct byte-order prefix, timestamp units per second).
PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
}
#: pcapng Section Header Block type; a palindrome, so it reads the same in both byte orders.
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_OPB = 0x00000002
_SPB = 0x00000003
_EPB = 0x00000006
_BOM_BE = b"\x1a\x2b\x3c\x4d"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14


def is_capture_magic(head: bytes) -> bool:
    """True when `head` (the first bytes of a file) starts like a pcap or pcapng file."""
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


@attrs.frozen(kw_only=True, slots=True)
class CapturedPacket:
    """One packet out of a capture file.

    Attributes:
        timestamp: capture time in seconds since the epoch (float; pcapng `if_tsoffset` applied).
        linktype: the LINKTYPE_* value of the interface that captured it (1 Ethernet, 113 SLL, ...).
        data: the captured bytes (may be shorter than `orig_len` when the snap length cut it).
        orig_len: the packet's length on the wire.
        interface: pcapng interface index (0 for pcap).
    """

    timestamp: float
    linktype: int
    data: bytes
    orig_len: int
    interface: int = 0


@attrs.define(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    units: int  # timestamp units per second when the resolution is 10^-n
    shift: int  # or the binary exponent when it is 2^-n (units == 0)
    offset: int  # if_tsoffset, seconds


class CaptureReader:
    """Feeder turning the bytes of a pcap or pcapng file into `CapturedPacket`s.

    Args:
        max_record_size: largest record (pcap) or block (pcapng) accepted, in bytes.

    Attributes:
        format: "pcap" or "pcapng" once the magic has been seen, else None.
        linktypes: every link type seen so far (one for pcap, one per interface for pcapng).
        skipped_blocks: pcapng blocks skipped because their type is not read (statistics, name resolution, OPB...).
    """

    def __init__(self, *, max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        self._max = max_record_size
        self._buf = bytearray()
        self._offset = 0  # file offset of self._buf[0], for error messages
        self.format: str | None = None
        self.linktypes: set[int] = set()
        self.skipped_blocks = 0
        # pcap state
        self._rec: struct.Struct | None = None
        self._units = 1_000_000
        self._linktype = 0
        # pcapng state
        self._order = "<"
        self._interfaces: list[_Interface] = []

    def feed(self, data: bytes | bytearray | memoryview) -> list[CapturedPacket]:
        """Add bytes; return every packet now complete.

        Raises:
            ParseError: not a capture file, or a record/block is malformed or larger than `max_record_size`.
        """
        self._buf += data
        if self.format is None:
            if len(self._buf) < 4:
                return []
            magic = bytes(self._buf[:4])
            if magic == PCAPNG_MAGIC:
                self.format = "pcapng"
            elif magic in PCAP_MAGICS:
                self.format = "pcap"
            else:
                raise ParseError(f"not a pcap or pcapng file (magic {magic.hex()})", offset=0)
        if self.format == "pcap":
            return self._feed_pcap()
        return self._feed_pcapng()

    def flush(self) -> list[CapturedPacket]:
        """Signal the end of the file.

        Raises:
            ParseError: the file ends inside its header or inside a record (a truncated capture).
        """
        if self.format is None and not self._buf:
            raise ParseError("empty capture file", offset=0)
        if self._buf or self.format is None or (self.format == "pcap" and self._rec is None):
            raise ParseError(
                f"capture file is truncated ({len(self._buf)} bytes left inside a record)", offset=self._offset
            )
        return []

    # -- pcap ------------------------------------------------------------------------------------------------

    def _feed_pcap(self) -> list[CapturedPacket]:
        buf = self._buf
        pos = 0
        if self._rec is None:
            if len(buf) < 24:
                return []
            order, self._units = PCAP_MAGICS[bytes(buf[:4])]
            _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(order + "HHiIII", buf, 4)
            # The upper 16 bits of the link-type field hold FCS information in newer writers (§4.1).
            self._linktype = network & 0xFFFF
            self.linktypes.add(self._linktype)
            self._rec = struct.Struct(order + "IIII")
            pos = 24
        rec = self._rec
        units = self._units
        linktype = self._linktype
        out: list[CapturedPacket] = []
        n = len(buf)
        maximum = self._max
        while n - pos >= 16:
            sec, frac, incl, orig = rec.unpack_from(buf, pos)
            if incl > maximum:
                raise ParseError(
                    f"pcap record of {incl} bytes exceeds the {maximum}-byte limit", offset=self._offset + pos
                )
            end = pos + 16 + incl
            if end > n:
                break
            out.append(
                CapturedPacket(
                    timestamp=sec + frac / units, linktype=linktype, data=bytes(buf[pos + 16 : end]), orig_len=orig
                )
            )
            pos = end
        self._consume(pos)
        return out

    # -- pcapng ----------------------------------------------------------------------------------------------

    def _feed_pcapng(self) -> list[CapturedPacket]:
        buf = self._buf
        n = len(buf)
        pos = 0
        out: list[CapturedPacket] = []
        while n - pos >= 12:
            if buf[pos : pos + 4] == PCAPNG_MAGIC:
                # The SHB decides the byte order of its own length field (§4.1), so read the BOM first.
                bom = bytes(buf[pos + 8 : pos + 12])
                if bom == _BOM_BE:
                    self._order = ">"
                elif bom == _BOM_LE:
                    self._order = "<"
                else:
                    raise ParseError(f"pcapng byte-order magic {bom.hex()} is invalid", offset=self._offset + pos + 8)
            order = self._order
            btype, blen = struct.unpack_from(order + "II", buf, pos)
            if blen < 12 or blen % 4:
                raise ParseError(f"pcapng block length {blen} is invalid", offset=self._offset + pos + 4)
            if blen > self._max:
                raise ParseError(
                    f"pcapng block of {blen} bytes exceeds the {self._max}-byte limit", offset=self._offset + pos
                )
            end = pos + blen
            if end > n:
                break
            (trailer,) = struct.unpack_from(order + "I", buf, end - 4)
            if trailer != blen:
                raise ParseError(
                    f"pcapng block length {blen} does not match its trailing copy {trailer}",
                    offset=self._offset + end - 4,
                )
            body = memoryview(buf)[pos + 8 : end - 4]
            try:
                packet = self._block(btype, body, self._offset + pos + 8)
            finally:
                body.release()
            if packet is not None:
                out.append(packet)
            pos = end
        self._consume(pos)
        return out

    def _block(self, btype: int, body: memoryview, offset: int) -> CapturedPacket | None:
        order = self._order
        if btype == _SHB:
            if len(body) < 16:
                raise ParseError("pcapng section header block is too short", offset=offset)
            (major,) = struct.unpack_from(order + "H", body, 4)
            if major != 1:
                raise ParseError(f"pcapng major version {major} is not supported", offset=offset + 4)
            self._interfaces = []  # a new section starts a new interface table (§4.1)
            return None
        if btype == _IDB:
            if len(body) < 8:
                raise ParseError("pcapng interface description block is too short", offset=offset)
            linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
            iface = _Interface(linktype=linktype, snaplen=snaplen, units=1_000_000, shift=0, offset=0)
            for code, value in _options(body[8:], order, offset + 8):
                if code == _OPT_IF_TSRESOL and len(value) >= 1:
                    res = value[0]
                    # §4.2: MSB clear -> 10^-n seconds, MSB set -> 2^-n seconds.
                    if res & 0x80:
                        iface.units, iface.shift = 0, min(res & 0x7F, 64)
                    else:
                        iface.units = 10 ** min(res, 19)
                elif code == _OPT_IF_TSOFFSET and len(value) >= 8:
                    (iface.offset,) = struct.unpack_from(order + "q", value, 0)
            self._interfaces.append(iface)
            self.linktypes.add(linktype)
            return None
        if btype == _EPB:
            if len(body) < 20:
                raise ParseError("pcapng enhanced packet block is too short", offset=offset)
            if_id, ts_hi, ts_lo, caplen, orig = struct.unpack_from(order + "IIIII", body, 0)
            iface = self._interface(if_id, offset)
            if caplen > len(body) - 20:
                raise ParseError(f"pcapng packet length {caplen} runs past its block", offset=offset + 12)
            ticks = ts_hi << 32 | ts_lo
            return CapturedPacket(
                timestamp=_seconds(iface, ticks),
                linktype=iface.linktype,
                data=bytes(body[20 : 20 + caplen]),
                orig_len=orig,
                interface=if_id,
            )
        if btype == _SPB:
            if len(body) < 4:
                raise ParseError("pcapng simple packet block is too short", offset=offset)
            (orig,) = struct.unpack_from(order + "I", body, 0)
            iface = self._interface(0, offset)
            caplen = min(orig, len(body) - 4)
            if iface.snaplen:
                caplen = min(caplen, iface.snaplen)
            # SPBs carry no timestamp (§4.4).
            return CapturedPacket(
                timestamp=0.0, linktype=iface.linktype, data=bytes(body[4 : 4 + caplen]), orig_len=orig
            )
        # OPB (obsolete), NRB, ISB, DSB, custom and unknown blocks: skipped by length.
        self.skipped_blocks += 1
        return None

    def _interface(self, if_id: int, offset: int) -> _Interface:
        if if_id >= len(self._interfaces):
            raise ParseError(f"pcapng packet names interface {if_id}, which was not described", offset=offset)
        return self._interfaces[if_id]

    def _consume(self, pos: int) -> None:
        if pos:
            del self._buf[:pos]
            self._offset += pos


def _seconds(iface: _Interface, ticks: int) -> float:
    if iface.units:
        whole, frac = divmod(ticks, iface.units)
        return iface.offset + whole + frac / iface.units
    return iface.offset + ticks / (1 << iface.shift)


def _options(data: memoryview, order: str, offset: int) -> list[tuple[int, bytes]]:
    """Options of a block (§3.5): code, length, value padded to 32 bits; opt_endofopt (0) ends the list."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    n = len(data)
    while n - pos >= 4:
        code, length = struct.unpack_from(order + "HH", data, pos)
        if code == 0:
            break
        end = pos + 4 + length
        if end > n:
            raise ParseError(f"pcapng option {code} runs past its block", offset=offset + pos)
        out.append((code, bytes(data[pos + 4 : end])))
        pos = end + (-length % 4)
    return out
