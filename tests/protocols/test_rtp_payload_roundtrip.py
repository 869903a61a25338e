"""Packetizer -> depacketizer round trips on real encoder output and on Hypothesis-made NAL units, plus garbage.

Real streams come from tests/mediagen.py; the access units they split into are taken from PyAV's parser
(`CodecContext.parse`, i.e. libavcodec's h264/hevc parsers), an oracle independent of fluxkit's NAL code.
"""

from __future__ import annotations

import functools

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import split_annexb
from fluxkit.protocols.rtp._packet import RtpPacket, parse_rtp
from fluxkit.protocols.rtp.payload import (
    H264Depacketizer,
    H264Packetizer,
    H265Depacketizer,
    H265Packetizer,
    PsOverRtpReceiver,
    PsRtpDepacketizer,
)
from tests.mediagen import encode_annexb

SC = b"\x00\x00\x00\x01"


@functools.cache
def access_units(codec: str, bframes: int) -> tuple[bytes, ...]:
    data = encode_annexb(codec, frames=40, gop=20, bframes=bframes)
    ctx = av.CodecContext.create(codec, "r")
    return tuple(bytes(p) for p in ctx.parse(data) + ctx.parse(None))


def canonical(au: bytes) -> bytes:
    """The access unit as the depacketizer writes it: every NAL unit behind a 4-byte start code."""
    return b"".join(SC + n for n in split_annexb(au))


def timestamps(count: int) -> list[int]:
    # Starts just before the 32-bit wrap and steps back every third frame, as B-frames make RTP timestamps do.
    return [(0xFFFF0000 + 3000 * (i + (1 if i % 3 == 1 else -1 if i % 3 == 2 else 0))) & 0xFFFFFFFF
            for i in range(count)]  # fmt: skip


@pytest.mark.parametrize(
    ("codec", "bframes", "mtu", "aggregate"),
    [("h264", 0, 300, True), ("h264", 2, 300, True), ("h264", 2, 1200, False), ("hevc", 0, 300, True),
     ("hevc", 2, 200, True), ("hevc", 0, 1200, False)],
)  # fmt: skip
def test_round_trip_real_streams(codec: str, bframes: int, mtu: int, aggregate: bool) -> None:
    units = access_units(codec, bframes)
    if codec == "h264":
        pz: H264Packetizer | H265Packetizer = H264Packetizer(ssrc=42, mtu=mtu, initial_sequence=65530,
                                                             use_stap_a=aggregate)  # fmt: skip
        dep: H264Depacketizer | H265Depacketizer = H264Depacketizer()
    else:
        pz = H265Packetizer(ssrc=42, mtu=mtu, initial_sequence=65530, use_aggregation=aggregate)
        dep = H265Depacketizer()
    stamps = timestamps(len(units))
    frames: list[MediaFrame] = []
    fragmented = 0
    for au, ts in zip(units, stamps, strict=True):
        for packet in pz.packetize(au, ts):
            wire = packet.serialize()
            assert len(wire) <= mtu
            fragmented += packet.payload[0] & 0x1F == 28 if codec == "h264" else (packet.payload[0] >> 1) == 49
            frames += dep.feed(parse_rtp(wire))
    frames += dep.flush()
    assert fragmented > 0 or mtu > 1000
    assert [f.data for f in frames] == [canonical(u) for u in units]
    keys = (
        [any(t == 5 for t in (n[0] & 0x1F for n in split_annexb(u))) for u in units]
        if codec == "h264"
        else [any(16 <= (n[0] >> 1) & 0x3F <= 21 for n in split_annexb(u)) for u in units]
    )
    assert [f.keyframe for f in frames] == keys
    assert sum(keys) == 2
    assert [f.pts & 0xFFFFFFFF for f in frames] == stamps
    assert frames[-1].pts > 1 << 32  # unwrapped past the 32-bit wrap
    s = dep.statistics()
    assert (s.frames, s.frames_dropped, s.malformed, s.unsupported, s.late) == (len(units), 0, 0, 0, 0)


def test_ps_round_trip_through_receiver() -> None:
    from fluxkit.protocols.nalu import is_keyframe_au
    from fluxkit.protocols.ps import PsMuxer
    from fluxkit.protocols.rtp.payload import PsRtpPacketizer

    units = access_units("h264", 2)
    muxer = PsMuxer()
    pz = PsRtpPacketizer(ssrc=0x0BEBDFA1, mtu=1400, initial_sequence=65500)
    rx = PsOverRtpReceiver()
    frames: list[MediaFrame] = []
    for i, au in enumerate(units):
        ps = muxer.mux_video(au, pts=i * 3600 + 7200, dts=i * 3600, keyframe=is_keyframe_au("h264", au))
        for packet in pz.packetize(ps, i * 3600):
            frames += rx.feed(parse_rtp(packet.serialize()))
    frames += rx.flush()
    assert [f.data for f in frames] == list(units)
    assert [f.pts for f in frames] == [i * 3600 + 7200 for i in range(len(units))]
    assert rx.statistics().frames == len(units)
    assert rx.demuxer.statistics().frames == len(units)


# ------------------------------------------------------------------------------------------------ Hypothesis


def _h264_nal(kind: int, first: bool, body: bytes) -> bytes:
    return bytes((0x60 | kind, 0x80 if first else 0x40)) + body


