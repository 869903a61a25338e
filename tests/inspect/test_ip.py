"""Link-layer, IPv4/IPv6, UDP and TCP decoding of captured packets (hand-built packets from capgen)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import ParseError
from fluxkit.inspect import Datagram, Segment, Skipped, decode_packet
from fluxkit.inspect._ip import format_endpoint
from tests.inspect import capgen
from tests.inspect.capgen import ETH_IPV4, ETH_IPV6, LOCAL4, LOCAL6, OTHER4

PAYLOAD = b"\x80\x60\x00\x01rtp-ish payload"
UDP4 = capgen.ipv4(17, capgen.udp(40000, 5004, PAYLOAD), src=OTHER4)
UDP6 = capgen.ipv6(17, capgen.udp(40000, 5004, PAYLOAD))


def _udp(decoded: object) -> Datagram:
    assert isinstance(decoded, Datagram), decoded
    return decoded


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, capgen.ethernet(ETH_IPV4, UDP4)),
        (1, capgen.ethernet(ETH_IPV4, UDP4, vlans=[100])),
        (1, capgen.ethernet(ETH_IPV4, UDP4, vlans=[100, 200])),
        (113, capgen.sll(ETH_IPV4, UDP4)),
        (276, capgen.sll2(ETH_IPV4, UDP4)),
        (101, UDP4),
        (12, UDP4),
        (228, UDP4),
        (0, capgen.null(2, UDP4, order="<")),
        (0, capgen.null(2, UDP4, order=">")),
        (108, capgen.null(2, UDP4, order=">")),
    ],
)
def test_ipv4_udp_under_each_linktype(linktype: int, frame: bytes) -> None:
    d = _udp(decode_packet(linktype, frame))
    assert (d.src, d.sport, d.dst, d.dport, d.payload) == (OTHER4, 40000, LOCAL4, 5004, PAYLOAD)
    assert not d.truncated


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, capgen.ethernet(ETH_IPV6, UDP6)),
        (113, capgen.sll(ETH_IPV6, UDP6)),
        (276, capgen.sll2(ETH_IPV6, UDP6)),
        (101, UDP6),
        (229, UDP6),
        (0, capgen.null(10, UDP6)),
        (0, capgen.null(24, UDP6, order=">")),
        (0, capgen.null(30, UDP6)),
        (108, capgen.null(28, UDP6, order=">")),
    ],
)
def test_ipv6_udp_under_each_linktype(linktype: int, frame: bytes) -> None:
    d = _udp(decode_packet(linktype, frame))
    assert (d.src, d.dst, d.sport, d.dport, d.payload) == (LOCAL6, LOCAL6, 40000, 5004, PAYLOAD)


def test_ipv4_options_and_trailer_padding() -> None:
    packet = capgen.ipv4(17, capgen.udp(1, 2, b"abc"), options=b"\x01\x01\x01\x00")
    # Ethernet pads short frames: bytes past the IP total length are not payload.
    d = _udp(decode_packet(1, capgen.ethernet(ETH_IPV4, packet + b"\x00" * 20)))
    assert d.payload == b"abc"


def test_ipv4_tso_zero_total_length() -> None:
    packet = capgen.ipv4(6, capgen.tcp(1, 2, 7, b"segment"), total=0)
    s = decode_packet(101, packet)
    assert isinstance(s, Segment)
    assert s.payload == b"segment"


@pytest.mark.parametrize("frag", [0x2000, 0x0010, 0x2010])  # MF only (first fragment), offset only, both
def test_ipv4_fragments_skipped(frag: int) -> None:
    assert decode_packet(101, capgen.ipv4(17, capgen.udp(1, 2, b"x" * 40), frag=frag)) == Skipped(reason="ip-fragment")


def test_ipv4_dont_fragment_is_not_a_fragment() -> None:
    _udp(decode_packet(101, capgen.ipv4(17, capgen.udp(1, 2, b"x"), frag=0x4000)))


def test_ipv6_extension_headers_skipped() -> None:
    packet = capgen.ipv6(
        17,
        capgen.udp(9, 10, b"data"),
        ext=[
            (0, b"\x01\x04\x00\x00\x00\x00"),
            (60, b"\x00" * 14),
            (51, b"\x00" * 14),
            (44, b"\x00\x00\x00\x00\x00\x07"),
        ],
    )
    d = _udp(decode_packet(229, packet))
    assert d.payload == b"data"


@pytest.mark.parametrize("offset_flags", [0x0001, 0x0008, 0x0009])
def test_ipv6_fragments_skipped(offset_flags: int) -> None:
    body = struct.pack("!HI", offset_flags, 7)
    packet = capgen.ipv6(17, capgen.udp(9, 10, b"data"), ext=[(44, body)])
    assert decode_packet(229, packet) == Skipped(reason="ip-fragment")


def test_tcp_segment_with_options() -> None:
    seg = capgen.tcp(
        554, 40000, 0xFFFFFFF0, b"$\x00\x00\x0c" + b"\x80" * 12, flags=0x18, options=b"\x01\x01\x08\x0a" + b"\x00" * 8
    )
    s = decode_packet(1, capgen.ethernet(ETH_IPV4, capgen.ipv4(6, seg)))
    assert isinstance(s, Segment)
    assert (s.sport, s.dport, s.seq, s.syn, s.fin, s.rst) == (554, 40000, 0xFFFFFFF0, False, False, False)
    assert s.payload.startswith(b"$")


@pytest.mark.parametrize(
    ("flags", "syn", "fin", "rst"), [(0x02, True, False, False), (0x11, False, True, False), (0x04, False, False, True)]
)
def test_tcp_flags(flags: int, syn: bool, fin: bool, rst: bool) -> None:
    s = decode_packet(101, capgen.ipv4(6, capgen.tcp(1, 2, 3, flags=flags)))
    assert isinstance(s, Segment)
    assert (s.syn, s.fin, s.rst) == (syn, fin, rst)


def test_snaplen_cut_marks_truncated() -> None:
    full = capgen.ipv4(17, capgen.udp(1, 2, b"y" * 100))
    d = _udp(decode_packet(101, full[:60]))
    assert d.truncated
    assert d.payload == b"y" * 32


@pytest.mark.parametrize(
    ("linktype", "frame", "reason"),
    [
        (1, capgen.ethernet(0x0806, b"\x00" * 28), "not-ip"),  # ARP
        (1, capgen.ethernet(0x05DC, b"\x00" * 28), "not-ip"),  # 802.3 length field
        (101, capgen.ipv4(1, b"\x08\x00" + b"\x00" * 30), "other-transport"),  # ICMP
        (229, capgen.ipv6(58, b"\x80\x00" + b"\x00" * 30), "other-transport"),  # ICMPv6
        (101, b"\x10" + b"\x00" * 30, "not-ip"),  # raw, version 1
        (0, capgen.null(7, UDP4), "not-ip"),
        (147, UDP4, "unsupported-linktype"),
    ],
)
def test_skipped(linktype: int, frame: bytes, reason: str) -> None:
    assert decode_packet(linktype, frame) == Skipped(reason=reason)


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (1, b"\x00" * 13),
        (1, capgen.ethernet(0x8100, b"\x00")),
        (1, capgen.ethernet(ETH_IPV4, UDP4, vlans=[1, 2, 3, 4, 5])),
        (113, b"\x00" * 15),
        (276, b"\x00" * 19),
        (101, b""),
        (0, b"\x02\x00"),
        (228, UDP4[:19]),
        (228, b"\x60" + UDP4[1:]),  # version 6 in an IPv4 link type
        (228, b"\x44" + UDP4[1:]),  # IHL 4
        (228, b"\x4f" + UDP4[1:]),  # IHL 15, longer than the packet
        (228, UDP4[:2] + b"\x00\x10" + UDP4[4:]),  # total length below the header
        (229, UDP6[:39]),
        (229, b"\x40" + UDP6[1:]),
        (228, capgen.ipv4(17, b"\x00" * 7)),  # UDP header cut
        (228, capgen.ipv4(17, capgen.udp(1, 2, b"abc", length=4))),
        (228, capgen.ipv4(17, capgen.udp(1, 2, b"abc", length=40))),
        (228, capgen.ipv4(6, b"\x00" * 19)),
        (228, capgen.ipv4(6, capgen.tcp(1, 2, 3)[:12] + b"\x40" + capgen.tcp(1, 2, 3)[13:])),  # data offset 16
        (229, capgen.ipv6(0, b"\x11\x00\x00")),  # hop-by-hop header cut
        (229, capgen.ipv6(0, b"\x11\x05" + b"\x00" * 6)),  # hop-by-hop longer than the packet
    ],
)
def test_malformed_raise_parse_error(linktype: int, frame: bytes) -> None:
    with pytest.raises(ParseError):
        decode_packet(linktype, frame)


def test_format_endpoint() -> None:
    assert format_endpoint(LOCAL4, 5004) == "127.0.0.1:5004"
    assert format_endpoint(LOCAL6, 5004) == "[::1]:5004"


@given(st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 999]), st.binary(max_size=200))
def test_garbage_only_parse_error(linktype: int, data: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode_packet(linktype, data)


@given(st.sampled_from([UDP4, UDP6, capgen.ipv4(6, capgen.tcp(1, 2, 3, b"xyz"))]), st.data())
def test_mutated_packets_only_parse_error(base: bytes, data: st.DataObject) -> None:
    packet = bytearray(base)
    for _ in range(data.draw(st.integers(1, 6))):
        packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packet)))
    with contextlib.suppress(ParseError):
        decode_packet(101, bytes(packet[:cut]))
