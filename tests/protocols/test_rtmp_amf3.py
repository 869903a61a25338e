"""AMF3 (`decode_amf3`/`encode_amf3`, the AMF0 AVM+ switch) and AMF3 command/data messages in `RtmpConnection`.

Golden vectors are written out byte by byte from the AMF3 specification (U29 boundaries, references, traits);
Hypothesis checks round trips (alone and behind the 0x11 switch) and that garbage gives values or ParseError.
"""

from __future__ import annotations

import contextlib
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.rtmp import (
    HANDSHAKE_SIZE,
    NEED_DATA,
    UNDEFINED,
    AmfDate,
    AmfValue,
    ChunkReader,
    ChunkWriter,
    CommandReceived,
    Connected,
    EcmaArray,
    MetaData,
    Role,
    RtmpConnection,
    RtmpMessage,
    decode_amf0,
    decode_amf3,
    encode_amf0,
    encode_amf3,
)

GOLDEN: list[tuple[bytes, AmfValue]] = [
    (b"\x00", UNDEFINED),
    (b"\x01", None),
    (b"\x02", False),
    (b"\x03", True),
    (b"\x04\x00", 0),
    (b"\x04\x7f", 127),
    (b"\x04\x81\x00", 128),
    (b"\x04\xff\x7f", 16383),
    (b"\x04\x81\x80\x00", 16384),
    (b"\x04\xff\xff\x7f", 0x1FFFFF),
    (b"\x04\x80\xc0\x80\x00", 0x200000),
    (b"\x04\xbf\xff\xff\xff", (1 << 28) - 1),
    (b"\x04\xff\xff\xff\xff", -1),
    (b"\x04\xc0\x80\x80\x00", -(1 << 28)),
    (b"\x05" + struct.pack(">d", 1.5), 1.5),
    (b"\x06\x01", ""),
    (b"\x06\x0bhello", "hello"),
    (b"\x08\x01" + struct.pack(">d", 1e12), AmfDate(milliseconds=1e12)),
    (b"\x0c\x07\x01\x02\x03", b"\x01\x02\x03"),
    (b"\x09\x07\x01\x04\x01\x06\x03a\x01", [1, "a", None]),
    (b"\x0a\x0b\x01\x03a\x04\x01\x01", {"a": 1}),
]


@pytest.mark.parametrize(("raw", "value"), GOLDEN)
def test_golden(raw: bytes, value: AmfValue) -> None:
    assert decode_amf3(raw) == [value]
    assert encode_amf3(value) == raw
    assert decode_amf0(b"\x11" + raw) == [value]
    for cut in range(1, len(raw)):
        with pytest.raises(ParseError):
            decode_amf3(raw[:cut])


def test_decode_only_forms() -> None:
    # string, object and traits references; sealed members of a typed object; dynamic members after them
    raw = (
        b"\x09\x07\x01"
        b"\x06\x03k"  # "k"
        b"\x06\x00"  # string ref 0 -> "k"
        b"\x0a\x1b\x07Foo\x03k\x04\x02\x03d\x04\x03\x01"  # Foo {k: 2 (sealed), d: 3 (dynamic)}; "Foo" ref 1
    )
    assert decode_amf3(raw) == [["k", "k", {"k": 2, "d": 3}]]
    # traits reference: the second object reuses the first one's traits
    raw = b"\x09\x05\x01\x0a\x13\x01\x03x\x04\x01\x0a\x01\x04\x02"
    assert decode_amf3(raw) == [[{"x": 1}, {"x": 2}]]
    # object reference: the same dict twice (shared, not copied)
    value = decode_amf3(b"\x09\x05\x01\x0a\x0b\x01\x03a\x04\x01\x01\x0a\x02")[0]
    assert isinstance(value, list)
    assert value[0] is value[1]
    # mixed array -> EcmaArray; XML -> str; vectors -> lists; dictionary -> dict with str keys
    assert decode_amf3(b"\x09\x03\x03n\x04\x05\x01\x06\x03z") == [EcmaArray({"n": 5, "0": "z"})]
    assert decode_amf3(b"\x0b\x09<a/>") == ["<a/>"]
    assert decode_amf3(b"\x07\x09<b/>") == ["<b/>"]
    assert decode_amf3(b"\x0d\x05\x00\x00\x00\x00\x01\xff\xff\xff\xff") == [[1, -1]]
    assert decode_amf3(b"\x0e\x03\x00\xff\xff\xff\xff") == [[0xFFFFFFFF]]
    assert decode_amf3(b"\x0f\x03\x01" + struct.pack(">d", 2.5)) == [[2.5]]
    assert decode_amf3(b"\x10\x05\x00\x01\x04\x01\x06\x03s") == [[1, "s"]]
    assert decode_amf3(b"\x11\x05\x00\x06\x03k\x04\x01\x04\x02\x03") == [{"k": 1, "2": True}]
    # integers outside 29 bits encode as doubles
    assert encode_amf3(1 << 30) == b"\x05" + struct.pack(">d", float(1 << 30))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x06\x02", "string reference"),
        (b"\x0a\x00", "object reference"),
        (b"\x0a\x05", "traits reference"),
        (b"\x0a\x07\x07Foo", "externalizable"),
        (b"\x0a\x0b\x01\x03a\x0a\x00\x01", "cycle"),
        (b"\x09\x01\x03a\x09\x00\x01", "cycle"),
        (b"\x06\x05\xff\xfe", "UTF-8"),
        (b"\x12", "unknown AMF3 type"),
        (b"\x09\xff\xff\xff\x7f\x01", "short message"),
        (b"\x11\x03\x00\x0a\x0b\x01\x01\x04\x01", "dictionary key"),
    ],
)
def test_malformed(raw: bytes, match: str) -> None:
    with pytest.raises(ParseError, match=match):
        decode_amf3(raw)


