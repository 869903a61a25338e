"""Media units shared by every demuxer and depacketizer."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["AUDIO_CODECS", "VIDEO_CODECS", "MediaFrame", "new_media_frame"]

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


def _frame_builder() -> Callable[[str, bytes, int | None, int | None, bool, int], MediaFrame]:
    # attrs' keyword __init__ of a frozen slotted class costs about 0.5-1 us (keyword matching plus a guarded
    # object.__setattr__ per field): a third of a frame's whole budget in the demuxers. Writing the slots through
    # their descriptors builds the same ordinary frozen instance (equal, hashable, attrs.evolve works) in a third
    # of the time. MediaFrame has no validators or converters to skip; should its fields ever change, the guard
    # falls back to the constructor.
    names = ("codec", "data", "pts", "dts", "keyframe", "stream_id")
    if tuple(a.name for a in attrs.fields(MediaFrame)) != names:  # pragma: no cover - guards a future change
        return lambda c, d, p, t, k, s: MediaFrame(codec=c, data=d, pts=p, dts=t, keyframe=k, stream_id=s)
    set_codec, set_data, set_pts, set_dts, set_key, set_sid = (getattr(MediaFrame, n).__set__ for n in names)
    new = object.__new__

    def build(codec: str, data: bytes, pts: int | None, dts: int | None, keyframe: bool, stream_id: int) -> MediaFrame:
        frame: MediaFrame = new(MediaFrame)
        set_codec(frame, codec)
        set_data(frame, data)
        set_pts(frame, pts)
        set_dts(frame, dts)
        set_key(frame, keyframe)
        set_sid(frame, stream_id)
        return frame

    return build


#: new_media_frame(codec, data, pts, dts, keyframe, stream_id) == MediaFrame(codec=codec, ...), for hot paths.
new_media_frame = _frame_builder()
