"""Loss, duplication and reordering end to end: packetize -> impair -> ReorderBuffer -> depacketize (-> demux).

The network is simulated with a seeded `random.Random`: independent drops, short burst losses that take whole
frames, duplicates and neighbour swaps. The reorder buffer repairs the swaps and duplicates and reports gaps
for what stays missing. The expected output is computed from what the reorder buffer actually delivered: a
frame must come out, byte-exact and in order, exactly when every one of its packets was delivered; no other frame
may come out (a frame hit by a loss is dropped, never spliced).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import is_keyframe_au, split_annexb
from fluxkit.protocols.ps import PsMuxer
from fluxkit.protocols.rtp import ReorderBuffer, RtpDiscontinuity
from fluxkit.protocols.rtp._packet import RtpPacket
from fluxkit.protocols.rtp.payload import (
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
    PsOverRtpReceiver,
    PsRtpPacketizer,
)
from tests.mediagen import encode_annexb

SC = b"\x00\x00\x00\x01"
FRAME_TICKS = 3600  # 25 fps at 90 kHz


def parse_units(codec: str, data: bytes) -> list[bytes]:
    ctx = av.CodecContext.create(codec, "r")
    return [bytes(p) for p in ctx.parse(data) + ctx.parse(None)]


@functools.cache
def generated(codec: str) -> tuple[bytes, ...]:
    return tuple(parse_units(codec, encode_annexb(codec, frames=60, gop=15, bframes=2)))


@functools.cache
def clip(path: Path, codec: str) -> tuple[bytes, ...]:
    return tuple(parse_units(codec, path.read_bytes()))


def impair(packets: list[RtpPacket], rng: random.Random, spare: int) -> list[RtpPacket]:
    out: list[RtpPacket] = packets[:spare]
    burst = 0
    for p in packets[spare:]:
        if burst:
            burst -= 1
            continue
        r = rng.random()
        if r < 0.01:
            burst = rng.randint(3, 25)  # takes whole frames, and heads and tails of others
            continue
        if r < 0.05:
            continue
        out.append(p)
        if rng.random() < 0.03:
            out.append(p)
    i = spare
    while i < len(out) - 1:
        if rng.random() < 0.05:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    return out


def through_network(
    per_frame: list[list[RtpPacket]],
    rng: random.Random,
    feed: Callable[[RtpPacket], list[MediaFrame]],
    gap: Callable[[], None],
) -> tuple[list[MediaFrame], list[int]]:
    """Impair, reorder (1 ms between arrivals, 40 ms max wait), depacketize.

    The first frame (a keyframe, with the PS stream's PSM) is spared: a receiver joining without it has neither
    the codec nor the parameter sets, which is the demuxer's business, not the loss handling tested here.

    Returns:
        The frames, and the indices of the frames whose packets were all delivered by the reorder buffer.
    """
    packets = [p for ps in per_frame for p in ps]
    buffer = ReorderBuffer(max_delay=0.04)
    delivered: set[int] = set()
    frames: list[MediaFrame] = []

    def take(items: list[RtpPacket | RtpDiscontinuity]) -> None:
        for item in items:
            if isinstance(item, RtpPacket):
                delivered.add(id(item))
                frames.extend(feed(item))
            else:
                gap()

    now = 0.0
    for packet in impair(packets, rng, len(per_frame[0])):
        now += 0.001
        take(buffer.handle_timer(now))
        take(buffer.push(packet, now))
    take(buffer.flush())
    return frames, [i for i, ps in enumerate(per_frame) if all(id(p) in delivered for p in ps)]


def canonical(au: bytes) -> bytes:
    return b"".join(SC + n for n in split_annexb(au))


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_direct_payload_format_under_loss(codec: str, seed: int) -> None:
    run_direct(codec, generated(codec), seed, mtu=400)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_ps_over_rtp_under_loss(seed: int) -> None:
    run_ps("h264", generated("h264"), seed, mtu=300)


def test_ps_over_rtp_hevc_under_loss() -> None:
    run_ps("hevc", generated("hevc"), 7, mtu=300)


@pytest.mark.media
@pytest.mark.parametrize(("name", "codec"), [("avatar.h264", "h264"), ("avatar.h265", "hevc")])
def test_real_clips_under_loss(shared_media: Path, name: str, codec: str) -> None:
    units = clip(shared_media / name, codec)
    assert len(units) == 308
    run_direct(codec, units, 11, mtu=1200)
    run_ps(codec, units, 12, mtu=1400)


def run_direct(codec: str, units: tuple[bytes, ...], seed: int, *, mtu: int) -> None:
    if codec == "h264":
        pz: H264Packetizer | H265Packetizer = H264Packetizer(ssrc=77, mtu=mtu, initial_sequence=65000)
        dep: H264Depacketizer | H265Depacketizer = H264Depacketizer()
    else:
        pz = H265Packetizer(ssrc=77, mtu=mtu, initial_sequence=65000)
        dep = H265Depacketizer()
    per_frame = [pz.packetize(au, 1000 + i * FRAME_TICKS) for i, au in enumerate(units)]
    frames, kept = through_network(per_frame, random.Random(seed), dep.feed, dep.feed_gap)
    frames += dep.flush()
    assert 0 < len(kept) < len(units)
    assert [(f.pts, f.data) for f in frames] == [(1000 + i * FRAME_TICKS, canonical(units[i])) for i in kept]
    s = dep.statistics()
    assert s.frames == len(kept)
    assert s.frames_dropped > 0
    assert s.malformed == 0


def run_ps(codec: str, units: tuple[bytes, ...], seed: int, *, mtu: int) -> None:
    muxer = PsMuxer(video_codec=codec)
    pz = PsRtpPacketizer(ssrc=0x0BEBDFA1, mtu=mtu, initial_sequence=65300)
    rx = PsOverRtpReceiver()
    per_frame = []
    for i, au in enumerate(units):
        pts = 1000 + i * FRAME_TICKS
        ps = muxer.mux_video(au, pts=pts, dts=pts, keyframe=is_keyframe_au(codec, au))
        per_frame.append(pz.packetize(ps, pts))
    frames, kept = through_network(per_frame, random.Random(seed), rx.feed, rx.feed_gap)
    frames += rx.flush()
    assert 0 < len(kept) < len(units)
    assert [(f.pts, f.data) for f in frames] == [(1000 + i * FRAME_TICKS, units[i]) for i in kept]
    assert {f.codec for f in frames} == {codec}
    assert rx.statistics().frames == len(kept)
    assert rx.statistics().frames_dropped > 0
