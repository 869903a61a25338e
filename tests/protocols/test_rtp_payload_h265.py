"""H.265 over RTP (RFC 7798): golden single / AP / FU packets both ways, DONL handling, PACI rejection."""

from __future__ import annotations

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket
from fluxkit.protocols.rtp.payload import H265Depacketizer, H265Packetizer

SC = b"\x00\x00\x00\x01"
# VPS/SPS/PPS as libx265 writes them (ids 0).
VPS = bytes.fromhex("40010c01ffff01600000030090000003000003003cba0240")
SPS = bytes.fromhex("42010101600000030090000003000003003ca00a080f165ba4a4c2e68080000003008000000c84")
PPS = bytes.fromhex("4401c073c189")
SPS1 = SPS.replace(bytes.fromhex("3ca00a08"), bytes.fromhex("3c500a08"))  # sps_seq_parameter_set_id 1
# One sub-layer with only sub_layer_level_present_flag: 8 more bits before the id (H.265 §7.3.3); id 1.
SPS_SUBLAYER = bytes.fromhex("4201") + b"\x03" + b"\x60" + b"\x11" * 10 + b"\x3c" + b"\x40\x00" + b"\x3c" + b"\x50\x80"
AUD = bytes.fromhex("460150")
SEI = bytes.fromhex("4e0105ff0180")
IDR = bytes.fromhex("2601af") + bytes(range(1, 120))  # IDR_W_RADL, first_slice_segment_in_pic_flag = 1
CRA = bytes.fromhex("2a01af") + bytes(range(1, 20))  # CRA_NUT (21)
TRAIL = bytes.fromhex("0201d0") + bytes(range(1, 60))  # TRAIL_R, first slice
TRAIL_2ND = bytes.fromhex("02015a") + bytes(range(1, 9))  # TRAIL_R, not the first slice segment


def annexb(*nals: bytes) -> bytes:
    return b"".join(SC + n for n in nals)


def pkt(seq: int, ts: int, payload: bytes, *, marker: bool = False) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=3, payload=payload,
                     marker=marker)  # fmt: skip


def ap(*nals: bytes, donl: bool = False) -> bytes:
    out = bytes(((48 << 1), 1))
    for i, n in enumerate(nals):
        if donl:
            out += b"\x00\x07" if i == 0 else b"\x01"
        out += len(n).to_bytes(2, "big") + n
    return out


def fu(nal: bytes, sizes: list[int], *, donl: bool = False) -> list[bytes]:
    body = nal[2:]
    t = (nal[0] >> 1) & 0x3F
    header = bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))
    out, pos = [], 0
    for i, size in enumerate(sizes):
        s = 0x80 if i == 0 else 0
        e = 0x40 if i == len(sizes) - 1 else 0
        extra = b"\x12\x34" if donl and i == 0 else b""
        out.append(header + bytes((s | e | t,)) + extra + body[pos : pos + size])
        pos += size
    assert pos == len(body)
    return out


def feed_all(dep: H265Depacketizer, packets: list[RtpPacket]) -> list[MediaFrame]:
    out: list[MediaFrame] = []
    for p in packets:
        out += dep.feed(p)
    return out + dep.flush()


def test_ap_then_fu_gives_one_keyframe() -> None:
    frags = fu(IDR, [40, 40, 40])
    assert [f[:3].hex() for f in frags] == ["620193", "620113", "620153"]
    packets = [pkt(0, 9000, ap(VPS, SPS, PPS))] + [pkt(1 + i, 9000, f, marker=i == 2) for i, f in enumerate(frags)]
    dep = H265Depacketizer()
    assert feed_all(dep, packets) == [
        MediaFrame(codec="hevc", data=annexb(VPS, SPS, PPS, IDR), pts=9000, dts=None, keyframe=True)
    ]
    s = dep.statistics()
    assert (s.packets, s.frames, s.frames_dropped, s.malformed) == (4, 1, 0, 0)
    assert dep.parameter_sets == [VPS, SPS, PPS]


def test_single_nal_packets() -> None:
    dep = H265Depacketizer()
    (frame,) = feed_all(dep, [pkt(0, 0, AUD), pkt(1, 0, TRAIL), pkt(2, 0, TRAIL_2ND, marker=True)])
    assert frame.data == annexb(AUD, TRAIL, TRAIL_2ND)
    assert not frame.keyframe


def test_cra_is_a_keyframe_and_gets_parameter_sets() -> None:
    dep = H265Depacketizer(parameter_sets=[annexb(VPS, SPS, PPS)])
    (frame,) = feed_all(dep, [pkt(0, 0, SEI), pkt(1, 0, CRA, marker=True)])
    assert frame.keyframe
    assert frame.data == annexb(SEI, VPS, SPS, PPS, CRA)


def test_sps_ids_are_read_through_profile_tier_level() -> None:
    dep = H265Depacketizer(parameter_sets=[VPS, SPS, SPS1, SPS_SUBLAYER, PPS])
    assert dep.parameter_sets == [VPS, SPS, SPS_SUBLAYER, PPS]  # SPS_SUBLAYER has id 1 and replaced SPS1


