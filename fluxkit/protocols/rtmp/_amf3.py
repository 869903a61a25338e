"""AMF3 encoding and decoding (Adobe "Action Message Format -- AMF 3", January 2013), for what RTMP carries.

RTMP meets AMF3 in two places: AMF3 command and data messages (types 17 and 15: a format byte, then AMF0 values
in which the AVM+ marker 0x11 switches one value to AMF3, AMF0 §3.1), and the values Flash/Flex clients put there
when their NetConnection has objectEncoding 3. `decode_amf0` calls `Amf3Decoder` at each 0x11.

Strategy: recursive descent over one `bytes` object, with the three reference tables of AMF3 §2.2 (strings,
objects, traits). Hostile input is bounded like AMF0: nesting depth (`max_depth`) and a value budget
(`max_values`) that a reference also spends, by the number of values of the referenced subtree, so references
cannot expand a small message into a huge tree. A reference to a value still being decoded (a cycle) is refused.
Every malformed input raises `ParseError`.

Python mapping: undefined <-> `UNDEFINED`, null <-> None, false/true <-> bool, integer <-> int (29-bit signed;
other ints encode as doubles), double <-> float, string <-> str, XML / XMLDocument -> str, date <-> `AmfDate`,
array <-> list (dense part only) or `EcmaArray` (with an associative part; its dense items get keys "0", "1",
...), object <-> dict (sealed and dynamic members together; the class name is dropped; encoded as an anonymous
dynamic object), ByteArray <-> bytes, vectors -> list, Dictionary -> dict (keys turned to str). Externalizable
objects cannot be read without their class and raise `ParseError`.
"""

from __future__ import annotations

import struct

from fluxkit.errors import LocalProtocolError, ParseError

from ._amf0 import DEFAULT_MAX_DEPTH, DEFAULT_MAX_VALUES, UNDEFINED, AmfDate, AmfValue, EcmaArray

__all__ = ["Amf3Decoder", "decode_amf3", "encode_amf3"]

# AMF3 §3.1 type markers.
_UNDEFINED = 0x00
_NULL = 0x01
_FALSE = 0x02
_TRUE = 0x03
_INTEGER = 0x04
_DOUBLE = 0x05
_STRING = 0x06
_XML_DOC = 0x07
_DATE = 0x08
_ARRAY = 0x09
_OBJECT = 0x0A
_XML = 0x0B
_BYTE_ARRAY = 0x0C
_VECTOR_INT = 0x0D
_VECTOR_UINT = 0x0E
_VECTOR_DOUBLE = 0x0F
_VECTOR_OBJECT = 0x10
_DICTIONARY = 0x11

_INT_MIN = -(1 << 28)
_INT_MAX = (1 << 28) - 1
_U29_MAX = (1 << 29) - 1

_D = struct.Struct(">d")
_I = struct.Struct(">i")
_UI = struct.Struct(">I")


class _Traits:
    __slots__ = ("dynamic", "externalizable", "members", "name")

    def __init__(self, name: str, members: list[str], dynamic: bool, externalizable: bool) -> None:
        self.name = name
        self.members = members
        self.dynamic = dynamic
        self.externalizable = externalizable


