"""What a stream carries: its tracks, described once when the stream is published."""

from __future__ import annotations

from typing import Any

import attrs

from fluxkit.protocols._media import AUDIO_CODECS

__all__ = ["Track"]


def _positive_or_none(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, int | float) and value > 0):
        raise ValueError(f"{attribute.name} must be positive or None, not {value!r}")


@attrs.frozen(kw_only=True, slots=True)
class Track:
    """One elementary stream of a published stream.

    Frames are matched to their track by codec, so a stream has at most one track per codec.

    Attributes:
        codec: FFmpeg codec name, as in `MediaFrame.codec` ("h264", "hevc", "aac", "pcm_alaw", ...).
        clock_rate: ticks per second of the frames' raw timestamps (90000 for video, usually the sample rate for
            audio carried over RTP).
        width: picture width in pixels (video), when known.
        height: picture height in pixels (video), when known.
        fps: nominal frame rate (video), when known.
        sample_rate: samples per second (audio), when known.
        channels: audio channel count, when known.
        parameter_sets: H.264 SPS/PPS or H.265 VPS/SPS/PPS NAL units, without start codes.
        extradata: codec configuration that is not a NAL unit (AAC AudioSpecificConfig).
    """

    codec: str = attrs.field(validator=attrs.validators.min_len(1))
    clock_rate: int = attrs.field(default=90000, validator=_positive_or_none)
    width: int | None = attrs.field(default=None, validator=_positive_or_none)
    height: int | None = attrs.field(default=None, validator=_positive_or_none)
    fps: float | None = attrs.field(default=None, validator=_positive_or_none)
    sample_rate: int | None = attrs.field(default=None, validator=_positive_or_none)
    channels: int | None = attrs.field(default=None, validator=_positive_or_none)
    parameter_sets: tuple[bytes, ...] = ()
    extradata: bytes = b""

    @property
    def kind(self) -> str:
        """ "video" or "audio" (same rule as `MediaFrame.kind`)."""
        return "audio" if self.codec in AUDIO_CODECS else "video"
