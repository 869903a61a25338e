"""Per-stream bookkeeping for `fluxkit inspect`: counters, GOP, frame rate, bitrate, resolution.

Strategy: everything is a running figure (counts, sums, min/max of unwrapped timestamps, the frame number of the
last keyframe), so memory stays constant however long the input is; frames are handed to a callback as they come
(the JSON-lines output) and never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from fluxkit.errors import ProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import nal_types as _nal_types
from fluxkit.protocols.nalu import parse_sps, split_annexb

__all__ = ["Collector", "FrameInfo", "RtpInfo", "StreamStats"]

_SPS_TYPES = {"h264": 7, "hevc": 33}


@attrs.frozen(kw_only=True, slots=True)
class FrameInfo:
    """One frame as `fluxkit inspect --json` prints it.

    Attributes:
        index: index of the stream in the summary.
        frame: number of the frame within its stream, from 0.
        stream: "video" or "audio".
        codec: FFmpeg codec name.
        pts: presentation timestamp as the source gave it (90 kHz for video and PS; the RTP clock for RTP audio).
        dts: decoding timestamp, or None.
        size: payload size in bytes (Annex-B with start codes for video).
        keyframe: IDR / IRAP access unit (always True for audio).
        nal_types: NAL unit types in the frame, in order ([] for audio).
        ssrc: RTP SSRC for frames read from RTP, else None.
    """

    index: int
    frame: int
    stream: str
    codec: str
    pts: int | None
    dts: int | None
    size: int
    keyframe: bool
    nal_types: list[int]
    ssrc: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this frame (`ssrc` only for RTP)."""
        out: dict[str, Any] = {
            "type": "frame",
            "index": self.index,
            "frame": self.frame,
            "stream": self.stream,
            "codec": self.codec,
            "pts": self.pts,
            "dts": self.dts,
            "size": self.size,
            "keyframe": self.keyframe,
            "nal_types": self.nal_types,
        }
        if self.ssrc is not None:
            out["ssrc"] = self.ssrc
        return out


@attrs.define(slots=True)
class RtpInfo:
    """RTP facts shared by the stream(s) one RTP source produces (PS over RTP may give video and audio).

    The counters are read when the summary is built, so the RTP layer keeps updating this one record.
    """

    ssrc: int
    pt: int
    transport: str  # "udp", "tcp" or "file"
    src: str = ""
    dst: str = ""
    payload: str = "unknown"  # what the packets carry: "ps", "h264", "hevc", "pcm_alaw", ...
    packets: int = 0
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    jitter: float = 0.0  # seconds (RFC 3550 §6.4.1 interarrival jitter)
    dropped_frames: int = 0  # frames the depacketizer gave up because a fragment was lost

    def to_json(self) -> dict[str, Any]:
        return {
            "ssrc": self.ssrc,
            "pt": self.pt,
            "transport": self.transport,
            "src": self.src,
            "dst": self.dst,
            "payload": self.payload,
            "packets": self.packets,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "jitter": round(self.jitter, 6),
            "dropped_frames": self.dropped_frames,
        }


class _Unwrapper:
    """Extends a wrapping timestamp (32-bit RTP, 33-bit PES) to a monotonic-ish integer line."""

    __slots__ = ("_bits", "_last", "_offset")

    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._last: int | None = None
        self._offset = 0

    def __call__(self, ts: int) -> int:
        modulus = 1 << self._bits
        ts &= modulus - 1
        last = self._last
        if last is not None:
            d = ts - last
            if d < -(modulus >> 1):
                self._offset += modulus
            elif d > modulus >> 1:
                self._offset -= modulus
        self._last = ts
        return ts + self._offset