class Amf3Decoder:
    """Decodes AMF3 values from `data` starting at `pos`, sharing one set of reference tables (AMF3 §2.2).

    Args:
        data: the message body.
        pos: where the first value starts.
        max_depth: deepest nesting accepted.
        budget: values this decoder may still build (references spend the size of what they point to).
    """

    __slots__ = ("_complete", "_objects", "_strings", "_traits", "_weights", "budget", "data", "max_depth", "pos")

    def __init__(
        self, data: bytes, pos: int = 0, *, max_depth: int = DEFAULT_MAX_DEPTH, budget: int = DEFAULT_MAX_VALUES
    ) -> None:
        self.data = data
        self.pos = pos
        self.max_depth = max_depth
        self.budget = budget
        self._strings: list[str] = []
        self._objects: list[AmfValue] = []
        self._weights: list[int] = []
        self._complete: list[bool] = []
        self._traits: list[_Traits] = []

    # --- primitives -----------------------------------------------------------------------------------------

    def _need(self, n: int) -> int:
        pos = self.pos
        if n < 0 or pos + n > len(self.data):
            raise ParseError(f"AMF3 value truncated: {n} bytes needed, {len(self.data) - pos} left", offset=pos)
        self.pos = pos + n
        return pos

    def _u29(self) -> int:
        # AMF3 §1.3.1: 1-4 bytes, 7 bits each with a continuation bit, the fourth byte all 8 bits.
        data = self.data
        value = 0
        for i in range(4):
            b = data[self._need(1)]
            if i == 3:
                return (value << 8) | b
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value
        raise AssertionError("unreachable")  # pragma: no cover

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise ParseError("AMF3 message holds too many values", offset=self.pos)

    def _string(self) -> str:
        start = self.pos
        head = self._u29()
        if not head & 1:
            return self._string_ref(head >> 1, start)
        n = head >> 1
        pos = self._need(n)
        try:
            text = self.data[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("AMF3 string is not UTF-8", offset=pos) from None
        if text:  # the empty string is never sent by reference (§1.3.2)
            self._strings.append(text)
        return text

    def _string_ref(self, index: int, offset: int) -> str:
        if index >= len(self._strings):
            raise ParseError(f"AMF3 string reference {index} out of range", offset=offset)
        return self._strings[index]

    def _object_ref(self, index: int, offset: int) -> AmfValue:
        if index >= len(self._objects):
            raise ParseError(f"AMF3 object reference {index} out of range", offset=offset)
        if not self._complete[index]:
            raise ParseError("AMF3 reference to an object still being decoded (a cycle)", offset=offset)
        self._spend(self._weights[index])
        return self._objects[index]

    def _register(self, value: AmfValue) -> int:
        self._objects.append(value)
        self._weights.append(0)
        self._complete.append(False)
        return len(self._objects) - 1

    def _done(self, index: int, budget_before: int, value: AmfValue | None = None) -> None:
        if value is not None:
            self._objects[index] = value
        self._weights[index] = max(budget_before - self.budget, 1)
        self._complete[index] = True

    # --- values ---------------------------------------------------------------------------------------------

    def value(self, depth: int = 0) -> AmfValue:
        """Decode one value.

        Raises:
            ParseError: malformed or truncated input, a limit exceeded.
        """
        if depth > self.max_depth:
            raise ParseError(f"AMF3 value nested deeper than {self.max_depth}", offset=self.pos)
        self._spend(1)
        data = self.data
        start = self._need(1)
        marker = data[start]
        if marker == _UNDEFINED:
            return UNDEFINED
        if marker == _NULL:
            return None
        if marker == _FALSE:
            return False
        if marker == _TRUE:
            return True
        if marker == _INTEGER:
            n = self._u29()
            return n - (1 << 29) if n & (1 << 28) else n
        if marker == _DOUBLE:
            return float(_D.unpack_from(data, self._need(8))[0])
        if marker == _STRING:
            return self._string()
        if marker in (_XML_DOC, _XML, _DATE, _BYTE_ARRAY):
            return self._simple_object(marker, start)
        if marker == _ARRAY:
            return self._array(depth, start)
        if marker == _OBJECT:
            return self._object(depth, start)
        if marker in (_VECTOR_INT, _VECTOR_UINT, _VECTOR_DOUBLE, _VECTOR_OBJECT):
            return self._vector(marker, depth, start)
        if marker == _DICTIONARY:
            return self._dictionary(depth, start)
        raise ParseError(f"unknown AMF3 type marker 0x{marker:02x}", offset=start)

    def _simple_object(self, marker: int, start: int) -> AmfValue:
        head = self._u29()
        if not head & 1:
            return self._object_ref(head >> 1, start)
        index = self._register(None)
        budget = self.budget
        result: AmfValue
        if marker == _DATE:
            (ms,) = _D.unpack_from(self.data, self._need(8))
            result = AmfDate(milliseconds=ms, timezone=0)
        else:
            n = head >> 1
            pos = self._need(n)
            raw = self.data[pos : pos + n]
            if marker == _BYTE_ARRAY:
                result = raw
            else:
                try:
                    result = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ParseError("AMF3 XML is not UTF-8", offset=pos) from None
        self._done(index, budget, result)
        return result

    def _count(self, n: int, start: int, what: str) -> None:
        if n > len(self.data) - self.pos:  # every item takes at least one byte
            raise ParseError(f"AMF3 {what} of {n} items in a short message", offset=start)

    def _array(self, depth: int, start: int) -> AmfValue:
        head = self._u29()
        if not head & 1:
            return self._object_ref(head >> 1, start)
        dense = head >> 1
        budget = self.budget
        assoc = EcmaArray()
        index = self._register(assoc)
        while key := self._string():
            assoc[key] = self.value(depth + 1)
        self._count(dense, start, "array")
        items = [self.value(depth + 1) for _ in range(dense)]
        if not assoc:
            self._done(index, budget, items)
            return items
        for i, item in enumerate(items):
            assoc[str(i)] = item
        self._done(index, budget)
        return assoc

    def _object(self, depth: int, start: int) -> AmfValue:
        head = self._u29()
        if not head & 1:
            return self._object_ref(head >> 1, start)
        if not head & 2:
            ref = head >> 2
            if ref >= len(self._traits):
                raise ParseError(f"AMF3 traits reference {ref} out of range", offset=start)
            traits = self._traits[ref]
        else:
            externalizable = bool(head & 4)
            dynamic = bool(head & 8)
            count = head >> 4
            name = self._string()
            self._count(count, start, "sealed member list")
            members = [self._string() for _ in range(count)]
            traits = _Traits(name, members, dynamic, externalizable)
            self._traits.append(traits)
        if traits.externalizable:
            raise ParseError(f"AMF3 externalizable object of class {traits.name!r} is not supported", offset=start)
        budget = self.budget
        obj: dict[str, AmfValue] = {}
        index = self._register(obj)
        for member in traits.members:
            obj[member] = self.value(depth + 1)
        if traits.dynamic:
            while key := self._string():
                obj[key] = self.value(depth + 1)
        self._done(index, budget)
        return obj

    def _vector(self, marker: int, depth: int, start: int) -> AmfValue:
        head = self._u29()
        if not head & 1:
            return self._object_ref(head >> 1, start)
        n = head >> 1
        self._need(1)  # fixed-length flag
        budget = self.budget
        items: list[AmfValue] = []
        index = self._register(items)
        data = self.data
        if marker == _VECTOR_OBJECT:
            self._string()  # the element type name
            self._count(n, start, "vector")
            items += [self.value(depth + 1) for _ in range(n)]
        else:
            size = 8 if marker == _VECTOR_DOUBLE else 4
            pos = self._need(n * size)
            self._spend(n)
            if marker == _VECTOR_DOUBLE:
                items += [float(v) for v in struct.unpack_from(f">{n}d", data, pos)]
            else:
                items += list(struct.unpack_from(f">{n}{'i' if marker == _VECTOR_INT else 'I'}", data, pos))
        self._done(index, budget)
        return items

    def _dictionary(self, depth: int, start: int) -> AmfValue:
        head = self._u29()
        if not head & 1:
            return self._object_ref(head >> 1, start)
        n = head >> 1
        self._need(1)  # weak-keys flag
        budget = self.budget
        out: dict[str, AmfValue] = {}
        index = self._register(out)
        self._count(n, start, "dictionary")
        for _ in range(n):
            at = self.pos
            key = self.value(depth + 1)
            if not isinstance(key, str | int | float):  # bool is an int
                raise ParseError("AMF3 dictionary key is not a string or a number", offset=at)
            out[key if isinstance(key, str) else str(key)] = self.value(depth + 1)
        self._done(index, budget)
        return out


def decode_amf3(
    data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, max_values: int = DEFAULT_MAX_VALUES
) -> list[AmfValue]:
    """Decode every AMF3 value in `data`, in order (one set of reference tables for the whole body).

    Raises:
        ParseError: truncated or malformed input, bad references, or a limit exceeded.
    """
    decoder = Amf3Decoder(bytes(data), max_depth=max_depth, budget=max_values)
    values: list[AmfValue] = []
    end = len(decoder.data)
    while decoder.pos < end:
        values.append(decoder.value())
    return values


class _Encoder:
    __slots__ = ("out", "strings", "traits_sent")

    def __init__(self) -> None:
        self.out = bytearray()
        self.strings: dict[str, int] = {}
        self.traits_sent = False

    def u29(self, n: int) -> None:
        out = self.out
        if n < 0x80:
            out.append(n)
        elif n < 0x4000:
            out += bytes((0x80 | (n >> 7), n & 0x7F))
        elif n < 0x200000:
            out += bytes((0x80 | (n >> 14), 0x80 | ((n >> 7) & 0x7F), n & 0x7F))
        elif n <= _U29_MAX:
            out += bytes((0x80 | (n >> 22), 0x80 | ((n >> 15) & 0x7F), 0x80 | ((n >> 8) & 0x7F), n & 0xFF))
        else:
            raise LocalProtocolError(f"AMF3 length or count {n} does not fit in 29 bits")

    def string(self, text: str) -> None:
        index = self.strings.get(text)
        if index is not None:
            self.u29(index << 1)
            return
        raw = text.encode("utf-8")
        self.u29((len(raw) << 1) | 1)
        self.out += raw
        if text:
            self.strings[text] = len(self.strings)

    def value(self, value: AmfValue, depth: int) -> None:
        if depth > DEFAULT_MAX_DEPTH:
            raise LocalProtocolError(f"AMF3 value nested deeper than {DEFAULT_MAX_DEPTH}")
        out = self.out
        if value is None:
            out.append(_NULL)
        elif value is UNDEFINED:
            out.append(_UNDEFINED)
        elif value is True:
            out.append(_TRUE)
        elif value is False:
            out.append(_FALSE)
        elif isinstance(value, int) and _INT_MIN <= value <= _INT_MAX:
            out.append(_INTEGER)
            self.u29(value & _U29_MAX)
        elif isinstance(value, int | float):
            out.append(_DOUBLE)
            out += _D.pack(float(value))
        elif isinstance(value, str):
            out.append(_STRING)
            self.string(value)
        elif isinstance(value, bytes):
            out.append(_BYTE_ARRAY)
            self.u29((len(value) << 1) | 1)
            out += value
        elif isinstance(value, AmfDate):
            out.append(_DATE)
            out.append(1)
            out += _D.pack(value.milliseconds)
        elif isinstance(value, EcmaArray):
            out.append(_ARRAY)
            out.append(1)  # no dense part
            for key, item in value.items():
                self.key(key)
                self.value(item, depth + 1)
            out.append(1)  # the empty key ends the associative part
        elif isinstance(value, dict):
            out.append(_OBJECT)
            if self.traits_sent:
                out.append(0x01)  # traits reference 0: the anonymous dynamic traits sent before
            else:
                out.append(0x0B)  # inline traits, dynamic, no sealed members
                out.append(1)  # class name "" (anonymous)
                self.traits_sent = True
            for key, item in value.items():
                self.key(key)
                self.value(item, depth + 1)
            out.append(1)
        elif isinstance(value, list):
            out.append(_ARRAY)
            self.u29((len(value) << 1) | 1)
            out.append(1)  # no associative part
            for item in value:
                self.value(item, depth + 1)
        else:
            raise LocalProtocolError(f"cannot encode {type(value).__name__} as AMF3")

    def key(self, key: object) -> None:
        if not isinstance(key, str) or not key:
            raise LocalProtocolError(f"AMF3 member name must be a non-empty str, not {key!r}")
        self.string(key)


def encode_amf3(*values: AmfValue) -> bytes:
    """Encode values one after the other with one set of reference tables (strings and traits are referenced
    when repeated).

    Raises:
        LocalProtocolError: a value AMF3 cannot carry (an empty or non-str key, an unknown type, too long).
    """
    encoder = _Encoder()
    for value in values:
        encoder.value(value, 0)
    return bytes(encoder.out)
