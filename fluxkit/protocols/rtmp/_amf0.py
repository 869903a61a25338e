"""AMF0 encoding and decoding (Adobe "Action Message Format -- AMF 0", December 2007).

Strategy: a recursive-descent decoder over one `bytes` object with `struct.unpack_from`, bounded in nesting depth
(`DEFAULT_MAX_DEPTH`) and in the number of values (`DEFAULT_MAX_VALUES`), so hostile input can neither recurse
without end nor make a huge object out of a small message. Every malformed input raises `ParseError`.

Python mapping: number <-> float (ints encode as numbers), boolean <-> bool, string and long string <-> str,
object <-> dict, null <-> None, undefined <-> `UNDEFINED`, ECMA array <-> `EcmaArray` (a dict subclass), strict
array <-> list, date <-> `AmfDate`. The AVM+ marker (0x11, §3.1) switches the next value to AMF3: it is decoded
by `_amf3.Amf3Decoder` (fresh reference tables for each switch, the same depth and value budget); AMF3 adds int
and bytes to the Python types.
"""

from __future__ import annotations

import enum
import struct
from typing import TypeAlias

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_VALUES",
    "UNDEFINED",
    "AmfDate",
    "AmfValue",
    "EcmaArray",
    "Undefined",
    "decode_amf0",
    "encode_amf0",
]

#: Deepest nesting of objects/arrays accepted by the decoder.
DEFAULT_MAX_DEPTH = 32
#: Most values (counting nested ones) one decode call builds.
DEFAULT_MAX_VALUES = 65536

# AMF0 §2.1 type markers.
_NUMBER = 0x00
_BOOLEAN = 0x01
_STRING = 0x02
_OBJECT = 0x03
_MOVIECLIP = 0x04
_NULL = 0x05
_UNDEFINED = 0x06
_REFERENCE = 0x07
_ECMA_ARRAY = 0x08
_OBJECT_END = 0x09
_STRICT_ARRAY = 0x0A
_DATE = 0x0B
_LONG_STRING = 0x0C
_UNSUPPORTED = 0x0D
_XML = 0x0F
_TYPED_OBJECT = 0x10
_AVMPLUS = 0x11

_D = struct.Struct(">d")
_H = struct.Struct(">H")
_I = struct.Struct(">I")
_DATE_S = struct.Struct(">dh")


class Undefined(enum.Enum):
    """Type of the AMF0 `undefined` value, `UNDEFINED` (distinct from null, which is None)."""

    UNDEFINED = "undefined"


UNDEFINED = Undefined.UNDEFINED


@attrs.frozen(kw_only=True, slots=True)
class AmfDate:
    """An AMF0 date (§2.13): milliseconds since the Unix epoch (UTC) and a time zone that should be 0."""

    milliseconds: float
    timezone: int = 0


class EcmaArray(dict[str, "AmfValue"]):
    """An AMF0 ECMA array (§2.10): an associative array, encoded with a count hint (onMetaData uses it)."""


AmfValue: TypeAlias = (
    "float | int | bool | str | bytes | None | Undefined | AmfDate | EcmaArray | dict[str, AmfValue] | list[AmfValue]"
)


def encode_amf0(*values: AmfValue) -> bytes:
    """Encode values one after the other, as an RTMP command or data message body carries them.

    Raises:
        LocalProtocolError: a value that AMF0 cannot carry (a key or string too long, an unknown type).
    """
    out = bytearray()
    for value in values:
        _encode(out, value, 0)
    return bytes(out)


def _encode_key(out: bytearray, key: str) -> None:
    raw = key.encode("utf-8")
    if not raw:
        raise LocalProtocolError("AMF0 object key must not be empty (an empty key ends the object)")
    if len(raw) > 0xFFFF:
        raise LocalProtocolError("AMF0 object key longer than 65535 bytes")
    out += _H.pack(len(raw))
    out += raw


