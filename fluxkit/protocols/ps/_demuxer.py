"""Streaming MPEG-PS demuxer: bytes in, `MediaFrame`s out, shaped by GB28181 cameras and ffmpeg/GStreamer files.

Strategy. `feed` walks the units (pack header, system header, PSM, PES, ...) that are complete in its buffer,
reading each header with a few index reads and `int.from_bytes`, and jumps over payloads by their length: the
only pass over payload bytes is `find_au_start` (a C-speed `bytes.find` for start codes) on video. A unit cut by
the end of the data waits, with its bytes, for the next `feed`; when fewer bytes arrive than the unit still needs,
they are only queued (so byte-by-byte feeding stays linear).

Framing and damage. Units must follow each other back to back. Anything else (garbage, a lost RTP packet) sends
the demuxer into resync mode: it skips to the next pack start code `00 00 01 BA` (counting `resyncs` and
`skipped_bytes`) and marks every video track discontinuous, so a frame that lost its middle is dropped rather than
emitted corrupt. A unit is also checked against its successor: when the bytes right after a unit's declared end
are not a start code (a loss shortened the data, so the length field now points into a later pack), the unit is
dropped as damaged and parsing resumes at the first pack header inside it, or at its end. A unit that ends exactly
where the data ends is accepted unchecked, so live input is never held back waiting for the next packet. Trailing
garbage after the very last unit therefore costs that unit. Nothing in a stream raises: damage is dropped and
counted in `statistics()`.

Access units. Video payloads are cut into access units with `fluxkit.protocols.nalu.find_au_start`: a new AU
starts at the first AU-starting NAL unit after the current AU's first VCL NAL unit, wherever that falls (ffmpeg
packs 2048-byte PES that carry the tail of one frame and the head of the next; GB28181 devices put one frame in
one or more PES). Per 13818-1 §2.4.3.7 a PES's PTS/DTS belong to the first AU that starts in that PES; other AUs
get None. A start code split across two PES payloads is found by re-scanning a few tail bytes of the previous
payload with the head of the next. An AU is emitted when the next one starts, or by `flush()`. MPEG-4 and SVAC
video (no AU splitter here) are framed by PTS: each PES with a PTS starts a frame.

Aligned fast path. Scanning every payload byte for start codes costs about as much as all of libavformat's work,
so a track that has shown 16 payloads with a PTS, each opening an AU at its first byte with no other AU start
inside (GB28181's one-frame-per-pack shape, GStreamer's mpegpsmux), is treated as aligned: a new PTS opens a new
AU, a repeated or missing PTS continues it, and only the NAL headers up to the AU's first VCL NAL unit are read
(for `keyframe`). Every 16th payload still gets the full scan; one misplaced AU start (ffmpeg-style packing)
ends the fast path for that track for good. A stream that breaks alignment only rarely after proving it may have
two AUs merged until the next sampled scan; that is the price of the fast path, and no such muxer is known.

Codecs come from the PSM (0xBC) when there is one; without a PSM (ffmpeg puts H.264 in 0xE2 and writes no PSM)
video is sniffed as H.264 or H.265 from its NAL headers, and audio from its first bytes: ADTS sync -> "aac", MPEG
audio sync -> "mp2"/"mp3", anything else is assumed G.711 A-law (counted in `guessed_audio`). Audio is one frame per
PES. Private streams (0xBD, Hikvision), padding (0xBE), 0xBF, the directory (0xFF) and other ids are skipped.

Timestamps are unwrapped: the 33-bit PTS/DTS become unbounded ints continuing from the first one seen (a step is
taken to be the nearest one modulo 2**33, so B-frame and audio/video back-steps stay negative steps), as PyAV
reports them.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from fluxkit.errors import ParseError
from fluxkit.protocols._media import MediaFrame, new_media_frame
from fluxkit.protocols.nalu import find_au_start, h264_nal_type, h265_nal_type, is_keyframe_nal_type

from ._codec import STREAM_TYPE_TO_CODEC, TS_MASK, ProgramStreamMap, parse_psm, pes_header

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "PsDemuxer", "PsStatistics"]

#: Largest video access unit assembled; a bigger one is dropped and counted (`oversized_frames`).
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
#: Video payload bytes inspected to tell H.264 from H.265 before giving up and assuming H.264.
DEFAULT_MAX_SNIFF_BYTES = 256 * 1024

_SC = b"\x00\x00\x01"
_PACK = b"\x00\x00\x01\xba"
_ZEROS = b"\x00\x00\x00"
_HALF = 1 << 32
_WRAP = 1 << 33
# Tail bytes of the previous payload re-scanned with the next one: a 4-byte start code plus the three header
# bytes find_au_start reads (H.265 two-byte NAL header + first slice byte).
_TAIL = 7
_SC4 = b"\x00\x00\x00\x01"
# VCL NAL unit types (H.264 7.4.1: 1..5; H.265 7.4.2.2: 0..31) and the keyframe ones, per nalu's definition.
_H264_VCL = frozenset(range(1, 6))
_HEVC_VCL = frozenset(range(32))
_H264_KEY = frozenset(t for t in range(32) if is_keyframe_nal_type("h264", t))
_HEVC_KEY = frozenset(t for t in range(64) if is_keyframe_nal_type("hevc", t))


def _classes(nal_type: Callable[[bytes], int], vcl: frozenset[int], key: frozenset[int]) -> tuple[int, ...]:
    # The NAL type lives in the first header byte for both codecs, so a 256-entry table indexed by that byte
    # answers "0: not VCL, 1: VCL, 2: keyframe VCL" with one index on the hot path.
    types = [nal_type(bytes((b,))) for b in range(256)]
    return tuple(2 if t in key else 1 if t in vcl else 0 for t in types)


_H264_CLASSES = _classes(h264_nal_type, _H264_VCL, _H264_KEY)
_HEVC_CLASSES = _classes(h265_nal_type, _HEVC_VCL, _HEVC_KEY)
# Payloads with a PTS, each opening an AU and with no other AU start inside, before a track counts as aligned.
_TRUST_AFTER = 16

# H.265 types that can only be H.265 when nuh_layer_id is 0 and nuh_temporal_id_plus1 is 1..7: VPS/SPS/PPS/AUD/SEI
# and IRAP pictures. As H.264 headers these bytes are reserved or forbidden (e.g. 0x40 is type 0, 0x46 an SEI with
# nal_ref_idc != 0), so they decide H.265. H.264 is decided by SPS/PPS/AUD/IDR/slice headers (7.4.1).
_HEVC_SNIFF = frozenset({32, 33, 34, 35, 39, 19, 20, 21})
_H264_SNIFF = frozenset({1, 5, 7, 8, 9})


_frame = new_media_frame


@attrs.frozen(kw_only=True, slots=True)
class PsStatistics:
    """Counters of a `PsDemuxer` since it was made.

    Attributes:
        bytes_in: bytes passed to `feed`.
        packs: pack headers read.
        psms: program stream maps read.
        pes_packets: audio/video PES packets read (damaged ones excluded).
        frames: frames returned.
        resyncs: times the demuxer lost framing and searched for the next pack header.
        skipped_bytes: bytes skipped while resynchronising (and partial units dropped by `flush`).
        damaged_units: units dropped because their length or header did not hold up.
        dropped_frames: video frames dropped because data inside them was lost.
        dropped_bytes: video payload bytes dropped before the first access unit start of a track.
        oversized_frames: video frames larger than `max_frame_size`, dropped.
        skipped_pes: private (0xBD, 0xBF), padding (0xBE), directory and other non-A/V units skipped.
        unknown_streams: A/V PES dropped because their stream type is unknown or unsupported.
        guessed_audio: audio tracks with no PSM entry and no recognisable header, assumed to be G.711 A-law.
    """

    bytes_in: int
    packs: int
    psms: int
    pes_packets: int
    frames: int
    resyncs: int
    skipped_bytes: int
    damaged_units: int
    dropped_frames: int
    dropped_bytes: int
    oversized_frames: int
    skipped_pes: int
    unknown_streams: int
    guessed_audio: int


class _Track:
    """Assembly state of one elementary stream (one PES stream_id)."""

    __slots__ = (
        "au_start",
        "classes",
        "codec",
        "disc",
        "distrust",
        "dts",
        "has_au",
        "key_types",
        "keyframe",
        "last",
        "last_mark",
        "nal_type",
        "parts",
        "pts",
        "sample",
        "size",
        "sniffed",
        "stream_id",
        "trusted",
        "vcl_seen",
        "vcl_types",
        "verified",
    )

    def __init__(self, stream_id: int, codec: str | None) -> None:
        self.stream_id = stream_id
        self.codec = codec  # None: not known yet (no PSM entry, not sniffed)
        self.sniffed = 0  # video bytes looked at while sniffing
        self.parts: list[bytes] = []
        self.size = 0
        self.has_au = False  # an access unit is being assembled
        self.vcl_seen = False  # ... and its first VCL NAL unit has been seen
        self.keyframe = False
        self.pts: int | None = None
        self.dts: int | None = None
        self.disc = False  # data was lost since the last payload
        self.last = b""  # the last piece appended to parts (for start codes split across payloads)
        self.last_mark = -1  # offset in `last` of the `01` of the last AU start found there
        self.verified = 0  # payloads with a PTS whose only AU boundary was at their first byte
        self.trusted = False  # frame-aligned: AU boundaries only at the start of PES with a PTS
        self.distrust = False  # an AU boundary was seen elsewhere: never trusted again
        self.sample = 0
        self.au_start = find_au_start
        self.set_codec(codec)

    def set_codec(self, codec: str | None) -> None:
        self.codec = codec
        hevc = codec == "hevc"
        self.nal_type = h265_nal_type if hevc else h264_nal_type
        self.vcl_types = _HEVC_VCL if hevc else _H264_VCL
        self.key_types = _HEVC_KEY if hevc else _H264_KEY
        self.classes = _HEVC_CLASSES if hevc else _H264_CLASSES


class PsDemuxer:
    """MPEG-PS demuxer (a feeder): `feed(data)` returns the frames completed so far; `flush()` ends the stream.

    Video frames are access units in Annex-B; audio frames are PES payloads. See the module docstring for the
    framing, damage and timestamp rules. Input damage never raises; `statistics()` counts it. Memory is bounded:
    at most one unit (a PES is at most 65,541 bytes, a PSM 1,024) is buffered, plus one access unit of at most
    `max_frame_size` bytes per video stream, and there are at most 48 A/V streams.

    Args:
        max_frame_size: the largest video access unit assembled; larger ones are dropped and counted.
    """

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max_frame_size = max_frame_size
        self._rest = b""
        self._queued: list[bytes] = []  # small feeds waiting until `_need` bytes are available
        self._queued_len = 0
        self._need = 0
        self._resync = False
        self._tracks: dict[int, _Track] = {}
        # H.264/H.265 tracks whose codec is known: the fast path in `_parse` hands their payloads straight over.
        self._video_tracks: dict[int, _Track] = {}
        self._psm_types: dict[int, int] = {}
        self._psm_raw = b""
        self._ts_ref: int | None = None
        self._psm_in_pack = False
        self._bytes_in = 0
        self._packs = 0
        self._psms = 0
        self._pes = 0
        self._frames = 0
        self._resyncs = 0
        self._skipped = 0
        self._damaged = 0
        self._dropped_frames = 0
        self._dropped_bytes = 0
        self._oversized = 0
        self._skipped_pes = 0
        self._unknown = 0
        self._guessed = 0

    # ------------------------------------------------------------------------------------------------ public API

    @property
    def program_stream_map(self) -> dict[int, int]:
        """stream_id -> stream_type from the latest PSM (empty when none was seen)."""
        return dict(self._psm_types)

    def statistics(self) -> PsStatistics:
        """A snapshot of the counters."""
        return PsStatistics(
            bytes_in=self._bytes_in,
            packs=self._packs,
            psms=self._psms,
            pes_packets=self._pes,
            frames=self._frames,
            resyncs=self._resyncs,
            skipped_bytes=self._skipped,
            damaged_units=self._damaged,
            dropped_frames=self._dropped_frames,
            dropped_bytes=self._dropped_bytes,
            oversized_frames=self._oversized,
            skipped_pes=self._skipped_pes,
            unknown_streams=self._unknown,
            guessed_audio=self._guessed,
        )

    def feed(self, data: bytes) -> list[MediaFrame]:
        """Consume the next bytes of the stream (any chunking); returns the frames completed by them.

        Args:
            data: program stream bytes.
        """
        data = bytes(data)
        self._bytes_in += len(data)
        if self._queued_len + len(data) < self._need:
            self._queued.append(data)
            self._queued_len += len(data)
            return []
        if self._queued:
            self._queued.append(data)
            data = b"".join(self._queued)
            self._queued = []
            self._queued_len = 0
        buf = self._rest + data if self._rest else data
        out: list[MediaFrame] = []
        pos = self._parse(buf, out)
        self._rest = buf[pos:]
        return out

    def flush(self) -> list[MediaFrame]:
        """End of stream: returns the pending access units; a partial unit still buffered is dropped (counted in
        `skipped_bytes`). The demuxer is then ready for a new stream (PSM and codecs are kept)."""
        out: list[MediaFrame] = []
        if self._queued:
            data = b"".join(self._queued)
            self._queued = []
            self._queued_len = 0
            buf = self._rest + data
            pos = self._parse(buf, out)
            self._rest = buf[pos:]
        self._skipped += len(self._rest)
        self._rest = b""
        self._need = 0
        for track in self._tracks.values():
            if track.has_au:
                self._emit(track, out)
            track.last = b""
            track.last_mark = -1
        return out

    # ----------------------------------------------------------------------------------------------- unit walker

    def _lost_sync(self) -> None:
        if not self._resync:
            self._resync = True
            self._resyncs += 1
        for track in self._tracks.values():
            track.disc = True

    def _parse(self, buf: bytes, out: list[MediaFrame]) -> int:
        """Parse the complete units of `buf`; returns where the unparsed rest begins (and sets `_need`)."""
        n = len(buf)
        pos = 0
        self._need = 0
        video = self._video_tracks
        while True:
            if self._resync:
                j = buf.find(_PACK, pos)
                if j < 0:
                    keep = max(pos, n - 3)
                    self._skipped += keep - pos
                    return keep
                self._skipped += j - pos
                pos = j
                self._resync = False
            if n - pos < 6:
                if n - pos >= 3 and buf[pos : pos + 3] != _SC and buf[pos : pos + 3] != _ZEROS:
                    self._lost_sync()
                    continue
                if n - pos >= 4 and buf[pos + 3] == 0xB9:  # MPEG_program_end_code
                    pos += 4
                    continue
                self._need = 6 - (n - pos)
                return pos
            if buf[pos] or buf[pos + 1] or buf[pos + 2] != 1:
                if not (buf[pos] or buf[pos + 1] or buf[pos + 2]):
                    # Zero stuffing before a start code (some devices pad): skipped without losing sync.
                    j = buf.find(_SC, pos)
                    if j < 0 and not buf[pos:].lstrip(b"\x00"):
                        self._skipped += n - 2 - pos
                        return n - 2
                    if j > pos and not buf[pos:j].lstrip(b"\x00"):
                        self._skipped += j - pos
                        pos = j
                        continue
                self._lost_sync()
                continue
            sid = buf[pos + 3]
            if sid == 0xBA:
                b4 = buf[pos + 4]
                if b4 & 0xC0 == 0x40:
                    if n - pos < 14:
                        self._need = 14 - (n - pos)
                        return pos
                    size = 14 + (buf[pos + 13] & 7)
                elif b4 & 0xF0 == 0x20:
                    size = 12
                else:
                    self._damaged += 1
                    pos += 4
                    self._lost_sync()
                    continue
                if n - pos < size:
                    self._need = size - (n - pos)
                    return pos
                self._packs += 1
                self._psm_in_pack = False
                pos += size
                continue
            if sid < 0xBB:
                if sid == 0xB9:  # MPEG_program_end_code
                    pos += 4
                    continue
                self._lost_sync()
                continue
            end = pos + 6 + ((buf[pos + 4] << 8) | buf[pos + 5])
            if end > n:
                self._need = end - n
                return pos
            # The next unit must start right here (see module docstring); a unit that ends with the data is
            # taken on trust.
            if end < n and not (
                buf.startswith(_SC, end)
                or (n - end < 3 and _SC.startswith(buf[end:]))
                or buf.startswith(_ZEROS[: n - end], end)
            ):
                self._damaged += 1
                j = buf.find(_PACK, pos + 4, end)
                if 0xC0 <= sid <= 0xEF:
                    self._damage_track(sid, buf, pos, end)
                if j >= 0:
                    self._skipped += j - pos
                    pos = j
                else:
                    pos = end
                self._lost_sync()
                continue
            if sid >= 0xC0 and sid < 0xF0:
                # The common MPEG-2 header with a PTS or PTS+DTS is decoded inline (this loop runs per PES);
                # everything else goes through the shared `pes_header`.
                flags = buf[pos + 7] if end > pos + 8 and buf[pos + 6] & 0xC0 == 0x80 else 0
                start = pos + 9 + buf[pos + 8] if flags else end
                if (
                    (flags & 0xC0 == 0x80 or flags & 0xC0 == 0xC0)
                    and start <= end
                    and (start >= pos + (19 if flags & 0x40 else 14))
                ):
                    v = int.from_bytes(buf[pos + 9 : pos + 14], "big")
                    pts = (((v >> 33) & 7) << 30) | (((v >> 17) & 0x7FFF) << 15) | ((v >> 1) & 0x7FFF)
                    if flags & 0x40:
                        v = int.from_bytes(buf[pos + 14 : pos + 19], "big")
                        dts = (((v >> 33) & 7) << 30) | (((v >> 17) & 0x7FFF) << 15) | ((v >> 1) & 0x7FFF)
                    else:
                        dts = pts
                else:
                    try:
                        pts, dts, start = pes_header(buf, pos, end)
                    except ParseError:
                        self._damaged += 1
                        self._damage_track(sid, buf, pos, end)
                        pos = end
                        continue
                self._pes += 1
                upts = udts = None
                if pts >= 0:
                    ref = self._ts_ref
                    if ref is None:
                        upts = pts
                    else:
                        delta = (pts - ref) & TS_MASK
                        upts = ref + (delta - _WRAP if delta >= _HALF else delta)
                    self._ts_ref = upts
                    udts = self._unwrap(dts) if dts != pts else upts
                track = video.get(sid)
                if track is not None and not track.disc:
                    if track.trusted:
                        track.last = b""
                        self._video_trusted(track, track.codec, buf[start:end], upts, udts, out)  # type: ignore[arg-type]
                    else:
                        self._video_payload(track, track.codec, buf[start:end], upts, udts, out)  # type: ignore[arg-type]
                else:
                    self._pes_payload(sid, buf[start:end], upts, udts, out)
            elif sid == 0xBC:
                # Cameras repeat the same PSM before every keyframe: parse only when its bytes change.
                raw = buf[pos:end]
                if raw == self._psm_raw:
                    self._psms += 1
                    self._psm_in_pack = True
                else:
                    try:
                        psm, _ = parse_psm(raw)
                    except ParseError:
                        self._damaged += 1
                    else:
                        self._psm_raw = raw
                        self._set_psm(psm)
            elif sid != 0xBB:
                self._skipped_pes += 1
            pos = end

    def _unwrap(self, ts: int) -> int:
        ref = self._ts_ref
        if ref is None:
            self._ts_ref = ts
            return ts
        delta = (ts - ref) & TS_MASK
        if delta >= _HALF:
            delta -= _WRAP
        ts = ref + delta
        self._ts_ref = ts
        return ts

    def _set_psm(self, psm: ProgramStreamMap) -> None:
        self._psms += 1
        self._psm_in_pack = True
        types = {e.stream_id: e.stream_type for e in psm.entries}
        for sid, stype in types.items():
            track = self._tracks.get(sid)
            codec = STREAM_TYPE_TO_CODEC.get(stype)
            if (
                track is not None
                and codec is not None
                and track.codec != codec
                and not (codec == "mp2" and track.codec == "mp3")
            ):
                # The stream changed codec: start over (its pending frame is of the old codec).
                if track.has_au:
                    self._dropped_frames += 1
                self._tracks[sid] = _Track(sid, codec)
                self._video_tracks.pop(sid, None)
        self._psm_types = types

    def _damage_track(self, sid: int, buf: bytes, pos: int, end: int) -> None:
        """A PES of `sid` was damaged: its pending frame is dropped unless the damaged PES visibly began a new
        frame (it carries a PTS), in which case the pending frame was complete."""
        track = self._tracks.get(sid)
        if track is None:
            return
        try:
            pts, _, _ = pes_header(buf, pos, end)
        except ParseError:
            pts = -1
        if pts < 0 and track.has_au:
            self._dropped_frames += 1
            track.has_au = False
            track.parts = []
            track.size = 0
        track.disc = True

    # ------------------------------------------------------------------------------------------------- payloads

    def _new_track(self, sid: int, payload: bytes) -> _Track | None:
        stype = self._psm_types.get(sid)
        codec: str | None
        if stype is not None:
            codec = STREAM_TYPE_TO_CODEC.get(stype)
            if codec is None:
                return None
            if codec == "mp2":
                codec = _sniff_mpeg_audio(payload) or "mp2"
        elif sid >= 0xE0:
            codec = None
        else:
            codec = _sniff_audio(payload)
            if codec is None:
                codec = "pcm_alaw"
                self._guessed += 1
        track = _Track(sid, codec)
        self._tracks[sid] = track
        return track

    def _pes_payload(self, sid: int, payload: bytes, pts: int | None, dts: int | None, out: list[MediaFrame]) -> None:
        track = self._tracks.get(sid)
        if track is None:
            track = self._new_track(sid, payload)
            if track is None:
                self._unknown += 1
                return
        codec = track.codec
        if sid < 0xE0:
            if payload:
                self._frames += 1
                out.append(_frame(codec or "pcm_alaw", payload, pts, dts, True, sid))
            return
        if codec is None:
            codec = _sniff_video(payload)
            if codec is None:
                track.sniffed += len(payload)
                if track.sniffed < DEFAULT_MAX_SNIFF_BYTES:
                    self._dropped_bytes += len(payload)
                    return
                codec = "h264"
            track.set_codec(codec)
        if codec == "h264" or codec == "hevc":
            self._video_tracks[sid] = track
            self._video_payload(track, codec, payload, pts, dts, out)
        else:
            self._pts_framed_payload(track, payload, pts, dts, out)

    def _emit(self, track: _Track, out: list[MediaFrame]) -> None:
        parts = track.parts
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        track.parts = []
        track.size = 0
        track.has_au = False
        if data:
            self._frames += 1
            out.append(_frame(track.codec or "h264", data, track.pts, track.dts, track.keyframe, track.stream_id))

    def _append(self, track: _Track, piece: bytes) -> None:
        if not piece:
            return
        track.parts.append(piece)
        track.size += len(piece)
        if track.size > self._max_frame_size:
            self._oversized += 1
            track.parts = []
            track.size = 0
            track.has_au = False
            track.disc = True

    def _video_trusted(
        self, track: _Track, codec: str, payload: bytes, pts: int | None, dts: int | None, out: list[MediaFrame]
    ) -> None:
        """`_video_payload` for a track proven frame-aligned (see module docstring): only the NAL units up to the
        first VCL one of a new AU are looked at, and every 16th payload still gets the full scan."""
        track.sample += 1
        if not track.sample & 15 or not track.has_au:
            self._video_payload(track, codec, payload, pts, dts, out)
            return
        if track.vcl_seen:
            # Two pictures never share a PTS, so a new PTS opens a new AU, and a repeated one (cameras that put
            # each slice of a picture in its own PES) continues the current one. An aligned stream's new AU begins
            # with a start code; anything else goes to the full scan.
            if pts is None or pts == track.pts:
                self._append(track, payload)
                return
            if not (payload.startswith(_SC) or payload.startswith(_SC4)):
                self._video_payload(track, codec, payload, pts, dts, out)
                return
            parts = track.parts
            self._frames += 1
            out.append(
                _frame(
                    codec,
                    parts[0] if len(parts) == 1 else b"".join(parts),
                    track.pts,
                    track.dts,
                    track.keyframe,
                    track.stream_id,
                )
            )
            track.parts = [payload]
            track.size = len(payload)
            track.vcl_seen = False
            track.keyframe = False
            track.pts = pts
            track.dts = dts
        else:
            self._append(track, payload)
        # Find this AU's first VCL NAL unit (it decides `keyframe`): usually the first or second NAL unit.
        classes = track.classes
        n = len(payload)
        i = payload.find(_SC)
        while 0 <= i < n - 3:
            k = classes[payload[i + 3]]
            if k:
                track.keyframe = k == 2
                track.vcl_seen = True
                return
            i = payload.find(_SC, i + 3)

    def _video_payload(
        self, track: _Track, codec: str, payload: bytes, pts: int | None, dts: int | None, out: list[MediaFrame]
    ) -> None:
        """Cut H.264/H.265 payload bytes into access units (see module docstring)."""
        find = track.au_start
        data = payload
        base = 0  # offset in `data` where this payload begins
        mark = -1  # AU starts whose `01` byte is at or before `mark` were already handled
        if track.disc:
            track.disc = False
            track.last = b""
            track.last_mark = -1
            if track.has_au and find(codec, payload) != 0:
                # Data was lost and this payload does not open a new AU: the pending AU lost its tail or middle.
                self._dropped_frames += 1
                track.has_au = False
                track.parts = []
                track.size = 0
        else:
            last = track.last
            # A start code can only straddle the boundary if the previous payload ends with a zero byte or has a
            # start code among its last bytes (the last byte of a NAL unit is never 0: H.264 7.4.1, H.265 7.4.2).
            if last and track.has_au and (last[-1] == 0 or last.find(_SC, len(last) - _TAIL) >= 0):
                k = min(len(last), _TAIL)
                parts = track.parts
                if parts and parts[-1] is last:
                    parts[-1] = last[:-k]
                    track.size -= k
                    data = last[-k:] + payload
                    base = k
                    mark = track.last_mark - (len(last) - k)
        seg = 0
        pos = 0
        found_mark = -1
        aligned = True  # every AU boundary in this payload is at its first byte, in a PES with a PTS
        ts_pending = pts is not None
        vcl = track.vcl_types
        vcl_seen = track.vcl_seen
        has_au = track.has_au
        n = len(data)
        while True:
            # No start code left means no AU start left: skip the call (the common single-slice P-frame case).
            if data.find(_SC, pos) < 0:
                break
            c = find(codec, data, pos)
            if c < 0:
                break
            one = c + 2 if data[c + 2] == 1 else c + 3  # offset of the start code's 01 byte
            pos = one + 1
            if one <= mark:
                continue
            found_mark = one
            t = track.nal_type(data[pos : pos + 1])
            if vcl_seen or not has_au:
                if has_au:
                    if c != base or pts is None:
                        aligned = False
                    self._append(track, data[seg:c])
                    if track.has_au:
                        self._emit(track, out)
                else:
                    self._dropped_bytes += c - seg
                track.has_au = has_au = True
                vcl_seen = False
                track.keyframe = False
                # §2.4.3.7: the PES timestamps belong to the first AU whose start code begins in this PES.
                if ts_pending and one >= base:
                    track.pts, track.dts = pts, dts
                    ts_pending = False
                else:
                    track.pts = track.dts = None
                seg = c
            if t in vcl:
                if not vcl_seen:
                    track.keyframe = t in track.key_types
                vcl_seen = True
        track.vcl_seen = vcl_seen
        if not aligned:
            track.distrust = True
            track.trusted = False
        elif pts is not None and not track.distrust:
            track.verified += 1
            if track.verified >= _TRUST_AFTER:
                track.trusted = True
        if has_au:
            piece = data if seg == 0 else data[seg:]
            self._append(track, piece)
            if track.has_au:
                track.last = piece
                track.last_mark = found_mark - seg if found_mark >= seg else -1
            else:
                track.last = b""
        else:
            self._dropped_bytes += n - seg
            track.last = b""

    def _pts_framed_payload(
        self, track: _Track, payload: bytes, pts: int | None, dts: int | None, out: list[MediaFrame]
    ) -> None:
        """MPEG-4 / SVAC video: a PES with a PTS starts a frame. Keyframes: an MPEG-4 I-VOP (14496-2 §6.2.5,
        vop_coding_type 0 after the 00 00 01 B6 start code); for SVAC, a frame in a pack that carried a PSM
        (GB28181 C.1 puts the PSM before every keyframe)."""
        if pts is not None or track.disc:
            if track.has_au:
                self._emit(track, out)
            track.disc = False
            if pts is None:
                self._dropped_bytes += len(payload)
                return
            track.has_au = True
            track.pts, track.dts = pts, dts
            if track.codec == "mpeg4":
                i = payload.find(b"\x00\x00\x01\xb6")
                track.keyframe = 0 <= i < len(payload) - 4 and payload[i + 4] >> 6 == 0
            else:
                track.keyframe = self._psm_in_pack
        if track.has_au:
            self._append(track, payload)
        else:
            self._dropped_bytes += len(payload)


def _sniff_video(payload: bytes) -> str | None:
    """H.264 or H.265 from the first NAL headers that only one of them allows; None when undecided."""
    n = len(payload)
    i = payload.find(_SC)
    while i >= 0 and i + 4 < n:
        b0 = payload[i + 3]
        b1 = payload[i + 4]
        if not b0 & 0x80:
            # H.265 header (7.3.1.2): type = bits 1..6, nuh_layer_id 0, nuh_temporal_id_plus1 != 0.
            if not b0 & 1 and b1 & 0xF8 == 0 and b1 & 7 and (b0 >> 1) in _HEVC_SNIFF:
                return "hevc"
            if b0 & 0x1F in _H264_SNIFF:
                return "h264"
        i = payload.find(_SC, i + 3)
    return None


def _sniff_mpeg_audio(payload: bytes) -> str | None:
    """ "mp2"/"mp3" from an MPEG audio frame header (11172-3 §2.4.2.3: 12/11-bit sync, layer bits)."""
    if len(payload) >= 2 and payload[0] == 0xFF and payload[1] & 0xE0 == 0xE0:
        layer = (payload[1] >> 1) & 3
        if layer == 1:
            return "mp3"
        if layer == 2:
            return "mp2"
    return None


def _sniff_audio(payload: bytes) -> str | None:
    """Codec of an audio stream with no PSM entry: ADTS (14496-3 §1.A.2: sync 0xFFF, layer 00) -> "aac"."""
    if len(payload) >= 2 and payload[0] == 0xFF and payload[1] & 0xF6 == 0xF0:
        return "aac"
    return _sniff_mpeg_audio(payload)