def test_donl_fields_are_skipped_when_signalled() -> None:
    dep = H265Depacketizer(sprop_max_don_diff=2)
    frags = fu(IDR, [60, 60], donl=True)
    single = TRAIL[:2] + b"\x00\x09" + TRAIL[2:]
    packets = [pkt(0, 0, ap(VPS, SPS, PPS, donl=True))] + [pkt(1 + i, 0, f) for i, f in enumerate(frags)]
    packets += [pkt(3, 0, single, marker=True)]
    (frame,) = feed_all(dep, packets)
    assert frame.data == annexb(VPS, SPS, PPS, IDR, TRAIL)
    assert dep.statistics().malformed == 0


def test_paci_is_rejected_and_breaks_the_frame() -> None:
    dep = H265Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, TRAIL), pkt(1, 0, bytes((50 << 1, 1, 0, 0)) + TRAIL, marker=True)])
    assert frames == []
    s = dep.statistics()
    assert (s.unsupported, s.frames_dropped) == (1, 1)


def test_reserved_types_are_ignored() -> None:
    dep = H265Depacketizer()
    (frame,) = feed_all(dep, [pkt(0, 0, TRAIL), pkt(1, 0, bytes((60 << 1, 1, 5)), marker=True)])
    assert frame.data == annexb(TRAIL)
    assert dep.statistics().unsupported == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\x60",  # shorter than the payload header
        bytes((96, 1)),  # AP with no unit
        bytes((96, 1, 0, 9)) + VPS[:4],  # unit runs past the packet
        bytes((96, 1, 0, 1, 0x40)),  # one-byte unit (shorter than a NAL header)
        bytes((96, 1, 0, 3, 0x62, 1, 0x80)),  # an FU inside an AP
        bytes((0x62, 1, 0x93)),  # FU with no fragment
        bytes((0x62, 1, 0xB1, 5, 6)),  # FU carrying type 49
    ],
)
def test_malformed_payloads(payload: bytes) -> None:
    dep = H265Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, TRAIL), pkt(1, 0, payload, marker=True), pkt(2, 3600, TRAIL, marker=True)])
    assert [f.pts for f in frames] == ([0, 3600] if len(payload) < 2 else [3600])
    assert dep.statistics().malformed == 1


def test_lost_fu_fragment_drops_frame_only() -> None:
    frags = fu(IDR, [40, 40, 40])
    packets = [pkt(0, 0, ap(VPS, SPS, PPS))] + [pkt(1 + i, 0, f, marker=i == 2) for i, f in enumerate(frags)]
    packets += [pkt(4, 3600, TRAIL, marker=True)]
    del packets[2]
    dep = H265Depacketizer()
    assert [f.pts for f in feed_all(dep, packets)] == [3600]
    assert dep.statistics().frames_dropped == 1


def test_gap_then_irap_without_its_parameter_sets_is_dropped() -> None:
    frags = fu(IDR, [60, 60])
    packets = [pkt(0, 0, ap(VPS, SPS, PPS)), pkt(1, 0, frags[0]), pkt(2, 0, frags[1], marker=True)]
    packets += [pkt(3, 3600, TRAIL, marker=True)]
    packets += [pkt(4, 7200, ap(VPS, SPS, PPS)), pkt(5, 7200, frags[0]), pkt(6, 7200, frags[1], marker=True)]
    packets += [pkt(7, 10800, TRAIL, marker=True)]
    del packets[4]
    assert [f.pts for f in feed_all(H265Depacketizer(), packets)] == [0, 3600, 10800]


def test_gap_then_non_first_slice_segment_is_dropped() -> None:
    packets = [pkt(0, 0, TRAIL, marker=True), pkt(3, 3600, TRAIL_2ND, marker=True)]
    assert [f.pts for f in feed_all(H265Depacketizer(), packets)] == [0]


def test_packetizer_golden() -> None:
    pz = H265Packetizer(ssrc=9, mtu=12 + 50, initial_sequence=10)
    packets = pz.packetize(annexb(VPS, PPS, IDR), 1234)
    assert [p.payload for p in packets] == [ap(VPS, PPS), *fu(IDR, [47, 47, 26])]
    assert [p.marker for p in packets] == [False, False, False, True]
    assert [p.sequence_number for p in packets] == [10, 11, 12, 13]


def test_packetizer_ap_header_takes_lowest_layer_and_tid() -> None:
    a = bytes((0x40 | 0x01, 0x0B))  # VPS, layer id 33, tid 3
    b = bytes((0x44, 0x12)) + b"\x01"  # PPS, layer id 2, tid 2
    (packet,) = H265Packetizer(ssrc=1).packetize([a + b"\x01", b], 0)
    assert packet.payload[:2] == bytes((96, (2 << 3) | 2))


def test_packetizer_without_aggregation() -> None:
    pz = H265Packetizer(ssrc=1, use_aggregation=False)
    assert [p.payload for p in pz.packetize([VPS, SPS, PPS, TRAIL], 0)] == [VPS, SPS, PPS, TRAIL]


@pytest.mark.parametrize("nal", [b"\x40", bytes((48 << 1, 1, 2)), bytes((49 << 1, 1, 2)), bytes((63 << 1, 1))])
def test_packetizer_rejects_unsendable_nals(nal: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        H265Packetizer(ssrc=1).packetize([nal], 0)


def test_header_only_nal_travels() -> None:
    eos = bytes((36 << 1, 1))
    pz = H265Packetizer(ssrc=1, use_aggregation=False)
    dep = H265Depacketizer()
    frames = feed_all(dep, pz.packetize([TRAIL, eos], 0))
    assert frames[0].data == annexb(TRAIL, eos)
