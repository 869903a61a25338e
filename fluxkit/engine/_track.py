"""What a stream carries: its tracks, described once when the stream is published."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from fluxkit.errors import ProtocolError
from fluxkit.protocols._media import AUDIO_CODECS
from fluxkit.protocols.nalu import h264_nal_type, h265_nal_type, parse_sps

_SPS_TYPE = {"h264": 7, "hevc": 33}
_PARAMETER_SET_TYPES = {"h264": frozenset({7, 8}), "hevc": frozenset({32, 33, 34})}


def nal_type(codec: str, nal: bytes) -> int:
    return h264_nal_type(nal) if codec == "h264" else h265_nal_type(nal)


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

    @classmethod
    def for_video(cls, codec: str, nals: Sequence[bytes]) -> Track:
        """An H.264/H.265 track from NAL units (an access unit's or an SDP's): size and rate from the first SPS
        that parses, parameter sets (VPS/SPS/PPS) kept; other NAL units are ignored."""
        sets = tuple(bytes(n) for n in nals if n and nal_type(codec, n) in _PARAMETER_SET_TYPES[codec])
        width = height = None
        fps = None
        for nal in sets:
            if nal_type(codec, nal) == _SPS_TYPE[codec]:
                try:
                    info = parse_sps(codec, nal)
                except ProtocolError:
                    continue
                width, height = info.width or None, info.height or None
                fps = info.fps if info.fps and info.fps > 0 else None
                break
        return cls(codec=codec, clock_rate=90000, width=width, height=height, fps=fps, parameter_sets=sets)

    @property
    def kind(self) -> str:
        """ "video" or "audio" (same rule as `MediaFrame.kind`)."""
        return "audio" if self.codec in AUDIO_CODECS else "video"
