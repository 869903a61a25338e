"""RTSP message codec: requests, responses and the mixed TCP stream of messages and interleaved frames.

Strategy: `MessageReader` keeps one immutable `bytes` buffer and a read position. At each call it looks at the
first byte: a `$` starts an interleaved binary frame (RFC 2326 §10.12: `$`, channel, 16-bit length, data), which
is sliced out (one copy, no per-byte work); anything else must be an RTSP message, whose header block is found
with `bytes.find` for the blank line (CRLF or the bare LF some cameras send), decoded once, split into lines, then
the body is taken by Content-Length (RFC 2326 §4.3: no Content-Length means no body). The unread rest is carried
into the next buffer once per `feed`, not once per frame; a frame or body still incomplete makes `feed` queue
chunks until it can be complete, then join them once. The first line of a message is validated as soon as it is
complete, so a peer sending garbage is refused at once instead of after `max_message_size` bytes.

Headers are kept in order with their original spelling (`Headers`), looked up case-insensitively (RFC 2326 §4.2,
RFC 7826 §5.2). Header values are decoded as UTF-8, falling back to Latin-1 (some cameras put local-charset text
in `Server` or `Date`); bodies stay bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import attrs

from fluxkit.errors import LocalProtocolError, ParseError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "REASONS",
    "Headers",
    "InterleavedData",
    "MessageReader",
    "RtspRequest",
    "RtspResponse",
    "parse_message",
]

#: Largest RTSP message (start line, headers and body) accepted; larger raises RemoteProtocolError, status 413.
DEFAULT_MAX_MESSAGE_SIZE = 65536

#: Reason phrases of RFC 2326 §7.1.1 (and RFC 7826 §17), used when a response is built without one.
REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    303: "See Other",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    452: "Conference Not Found",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate Operation Not Allowed",
    460: "Only Aggregate Operation Allowed",
    461: "Unsupported Transport",
    462: "Destination Unreachable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "RTSP Version Not Supported",
    551: "Option Not Supported",
}

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# A method is a token (RFC 2326 §6.1); we also require a letter first, as every method has, so that a stream
# position holding anything else is known to be garbage from its first byte.
_METHOD_RE = re.compile(r"[A-Za-z][!#$%&'*+\-.^_`|~0-9A-Za-z]*\Z")
_REQUEST_LINE_RE = re.compile(r"([A-Za-z][!#$%&'*+\-.^_`|~0-9A-Za-z]*) +(\S+) +(RTSP/\d+\.\d+)\Z")
_STATUS_LINE_RE = re.compile(r"(RTSP/\d+\.\d+) +(\d{3})(?: (.*))?\Z")
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")
_DIGITS_RE = re.compile(r"[0-9]{1,10}\Z")


class Headers:
    """An immutable, ordered list of (name, value) header pairs, looked up case-insensitively.

    Names keep the spelling they were received or built with, and serialization writes them that way (cameras
    are known to be picky about `CSeq`). Equality compares the pairs exactly, order included.
    """

    __slots__ = ("_items",)

    _items: tuple[tuple[str, str], ...]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = tuple((str(k), str(v)) for k, v in items)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (any case), or `default`."""
        lname = name.lower()
        for k, v in self._items:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name` (any case), in order."""
        lname = name.lower()
        return [v for k, v in self._items if k.lower() == lname]

    def with_header(self, name: str, value: str) -> Headers:
        """A copy where `name` has the single value `value` (replacing the first occurrence, dropping others)."""
        lname = name.lower()
        out: list[tuple[str, str]] = []
        done = False
        for k, v in self._items:
            if k.lower() == lname:
                if not done:
                    out.append((k, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        return Headers(out)

    def without(self, name: str) -> Headers:
        """A copy without header `name`."""
        lname = name.lower()
        return Headers((k, v) for k, v in self._items if k.lower() != lname)

    def items(self) -> tuple[tuple[str, str], ...]:
        """The pairs, in order."""
        return self._items

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        lname = name.lower()
        return any(k.lower() == lname for k, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


_new = object.__new__


def _to_headers(value: Headers | Iterable[tuple[str, str]]) -> Headers:
    return value if isinstance(value, Headers) else Headers(value)


def _cseq(headers: Headers) -> int | None:
    value = headers.get("CSeq")
    if value is None:
        return None
    value = value.strip()
    return int(value) if _DIGITS_RE.match(value) else None


@attrs.frozen(kw_only=True, slots=True)
class RtspRequest:
    """An RTSP request (RFC 2326 §6).

    Attributes:
        method: the method token, as sent (RTSP methods are case-sensitive, RFC 2326 §6.1).
        uri: the Request-URI (`*` for a server-wide OPTIONS).
        headers: the headers, in order.
        body: the body bytes (Content-Length is added on serialization when missing).
        version: the protocol version, `RTSP/1.0`.
    """

    method: str
    uri: str
    headers: Headers = attrs.field(factory=Headers, converter=_to_headers)
    body: bytes = b""
    version: str = "RTSP/1.0"

    @property
    def cseq(self) -> int | None:
        """The CSeq header as an int, None if absent or not a number."""
        return _cseq(self.headers)

    def serialize(self) -> bytes:
        """The wire bytes.

        Raises:
            LocalProtocolError: the method is not a token, the URI holds white space, a header holds CR/LF, or a
                Content-Length header disagrees with the body.
        """
        if not _METHOD_RE.match(self.method):
            raise LocalProtocolError(f"RTSP method {self.method!r} is not a token starting with a letter")
        if not self.uri or any(c in self.uri for c in " \t\r\n\x00"):
            raise LocalProtocolError(f"RTSP request URI {self.uri!r} is empty or holds white space")
        _check_version(self.version)
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@attrs.frozen(kw_only=True, slots=True)
class RtspResponse:
    """An RTSP response (RFC 2326 §7).

    Attributes:
        status_code: the three-digit status.
        reason: the reason phrase; when empty, serialization writes the RFC 2326 phrase of the code.
        headers: the headers, in order.
        body: the body bytes.
        version: the protocol version, `RTSP/1.0`.
    """

    status_code: int
    reason: str = ""
    headers: Headers = attrs.field(factory=Headers, converter=_to_headers)
    body: bytes = b""
    version: str = "RTSP/1.0"

    @property
    def cseq(self) -> int | None:
        """The CSeq header as an int, None if absent or not a number."""
        return _cseq(self.headers)

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status_code < 300

    def serialize(self) -> bytes:
        """The wire bytes.

        Raises:
            LocalProtocolError: the status is not 100..999, the reason or a header holds CR/LF, or a
                Content-Length header disagrees with the body.
        """
        if not 100 <= self.status_code <= 999:
            raise LocalProtocolError(f"RTSP status {self.status_code} is not three digits")
        if _BAD_VALUE_RE.search(self.reason):
            raise LocalProtocolError("RTSP reason phrase holds CR, LF or NUL")
        _check_version(self.version)
        reason = self.reason or REASONS.get(self.status_code, "")
        line = f"{self.version} {self.status_code} {reason}" if reason else f"{self.version} {self.status_code}"
        return _serialize(line, self.headers, self.body)


@attrs.frozen(kw_only=True, slots=True)
class InterleavedData:
    """One interleaved binary frame (RFC 2326 §10.12): the RTP or RTCP packet on `channel` (0..255)."""

    channel: int
    data: bytes


_set_channel = InterleavedData.__dict__["channel"].__set__
_set_data = InterleavedData.__dict__["data"].__set__


def _check_version(version: str) -> None:
    if not re.fullmatch(r"RTSP/\d+\.\d+", version):
        raise LocalProtocolError(f"bad RTSP version {version!r}")


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    has_length = False
    for name, value in headers:
        if not _TOKEN_RE.match(name):
            raise LocalProtocolError(f"header name {name!r} is not a token")
        if _BAD_VALUE_RE.search(value):
            raise LocalProtocolError(f"header {name} holds CR, LF or NUL")
        if name.lower() == "content-length":
            if value.strip() != str(len(body)):
                raise LocalProtocolError(f"Content-Length {value!r} disagrees with a body of {len(body)} bytes")
            has_length = True
        lines.append(f"{name}: {value}")
    if body and not has_length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("")
    lines.append("")
    head = "\r\n".join(lines).encode("utf-8")
    return head + body if body else head


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _bad_first_line(line: str) -> bool:
    return _STATUS_LINE_RE.match(line) is None and _REQUEST_LINE_RE.match(line) is None


def _parse_head(text: str, offset: int) -> tuple[str, Headers, str, str, str | None]:
    """Split a header block: (version or method, headers, uri/status, reason, kind)."""
    lines = text.split("\n")
    first = lines[0].rstrip("\r").strip()
    pairs: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t":
            # Obsolete line folding (RFC 2326 §4.2 inherits it from HTTP/1.1): join with one space.
            if not pairs:
                raise ParseError("continuation line before any header", offset=offset, status_hint=400)
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN_RE.match(name):
            raise ParseError(f"malformed header line {line[:40]!r}", offset=offset, status_hint=400)
        pairs.append((name, value.strip()))
    m = _STATUS_LINE_RE.match(first)
    if m is not None:
        return m.group(1), Headers(pairs), m.group(2), m.group(3) or "", None
    m = _REQUEST_LINE_RE.match(first)
    if m is None:
        raise ParseError(f"malformed RTSP start line {first[:60]!r}", offset=offset, status_hint=400)
    return m.group(3), Headers(pairs), m.group(2), "", m.group(1)


class MessageReader:
    """Incremental parser of an RTSP byte stream: messages and `$`-framed interleaved data, mixed.

    Args:
        max_message_size: bound on one message (start line, headers, body); exceeding it raises
            `RemoteProtocolError` with `status_hint` 413. Interleaved frames are bounded by their 16-bit length.

    `feed(data)` adds bytes (b"" marks the end of the stream); `next()` returns the next complete `RtspRequest`,
    `RtspResponse` or `InterleavedData`, or None when more bytes are needed.

    The buffer is immutable `bytes`, so a frame is one slice (one copy). When `next()` knows how many bytes it
    needs (the rest of a frame or body), `feed` only queues chunks until they are there, so a large frame or body
    arriving in small pieces is joined once, not once per piece.
    """

    __slots__ = (
        "_buf",
        "_checked",
        "_eof",
        "_head",
        "_max",
        "_need",
        "_offset",
        "_parts",
        "_parts_len",
        "_pos",
        "_scan",
    )

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 64:
            raise LocalProtocolError("max_message_size must be at least 64 bytes")
        self._max = max_message_size
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] = []  # chunks fed but not yet joined into _buf
        self._parts_len = 0
        self._need = 0  # bytes from _pos that next() needs before it can make progress
        self._scan = 0  # where to resume looking for the end of the header block
        self._checked = False  # the start line of the message at _pos was validated
        self._eof = False
        self._head: tuple[int, int, RtspRequest | RtspResponse] | None = None  # parsed head awaiting its body
        self._offset = 0  # stream offset of _buf[0], for error offsets

    @property
    def eof(self) -> bool:
        """The end of the stream was fed."""
        return self._eof

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a message or frame."""
        return len(self._buf) - self._pos + self._parts_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add stream bytes; b"" means the peer closed the stream."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data fed after the end of the stream")
        pos = self._pos
        rest = len(self._buf) - pos
        if rest + self._parts_len + len(data) < self._need:
            self._parts.append(bytes(data))
            self._parts_len += len(data)
            return
        if self._parts:
            self._parts.append(bytes(data))
            joined = b"".join([self._buf[pos:], *self._parts])
            self._parts.clear()
            self._parts_len = 0
        elif rest:
            joined = self._buf[pos:] + data
        else:
            joined = bytes(data)
        self._offset += pos
        self._scan = max(0, self._scan - pos)
        self._buf = joined
        self._pos = 0

    def next(self) -> RtspRequest | RtspResponse | InterleavedData | None:
        """The next complete item, or None if more bytes are needed.

        Raises:
            ParseError: malformed start line, header or Content-Length (status_hint 400), or a message larger
                than `max_message_size` (status_hint 413).
        """
        buf = self._buf
        pos = self._pos
        n = len(buf)
        if pos >= n:
            self._need = 0
            return None
        if buf[pos] == 0x24:  # '$': RFC 2326 §10.12
            if n - pos < 4:
                self._need = 4
                return None
            end = pos + 4 + (buf[pos + 2] << 8 | buf[pos + 3])
            if end > n:
                self._need = end - pos
                return None
            self._pos = end
            self._need = 0
            # Built without attrs' __init__ (a frozen class sets each field through object.__setattr__, which
            # doubles the per-frame cost): the fields are an int 0..255 and bytes, valid by construction.
            item = _new(InterleavedData)
            _set_channel(item, buf[pos + 1])
            _set_data(item, buf[pos + 4 : end])
            return item
        self._need = 0
        return self._next_message(buf, pos, n)

    def _next_message(self, buf: bytes, pos: int, n: int) -> RtspRequest | RtspResponse | InterleavedData | None:
        # Tolerate blank lines between messages (RFC 2326 §4 via HTTP/1.1 §4.1, and keepalive CRLFs).
        while pos < n and buf[pos] in b"\r\n":
            pos += 1
        if pos != self._pos:
            self._pos = pos
            self._scan = max(self._scan, pos)
            self._checked = False
            return self.next()
        if not self._checked:
            first = buf[pos]
            if not (0x41 <= first <= 0x5A or 0x61 <= first <= 0x7A):
                raise ParseError(
                    f"expected an RTSP message or '$' frame, got byte 0x{first:02x}",
                    offset=self._offset + pos,
                    status_hint=400,
                )
            nl = buf.find(b"\n", pos, pos + self._max)
            if nl >= 0:
                if _bad_first_line(_decode(buf[pos:nl]).rstrip("\r").strip()):
                    raise ParseError(
                        f"malformed RTSP start line {buf[pos : min(nl, pos + 60)]!r}",
                        offset=self._offset + pos,
                        status_hint=400,
                    )
                self._checked = True
        head = self._head
        if head is None:
            head = self._parse_head_block(buf, pos, n)
            if head is None:
                return None
        head_len, length, message = head
        end = pos + head_len + length
        if end > n:
            self._head = head  # only the body is awaited
            self._need = end - pos
            return None
        self._head = None
        self._pos = self._scan = end
        self._checked = False
        if length:
            return attrs.evolve(message, body=buf[pos + head_len : end])
        return message

    def _parse_head_block(self, buf: bytes, pos: int, n: int) -> tuple[int, int, RtspRequest | RtspResponse] | None:
        # The end of the header block: the first "\n\r\n" or "\n\n" after the start line.
        start = max(pos, self._scan - 2)
        limit = pos + self._max
        a = buf.find(b"\n\r\n", start, limit)
        b = buf.find(b"\n\n", start, limit)
        if a < 0 and b < 0:
            if n - pos >= self._max:
                raise ParseError(
                    f"RTSP header block exceeds {self._max} bytes", offset=self._offset + pos, status_hint=413
                )
            self._scan = n
            return None
        head_end = a + 3 if b < 0 or (0 <= a < b) else b + 2
        version, headers, middle, reason, method = _parse_head(_decode(buf[pos:head_end]), self._offset + pos)
        length = 0
        lengths = headers.get_all("Content-Length")
        if lengths:
            value = lengths[0].strip()
            if not _DIGITS_RE.match(value) or any(v.strip() != value for v in lengths[1:]):
                raise ParseError(f"bad Content-Length {value[:20]!r}", offset=self._offset + pos, status_hint=400)
            length = int(value)
        if head_end - pos + length > self._max:
            raise ParseError(
                f"RTSP message of {head_end - pos + length} bytes exceeds {self._max}",
                offset=self._offset + pos,
                status_hint=413,
            )
        message: RtspRequest | RtspResponse
        if method is None:
            message = RtspResponse(status_code=int(middle), reason=reason, headers=headers, version=version)
        else:
            message = RtspRequest(method=method, uri=middle, headers=headers, version=version)
        return head_end - pos, length, message

    def check_eof(self) -> None:
        """At the end of the stream: raise if a partial message or frame was left.

        Raises:
            RemoteProtocolError: the stream ended inside a message or frame.
        """
        if self._eof and self.pending:
            rest = b"".join([self._buf[self._pos :], *self._parts])
            if rest.strip(b"\r\n"):
                raise RemoteProtocolError(f"connection closed inside a message or frame ({len(rest)} bytes left)")


def parse_message(data: bytes) -> RtspRequest | RtspResponse:
    """Parse exactly one complete RTSP message (no interleaved frames, nothing after it).

    Raises:
        ParseError: malformed, incomplete, or followed by other bytes.
    """
    reader = MessageReader(max_message_size=max(DEFAULT_MAX_MESSAGE_SIZE, len(data) + 1))
    reader.feed(data)
    item = reader.next()
    if item is None:
        raise ParseError("incomplete RTSP message", offset=len(data), status_hint=400)
    if isinstance(item, InterleavedData):
        raise ParseError("an interleaved frame, not an RTSP message", offset=0, status_hint=400)
    if reader.pending and bytes(data[len(data) - reader.pending :]).strip(b"\r\n"):
        raise ParseError("bytes after the RTSP message", offset=len(data) - reader.pending, status_hint=400)
    return item
