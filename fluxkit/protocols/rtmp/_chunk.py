"""The RTMP chunk stream (Adobe RTMP specification 1.0, §5.3): messages cut into chunks and back.

Strategy: `ChunkReader` is a feeder. `feed(data)` appends to one bytearray and parses as many whole chunks as it
holds, each with `struct.unpack_from` on the buffer (no per-byte Python work): a chunk is committed only once its
header *and* its payload slice are all there, so partial input never changes state. The payload slices of each
chunk stream wait in a list joined when the message is complete. Set Chunk Size and Abort (§5.4.1, §5.4.2) act
inside the reader at the very chunk boundary where they arrive, as they must.

Bounds: a message longer than `max_message_size`, more than `max_chunk_streams` chunk streams with a message in
progress, or a Set Chunk Size above `max_chunk_size` raise `ParseError`; so the memory held by a reader is at most
about `max_chunk_streams * max_message_size` plus one chunk.

Timestamps (§5.3.1.2): a type-0 header carries the absolute timestamp, types 1 and 2 a delta, type 3 repeats the
previous header's field (so a type 3 after a type 0 adds that absolute value, as ffmpeg and librtmp do). A field of
0xFFFFFF means a 4-byte extended timestamp follows (§5.3.1.3); type-3 chunks of such a message repeat it. Some
servers omit it on continuation chunks, so there the reader takes the 4 bytes only when they equal the extended
value of the message's first chunk (the same tolerance as librtmp and SRS).
"""

from __future__ import annotations

import struct

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CHUNK_SIZE",
    "DEFAULT_MAX_CHUNK_STREAMS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ChunkReader",
    "ChunkWriter",
    "RtmpMessage",
    "encode_basic_header",
]

#: The chunk size both directions start with (§5.4.1).
DEFAULT_CHUNK_SIZE = 128
#: Largest message the reader reassembles (the 24-bit length field allows 16 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
#: Chunk streams that may hold a partly received message at the same time.
DEFAULT_MAX_CHUNK_STREAMS = 64
#: Largest chunk size a peer may set (the spec allows 2**31 - 1; nobody needs more than a few hundred KiB).
DEFAULT_MAX_CHUNK_SIZE = 1 << 20

_MSG_SET_CHUNK_SIZE = 1
_MSG_ABORT = 2
_EXT = 0xFFFFFF

_U24_U24_U8_U32LE = struct.Struct(">3s3sBI")
_TYPE1 = struct.Struct(">3s3sB")
_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")


@attrs.frozen(kw_only=True, slots=True)
class RtmpMessage:
    """One RTMP message (§5.4 / §7), as reassembled from chunks or handed to the writer.

    Attributes:
        type_id: message type (1-6 protocol control, 8 audio, 9 video, 18/15 data, 20/17 command, 22 aggregate).
        stream_id: message stream id (0 for NetConnection traffic).
        timestamp: milliseconds, 32 bits (wraps).
        payload: the message body.
        chunk_stream_id: the chunk stream it travelled on.
    """

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    chunk_stream_id: int = 2