def test_bounds() -> None:
    deep = b"\x09\x03\x01" * 40 + b"\x01"
    with pytest.raises(ParseError, match="deeper"):
        decode_amf3(deep)

    # References spend the size of what they point to: doubling through references cannot blow up.
    # An array of n items: [1, 1] (object 1), then each item is [ref to the previous, ref to the previous].
    def doubling(n: int) -> bytes:
        items = [b"\x09\x05\x01\x04\x01\x04\x01"]
        items += [b"\x09\x05\x01" + bytes((0x09, k << 1)) * 2 for k in range(1, n)]
        return b"\x09" + bytes(((n << 1) | 1, 1)) + b"".join(items)

    assert len(decode_amf3(doubling(10))[0]) == 10  # type: ignore[arg-type]
    raw = doubling(31)
    with pytest.raises(ParseError, match="too many values"):
        decode_amf3(raw)
    with pytest.raises(LocalProtocolError):
        encode_amf3({"": 1})
    with pytest.raises(LocalProtocolError):
        encode_amf3(object())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_amf0({"": 1})


_key = st.text(min_size=1, max_size=8)
_scalar = st.one_of(
    st.none(),
    st.just(UNDEFINED),
    st.booleans(),
    st.integers(-(1 << 28), (1 << 28) - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.builds(AmfDate, milliseconds=st.floats(allow_nan=False)),
)
_values = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_key, inner, max_size=4),
        st.dictionaries(_key, inner, min_size=1, max_size=4).map(EcmaArray),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, max_size=4))
def test_round_trip(values: list[AmfValue]) -> None:
    raw = encode_amf3(*values)
    assert decode_amf3(raw) == values
    # behind the AVM+ switch, one value per switch, between AMF0 values
    mixed = b"".join(encode_amf0("x") + b"\x11" + encode_amf3(v) for v in values)
    assert decode_amf0(mixed) == [x for v in values for x in ("x", v)]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_garbage(data: bytes) -> None:
    for decode in (decode_amf3, lambda d: decode_amf0(b"\x11" + d)):
        with contextlib.suppress(ProtocolError):
            decode(data)


# --- AMF3 command and data messages in RtmpConnection ---------------------------------------------------------


def _open_server() -> tuple[RtmpConnection, ChunkWriter]:
    server = RtmpConnection(Role.SERVER, rng=random.Random(0))
    server.receive_data(b"\x03" + bytes(2 * HANDSHAKE_SIZE))
    assert server.next_event() is NEED_DATA
    server.data_to_send()
    return server, ChunkWriter()


def _feed(server: RtmpConnection, writer: ChunkWriter, type_id: int, payload: bytes, stream_id: int = 0) -> list:  # type: ignore[type-arg]
    server.receive_data(writer.write(RtmpMessage(type_id=type_id, stream_id=stream_id, timestamp=0, payload=payload)))
    events = []
    while (event := server.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def test_amf3_connect_answered_in_kind() -> None:
    server, writer = _open_server()
    obj = {"app": "live", "tcUrl": "rtmp://h/live", "objectEncoding": 3, "fpad": False}
    events = _feed(server, writer, 17, b"\x00" + encode_amf0("connect", 1.0) + b"\x11" + encode_amf3(obj))
    assert events == [Connected(app="live", tc_url="rtmp://h/live", properties=obj)]
    assert server.object_encoding == 3
    reader = ChunkReader()
    reader.set_chunk_size(1 << 20)
    out = [m for m in ChunkReader(max_chunk_size=1 << 20).feed(server.data_to_send()) if m.type_id in (17, 20)]
    assert [m.type_id for m in out] == [17]
    assert out[0].payload[0] == 0  # format byte
    name, tid, _props, info = decode_amf0(out[0].payload[1:])
    assert (name, tid) == ("_result", 1.0)
    assert isinstance(info, dict)
    assert info["objectEncoding"] == 3.0
    assert info["code"] == "NetConnection.Connect.Success"
    # later commands in type 17 too: createStream, and a command without the format byte
    events = _feed(server, writer, 17, b"\x00" + encode_amf0("createStream", 2.0, None))
    assert events == []
    events = _feed(server, writer, 17, encode_amf0("myCall", 3.0, None) + b"\x11" + encode_amf3([1, "a"]))
    assert events == [CommandReceived(stream_id=0, name="myCall", transaction_id=3.0, values=(None, [1, "a"]))]


def test_amf0_connect_keeps_amf0() -> None:
    server, writer = _open_server()
    _feed(server, writer, 20, encode_amf0("connect", 1.0, {"app": "live"}))
    assert server.object_encoding == 0
    out = [m for m in ChunkReader(max_chunk_size=1 << 20).feed(server.data_to_send()) if m.type_id in (17, 20)]
    assert [m.type_id for m in out] == [20]
    info = decode_amf0(out[0].payload)[3]
    assert isinstance(info, dict)
    assert info["objectEncoding"] == 0.0


def test_amf3_data_message() -> None:
    server, writer = _open_server()
    body = b"\x00" + encode_amf0("@setDataFrame", "onMetaData") + b"\x11" + encode_amf3(EcmaArray({"width": 640}))
    assert _feed(server, writer, 15, body, stream_id=1) == [
        MetaData(stream_id=1, name="onMetaData", values={"width": 640})
    ]
