"""FLV tag bodies <-> `MediaFrame`s: the bridge between RTMP/FLV and the engine.

Strategy: `FlvDemuxer` keeps the last sequence headers (avcC/hvcC, AudioSpecificConfig) and turns each coded
frame into one `MediaFrame` with Annex-B video and 90 kHz timestamps (FLV milliseconds x 90; pts adds the
composition time), unwrapping the 32-bit millisecond clock. Key frames that do not carry their parameter sets in
band get them prepended from the sequence header, so every keyframe decodes on its own (recording, snapshots,
RTSP out). `FlvMuxer` goes the other way: sequence headers from the tracks' parameter sets (or the first
keyframe's), then coded frames with 4-byte length prefixes, parameter sets and AUDs left out.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError, ParseError
from fluxkit.protocols._media import MediaFrame, new_media_frame
from fluxkit.protocols.nalu import split_annexb

from ._codec import (
    AacConfig,
    annexb_to_length_prefixed,
    build_avcc,
    build_hvcc,
    parse_aac_config,
    parse_avcc,
    parse_hvcc,
    split_length_prefixed,
)
from ._tags import (
    PACKET_FRAME,
    PACKET_SEQUENCE_HEADER,
    build_audio_tag,
    build_video_tag,
    parse_audio_tag,
    parse_video_tag,
)

__all__ = ["FlvDemuxer", "FlvMuxer", "VideoConfig"]

_START = b"\x00\x00\x00\x01"
_PARAMETER_TYPES = {"h264": frozenset({7, 8}), "hevc": frozenset({32, 33, 34})}
_SKIP_TYPES = {"h264": frozenset({7, 8, 9}), "hevc": frozenset({32, 33, 34, 35})}


@attrs.frozen(kw_only=True, slots=True)
class VideoConfig:
    """The video sequence header, decoded."""

    codec: str
    length_size: int
    parameter_sets: tuple[bytes, ...]


def _nal_type(hevc: bool, nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if hevc else nal[0] & 0x1F


class FlvDemuxer:
    """Turns RTMP/FLV audio and video tag bodies into `MediaFrame`s (see the module docstring).

    `video_config` and `audio_config` hold the last sequence headers; `config_changed` turns True whenever one of
    them changes (the caller resets it after re-announcing tracks).
    """

    def __init__(self) -> None:
        self.video_config: VideoConfig | None = None
        self.audio_config: AacConfig | None = None
        self.audio_codec: str | None = None
        self.audio_extradata = b""
        self.config_changed = False
        self._last_ms: dict[str, int] = {}
        self._wraps: dict[str, int] = {}
        self._annexb_sets = b""

    def _ticks(self, kind: str, ms: int) -> int:
        # FLV timestamps are 32-bit milliseconds: unwrap, so 90 kHz ticks keep growing after 49.7 days.
        last = self._last_ms.get(kind)
        wraps = self._wraps.get(kind, 0)
        if last is not None and ms < last and last - ms > 0x80000000:
            wraps += 1
            self._wraps[kind] = wraps
        self._last_ms[kind] = ms
        return (ms + (wraps << 32)) * 90

    def video(self, timestamp: int, payload: bytes) -> MediaFrame | None:
        """One video message/tag body; a frame, or None for sequence headers and other packets.

        Raises:
            ParseError: malformed tag or configuration record, or frames of a codec without a sequence header.
        """
        tag = parse_video_tag(payload)
        if tag.codec not in ("h264", "hevc"):
            return None
        hevc = tag.codec == "hevc"
        if tag.packet_type == PACKET_SEQUENCE_HEADER:
            record = parse_hvcc(tag.data) if hevc else parse_avcc(tag.data)
            config = VideoConfig(codec=tag.codec, length_size=record.length_size, parameter_sets=record.parameter_sets)
            if config != self.video_config:
                self.video_config = config
                self.config_changed = True
                sets = record.parameter_sets
                self._annexb_sets = _START + _START.join(sets) if sets else b""
            return None
        if tag.packet_type != PACKET_FRAME:
            return None
        current = self.video_config
        if current is None or current.codec != tag.codec:
            raise ParseError(f"{tag.codec} frame before its sequence header", offset=0)
        nals = split_length_prefixed(tag.data, current.length_size)
        if not nals:
            return None
        data = _START + _START.join(nals)
        if tag.keyframe and self._annexb_sets:
            wanted = _PARAMETER_TYPES[tag.codec]
            if not any(_nal_type(hevc, nal) in wanted for nal in nals):
                data = self._annexb_sets + data
        dts = self._ticks("video", timestamp)
        return new_media_frame(tag.codec, data, dts + tag.composition_time * 90, dts, tag.keyframe, 0)

    def audio(self, timestamp: int, payload: bytes) -> MediaFrame | None:
        """One audio message/tag body; a frame, or None for the AAC sequence header and unsupported codecs.

        Raises:
            ParseError: malformed tag or AudioSpecificConfig.
        """
        tag = parse_audio_tag(payload)
        if tag.codec == "aac":
            if tag.packet_type == PACKET_SEQUENCE_HEADER:
                config = parse_aac_config(tag.data)
                if config != self.audio_config or self.audio_codec != "aac":
                    self.audio_config = config
                    self.audio_codec = "aac"
                    self.audio_extradata = tag.data
                    self.config_changed = True
                return None
            if self.audio_config is None:
                raise ParseError("AAC frame before its AudioSpecificConfig", offset=0)
        elif tag.codec in ("pcm_alaw", "pcm_mulaw"):
            if self.audio_codec != tag.codec:
                self.audio_codec = tag.codec
                self.audio_config = None
                self.config_changed = True
        else:
            return None
        if not tag.data:
            return None
        ticks = self._ticks("audio", timestamp)
        return new_media_frame(tag.codec, tag.data, ticks, ticks, True, 0)


class FlvMuxer:
    """Turns engine `MediaFrame`s into FLV tag bodies with millisecond timestamps (see the module docstring).

    Args:
        video_codec: "h264", "hevc" or None.
        parameter_sets: the video track's parameter sets (may be empty: taken from the first keyframe then).
        audio_codec: "aac", "pcm_alaw", "pcm_mulaw" or None.
        audio_extradata: the AAC AudioSpecificConfig.
        enhanced_hevc: send HEVC with the Enhanced RTMP FourCC header (True) or legacy codec id 12.
    """

    def __init__(
        self,
        *,
        video_codec: str | None,
        parameter_sets: tuple[bytes, ...] = (),
        audio_codec: str | None = None,
        audio_extradata: bytes = b"",
        enhanced_hevc: bool = True,
    ) -> None:
        if video_codec not in (None, "h264", "hevc"):
            raise LocalProtocolError(f"FLV cannot carry video codec {video_codec!r}")
        if audio_codec not in (None, "aac", "pcm_alaw", "pcm_mulaw"):
            raise LocalProtocolError(f"FLV cannot carry audio codec {audio_codec!r}")
        self.video_codec = video_codec
        self.audio_codec = audio_codec
        self._sets = tuple(parameter_sets)
        self._asc = audio_extradata
        self._enhanced = enhanced_hevc
        self._video_started = False
        self._audio_started = False
        self._base: int | None = None

    def _enhanced_for(self, codec: str) -> bool:
        return self._enhanced and codec == "hevc"

    def _ms(self, ticks: int) -> int:
        if self._base is None:
            self._base = ticks
        return max(0, (ticks - self._base) // 90)

    def push(self, frame: MediaFrame) -> list[tuple[str, int, bytes]]:
        """Tags for one frame as (kind, timestamp ms, body): sequence headers first; nothing before the first
        video keyframe (when there is video); frames of other codecs are skipped."""
        codec = frame.codec
        if codec == self.video_codec:
            return self._video(frame)
        if codec == self.audio_codec and (self._video_started or self.video_codec is None):
            return self._audio(frame)
        return []

    def _video(self, frame: MediaFrame) -> list[tuple[str, int, bytes]]:
        codec = self.video_codec
        assert codec is not None
        out: list[tuple[str, int, bytes]] = []
        if not self._video_started:
            if not frame.keyframe:
                return out
            sets = self._sets
            if not sets:
                wanted = _PARAMETER_TYPES[codec]
                hevc = codec == "hevc"
                sets = tuple(n for n in split_annexb(frame.data) if _nal_type(hevc, n) in wanted)
            try:
                record = build_hvcc(sets) if codec == "hevc" else build_avcc(sets)
            except LocalProtocolError:
                return out  # no SPS yet: wait for a keyframe that carries one
            dts = frame.dts if frame.dts is not None else frame.pts
            if dts is None:
                return out
            ms = self._ms(dts)
            out.append(
                (
                    "video",
                    ms,
                    build_video_tag(codec, PACKET_SEQUENCE_HEADER, record, enhanced=self._enhanced_for(codec)),
                )
            )
            if self.audio_codec == "aac" and self._asc:
                out.append(("audio", ms, build_audio_tag("aac", self._asc, packet_type=PACKET_SEQUENCE_HEADER)))
                self._audio_started = True
            self._video_started = True
        dts = frame.dts if frame.dts is not None else frame.pts
        if dts is None:
            return out
        pts = frame.pts if frame.pts is not None else dts
        ms = self._ms(dts)
        cts = (pts - dts) // 90
        body = annexb_to_length_prefixed(frame.data, skip_types=_SKIP_TYPES[codec], hevc=codec == "hevc")
        if body:
            tag = build_video_tag(
                codec,
                PACKET_FRAME,
                body,
                keyframe=frame.keyframe,
                composition_time=max(-(1 << 23), min((1 << 23) - 1, cts)),
                enhanced=self._enhanced_for(codec),
            )
            out.append(("video", ms, tag))
        return out

    def _audio(self, frame: MediaFrame) -> list[tuple[str, int, bytes]]:
        codec = self.audio_codec
        assert codec is not None
        stamp = frame.pts if frame.pts is not None else frame.dts
        if stamp is None:
            return []
        out: list[tuple[str, int, bytes]] = []
        ms = self._ms(stamp)
        if codec == "aac" and not self._audio_started:
            if not self._asc:
                return out
            out.append(("audio", ms, build_audio_tag("aac", self._asc, packet_type=PACKET_SEQUENCE_HEADER)))
            self._audio_started = True
        out.append(("audio", ms, build_audio_tag(codec, frame.data)))
        return out
