"""SIP messages: parse and serialize requests and responses, and typed views of the common headers (RFC 3261 §7, §20).

Strategy: find the end of the header block with `bytes.find`, decode it once (UTF-8 with surrogateescape, so any
byte survives a round trip), unfold continuation lines only when one exists, `str.split` the lines and
`str.partition` each at its colon; names are canonicalised with one dict probe and indexed as they are read.
No per-byte Python loop. The body is the byte slice Content-Length names (RFC 3261 §18.3: on a datagram, extra
bytes are dropped and a short body is an error; without Content-Length the rest of the datagram is the body).
Header values are kept as text; `via`, `from_`, `to`, `cseq`... parse the one header they read, on demand.

Errors: malformed input raises `ParseError` with status_hint 400 (505 for another SIP version); a message over
`max_size` bytes, or with more than `max_headers` fields, raises `RemoteProtocolError` with status_hint 513.
"""

from __future__ import annotations

import re

import attrs

from fluxkit.errors import LocalProtocolError, ParseError, RemoteProtocolError

from ._headers import _CANONICAL_GET, _FAST_NAMES, Headers

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "CSeq",
    "NameAddress",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "Via",
    "make_response",
    "parse_message",
    "reason_phrase",
]

#: Largest message (start line, headers and body) accepted, in bytes.
DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024
#: Most header fields accepted in one message.
DEFAULT_MAX_HEADERS = 256

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")  # RFC 3261 §25.1 token
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_REASONS = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
}


def reason_phrase(status_code: int) -> str:
    """The RFC 3261 §21 reason phrase for a status code ("" if unknown)."""
    return _REASONS.get(status_code, "")


def _params(text: str) -> tuple[tuple[str, str | None], ...]:
    """`;name=value;flag` -> ((name, value), (flag, None)); names lower-cased (RFC 3261 §7.3.1: case-insensitive)."""
    out = []
    for item in text.split(";"):
        item = item.strip()
        if item:
            name, sep, value = item.partition("=")
            out.append((name.strip().lower(), value.strip() if sep else None))
    return tuple(out)


def _join_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _get_param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return None


