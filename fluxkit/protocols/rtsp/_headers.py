"""Structured RTSP header values: Transport, Session, RTP-Info, Range, Public.

Strategy: each parser splits the value on its separators with `str` methods (no per-character loop), is tolerant
where cameras are known to deviate (parameters in any order and any case, unknown parameters kept, quoted `mode`
values, single ports instead of ranges, `rtptime` or `seq` that are empty, negative or out of range are read as
"absent"), and raises `ParseError` (status_hint 400) only where no sensible reading exists (a port that is not a
number). Each record serializes in one canonical order, so `parse(serialize(x)) == x`.
"""

from __future__ import annotations

import re

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "RtpInfo",
    "RtspRange",
    "SessionHeader",
    "Transport",
    "parse_public",
    "parse_range",
    "parse_rtp_info",
    "parse_session",
    "parse_transport",
    "serialize_rtp_info",
]

_PARAM_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_SAFE_VALUE_RE = re.compile(r'[^;,\s"]+\Z')
_UINT_RE = re.compile(r"[0-9]{1,10}\Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]{1,8}\Z")
_PROTOCOL_RE = re.compile(r"[A-Za-z][A-Za-z0-9.+-]*/[A-Za-z0-9.+-]+(?:/[A-Za-z0-9.+-]+)?\Z")
_NPT_RE = re.compile(r"(?:(\d+):(\d{1,2}):(\d{1,2}(?:\.\d*)?)|(\d+(?:\.\d*)?))\Z")


def _bad(msg: str) -> ParseError:
    return ParseError(msg, status_hint=400)


def _pair(value: str, what: str, limit: int) -> tuple[int, int]:
    """`a-b` or a single `a` (meaning `a` and `a+1`, RFC 2326 §12.39) as two ints 0..limit."""
    first, sep, second = value.partition("-")
    first = first.strip()
    second = second.strip() if sep else ""
    if not _UINT_RE.match(first) or (second and not _UINT_RE.match(second)):
        raise _bad(f"bad {what} {value[:30]!r}")
    a = int(first)
    b = int(second) if second else a + 1
    if a > limit or b > limit:
        raise _bad(f"{what} {value[:30]!r} out of range")
    return a, b


def _check_pair(pair: tuple[int, int] | None, what: str, limit: int) -> None:
    if pair is not None and not (0 <= pair[0] <= limit and 0 <= pair[1] <= limit):
        raise LocalProtocolError(f"{what} {pair} out of 0..{limit}")


