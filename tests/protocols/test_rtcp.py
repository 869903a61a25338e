"""RTCP (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1): golden vectors, compound packets, errors, round trips."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.rtp import (
    SDES_CNAME,
    SDES_NAME,
    SDES_TOOL,
    App,
    Bye,
    FirEntry,
    FullIntraRequest,
    GenericNack,
    PictureLossIndication,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    Sdes,
    SdesChunk,
    SdesItem,
    SenderReport,
    UnknownRtcp,
    is_rtcp,
    parse_rtcp,
    serialize_rtcp,
)

H = bytes.fromhex

# Hand-built vectors; the comment above each gives the fields.
# SR: V=2 RC=1 PT=200 len=12 | ssrc 11111111 | NTP e1234567 89abcdef | RTP ts 90000 | 100 packets | 140000 octets
# block: ssrc 22222222, fraction 0x40, cumulative -2, highest 0x00010005, jitter 32, LSR 456789ab, DLSR 1 s
SR = H(
    "81c8000c 11111111 e1234567 89abcdef 00015f90 00000064 000222e0"
    " 22222222 40fffffe 00010005 00000020 456789ab 00010000"
)
SR_OBJ = SenderReport(
    ssrc=0x11111111,
    ntp_timestamp=0xE123456789ABCDEF,
    rtp_timestamp=90000,
    packet_count=100,
    octet_count=140000,
    reports=(
        ReportBlock(
            ssrc=0x22222222,
            fraction_lost=0x40,
            cumulative_lost=-2,
            highest_sequence=0x00010005,
            jitter=32,
            last_sr=0x456789AB,
            delay_since_last_sr=0x10000,
        ),
    ),
)
# RR: V=2 RC=0 PT=201 len=1 | ssrc 33333333
RR = H("80c90001 33333333")
RR_OBJ = ReceiverReport(ssrc=0x33333333)
# SDES: SC=1 PT=202 len=3 | ssrc 11111111 | CNAME(1) len 5 "hello" | null, no more padding needed (4+7+1 = 12)
SDES = H("81ca0003 11111111 0105") + b"hello" + H("00")
SDES_OBJ = Sdes(chunks=(SdesChunk(ssrc=0x11111111, items=(SdesItem(type=SDES_CNAME, value=b"hello"),)),))
# BYE: SC=1 PT=203 len=2 | ssrc 11111111 | reason len 3 "bye"
BYE = H("81cb0002 11111111 03") + b"bye"
BYE_OBJ = Bye(ssrcs=(0x11111111,), reason=b"bye")
# APP: subtype 2 PT=204 len=3 | ssrc 11111111 | "TEST" | data 01020304
APP = H("82cc0003 11111111") + b"TEST" + H("01020304")
APP_OBJ = App(ssrc=0x11111111, name=b"TEST", subtype=2, data=H("01020304"))
# Generic NACK: FMT=1 PT=205 len=3 | sender 11111111 | media 22222222 | PID 100, BLP 0b101 (101 and 103 lost)
NACK = H("81cd0003 11111111 22222222 00640005")
NACK_OBJ = GenericNack(sender_ssrc=0x11111111, media_ssrc=0x22222222, items=((100, 5),))
# PLI: FMT=1 PT=206 len=2 | sender | media
PLI = H("81ce0002 11111111 22222222")
PLI_OBJ = PictureLossIndication(sender_ssrc=0x11111111, media_ssrc=0x22222222)
# FIR: FMT=4 PT=206 len=4 | sender | media 0 | entry ssrc 22222222, seq 7, reserved
FIR = H("84ce0004 11111111 00000000 22222222 07000000")
FIR_OBJ = FullIntraRequest(sender_ssrc=0x11111111, entries=(FirEntry(ssrc=0x22222222, sequence_number=7),))

GOLDEN = [
    (SR, SR_OBJ),
    (RR, RR_OBJ),
    (SDES, SDES_OBJ),
    (BYE, BYE_OBJ),
    (APP, APP_OBJ),
    (NACK, NACK_OBJ),
    (PLI, PLI_OBJ),
    (FIR, FIR_OBJ),
]

# A real SR sent by ffmpeg 5.1 (`-f rtp`) to the RTCP port, captured on loopback.
FFMPEG_SR = H("80c80006a50a9310eeb47cfe6e147ae1b5cb98c40000000000000000")


@pytest.mark.parametrize(("wire", "obj"), GOLDEN)
def test_golden_each(wire: bytes, obj: RtcpPacket) -> None:
    assert parse_rtcp(wire) == [obj]
    assert obj.serialize() == wire


def test_golden_compound() -> None:
    wire = b"".join(w for w, _ in GOLDEN)
    objs = [o for _, o in GOLDEN]
    assert parse_rtcp(wire) == objs
    assert serialize_rtcp(objs) == wire


def test_ffmpeg_sender_report() -> None:
    assert parse_rtcp(FFMPEG_SR) == [
        SenderReport(ssrc=0xA50A9310, ntp_timestamp=0xEEB47CFE6E147AE1, rtp_timestamp=0xB5CB98C4)
    ]
    assert is_rtcp(FFMPEG_SR)


def test_sdes_multiple_items_and_chunks() -> None:
    sdes = Sdes(
        chunks=(
            SdesChunk(ssrc=1, items=(SdesItem(type=SDES_CNAME, value=b"a@b"), SdesItem(type=SDES_NAME, value=b"cam"))),
            SdesChunk(ssrc=2, items=()),
            SdesChunk(ssrc=3, items=(SdesItem(type=SDES_TOOL, value=b"fluxkit"),)),
        )
    )
    wire = sdes.serialize()
    assert len(wire) % 4 == 0
    # chunk 2 is an SSRC plus a full word of nulls (RFC 3550 §6.5: at least one null octet).
    assert H("00000002 00000000") in wire
    (parsed,) = parse_rtcp(wire)
    assert parsed == sdes
    assert isinstance(parsed, Sdes)
    assert parsed.chunks[0].get(SDES_NAME) == b"cam"
    assert parsed.chunks[1].get(SDES_CNAME) is None


def test_bye_without_reason_and_padding_of_reason() -> None:
    assert Bye(ssrcs=(1, 2)).serialize() == H("82cb0002 00000001 00000002")
    assert Bye(ssrcs=(1,), reason=b"").serialize() == H("81cb0002 00000001 00000000")
    assert parse_rtcp(H("81cb0002 00000001 00000000")) == [Bye(ssrcs=(1,), reason=b"")]


def test_padding_is_stripped() -> None:
    # RR with P=1 and 4 padding bytes (the last holds the count).
    wire = H("a0c90002 33333333 00000004")
    assert parse_rtcp(wire) == [RR_OBJ]


def test_bodies_not_in_whole_words_are_padded() -> None:
    app = App(ssrc=1, name=b"abcd", data=b"xyz12")
    wire = app.serialize()
    assert wire == H("a0cc0004 00000001") + b"abcdxyz12" + H("000003")
    assert parse_rtcp(wire) == [app]
    assert parse_rtcp(H("a0c90002 33333333 00000002")) == [ReceiverReport(ssrc=0x33333333, extension=H("0000"))]


def test_unknown_type_and_feedback_kept_raw() -> None:
    xr = H("80cf0002 11111111 deadbeef")  # XR (PT 207), not modelled
    remb = H("8fce0003 11111111 00000000") + b"REMB"  # PSFB FMT 15 (application layer FB)
    parsed = parse_rtcp(xr + remb)
    assert parsed == [
        UnknownRtcp(packet_type=207, count=0, body=H("11111111 deadbeef")),
        UnknownRtcp(packet_type=206, count=15, body=H("11111111 00000000") + b"REMB"),
    ]
    assert serialize_rtcp(parsed) == xr + remb


def test_sr_and_rr_profile_extension() -> None:
    rr = ReceiverReport(ssrc=5, reports=(ReportBlock(ssrc=6),), extension=b"ext!")
    assert parse_rtcp(rr.serialize()) == [rr]


def test_nack_from_lost_and_back() -> None:
    nack = GenericNack.from_lost(sender_ssrc=1, media_ssrc=2, lost=[100, 101, 103])
    assert nack == NACK_OBJ.__class__(sender_ssrc=1, media_ssrc=2, items=((100, 5),))
    assert nack.lost_sequence_numbers() == [100, 101, 103]
    # 17 apart needs a second pair; the wrap 65535 -> 0 stays in one pair.
    assert GenericNack.from_lost(sender_ssrc=1, media_ssrc=2, lost=[10, 26, 27]).items == ((10, 1 << 15), (27, 0))
    wrap = GenericNack.from_lost(sender_ssrc=1, media_ssrc=2, lost=[65534, 65535, 0, 3])
    assert wrap.items == ((65534, 0b10011),)
    assert wrap.lost_sequence_numbers() == [65534, 65535, 0, 3]
    assert GenericNack.from_lost(sender_ssrc=1, media_ssrc=2, lost=[]).items == ()


@given(st.lists(st.integers(0, 0xFFFF), max_size=40))
def test_nack_from_lost_covers_exactly(lost: list[int]) -> None:
    nack = GenericNack.from_lost(sender_ssrc=1, media_ssrc=2, lost=lost)
    assert sorted(nack.lost_sequence_numbers()) == sorted(set(lost))
    assert parse_rtcp(nack.serialize()) == [nack]


@pytest.mark.parametrize(
    ("wire", "offset"),
    [
        (b"", 0),
        (H("80c9"), 0),  # short header
        (H("40c90001 33333333"), 0),  # version 1
        (H("80c90002 33333333"), 2),  # length runs past
        (RR + H("80c9"), 8),  # second packet header cut
        (H("81c90001 33333333"), 4),  # RR says 1 block, has none
        (H("81c80006") + bytes(24), 4),  # SR says 1 block, has none
        (H("a0c90001 33333300"), 7),  # padding count 0
        (H("a0c90001 33333309"), 7),  # padding count past the body
        (H("82cb0001 00000001"), 4),  # BYE says 2 SSRCs, has 1
        (H("81cb0002 00000001 09000000"), 8),  # BYE reason runs past
        (H("80cc0001 00000001"), 4),  # APP without name
        (H("81cd0001 00000001"), 4),  # NACK without media SSRC
        (H("84ce0003 00000001 00000000 00000002"), 12),  # FIR entry cut to 4 bytes
        (H("81ca0002 00000001 01090000"), 8),  # SDES item runs past
        (H("81ca0002 00000001 01020102"), 12),  # SDES list not terminated
        (H("82ca0002 00000001 00000000"), 12),  # SDES says 2 chunks, has 1
    ],
)
def test_parse_errors_with_offsets(wire: bytes, offset: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_rtcp(wire)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    "packet",
    [
        ReportBlock(ssrc=1, cumulative_lost=0x800000),
        ReportBlock(ssrc=1, fraction_lost=256),
        SenderReport(ssrc=1 << 32),
        SenderReport(ssrc=1, ntp_timestamp=1 << 64),
        ReceiverReport(ssrc=1, reports=tuple(ReportBlock(ssrc=i) for i in range(32))),
        Sdes(chunks=(SdesChunk(ssrc=1, items=(SdesItem(type=0, value=b""),)),)),
        Sdes(chunks=(SdesChunk(ssrc=1, items=(SdesItem(type=1, value=bytes(256)),)),)),
        Sdes(chunks=tuple(SdesChunk(ssrc=i) for i in range(32))),
        Bye(ssrcs=tuple(range(32))),
        Bye(ssrcs=(-1,)),
        Bye(ssrcs=(1,), reason=bytes(256)),
        App(ssrc=1, name=b"abc"),
        App(ssrc=1, name=b"abcd", subtype=32),
        GenericNack(sender_ssrc=1, media_ssrc=2, items=((65536, 0),)),
        PictureLossIndication(sender_ssrc=1, media_ssrc=-2),
        FullIntraRequest(sender_ssrc=1, entries=(FirEntry(ssrc=1, sequence_number=256),)),
        UnknownRtcp(packet_type=256),
        UnknownRtcp(packet_type=207, body=bytes(0x40000)),
    ],
)
def test_serialize_rejects_out_of_range(packet: RtcpPacket | ReportBlock) -> None:
    with pytest.raises(LocalProtocolError):
        packet.serialize()


def test_is_rtcp() -> None:
    assert is_rtcp(SR)
    assert is_rtcp(RR)
    assert is_rtcp(NACK)
    assert not is_rtcp(H("80600001"))  # RTP PT 96
    assert not is_rtcp(H("80e00001"))  # RTP PT 96 with marker: 0xE0 = 224
    assert not is_rtcp(H("00c8"))  # version 0
    assert not is_rtcp(H("80"))
    assert not is_rtcp(b"")


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
words = st.binary(max_size=12)
block_lists = st.lists(blocks, max_size=3).map(tuple)
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, (1 << 64) - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=block_lists,
        extension=words,
    ),
    st.builds(ReceiverReport, ssrc=u32, reports=block_lists, extension=words),
    st.builds(
        Sdes,
        chunks=st.lists(
            st.builds(
                SdesChunk,
                ssrc=u32,
                items=st.lists(
                    st.builds(SdesItem, type=st.integers(1, 255), value=st.binary(max_size=10)), max_size=3
                ).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, ssrcs=st.lists(u32, max_size=3).map(tuple), reason=st.none() | st.binary(max_size=10)),
    st.builds(App, ssrc=u32, name=st.binary(min_size=4, max_size=4), subtype=st.integers(0, 31), data=words),
    st.builds(
        GenericNack,
        sender_ssrc=u32,
        media_ssrc=u32,
        items=st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)), max_size=3).map(tuple),
    ),
    st.builds(PictureLossIndication, sender_ssrc=u32, media_ssrc=u32),
    st.builds(
        FullIntraRequest,
        sender_ssrc=u32,
        media_ssrc=u32,
        entries=st.lists(st.builds(FirEntry, ssrc=u32, sequence_number=st.integers(0, 255)), max_size=3).map(tuple),
    ),
    st.builds(UnknownRtcp, packet_type=st.sampled_from([195, 207, 210]), count=st.integers(0, 31), body=words),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_round_trip_compound(packets: list[RtcpPacket]) -> None:
    wire = serialize_rtcp(packets)
    assert parse_rtcp(wire) == packets
    assert is_rtcp(wire)


@given(st.binary(max_size=120))
def test_garbage(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except ProtocolError:
        return
    for p in packets:
        assert attrs.has(type(p))


@given(st.binary(min_size=4, max_size=120))
def test_garbage_with_valid_header(data: bytes) -> None:
    # Force version 2 and a length that fits, so the per-type body parsers see the garbage.
    words_left = len(data) // 4 - 1
    body = bytes((0x80 | (data[0] & 0x3F), 192 + data[1] % 32)) + words_left.to_bytes(2, "big") + data[4:]
    body = body[: 4 * (words_left + 1)]
    try:
        parse_rtcp(body)
    except ProtocolError:
        return
