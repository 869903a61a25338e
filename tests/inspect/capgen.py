"""Hand-built capture files and packets for the inspect tests (pcap, pcapng, link layers, IPv4/IPv6, UDP, TCP).

Written from the format specifications (pcap-savefile(5), draft-ietf-opsawg-pcapng, RFC 791/8200/768/9293), not
from the reader under test, so the tests check the reader against an independent writer. tcpdump can read the
output too (tests/interop uses it as a cross-check).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD

LOCAL4 = bytes([127, 0, 0, 1])
OTHER4 = bytes([10, 0, 0, 2])
LOCAL6 = bytes(15) + b"\x01"


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp(sport: int, dport: int, payload: bytes, *, length: int | None = None) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload


def tcp(sport: int, dport: int, seq: int, payload: bytes = b"", *, flags: int = 0x18, options: bytes = b"") -> bytes:
    """flags: 0x02 SYN, 0x10 ACK, 0x01 FIN, 0x04 RST, 0x08 PSH."""
    assert len(options) % 4 == 0
    doff = (20 + len(options)) // 4
    return (
        struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, doff << 4, flags, 65535, 0, 0) + options + payload
    )


def ipv4(
    proto: int,
    payload: bytes,
    *,
    src: bytes = LOCAL4,
    dst: bytes = LOCAL4,
    frag: int = 0,
    ident: int = 1,
    options: bytes = b"",
    total: int | None = None,
) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    length = ihl * 4 + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, frag, 64, proto, 0, src, dst) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(
    nxt: int, payload: bytes, *, src: bytes = LOCAL6, dst: bytes = LOCAL6, ext: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """`ext`: extension headers as (their own type, body after the 2-byte next/length prefix), outermost first."""
    chain = b""
    types = [t for t, _ in ext] + [nxt]
    for i, (t, body) in enumerate(ext):
        following = types[i + 1]
        if t == 44:  # fragment header: fixed 8 bytes, second byte reserved
            assert len(body) == 6
            chain += bytes([following, 0]) + body
        elif t == 51:  # AH: length in 4-byte units minus 2
            assert (len(body) + 2) % 4 == 0
            chain += bytes([following, (len(body) + 2) // 4 - 2]) + body
        else:
            assert (len(body) + 2) % 8 == 0
            chain += bytes([following, (len(body) + 2) // 8 - 1]) + body
    first = types[0]
    body = chain + payload
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), first, 64, src, dst) + body


def ethernet(ethertype: int, payload: bytes, *, vlans: Iterable[int] = ()) -> bytes:
    out = b"\x00\x11\x22\x33\x44\x55" + b"\x66\x77\x88\x99\xaa\xbb"
    for vid in vlans:
        out += struct.pack("!HH", 0x8100, vid)
    return out + struct.pack("!H", ethertype) + payload


def sll(ethertype: int, payload: bytes) -> bytes:
    # Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol.
    return struct.pack("!HHH8sH", 0, 772, 6, b"\x00" * 8, ethertype) + payload


def sll2(ethertype: int, payload: bytes) -> bytes:
    # Linux cooked v2: protocol, reserved, interface index, ARPHRD, packet type, address length, 8 address bytes.
    return struct.pack("!HHIHBB8s", ethertype, 0, 1, 772, 0, 6, b"\x00" * 8) + payload


def null(family: int, payload: bytes, *, order: str = "<") -> bytes:
    return struct.pack(order + "I", family) + payload


def pcap_file(
    packets: Iterable[tuple[float, bytes]],
    linktype: int,
    *,
    order: str = "<",
    nano: bool = False,
    snaplen: int = 262144,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    units = 1_000_000_000 if nano else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data in packets:
        sec = int(ts)
        frac = round((ts - sec) * units)
        cap = data[:snaplen]
        out.append(struct.pack(order + "IIII", sec, frac, len(cap), len(data)) + cap)
    return b"".join(out)


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def block(btype: int, body: bytes, *, order: str = "<") -> bytes:
    body = _pad(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(code: int, value: bytes, *, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", 0, 0)


def shb(*, order: str = "<", options: bytes = b"") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(0x0A0D0D0A, body, order=order)


def idb(
    linktype: int, *, order: str = "<", snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order=order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order=order)
    if opts:
        opts += option(2, b"lo", order=order) + end_of_options(order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts, order=order)


def epb(iface: int, ticks: int, data: bytes, *, order: str = "<", comment: bytes | None = None) -> bytes:
    body = struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + _pad(data)
    if comment is not None:
        body += option(1, comment, order=order) + end_of_options(order)
    return block(6, body, order=order)


def spb(data: bytes, *, order: str = "<") -> bytes:
    return block(3, struct.pack(order + "I", len(data)) + data, order=order)


def opb(iface: int, ticks: int, data: bytes, *, order: str = "<") -> bytes:
    body = struct.pack(order + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data
    return block(2, body, order=order)


def pcapng_file(
    packets: Iterable[tuple[float, bytes]],
    linktype: int,
    *,
    order: str = "<",
    tsresol: int | None = None,
    extras: bool = True,
) -> bytes:
    """One section, one interface; `extras` adds blocks a reader must skip (NRB, ISB, custom, an unknown type)."""
    if tsresol is None:
        units = 10**6
    else:
        units = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
    out = [
        shb(order=order, options=option(4, b"capgen", order=order) + end_of_options(order)),
        idb(linktype, order=order, tsresol=tsresol),
    ]
    if extras:
        out.append(block(4, struct.pack(order + "HH", 0, 0), order=order))  # name resolution block, empty
    for i, (ts, data) in enumerate(packets):
        out.append(epb(0, round(ts * units), data, order=order, comment=b"hi" if i == 0 else None))
        if extras and i == 0:
            out.append(block(0x0BAD, b"custom-block-to-skip", order=order))
            out.append(block(5, struct.pack(order + "III", 0, 0, 0), order=order))  # interface statistics
    return b"".join(out)


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, *, pt: int = 96, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