class StreamStats:
    """Running figures of one elementary stream.

    Attributes:
        index: position in the summary.
        kind: "video" or "audio".
        codec: FFmpeg codec name ("unknown" for RTP whose payload could not be classified).
        clock: timestamp ticks per second.
        timestamps: "stream" (from the source) or "assumed" (raw Annex-B: a fixed frame rate was assigned).
        rtp: the RTP source's record, for streams read from RTP.
    """

    def __init__(
        self, *, index: int, kind: str, codec: str, clock: int, timestamps: str, rtp: RtpInfo | None, ts_bits: int
    ) -> None:
        self.index = index
        self.kind = kind
        self.codec = codec
        self.clock = clock
        self.timestamps = timestamps
        self.rtp = rtp
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.width: int | None = None
        self.height: int | None = None
        self.vui_fps: float | None = None
        self.profile: int | None = None
        self.level: int | None = None
        self.codec_string: str | None = None
        self._last_key: int | None = None
        self._gop_sum = 0
        self._gop_count = 0
        self._gop_max = 0
        self._unwrap = _Unwrapper(ts_bits)
        self._ts_min: int | None = None
        self._ts_max: int | None = None
        self._timed = 0  # frames that carried a timestamp (ffmpeg's PS muxer stamps only some)

    def add(self, frame: MediaFrame, nal_types: list[int]) -> None:
        """Count one frame."""
        n = self.frames
        self.frames = n + 1
        self.bytes += len(frame.data)
        if frame.keyframe:
            self.keyframes += 1
            if self._last_key is not None:
                gop = n - self._last_key
                self._gop_sum += gop
                self._gop_count += 1
                if gop > self._gop_max:
                    self._gop_max = gop
            self._last_key = n
        # PTS first: its range spans every frame whatever the reordering; DTS where a source gives no PTS.
        ts = frame.pts if frame.pts is not None else frame.dts
        if ts is not None:
            self._timed += 1
            t = self._unwrap(ts)
            if self._ts_min is None or t < self._ts_min:
                self._ts_min = t
            if self._ts_max is None or t > self._ts_max:
                self._ts_max = t
        if self.width is None and self.codec in _SPS_TYPES and _SPS_TYPES[self.codec] in nal_types:
            self._read_sps(frame.data)

    def _read_sps(self, data: bytes) -> None:
        want = _SPS_TYPES[self.codec]
        for nal in split_annexb(data):
            if not nal:
                continue
            t = nal[0] & 0x1F if self.codec == "h264" else (nal[0] >> 1) & 0x3F
            if t != want:
                continue
            try:
                info = parse_sps(self.codec, nal)
            except ProtocolError:
                return
            self.width, self.height = info.width, info.height
            self.vui_fps = info.fps
            self.profile, self.level = info.profile_idc, info.level_idc
            self.codec_string = info.codec_string
            return

    @property
    def fps(self) -> float | None:
        """From the SPS VUI when present, else from the timestamps."""
        if self.vui_fps:
            return self.vui_fps
        span = self.span_ticks
        if self.kind == "video" and span and self.frames > 1:
            return (self.frames - 1) * self.clock / span
        return None

    @property
    def span_ticks(self) -> int:
        if self._ts_min is None or self._ts_max is None:
            return 0
        return self._ts_max - self._ts_min

    @property
    def duration(self) -> float | None:
        """Seconds from the first to the last timestamp, plus one frame where the frame rate is known."""
        if self._timed < self.frames and self.vui_fps:
            return self.frames / self.vui_fps
        if self._ts_min is None:
            return None
        seconds = self.span_ticks / self.clock
        fps = self.fps
        if fps:
            seconds += 1 / fps
        elif self.frames > 1:
            seconds += seconds / (self.frames - 1)  # the last frame lasts as long as the average one (audio)
        return seconds or None

    def summary(self) -> dict[str, Any]:
        """The stream's object in the summary line."""
        duration = self.duration
        fps = self.fps
        gop = self._gop_sum / self._gop_count if self._gop_count else None
        out: dict[str, Any] = {
            "index": self.index,
            "stream": self.kind,
            "codec": self.codec,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "width": self.width,
            "height": self.height,
            "fps": round(fps, 3) if fps else None,
            "gop": round(gop, 2) if gop is not None and self.kind == "video" else None,
            "gop_max": (self._gop_max or None) if self.kind == "video" else None,
            "bytes": self.bytes,
            "duration": round(duration, 6) if duration else None,
            "bitrate": round(self.bytes * 8 / duration) if duration else None,
            "timestamps": self.timestamps,
        }
        if self.kind == "video":
            out["profile"] = self.profile
            out["level"] = self.level
            out["codec_string"] = self.codec_string
        if self.rtp is not None:
            out.update(self.rtp.to_json())
        return out


class Collector:
    """Owns the streams of one inspection and forwards each frame to `on_frame` as it comes."""

    def __init__(self, on_frame: Callable[[FrameInfo], None] | None = None) -> None:
        self.streams: list[StreamStats] = []
        self._on_frame = on_frame

    def new_stream(
        self,
        *,
        kind: str,
        codec: str,
        clock: int = 90_000,
        timestamps: str = "stream",
        rtp: RtpInfo | None = None,
        ts_bits: int = 64,
    ) -> StreamStats:
        stream = StreamStats(
            index=len(self.streams),
            kind=kind,
            codec=codec,
            clock=clock,
            timestamps=timestamps,
            rtp=rtp,
            ts_bits=ts_bits,
        )
        self.streams.append(stream)
        return stream

    def frame(self, stream: StreamStats, frame: MediaFrame) -> None:
        """Count `frame` in `stream` and report it."""
        if stream.kind == "video" and stream.codec in _SPS_TYPES:
            try:
                types = _nal_types(stream.codec, frame.data)
            except ProtocolError:
                types = []
        else:
            types = []
        number = stream.frames
        stream.add(frame, types)
        if self._on_frame is not None:
            self._on_frame(
                FrameInfo(
                    index=stream.index,
                    frame=number,
                    stream=stream.kind,
                    codec=stream.codec,
                    pts=frame.pts,
                    dts=frame.dts,
                    size=len(frame.data),
                    keyframe=frame.keyframe,
                    nal_types=types,
                    ssrc=stream.rtp.ssrc if stream.rtp is not None else None,
                )
            )
