"""SDP parse and serialize (RFC 8866) with the GB/T 28181-2016 Appendix F additions (`y=`, `f=`).

Strategy: split the text into lines (CRLF or bare LF), then one pass that dispatches on the type letter into
the current section: the session until the first `m=`, then each media description. Every value is kept as
text where the wire form matters (session ids, `y=` with its leading zeros, `f=` with its empty slots), so a
canonical SDP round-trips byte for byte. Serialization writes the RFC 8866 §5 order: v o s i u e p c b (t r)* z k
a*, then per media m i c* b* k a*, each section followed by its GB28181 `y=` then `f=` (where every GB28181
peer puts them); lines fluxkit does not know (or repeats of single lines) are kept verbatim in `other_lines` and
written last in their section, so re-parsing the output gives the same record.

Tolerance: LF-only input, a missing final CRLF, empty lines, unknown line types and lines after `m=` that belong
to the session are accepted (kept verbatim). What stays an error (ParseError): no `v=` first, a malformed `m=`,
`o=`, `c=`, `t=` or `b=` line, or a non-numeric port. Output always ends with CRLF: Hikvision answers 415 to an
SDP without the final CRLF (Monibuca plugin-gb28181#66).
"""

from __future__ import annotations

import re

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "DEFAULT_MAX_SDP_SIZE",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Fmtp",
    "MediaDescription",
    "MediaFormat",
    "Origin",
    "RtpMap",
    "SessionDescription",
    "Timing",
    "parse_sdp",
]

#: Largest SDP text accepted by `parse_sdp` (characters); real GB28181 and RTSP SDPs are under 2 KB.
DEFAULT_MAX_SDP_SIZE = 65536

_F_RE = re.compile(r"(?:v/([^a]*))?(?:a/(.*))?", re.DOTALL)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _line_ok(value: str, what: str) -> None:
    if "\n" in value or "\r" in value:
        raise LocalProtocolError(f"SDP {what} {value!r} contains a line break")


@attrs.frozen(kw_only=True, slots=True)
class Origin:
    """`o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>` (RFC 8866 §5.2).

    GB28181 puts the requester's 20-digit ID in `username`. The ids stay text (they may exceed 64 bits).
    """

    username: str
    session_id: str = "0"
    session_version: str = "0"
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def _fields(self) -> tuple[str, ...]:
        return (self.username, self.session_id, self.session_version, self.nettype, self.addrtype, self.address)

    def serialize(self) -> str:
        return " ".join(self._fields())


@attrs.frozen(kw_only=True, slots=True)
class Connection:
    """`c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7); `address` keeps any /ttl suffix."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def serialize(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@attrs.frozen(kw_only=True, slots=True)
class Bandwidth:
    """`b=<bwtype>:<bandwidth>` (RFC 8866 §5.8), e.g. AS:4000 (kbit/s)."""

    type: str
    value: int


@attrs.frozen(kw_only=True, slots=True)
class Timing:
    """`t=<start> <stop>` (RFC 8866 §5.9; NTP seconds, but GB28181 playback uses Unix seconds) and its `r=` lines."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@attrs.frozen(kw_only=True, slots=True)
