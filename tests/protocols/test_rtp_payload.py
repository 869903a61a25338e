"""H.264 over RTP (RFC 6184): hand-built golden packets both ways, the access-unit and loss rules, counters.

The NAL units below are short hand-made ones: the depacketizer reads only their headers (and, for parameter sets,
the id fields), so real slice data is not needed here; tests/protocols/test_rtp_payload_roundtrip.py runs real
encoder output.
"""

from __future__ import annotations

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket, parse_rtp
from fluxkit.protocols.rtp.payload import (
    DEFAULT_MTU,
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    PsOverRtpReceiver,
    depacketizer_for,
)

SC = b"\x00\x00\x00\x01"
SPS = bytes.fromhex("6742c01eda0280bfe584000003000400000300ca3c58ba80")  # seq_parameter_set_id 0
SPS1 = bytes.fromhex("6742c01e5a0280bfe584")  # seq_parameter_set_id 1 (ue "010")
PPS = bytes.fromhex("68ce3c80")  # pic_parameter_set_id 0
AUD = bytes.fromhex("09f0")
SEI = bytes.fromhex("0605ffee0102030480")
IDR = bytes.fromhex("6588840021") + bytes(range(1, 96))  # first_mb_in_slice = 0
P = bytes.fromhex("419a0204") + bytes(range(1, 41))  # non-IDR slice, first_mb_in_slice = 0
P_SECOND_SLICE = bytes.fromhex("41489a02") + bytes(range(1, 11))  # first_mb_in_slice != 0


def annexb(*nals: bytes) -> bytes:
    return b"".join(SC + n for n in nals)


def pkt(seq: int, ts: int, payload: bytes, *, marker: bool = False, ssrc: int = 7) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=payload,
                     marker=marker)  # fmt: skip


def stap_a(*nals: bytes) -> bytes:
    nri = max(n[0] & 0x60 for n in nals)
    return bytes((nri | 24,)) + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def fu_a(nal: bytes, sizes: list[int]) -> list[bytes]:
    body = nal[1:]
    out, pos = [], 0
    for i, size in enumerate(sizes):
        s = 0x80 if i == 0 else 0
        e = 0x40 if i == len(sizes) - 1 else 0
        out.append(bytes(((nal[0] & 0xE0) | 28, s | e | (nal[0] & 0x1F))) + body[pos : pos + size])
        pos += size
    assert pos == len(body)
    return out


def feed_all(dep: H264Depacketizer | H265Depacketizer, packets: list[RtpPacket]) -> list[MediaFrame]:
    out: list[MediaFrame] = []
    for p in packets:
        out += dep.feed(p)
    return out + dep.flush()


def idr_au_packets(seq: int, ts: int) -> list[RtpPacket]:
    frags = fu_a(IDR, [40, 40, 19])
    return [pkt(seq, ts, stap_a(SPS, PPS))] + [
        pkt(seq + 1 + i, ts, f, marker=i == len(frags) - 1) for i, f in enumerate(frags)
    ]


# --------------------------------------------------------------------------------------------- golden: receive


def test_stap_a_then_fu_a_gives_one_keyframe() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, idr_au_packets(100, 90000))
    assert frames == [MediaFrame(codec="h264", data=annexb(SPS, PPS, IDR), pts=90000, dts=None, keyframe=True)]
    s = dep.statistics()
    assert (s.packets, s.frames, s.frames_dropped, s.malformed, s.unsupported, s.late) == (4, 1, 0, 0, 0, 0)


def test_golden_fu_a_bytes() -> None:
    # RFC 6184 §5.8: indicator = F|NRI|28, header = S|E|R|type; the original header byte is rebuilt from both.
    frags = fu_a(IDR, [40, 40, 19])
    assert [f[:2].hex() for f in frags] == ["7c85", "7c05", "7c45"]
    dep = H264Depacketizer()
    out = feed_all(dep, [pkt(0, 0, stap_a(SPS, PPS))] + [pkt(i + 1, 0, f) for i, f in enumerate(frags)])
    assert out[0].data == annexb(SPS, PPS, IDR)