class _InStream:
    __slots__ = ("delta", "ext", "length", "parts", "remaining", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.ext: int | None = None  # the extended-timestamp field of the last header, when it had one
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.remaining = 0
        self.parts: list[bytes] = []


class ChunkReader:
    """Reassembles RTMP messages from a chunk stream; see the module docstring.

    Args:
        max_message_size: bound on one message.
        max_chunk_streams: bound on chunk streams with a message in progress.
        max_chunk_size: largest chunk size the peer may set.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_streams: int = DEFAULT_MAX_CHUNK_STREAMS,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.max_chunk_size = max_chunk_size
        self._buf = bytearray()
        self._streams: dict[int, _InStream] = {}
        self._in_progress = 0
        #: Bytes consumed so far (for acknowledgements, §5.4.3).
        self.bytes_consumed = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (at most one partial chunk)."""
        return len(self._buf)

    def set_chunk_size(self, size: int) -> None:
        """Apply a Set Chunk Size from the peer (§5.4.1: 31 bits, at least 1)."""
        if not 1 <= size <= 0x7FFFFFFF:
            raise ParseError(f"invalid chunk size {size}")
        if size > self.max_chunk_size:
            raise ParseError(f"peer set chunk size {size}, above the limit of {self.max_chunk_size}")
        self.chunk_size = size

    def abort(self, chunk_stream_id: int) -> None:
        """Drop the partial message of a chunk stream (§5.4.2)."""
        stream = self._streams.get(chunk_stream_id)
        if stream is not None and stream.remaining:
            stream.remaining = 0
            stream.parts = []
            self._in_progress -= 1

    def feed(self, data: bytes) -> list[RtmpMessage]:
        """Add bytes; return the messages they complete, in order.

        Raises:
            ParseError: malformed chunk headers or a bound exceeded.
        """
        buf = self._buf
        buf += data
        out: list[RtmpMessage] = []
        n = len(buf)
        pos = start = 0
        streams = self._streams
        while pos < n:
            start = pos
            b0 = buf[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            pos += 1
            if csid == 0:
                if pos + 1 > n:
                    break
                csid = buf[pos] + 64
                pos += 1
            elif csid == 1:
                if pos + 2 > n:
                    break
                csid = buf[pos] + (buf[pos + 1] << 8) + 64
                pos += 2
            stream = streams.get(csid)
            if fmt == 0:
                if pos + 11 > n:
                    break
                ts_b, len_b, type_id, msid = _U24_U24_U8_U32LE.unpack_from(buf, pos)
                msid = _byteswap32(msid)
                field = int.from_bytes(ts_b, "big")
                length = int.from_bytes(len_b, "big")
                pos += 11
            elif fmt == 1:
                # librtmp opens chunk stream 2 (protocol control) with a type-1 header: it names the length and
                # type, so with no previous header the message stream id is 0 and the delta counts from 0.
                if pos + 7 > n:
                    break
                ts_b, len_b, type_id = _TYPE1.unpack_from(buf, pos)
                field = int.from_bytes(ts_b, "big")
                length = int.from_bytes(len_b, "big")
                msid = 0 if stream is None else stream.stream_id
                pos += 7
            elif stream is None:
                raise ParseError(f"chunk type {fmt} on chunk stream {csid} with no previous header", offset=start)
            elif fmt == 2:
                if pos + 3 > n:
                    break
                field = int.from_bytes(buf[pos : pos + 3], "big")
                length, type_id, msid = stream.length, stream.type_id, stream.stream_id
                pos += 3
            else:
                field = -1
                length, type_id, msid = stream.length, stream.type_id, stream.stream_id
            continuing = stream is not None and stream.remaining > 0
            if continuing and fmt != 3:
                raise ParseError(
                    f"chunk type {fmt} on chunk stream {csid} before its message was complete", offset=start
                )
            ext: int | None = None
            if field == _EXT:
                if pos + 4 > n:
                    break
                (ext,) = _U32.unpack_from(buf, pos)
                pos += 4
            elif field == -1 and stream is not None and stream.ext is not None:
                if pos + 4 > n:
                    break
                (value,) = _U32.unpack_from(buf, pos)
                if not continuing or value == stream.ext:
                    ext = value
                    pos += 4
                else:  # a continuation without the repeated extended timestamp (tolerated, see above)
                    ext = stream.ext
            if continuing:
                assert stream is not None
                size = min(self.chunk_size, stream.remaining)
                if pos + size > n:
                    break
                stream.parts.append(bytes(buf[pos : pos + size]))
                stream.remaining -= size
                pos += size
                if stream.remaining:
                    continue
                self._in_progress -= 1
                payload = b"".join(stream.parts)
                stream.parts = []
            else:
                if length > self.max_message_size:
                    raise ParseError(
                        f"message of {length} bytes on chunk stream {csid} exceeds the limit of "
                        f"{self.max_message_size}",
                        offset=start,
                    )
                size = min(self.chunk_size, length)
                if pos + size > n:
                    break
                if stream is None:
                    if len(streams) >= self.max_chunk_streams * 4:
                        # Idle chunk streams only keep a header each, but a peer cycling through 65599 ids
                        # must not grow the table without bound either.
                        raise ParseError(f"more than {self.max_chunk_streams * 4} chunk streams used", offset=start)
                    stream = streams[csid] = _InStream()
                if fmt == 3:
                    stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
                else:
                    value = field if ext is None else ext
                    stream.delta = value
                    stream.timestamp = value if fmt == 0 else (stream.timestamp + value) & 0xFFFFFFFF
                    stream.ext = ext
                stream.length = length
                stream.type_id = type_id
                stream.stream_id = msid
                payload = bytes(buf[pos : pos + size])
                pos += size
                if size < length:
                    if self._in_progress >= self.max_chunk_streams:
                        raise ParseError(
                            f"more than {self.max_chunk_streams} chunk streams with a message in progress",
                            offset=start,
                        )
                    self._in_progress += 1
                    stream.parts = [payload]
                    stream.remaining = length - size
                    continue
            message = RtmpMessage(
                type_id=stream.type_id,
                stream_id=stream.stream_id,
                timestamp=stream.timestamp,
                payload=payload,
                chunk_stream_id=csid,
            )
            out.append(message)
            # Protocol control acts at this very boundary (§5.4): later chunks already use the new size.
            if message.type_id == _MSG_SET_CHUNK_SIZE and message.stream_id == 0:
                if len(payload) < 4:
                    raise ParseError("Set Chunk Size message shorter than 4 bytes", offset=start)
                self.set_chunk_size(_U32.unpack_from(payload)[0] & 0x7FFFFFFF)
            elif message.type_id == _MSG_ABORT and message.stream_id == 0 and len(payload) >= 4:
                self.abort(_U32.unpack_from(payload)[0])
        else:
            start = pos
        # `start` is where the first incomplete chunk begins (or the end): keep it and everything after.
        self.bytes_consumed += start
        del buf[:start]
        return out


def _byteswap32(value: int) -> int:
    # The message stream id of a type-0 header is little-endian (§5.3.1.2.1), unlike every other field.
    return int.from_bytes(value.to_bytes(4, "big"), "little")


def encode_basic_header(fmt: int, chunk_stream_id: int) -> bytes:
    """The 1-3 byte chunk basic header (§5.3.1.1) for chunk type `fmt` and a chunk stream id 2..65599."""
    if not 0 <= fmt <= 3:
        raise LocalProtocolError(f"chunk type {fmt} out of range")
    if 2 <= chunk_stream_id <= 63:
        return bytes(((fmt << 6) | chunk_stream_id,))
    if 64 <= chunk_stream_id <= 319:
        return bytes((fmt << 6, chunk_stream_id - 64))
    if 320 <= chunk_stream_id <= 65599:
        v = chunk_stream_id - 64
        return bytes(((fmt << 6) | 1, v & 0xFF, v >> 8))
    raise LocalProtocolError(f"chunk stream id {chunk_stream_id} out of range 2..65599")


class _OutStream:
    __slots__ = ("length", "stream_id", "timestamp", "type_id")

    def __init__(self, timestamp: int, length: int, type_id: int, stream_id: int) -> None:
        self.timestamp = timestamp
        self.length = length
        self.type_id = type_id
        self.stream_id = stream_id


class ChunkWriter:
    """Cuts messages into chunks, compressing headers (types 1 and 2) where the previous message allows.

    Args:
        chunk_size: the outgoing chunk size (announce it with a Set Chunk Size message first when not 128).
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size
        self._streams: dict[int, _OutStream] = {}

    def write(self, message: RtmpMessage) -> bytes:
        """Serialize one message as chunks.

        Raises:
            LocalProtocolError: a field out of range (payload over 16 MiB, bad ids).
        """
        payload = message.payload
        length = len(payload)
        csid = message.chunk_stream_id
        if length > 0xFFFFFF:
            raise LocalProtocolError(f"RTMP message of {length} bytes is over the 16 MiB limit of the length field")
        if not 0 <= message.type_id <= 0xFF or not 0 <= message.stream_id <= 0xFFFFFFFF:
            raise LocalProtocolError("RTMP message type or stream id out of range")
        timestamp = message.timestamp & 0xFFFFFFFF
        prev = self._streams.get(csid)
        if prev is None or prev.stream_id != message.stream_id or timestamp < prev.timestamp:
            fmt, field = 0, timestamp
        else:
            field = timestamp - prev.timestamp
            fmt = 2 if prev.length == length and prev.type_id == message.type_id else 1
        self._streams[csid] = _OutStream(timestamp, length, message.type_id, message.stream_id)
        ext = b""
        stamp = field
        if field >= _EXT:
            ext = _U32.pack(field)
            stamp = _EXT
        ts_b = stamp.to_bytes(3, "big")
        header = encode_basic_header(fmt, csid)
        if fmt == 0:
            header += ts_b + length.to_bytes(3, "big") + bytes((message.type_id,)) + _U32LE.pack(message.stream_id)
        elif fmt == 1:
            header += ts_b + length.to_bytes(3, "big") + bytes((message.type_id,))
        else:
            header += ts_b
        header += ext
        size = self.chunk_size
        if length <= size:
            return header + payload
        cont = encode_basic_header(3, csid) + ext
        parts = [header, payload[:size]]
        for i in range(size, length, size):
            parts.append(cont)
            parts.append(payload[i : i + size])
        return b"".join(parts)
