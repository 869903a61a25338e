"""SIP over a byte stream (TCP, TLS): Content-Length framing (RFC 3261 §18.3) and keepalives (RFC 5626 §3.5.1).

Strategy: bytes accumulate in one `bytearray`; `next_event` looks for the end of the header block with
`bytearray.find` starting where the previous search stopped (so byte-by-byte feeding stays linear), parses the
head once it is whole, then waits for Content-Length body bytes. CRLFs between messages (the RFC 5626
double-CRLF ping) are skipped; a ping's answer is the caller's business (`keepalives` counts them). Content-Length
is mandatory on a stream (RFC 3261 §18.3): a message without one is a ParseError. After any error the parser is
broken for good (the stream cannot be resynchronised): every later call raises the same error.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from fluxkit.errors import ParseError, RemoteProtocolError

from ._headers import Headers
from ._message import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_MESSAGE_SIZE,
    SipMessage,
    _build,
    _content_length,
    _find_head_end,
    _parse_head,
)

__all__ = ["NEED_DATA", "ConnectionClosed", "NeedData", "SipStreamParser"]


class NeedData(enum.Enum):
    """Type of the `NEED_DATA` sentinel: more bytes are needed before the next event."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by `next_event` when the buffered bytes hold no complete message yet.
NEED_DATA: Final = NeedData.NEED_DATA


@attrs.frozen(kw_only=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream cleanly (EOF between messages)."""


class SipStreamParser:
    """Splits a SIP byte stream into messages.

    Args:
        max_message_size: bound on one message (headers and body), and so on the buffer; beyond it
            RemoteProtocolError (status_hint 513).
        max_headers: bound on header fields per message.

    `receive_data(b"")` signals EOF; `next_event()` then returns `ConnectionClosed()` (or raises if a message
    was cut short).
    """

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, max_headers: int = DEFAULT_MAX_HEADERS
    ) -> None:
        self.max_message_size = max_message_size
        self.max_headers = max_headers
        self.keepalives = 0
        self._buf = bytearray()
        self._scan_from = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._pending: tuple[str, str, str, Headers, int, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a message."""
        return len(self._buf)

    def receive_data(self, data: bytes) -> None:
        """Append received bytes; `b""` means the peer closed its side."""
        if self._error is not None:
            raise self._error
        if not data:
            self._eof = True
        elif self._eof:
            raise RemoteProtocolError("data after EOF")
        else:
            self._buf += data

    def _fail(self, error: RemoteProtocolError) -> RemoteProtocolError:
        self._error = error
        return error

    def next_event(self) -> SipMessage | NeedData | ConnectionClosed:
        """The next complete message, `NEED_DATA`, or `ConnectionClosed()` after a clean EOF."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._pending is None and buf and buf[0] in (13, 10):
            stripped = len(buf) - len(buf.lstrip(b"\r\n"))
            self.keepalives += 1
            del buf[:stripped]
            self._scan_from = 0
        if not buf:
            return ConnectionClosed() if self._eof else NEED_DATA
        if self._pending is not None:
            return self._finish(*self._pending)
        head_end, body_start = _find_head_end(buf, max(0, self._scan_from - 3))
        if head_end < 0:
            if len(buf) > self.max_message_size:
                raise self._fail(RemoteProtocolError("SIP header block too large", status_hint=513))
            if self._eof:
                raise self._fail(ParseError("stream closed inside a SIP message", offset=len(buf), status_hint=400))
            self._scan_from = len(buf)
            return NEED_DATA
        try:
            first, second, third, headers = _parse_head(bytes(buf[:head_end]), self.max_headers)
            length = _content_length(headers)
            if length is None:
                raise ParseError("Content-Length is mandatory on a stream (RFC 3261 §18.3)", status_hint=400)
            if body_start + length > self.max_message_size:
                raise RemoteProtocolError(f"SIP message of {body_start + length} bytes is too large", status_hint=513)
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        return self._finish(first, second, third, headers, body_start, length)

    def _finish(
        self, first: str, second: str, third: str, headers: Headers, body_start: int, length: int
    ) -> SipMessage | NeedData:
        buf = self._buf
        try:
            if len(buf) < body_start + length:
                if self._eof:
                    raise ParseError("stream closed inside a SIP body", offset=len(buf), status_hint=400)
                self._pending = (first, second, third, headers, body_start, length)  # wait for the body
                return NEED_DATA
            message = _build(first, second, third, headers, bytes(buf[body_start : body_start + length]))
        except RemoteProtocolError as exc:
            raise self._fail(exc) from None
        del buf[: body_start + length]
        self._scan_from = 0
        self._pending = None
        return message