def test_single_nal_packets_and_marker() -> None:
    dep = H264Depacketizer()
    assert dep.feed(pkt(1, 3000, P)) == []
    (frame,) = dep.feed(pkt(2, 3000, P_SECOND_SLICE, marker=True))
    assert frame.data == annexb(P, P_SECOND_SLICE)
    assert not frame.keyframe
    assert frame.pts == 3000
    assert frame.dts is None
    assert frame.kind == "video"


def test_timestamp_change_ends_access_unit_without_marker() -> None:
    dep = H264Depacketizer()
    assert dep.feed(pkt(1, 0, P)) == []
    (a,) = dep.feed(pkt(2, 3600, P))
    assert a.pts == 0
    (b,) = dep.flush()
    assert b.pts == 3600
    assert dep.flush() == []


def test_timestamps_unwrap_and_step_back() -> None:
    dep = H264Depacketizer()
    stamps = [0xFFFFF000, 0x00000E10, 0xFFFFF000 + 1800, 0x00002A30]
    frames = feed_all(dep, [pkt(i, ts, P, marker=True) for i, ts in enumerate(stamps)])
    assert [f.pts for f in frames] == [0xFFFFF000, 0x100000E10, 0xFFFFF000 + 1800, 0x100002A30]


def test_sequence_numbers_wrap_without_loss() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [*idr_au_packets(65534, 0), pkt(2, 3600, P, marker=True)])
    assert len(frames) == 2
    assert dep.statistics().frames_dropped == 0


def test_aud_sei_and_filler_pass_through() -> None:
    filler = bytes.fromhex("0cffff80")
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, stap_a(AUD, SPS, PPS, SEI)), pkt(1, 0, IDR), pkt(2, 0, filler, marker=True)])
    assert frames[0].data == annexb(AUD, SPS, PPS, SEI, IDR, filler)


def test_parameter_sets_only_unit_is_remembered_not_emitted() -> None:
    # Some cameras send SPS/PPS with their own marker/timestamp: no frame, but the next IDR gets them.
    dep = H264Depacketizer()
    out = feed_all(dep, [pkt(0, 0, stap_a(SPS, PPS), marker=True), pkt(1, 3600, IDR, marker=True)])
    assert [f.data for f in out] == [annexb(SPS, PPS, IDR)]
    assert dep.statistics().frames == 1


# ------------------------------------------------------------------------------------- parameter-set prepending


def test_idr_without_parameter_sets_gets_the_latest_ones() -> None:
    dep = H264Depacketizer()
    packets = [*idr_au_packets(0, 0), pkt(4, 3600, P, marker=True), pkt(5, 7200, IDR, marker=True)]
    frames = feed_all(dep, packets)
    assert [f.keyframe for f in frames] == [True, False, True]
    assert frames[2].data == annexb(SPS, PPS, IDR)
    assert frames[1].data == annexb(P)


def test_prepended_sets_go_after_aud_and_sei() -> None:
    dep = H264Depacketizer(parameter_sets=[SPS, SC + PPS])
    (frame,) = feed_all(dep, [pkt(0, 0, stap_a(AUD, SEI)), pkt(1, 0, IDR, marker=True)])
    assert frame.data == annexb(AUD, SEI, SPS, PPS, IDR)


def test_only_the_missing_kind_is_prepended() -> None:
    dep = H264Depacketizer(parameter_sets=[annexb(SPS, PPS)])
    (frame,) = feed_all(dep, [pkt(0, 0, stap_a(SPS1, AUD)), pkt(1, 0, IDR, marker=True)])
    assert frame.data == annexb(SPS1, AUD, PPS, IDR)
    assert dep.parameter_sets == [SPS, SPS1, PPS]


def test_latest_parameter_set_of_an_id_wins() -> None:
    newer_pps = bytes.fromhex("68ce3880")  # id 0 again
    dep = H264Depacketizer(parameter_sets=[SPS, PPS])
    feed_all(dep, [pkt(0, 0, stap_a(SPS, newer_pps)), pkt(1, 0, IDR, marker=True)])
    assert dep.parameter_sets == [SPS, newer_pps]
    (frame,) = feed_all(dep, [pkt(2, 3600, IDR, marker=True)])
    assert frame.data == annexb(SPS, newer_pps, IDR)