@attrs.frozen(kw_only=True, slots=True)
class Transport:
    """One transport specification of a `Transport` header (RFC 2326 §12.39, RFC 7826 §18.54).

    Attributes:
        protocol: `RTP/AVP` (UDP), `RTP/AVP/TCP`, `RTP/AVP/UDP` or another transport/profile/lower spec as sent.
        unicast: True for `unicast`, False for `multicast`, None when neither was given.
        destination: the `destination` address, if any.
        source: the `source` address, if any.
        interleaved: the interleaved channel pair (RTP, RTCP) over TCP.
        client_port: the client's RTP/RTCP UDP ports.
        server_port: the server's RTP/RTCP UDP ports.
        ssrc: the SSRC the sender will use, if announced (hex on the wire).
        mode: the `mode` value without quotes (`PLAY`, `RECORD`), if any.
        ttl: the multicast TTL, if any.
        extra: other parameters, in order: (name, value or None for a bare flag).
    """

    protocol: str = "RTP/AVP"
    unicast: bool | None = True
    destination: str | None = None
    source: str | None = None
    interleaved: tuple[int, int] | None = None
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str | None = None
    ttl: int | None = None
    extra: tuple[tuple[str, str | None], ...] = ()

    @property
    def is_tcp(self) -> bool:
        """The lower transport is TCP (`RTP/AVP/TCP`)."""
        return self.protocol.upper().endswith("/TCP")

    def serialize(self) -> str:
        """The specification, parameters in canonical order.

        Raises:
            LocalProtocolError: a channel outside 0..255, a port outside 0..65535, an SSRC outside 32 bits, or a
                value that would break the header syntax.
        """
        if not _PROTOCOL_RE.match(self.protocol):
            raise LocalProtocolError(f"bad transport protocol {self.protocol!r}")
        _check_pair(self.interleaved, "interleaved channels", 255)
        _check_pair(self.client_port, "client_port", 65535)
        _check_pair(self.server_port, "server_port", 65535)
        parts = [self.protocol]
        if self.unicast is not None:
            parts.append("unicast" if self.unicast else "multicast")
        for name, value in (("destination", self.destination), ("source", self.source)):
            if value is not None:
                if not _SAFE_VALUE_RE.match(value):
                    raise LocalProtocolError(f"bad transport {name} {value!r}")
                parts.append(f"{name}={value}")
        for name, pair in (
            ("interleaved", self.interleaved),
            ("client_port", self.client_port),
            ("server_port", self.server_port),
        ):
            if pair is not None:
                parts.append(f"{name}={pair[0]}-{pair[1]}")
        if self.ssrc is not None:
            if not 0 <= self.ssrc <= 0xFFFFFFFF:
                raise LocalProtocolError(f"ssrc {self.ssrc} out of 32 bits")
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            if not _PARAM_TOKEN_RE.match(self.mode):
                raise LocalProtocolError(f"bad transport mode {self.mode!r}")
            parts.append(f"mode={self.mode}")
        if self.ttl is not None:
            if not 0 <= self.ttl <= 255:
                raise LocalProtocolError(f"ttl {self.ttl} out of 0..255")
            parts.append(f"ttl={self.ttl}")
        for name, value in self.extra:
            if (
                not _PARAM_TOKEN_RE.match(name)
                or name.lower() in _KNOWN
                or (value is not None and not _SAFE_VALUE_RE.match(value))
            ):
                raise LocalProtocolError(f"bad transport parameter {name}={value!r}")
            parts.append(name if value is None else f"{name}={value}")
        return ";".join(parts)


_KNOWN = frozenset(
    {
        "unicast",
        "multicast",
        "destination",
        "source",
        "interleaved",
        "client_port",
        "server_port",
        "ssrc",
        "mode",
        "ttl",
    }
)


def _parse_one_transport(spec: str) -> Transport:
    params = [p.strip() for p in spec.split(";")]
    # The transport/profile/lower spec comes first (RFC 2326 §12.39), but it is recognised wherever it sits.
    index = next((i for i, p in enumerate(params) if _PROTOCOL_RE.match(p)), None)
    if index is None:
        raise _bad(f"no transport protocol in {spec[:40]!r}")
    protocol = params.pop(index)
    fields: dict[str, object] = {"unicast": None}
    extra: list[tuple[str, str | None]] = []
    for param in params:
        if not param:
            continue  # a trailing ';' (seen on Dahua devices)
        name, sep, value = param.partition("=")
        name = name.strip()
        lname = name.lower()
        value = value.strip()
        if lname == "unicast":
            fields["unicast"] = True
        elif lname == "multicast":
            fields["unicast"] = False
        elif not sep:
            if not _PARAM_TOKEN_RE.match(name):
                raise _bad(f"bad transport parameter {param[:30]!r}")
            extra.append((name, None))
        elif lname in ("interleaved", "client_port", "server_port"):
            fields[lname] = _pair(value, lname, 255 if lname == "interleaved" else 65535)
        elif lname == "ssrc":
            # Hex per RFC 2326 §12.39; a few devices send fewer than 8 digits. Anything else is dropped.
            v = value.strip('"')
            if _HEX_RE.match(v):
                fields["ssrc"] = int(v, 16)
        elif lname == "mode":
            v = value.strip('"').strip()
            if _PARAM_TOKEN_RE.match(v):
                fields["mode"] = v
        elif lname == "ttl":
            if _UINT_RE.match(value) and int(value) <= 255:
                fields["ttl"] = int(value)
        elif lname in ("destination", "source"):
            if value and _SAFE_VALUE_RE.match(value):
                fields[lname] = value
        elif _PARAM_TOKEN_RE.match(name) and _SAFE_VALUE_RE.match(value):
            extra.append((name, value))
        else:
            raise _bad(f"bad transport parameter {param[:30]!r}")
    return Transport(protocol=protocol, extra=tuple(extra), **fields)  # type: ignore[arg-type]


