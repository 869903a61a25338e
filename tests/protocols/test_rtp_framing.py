"""RTP over TCP framings: RFC 4571, RTSP interleaved, and the auto-detecting GB28181 deframer.

Every deframer is fed the same stream whole, byte by byte, in random chunks, and with a trailing partial
frame; the result must not depend on the chunking.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.rtp import (
    InterleavedDeframer,
    InterleavedFrame,
    Rfc4571Deframer,
    RtpPacket,
    TcpRtpDeframer,
    frame_interleaved,
    frame_rfc4571,
)

PACKETS = [
    RtpPacket(
        payload_type=96, sequence_number=i, timestamp=i * 3600, ssrc=0x1234, payload=bytes([i]) * (i * 37 % 300)
    ).serialize()
    for i in range(20)
]
RTCP = bytes.fromhex("80c90001 33333333")


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 200)
        out.append(data[pos : pos + step])
        pos += step
    return out


def _feed_ways(make, data: bytes) -> list[list[object]]:  # type: ignore[no-untyped-def]
    results = []
    for splitter in (
        lambda d: [d],
        lambda d: [d[i : i + 1] for i in range(len(d))],
        lambda d: _chunks(d, random.Random(1)),
        lambda d: _chunks(d, random.Random(2)),
    ):
        deframer = make()
        got: list[object] = []
        for chunk in splitter(data):
            got.extend(deframer.feed(chunk))
        got.extend(deframer.flush())
        results.append(got)
    return results


def test_frame_rfc4571() -> None:
    assert frame_rfc4571(b"abc") == b"\x00\x03abc"
    assert frame_rfc4571(b"") == b"\x00\x00"
    with pytest.raises(LocalProtocolError):
        frame_rfc4571(bytes(65536))


def test_rfc4571_whole_bytewise_chunks() -> None:
    stream = b"".join(frame_rfc4571(p) for p in [*PACKETS, RTCP])
    for got in _feed_ways(Rfc4571Deframer, stream):
        assert got == [*PACKETS, RTCP]


def test_rfc4571_trailing_partial_and_zero_length() -> None:
    d = Rfc4571Deframer()
    assert d.feed(frame_rfc4571(PACKETS[1]) + b"\x00\x00" + frame_rfc4571(PACKETS[2])[:5]) == [PACKETS[1]]
    assert d.pending == 5
    assert d.feed(frame_rfc4571(PACKETS[2])[5:]) == [PACKETS[2]]
    assert d.feed(b"\x00") == []
    assert d.flush() == []
    assert d.pending == 0


def test_rfc4571_too_long() -> None:
    d = Rfc4571Deframer(max_packet_size=100)
    assert d.feed(frame_rfc4571(bytes(100))) == [bytes(100)]
    with pytest.raises(ParseError) as info:
        d.feed(frame_rfc4571(bytes(101)))
    assert info.value.offset == 102
    with pytest.raises(LocalProtocolError):
        Rfc4571Deframer(max_packet_size=0)


def test_frame_interleaved() -> None:
    assert frame_interleaved(1, b"ab") == b"$\x01\x00\x02ab"
    with pytest.raises(LocalProtocolError):
        frame_interleaved(256, b"")
    with pytest.raises(LocalProtocolError):
        frame_interleaved(0, bytes(65536))


def test_interleaved_whole_bytewise_chunks() -> None:
    frames = [InterleavedFrame(channel=i % 2 * 1, data=p) for i, p in enumerate(PACKETS)]
    stream = b"".join(frame_interleaved(f.channel, f.data) for f in frames)
    for got in _feed_ways(InterleavedDeframer, stream):
        assert got == frames


def test_interleaved_errors() -> None:
    d = InterleavedDeframer()
    assert d.feed(frame_interleaved(0, b"abcd") + b"$\x00") == [InterleavedFrame(channel=0, data=b"abcd")]
    assert d.pending == 2
    d.flush()
    with pytest.raises(ParseError) as info:
        d.feed(b"RTSP/1.0 200 OK\r\n")
    assert info.value.offset == 10
    d2 = InterleavedDeframer(max_packet_size=10)
    with pytest.raises(ParseError):
        d2.feed(frame_interleaved(0, bytes(11)))
    with pytest.raises(ParseError):
        InterleavedDeframer().feed(frame_interleaved(0, b"") + b"x")


@pytest.mark.parametrize("framing", ["rfc4571", "interleaved"])
def test_tcp_deframer_detects_framing(framing: str) -> None:
    if framing == "rfc4571":
        stream = b"".join(frame_rfc4571(p) for p in [*PACKETS, RTCP])
    else:
        stream = b"".join(frame_interleaved(i % 2, p) for i, p in enumerate([*PACKETS, RTCP]))
    for got in _feed_ways(TcpRtpDeframer, stream):
        assert got == [*PACKETS, RTCP]
    d = TcpRtpDeframer()
    d.feed(stream)
    assert d.mode == framing
    assert d.skipped_bytes == 0
    assert d.resyncs == 0


@pytest.mark.parametrize("framing", ["rfc4571", "interleaved"])
def test_tcp_deframer_resyncs_after_garbage(framing: str) -> None:
    frame = frame_rfc4571 if framing == "rfc4571" else (lambda p: frame_interleaved(0, p))
    garbage = b"\x00\x01garbage\xff\x13 RTSP/1.0 200 OK\r\n\r\n"
    good = b"".join(frame(p) for p in PACKETS[:5])
    tail = b"".join(frame(p) for p in PACKETS[5:])
    stream = good + garbage + tail
    for got in _feed_ways(TcpRtpDeframer, stream):
        assert got == PACKETS
    d = TcpRtpDeframer()
    assert d.feed(stream) == PACKETS
    assert d.skipped_bytes == len(garbage)
    assert d.resyncs == 1


@pytest.mark.parametrize("framing", ["rfc4571", "interleaved"])
def test_tcp_deframer_garbage_before_first_frame(framing: str) -> None:
    frame = frame_rfc4571 if framing == "rfc4571" else (lambda p: frame_interleaved(0, p))
    # A half frame, as after a reconnect: its tail is garbage.
    garbage = frame(PACKETS[3])[7:]
    stream = garbage + b"".join(frame(p) for p in PACKETS)
    for got in _feed_ways(TcpRtpDeframer, stream):
        assert got == PACKETS
    d = TcpRtpDeframer()
    d.feed(stream)
    assert d.mode == framing
    assert d.skipped_bytes == len(garbage)


def test_tcp_deframer_oversize_frame_is_garbage() -> None:
    d = TcpRtpDeframer(max_packet_size=400)
    stream = frame_rfc4571(PACKETS[1]) + frame_rfc4571(bytes([0x80]) + bytes(500)) + frame_rfc4571(PACKETS[2])
    stream += frame_rfc4571(PACKETS[3])
    got = d.feed(stream)
    assert got == [PACKETS[1], PACKETS[2], PACKETS[3]]
    assert d.resyncs == 1
    assert d.skipped_bytes == 503
    assert d.flush() == []
    with pytest.raises(LocalProtocolError):
        TcpRtpDeframer(max_packet_size=70000)


def test_tcp_deframer_pure_garbage_is_bounded() -> None:
    d = TcpRtpDeframer()
    rng = random.Random(5)
    for _ in range(50):
        d.feed(bytes(rng.getrandbits(8) & 0x3F for _ in range(1000)))  # no version-2 byte anywhere
        assert d.pending <= 4
    assert d.skipped_bytes + d.pending == 50_000


def test_tcp_deframer_unconfirmed_candidate_waits() -> None:
    d = TcpRtpDeframer()
    # Garbage, then one frame: its start cannot be confirmed until the next header arrives.
    assert d.feed(b"\x01\x02\x03" + frame_rfc4571(PACKETS[1])) == []
    assert d.skipped_bytes == 3
    assert d.feed(frame_rfc4571(PACKETS[2])) == [PACKETS[1], PACKETS[2]]
    assert d.flush() == []


@given(st.binary(max_size=300), st.integers(1, 50))
def test_deframers_garbage(data: bytes, step: int) -> None:
    for make in (Rfc4571Deframer, InterleavedDeframer, TcpRtpDeframer):
        deframer = make()
        try:
            for i in range(0, len(data), step):
                deframer.feed(data[i : i + step])
            deframer.flush()
        except ProtocolError:
            pass


@given(st.binary(max_size=40))
def test_tcp_deframer_recovers_after_random_garbage(garbage: bytes) -> None:
    # Whatever garbage sits between two runs of frames, the frames before it are kept and the frames after it
    # are found again: a garbage length can swallow at most max_packet_size bytes of real frames after it.
    head = b"".join(frame_rfc4571(p) for p in PACKETS[:3])
    d = TcpRtpDeframer(max_packet_size=400)
    tail = b""
    recoverable = []
    for p in PACKETS[3:]:
        if len(tail) >= 404 + len(garbage):
            recoverable.append(p)
        tail += frame_rfc4571(p)
    got = d.feed(head + garbage + tail) + d.flush()
    assert got[:3] == PACKETS[:3]
    assert got[-len(recoverable) :] == recoverable