def test_non_keyframes_get_nothing_prepended() -> None:
    dep = H264Depacketizer(parameter_sets=[SPS, PPS])
    (frame,) = feed_all(dep, [pkt(0, 0, P, marker=True)])
    assert frame.data == annexb(P)


# -------------------------------------------------------------------------------------------------- losses


def test_lost_fu_a_middle_drops_that_frame_only() -> None:
    dep = H264Depacketizer()
    packets = [*idr_au_packets(0, 0), pkt(4, 3600, P, marker=True)]
    del packets[2]
    frames = feed_all(dep, packets)
    assert [f.data for f in frames] == [annexb(P)]
    s = dep.statistics()
    assert (s.frames, s.frames_dropped, s.malformed) == (1, 1, 0)


def test_lost_fu_a_start_is_discarded_not_spliced() -> None:
    dep = H264Depacketizer()
    p2 = bytes.fromhex("419a0204") + bytes(range(50, 150))
    frags = fu_a(p2, [40, 40, 23])
    packets = [pkt(0, 0, P, marker=True)]
    packets += [pkt(1 + i, 3600, f, marker=i == 2) for i, f in enumerate(frags)]
    packets += [pkt(4, 7200, P, marker=True)]
    del packets[1]  # the FU-A start
    frames = feed_all(dep, packets)
    assert [f.pts for f in frames] == [0, 7200]
    assert all(f.data == annexb(P) for f in frames)
    assert dep.statistics().frames_dropped == 1


def test_lost_marker_packet_drops_frame_and_next_start_is_judged() -> None:
    dep = H264Depacketizer()
    frags = fu_a(bytes.fromhex("419a0204") + bytes(100), [50, 53])
    packets = [pkt(0, 0, frags[0]), pkt(1, 0, frags[1], marker=True), pkt(2, 3600, P, marker=True)]
    del packets[1]
    frames = feed_all(dep, packets)
    assert [f.pts for f in frames] == [3600]


def test_feed_gap_drops_frame_in_progress() -> None:
    dep = H264Depacketizer()
    packets = idr_au_packets(0, 0)
    for p in packets[:2]:
        assert dep.feed(p) == []
    dep.feed_gap()  # the reorder buffer gave up on a packet; numbering resumes after it
    out = []
    for p in packets[3:]:
        out += dep.feed(p)
    out += dep.feed(pkt(5, 3600, P, marker=True))
    assert [f.pts for f in out] == [3600]
    assert dep.statistics().frames_dropped == 1


def test_gap_before_a_frame_that_starts_cleanly_keeps_it() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P, marker=True), pkt(5, 3600, P, marker=True)])  # 1..4 lost whole
    assert [f.pts for f in frames] == [0, 3600]
    assert dep.statistics().frames_dropped == 0


def test_gap_then_non_first_slice_drops_frame() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P, marker=True), pkt(5, 3600, P_SECOND_SLICE, marker=True)])
    assert [f.pts for f in frames] == [0]
    assert dep.statistics().frames_dropped == 1


def test_idr_whose_in_band_parameter_sets_were_lost_is_dropped() -> None:
    # The stream has shown that its IDR access units begin with the SPS: an IDR slice right after a gap means
    # the packet holding SPS/PPS (and maybe SEI) was lost, so the frame was hit.
    dep = H264Depacketizer()
    packets = idr_au_packets(0, 0) + [pkt(4 + i, 3600 * (i + 1), P, marker=True) for i in range(3)]
    packets += [*idr_au_packets(7, 4 * 3600), pkt(11, 5 * 3600, P, marker=True)]
    del packets[7]  # the second IDR's STAP-A
    frames = feed_all(dep, packets)
    assert [f.pts // 3600 for f in frames] == [0, 1, 2, 3, 5]


def test_idr_after_gap_is_kept_when_sets_come_from_the_sdp() -> None:
    dep = H264Depacketizer(parameter_sets=[SPS, PPS])
    frames = feed_all(dep, [pkt(3, 0, IDR, marker=True)])
    assert frames[0].data == annexb(SPS, PPS, IDR)


def test_joining_mid_frame_drops_the_partial_first_frame() -> None:
    dep = H264Depacketizer()
    frags = fu_a(IDR, [40, 40, 19])
    frames = feed_all(dep, [pkt(1, 0, frags[1]), pkt(2, 0, frags[2], marker=True), pkt(3, 3600, P, marker=True)])
    assert [f.pts for f in frames] == [3600]


def test_late_and_duplicate_packets_are_dropped_and_counted() -> None:
    dep = H264Depacketizer()
    packets = idr_au_packets(10, 0)
    out = []
    for p in [packets[0], packets[1], packets[1], packets[2], packets[0], packets[3]]:
        out += dep.feed(p)
    assert [f.data for f in out] == [annexb(SPS, PPS, IDR)]
    assert dep.statistics().late == 2


def test_far_backward_jump_is_a_restart_not_late() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(5000, 0, P, marker=True), pkt(10, 3600, P, marker=True)])
    assert [f.pts for f in frames] == [0, 3600]


