"""MPEG-2 program stream units: pack header, system header, program stream map, PES (ISO/IEC 13818-1 §2.5).

Strategy: each unit is a frozen record with a `parse_*` function (bytes at an offset in, record and size out) and
a `serialize()` method. The parsers are strict about framing (start codes, lengths that fit the data) and lenient
about content the way real cameras need: the PSM's CRC is not checked and descriptor lengths that overrun are
clamped (GB28181 field notes: Dahua bad CRC, Tiandy inconsistent `elementary_stream_info_length`). The demuxer's
hot path shares `pes_header` with `parse_pes`, so a PES header is decoded by one function everywhere.

Timestamps here are the raw 33-bit values; unwrapping is the demuxer's job.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "CODEC_TO_STREAM_TYPE",
    "STREAM_TYPE_TO_CODEC",
    "PackHeader",
    "PesPacket",
    "ProgramStreamMap",
    "PsmEntry",
    "SystemHeader",
    "SystemHeaderStream",
    "crc32_mpeg2",
    "parse_pack_header",
    "parse_pes",
    "parse_psm",
    "parse_system_header",
    "pes_header",
]

PACK_START = b"\x00\x00\x01\xba"
START_CODE = b"\x00\x00\x01"
SID_PACK = 0xBA
SID_SYSTEM = 0xBB
SID_PSM = 0xBC
SID_PRIVATE_1 = 0xBD
SID_PADDING = 0xBE
SID_PRIVATE_2 = 0xBF
SID_END = 0xB9
SID_DIRECTORY = 0xFF

TS_MASK = (1 << 33) - 1

#: PSM stream_type -> FFmpeg codec name. ISO 13818-1 Table 2-34 plus the GB28181 private values (GB28181-2016
#: Annex C.2, 2022 additions 0x24 / 0x0F); the table matches ireader libmpeg's mpeg-types.h. 0x03/0x04 (MPEG
#: audio) are refined to "mp3" by the demuxer when the frame header says Layer III.
STREAM_TYPE_TO_CODEC: dict[int, str] = {
    0x03: "mp2",
    0x04: "mp2",
    0x0F: "aac",
    0x10: "mpeg4",
    0x1B: "h264",
    0x24: "hevc",
    0x80: "svac",
    0x90: "pcm_alaw",
    0x91: "pcm_mulaw",
    0x93: "g723_1",
    0x99: "g729",
    0x9C: "opus",
}

#: Codec name -> the stream_type `PsMuxer` writes in its PSM.
CODEC_TO_STREAM_TYPE: dict[str, int] = {
    "h264": 0x1B,
    "hevc": 0x24,
    "mpeg4": 0x10,
    "svac": 0x80,
    "aac": 0x0F,
    "pcm_alaw": 0x90,
    "pcm_mulaw": 0x91,
    "mp2": 0x04,
    "g723_1": 0x93,
    "g729": 0x99,
    "opus": 0x9C,
}


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC-32/MPEG-2 (ISO 13818-1 Annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, no reflection, no final
    xor). A CRC over a section including its own CRC field is 0. Only used for the small PSM, so a table loop."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    return crc


def encode_timestamp(prefix: int, ts: int) -> bytes:
    """Five bytes `prefix(4) ts[32..30] 1 ts[29..15] 1 ts[14..0] 1` (13818-1 §2.4.3.7 PTS/DTS layout)."""
    v = (
        (prefix << 36)
        | (((ts >> 30) & 7) << 33)
        | (1 << 32)
        | (((ts >> 15) & 0x7FFF) << 17)
        | (1 << 16)
        | ((ts & 0x7FFF) << 1)
        | 1
    )
    return v.to_bytes(5, "big")


def decode_timestamp(data: bytes, offset: int) -> int:
    """The 33-bit value in the five bytes at `offset` (marker bits ignored: cameras get them wrong)."""
    v = int.from_bytes(data[offset : offset + 5], "big")
    return (((v >> 33) & 7) << 30) | (((v >> 17) & 0x7FFF) << 15) | ((v >> 1) & 0x7FFF)


def _check_start(data: bytes, offset: int, sid: int, what: str) -> None:
    if data[offset : offset + 3] != START_CODE or len(data) < offset + 4 or data[offset + 3] != sid:
        raise ParseError(f"not a {what} (expected 00 00 01 {sid:02X})", offset=offset)


# --------------------------------------------------------------------------------------------------- pack header


@attrs.frozen(kw_only=True, slots=True)
class PackHeader:
    """A pack header (13818-1 §2.5.3.3; MPEG-1 11172-1 §2.4.3.2 when `mpeg1`).

    Attributes:
        scr_base: system clock reference base, 90 kHz, 33 bits.
        scr_ext: the 27 MHz extension, 0..299 (MPEG-2 only).
        mux_rate: in units of 50 bytes/s, 22 bits.
        stuffing_length: 0..7 stuffing bytes after the header (MPEG-2 only).
        mpeg1: the 12-byte MPEG-1 layout (ffmpeg's `-f mpeg` writes it).
    """

    scr_base: int
    scr_ext: int = 0
    mux_rate: int = 0
    stuffing_length: int = 0
    mpeg1: bool = False

    def serialize(self) -> bytes:
        """The header bytes, stuffing included.

        Raises:
            LocalProtocolError: a field does not fit its bits.
        """
        if not 0 <= self.scr_base <= TS_MASK or not 0 <= self.scr_ext < 512 or not 0 <= self.mux_rate < 1 << 22:
            raise LocalProtocolError("pack header field out of range")
        b = self.scr_base
        if self.mpeg1:
            if self.scr_ext or self.stuffing_length:
                raise LocalProtocolError("an MPEG-1 pack header has no SCR extension or stuffing")
            return PACK_START + encode_timestamp(0x2, b) + ((1 << 23) | (self.mux_rate << 1) | 1).to_bytes(3, "big")
        if not 0 <= self.stuffing_length <= 7:
            raise LocalProtocolError("pack_stuffing_length is 0..7")
        v = (
            (1 << 46)
            | (((b >> 30) & 7) << 43)
            | (1 << 42)
            | (((b >> 15) & 0x7FFF) << 27)
            | (1 << 26)
            | ((b & 0x7FFF) << 11)
            | (1 << 10)
            | (self.scr_ext << 1)
            | 1
        )
        return (
            PACK_START
            + v.to_bytes(6, "big")
            + ((self.mux_rate << 2) | 3).to_bytes(3, "big")
            + bytes((0xF8 | self.stuffing_length,))
            + b"\xff" * self.stuffing_length
        )


def pack_header_size(data: bytes, offset: int) -> int:
    """Size of the pack header at `offset` (start code already checked), or -1 when the 5th byte is neither the
    MPEG-2 '01' nor the MPEG-1 '0010' marker; 0 when more bytes are needed to know."""
    n = len(data)
    if n < offset + 5:
        return 0
    b4 = data[offset + 4]
    if b4 & 0xC0 == 0x40:
        if n < offset + 14:
            return 0
        return 14 + (data[offset + 13] & 7)
    if b4 & 0xF0 == 0x20:
        return 12
    return -1


def parse_pack_header(data: bytes, offset: int = 0) -> tuple[PackHeader, int]:
    """Parse the pack header at `offset`.

    Returns:
        The header and its size in bytes (stuffing included).

    Raises:
        ParseError: not a pack header, or truncated.
    """
    _check_start(data, offset, SID_PACK, "pack header")
    size = pack_header_size(data, offset)
    if size <= 0 or len(data) < offset + size:
        raise ParseError("truncated or unknown pack header", offset=offset)
    if size == 12:
        base = decode_timestamp(data, offset + 4)
        rate = (int.from_bytes(data[offset + 9 : offset + 12], "big") >> 1) & 0x3FFFFF
        return PackHeader(scr_base=base, mux_rate=rate, mpeg1=True), 12
    v = int.from_bytes(data[offset + 4 : offset + 10], "big")
    base = (((v >> 43) & 7) << 30) | (((v >> 27) & 0x7FFF) << 15) | ((v >> 11) & 0x7FFF)
    rate = int.from_bytes(data[offset + 10 : offset + 13], "big") >> 2
    return PackHeader(scr_base=base, scr_ext=(v >> 1) & 0x1FF, mux_rate=rate, stuffing_length=size - 14), size


# ------------------------------------------------------------------------------------------------- system header


@attrs.frozen(kw_only=True, slots=True)
class SystemHeaderStream:
    """One stream entry of a system header: its id and P-STD buffer bound (scale 1: x1024 bytes, 0: x128)."""

    stream_id: int
    buffer_bound_scale: int
    buffer_size_bound: int


@attrs.frozen(kw_only=True, slots=True)
class SystemHeader:
    """A system header (13818-1 §2.5.3.5). The demuxer skips it by length; the muxer writes one per keyframe."""

    rate_bound: int
    audio_bound: int
    video_bound: int
    fixed: bool = False
    csps: bool = False
    audio_lock: bool = True
    video_lock: bool = True
    streams: tuple[SystemHeaderStream, ...] = ()

    def serialize(self) -> bytes:
        """The header bytes.

        Raises:
            LocalProtocolError: a field does not fit its bits.
        """
        if (
            not 0 <= self.rate_bound < 1 << 22
            or not 0 <= self.audio_bound <= 32
            or not 0 <= self.video_bound <= 16
            or len(self.streams) > 0xFFFF // 3 - 2
        ):
            raise LocalProtocolError("system header field out of range")
        body = bytearray()
        body += ((1 << 23) | (self.rate_bound << 1) | 1).to_bytes(3, "big")
        body.append((self.audio_bound << 2) | (self.fixed << 1) | self.csps)
        body.append((self.audio_lock << 7) | (self.video_lock << 6) | 0x20 | self.video_bound)
        body.append(0x7F)  # packet_rate_restriction_flag 0, reserved bits 1
        for s in self.streams:
            if not 0xB8 <= s.stream_id <= 0xFF or s.buffer_bound_scale not in (0, 1) or s.buffer_size_bound >> 13:
                raise LocalProtocolError("system header stream entry out of range")
            body.append(s.stream_id)
            body += (0xC000 | (s.buffer_bound_scale << 13) | s.buffer_size_bound).to_bytes(2, "big")
        return b"\x00\x00\x01\xbb" + len(body).to_bytes(2, "big") + bytes(body)


def parse_system_header(data: bytes, offset: int = 0) -> tuple[SystemHeader, int]:
    """Parse the system header at `offset`; returns it and its size.

    Raises:
        ParseError: not a system header, truncated, or shorter than its fixed part.
    """
    _check_start(data, offset, SID_SYSTEM, "system header")
    if len(data) < offset + 6:
        raise ParseError("truncated system header", offset=offset)
    length = int.from_bytes(data[offset + 4 : offset + 6], "big")
    end = offset + 6 + length
    if length < 6 or len(data) < end:
        raise ParseError("truncated system header", offset=offset)
    p = offset + 6
    rate = (int.from_bytes(data[p : p + 3], "big") >> 1) & 0x3FFFFF
    b3, b4 = data[p + 3], data[p + 4]
    streams = []
    p += 6
    # Entries are 3 bytes, each starting with a stream_id byte whose top bit is 1 (§2.5.3.5).
    while p + 3 <= end and data[p] & 0x80:
        v = int.from_bytes(data[p + 1 : p + 3], "big")
        streams.append(
            SystemHeaderStream(stream_id=data[p], buffer_bound_scale=(v >> 13) & 1, buffer_size_bound=v & 0x1FFF)
        )
        p += 3
    header = SystemHeader(
        rate_bound=rate,
        audio_bound=b3 >> 2,
        fixed=bool(b3 & 2),
        csps=bool(b3 & 1),
        audio_lock=bool(b4 & 0x80),
        video_lock=bool(b4 & 0x40),
        video_bound=b4 & 0x1F,
        streams=tuple(streams),
    )
    return header, end - offset


# ------------------------------------------------------------------------------------------- program stream map


@attrs.frozen(kw_only=True, slots=True)
class PsmEntry:
    """One elementary stream of a PSM: stream_type, elementary_stream_id and its raw descriptors."""

    stream_type: int
    stream_id: int
    descriptors: bytes = b""


@attrs.frozen(kw_only=True, slots=True)
class ProgramStreamMap:
    """A program stream map (13818-1 §2.5.4).

    Attributes:
        entries: the elementary streams, in order.
        version: program_stream_map_version, 0..31.
        current_next: current_next_indicator.
        program_info: the raw program descriptors (Hikvision puts its "HK" descriptors here or per stream).
        crc_ok: on a parsed PSM, whether the CRC matched (informational: it is never enforced). Ignored by
            `serialize`, which always writes a correct CRC.
    """

    entries: tuple[PsmEntry, ...]
    version: int = 0
    current_next: bool = True
    program_info: bytes = b""
    crc_ok: bool = attrs.field(default=True, eq=False)

    def serialize(self) -> bytes:
        """The PSM bytes with a correct CRC-32/MPEG-2.

        Raises:
            LocalProtocolError: a field does not fit, or the map exceeds the 1018 bytes allowed (§2.5.4.2).
        """
        if not 0 <= self.version < 32:
            raise LocalProtocolError("program_stream_map_version is 0..31")
        es = bytearray()
        for e in self.entries:
            if not 0 <= e.stream_type < 256 or not 0 <= e.stream_id < 256 or len(e.descriptors) > 0xFFFF:
                raise LocalProtocolError("PSM entry out of range")
            es += bytes((e.stream_type, e.stream_id)) + len(e.descriptors).to_bytes(2, "big") + e.descriptors
        body = (
            bytes((0x80 * self.current_next | 0x60 | self.version, 0xFF))
            + len(self.program_info).to_bytes(2, "big")
            + self.program_info
            + len(es).to_bytes(2, "big")
            + bytes(es)
        )
        length = len(body) + 4
        if length > 1018:
            raise LocalProtocolError("a program stream map is at most 1018 bytes after its length field")
        head = b"\x00\x00\x01\xbc" + length.to_bytes(2, "big") + body
        return head + crc32_mpeg2(head).to_bytes(4, "big")


def parse_psm(data: bytes, offset: int = 0) -> tuple[ProgramStreamMap, int]:
    """Parse the PSM at `offset`, leniently (see module docstring); returns it and its size.

    Every length inside the map is clamped to the map's own end, so a bad `program_stream_info_length`,
    `elementary_stream_map_length` or `elementary_stream_info_length` loses at most the entries it hides; an
    entry whose info length overruns is kept with its descriptors cut short.

    Raises:
        ParseError: not a PSM, truncated, or too short to hold its fixed fields.
    """
    _check_start(data, offset, SID_PSM, "program stream map")
    if len(data) < offset + 6:
        raise ParseError("truncated program stream map", offset=offset)
    length = int.from_bytes(data[offset + 4 : offset + 6], "big")
    total = 6 + length
    end = offset + total
    if length < 10 or len(data) < end:
        raise ParseError("truncated program stream map", offset=offset)
    body_end = end - 4  # the CRC_32 field
    b6 = data[offset + 6]
    info_len = int.from_bytes(data[offset + 8 : offset + 10], "big")
    p = min(offset + 10 + info_len, body_end)
    program_info = data[offset + 10 : p]
    entries = []
    if p + 2 <= body_end:
        es_len = int.from_bytes(data[p : p + 2], "big")
        p += 2
        es_end = min(p + es_len, body_end)
        while p + 4 <= es_end:
            ilen = int.from_bytes(data[p + 2 : p + 4], "big")
            d_end = min(p + 4 + ilen, es_end)
            entries.append(PsmEntry(stream_type=data[p], stream_id=data[p + 1], descriptors=data[p + 4 : d_end]))
            p = d_end
    crc_ok = crc32_mpeg2(data[offset:end]) == 0
    psm = ProgramStreamMap(
        entries=tuple(entries),
        version=b6 & 0x1F,
        current_next=bool(b6 & 0x80),
        program_info=bytes(program_info),
        crc_ok=crc_ok,
    )
    return psm, total


# ------------------------------------------------------------------------------------------------------------ PES


@attrs.frozen(kw_only=True, slots=True)
class PesPacket:
    """A PES packet (13818-1 §2.4.3.6, or the MPEG-1 layout of 11172-1 §2.4.3.3 when `mpeg1`).

    Attributes:
        stream_id: 0xC0..0xDF audio, 0xE0..0xEF video, ...
        payload: the PES payload.
        pts: raw 33-bit PTS or None.
        dts: raw 33-bit DTS or None (only with a PTS).
        data_alignment: the MPEG-2 data_alignment_indicator.
        mpeg1: MPEG-1 header layout.
    """

    stream_id: int
    payload: bytes
    pts: int | None = None
    dts: int | None = None
    data_alignment: bool = False
    mpeg1: bool = False

    def serialize(self) -> bytes:
        """The PES bytes.

        Raises:
            LocalProtocolError: a timestamp out of range, a DTS without PTS, or more than 65,535 bytes after the
                length field.
        """
        pts, dts = self.pts, self.dts
        for ts in (pts, dts):
            if ts is not None and not 0 <= ts <= TS_MASK:
                raise LocalProtocolError("PES timestamps are 33-bit")
        if dts is not None and pts is None:
            raise LocalProtocolError("a PES DTS needs a PTS")
        if not 0xBC <= self.stream_id <= 0xFF:
            raise LocalProtocolError("PES stream_id must be 0xBC..0xFF")
        if self.mpeg1:
            if pts is None:
                head = b"\x0f"
            elif dts is None:
                head = encode_timestamp(0x2, pts)
            else:
                head = encode_timestamp(0x3, pts) + encode_timestamp(0x1, dts)
        elif pts is None:
            head = bytes((0x84 if self.data_alignment else 0x80, 0, 0))
        elif dts is None:
            head = bytes((0x84 if self.data_alignment else 0x80, 0x80, 5)) + encode_timestamp(0x2, pts)
        else:
            head = (
                bytes((0x84 if self.data_alignment else 0x80, 0xC0, 10))
                + encode_timestamp(0x3, pts)
                + encode_timestamp(0x1, dts)
            )
        length = len(head) + len(self.payload)
        if length > 0xFFFF:
            raise LocalProtocolError("PES packet longer than 65,535 bytes after its length field")
        return b"\x00\x00\x01" + bytes((self.stream_id,)) + length.to_bytes(2, "big") + head + self.payload


def pes_header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Decode the header of the PES at `pos` (start code and length already read) whose packet ends at `end`.

    Handles the MPEG-2 layout (flags, PES_header_data_length, header stuffing: §2.4.3.6) and the MPEG-1 layout
    (up to 16 0xFF stuffing bytes, optional STD buffer fields, then PTS / PTS+DTS / 0x0F: 11172-1 §2.4.3.3).

    Returns:
        (pts, dts, payload_start): raw timestamps, -1 where absent (dts equals pts when only a PTS is present,
        §2.4.3.7), and the offset of the payload.

    Raises:
        ParseError: the header does not fit inside the packet or has an unknown layout.
    """
    p = pos + 6
    if p >= end:
        return -1, -1, end  # zero-length PES
    b = data[p]
    pts = dts = -1
    if b & 0xC0 == 0x80:
        if p + 3 > end:
            raise ParseError("PES header truncated", offset=pos)
        flags = data[p + 1]
        start = p + 3 + data[p + 2]
        if start > end:
            raise ParseError("PES_header_data_length runs past the packet", offset=pos)
        if flags & 0x80:
            if p + 8 > start:
                raise ParseError("PES PTS does not fit its header", offset=pos)
            pts = dts = decode_timestamp(data, p + 3)
            if flags & 0x40:
                if p + 13 > start:
                    raise ParseError("PES DTS does not fit its header", offset=pos)
                dts = decode_timestamp(data, p + 8)
        return pts, dts, start
    # MPEG-1: stuffing, counted with one lstrip on a 17-byte slice rather than a Python loop.
    head = data[p : min(p + 17, end)]
    p += len(head) - len(head.lstrip(b"\xff"))
    if p < end and data[p] & 0xC0 == 0x40:
        p += 2  # STD_buffer_scale / STD_buffer_size
    if p >= end:
        raise ParseError("MPEG-1 PES header truncated", offset=pos)
    b = data[p]
    top = b & 0xF0
    if top == 0x20:
        if p + 5 > end:
            raise ParseError("MPEG-1 PES PTS truncated", offset=pos)
        pts = dts = decode_timestamp(data, p)
        return pts, dts, p + 5
    if top == 0x30:
        if p + 10 > end:
            raise ParseError("MPEG-1 PES PTS/DTS truncated", offset=pos)
        return decode_timestamp(data, p), decode_timestamp(data, p + 5), p + 10
    if b == 0x0F:
        return -1, -1, p + 1
    raise ParseError("unknown PES header layout", offset=pos)


def parse_pes(data: bytes, offset: int = 0) -> tuple[PesPacket, int]:
    """Parse one PES packet with a non-zero PES_packet_length at `offset`; returns it and its size.

    Raises:
        ParseError: not a PES start code, truncated, or a bad header.
    """
    if data[offset : offset + 3] != START_CODE or len(data) < offset + 6 or data[offset + 3] < SID_PSM:
        raise ParseError("not a PES packet", offset=offset)
    length = int.from_bytes(data[offset + 4 : offset + 6], "big")
    end = offset + 6 + length
    if len(data) < end:
        raise ParseError("truncated PES packet", offset=offset)
    pts, dts, start = pes_header(data, offset, end)
    mpeg1 = start > offset + 6 and data[offset + 6] & 0xC0 != 0x80
    packet = PesPacket(
        stream_id=data[offset + 3],
        payload=bytes(data[start:end]),
        pts=None if pts < 0 else pts,
        dts=None if pts < 0 or dts == pts else dts,
        data_alignment=not mpeg1 and start > offset + 6 and bool(data[offset + 6] & 0x04),
        mpeg1=mpeg1,
    )
    return packet, end - offset
