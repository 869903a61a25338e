"""The RTMP chunk stream: golden headers of each type (RTMP 1.0 §5.3.1), extended timestamps, interleaving,
bounds, a real ffmpeg publish capture, Hypothesis round trips through ChunkWriter/ChunkReader, and garbage.

The capture (fuzz/corpus/rtmp/ffmpeg_publish.bin) is what ffmpeg 5.1 sent to a fluxkit server over loopback for
`ffmpeg ... -f flv rtmp://127.0.0.1:P/live/cam1?token=abc`: C0+C1, C2, then the command sequence and the
first media messages. It doubles as a fuzz seed.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError
from fluxkit.protocols.rtmp import (
    NEED_DATA,
    ChunkReader,
    ChunkWriter,
    Connected,
    Event,
    MediaMessage,
    MetaData,
    PublishRequested,
    Role,
    RtmpConnection,
    RtmpMessage,
    encode_basic_header,
)

CAPTURE = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "rtmp" / "ffmpeg_publish.bin"


def _msg(type_id: int, sid: int, ts: int, payload: bytes, csid: int = 3) -> RtmpMessage:
    return RtmpMessage(type_id=type_id, stream_id=sid, timestamp=ts, payload=payload, chunk_stream_id=csid)


def test_basic_header_golden() -> None:
    assert encode_basic_header(0, 3) == b"\x03"
    assert encode_basic_header(3, 63) == b"\xff"
    assert encode_basic_header(1, 64) == b"\x40\x00"
    assert encode_basic_header(2, 319) == b"\x80\xff"
    assert encode_basic_header(0, 320) == b"\x01\x00\x01"
    assert encode_basic_header(3, 65599) == b"\xc1\xff\xff"
    for bad in ((0, 1), (0, 65600), (4, 3)):
        with pytest.raises(LocalProtocolError):
            encode_basic_header(*bad)


def test_header_types_golden() -> None:
    # type 0 (ts 1000, len 3, type 9, msid 1 little-endian), type 1 (delta 40, len 2), type 2 (delta 40),
    # type 3 (repeat the delta).
    wire = (
        b"\x06" + b"\x00\x03\xe8" + b"\x00\x00\x03" + b"\x09" + b"\x01\x00\x00\x00" + b"abc"
        + b"\x46" + b"\x00\x00\x28" + b"\x00\x00\x02" + b"\x09" + b"de"
        + b"\x86" + b"\x00\x00\x28" + b"fg"
        + b"\xc6" + b"hi"
    )  # fmt: skip
    expected = [
        _msg(9, 1, 1000, b"abc", 6),
        _msg(9, 1, 1040, b"de", 6),
        _msg(9, 1, 1080, b"fg", 6),
        _msg(9, 1, 1120, b"hi", 6),
    ]
    assert ChunkReader().feed(wire) == expected
    reader = ChunkReader()
    got = [m for i in range(len(wire)) for m in reader.feed(wire[i : i + 1])]
    assert got == expected
    assert reader.buffered == 0
    # The writer picks the same header types.
    writer = ChunkWriter()
    assert b"".join(writer.write(m) for m in expected[:3]) == wire[: len(wire) - 3]
    assert writer.write(_msg(9, 1, 1100, b"xy", 6))[0] >> 6 == 2


def test_type3_after_type0_adds_the_absolute_timestamp() -> None:
    wire = b"\x04\x00\x00\x0a\x00\x00\x01\x08\x01\x00\x00\x00a" + b"\xc4b"
    assert [m.timestamp for m in ChunkReader().feed(wire)] == [10, 20]


def test_extended_timestamp_golden() -> None:
    payload = bytes(200)  # two chunks at the default size of 128
    wire = (
        b"\x04\xff\xff\xff\x00\x00\xc8\x08\x01\x00\x00\x00" + b"\x01\x00\x00\x00" + payload[:128]
        + b"\xc4" + b"\x01\x00\x00\x00" + payload[128:]
    )  # fmt: skip
    assert ChunkReader().feed(wire) == [_msg(8, 1, 0x1000000, payload, 4)]
    assert ChunkWriter().write(_msg(8, 1, 0x1000000, payload, 4)) == wire
    # The quirk: a continuation without the repeated extended timestamp is accepted too.
    lax = wire[: 12 + 4 + 128] + b"\xc4" + payload[128:]
    assert ChunkReader().feed(lax) == [_msg(8, 1, 0x1000000, payload, 4)]
    # A type-3 chunk starting a new message after an extended header carries it (and adds it as the delta).
    again = wire + b"\xc4\x01\x00\x00\x00" + payload[:128] + b"\xc4\x01\x00\x00\x00" + payload[128:]
    assert [m.timestamp for m in ChunkReader().feed(again)] == [0x1000000, 0x2000000]


def test_interleaved_chunk_streams() -> None:
    writer = ChunkWriter(64)
    video = _msg(9, 1, 0, bytes(range(200)), 6)
    audio = _msg(8, 1, 0, bytes(range(100)), 4)
    v = writer.write(video)
    a = writer.write(audio)
    # video chunk 1, audio chunk 1, video chunks 2-4, audio chunk 2
    first_v = 12 + 64
    first_a = 12 + 64
    wire = v[:first_v] + a[:first_a] + v[first_v:] + a[first_a:]
    reader = ChunkReader()
    reader.set_chunk_size(64)
    assert reader.feed(wire) == [video, audio]


def test_set_chunk_size_and_abort_act_at_once() -> None:
    writer = ChunkWriter()
    wire = writer.write(_msg(1, 0, 0, (4096).to_bytes(4, "big"), 2))
    writer.chunk_size = 4096
    wire += writer.write(_msg(9, 1, 0, bytes(3000), 6))
    reader = ChunkReader()
    out = reader.feed(wire)
    assert [m.type_id for m in out] == [1, 9]
    assert reader.chunk_size == 4096
    # Abort: the partial message of chunk stream 6 is dropped.
    reader = ChunkReader()
    partial = ChunkWriter().write(_msg(9, 1, 0, bytes(300), 6))[: 12 + 128]
    abort = ChunkWriter().write(_msg(2, 0, 0, (6).to_bytes(4, "big"), 2))
    fresh = ChunkWriter().write(_msg(9, 1, 0, b"ok", 6))
    assert [m.payload for m in reader.feed(partial + abort + fresh)] == [(6).to_bytes(4, "big"), b"ok"]


def test_librtmp_opens_a_chunk_stream_with_a_type_1_header() -> None:
    # librtmp's first Window Acknowledgement Size goes out on chunk stream 2 with a type-1 header (captured from
    # GStreamer's rtmpsrc): the length and type are there, the message stream is 0 and the delta counts from 0.
    wire = b"\x42\x00\x00\x00\x00\x00\x04\x05" + (2_500_000).to_bytes(4, "big")
    (message,) = ChunkReader().feed(wire)
    reader = ChunkReader()
    assert [m for i in range(len(wire)) for m in reader.feed(wire[i : i + 1])] == [message]  # byte by byte
    assert (message.type_id, message.stream_id, message.timestamp, message.chunk_stream_id) == (5, 0, 0, 2)
    assert message.payload == (2_500_000).to_bytes(4, "big")


def test_bounds_and_errors() -> None:
    with pytest.raises(ParseError, match="no previous header"):  # type 2: no length, no type to go on
        ChunkReader().feed(b"\x83\x00\x00\x00x")
    with pytest.raises(ParseError, match="no previous header"):  # type 3
        ChunkReader().feed(b"\xc3x")
    with pytest.raises(ParseError, match="exceeds the limit"):
        ChunkReader(max_message_size=1000).feed(b"\x03\x00\x00\x00\x00\x10\x00\x09\x01\x00\x00\x00")
    with pytest.raises(ParseError, match="chunk size"):
        ChunkReader().feed(ChunkWriter().write(_msg(1, 0, 0, (1 << 30).to_bytes(4, "big"), 2)))
    with pytest.raises(ParseError, match="invalid chunk size"):
        ChunkReader().feed(ChunkWriter().write(_msg(1, 0, 0, bytes(4), 2)))
    with pytest.raises(ParseError, match="shorter than 4"):
        ChunkReader().feed(ChunkWriter().write(_msg(1, 0, 0, b"\x01", 2)))
    with pytest.raises(ParseError, match="before its message was complete"):
        ChunkReader().feed((b"\x06\x00\x00\x00\x00\x01\x00\x09\x01\x00\x00\x00" + bytes(128)) * 2)
    # too many partial messages at once
    reader = ChunkReader(max_chunk_streams=2)
    wire = b"".join(ChunkWriter().write(_msg(9, 1, 0, bytes(300), c))[: 12 + 128] for c in (4, 5, 6))
    with pytest.raises(ParseError, match="in progress"):
        reader.feed(wire)
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(_msg(9, 1, 0, bytes(1 << 24)))
    with pytest.raises(LocalProtocolError):
        ChunkWriter().write(_msg(300, 1, 0, b""))


def _feed_capture(chunks: list[bytes]) -> list[Event]:
    conn = RtmpConnection(Role.SERVER, rng=random.Random(0))
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, Event)
            events.append(event)
            if isinstance(event, PublishRequested):
                conn.accept_publish(event.stream_id)
    return events


@pytest.mark.parametrize("mode", ["whole", "bytewise", "random", "trailing"])
def test_ffmpeg_capture(mode: str) -> None:
    data = CAPTURE.read_bytes()
    if mode == "whole":
        chunks = [data]
    elif mode == "bytewise":
        chunks = [data[i : i + 1] for i in range(len(data))]
    elif mode == "random":
        rng = random.Random(5)
        cuts = sorted(rng.sample(range(1, len(data)), 200))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    else:
        chunks = [data + b"\x06\x00\x00"]  # a partial header after the capture: waits, no error
    events = _feed_capture(chunks)
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.app == "live"
    assert connected.tc_url.startswith("rtmp://127.0.0.1:")
    publish = next(e for e in events if isinstance(e, PublishRequested))
    assert publish.stream_key == "cam1?token=abc"
    assert publish.publish_type == "live"
    meta = next(e for e in events if isinstance(e, MetaData))
    assert meta.name == "onMetaData"
    assert meta.values["width"] == 64.0
    media = [e for e in events if isinstance(e, MediaMessage)]
    assert len(media) >= 6
    video = [m for m in media if m.kind == "video"]
    assert video[0].payload[:2] == b"\x17\x00"  # AVC sequence header first
    assert video[1].payload[:2] == b"\x17\x01"


_messages = st.lists(
    st.builds(
        RtmpMessage,
        type_id=st.sampled_from([8, 9, 18, 20]),
        stream_id=st.integers(0, 5),
        timestamp=st.integers(0, 2**32 - 1),
        payload=st.binary(max_size=600),
        chunk_stream_id=st.sampled_from([3, 4, 6, 63, 64, 319, 320, 65599]),
    ),
    max_size=12,
)


@given(_messages, st.sampled_from([1, 7, 128, 4096]), st.integers(1, 97))
def test_roundtrip(messages: list[RtmpMessage], chunk_size: int, step: int) -> None:
    writer = ChunkWriter(chunk_size)
    wire = b"".join(writer.write(m) for m in messages)
    reader = ChunkReader()
    reader.set_chunk_size(chunk_size)
    got = [m for i in range(0, len(wire), step) for m in reader.feed(wire[i : i + step])]
    assert got == messages


@settings(max_examples=400)
@given(st.binary(max_size=2000))
def test_garbage(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        ChunkReader(max_message_size=100_000).feed(data)
