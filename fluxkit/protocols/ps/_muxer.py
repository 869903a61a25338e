"""GB28181-shaped MPEG-PS muxer (GB28181-2016 Annex C.1 on top of ISO/IEC 13818-1 §2.5).

Strategy: every frame becomes one pack: an MPEG-2 pack header whose SCR is the frame's DTS (never going back),
then, before the first frame and before every video keyframe, a system header and a PSM (with its CRC-32/MPEG-2),
then the frame's PES packets. A video frame larger than one PES can hold is split into several PES (the 16-bit
PES_packet_length allows 65,535 bytes after it); only the first carries PTS (and DTS when it differs) and the
data_alignment_indicator. Audio frames go in one PES each (split the same way if huge), stream id 0xC0.

Timestamps are 90 kHz and written modulo 2**33, so a caller may pass ever-growing (unwrapped) values.
"""

from __future__ import annotations

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols._media import AUDIO_CODECS, MediaFrame

from ._codec import (
    CODEC_TO_STREAM_TYPE,
    TS_MASK,
    PackHeader,
    ProgramStreamMap,
    PsmEntry,
    SystemHeader,
    SystemHeaderStream,
    encode_timestamp,
)

__all__ = ["DEFAULT_MUX_RATE", "MAX_PES_PAYLOAD", "PsMuxer"]

#: mux_rate written in pack headers, in 50 bytes/s units (here 20 Mbit/s; receivers ignore it).
DEFAULT_MUX_RATE = 50_000
#: Payload bytes in a PES without timestamps: 65,535 minus the 3 flag/length bytes of the MPEG-2 header.
MAX_PES_PAYLOAD = 0xFFFF - 3

_VIDEO = ("h264", "hevc", "mpeg4", "svac")
_AUDIO = ("pcm_alaw", "pcm_mulaw", "aac", "mp2", "g723_1", "g729", "opus")


