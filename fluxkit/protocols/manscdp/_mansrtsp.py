"""MANSRTSP: the RTSP-like body of the INFO that controls GB28181 playback (GB/T 28181-2016 Appendix B).

Strategy: the body is a handful of short lines, so it is decoded as text, split into a start line and
`Name: value` headers (names case-insensitive, LF or CRLF, blank lines ignored), and mapped onto two records:
`MansrtspRequest` (PLAY with Scale or Range, PAUSE, TEARDOWN) and `MansrtspResponse` (the device's
`RTSP/1.0 200 OK` with CSeq and RTP-Info). Headers fluxkit does not model are kept in order in `headers`.

Rules (Appendix B): Scale is one of 0.25, 0.5, 1, 2, 4 in practice, negative for reverse, and is sent without
Range; a seek is `Range: npt=<seconds>-` (from the start of the recording, never negative) without Scale; resume is
`Range: npt=now-`; pause carries `PauseTime: now`. A Scale whose magnitude is outside 0.25..4 is refused: a
LocalProtocolError when building, a ParseError when parsing.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "DEFAULT_MAX_MANSRTSP_SIZE",
    "MansrtspRequest",
    "MansrtspResponse",
    "parse_mansrtsp",
]

#: Largest MANSRTSP body accepted; real ones are under 100 bytes.
DEFAULT_MAX_MANSRTSP_SIZE = 4096

Method = Literal["PLAY", "PAUSE", "TEARDOWN"]
_METHODS: dict[str, Method] = {"PLAY": "PLAY", "PAUSE": "PAUSE", "TEARDOWN": "TEARDOWN"}
_MIN_SCALE = 0.25
_MAX_SCALE = 4.0
_KNOWN_REQUEST = frozenset({"cseq", "scale", "range", "pausetime"})
_KNOWN_RESPONSE = frozenset({"cseq", "rtp-info"})


def _scale_ok(scale: float) -> bool:
    return math.isfinite(scale) and _MIN_SCALE <= abs(scale) <= _MAX_SCALE


def _fmt_seconds(value: float) -> str:
    # Whole seconds as "100" (what devices expect in npt=100-); fractions keep Python's shortest repr.
    return str(int(value)) if value.is_integer() else repr(value)


def _fmt_headers(headers: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers)


@attrs.frozen(kw_only=True, slots=True)
class MansrtspRequest:
    """A playback-control request.

    Attributes:
        method: PLAY, PAUSE or TEARDOWN.
        cseq: the body's own sequence number (not the SIP CSeq).
        scale: playback speed for PLAY (0.25..4 in magnitude, negative = reverse), or None.
        npt_start: for PLAY with Range: seconds from the start of the recording, or "now" (resume); None = no Range.
        npt_end: the end of the npt range in seconds, or None (open-ended, the usual case).
        pause_time: the PauseTime header of PAUSE ("now"), or None.
        headers: other headers, in order, kept verbatim.
        version: the protocol token of the start line ("RTSP/1.0").
    """

    method: Method
    cseq: int
    scale: float | None = None
    npt_start: float | Literal["now"] | None = None
    npt_end: float | None = None
    pause_time: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    version: str = "RTSP/1.0"

    @classmethod
    def play(cls, cseq: int, *, scale: float | None = None, seek: float | None = None) -> MansrtspRequest:
        """PLAY: resume (no argument), change speed (`scale`) or seek (`seek` seconds). Validated by serialize()."""
        if scale is not None and seek is not None:
            raise LocalProtocolError("MANSRTSP PLAY carries Scale or Range, not both (Appendix B)")
        if scale is not None:
            return cls(method="PLAY", cseq=cseq, scale=scale)
        return cls(method="PLAY", cseq=cseq, npt_start="now" if seek is None else seek)

    @classmethod
    def pause(cls, cseq: int) -> MansrtspRequest:
        """PAUSE with `PauseTime: now`."""
        return cls(method="PAUSE", cseq=cseq, pause_time="now")

    @classmethod
    def teardown(cls, cseq: int) -> MansrtspRequest:
        """TEARDOWN: stop playback."""
        return cls(method="TEARDOWN", cseq=cseq)

    def serialize(self) -> bytes:
        """The body bytes (ASCII, CRLF line ends). Raises LocalProtocolError for an invalid request."""
        if self.method not in _METHODS:
            raise LocalProtocolError(f"MANSRTSP method {self.method!r} is not PLAY, PAUSE or TEARDOWN")
        if not 0 <= self.cseq < 1 << 32:
            raise LocalProtocolError(f"MANSRTSP CSeq {self.cseq} is out of range")
        lines = [f"{self.method} {self.version}\r\n", f"CSeq: {self.cseq}\r\n"]
        if self.scale is not None:
            if not _scale_ok(self.scale):
                raise LocalProtocolError(f"MANSRTSP Scale {self.scale} is outside 0.25..4 (negative = reverse)")
            lines.append(f"Scale: {float(self.scale)!r}\r\n")
        if self.npt_start is not None:
            if self.npt_start == "now":
                start = "now"
            else:
                if not (math.isfinite(self.npt_start) and self.npt_start >= 0):
                    raise LocalProtocolError(f"MANSRTSP npt start {self.npt_start} must be >= 0 seconds")
                start = _fmt_seconds(float(self.npt_start))
            end = ""
            if self.npt_end is not None:
                if not (math.isfinite(self.npt_end) and self.npt_end >= 0):
                    raise LocalProtocolError(f"MANSRTSP npt end {self.npt_end} must be >= 0 seconds")
                end = _fmt_seconds(float(self.npt_end))
            lines.append(f"Range: npt={start}-{end}\r\n")
        elif self.npt_end is not None:
            raise LocalProtocolError("MANSRTSP npt_end needs npt_start")
        if self.pause_time is not None:
            lines.append(f"PauseTime: {self.pause_time}\r\n")
        text = "".join(lines) + _fmt_headers(self.headers)
        try:
            return text.encode("ascii")
        except UnicodeEncodeError:
            raise LocalProtocolError("MANSRTSP bodies are ASCII") from None


@attrs.frozen(kw_only=True, slots=True)
class MansrtspResponse:
    """The device's answer, carried in the body of the SIP 200 to the INFO (`RTSP/1.0 200 OK`)."""

    status_code: int
    reason: str
    cseq: int | None = None
    rtp_info: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    version: str = "RTSP/1.0"

    def serialize(self) -> bytes:
        """The body bytes (ASCII, CRLF line ends)."""
        if not 100 <= self.status_code <= 999:
            raise LocalProtocolError(f"MANSRTSP status {self.status_code} is not three digits")
        text = f"{self.version} {self.status_code} {self.reason}\r\n"
        if self.cseq is not None:
            text += f"CSeq: {self.cseq}\r\n"
        if self.rtp_info is not None:
            text += f"RTP-Info: {self.rtp_info}\r\n"
        text += _fmt_headers(self.headers)
        try:
            return text.encode("ascii")
        except UnicodeEncodeError:
            raise LocalProtocolError("MANSRTSP bodies are ASCII") from None


