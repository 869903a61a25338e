"""Live fragmented MP4 for Media Source Extensions: Annex-B access units in, `init` + `moof`/`mdat` bytes out.

Strategy: a browser's `SourceBuffer` wants one init segment (`ftyp moov`) and then media segments (`moof mdat`);
we write those boxes ourselves (`_boxes`) because this runs per frame: PyAV's muxer would cost a container and a
packet object per frame. The only per-frame work is splitting the access unit at its start codes (`bytes.find`
inside `split_annexb`) and prefixing each NAL unit with its 4-byte length (ISO/IEC 14496-15 §5.3.2 / §8.3.2).

Timestamps: frames carry raw 32-bit media-clock ticks (RTP style) that may wrap; they are unwrapped (a step is
the signed 32-bit difference) and rebased so the first frame has decode time 0. Each fragment's `tfdt` is the
true decode time of its first frame, so a sample duration guessed for the last frame of a fragment (the previous
frame step, since the next frame is not known yet) never accumulates drift.

One video track per init segment (MSE allows several, but one keeps the browser side simple): audio frames are
ignored by `live_fmp4`.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncGenerator, Sequence

import trio

from fluxkit.engine import Track, VideoEngine
from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import parse_sps, split_annexb

from ._boxes import NON_SYNC_FLAGS, SYNC_FLAGS, avcc, hvcc, init_segment, media_fragment

__all__ = [
    "DEFAULT_MAX_FRAGMENT_BYTES",
    "DEFAULT_MAX_FRAGMENT_FRAMES",
    "LiveFmp4Muxer",
    "annexb_to_lengths",
    "live_fmp4",
]

#: Largest fragment `LiveFmp4Muxer.fragment` accepts (bytes of sample data).
DEFAULT_MAX_FRAGMENT_BYTES = 32 * 1024 * 1024
#: Frames `live_fmp4` puts in one fragment at most (1: lowest latency).
DEFAULT_MAX_FRAGMENT_FRAMES = 1

_LEN = struct.Struct(">I")
_WRAP = 1 << 32
_HALF = 1 << 31


def annexb_to_lengths(data: bytes) -> bytes:
    """Annex-B access unit -> the same NAL units each prefixed by a 4-byte big-endian length (MP4 sample)."""
    pack = _LEN.pack
    return b"".join([piece for nal in split_annexb(data) for piece in (pack(len(nal)), nal)])


def _parameter_sets(codec: str, nals: Sequence[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(VPS, SPS, PPS) lists from NAL units, first occurrence of each distinct unit kept."""
    vps: list[bytes] = []
    sps: list[bytes] = []
    pps: list[bytes] = []
    for nal in nals:
        if not nal:
            continue
        if codec == "h264":
            kind = nal[0] & 0x1F
            target = sps if kind == 7 else pps if kind == 8 else None
        else:
            kind = (nal[0] >> 1) & 0x3F
            target = vps if kind == 32 else sps if kind == 33 else pps if kind == 34 else None
        if target is not None and nal not in target:
            target.append(nal)
    return vps, sps, pps