class PsMuxer:
    """Write media frames as a GB28181-style program stream.

    Args:
        video_codec: "h264", "hevc" (also "mpeg4", "svac"), or None for no video.
        audio_codec: "pcm_alaw", "pcm_mulaw", "aac" (ADTS frames), ... or None for no audio.
        video_stream_id: PES stream_id of the video (0xE0..0xEF).
        audio_stream_id: PES stream_id of the audio (0xC0..0xDF).
        mux_rate: the pack headers' program_mux_rate (50 bytes/s units).

    Raises:
        LocalProtocolError: an unsupported codec or an out-of-range stream id.
    """

    def __init__(
        self,
        video_codec: str | None = "h264",
        audio_codec: str | None = None,
        *,
        video_stream_id: int = 0xE0,
        audio_stream_id: int = 0xC0,
        mux_rate: int = DEFAULT_MUX_RATE,
    ) -> None:
        if video_codec is not None and video_codec not in _VIDEO:
            raise LocalProtocolError(f"PsMuxer: unsupported video codec {video_codec!r}")
        if audio_codec is not None and audio_codec not in _AUDIO:
            raise LocalProtocolError(f"PsMuxer: unsupported audio codec {audio_codec!r}")
        if video_codec is None and audio_codec is None:
            raise LocalProtocolError("PsMuxer needs a video or an audio codec")
        if not 0xE0 <= video_stream_id <= 0xEF or not 0xC0 <= audio_stream_id <= 0xDF:
            raise LocalProtocolError("PsMuxer: video stream id must be 0xE0..0xEF, audio 0xC0..0xDF")
        if not 0 < mux_rate < 1 << 22:
            raise LocalProtocolError("PsMuxer: mux_rate must fit 22 bits")
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self.video_stream_id = video_stream_id
        self.audio_stream_id = audio_stream_id
        self._mux_rate = mux_rate
        self._last_scr = -1
        self._headers_written = False
        entries = []
        streams = []
        if video_codec is not None:
            entries.append(PsmEntry(stream_type=CODEC_TO_STREAM_TYPE[video_codec], stream_id=video_stream_id))
            streams.append(SystemHeaderStream(stream_id=video_stream_id, buffer_bound_scale=1, buffer_size_bound=400))
        if audio_codec is not None:
            entries.append(PsmEntry(stream_type=CODEC_TO_STREAM_TYPE[audio_codec], stream_id=audio_stream_id))
            streams.append(SystemHeaderStream(stream_id=audio_stream_id, buffer_bound_scale=0, buffer_size_bound=32))
        system = SystemHeader(
            rate_bound=mux_rate,
            audio_bound=int(audio_codec is not None),
            video_bound=int(video_codec is not None),
            streams=tuple(streams),
        )
        self._headers = system.serialize() + ProgramStreamMap(entries=tuple(entries)).serialize()

    def mux(self, frame: MediaFrame) -> bytes:
        """One frame as PS bytes: dispatches to `mux_video` or `mux_audio` by the frame's codec.

        Raises:
            LocalProtocolError: the frame's codec is not the one this muxer was made for.
        """
        if frame.codec in AUDIO_CODECS:
            if frame.codec != self.audio_codec:
                raise LocalProtocolError(f"PsMuxer: audio codec is {self.audio_codec!r}, got {frame.codec!r}")
            return self.mux_audio(frame.data, pts=frame.pts)
        if frame.codec != self.video_codec:
            raise LocalProtocolError(f"PsMuxer: video codec is {self.video_codec!r}, got {frame.codec!r}")
        return self.mux_video(frame.data, pts=frame.pts, dts=frame.dts, keyframe=frame.keyframe)

    def mux_video(self, data: bytes, *, pts: int | None, dts: int | None = None, keyframe: bool = False) -> bytes:
        """One video access unit (Annex-B for H.264/H.265) as a pack.

        Args:
            data: the access unit.
            pts: presentation time, 90 kHz (None: no timestamps written).
            dts: decoding time, 90 kHz; None or equal to `pts` writes the PTS only.
            keyframe: write a system header and PSM first.

        Raises:
            LocalProtocolError: no video codec, a negative timestamp, or a DTS without a PTS.
        """
        if self.video_codec is None:
            raise LocalProtocolError("PsMuxer was made without video")
        return self._pack(self.video_stream_id, data, pts, dts, keyframe)

    def mux_audio(self, data: bytes, *, pts: int | None) -> bytes:
        """One audio frame (an ADTS frame for AAC) as a pack.

        Raises:
            LocalProtocolError: no audio codec, a negative timestamp, or AAC without an ADTS header.
        """
        if self.audio_codec is None:
            raise LocalProtocolError("PsMuxer was made without audio")
        if self.audio_codec == "aac" and not (len(data) >= 7 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0):
            raise LocalProtocolError("PsMuxer: AAC frames must be ADTS frames (PSM stream_type 0x0F)")
        return self._pack(self.audio_stream_id, data, pts, None, False)

    def _pack(self, sid: int, data: bytes, pts: int | None, dts: int | None, headers: bool) -> bytes:
        if dts is not None and pts is None:
            raise LocalProtocolError("a DTS needs a PTS")
        if (pts is not None and pts < 0) or (dts is not None and dts < 0):
            raise LocalProtocolError("timestamps must not be negative")
        ts = dts if dts is not None else pts
        # SCR (13818-1 §2.5.3.4) must not go back; DTS is the earliest time a frame is needed, so it is taken.
        scr = max(self._last_scr, ts if ts is not None else 0)
        self._last_scr = scr
        out: list[bytes | memoryview] = [PackHeader(scr_base=scr & TS_MASK, mux_rate=self._mux_rate).serialize()]
        if headers or not self._headers_written:
            out.append(self._headers)
            self._headers_written = True
        if pts is None:
            first = bytes((0x84, 0x00, 0x00))
        elif dts is None or dts == pts:
            first = bytes((0x84, 0x80, 5)) + encode_timestamp(0x2, pts & TS_MASK)
        else:
            first = (
                bytes((0x84, 0xC0, 10)) + encode_timestamp(0x3, pts & TS_MASK) + encode_timestamp(0x1, dts & TS_MASK)
            )
        sc = b"\x00\x00\x01" + bytes((sid,))
        view = memoryview(data)
        room = 0xFFFF - len(first)
        chunk = view[:room]
        out += (sc, (len(first) + len(chunk)).to_bytes(2, "big"), first, chunk)
        pos = len(chunk)
        # Continuation PES: no timestamps, data_alignment_indicator 0.
        while pos < len(data):
            chunk = view[pos : pos + MAX_PES_PAYLOAD]
            out += (sc, (3 + len(chunk)).to_bytes(2, "big"), b"\x80\x00\x00", chunk)
            pos += len(chunk)
        return b"".join(out)
