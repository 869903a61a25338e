"""Media for the inspect tests, built from tests/mediagen.py streams with fluxkit's own muxers and packetizers."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence

from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from fluxkit.protocols.ps import PsMuxer
from fluxkit.protocols.rtp import RtpPacket
from fluxkit.protocols.rtp.payload import H264Packetizer, H265Packetizer, PsRtpPacketizer
from tests.inspect import capgen
from tests.inspect.capgen import ETH_IPV4
from tests.mediagen import encode_annexb

TICK = 3600  # 90 kHz ticks per frame at 25 fps


@functools.cache
def access_units(
    codec: str = "h264", *, frames: int = 50, gop: int = 25, width: int = 320, height: int = 240
) -> tuple[tuple[bytes, bool], ...]:
    """(Annex-B access unit, keyframe) pairs of a mediagen stream."""
    assembler = AccessUnitAssembler(codec, insert_parameter_sets=False)
    aus = []
    for nal in split_annexb(encode_annexb(codec, width=width, height=height, frames=frames, gop=gop)):
        aus += assembler.feed(nal)
    aus += assembler.flush()
    return tuple((au.annexb, au.keyframe) for au in aus)


def ps_file(codec: str = "h264", *, frames: int = 50, gop: int = 25, audio: bool = False) -> bytes:
    muxer = PsMuxer(codec, "pcm_alaw" if audio else None)
    out = []
    for i, (au, key) in enumerate(access_units(codec, frames=frames, gop=gop)):
        out.append(muxer.mux_video(au, pts=i * TICK + 9000, keyframe=key))
        if audio:
            out.append(muxer.mux_audio(bytes([0xD5]) * 320, pts=i * TICK + 9000))
    return b"".join(out)


def video_rtp(
    codec: str = "h264",
    *,
    frames: int = 50,
    gop: int = 25,
    ssrc: int = 0x1234ABCD,
    pt: int = 96,
    seq: int = 65500,
    mtu: int = 1200,
) -> list[RtpPacket]:
    packetizer = (H264Packetizer if codec == "h264" else H265Packetizer)(
        payload_type=pt, ssrc=ssrc, initial_sequence=seq, mtu=mtu
    )
    packets: list[RtpPacket] = []
    for i, (au, _) in enumerate(access_units(codec, frames=frames, gop=gop)):
        packets += packetizer.packetize(au, 0xFFFF0000 + i * TICK)  # the timestamp wraps mid-stream
    return packets


def ps_rtp(
    *, frames: int = 50, gop: int = 25, ssrc: int = 0x0100000001, pt: int = 96, audio: bool = False
) -> tuple[list[RtpPacket], list[list[int]]]:
    """PS-over-RTP packets (GB28181 shape) and, per frame, the indexes of its packets."""
    muxer = PsMuxer("h264", "pcm_alaw" if audio else None)
    packetizer = PsRtpPacketizer(payload_type=pt, ssrc=ssrc & 0xFFFFFFFF, initial_sequence=100)
    packets: list[RtpPacket] = []
    groups: list[list[int]] = []
    for i, (au, key) in enumerate(access_units("h264", frames=frames, gop=gop)):
        ps = muxer.mux_video(au, pts=i * TICK, keyframe=key)
        new = packetizer.packetize(ps, i * TICK)
        groups.append(list(range(len(packets), len(packets) + len(new))))
        packets += new
    return packets, groups


def g711_rtp(*, packets: int = 50, ssrc: int = 0xA1A1, pt: int = 8) -> list[RtpPacket]:
    return [
        RtpPacket(
            payload_type=pt, sequence_number=i, timestamp=i * 160, ssrc=ssrc, payload=bytes([0xD5]) * 160, marker=i == 0
        )
        for i in range(packets)
    ]


def udp_frames(
    payloads: Iterable[bytes],
    *,
    sport: int = 40000,
    dport: int = 5004,
    start: float = 1000.0,
    step: float = 0.01,
    linktype: int = 1,
) -> list[tuple[float, bytes]]:
    out = []
    for i, p in enumerate(payloads):
        ip = capgen.ipv4(17, capgen.udp(sport, dport, p))
        frame = capgen.ethernet(ETH_IPV4, ip) if linktype == 1 else capgen.sll2(ETH_IPV4, ip) if linktype == 276 else ip
        out.append((start + i * step, frame))
    return out


def tcp_frames(
    stream: bytes,
    *,
    sport: int = 40001,
    dport: int = 6000,
    isn: int = 0xFFFF0000,
    mss: int = 1400,
    start: float = 2000.0,
    shuffle: random.Random | None = None,
    retransmit: Sequence[int] = (),
    syn: bool = True,
    fin: bool = True,
) -> list[tuple[float, bytes]]:
    """Ethernet/IPv4/TCP frames carrying `stream` in one direction (SYN, data in `mss` pieces, FIN), with ACKs the
    other way; `shuffle` reorders the data segments, `retransmit` sends those data segments twice."""

    def frame(s: bytes, src_port: int, dst_port: int) -> bytes:
        return capgen.ethernet(ETH_IPV4, capgen.ipv4(6, s))

    pieces = [(isn + 1 + i, stream[i : i + mss]) for i in range(0, len(stream), mss)]
    data = [frame(capgen.tcp(sport, dport, seq, p), sport, dport) for seq, p in pieces]
    for i in retransmit:
        data.insert(i + 1, data[i])
    if shuffle is not None:
        shuffle.shuffle(data)
    frames = []
    if syn:
        frames.append(frame(capgen.tcp(sport, dport, isn, flags=0x02), sport, dport))
        frames.append(frame(capgen.tcp(dport, sport, 77, flags=0x12), dport, sport))
    for d in data:
        frames.append(d)
        frames.append(frame(capgen.tcp(dport, sport, 78, flags=0x10), dport, sport))  # pure ACK back
    if fin:
        frames.append(frame(capgen.tcp(sport, dport, isn + 1 + len(stream), flags=0x11), sport, dport))
    return [(start + i * 0.001, f) for i, f in enumerate(frames)]


def rfc4571(packets: Iterable[RtpPacket]) -> bytes:
    return b"".join(len(b).to_bytes(2, "big") + b for b in (p.serialize() for p in packets))


def interleaved(packets: Iterable[RtpPacket], channel: int = 0) -> bytes:
    return b"".join(b"$" + bytes([channel]) + len(b).to_bytes(2, "big") + b for b in (p.serialize() for p in packets))
