"""Link-layer, IPv4/IPv6 and UDP/TCP decoding of captured packets.

Strategy: `decode_packet(linktype, data)` peels the link header (Ethernet with 802.1Q/802.1ad tags, Linux cooked
SLL and SLL2, raw IP, BSD null/loopback), then the IP header, then UDP or TCP, with `struct.unpack_from` at fixed
offsets and one slice for the payload. It returns a `Datagram`, a `Segment`, or a `Skipped` saying why the packet
carries nothing to read (not IP, a fragment, another transport...), and raises `ParseError` for headers that are
cut short or self-contradictory, which the caller counts as malformed.

IP fragments are not reassembled: RTP over UDP is sent in datagrams below the path MTU in practice, so every
fragment (first or not) is skipped and counted (RFC 791 §3.2, RFC 8200 §4.5).
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

from fluxkit.errors import ParseError

__all__ = [
    "LINKTYPES",
    "Datagram",
    "Segment",
    "Skipped",
    "decode_packet",
    "format_endpoint",
]

#: LINKTYPE_* values this module reads (https://www.tcpdump.org/linktypes.html).
LINKTYPES = {
    0: "null",
    1: "ethernet",
    12: "raw",  # DLT_RAW as some Linux writers stored it
    101: "raw",
    108: "loop",
    113: "linux-sll",
    228: "ipv4",
    229: "ipv6",
    276: "linux-sll2",
}

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100})
_MAX_VLAN_TAGS = 4
# BSD AF_INET6 differs per system: 10 Linux, 24 OpenBSD/NetBSD, 28 FreeBSD, 30 macOS.
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})
_PROTO_TCP = 6
_PROTO_UDP = 17
# IPv6 extension headers skipped by their length field (RFC 8200 §4): hop-by-hop, routing, destination options.
_IPV6_EXT = frozenset({0, 43, 60})
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_MAX_IPV6_EXT = 8

_U16 = struct.Struct("!H")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_PORTS = struct.Struct("!HHH")
_TCP = struct.Struct("!HHIIBB")


@attrs.frozen(kw_only=True, slots=True)
class Datagram:
    """A UDP datagram. Addresses are the raw 4 or 16 bytes; `truncated` when the snap length cut the payload."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    payload: bytes
    truncated: bool = False


