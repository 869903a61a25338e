"""RTP packet parse/serialize (RFC 3550 §5.1, §5.3.1): golden vectors, errors with offsets, round trips, garbage."""

from __future__ import annotations

import pickle
import weakref

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.rtp import RtpPacket, parse_rtp

# V=2 P=0 X=0 CC=0 | M=1 PT=96 | seq=0x1234 | ts=0xDEADBEEF | ssrc=0x01020304 | payload
SIMPLE = bytes.fromhex("80e01234deadbeef01020304") + b"hello"
# V=2 P=1 X=1 CC=2 | M=0 PT=8 | seq=1 | ts=2 | ssrc=3 | csrc 0xAABBCCDD, 0x11223344
# | ext profile 0xBEDE, 1 word: 01020304 | payload "xy" | padding 3 bytes (00 00 03)
FULL = (
    bytes.fromhex("b208000100000002 00000003")
    + bytes.fromhex("aabbccdd 11223344 bede0001 01020304")
    + b"xy"
    + bytes.fromhex("000003")
)


def test_golden_simple() -> None:
    p = parse_rtp(SIMPLE)
    assert p == RtpPacket(
        payload_type=96, sequence_number=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304, payload=b"hello", marker=True
    )
    assert p.serialize() == SIMPLE


def test_golden_csrc_extension_padding() -> None:
    p = parse_rtp(FULL)
    assert p == RtpPacket(
        payload_type=8,
        sequence_number=1,
        timestamp=2,
        ssrc=3,
        payload=b"xy",
        csrc=(0xAABBCCDD, 0x11223344),
        extension_profile=0xBEDE,
        extension=bytes.fromhex("01020304"),
        padding=3,
    )
    assert p.serialize() == FULL


def test_empty_extension_and_payload() -> None:
    data = bytes.fromhex("9000000100000002000000031000" + "0000")
    p = parse_rtp(data)
    assert p.extension == b""
    assert p.extension_profile == 0x1000
    assert p.payload == b""
    assert p.serialize() == data


def test_parsed_packet_is_frozen_and_normal() -> None:
    p = parse_rtp(SIMPLE)
    assert type(p) is RtpPacket
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.marker = False  # type: ignore[misc]
    built = RtpPacket(
        payload_type=96, sequence_number=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304, payload=b"hello", marker=True
    )
    assert hash(p) == hash(built)
    assert attrs.evolve(p, marker=False).marker is False
    assert pickle.loads(pickle.dumps(p)) == p
    assert weakref.ref(p)() is p


def test_memoryview_and_bytearray_input() -> None:
    assert parse_rtp(memoryview(FULL)) == parse_rtp(FULL)
    assert parse_rtp(bytearray(SIMPLE)) == parse_rtp(SIMPLE)
    assert type(parse_rtp(memoryview(SIMPLE)).payload) is bytes


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"", 0),
        (bytes.fromhex("80e01234deadbeef010203"), 11),  # 11 bytes: short header
        (bytes.fromhex("40e01234deadbeef01020304"), 0),  # version 1
        (bytes.fromhex("81e01234deadbeef01020304"), 12),  # CC=1 but no CSRC
        (bytes.fromhex("90e01234deadbeef01020304beef"), 12),  # X=1, extension header cut
        (bytes.fromhex("90e01234deadbeef01020304beef0002aabbccdd"), 14),  # extension says 2 words, has 1
        (bytes.fromhex("a0e01234deadbeef01020300"), 11),  # padding count 0
        (bytes.fromhex("a0e01234deadbeef01020310"), 11),  # padding count 16 > packet
    ],
)
def test_parse_errors_with_offsets(data: bytes, offset: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_rtp(data)
    assert info.value.offset == offset


def test_padding_may_cover_whole_payload() -> None:
    data = bytes.fromhex("a0e01234deadbeef01020304") + bytes.fromhex("00000004")
    p = parse_rtp(data)
    assert p.payload == b""
    assert p.padding == 4
    assert p.serialize() == data


@pytest.mark.parametrize(
    "changes",
    [
        {"payload_type": 128},
        {"sequence_number": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"csrc": tuple(range(16))},
        {"csrc": (1 << 32,)},
        {"extension": b"abc"},
        {"padding": 256},
        {"extension_profile": 0x10000, "extension": b""},
    ],
)
def test_serialize_rejects_out_of_range(changes: dict[str, object]) -> None:
    p = attrs.evolve(RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0), **changes)
    with pytest.raises(LocalProtocolError):
        p.serialize()


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.integers(0, 0xFFFF),
    extension=st.none() | st.binary(max_size=16).map(lambda b: b[: len(b) // 4 * 4]),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    if packet.extension is None:
        packet = attrs.evolve(packet, extension_profile=0)
    assert parse_rtp(packet.serialize()) == packet


@given(st.binary(max_size=80))
def test_garbage(data: bytes) -> None:
    try:
        p = parse_rtp(data)
    except ProtocolError:
        return
    assert isinstance(p, RtpPacket)
    if not p.padding:  # padding bytes other than the count are not kept
        assert p.serialize() == data


@given(st.binary(min_size=12, max_size=80))
def test_garbage_version2(data: bytes) -> None:
    data = bytes((0x80 | (data[0] & 0x3F),)) + data[1:]
    try:
        p = parse_rtp(data)
    except ProtocolError:
        return
    # Everything but the padding bytes' values is kept, so re-serializing gives the same length.
    assert len(p.serialize()) == len(data)