def test_ssrc_change_drops_unfinished_frame_and_restarts_timeline() -> None:
    dep = H264Depacketizer()
    out = feed_all(dep, [pkt(0, 0, IDR[:50]), pkt(0, 500, P, marker=True, ssrc=99)])
    assert [f.pts for f in out] == [500]
    assert dep.statistics().frames_dropped == 1


def test_oversized_frame_is_dropped_and_memory_freed() -> None:
    dep = H264Depacketizer(max_frame_size=120)
    big = bytes.fromhex("419a0204") + bytes(300)
    frags = fu_a(big, [100, 100, 103])
    packets = [pkt(i, 0, f, marker=i == 2) for i, f in enumerate(frags)] + [pkt(3, 3600, P, marker=True)]
    frames = feed_all(dep, packets)
    assert [f.pts for f in frames] == [3600]
    assert dep.statistics().frames_dropped == 1


# --------------------------------------------------------------------------------------- malformed / rejected


@pytest.mark.parametrize("kind", [25, 26, 27, 29])
def test_interleaved_mode_packets_are_rejected_and_break_the_frame(kind: int) -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P), pkt(1, 0, bytes((0x60 | kind, 0, 1, 2, 3)), marker=True)])
    assert frames == []
    s = dep.statistics()
    assert (s.unsupported, s.frames_dropped) == (1, 1)


@pytest.mark.parametrize("kind", [0, 30, 31])
def test_reserved_types_are_ignored(kind: int) -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P), pkt(1, 0, bytes((kind, 1, 2)), marker=True)])
    assert [f.data for f in frames] == [annexb(P)]
    assert dep.statistics().unsupported == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\x18",  # STAP-A with no unit
        b"\x18\x00\x09\x67\x42",  # unit runs past the packet
        b"\x18\x00\x00",  # zero-size unit
        b"\x18\x00\x04\x68\xce\x3c\x80\x00",  # one stray byte after the units
        b"\x18\x00\x02\x7c\x85",  # an FU-A inside a STAP-A
        b"\x7c\x85",  # FU-A with no fragment
        b"\x7c\x9c\x01\x02",  # FU-A carrying type 28
    ],
)
def test_malformed_payloads_are_counted_and_drop_the_frame(payload: bytes) -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P), pkt(1, 0, payload, marker=True), pkt(2, 3600, P, marker=True)])
    assert [f.pts for f in frames] == [3600]
    assert dep.statistics().malformed == 1


def test_fu_a_without_start_and_no_loss_is_malformed() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P, marker=True), pkt(1, 3600, b"\x7c\x05abc", marker=True)])
    assert [f.pts for f in frames] == [0]
    assert dep.statistics().malformed == 1


def test_fu_a_interrupted_by_another_nal_is_malformed() -> None:
    dep = H264Depacketizer()
    frags = fu_a(IDR, [40, 59])
    frames = feed_all(dep, [pkt(0, 0, stap_a(SPS, PPS)), pkt(1, 0, frags[0]), pkt(2, 0, P, marker=True)])
    assert frames == []
    assert dep.statistics().malformed == 1


