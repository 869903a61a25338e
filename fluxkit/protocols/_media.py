"""Media units shared by every demuxer and depacketizer."""

from __future__ import annotations

import attrs

__all__ = ["AUDIO_CODECS", "VIDEO_CODECS", "MediaFrame"]

#: Codec names follow FFmpeg's, so they compare directly with what PyAV reports.
VIDEO_CODECS = frozenset({"h264", "hevc", "mpeg4", "svac"})
AUDIO_CODECS = frozenset({"pcm_alaw", "pcm_mulaw", "aac", "g722", "g723_1", "g729", "opus", "mp2", "mp3"})


@attrs.frozen(kw_only=True, slots=True)
class MediaFrame:
    """One access unit (video) or one audio frame/PES payload, out of a demuxer or depacketizer.

    Attributes:
        codec: FFmpeg codec name ("h264", "hevc", "pcm_alaw", "pcm_mulaw", "aac", ...).
        data: the payload; Annex-B (start codes included) for H.264/H.265.
        pts: presentation time in 90 kHz ticks, or None when the source gave none.
        dts: decoding time in 90 kHz ticks, or None.
        keyframe: True for an H.264 IDR / H.265 IRAP access unit (and for every audio frame).
        stream_id: the source's id for the elementary stream (PES stream_id for PS, 0 where there is one).
    """

    codec: str
    data: bytes
    pts: int | None
    dts: int | None
    keyframe: bool
    stream_id: int = 0

    @property
    def kind(self) -> str:
        """ "video" or "audio"."""
        return "audio" if self.codec in AUDIO_CODECS else "video"