@attrs.frozen(kw_only=True, slots=True)
class Segment:
    """A TCP segment (RFC 9293 §3.1): sequence number, the SYN/FIN/RST flags and the payload."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    syn: bool
    fin: bool
    rst: bool
    payload: bytes
    truncated: bool = False


@attrs.frozen(kw_only=True, slots=True)
class Skipped:
    """A packet with nothing to read; `reason` is a counter name ("not-ip", "fragment", "other-transport"...)."""

    reason: str


def format_endpoint(addr: bytes, port: int) -> str:
    """`127.0.0.1:5004` or `[::1]:5004`."""
    ip = ipaddress.ip_address(addr)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def decode_packet(linktype: int, data: bytes) -> Datagram | Segment | Skipped:
    """Decode one captured packet down to its UDP or TCP payload.

    Raises:
        ParseError: a header is truncated or inconsistent.
    """
    n = len(data)
    if linktype == 1:
        if n < 14:
            raise ParseError("Ethernet header is truncated", offset=n)
        pos = 12
        (ethertype,) = _U16.unpack_from(data, pos)
        tags = 0
        while ethertype in _ETH_VLAN:
            tags += 1
            if tags > _MAX_VLAN_TAGS or n < pos + 6:
                raise ParseError("802.1Q tag stack is truncated or too deep", offset=pos)
            pos += 4
            (ethertype,) = _U16.unpack_from(data, pos)
        pos += 2
    elif linktype == 113:
        if n < 16:
            raise ParseError("Linux cooked (SLL) header is truncated", offset=n)
        (ethertype,) = _U16.unpack_from(data, 14)
        pos = 16
    elif linktype == 276:
        if n < 20:
            raise ParseError("Linux cooked (SLL2) header is truncated", offset=n)
        (ethertype,) = _U16.unpack_from(data, 0)
        pos = 20
    elif linktype in (101, 12):
        if not n:
            raise ParseError("raw IP packet is empty", offset=0)
        version = data[0] >> 4
        ethertype = _ETH_IPV4 if version == 4 else _ETH_IPV6 if version == 6 else 0
        pos = 0
    elif linktype == 228:
        ethertype, pos = _ETH_IPV4, 0
    elif linktype == 229:
        ethertype, pos = _ETH_IPV6, 0
    elif linktype in (0, 108):
        if n < 4:
            raise ParseError("loopback header is truncated", offset=n)
        # DLT_NULL stores the family in the writer's byte order, LOOP in network order: accept either.
        le = int.from_bytes(data[:4], "little")
        be = int.from_bytes(data[:4], "big")
        if _AF_INET in (le, be):
            ethertype = _ETH_IPV4
        elif le in _AF_INET6 or be in _AF_INET6:
            ethertype = _ETH_IPV6
        else:
            ethertype = 0
        pos = 4
    else:
        return Skipped(reason="unsupported-linktype")
    if ethertype == _ETH_IPV4:
        return _ipv4(data, pos)
    if ethertype == _ETH_IPV6:
        return _ipv6(data, pos)
    return Skipped(reason="not-ip")


def _ipv4(data: bytes, pos: int) -> Datagram | Segment | Skipped:
    # RFC 791 §3.1.
    n = len(data)
    if n - pos < 20:
        raise ParseError("IPv4 header is truncated", offset=pos)
    vihl, _tos, total, _ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, pos)
    if vihl >> 4 != 4:
        raise ParseError(f"IP version {vihl >> 4} in an IPv4 packet", offset=pos)
    ihl = (vihl & 0x0F) * 4
    if total == 0:
        # Captured before TCP segmentation offload: the stack leaves the length to the NIC.
        total = n - pos
    if ihl < 20 or total < ihl:
        raise ParseError(f"IPv4 header length {ihl} / total length {total} are inconsistent", offset=pos)
    if n - pos < ihl:
        raise ParseError("IPv4 options are truncated", offset=pos)
    if frag & 0x3FFF:  # MF set or a non-zero fragment offset
        return Skipped(reason="ip-fragment")
    end = pos + total
    truncated = end > n
    if truncated:
        end = n
    return _transport(proto, src, dst, data[pos + ihl : end], truncated)


def _ipv6(data: bytes, pos: int) -> Datagram | Segment | Skipped:
    # RFC 8200 §3 and §4.
    n = len(data)
    if n - pos < 40:
        raise ParseError("IPv6 header is truncated", offset=pos)
    vtcfl, plen, nxt, _hop, src, dst = _IPV6.unpack_from(data, pos)
    if vtcfl >> 28 != 6:
        raise ParseError(f"IP version {vtcfl >> 28} in an IPv6 packet", offset=pos)
    end = pos + 40 + plen
    truncated = end > n
    if truncated:
        end = n
    pos += 40
    for _ in range(_MAX_IPV6_EXT):
        if nxt in (_IPV6_AH, _IPV6_FRAGMENT) or nxt in _IPV6_EXT:
            if end - pos < 8:
                raise ParseError("IPv6 extension header is truncated", offset=pos)
            hdr_next, hdr_len = data[pos], data[pos + 1]
            if nxt == _IPV6_FRAGMENT:
                (offset_flags,) = _U16.unpack_from(data, pos + 2)
                if offset_flags & 0xFFF9:  # fragment offset or M flag: part of a fragmented packet
                    return Skipped(reason="ip-fragment")
                size = 8
            elif nxt == _IPV6_AH:
                size = (hdr_len + 2) * 4  # RFC 4302 §2.2: length in 32-bit words minus 2
            else:
                size = (hdr_len + 1) * 8
            pos += size
            if pos > end:
                raise ParseError("IPv6 extension header runs past the packet", offset=pos)
            nxt = hdr_next
        else:
            break
    else:
        return Skipped(reason="other-transport")
    return _transport(nxt, src, dst, data[pos:end], truncated)


def _transport(proto: int, src: bytes, dst: bytes, body: bytes, truncated: bool) -> Datagram | Segment | Skipped:
    n = len(body)
    if proto == _PROTO_UDP:
        # RFC 768: the length field covers the 8-byte header and the data.
        if n < 8:
            raise ParseError("UDP header is truncated", offset=n)
        sport, dport, length = _PORTS.unpack_from(body, 0)
        if length < 8:
            # Zero appears for IPv6 jumbograms only (RFC 2675); anything below 8 is malformed.
            raise ParseError(f"UDP length {length} is below the header size", offset=4)
        if length > n:
            if not truncated:
                raise ParseError(f"UDP length {length} runs past the IP payload of {n} bytes", offset=4)
            length = n
        return Datagram(src=src, dst=dst, sport=sport, dport=dport, payload=body[8:length], truncated=truncated)
    if proto == _PROTO_TCP:
        # RFC 9293 §3.1.
        if n < 20:
            raise ParseError("TCP header is truncated", offset=n)
        sport, dport, seq, _ack, doff, flags = _TCP.unpack_from(body, 0)
        hlen = (doff >> 4) * 4
        if hlen < 20 or hlen > n:
            raise ParseError(f"TCP data offset {hlen} is invalid for a {n}-byte segment", offset=12)
        return Segment(
            src=src,
            dst=dst,
            sport=sport,
            dport=dport,
            seq=seq,
            syn=bool(flags & 0x02),
            fin=bool(flags & 0x01),
            rst=bool(flags & 0x04),
            payload=body[hlen:],
            truncated=truncated,
        )
    return Skipped(reason="other-transport")
