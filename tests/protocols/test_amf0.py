"""AMF0: golden vectors for each type (AMF0 spec §2), round trips, and garbage -> ParseError only."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError
from fluxkit.protocols.rtmp import UNDEFINED, AmfDate, AmfValue, EcmaArray, decode_amf0, encode_amf0

_F320 = bytes.fromhex("4074000000000000")  # 320.0 as an IEEE 754 double
GOLDEN: list[tuple[AmfValue, bytes]] = [
    (1.0, bytes.fromhex("003ff0000000000000")),
    (True, b"\x01\x01"),
    (False, b"\x01\x00"),
    ("connect", b"\x02\x00\x07connect"),
    ({"app": "live"}, b"\x03\x00\x03app\x02\x00\x04live\x00\x00\x09"),
    (None, b"\x05"),
    (UNDEFINED, b"\x06"),
    (EcmaArray({"width": 320.0}), b"\x08\x00\x00\x00\x01\x00\x05width\x00" + _F320 + b"\x00\x00\x09"),
    ([1.0, "a"], b"\x0a\x00\x00\x00\x02\x00" + bytes.fromhex("3ff0000000000000") + b"\x02\x00\x01a"),
    (AmfDate(milliseconds=1.0, timezone=0), b"\x0b" + bytes.fromhex("3ff0000000000000") + b"\x00\x00"),
    ("x" * 70000, b"\x0c\x00\x01\x11\x70" + b"x" * 70000),
]  # fmt: skip


@pytest.mark.parametrize(("value", "raw"), GOLDEN, ids=[type(v).__name__ for v, _ in GOLDEN])
def test_golden(value: AmfValue, raw: bytes) -> None:
    assert encode_amf0(value) == raw
    decoded = decode_amf0(raw)
    assert decoded == [value]
    assert type(decoded[0]) is type(value)
    # trailing data: the next value follows
    assert decode_amf0(raw + b"\x05") == [value, None]
    # every truncation is a ParseError
    for cut in range(1, len(raw), max(1, len(raw) // 50)):
        with pytest.raises(ParseError):
            decode_amf0(raw[:cut])


def test_special_markers() -> None:
    assert decode_amf0(b"\x0d") == [None]  # unsupported -> None
    assert decode_amf0(b"\x10\x00\x01C\x00\x01a\x05\x00\x00\x09") == [{"a": None}]  # typed object -> dict
    assert decode_amf0(b"\x0f\x00\x00\x00\x02<a") == ["<a"]  # XML document -> str
    assert decode_amf0(b"\x11\x02\x11\x04\x05") == [False, 5]  # AVM+ switch: one AMF3 value each
    with pytest.raises(ParseError, match="AMF3"):
        decode_amf0(b"\x11")
    with pytest.raises(ParseError, match="references"):
        decode_amf0(b"\x07\x00\x00")
    with pytest.raises(ParseError):
        decode_amf0(b"\x04")
    with pytest.raises(ParseError, match="unknown AMF0 type"):
        decode_amf0(b"\x42")
    with pytest.raises(ParseError, match="UTF-8"):
        decode_amf0(b"\x02\x00\x01\xff")
    with pytest.raises(ParseError, match="object-end"):
        decode_amf0(b"\x03\x00\x00\x05")
    with pytest.raises(ParseError, match="strict array"):
        decode_amf0(b"\x0a\xff\xff\xff\xff")


def test_limits() -> None:
    nested = b"\x0a\x00\x00\x00\x01" * 40 + b"\x05"
    with pytest.raises(ParseError, match="deeper"):
        decode_amf0(nested)
    assert decode_amf0(nested, max_depth=64)
    with pytest.raises(ParseError, match="too many"):
        decode_amf0(b"\x05" * 10, max_values=5)
    with pytest.raises(LocalProtocolError):
        encode_amf0(object())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        encode_amf0({1: 2.0})  # type: ignore[dict-item]
    deep: AmfValue = None
    for _ in range(40):
        deep = [deep]
    with pytest.raises(LocalProtocolError):
        encode_amf0(deep)
    assert repr(UNDEFINED) == "<Undefined.UNDEFINED: 'undefined'>"


_keys = st.text(max_size=8)
_scalars = (
    st.floats(allow_nan=False)
    | st.booleans()
    | st.text(max_size=20)
    | st.none()
    | st.just(UNDEFINED)
    | st.builds(AmfDate, milliseconds=st.floats(allow_nan=False), timezone=st.integers(-32768, 32767))
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_keys.filter(bool), inner, max_size=4)
        | st.dictionaries(_keys.filter(bool), inner, max_size=4).map(EcmaArray)
    ),
    max_leaves=20,
)


def _same(a: AmfValue, b: AmfValue) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@given(st.lists(_values, max_size=5))
def test_roundtrip(values: list[AmfValue]) -> None:
    decoded = decode_amf0(encode_amf0(*values))
    assert len(decoded) == len(values)
    assert all(_same(a, b) for a, b in zip(values, decoded, strict=True))


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_garbage(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode_amf0(data)