class LiveFmp4Muxer:
    """Fragmented MP4 writer for one H.264 or H.265 track, for MSE.

    Use `init_segment()` once, then `fragment(frames)` for each batch of frames (decode order; the first batch
    must start with a keyframe). Not thread-safe; one instance per viewer stream.

    Args:
        track: the video track ("h264" or "hevc"); its `parameter_sets` make the avcC/hvcC.
        parameter_sets: parameter sets to use instead of (or when missing from) the track, e.g. taken from the
            first keyframe's in-band NAL units.
        track_id: the MP4 track id.
        max_fragment_bytes: largest sample data per fragment; more raises LocalProtocolError.

    Raises:
        LocalProtocolError: unsupported codec or missing parameter sets. ParseError: a malformed SPS.
    """

    def __init__(
        self,
        track: Track,
        *,
        parameter_sets: Sequence[bytes] | None = None,
        track_id: int = 1,
        max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES,
    ) -> None:
        if track.codec not in ("h264", "hevc"):
            raise LocalProtocolError(f"live fMP4 supports h264 and hevc, not {track.codec!r}")
        self.track = track
        self.codec = track.codec
        self.track_id = track_id
        self.timescale = track.clock_rate
        self.max_fragment_bytes = max_fragment_bytes
        vps, sps, pps = _parameter_sets(track.codec, list(parameter_sets or ()) + list(track.parameter_sets))
        if not sps or not pps or (track.codec == "hevc" and not vps):
            raise LocalProtocolError(f"{track.codec} track without parameter sets: cannot write the init segment")
        info = parse_sps(track.codec, sps[0])
        self.width = track.width or info.width
        self.height = track.height or info.height
        #: RFC 6381 codec string, e.g. "avc1.64001e".
        self.codec_string = info.codec_string
        depths = {"chroma_format": info.chroma_format_idc, "bit_depth_luma": info.bit_depth_luma,
                  "bit_depth_chroma": info.bit_depth_chroma}  # fmt: skip
        self._config = avcc(sps, pps, **depths) if track.codec == "h264" else hvcc(vps, sps, pps, **depths)
        fps = track.fps or info.fps
        #: Duration given to the last frame of a fragment until a later frame tells the real step.
        self.default_duration = max(1, round(self.timescale / fps)) if fps else max(1, self.timescale // 25)
        self._sequence = 0
        self._origin: int | None = None  # raw dts of the first frame
        self._last_raw = 0
        self._last_dts = 0  # unwrapped, rebased dts of the last frame written
        self._step = self.default_duration

    @property
    def mime_type(self) -> str:
        """The MSE type, e.g. `video/mp4; codecs="avc1.64001e"` (for `MediaSource.isTypeSupported`)."""
        return f'video/mp4; codecs="{self.codec_string}"'

    def init_segment(self) -> bytes:
        """`ftyp` + `moov` (send first, once)."""
        return init_segment(
            codec=self.codec,
            config=self._config,
            width=self.width,
            height=self.height,
            timescale=self.timescale,
            track_id=self.track_id,
        )

    def _unwrap(self, raw: int) -> int:
        if self._origin is None:
            self._origin = raw
            self._last_raw = raw
            return 0
        step = (raw - self._last_raw) % _WRAP
        if step >= _HALF:
            step -= _WRAP  # a step back (reordering or a small clock correction), not a wrap
        self._last_raw = raw
        return self._last_dts + step

    def fragment(self, frames: Sequence[MediaFrame]) -> bytes:
        """One `moof` + `mdat` with `frames` (video frames of this track, decode order); b"" for no frames.

        Raises:
            LocalProtocolError: the first fragment does not start with a keyframe, or too much data.
        """
        if not frames:
            return b""
        if self._origin is None and not frames[0].keyframe:
            raise LocalProtocolError("the first fragment must start with a keyframe")
        times: list[tuple[int, int]] = []
        for frame in frames:
            raw = frame.dts if frame.dts is not None else frame.pts
            if raw is None:  # no timestamp at all: one frame step after the previous frame
                raw = (self._last_raw + self._step) % _WRAP if self._origin is not None else 0
            dts = self._unwrap(raw)
            self._last_dts = dts
            offset = (frame.pts - raw) % _WRAP if frame.pts is not None else 0
            times.append((dts, offset - _WRAP if offset >= _HALF else offset))
        payloads = [annexb_to_lengths(frame.data) for frame in frames]
        if sum(len(p) for p in payloads) > self.max_fragment_bytes:
            raise LocalProtocolError(f"fragment larger than max_fragment_bytes={self.max_fragment_bytes}")
        samples = []
        last = len(frames) - 1
        for i, frame in enumerate(frames):
            dts, cts = times[i]
            if i < last:
                duration = times[i + 1][0] - dts
                if duration > 0:
                    self._step = duration
                else:
                    duration = self._step
            else:
                duration = self._step
            samples.append((duration, len(payloads[i]), SYNC_FLAGS if frame.keyframe else NON_SYNC_FLAGS, cts))
        self._sequence += 1
        return media_fragment(
            sequence=self._sequence,
            track_id=self.track_id,
            base_time=max(0, times[0][0]),
            samples=samples,
            data=payloads,
        )


async def live_fmp4(
    engine: VideoEngine,
    stream_id: str,
    *,
    frames_per_fragment: int = DEFAULT_MAX_FRAGMENT_FRAMES,
    queue_size: int | None = None,
) -> AsyncGenerator[bytes, None]:
    """Follow a live stream as fragmented MP4: the init segment first, then a fragment per `frames_per_fragment`
    video frames, starting at a keyframe. Ends when the stream stops.

    The init segment is made when the first keyframe arrives, with the track's parameter sets or, when the track
    has none, those in the keyframe itself. Audio is skipped (one track per init segment). A lagging subscriber
    skips to the next keyframe (the engine's policy); the fragments then jump in time, which MSE accepts.

    Use with `contextlib.aclosing` so the subscription is closed when the consumer stops early.

    Raises:
        StreamNotFoundError: no such stream. LocalProtocolError: not an H.264/H.265 stream, or no parameter sets.
    """
    if frames_per_fragment < 1:
        raise LocalProtocolError("frames_per_fragment must be at least 1")
    tracks = next((s.tracks for s in engine.list_streams() if s.stream_id == stream_id), ())
    track = next((t for t in tracks if t.kind == "video"), None)
    if tracks and track is None:  # announced, and audio only: no frame would ever start the init segment
        raise LocalProtocolError(f"stream {stream_id!r} has no video track to send as fragmented MP4")
    subscription = engine.subscribe_stream(stream_id, queue_size=queue_size, name="live-fmp4")
    async with subscription:
        muxer: LiveFmp4Muxer | None = None
        batch: list[MediaFrame] = []
        async for frame in subscription:
            if frame.kind != "video":
                continue
            if muxer is None:
                if not frame.keyframe:
                    continue
                if track is None or track.codec != frame.codec:
                    track = Track(codec=frame.codec)
                muxer = LiveFmp4Muxer(track, parameter_sets=split_annexb(frame.data))
                yield muxer.init_segment()
            batch.append(frame)
            if len(batch) >= frames_per_fragment:
                data = muxer.fragment(batch)
                batch = []
                yield data
        if muxer is not None and batch:
            yield muxer.fragment(batch)
        await trio.lowlevel.checkpoint()