def _encode(out: bytearray, value: AmfValue, depth: int) -> None:
    if depth > DEFAULT_MAX_DEPTH:
        raise LocalProtocolError(f"AMF0 value nested deeper than {DEFAULT_MAX_DEPTH}")
    if value is None:
        out.append(_NULL)
    elif value is UNDEFINED:
        out.append(_UNDEFINED)
    elif isinstance(value, bool):
        out += bytes((_BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(_NUMBER)
        out += _D.pack(float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out.append(_STRING)
            out += _H.pack(len(raw))
        elif len(raw) <= 0xFFFFFFFF:
            out.append(_LONG_STRING)
            out += _I.pack(len(raw))
        else:  # pragma: no cover - 4 GiB string
            raise LocalProtocolError("AMF0 string longer than 4 GiB")
        out += raw
    elif isinstance(value, AmfDate):
        out.append(_DATE)
        out += _DATE_S.pack(value.milliseconds, value.timezone)
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(_ECMA_ARRAY)
            out += _I.pack(len(value))
        else:
            out.append(_OBJECT)
        for key, item in value.items():
            if not isinstance(key, str):
                raise LocalProtocolError(f"AMF0 object key must be str, not {type(key).__name__}")
            _encode_key(out, key)
            _encode(out, item, depth + 1)
        out += b"\x00\x00\x09"
    elif isinstance(value, list):
        out.append(_STRICT_ARRAY)
        out += _I.pack(len(value))
        for item in value:
            _encode(out, item, depth + 1)
    else:
        raise LocalProtocolError(f"cannot encode {type(value).__name__} as AMF0")


def decode_amf0(
    data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_values: int = DEFAULT_MAX_VALUES
) -> list[AmfValue]:
    """Decode every AMF0 value in `data`, in order.

    Raises:
        ParseError: truncated or malformed input (AMF3 after a switch marker included), AMF0 references, or a
            limit exceeded.
    """
    decoder = _Decoder(bytes(data), max_depth, max_values)
    values: list[AmfValue] = []
    end = len(decoder.data)
    while decoder.pos < end:
        values.append(decoder.value(0))
    return values


class _Decoder:
    __slots__ = ("budget", "data", "max_depth", "pos")

    def __init__(self, data: bytes, max_depth: int, max_values: int) -> None:
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.budget = max_values

    def need(self, n: int) -> int:
        pos = self.pos
        if pos + n > len(self.data):
            raise ParseError(f"AMF0 value truncated: {n} bytes needed, {len(self.data) - pos} left", offset=pos)
        self.pos = pos + n
        return pos

    def text(self, n: int) -> str:
        pos = self.need(n)
        try:
            return self.data[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("AMF0 string is not UTF-8", offset=pos) from None

    def short_string(self) -> str:
        (n,) = _H.unpack_from(self.data, self.need(2))
        return self.text(n)

    def properties(self, into: dict[str, AmfValue], depth: int) -> None:
        # §2.5: (UTF-8 key, value)* terminated by an empty key followed by the object-end marker.
        data = self.data
        while True:
            key = self.short_string()
            if not key:
                pos = self.need(1)
                if data[pos] != _OBJECT_END:
                    raise ParseError("AMF0 object: empty key not followed by object-end marker", offset=pos)
                return
            into[key] = self.value(depth + 1)

    def value(self, depth: int) -> AmfValue:
        if depth > self.max_depth:
            raise ParseError(f"AMF0 value nested deeper than {self.max_depth}", offset=self.pos)
        self.budget -= 1
        if self.budget < 0:
            raise ParseError("AMF0 message holds too many values", offset=self.pos)
        data = self.data
        pos = self.need(1)
        marker = data[pos]
        if marker == _NUMBER:
            return float(_D.unpack_from(data, self.need(8))[0])
        if marker == _BOOLEAN:
            return data[self.need(1)] != 0
        if marker == _STRING:
            return self.short_string()
        if marker == _OBJECT:
            obj: dict[str, AmfValue] = {}
            self.properties(obj, depth)
            return obj
        if marker in (_NULL, _UNSUPPORTED):
            return None
        if marker == _UNDEFINED:
            return UNDEFINED
        if marker == _ECMA_ARRAY:
            self.need(4)  # the count is only a hint (§2.10): the end marker terminates the array
            arr = EcmaArray()
            self.properties(arr, depth)
            return arr
        if marker == _STRICT_ARRAY:
            (count,) = _I.unpack_from(data, self.need(4))
            if count > len(data) - self.pos:  # every value takes at least one byte
                raise ParseError(f"AMF0 strict array of {count} values in a short message", offset=pos)
            return [self.value(depth + 1) for _ in range(count)]
        if marker == _DATE:
            ms, tz = _DATE_S.unpack_from(data, self.need(10))
            return AmfDate(milliseconds=ms, timezone=tz)
        if marker in (_LONG_STRING, _XML):
            (n,) = _I.unpack_from(data, self.need(4))
            return self.text(n)
        if marker == _TYPED_OBJECT:
            self.short_string()  # class name: dropped, the properties come back as a plain dict
            typed: dict[str, AmfValue] = {}
            self.properties(typed, depth)
            return typed
        if marker == _AVMPLUS:
            from ._amf3 import Amf3Decoder  # here: _amf3 imports this module

            amf3 = Amf3Decoder(data, self.pos, max_depth=self.max_depth, budget=self.budget + 1)
            result = amf3.value(depth)
            self.pos = amf3.pos
            self.budget = amf3.budget
            return result
        if marker == _REFERENCE:
            raise ParseError("AMF0 references are not supported", offset=pos)
        if marker == _MOVIECLIP:
            raise ParseError("AMF0 movieclip marker is reserved", offset=pos)
        raise ParseError(f"unknown AMF0 type marker 0x{marker:02x}", offset=pos)