@st.composite
def h264_access_units(draw: st.DrawFn) -> list[bytes]:
    # Non-VCL units (SEI, filler, AUD...) then slices; the first slice starts the picture. IDRs and parameter
    # sets are left out so that nothing is prepended and output must equal input exactly.
    body = st.binary(min_size=0, max_size=3000)
    prefix = draw(st.lists(st.tuples(st.sampled_from([6, 9, 12, 13]), body), max_size=3))
    slices = draw(st.lists(body, min_size=1, max_size=4))
    nals = [bytes((0x60 | k,)) + b for k, b in prefix]
    nals += [_h264_nal(1, i == 0, b) for i, b in enumerate(slices)]
    return nals


@st.composite
def h265_access_units(draw: st.DrawFn) -> list[bytes]:
    body = st.binary(min_size=0, max_size=3000)
    prefix = draw(st.lists(st.tuples(st.sampled_from([35, 39, 40, 38]), body), max_size=3))
    slices = draw(st.lists(body, min_size=1, max_size=4))
    nals = [bytes((k << 1, 1)) + b for k, b in prefix]
    nals += [bytes((1 << 1, 1, 0x80 if i == 0 else 0x40)) + b for i, b in enumerate(slices)]
    return nals


@given(
    aus=st.lists(h264_access_units(), min_size=1, max_size=6),
    mtu=st.integers(16, 1500),
    stap=st.booleans(),
    seq=st.integers(0, 65535),
)
def test_h264_round_trip_random_nal_sizes(aus: list[list[bytes]], mtu: int, stap: bool, seq: int) -> None:
    pz = H264Packetizer(ssrc=1, mtu=mtu, initial_sequence=seq, use_stap_a=stap)
    dep = H264Depacketizer()
    aus = [[_h264_nal(1, True, b"primer")], *aus]  # the first unit after joining must start with a slice/SPS/AUD
    frames: list[MediaFrame] = []
    for i, nals in enumerate(aus):
        for packet in pz.packetize(nals, i * 3000):
            frames += dep.feed(packet)
    frames += dep.flush()
    assert [f.data for f in frames] == [b"".join(SC + n for n in nals) for nals in aus]
    assert [f.pts for f in frames] == [i * 3000 for i in range(len(aus))]


@given(
    aus=st.lists(h265_access_units(), min_size=1, max_size=6),
    mtu=st.integers(16, 1500),
    aggregate=st.booleans(),
    seq=st.integers(0, 65535),
)
def test_h265_round_trip_random_nal_sizes(aus: list[list[bytes]], mtu: int, aggregate: bool, seq: int) -> None:
    pz = H265Packetizer(ssrc=1, mtu=mtu, initial_sequence=seq, use_aggregation=aggregate)
    dep = H265Depacketizer()
    aus = [[bytes((2, 1, 0x80))], *aus]  # the first unit after joining must start with a slice/VPS/SPS/AUD
    frames: list[MediaFrame] = []
    for i, nals in enumerate(aus):
        for packet in pz.packetize(nals, i * 3000):
            frames += dep.feed(packet)
    frames += dep.flush()
    assert [f.data for f in frames] == [b"".join(SC + n for n in nals) for nals in aus]


@given(chunks=st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=6), mtu=st.integers(13, 1500))
def test_ps_chunks_round_trip(chunks: list[bytes], mtu: int) -> None:
    from fluxkit.protocols.rtp.payload import PsRtpPacketizer

    chunks = [b"\x00\x00\x01\xba" + c for c in chunks]
    pz = PsRtpPacketizer(ssrc=1, mtu=mtu + 4)
    dep = PsRtpDepacketizer()
    out: list[bytes] = []
    for i, c in enumerate(chunks):
        for packet in pz.packetize(c, i):
            out += dep.feed(packet)
    out += dep.flush()
    assert out == chunks


_packets = st.lists(
    st.tuples(st.binary(max_size=40), st.integers(-3, 5), st.integers(0, 3), st.booleans(), st.integers(0, 2)),
    max_size=40,
)


@given(items=_packets)
def test_garbage_packets_give_frames_and_counts_never_exceptions(
    items: list[tuple[bytes, int, int, bool, int]],
) -> None:
    # The depacketizers drop and count what they cannot use; they raise nothing, not even ProtocolError.
    deps = [H264Depacketizer(), H265Depacketizer(), H265Depacketizer(sprop_max_don_diff=1),
            H264Depacketizer(parameter_sets=[b"\x67\x42\x00\x1e\xff", b"\x68\xce"]), PsOverRtpReceiver()]  # fmt: skip
    ps = PsRtpDepacketizer(max_frame_size=100)
    seq, ts = 0, 0
    for payload, step, ts_step, marker, ssrc in items:
        seq = (seq + step) & 0xFFFF
        ts = (ts + ts_step * 1000) & 0xFFFFFFFF
        packet = RtpPacket(
            payload_type=96, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker
        )
        for dep in deps:
            for frame in dep.feed(packet):
                assert isinstance(frame, MediaFrame)
        for chunk in ps.feed(packet):
            assert isinstance(chunk, bytes)
        if step == -3:
            for dep in deps:
                dep.feed_gap()
    for dep in deps:
        for frame in dep.flush():
            assert isinstance(frame, MediaFrame)
        s = dep.statistics()
        assert s.packets == len(items)
    ps.flush()