def test_empty_payload_is_malformed_but_harmless() -> None:
    dep = H264Depacketizer()
    frames = feed_all(dep, [pkt(0, 0, P), pkt(1, 0, b""), pkt(2, 0, P_SECOND_SLICE, marker=True)])
    assert [f.data for f in frames] == [annexb(P, P_SECOND_SLICE)]
    assert dep.statistics().malformed == 1


# ---------------------------------------------------------------------------------------------- golden: send


def test_packetizer_golden_stap_a_and_fu_a() -> None:
    pz = H264Packetizer(payload_type=98, ssrc=0x11223344, mtu=12 + 40, initial_sequence=65535)
    packets = pz.packetize(annexb(SPS, PPS, IDR), 0x1_0000_0005)
    assert [p.sequence_number for p in packets] == [65535, 0, 1, 2]
    assert [p.marker for p in packets] == [False, False, False, True]
    assert {p.timestamp for p in packets} == {5}
    assert packets[0].payload == stap_a(SPS, PPS)
    assert [p.payload for p in packets[1:]] == fu_a(IDR, [38, 38, 23])
    assert packets[0].serialize()[:12].hex() == "8062ffff0000000511223344"
    assert pz.next_sequence == 3
    assert [p.sequence_number for p in pz.packetize([PPS], 3600)] == [3]


def test_packetizer_single_nal_and_list_input() -> None:
    pz = H264Packetizer(ssrc=1)
    (packet,) = pz.packetize([P], 0)
    assert packet.payload == P
    assert packet.marker
    assert packet.payload_type == 96


def test_packetizer_without_stap_a_sends_parameter_sets_singly() -> None:
    pz = H264Packetizer(ssrc=1, use_stap_a=False)
    assert [p.payload for p in pz.packetize(annexb(SPS, PPS, P), 0)] == [SPS, PPS, P]


def test_packetizer_stap_a_nri_and_f_bits() -> None:
    low = bytes.fromhex("0605ff")  # SEI, NRI 0
    forbidden = bytes.fromhex("8c0102")  # F set, NRI 0, type 12
    (packet,) = H264Packetizer(ssrc=1).packetize([low, forbidden, PPS], 0)
    assert packet.payload[0] == 0x80 | 0x60 | 24


def test_packetizer_output_parses_back() -> None:
    pz = H264Packetizer(ssrc=5, mtu=DEFAULT_MTU)
    big = bytes.fromhex("419a0204") + bytes(5000)
    for packet in pz.packetize([SPS, PPS, big], 9):
        wire = packet.serialize()
        assert len(wire) <= DEFAULT_MTU
        assert parse_rtp(wire) == packet


@pytest.mark.parametrize(
    "kwargs",
    [{"ssrc": -1}, {"ssrc": 1 << 32}, {"ssrc": 1, "payload_type": 128}, {"ssrc": 1, "mtu": 15},
     {"ssrc": 1, "initial_sequence": 65536}],
)  # fmt: skip
def test_packetizer_rejects_bad_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        H264Packetizer(**kwargs)


@pytest.mark.parametrize("header", [0x18, 0x1C, 0x1F, 0x00])
def test_packetizer_rejects_rtp_reserved_nal_types(header: int) -> None:
    with pytest.raises(LocalProtocolError):
        H264Packetizer(ssrc=1).packetize([bytes((header, 1, 2))], 0)


def test_packetizer_skips_empty_nals() -> None:
    assert [p.payload for p in H264Packetizer(ssrc=1, use_stap_a=False).packetize([b"", P], 0)] == [P]


# --------------------------------------------------------------------------------------------------- factory


def test_depacketizer_for() -> None:
    assert isinstance(depacketizer_for("H264"), H264Depacketizer)
    assert isinstance(depacketizer_for("h265"), H265Depacketizer)
    assert isinstance(depacketizer_for("HEVC", sprop_max_don_diff=2), H265Depacketizer)
    assert isinstance(depacketizer_for("PS"), PsOverRtpReceiver)
    assert isinstance(depacketizer_for(" mp2p "), PsOverRtpReceiver)
    assert depacketizer_for("VP8") is None
    dep = depacketizer_for("H264", parameter_sets=[SPS, PPS])
    assert dep is not None
    (frame,) = dep.feed(pkt(0, 0, IDR, marker=True))
    assert frame.data == annexb(SPS, PPS, IDR)
