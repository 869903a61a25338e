"""The pcap/pcapng reader against hand-built files (tests/inspect/capgen.py): every byte order, timestamp
resolution and block kind, fed whole, byte by byte and in random chunks; and garbage, which may only raise
ParseError."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import ParseError
from fluxkit.inspect import CapturedPacket, CaptureReader
from tests.inspect import capgen

PACKETS = [(1_700_000_000.25, b"first packet"), (1_700_000_001.5, b"\x00" * 61), (1_700_000_002.000001, b"x" * 1500)]


def read_all(data: bytes, chunks: list[int] | None = None) -> list[CapturedPacket]:
    reader = CaptureReader()
    out: list[CapturedPacket] = []
    if chunks is None:
        out += reader.feed(data)
    else:
        pos = 0
        for size in chunks:
            out += reader.feed(data[pos : pos + size])
            pos += size
        out += reader.feed(data[pos:])
    out += reader.flush()
    return out


def feed_ways(data: bytes) -> list[list[CapturedPacket]]:
    rng = random.Random(len(data))
    sizes = []
    total = 0
    while total < len(data):
        sizes.append(rng.randint(1, 97))
        total += sizes[-1]
    return [read_all(data), read_all(data, [1] * len(data)), read_all(data, sizes)]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_both_orders_and_resolutions(order: str, nano: bool) -> None:
    data = capgen.pcap_file(PACKETS, 1, order=order, nano=nano)
    for got in feed_ways(data):
        assert [p.data for p in got] == [d for _, d in PACKETS]
        assert [p.linktype for p in got] == [1, 1, 1]
        for p, (ts, _) in zip(got, PACKETS, strict=True):
            assert p.timestamp == pytest.approx(ts, abs=1e-6)
            assert p.orig_len == len(p.data)


def test_pcap_nanosecond_precision() -> None:
    data = capgen.pcap_file([(5.000000123, b"a")], 101, nano=True)
    (p,) = read_all(data)
    assert p.timestamp == pytest.approx(5.000000123, abs=1e-9)
    assert p.linktype == 101


def test_pcap_snaplen_cut_keeps_orig_len() -> None:
    data = capgen.pcap_file([(1.0, b"y" * 300)], 1, snaplen=100)
    (p,) = read_all(data)
    assert len(p.data) == 100
    assert p.orig_len == 300


def test_pcap_linktype_fcs_bits_ignored() -> None:
    data = bytearray(capgen.pcap_file([(1.0, b"z")], 1))
    data[20:24] = struct.pack("<I", 1 | 0x10000000)  # FCS-present bits in the upper half (pcap §4.1)
    (p,) = read_all(bytes(data))
    assert p.linktype == 1


def test_pcap_trailing_partial_record_is_truncation() -> None:
    data = capgen.pcap_file(PACKETS, 1)
    reader = CaptureReader()
    got = reader.feed(data[:-10])
    assert [p.data for p in got] == [d for _, d in PACKETS[:2]]
    with pytest.raises(ParseError, match="truncated"):
        reader.flush()


@pytest.mark.parametrize("cut", [0, 3, 10, 23])
def test_pcap_truncated_header(cut: int) -> None:
    data = capgen.pcap_file(PACKETS, 1)[:cut]
    reader = CaptureReader()
    assert reader.feed(data) == []
    with pytest.raises(ParseError):
        reader.flush()


def test_pcap_oversized_record_rejected() -> None:
    data = capgen.pcap_file([(1.0, b"q" * 5000)], 1)
    reader = CaptureReader(max_record_size=4096)
    with pytest.raises(ParseError, match="exceeds"):
        reader.feed(data)


def test_not_a_capture() -> None:
    with pytest.raises(ParseError, match="not a pcap"):
        CaptureReader().feed(b"GIF89a....")


def test_empty_capture() -> None:
    with pytest.raises(ParseError, match="empty"):
        CaptureReader().flush()


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_both_orders_with_skipped_blocks(order: str) -> None:
    data = capgen.pcapng_file(PACKETS, 1, order=order)
    for got in feed_ways(data):
        assert [p.data for p in got] == [d for _, d in PACKETS]
        for p, (ts, _) in zip(got, PACKETS, strict=True):
            assert p.timestamp == pytest.approx(ts, abs=1e-6)
    reader = CaptureReader()
    reader.feed(data)
    assert reader.format == "pcapng"
    assert reader.skipped_blocks == 3  # NRB, the custom block, ISB


@pytest.mark.parametrize(("tsresol", "tol"), [(9, 1e-9), (3, 1e-3), (0x80 | 20, 1e-6), (0, 1.0)])
def test_pcapng_if_tsresol(tsresol: int, tol: float) -> None:
    data = capgen.pcapng_file([(1_700_000_000.123456789, b"a")], 1, tsresol=tsresol)
    (p,) = read_all(data)
    assert p.timestamp == pytest.approx(1_700_000_000.123456789, abs=tol)


def test_pcapng_if_tsoffset() -> None:
    data = capgen.shb() + capgen.idb(101, tsoffset=1000) + capgen.epb(0, 2_500_000, b"\x45")
    (p,) = read_all(data)
    assert p.timestamp == pytest.approx(1002.5)


def test_pcapng_two_sections_two_orders_and_interfaces() -> None:
    le = capgen.shb(order="<") + capgen.idb(1, order="<") + capgen.idb(113, order="<", tsresol=9)
    le += capgen.epb(1, 5_000_000_000, b"sll", order="<") + capgen.epb(0, 1_000_000, b"eth", order="<")
    be = capgen.shb(order=">") + capgen.idb(276, order=">") + capgen.epb(0, 3_000_000, b"sll2", order=">")
    for got in feed_ways(le + be):
        assert [(p.linktype, p.data, p.interface) for p in got] == [(113, b"sll", 1), (1, b"eth", 0), (276, b"sll2", 0)]
        assert [p.timestamp for p in got] == [5.0, 1.0, 3.0]


def test_pcapng_simple_and_obsolete_packet_blocks() -> None:
    data = capgen.shb() + capgen.idb(101, snaplen=4) + capgen.spb(b"\x45abcdef") + capgen.opb(0, 7, b"old")
    reader = CaptureReader()
    got = reader.feed(data) + reader.flush()
    # SPB: no timestamp, cut to the interface snap length; OPB: skipped.
    assert [(p.data, p.timestamp, p.orig_len) for p in got] == [(b"\x45abc", 0.0, 7)]
    assert reader.skipped_blocks == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:8] + b"\x00\x00\x00\x00" + d[12:], "byte-order"),
        (lambda d: d[:4] + struct.pack("<I", 13) + d[8:], "length"),
        (lambda d: d[:4] + struct.pack("<I", 8) + d[8:], "length"),
        (lambda d: d[:-4] + struct.pack("<I", 999), "trailing"),
        (lambda d: d[:12] + struct.pack("<H", 2) + d[14:], "major version"),
    ],
)
def test_pcapng_malformed_blocks(mutate: object, message: str) -> None:
    data = capgen.shb()
    bad = mutate(data)  # type: ignore[operator]
    with pytest.raises(ParseError, match=message):
        CaptureReader().feed(bad)


def test_pcapng_packet_before_interface() -> None:
    with pytest.raises(ParseError, match="interface 0"):
        CaptureReader().feed(capgen.shb() + capgen.epb(0, 0, b"x"))


def test_pcapng_caplen_past_block() -> None:
    good = capgen.epb(0, 0, b"abcd")
    bad = good[:20] + struct.pack("<I", 99) + good[24:]
    with pytest.raises(ParseError, match="runs past"):
        CaptureReader().feed(capgen.shb() + capgen.idb(1) + bad)


def test_pcapng_option_past_block() -> None:
    idb = capgen.idb(1, tsresol=9)
    bad = idb[:16] + struct.pack("<HH", 9, 200) + idb[20:]
    with pytest.raises(ParseError, match="option"):
        CaptureReader().feed(capgen.shb() + bad)


def test_pcapng_truncated_block() -> None:
    data = capgen.pcapng_file(PACKETS, 1)
    reader = CaptureReader()
    reader.feed(data[:-3])
    with pytest.raises(ParseError, match="truncated"):
        reader.flush()


def _garbage_checked(data: bytes) -> None:
    reader = CaptureReader(max_record_size=1 << 16)
    try:
        reader.feed(data)
        reader.flush()
    except ParseError:
        pass


@given(st.binary(max_size=2000))
def test_garbage_only_parse_error(data: bytes) -> None:
    _garbage_checked(data)


@given(st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1"]), st.binary(max_size=2000))
def test_garbage_after_pcap_magic(magic: bytes, data: bytes) -> None:
    _garbage_checked(magic + data)


@given(st.sampled_from(["<", ">"]), st.binary(max_size=2000))
def test_garbage_after_pcapng_section(order: str, data: bytes) -> None:
    _garbage_checked(capgen.shb(order=order) + capgen.idb(1, order=order) + data)


@given(st.data())
def test_valid_file_mutated_only_parse_error(data: st.DataObject) -> None:
    base = bytearray(capgen.pcapng_file(PACKETS, 1) if data.draw(st.booleans()) else capgen.pcap_file(PACKETS, 1))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(base) - 1))
        base[i] = data.draw(st.integers(0, 255))
    _garbage_checked(bytes(base))