def parse_transport(value: str) -> list[Transport]:
    """Parse a `Transport` header value: one or more comma-separated specifications, in preference order.

    Raises:
        ParseError: an empty value, an empty specification, or a port/channel that is not a number.
    """
    specs = [s.strip() for s in value.split(",")]
    out = [_parse_one_transport(s) for s in specs if s]
    if not out:
        raise _bad("empty Transport header")
    return out


@attrs.frozen(kw_only=True, slots=True)
class SessionHeader:
    """A `Session` header value (RFC 2326 §12.37): the session id and the optional timeout in seconds."""

    session_id: str
    timeout: int | None = None

    def serialize(self) -> str:
        """`id` or `id;timeout=N`.

        Raises:
            LocalProtocolError: an empty id, or one holding `;`, `,` or white space.
        """
        if not self.session_id or not _SAFE_VALUE_RE.match(self.session_id):
            raise LocalProtocolError(f"bad session id {self.session_id!r}")
        if self.timeout is None:
            return self.session_id
        if self.timeout < 0:
            raise LocalProtocolError(f"negative session timeout {self.timeout}")
        return f"{self.session_id};timeout={self.timeout}"


def parse_session(value: str) -> SessionHeader:
    """Parse a `Session` header value; a missing or unreadable timeout is None (the caller applies 60 s).

    Raises:
        ParseError: the session id is empty.
    """
    parts = value.split(";")
    session_id = parts[0].strip()
    if not session_id or not _SAFE_VALUE_RE.match(session_id):
        raise _bad(f"bad Session header {value[:40]!r}")
    timeout = None
    for part in parts[1:]:
        name, _, v = part.partition("=")
        if name.strip().lower() == "timeout":
            v = v.strip().strip('"')
            if _UINT_RE.match(v):
                timeout = int(v)
    return SessionHeader(session_id=session_id, timeout=timeout)


@attrs.frozen(kw_only=True, slots=True)
class RtpInfo:
    """One stream of an `RTP-Info` header (RFC 2326 §12.33): its URL and the first packet's seq and rtptime.

    `seq` and `rtptime` are None when absent or unusable (cameras send empty, negative or 64-bit values).
    """

    url: str
    seq: int | None = None
    rtptime: int | None = None

    def serialize(self) -> str:
        """`url=...;seq=...;rtptime=...`.

        Raises:
            LocalProtocolError: an URL holding `,` `;` or white space, seq over 16 bits or rtptime over 32 bits.
        """
        if not self.url or not _SAFE_VALUE_RE.match(self.url):
            raise LocalProtocolError(f"bad RTP-Info url {self.url!r}")
        parts = [f"url={self.url}"]
        if self.seq is not None:
            if not 0 <= self.seq <= 0xFFFF:
                raise LocalProtocolError(f"RTP-Info seq {self.seq} out of 16 bits")
            parts.append(f"seq={self.seq}")
        if self.rtptime is not None:
            if not 0 <= self.rtptime <= 0xFFFFFFFF:
                raise LocalProtocolError(f"RTP-Info rtptime {self.rtptime} out of 32 bits")
            parts.append(f"rtptime={self.rtptime}")
        return ";".join(parts)


_RTP_INFO_SPLIT_RE = re.compile(r",\s*(?=url=)", re.IGNORECASE)