def _parse_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParseError(f"MANSRTSP {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParseError(f"MANSRTSP {what} {text!r} is not finite")
    return value


def _parse_int(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ParseError(f"MANSRTSP {what} {text!r} is not a number")
    return int(text)


def _parse_range(value: str) -> tuple[float | Literal["now"], float | None]:
    if not value.lower().startswith("npt="):
        raise ParseError(f"MANSRTSP Range {value!r} is not npt=")
    start_text, sep, end_text = value[4:].partition("-")
    if not sep:
        raise ParseError(f"MANSRTSP Range {value!r} has no '-'")
    start_text, end_text = start_text.strip(), end_text.strip()
    start: float | Literal["now"]
    if start_text.lower() == "now":
        start = "now"
    else:
        start = _parse_float(start_text, "npt start")
        if start < 0:
            raise ParseError(f"MANSRTSP npt start {start_text} is negative")
    end = None
    if end_text:
        end = _parse_float(end_text, "npt end")
        if end < 0:
            raise ParseError(f"MANSRTSP npt end {end_text} is negative")
    return start, end


def parse_mansrtsp(
    data: bytes | str, *, max_size: int = DEFAULT_MAX_MANSRTSP_SIZE
) -> MansrtspRequest | MansrtspResponse:
    """Parse a MANSRTSP body: a request (PLAY/PAUSE/TEARDOWN) or a response (`RTSP/1.0 200 OK`).

    Raises:
        ParseError: oversize, not ASCII, unknown method, malformed header, or a Scale outside 0.25..4.
    """
    if len(data) > max_size:
        raise ParseError(f"MANSRTSP body of {len(data)} bytes exceeds {max_size}")
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ParseError("MANSRTSP body is not ASCII", offset=exc.start) from None
    else:
        if not data.isascii():
            raise ParseError("MANSRTSP body is not ASCII")
        text = data
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise ParseError("empty MANSRTSP body")
    start = lines[0].split()
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ParseError(f"MANSRTSP header line {line!r} has no name")
        headers.append((name.strip(), value.strip()))
    if len(start) >= 2 and start[0].upper().endswith("RTSP/1.0"):
        return _response(start, lines[0], headers)
    if len(start) not in (2, 3) or start[0].upper() not in _METHODS or not start[-1].upper().endswith("RTSP/1.0"):
        raise ParseError(f"MANSRTSP start line {lines[0]!r} is not PLAY/PAUSE/TEARDOWN ... RTSP/1.0")
    return _request(start, headers)


def _request(start: list[str], headers: list[tuple[str, str]]) -> MansrtspRequest:
    method = _METHODS[start[0].upper()]
    cseq: int | None = None
    scale = npt_end = None
    npt_start: float | Literal["now"] | None = None
    pause_time = None
    extra: list[tuple[str, str]] = []
    for name, value in headers:
        key = name.lower()
        if key not in _KNOWN_REQUEST:
            extra.append((name, value))
        elif key == "cseq":
            cseq = _parse_int(value, "CSeq")
        elif key == "scale":
            scale = _parse_float(value, "Scale")
            if not _scale_ok(scale):
                raise ParseError(f"MANSRTSP Scale {value} is outside 0.25..4 (negative = reverse)")
        elif key == "range":
            npt_start, npt_end = _parse_range(value)
        else:
            pause_time = value
    if cseq is None:
        raise ParseError("MANSRTSP request has no CSeq")
    return MansrtspRequest(
        method=method,
        cseq=cseq,
        scale=scale,
        npt_start=npt_start,
        npt_end=npt_end,
        pause_time=pause_time,
        headers=tuple(extra),
        version=start[-1],
    )


def _response(start: list[str], line: str, headers: list[tuple[str, str]]) -> MansrtspResponse:
    code = start[1]
    if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
        raise ParseError(f"MANSRTSP status line {line!r} has no status code")
    reason = line.split(None, 2)[2] if len(start) > 2 else ""
    cseq = rtp_info = None
    extra: list[tuple[str, str]] = []
    for name, value in headers:
        key = name.lower()
        if key == "cseq":
            cseq = _parse_int(value, "CSeq")
        elif key == "rtp-info":
            rtp_info = value
        else:
            extra.append((name, value))
    return MansrtspResponse(
        status_code=int(code), reason=reason, cseq=cseq, rtp_info=rtp_info, headers=tuple(extra), version=start[0]
    )
