"""RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1, §5.3.1).

Strategy: one `struct.unpack_from` for the 12 fixed bytes, slices for the rest; the payload is a `bytes` slice
(one copy, so the packet owns its data and the receive buffer can be reused).

`RtpPacket` is an attrs frozen class, but building one through attrs' keyword `__init__` costs about 0.8 us
(ten `object.__setattr__` calls plus keyword matching), more than the parsing itself. `parse_rtp` therefore
builds packets through `_RtpPacketBuilder`: a private sibling class sharing the same slot layout (both inherit
the slots from `_RtpPacketSlots`; attrs reuses slots declared by a base class) whose positional `__init__` stores
the fields with plain slot writes, after which the instance's `__class__` is switched to `RtpPacket`. The result
is an ordinary, truly frozen `RtpPacket` (hashable, equal to one built by keyword, `attrs.evolve` works), made in
about a quarter of the time.
"""

from __future__ import annotations

import struct

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = ["RTP_HEADER_SIZE", "RtpPacket", "parse_rtp"]

RTP_HEADER_SIZE = 12
_FIXED = struct.Struct("!BBHII")
_EXT = struct.Struct("!HH")
_CSRC_STRUCTS = [struct.Struct(f"!{n}I") for n in range(16)]


def _check_fields(packet: RtpPacket) -> None:
    for name, bits in (
        ("payload_type", 7),
        ("sequence_number", 16),
        ("timestamp", 32),
        ("ssrc", 32),
        ("extension_profile", 16),
        ("padding", 8),
    ):
        value = getattr(packet, name)
        if not 0 <= value < 1 << bits:
            raise LocalProtocolError(f"RTP {name}={value} does not fit in {bits} bits")
    if len(packet.csrc) > 15 or any(not 0 <= c < 1 << 32 for c in packet.csrc):
        raise LocalProtocolError("RTP CSRC list holds at most 15 32-bit values")
    ext = packet.extension
    if ext is not None and (len(ext) % 4 or len(ext) > 0xFFFF * 4):
        raise LocalProtocolError("RTP header extension must be a multiple of 4 bytes, at most 262140")


class _RtpPacketSlots:
    """Holds the slots so `RtpPacket` and `_RtpPacketBuilder` share one memory layout (see module docstring)."""

    __slots__ = (
        "__weakref__",
        "csrc",
        "extension",
        "extension_profile",
        "marker",
        "padding",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )


@attrs.frozen(kw_only=True, slots=True, weakref_slot=False)
class RtpPacket(_RtpPacketSlots):
    """One RTP packet. `padding` is the number of padding bytes (0 for none), kept so round trips are exact.

    Field ranges are checked by `serialize()`, not on construction: `parse_rtp` builds one of these per received
    packet and its values are in range by construction, so a validator would only cost time on the hot path.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int = 0
    extension: bytes | None = None
    padding: int = 0

    def serialize(self) -> bytes:
        """The packet as sent on the wire (padding bytes are zeros, the last one holds the count).

        Raises:
            LocalProtocolError: a field is out of range for its wire width.
        """
        _check_fields(self)
        b0 = 0x80 | (0x20 if self.padding else 0) | (0x10 if self.extension is not None else 0) | len(self.csrc)
        parts = [
            _FIXED.pack(
                b0, (0x80 if self.marker else 0) | self.payload_type, self.sequence_number, self.timestamp, self.ssrc
            )
        ]
        if self.csrc:
            parts.append(_CSRC_STRUCTS[len(self.csrc)].pack(*self.csrc))
        if self.extension is not None:
            parts.append(_EXT.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


class _RtpPacketBuilder(_RtpPacketSlots):
    """Positional, mutable twin of `RtpPacket` used only inside `parse_rtp`; never escapes this module."""

    __slots__ = ()

    def __init__(
        self,
        payload_type: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
        marker: bool,
        csrc: tuple[int, ...],
        extension_profile: int,
        extension: bytes | None,
        padding: int,
    ) -> None:
        self.payload_type = payload_type
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrc = csrc
        self.extension_profile = extension_profile
        self.extension = extension
        self.padding = padding


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP packet (a whole datagram or one deframed TCP unit).

    Raises:
        ParseError: not RTP version 2, truncated, or inconsistent lengths; `offset` points at the bad field.
    """
    n = len(data)
    if n < RTP_HEADER_SIZE:
        raise ParseError(f"RTP packet of {n} bytes is shorter than the 12-byte header", offset=n)
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    if b0 == 0x80:
        # The common case (RFC 3550 §5.1): version 2, no padding, no extension, no CSRC.
        packet = _RtpPacketBuilder(b1 & 0x7F, seq, ts, ssrc, bytes(data[12:]), b1 > 0x7F, (), 0, None, 0)
        packet.__class__ = RtpPacket  # type: ignore[assignment]
        return packet  # type: ignore[return-value]
    if b0 >> 6 != 2:
        raise ParseError(f"RTP version {b0 >> 6}, expected 2", offset=0)
    pos = RTP_HEADER_SIZE
    cc = b0 & 0x0F
    csrc: tuple[int, ...] = ()
    if cc:
        if n < pos + 4 * cc:
            raise ParseError("RTP CSRC list runs past the packet", offset=pos)
        csrc = _CSRC_STRUCTS[cc].unpack_from(data, pos)
        pos += 4 * cc
    ext_profile = 0
    extension: bytes | None = None
    if b0 & 0x10:
        # RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words excluding this 4-byte header.
        if n < pos + 4:
            raise ParseError("RTP header extension header runs past the packet", offset=pos)
        ext_profile, ext_words = _EXT.unpack_from(data, pos)
        pos += 4
        if n < pos + 4 * ext_words:
            raise ParseError("RTP header extension runs past the packet", offset=pos - 2)
        extension = bytes(data[pos : pos + 4 * ext_words])
        pos += 4 * ext_words
    end = n
    padding = 0
    if b0 & 0x20:
        # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
        padding = data[n - 1]
        if padding == 0 or n - padding < pos:
            raise ParseError(f"RTP padding count {padding} is invalid", offset=n - 1)
        end = n - padding
    packet = _RtpPacketBuilder(
        b1 & 0x7F, seq, ts, ssrc, bytes(data[pos:end]), b1 > 0x7F, csrc, ext_profile, extension, padding
    )
    packet.__class__ = RtpPacket  # type: ignore[assignment]
    return packet  # type: ignore[return-value]