def parse_rtp_info(value: str) -> list[RtpInfo]:
    """Parse an `RTP-Info` value: comma-separated streams (split only before `url=`, as URLs may hold commas).

    Streams without a URL are skipped (seen on devices answering PLAY with `RTP-Info: seq=...`). Never raises.
    """
    out = []
    for item in _RTP_INFO_SPLIT_RE.split(value):
        url = None
        seq = rtptime = None
        for param in item.split(";"):
            name, _, v = param.partition("=")
            lname = name.strip().lower()
            v = v.strip()
            if lname == "url":
                url = v
            elif lname == "seq" and _UINT_RE.match(v) and int(v) <= 0xFFFF:
                seq = int(v)
            elif lname == "rtptime" and _UINT_RE.match(v) and int(v) <= 0xFFFFFFFF:
                rtptime = int(v)
        if url and _SAFE_VALUE_RE.match(url):
            out.append(RtpInfo(url=url, seq=seq, rtptime=rtptime))
    return out


def serialize_rtp_info(infos: list[RtpInfo] | tuple[RtpInfo, ...]) -> str:
    """The `RTP-Info` value for several streams."""
    return ",".join(info.serialize() for info in infos)


def _npt_seconds(value: str) -> float | None:
    m = _NPT_RE.match(value)
    if m is None:
        return None
    if m.group(4) is not None:
        return float(m.group(4))
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


@attrs.frozen(kw_only=True, slots=True)
class RtspRange:
    """A `Range` header value (RFC 2326 §12.29): the unit (`npt`, `clock`, `smpte`...) and the raw start/end.

    `start` and `end` are the text as sent ("" when open), so every unit round-trips; `start_seconds` and
    `end_seconds` read npt times (RFC 2326 §3.6). Build an npt range with `RtspRange.npt(10.0)`.
    """

    unit: str = "npt"
    start: str = ""
    end: str = ""

    @classmethod
    def npt(cls, start: float | None, end: float | None = None) -> RtspRange:
        """An npt range in seconds; `start=None` means `now`."""
        return cls(
            unit="npt",
            start="now" if start is None else f"{start:.3f}",
            end="" if end is None else f"{end:.3f}",
        )

    @property
    def start_seconds(self) -> float | None:
        """The npt start in seconds (None for `now`, an open start or another unit)."""
        return _npt_seconds(self.start) if self.unit == "npt" else None

    @property
    def end_seconds(self) -> float | None:
        """The npt end in seconds (None when open or another unit)."""
        return _npt_seconds(self.end) if self.unit == "npt" else None

    def serialize(self) -> str:
        """`unit=start-end`.

        Raises:
            LocalProtocolError: a unit that is not a token, or times holding `;`, `,` or white space.
        """
        if not _PARAM_TOKEN_RE.match(self.unit):
            raise LocalProtocolError(f"bad range unit {self.unit!r}")
        for part in (self.start, self.end):
            if part and not _SAFE_VALUE_RE.match(part):
                raise LocalProtocolError(f"bad range time {part!r}")
        if "-" in self.end or "-" in self.start:
            raise LocalProtocolError("range times cannot hold '-'")
        return f"{self.unit}={self.start}-{self.end}"


def parse_range(value: str) -> RtspRange:
    """Parse a `Range` value (the part before any `;time=`).

    Raises:
        ParseError: no `unit=` or no `-` between start and end.
    """
    spec = value.split(";", 1)[0].strip()
    unit, sep, times = spec.partition("=")
    unit = unit.strip()
    if not sep or not _PARAM_TOKEN_RE.match(unit):
        raise _bad(f"bad Range {value[:40]!r}")
    start, dash, end = times.strip().partition("-")
    if not dash:
        raise _bad(f"Range {value[:40]!r} has no '-'")
    start, end = start.strip(), end.strip()
    if (start and not _SAFE_VALUE_RE.match(start)) or (end and not _SAFE_VALUE_RE.match(end)):
        raise _bad(f"bad Range {value[:40]!r}")
    return RtspRange(unit=unit.lower(), start=start, end=end)


def parse_public(value: str) -> tuple[str, ...]:
    """The methods of a `Public` (or `Allow`) header, upper case, in order. Never raises."""
    return tuple(m.strip().upper() for m in value.split(",") if m.strip())
