"""GB28181 MPEG-PS over RTP: chunking by marker bit and by timestamp, losses, the packetizer."""

from __future__ import annotations

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.rtp._packet import RtpPacket
from fluxkit.protocols.rtp.payload import PsRtpDepacketizer, PsRtpPacketizer

PACK = b"\x00\x00\x01\xba" + bytes(range(10))
A = PACK + b"frame-a" * 20
B = PACK + b"frame-b" * 20
C = PACK + b"frame-c" * 20


def pkt(seq: int, ts: int, payload: bytes, *, marker: bool = False, ssrc: int = 0x0BEBDFA1) -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=ts, ssrc=ssrc, payload=payload,
                     marker=marker)  # fmt: skip


def split(seq: int, ts: int, data: bytes, n: int, *, marker: bool = True) -> list[RtpPacket]:
    size = -(-len(data) // n)
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return [pkt(seq + i, ts, p, marker=marker and i == len(pieces) - 1) for i, p in enumerate(pieces)]


def feed_all(dep: PsRtpDepacketizer, packets: list[RtpPacket]) -> list[bytes]:
    out: list[bytes] = []
    for p in packets:
        out += dep.feed(p)
    return out + dep.flush()


def test_marker_ends_each_chunk() -> None:
    dep = PsRtpDepacketizer()
    out = []
    for p in split(0, 0, A, 3) + split(3, 3600, B, 2):
        out.append(dep.feed(p))
    assert out == [[], [], [A], [], [B]]
    s = dep.statistics()
    assert (s.packets, s.frames, s.frames_dropped) == (5, 2, 0)


def test_timestamp_change_ends_chunk_when_sender_sets_no_marker() -> None:
    dep = PsRtpDepacketizer()
    packets = split(0, 0, A, 3, marker=False) + split(3, 3600, B, 2, marker=False)
    out = [dep.feed(p) for p in packets]
    assert out == [[], [], [], [A], []]
    assert dep.flush() == [B]


def test_lost_packet_drops_its_chunk_only() -> None:
    packets = split(0, 0, A, 3) + split(3, 3600, B, 3) + split(6, 7200, C, 3)
    del packets[4]
    dep = PsRtpDepacketizer()
    assert feed_all(dep, packets) == [A, C]
    assert dep.statistics().frames_dropped == 1


def test_lost_first_packet_drops_chunk_even_across_the_marker() -> None:
    packets = split(0, 0, A, 3) + split(3, 3600, B, 3) + split(6, 7200, C, 3)
    del packets[3]  # B's first packet: B's rest does not begin with a pack header
    assert feed_all(PsRtpDepacketizer(), packets) == [A, C]


def test_lost_whole_chunk_keeps_the_next_one() -> None:
    packets = split(0, 0, A, 3) + split(3, 3600, B, 3) + split(6, 7200, C, 3)
    del packets[3:6]
    dep = PsRtpDepacketizer()
    assert feed_all(dep, packets) == [A, C]
    assert dep.statistics().frames_dropped == 0


def test_lost_marker_packet_without_timestamp_change_is_caught_by_sequence() -> None:
    packets = split(0, 0, A, 2) + split(2, 3600, B, 2)
    del packets[1]
    assert feed_all(PsRtpDepacketizer(), packets) == [B]


def test_feed_gap_and_joining_mid_chunk() -> None:
    dep = PsRtpDepacketizer()
    a = split(0, 0, A, 3)
    out = dep.feed(a[1]) + dep.feed(a[2])  # joined mid-chunk: no pack header at its start
    assert out == []
    b = split(3, 3600, B, 3)
    out = dep.feed(b[0])
    dep.feed_gap()
    out += dep.feed(b[1]) + dep.feed(b[2])
    out += feed_all(dep, split(6, 7200, C, 1))
    assert out == [C]
    assert dep.statistics().frames_dropped == 2


def test_late_duplicate_and_empty_packets() -> None:
    a = split(0, 0, A, 3)
    out = feed_all(PsRtpDepacketizer(), [a[0], a[1], a[0], a[1], a[2], a[2]])
    assert out == [A]
    dep = PsRtpDepacketizer()
    feed_all(dep, [*a[:2], pkt(3, 0, b""), a[2]])
    s = dep.statistics()
    assert (s.malformed, s.late) == (1, 1)


def test_ssrc_change_drops_unfinished_chunk() -> None:
    dep = PsRtpDepacketizer()
    packets = [*split(0, 0, A, 3)[:2], pkt(500, 100, B, marker=True, ssrc=5)]
    assert feed_all(dep, packets) == [B]


def test_oversized_chunk_is_dropped() -> None:
    dep = PsRtpDepacketizer(max_frame_size=100)
    assert feed_all(dep, split(0, 0, A, 3) + split(3, 3600, PACK, 1)) == [PACK]
    assert dep.statistics().frames_dropped == 1


def test_packetizer_splits_at_mtu_and_marks_last() -> None:
    pz = PsRtpPacketizer(ssrc=0x0BEBDFA1, mtu=12 + 100, initial_sequence=65535)
    data = bytes(range(256)) * 2
    packets = pz.packetize(data, 0x1_0000_0001)
    assert [len(p.payload) for p in packets] == [100] * 5 + [12]
    assert b"".join(p.payload for p in packets) == data
    assert [p.sequence_number for p in packets] == [65535, 0, 1, 2, 3, 4]
    assert [p.marker for p in packets] == [False] * 5 + [True]
    assert {(p.timestamp, p.ssrc, p.payload_type) for p in packets} == {(1, 0x0BEBDFA1, 96)}
    assert pz.next_sequence == 5


def test_packetizer_rejects_bad_settings() -> None:
    with pytest.raises(LocalProtocolError):
        PsRtpPacketizer(ssrc=1, mtu=12)