@attrs.frozen(kw_only=True, slots=True)
class Via:
    """One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;branch=...;received=...;rport=...`."""

    transport: str = "UDP"
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, value: str) -> Via:
        """Parse one Via value (a single element: split a comma-joined header first)."""
        proto, _, rest = value.strip().partition(" ")
        parts = proto.split("/")
        if len(parts) != 3 or parts[0].strip().upper() != "SIP":
            # RFC 4475 tolerates LWS around the slashes: retry on the whitespace-free form.
            compact = re.sub(r"\s*/\s*", "/", value.strip())
            proto, _, rest = compact.partition(" ")
            parts = proto.split("/")
            if len(parts) != 3 or parts[0].upper() != "SIP":
                raise ParseError(f"malformed Via {value!r}", status_hint=400)
        sent_by, _, param_text = rest.strip().partition(";")
        host, port = _split_host_port(sent_by.strip())
        return cls(transport=parts[2].strip().upper(), host=host, port=port, params=_params(param_text))

    def serialize(self) -> str:
        """The Via value."""
        return f"SIP/2.0/{self.transport} {_join_host_port(self.host, self.port)}{_join_params(self.params)}"

    @property
    def branch(self) -> str | None:
        """The branch parameter (transaction ID; RFC 3261 ones start with z9hG4bK)."""
        return _get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The received parameter (the address the request actually came from)."""
        return _get_param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value (RFC 3581) if filled in; see `has_rport` for the bare flag."""
        value = _get_param(self.params, "rport")
        return int(value) if value and value.isdigit() else None

    @property
    def has_rport(self) -> bool:
        """Whether an rport parameter is present (with or without a value)."""
        return any(k == "rport" for k, _ in self.params)

    @property
    def sent_by(self) -> str:
        """`host[:port]` as a matching key (RFC 3261 §17.2.3)."""
        return _join_host_port(self.host.lower(), self.port)


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # IPv6 reference
        end = text.find("]")
        if end < 0:
            raise ParseError(f"malformed host {text!r}", status_hint=400)
        host, rest = text[: end + 1], text[end + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ParseError(f"malformed host {text!r}", status_hint=400)
        port_text = rest[1:]
    else:
        host, sep, port_text = text.partition(":")
        if not sep:
            port_text = ""
    if not host:
        raise ParseError(f"empty host in {text!r}", status_hint=400)
    if not port_text:
        return host, None
    port_text = port_text.strip()
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise ParseError(f"bad port in {text!r}", status_hint=400)
    return host, int(port_text)


def _join_host_port(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@attrs.frozen(kw_only=True, slots=True)
class NameAddress:
    """A From/To/Contact/Route value (RFC 3261 §20.10): optional display name, URI, header parameters.

    Without angle brackets, everything after the first ';' is a header parameter (RFC 3261 §20.10), so
    `sip:a@b;tag=1` has the URI `sip:a@b` and the tag `1`.
    """

    display_name: str | None = None
    uri: str
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, value: str) -> NameAddress:
        """Parse one name-addr or addr-spec value (a single element: split Contact lists first)."""
        text = value.strip()
        lt = text.find("<")
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise ParseError(f"unterminated <...> in {value!r}", status_hint=400)
            display = text[:lt].strip()
            if display.startswith('"'):
                if len(display) < 2 or not display.endswith('"'):
                    raise ParseError(f"malformed display name in {value!r}", status_hint=400)
                display = re.sub(r"\\(.)", r"\1", display[1:-1])
            uri = text[lt + 1 : gt].strip()
            rest = text[gt + 1 :]
            if rest.strip() and not rest.lstrip().startswith(";"):
                raise ParseError(f"junk after > in {value!r}", status_hint=400)
            return cls(display_name=display or None, uri=uri, params=_params(rest))
        if text == "*":
            return cls(uri="*")
        uri, _, rest = text.partition(";")
        uri = uri.strip()
        if not uri or " " in uri or ":" not in uri:
            raise ParseError(f"malformed address {value!r}", status_hint=400)
        return cls(uri=uri, params=_params(rest))

    def serialize(self) -> str:
        """The header value, always in name-addr form (`<...>`), which is never ambiguous."""
        if self.uri == "*":
            return "*"
        display = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{_join_params(self.params)}"

    @property
    def tag(self) -> str | None:
        """The tag parameter (From/To)."""
        return _get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        """A header parameter's value (None if absent or valueless)."""
        return _get_param(self.params, name.lower())

    def with_tag(self, tag: str) -> NameAddress:
        """A copy carrying `tag` (replacing any)."""
        return attrs.evolve(self, params=(*((k, v) for k, v in self.params if k != "tag"), ("tag", tag)))


@attrs.frozen(kw_only=True, slots=True)
class CSeq:
    """The CSeq value (RFC 3261 §20.16): sequence number (< 2**31) and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        """Parse `"<number> <METHOD>"`."""
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii() or len(parts[0]) > 10:
            raise ParseError(f"malformed CSeq {value!r}", status_hint=400)
        seq = int(parts[0])
        if seq >= 1 << 31:
            raise ParseError(f"CSeq number {seq} out of range", status_hint=400)
        return cls(seq=seq, method=parts[1])

    def serialize(self) -> str:
        """The header value."""
        return f"{self.seq} {self.method}"


class _Accessors:
    """Typed views shared by requests and responses (each parses its header on access)."""

    __slots__ = ()
    headers: Headers
    body: bytes

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name} header", status_hint=400)
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via, top first, comma-joined ones split."""
        return [Via.parse(v) for v in self.headers.get_list("Via")]

    @property
    def via(self) -> Via:
        """The top Via (ParseError if there is none)."""
        values = self.headers.get_list("Via")
        if not values:
            raise ParseError("missing Via header", status_hint=400)
        return Via.parse(values[0])

    @property
    def from_(self) -> NameAddress:
        """The From header."""
        return NameAddress.parse(self._required("From"))

    @property
    def to(self) -> NameAddress:
        """The To header."""
        return NameAddress.parse(self._required("To"))

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        """The CSeq header."""
        return CSeq.parse(self._required("CSeq"))

    @property
    def contacts(self) -> list[NameAddress]:
        """Every Contact, comma-joined ones split."""
        return [NameAddress.parse(v) for v in self.headers.get_list("Contact")]

    @property
    def contact(self) -> NameAddress | None:
        """The first Contact, or None."""
        values = self.headers.get_list("Contact")
        return NameAddress.parse(values[0]) if values else None

    @property
    def record_routes(self) -> list[str]:
        """Record-Route elements in order (each a name-addr)."""
        return self.headers.get_list("Record-Route")

    @property
    def routes(self) -> list[str]:
        """Route elements in order."""
        return self.headers.get_list("Route")

    def _int_header(self, name: str) -> int | None:
        value = self.headers.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value.isdigit() or not value.isascii() or len(value) > 10:
            raise ParseError(f"malformed {name} {value!r}", status_hint=400)
        return int(value)

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds, or None."""
        return self._int_header("Expires")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or None."""
        return self._int_header("Max-Forwards")

    @property
    def content_length(self) -> int | None:
        """The Content-Length header as sent, or None."""
        return self._int_header("Content-Length")

    @property
    def content_type(self) -> str | None:
        """The Content-Type header, or None."""
        return self.headers.get("Content-Type")


def _serialize(start: str, headers: Headers, body: bytes) -> bytes:
    # Content-Length is always written and always right (RFC 3261 §20.14, mandatory on TCP): in place of the
    # first one if the headers hold one (so a parsed message re-serializes in its own order), else last.
    lines = [start]
    length_written = False
    for name, value in headers.fields:
        if name == "Content-Length":
            if not length_written:
                lines.append(f"Content-Length: {len(body)}")
                length_written = True
        else:
            lines.append(f"{name}: {value}")
    if not length_written:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body


@attrs.frozen(kw_only=True, slots=True)
class SipRequest(_Accessors):
    """A SIP request. `uri` is the Request-URI as text; `body` bytes (its charset is the body layer's business)."""

    method: str
    uri: str
    headers: Headers = attrs.field(factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def serialize(self) -> bytes:
        """The wire form; Content-Length is (re)written from the body. LocalProtocolError on a bad method/URI."""
        if not _TOKEN_RE.match(self.method) or not self.uri or any(c in self.uri for c in " \r\n"):
            raise LocalProtocolError(f"invalid request line {self.method!r} {self.uri!r}")
        return _serialize(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@attrs.frozen(kw_only=True, slots=True)
class SipResponse(_Accessors):
    """A SIP response."""

    status_code: int
    reason: str = ""
    headers: Headers = attrs.field(factory=Headers)
    body: bytes = b""
    version: str = "SIP/2.0"

    def serialize(self) -> bytes:
        """The wire form; Content-Length is (re)written from the body. LocalProtocolError on a bad status."""
        if not 100 <= self.status_code <= 699 or "\r" in self.reason or "\n" in self.reason:
            raise LocalProtocolError(f"invalid status line {self.status_code} {self.reason!r}")
        return _serialize(f"{self.version} {self.status_code} {self.reason}", self.headers, self.body)


SipMessage = SipRequest | SipResponse


def _find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """(end of header block, start of body), or (-1, -1). Accepts bare-LF line ends as well as CRLF."""
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        lf = data.find(b"\n\n", start, end)
        if lf < 0:
            return end, end + 4
        return lf, lf + 2
    lf = data.find(b"\n\n", start)
    if lf >= 0:
        if data[lf - 1 : lf] == b"\r":  # "\r\n\n"
            return lf - 1, lf + 2
        return lf, lf + 2
    end = data.find(b"\n\r\n", start)  # "\n\r\n": LF line, CRLF blank line
    if end >= 0:
        return end, end + 3
    return -1, -1


# Greedy, then one step back over trailing blanks: a lazy `.*?` would retry the tail at every character.
_HEADER_LINE_RE = re.compile(r"([^:\n]*):[ \t]*((?:[^\n]*[^ \t\n])?)[ \t]*\n")


def _slow_name(name: str) -> str:
    """Canonical spelling of a header name not in `_FAST_NAMES`, validated (RFC 3261 §7.3.1, §25.1)."""
    stripped = name.rstrip(" \t")  # whitespace is allowed before the colon
    if not stripped or " " in stripped or "\t" in stripped:
        raise ParseError(f"malformed header name {name[:80]!r}", status_hint=400)
    return _CANONICAL_GET(stripped.lower(), stripped)


def _parse_head(head: bytes | bytearray, max_headers: int) -> tuple[str, str, str, Headers]:
    """Parse the start line and headers; returns (first, second, third) start-line parts and the headers.

    One regex `findall` splits every header line at its first colon in C; a line without a colon makes the
    match count fall short of the line count, which is how it is detected.
    """
    text = head.decode("utf-8", "surrogateescape")
    crlf = text.count("\r\n")
    if crlf:
        if text.count("\r") != crlf:
            raise ParseError("bare CR in the header block", status_hint=400)  # would break framing if re-sent
        text = text.replace("\r\n", "\n")
    elif "\r" in text:
        raise ParseError("bare CR in the header block", status_hint=400)
    if "\n " in text or "\n\t" in text:
        text = _FOLD_RE.sub(" ", text)  # RFC 3261 §7.3.1: folded LWS is one SP
    start, _, rest = text.partition("\n")
    first, sp1, tail = start.partition(" ")
    second, sp2, third = tail.partition(" ")
    if not sp2 and first.startswith("SIP/"):
        sp2 = " "  # a status line without a reason phrase: tolerated
    if not sp1 or not sp2 or not first or not second:
        raise ParseError(f"malformed start line {start[:80]!r}", offset=0, status_hint=400)
    if not rest:
        return first, second, third, Headers._trusted(())
    lines = rest.count("\n") + 1
    if lines > max_headers:
        raise RemoteProtocolError(f"more than {max_headers} header fields", status_hint=513)
    pairs = _HEADER_LINE_RE.findall(rest + "\n")
    if len(pairs) != lines:
        raise ParseError("header line without ':'", status_hint=400)
    fast = _FAST_NAMES.get
    fields = tuple([(fast(n) or _slow_name(n), v) for n, v in pairs])
    return first, second, third, Headers._trusted(fields)


def _build(first: str, second: str, third: str, headers: Headers, body: bytes) -> SipMessage:
    if first.startswith("SIP/"):
        if first.upper() != "SIP/2.0":
            raise ParseError(f"unsupported version {first!r}", offset=0, status_hint=505)
        if len(second) != 3 or not second.isdigit() or not second.isascii() or second[0] not in "123456":
            raise ParseError(f"bad status code {second!r}", offset=len(first) + 1, status_hint=400)
        return SipResponse(status_code=int(second), reason=third, headers=headers, body=body, version=first)
    if " " in third:
        raise ParseError("malformed request line", offset=0, status_hint=400)
    if third.upper() != "SIP/2.0":
        status = 505 if third.upper().startswith("SIP/") else 400
        raise ParseError(f"unsupported version {third!r}", offset=0, status_hint=status)
    if not _TOKEN_RE.match(first):
        raise ParseError(f"bad method {first!r}", offset=0, status_hint=400)
    return SipRequest(method=first, uri=second, headers=headers, body=body, version=third)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise ParseError(f"malformed Content-Length {value!r}", status_hint=400)
    return int(value)


def parse_message(
    data: bytes, *, max_size: int = DEFAULT_MAX_MESSAGE_SIZE, max_headers: int = DEFAULT_MAX_HEADERS
) -> SipMessage:
    """Parse one whole SIP message, as carried by one UDP datagram (RFC 3261 §7, §18.3).

    Leading CRLFs (keepalives, RFC 3261 §7.5) are skipped. Bytes beyond Content-Length are dropped; a body
    shorter than Content-Length is an error; without Content-Length the rest is the body.

    Raises:
        ParseError: malformed message (status_hint 400, or 505 for a version other than SIP/2.0).
        RemoteProtocolError: over `max_size` bytes or `max_headers` fields (status_hint 513).
    """
    if len(data) > max_size:
        raise RemoteProtocolError(f"SIP message of {len(data)} bytes exceeds {max_size}", status_hint=513)
    start = 0
    if data[:1] in (b"\r", b"\n"):
        start = len(data) - len(data.lstrip(b"\r\n"))
    head_end, body_start = _find_head_end(data, start)
    if head_end < 0:
        raise ParseError("no end of headers (blank line)", offset=len(data), status_hint=400)
    first, second, third, headers = _parse_head(data[start:head_end], max_headers)
    length = _content_length(headers)
    if length is None:
        body = data[body_start:]
    else:
        if body_start + length > len(data):
            raise ParseError(f"body shorter than Content-Length {length}", offset=len(data) - start, status_hint=400)
        body = data[body_start : body_start + length]
    return _build(first, second, third, headers, body)


def make_response(
    request: SipRequest,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """A response to `request` (RFC 3261 §8.2.6.2): Via, From, To (plus `to_tag` if it has none), Call-ID and
    CSeq copied; Record-Route copied into a 1xx-2xx (§12.1.1); Timestamp echoed in a 100 (§8.2.6.1); then
    `headers`, Content-Type if given. `reason` defaults to the RFC 3261 phrase.
    """
    src = request.headers
    fields: list[tuple[str, str]] = [("Via", v) for v in src.get_all("Via")]
    fields.append(("From", src.get("From") or ""))
    to = src.get("To") or ""
    if to_tag is not None and status_code != 100 and NameAddress.parse(to).tag is None:
        to = f"{to};tag={to_tag}"
    fields.append(("To", to))
    fields.append(("Call-ID", src.get("Call-ID") or ""))
    fields.append(("CSeq", src.get("CSeq") or ""))
    if 100 < status_code < 300:
        fields.extend(("Record-Route", r) for r in src.get_all("Record-Route"))
    timestamp = src.get("Timestamp")
    if status_code == 100 and timestamp is not None:
        fields.append(("Timestamp", timestamp))
    fields.extend(headers)
    if content_type is not None:
        fields.append(("Content-Type", content_type))
    return SipResponse(
        status_code=status_code,
        reason=reason_phrase(status_code) if reason is None else reason,
        headers=Headers(fields),
        body=body,
    )
