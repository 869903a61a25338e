"""FLV muxing of engine frames, shared by RTMP play (`rtmp_server`) and HTTP-FLV (`flv_stream`).

Strategy: `muxer_for(tracks)` builds a sans-IO `FlvMuxer` from the stream's tracks (video codec and parameter
sets, AAC AudioSpecificConfig); `flv_stream` subscribes to the engine stream (which starts at a keyframe) and
yields the FLV header, then per batch of frames the tags `b"".join`-ed into one chunk, so an HTTP response writes
once per batch. Frames wait in the engine's bounded subscription queue while the consumer is slow (it skips to
the next keyframe on overflow), so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

import trio

from fluxkit.protocols.flv import TAG_AUDIO, TAG_VIDEO, FlvMuxer, flv_header, flv_tag

if TYPE_CHECKING:
    from fluxkit.engine import Track, VideoEngine

__all__ = ["flv_stream", "muxer_for"]

_FLV_VIDEO = ("h264", "hevc")
_FLV_AUDIO = ("aac", "pcm_alaw", "pcm_mulaw")


def muxer_for(tracks: Sequence[Track], *, enhanced_hevc: bool = True) -> FlvMuxer:
    """An `FlvMuxer` for the first FLV-capable video and audio tracks of a stream (others are left out)."""
    video = next((t for t in tracks if t.codec in _FLV_VIDEO), None)
    audio = next((t for t in tracks if t.codec in _FLV_AUDIO), None)
    return FlvMuxer(
        video_codec=video.codec if video else None,
        parameter_sets=video.parameter_sets if video else (),
        audio_codec=audio.codec if audio else None,
        audio_extradata=audio.extradata if audio else b"",
        enhanced_hevc=enhanced_hevc,
    )


async def flv_stream(
    engine: VideoEngine, stream_id: str, *, queue_size: int | None = None, enhanced_hevc: bool = True
) -> AsyncGenerator[bytes, None]:
    """An HTTP-FLV body: the FLV header, then tags built from the engine stream's frames, until it stops.

    Raises:
        StreamNotFoundError: no such stream (raised at the first iteration).
    """
    tracks = next((s.tracks for s in engine.list_streams() if s.stream_id == stream_id), ())
    subscription = engine.subscribe_stream(stream_id, queue_size=queue_size, name=f"http-flv:{stream_id}")
    async with subscription:
        muxer = muxer_for(tracks, enhanced_hevc=enhanced_hevc)
        yield flv_header(audio=muxer.audio_codec is not None, video=muxer.video_codec is not None)
        while True:
            try:
                frames = [await subscription.receive()]
            except (trio.EndOfChannel, trio.ClosedResourceError):
                return
            while True:
                try:
                    frames.append(subscription.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            parts = [
                flv_tag(TAG_VIDEO if kind == "video" else TAG_AUDIO, ms, body)
                for frame in frames
                for kind, ms, body in muxer.push(frame)
            ]
            if parts:
                yield b"".join(parts)