class Attribute:
    """`a=<name>` (value None) or `a=<name>:<value>` (RFC 8866 §5.13); the value is kept verbatim."""

    name: str
    value: str | None = None

    def serialize(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@attrs.frozen(kw_only=True, slots=True)
class RtpMap:
    """`a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def serialize(self) -> str:
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


@attrs.frozen(kw_only=True, slots=True)
class Fmtp:
    """`a=fmtp:<pt> <parameters>` (RFC 8866 §6.15); `parameters` splits the usual `k=v;k=v` form."""

    payload_type: int
    params: str

    @property
    def parameters(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.params.split(";"):
            key, _, value = item.strip().partition("=")
            if key:
                out[key] = value
        return out


@attrs.frozen(kw_only=True, slots=True)
class MediaFormat:
    """GB28181 `f=` (Appendix F): `v/<codec>/<resolution>/<fps>/<rate type>/<kbps>a/<codec>/<kbps code>/<rate code>`.

    The slots stay text so empty ones survive a round trip (`f=v/////a/1/8/1` is audio-only G.711). `video` and
    `audio` are None when their part is absent (a bare `f=` has neither). Codes: video codec 1 MPEG-4, 2 H.264,
    3 SVAC, 4 3GP; resolution 1 QCIF, 2 CIF, 3 4CIF, 4 D1, 5 720P, 6 1080P/I; rate type 1 CBR, 2 VBR; audio codec
    1 G.711, 2 G.723.1, 3 G.729, 4 G.722.1; audio bitrate 1 5.3k .. 8 64k; sample rate 1 8 kHz, 2 14, 3 16, 4 32.
    """

    video: tuple[str, ...] | None = None
    audio: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str) -> MediaFormat:
        """Parse the value of an `f=` line; ParseError when it is not in the Appendix F shape."""
        match = _F_RE.fullmatch(text.strip())
        if match is None:
            raise ParseError(f"f={text!r} is not v/.../a/...")
        video, audio = match.groups()
        return cls(
            video=None if video is None else tuple(video.split("/")),
            audio=None if audio is None else tuple(audio.split("/")),
        )

    @classmethod
    def build(
        cls,
        *,
        video_codec: int | None = None,
        resolution: int | str | None = None,
        frame_rate: int | None = None,
        bitrate_type: int | None = None,
        video_kbps: int | None = None,
        audio_codec: int | None = None,
        audio_bitrate: int | None = None,
        sample_rate: int | None = None,
    ) -> MediaFormat:
        """Fill the slots from codes; None leaves a slot empty. Both parts are always present."""

        def slot(value: int | str | None) -> str:
            return "" if value is None else str(value)

        return cls(
            video=tuple(slot(v) for v in (video_codec, resolution, frame_rate, bitrate_type, video_kbps)),
            audio=tuple(slot(v) for v in (audio_codec, audio_bitrate, sample_rate)),
        )

    def serialize(self) -> str:
        video = "" if self.video is None else "v/" + "/".join(self.video)
        audio = "" if self.audio is None else "a/" + "/".join(self.audio)
        return video + audio

    def _slot(self, part: tuple[str, ...] | None, index: int) -> int | None:
        if part is None or index >= len(part) or not _digits(part[index]):
            return None
        return int(part[index])

    @property
    def video_codec(self) -> int | None:
        return self._slot(self.video, 0)

    @property
    def resolution(self) -> int | None:
        return self._slot(self.video, 1)

    @property
    def frame_rate(self) -> int | None:
        return self._slot(self.video, 2)

    @property
    def bitrate_type(self) -> int | None:
        return self._slot(self.video, 3)

    @property
    def video_kbps(self) -> int | None:
        return self._slot(self.video, 4)

    @property
    def audio_codec(self) -> int | None:
        return self._slot(self.audio, 0)

    @property
    def audio_bitrate(self) -> int | None:
        return self._slot(self.audio, 1)

    @property
    def sample_rate(self) -> int | None:
        return self._slot(self.audio, 2)


def _ssrc_int(y: str | None) -> int | None:
    if y is None or not _digits(y):
        return None
    value = int(y)
    return value if value < 1 << 32 else None


class _AttributesMixin:
    """Attribute look-ups shared by the session and media levels."""

    __slots__ = ()
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> str | None:
        """The value of the first `a=<name>` (case-sensitive per RFC 8866), "" for a flag, None if absent."""
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def attribute_values(self, name: str) -> list[str]:
        """The values of every `a=<name>`, in order ("" for flags)."""
        return ["" if a.value is None else a.value for a in self.attributes if a.name == name]

    def has_attribute(self, name: str) -> bool:
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> str | None:
        """sendrecv / sendonly / recvonly / inactive, whichever flag is present (RFC 8866 §6.7)."""
        for attr in self.attributes:
            if attr.value is None and attr.name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                return attr.name
        return None


@attrs.frozen(kw_only=True, slots=True)
class MediaDescription(_AttributesMixin):
    """One `m=` section (RFC 8866 §5.14) with its lines, plus the GB28181 `y=`/`f=` that follow it.

    Attributes:
        media: "video", "audio", "application", ...
        port: transport port; port_count: the `/<n>` suffix, None when absent.
        proto: `RTP/AVP`, `TCP/RTP/AVP` (RFC 4571), or `RTP/AVP/TCP` as some GB28181 devices send it.
        formats: the payload types/formats, as text.
        y: the raw `y=` value (SSRC, 10 digits) when it sits in this section; f: the parsed `f=`.
    """

    media: str
    port: int
    proto: str
    formats: tuple[str, ...] = ()
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[str, ...] = ()
    y: str | None = None
    f: MediaFormat | None = None

    @property
    def connection(self) -> Connection | None:
        """The first `c=` of this media, if any (the session's applies otherwise)."""
        return self.connections[0] if self.connections else None

    @property
    def is_tcp(self) -> bool:
        """True for `TCP/RTP/AVP`, `RTP/AVP/TCP` and any other TCP profile."""
        return "TCP" in self.proto.upper().split("/")

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """`a=rtpmap` entries by payload type; malformed ones are skipped."""
        out: dict[int, RtpMap] = {}
        for value in self.attribute_values("rtpmap"):
            pt_text, _, rest = value.partition(" ")
            parts = rest.strip().split("/")
            if not _digits(pt_text) or len(parts) < 2 or not _digits(parts[1]):
                continue
            channels = int(parts[2]) if len(parts) > 2 and _digits(parts[2]) else None
            pt = int(pt_text)
            out[pt] = RtpMap(payload_type=pt, encoding=parts[0], clock_rate=int(parts[1]), channels=channels)
        return out

    @property
    def fmtps(self) -> dict[int, Fmtp]:
        """`a=fmtp` entries by payload type."""
        out: dict[int, Fmtp] = {}
        for value in self.attribute_values("fmtp"):
            pt_text, _, params = value.partition(" ")
            if _digits(pt_text):
                out[int(pt_text)] = Fmtp(payload_type=int(pt_text), params=params.strip())
        return out

    @property
    def setup(self) -> str | None:
        """`a=setup` (RFC 4145: active / passive / actpass / holdconn): who opens the TCP media connection."""
        return self.attribute("setup")

    @property
    def connection_mode(self) -> str | None:
        """`a=connection` (RFC 4145: new / existing)."""
        return self.attribute("connection")

    @property
    def download_speed(self) -> int | None:
        """`a=downloadspeed` (GB28181 Download offer), as an int when numeric."""
        value = self.attribute("downloadspeed")
        return int(value) if value is not None and _digits(value) else None

    @property
    def file_size(self) -> int | None:
        """`a=filesize` (GB28181 Download answer, bytes), as an int when numeric."""
        value = self.attribute("filesize")
        return int(value) if value is not None and _digits(value) else None

    @property
    def ssrc(self) -> str | None:
        """The `y=` text of this section (10 digits, leading zeros kept)."""
        return self.y

    @property
    def ssrc_int(self) -> int | None:
        """The `y=` value as the RTP SSRC integer, None when absent, not decimal or over 32 bits."""
        return _ssrc_int(self.y)

    def _lines(self, out: list[str]) -> None:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out.append(f"m={' '.join((self.media, port, self.proto, *self.formats))}")
        if self.information is not None:
            out.append(f"i={self.information}")
        out.extend(f"c={c.serialize()}" for c in self.connections)
        out.extend(f"b={b.type}:{b.value}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a.serialize()}" for a in self.attributes)
        if self.y is not None:
            out.append(f"y={self.y}")
        if self.f is not None:
            out.append(f"f={self.f.serialize()}")
        out.extend(self.other_lines)


@attrs.frozen(kw_only=True, slots=True)
class SessionDescription(_AttributesMixin):
    """A whole SDP. Session-level fields follow RFC 8866 §5; `media` holds the `m=` sections in order.

    GB28181 (Appendix F): `session_name` is Play / Playback / Download / Talk, `uri` is `<channel id>:<type>` for
    Playback/Download, `times[0]` holds the Unix start/end of a playback, and `ssrc` is the `y=` value, wherever
    it sits (session level or inside the media section, the usual place).
    """

    version: int = 0
    origin: Origin | None = None
    session_name: str | None = None
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    times: tuple[Timing, ...] = ()
    zone: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    other_lines: tuple[str, ...] = ()
    y: str | None = None
    f: MediaFormat | None = None
    media: tuple[MediaDescription, ...] = ()

    @property
    def ssrc(self) -> str | None:
        """The GB28181 SSRC as the `y=` text (10 digits, leading zeros kept), from the session or first media."""
        if self.y is not None:
            return self.y
        for m in self.media:
            if m.y is not None:
                return m.y
        return None

    @property
    def ssrc_int(self) -> int | None:
        """`ssrc` as the RTP SSRC integer (y=0200007585 -> 0x0BEBDFA1); None when absent or not a 32-bit number."""
        return _ssrc_int(self.ssrc)

    @property
    def media_format(self) -> MediaFormat | None:
        """The GB28181 `f=`, from the session or the first media that has one."""
        if self.f is not None:
            return self.f
        for m in self.media:
            if m.f is not None:
                return m.f
        return None

    @property
    def timing(self) -> Timing | None:
        """The first `t=` (GB28181 playback: Unix start and end)."""
        return self.times[0] if self.times else None

    @property
    def channel_id(self) -> str | None:
        """The channel id of a GB28181 `u=<channel id>:<type>`."""
        return None if self.uri is None else self.uri.partition(":")[0]

    @property
    def uri_type(self) -> int | None:
        """The record type of `u=` (0 all, 1 manual, 2 alarm, 3 time), None when absent or not numeric."""
        if self.uri is None:
            return None
        value = self.uri.partition(":")[2]
        return int(value) if _digits(value) else None

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The `c=` that applies to `media`: its own, else the session's (RFC 8866 §5.7)."""
        return media.connection or self.connection

    def serialize(self) -> str:
        """The SDP text, CRLF line ends, always with a final CRLF. LocalProtocolError for a line break in a value."""
        out = [f"v={self.version}"]
        if self.origin is not None:
            out.append(f"o={self.origin.serialize()}")
        if self.session_name is not None:
            out.append(f"s={self.session_name}")
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out.extend(f"e={e}" for e in self.emails)
        out.extend(f"p={p}" for p in self.phones)
        if self.connection is not None:
            out.append(f"c={self.connection.serialize()}")
        out.extend(f"b={b.type}:{b.value}" for b in self.bandwidths)
        for t in self.times:
            out.append(f"t={t.start} {t.stop}")
            out.extend(f"r={r}" for r in t.repeats)
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={a.serialize()}" for a in self.attributes)
        if self.y is not None:
            out.append(f"y={self.y}")
        if self.f is not None:
            out.append(f"f={self.f.serialize()}")
        out.extend(self.other_lines)
        for m in self.media:
            m._lines(out)
        for line in out:
            _line_ok(line, "line")
        return "\r\n".join(out) + "\r\n"

    def encode(self) -> bytes:
        """`serialize()` as UTF-8 bytes, ready for a SIP body."""
        return self.serialize().encode("utf-8")


# -- parsing ----------------------------------------------------------------------------------------------------------


def _split(value: str, count: int, what: str, offset: int) -> list[str]:
    parts = value.split()
    if len(parts) != count:
        raise ParseError(f"SDP {what} line needs {count} fields, got {len(parts)}: {value!r}", offset=offset)
    return parts


def _parse_int(text: str, what: str, offset: int, limit: int | None = None) -> int:
    if not _digits(text) or len(text) > 20:
        raise ParseError(f"SDP {what} {text!r} is not a number", offset=offset)
    value = int(text)
    if limit is not None and value > limit:
        raise ParseError(f"SDP {what} {value} exceeds {limit}", offset=offset)
    return value


def _parse_bandwidth(value: str, offset: int) -> Bandwidth:
    kind, sep, amount = value.partition(":")
    if not sep or not kind:
        raise ParseError(f"SDP b={value!r} is not <type>:<value>", offset=offset)
    return Bandwidth(type=kind, value=_parse_int(amount.strip(), "bandwidth", offset))


def _parse_connection(value: str, offset: int) -> Connection:
    nettype, addrtype, address = _split(value, 3, "c=", offset)
    return Connection(nettype=nettype, addrtype=addrtype, address=address)


def _parse_attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name=name, value=rest if sep else None)


def _parse_media_line(value: str, offset: int) -> dict[str, object]:
    parts = value.split()
    if len(parts) < 3:
        raise ParseError(f"SDP m={value!r} needs <media> <port> <proto> <fmt>...", offset=offset)
    port_text, slash, count_text = parts[1].partition("/")
    return {
        "media": parts[0],
        "port": _parse_int(port_text, "m= port", offset, 65535),
        "port_count": _parse_int(count_text, "m= port count", offset, 65535) if slash else None,
        "proto": parts[2],
        "formats": tuple(parts[3:]),
    }


def _parse_f(value: str, raw: str, fields: dict[str, object], other: list[str]) -> None:
    try:
        fields["f"] = MediaFormat.parse(value)
    except ParseError:
        other.append(raw)  # a vendor's odd f= is kept verbatim rather than failing the whole SDP


def parse_sdp(text: str, *, max_size: int = DEFAULT_MAX_SDP_SIZE) -> SessionDescription:
    """Parse an SDP (RFC 8866) with the GB28181 `y=`/`f=` lines.

    Args:
        text: the SDP; CRLF or bare LF line ends, final line break optional.
        max_size: the largest text accepted (characters).

    Raises:
        ParseError: oversize, no `v=` first, or a malformed `v=`, `o=`, `c=`, `b=`, `t=` or `m=` line.
    """
    if not isinstance(text, str):
        raise ParseError("SDP must be given as text (decode the SIP body first)")
    if len(text) > max_size:
        raise ParseError(f"SDP of {len(text)} characters exceeds {max_size}")
    text = text.removeprefix("\ufeff")
    session: dict[str, object] = {}
    s_attrs: list[Attribute] = []
    s_other: list[str] = []
    emails: list[str] = []
    phones: list[str] = []
    s_bw: list[Bandwidth] = []
    times: list[Timing] = []
    stray_repeats: list[str] = []
    medias: list[MediaDescription] = []
    # The current media section, accumulated then frozen when the next m= (or the end) arrives.
    m_fields: dict[str, object] | None = None
    m_attrs: list[Attribute] = []
    m_other: list[str] = []
    m_conns: list[Connection] = []
    m_bw: list[Bandwidth] = []

    def close_media() -> None:
        if m_fields is not None:
            medias.append(
                MediaDescription(
                    **m_fields,  # type: ignore[arg-type]  # keys and types set by this parser
                    attributes=tuple(m_attrs),
                    other_lines=tuple(m_other),
                    connections=tuple(m_conns),
                    bandwidths=tuple(m_bw),
                )
            )

    offset = 0
    first = True
    for raw_line in text.split("\n"):
        line_offset = offset
        offset += len(raw_line) + 1
        line = raw_line[:-1] if raw_line.endswith("\r") else raw_line
        if not line.strip():
            continue
        kind, value = line[0], line[2:]
        if len(line) < 2 or line[1] != "=":
            kind = ""  # not a <type>=<value> line: kept verbatim below
        if first:
            if kind != "v":
                raise ParseError("SDP must start with v=", offset=line_offset)
            session["version"] = _parse_int(value.strip(), "v=", line_offset, 0xFFFF)
            first = False
            continue
        if kind == "m":
            close_media()
            m_fields = _parse_media_line(value, line_offset)
            m_attrs, m_other, m_conns, m_bw = [], [], [], []
            continue
        if m_fields is not None:
            if kind == "a":
                m_attrs.append(_parse_attribute(value))
            elif kind == "c":
                m_conns.append(_parse_connection(value, line_offset))
            elif kind == "b":
                m_bw.append(_parse_bandwidth(value, line_offset))
            elif kind == "i" and "information" not in m_fields:
                m_fields["information"] = value
            elif kind == "k" and "key" not in m_fields:
                m_fields["key"] = value
            elif kind == "y" and "y" not in m_fields:
                m_fields["y"] = value.strip()
            elif kind == "f" and "f" not in m_fields:
                _parse_f(value, line, m_fields, m_other)
            else:
                m_other.append(line)
            continue
        if kind == "a":
            s_attrs.append(_parse_attribute(value))
        elif kind == "t":
            start, stop = _split(value, 2, "t=", line_offset)
            times.append(
                Timing(
                    start=_parse_int(start, "t= start", line_offset),
                    stop=_parse_int(stop, "t= stop", line_offset),
                    repeats=tuple(stray_repeats) if not times else (),
                )
            )
            stray_repeats.clear()
        elif kind == "r":
            if times:
                last = times[-1]
                times[-1] = Timing(start=last.start, stop=last.stop, repeats=(*last.repeats, value))
            else:
                stray_repeats.append(value)  # an r= before any t= belongs to the first t= (RFC 8866 §5.10)
        elif kind == "o" and "origin" not in session:
            session["origin"] = Origin(**dict(zip(_ORIGIN_KEYS, _split(value, 6, "o=", line_offset), strict=True)))
        elif kind == "c" and "connection" not in session:
            session["connection"] = _parse_connection(value, line_offset)
        elif kind == "b":
            s_bw.append(_parse_bandwidth(value, line_offset))
        elif kind == "e":
            emails.append(value)
        elif kind == "p":
            phones.append(value)
        elif kind == "f" and "f" not in session:
            _parse_f(value, line, session, s_other)
        elif kind in _SESSION_SINGLE and _SESSION_SINGLE[kind] not in session:
            session[_SESSION_SINGLE[kind]] = value.strip() if kind == "y" else value
        else:
            s_other.append(line)
    if first:
        raise ParseError("empty SDP: no v= line", offset=0)
    close_media()
    s_other += [f"r={r}" for r in stray_repeats]  # no t= at all: kept verbatim
    return SessionDescription(
        **session,  # type: ignore[arg-type]  # keys and types set by this parser
        attributes=tuple(s_attrs),
        other_lines=tuple(s_other),
        emails=tuple(emails),
        phones=tuple(phones),
        bandwidths=tuple(s_bw),
        times=tuple(times),
        media=tuple(medias),
    )


_ORIGIN_KEYS = ("username", "session_id", "session_version", "nettype", "addrtype", "address")
_SESSION_SINGLE = {"s": "session_name", "i": "information", "u": "uri", "z": "zone", "k": "key", "y": "y"}
