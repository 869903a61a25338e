"""`FileSource`: an engine `Source` that plays a video file in a loop at real time, like a camera.

Strategy: the file is read once (in a worker thread) into a list of access units with 90 kHz timestamps relative
to the first one: raw Annex-B (`.h264`/`.264`/`.avc`, `.h265`/`.265`/`.hevc`) is split with the NAL-unit
feeders and stamped from the frame rate (the SPS VUI, else `fps`, else 25), one frame per access unit in
decoding order (pts = dts: raw elementary streams carry no timestamps, and camera streams have no B-frames);
anything else (MP4, MKV, TS...) is demuxed by PyAV without decoding and turned into Annex-B by FFmpeg's
`*_mp4toannexb` bitstream filter, keeping the container's pts/dts. Leading frames before the first keyframe are
dropped, so each loop starts on a keyframe.

Playback: frame `k` of loop `n` is sent at `start + (n * period + dts_k) / 90000` seconds with
`trio.sleep_until`, where `period` is the clip's duration (last dts plus one frame); its timestamps are shifted
by `n * period`, so pts/dts keep increasing across loops with a regular frame interval at the seam.
"""

from __future__ import annotations

import os
import random
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from fluxkit.engine import PermanentSourceError, Track
from fluxkit.errors import ProtocolError
from fluxkit.protocols._media import new_media_frame
from fluxkit.protocols.nalu import AccessUnitAssembler, ParameterSets, is_keyframe_au, split_annexb

if TYPE_CHECKING:
    from fluxkit.engine import SourceSession

__all__ = ["DEFAULT_FPS", "FileSource", "LoadedClip", "load_clip"]

#: Frame rate of a raw stream whose SPS does not say.
DEFAULT_FPS = 25.0

_ANNEXB_SUFFIXES = {".h264": "h264", ".264": "h264", ".avc": "h264", ".h265": "hevc", ".265": "hevc", ".hevc": "hevc"}


@attrs.frozen(kw_only=True, slots=True)
class LoadedClip:
    """A clip in memory, ready to loop.

    Attributes:
        track: the video track to publish.
        frames: (annexb, pts, dts, keyframe) per access unit in decoding order; dts starts at 0 (90 kHz).
        period: 90 kHz ticks of one pass (the first frame of the next loop comes this long after the first).
    """

    track: Track
    frames: tuple[tuple[bytes, int, int, bool], ...]
    period: int


def _track(codec: str, sets: ParameterSets, fps: float) -> Track:
    info = sets.sps_info()
    return Track(
        codec=codec,
        clock_rate=90000,
        width=info.width if info else None,
        height=info.height if info else None,
        fps=fps,
        parameter_sets=tuple(sets.nals()),
    )


def _load_annexb(path: Path, codec: str, fps: float | None) -> LoadedClip:
    assembler = AccessUnitAssembler(codec)
    units = []
    for nal in split_annexb(path.read_bytes()):
        units += assembler.feed(nal)
    units += assembler.flush()
    sets = assembler.parameter_sets
    info = sets.sps_info()
    rate = fps or (info.fps if info is not None and info.fps else None) or DEFAULT_FPS
    while units and not units[0].keyframe:
        units.pop(0)
    frames = []
    for k, unit in enumerate(units):
        stamp = round(k * 90000 / rate)
        frames.append((unit.annexb, stamp, stamp, unit.keyframe))
    return LoadedClip(track=_track(codec, sets, rate), frames=tuple(frames), period=round(len(frames) * 90000 / rate))


def _load_container(path: Path, fps: float | None) -> LoadedClip:
    import av
    import av.bitstream

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise PermanentSourceError(f"{path}: no video stream")
        stream = container.streams.video[0]
        name = stream.codec_context.name
        if name not in ("h264", "hevc"):
            raise PermanentSourceError(f"{path}: video codec {name} is not H.264 or H.265")
        rate = fps or (float(stream.average_rate) if stream.average_rate else DEFAULT_FPS)
        tb = stream.time_base or Fraction(1, 90000)
        bsf = av.bitstream.BitStreamFilterContext(f"{name}_mp4toannexb", stream)
        packets = []
        for packet in container.demux(stream):
            packets += bsf.filter(packet)
        packets += bsf.filter(None)
        sets = ParameterSets(name)
        raw: list[tuple[bytes, int | None, int | None, bool]] = []
        for packet in packets:
            data = bytes(packet)
            if not data:
                continue
            nals = split_annexb(data)
            for nal in nals:
                sets.update(nal)
            pts = None if packet.pts is None else round(packet.pts * tb * 90000)
            dts = None if packet.dts is None else round(packet.dts * tb * 90000)
            raw.append((data, pts, dts, bool(packet.is_keyframe) or is_keyframe_au(name, data)))
    while raw and not raw[0][3]:
        raw.pop(0)
    if not raw:
        raise PermanentSourceError(f"{path}: no keyframe")
    step = 90000 / rate
    frames = []
    first: int | None = None
    last_dts = 0
    for k, (data, pts, dts, key) in enumerate(raw):
        if dts is None:
            dts = pts if pts is not None else round(k * step)
        if first is None:
            first = dts
        d = dts - first
        d = max(d, last_dts + 1) if k else d  # dts must increase strictly
        last_dts = d
        p = d if pts is None else max(pts - first, d)
        frames.append((data, p, d, key))
    period = last_dts + round(step)
    return LoadedClip(track=_track(name, sets, rate), frames=tuple(frames), period=period)


def load_clip(path: str | os.PathLike[str], *, fps: float | None = None) -> LoadedClip:
    """Read a clip into memory (blocking: run it in a thread from async code).

    Args:
        path: an Annex-B file (by suffix) or any container PyAV opens with H.264/H.265 video.
        fps: frame rate for raw streams (default: the SPS's, else 25); overrides the container's for others.

    Raises:
        PermanentSourceError: the file cannot be read or holds no playable video.
    """
    file = Path(path)
    codec = _ANNEXB_SUFFIXES.get(file.suffix.lower())
    try:
        clip = _load_annexb(file, codec, fps) if codec else _load_container(file, fps)
    except PermanentSourceError:
        raise
    except (OSError, ProtocolError, ValueError) as exc:  # av.error.* derive from OSError / ValueError
        raise PermanentSourceError(f"{file}: {exc}") from exc
    if not clip.frames:
        raise PermanentSourceError(f"{file}: no access unit with a keyframe")
    return clip


class FileSource:
    """Plays a video file as a live stream: real-time pacing, looping, continuous timestamps.

    Args:
        path: the file (see `load_clip`; read in a worker thread on the first `run`), or a clip already loaded.
        loop: start again at the end (else `run` returns after one pass, which stops the stream).
        rng: when given, the first pts is a random 31-bit value (as a camera's clock would be); else 0.
        fps: frame rate override (raw streams default to the SPS's frame rate, else 25).

    `run` raises `PermanentSourceError` for a file that cannot be played (no retry helps).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | LoadedClip,
        *,
        loop: bool = True,
        rng: random.Random | None = None,
        fps: float | None = None,
    ) -> None:
        self.clip: LoadedClip | None = path if isinstance(path, LoadedClip) else None
        self.path = None if isinstance(path, LoadedClip) else Path(path)
        self.loop = loop
        self.fps = fps
        self.start_pts = rng.getrandbits(31) if rng is not None else 0
        #: Frames sent so far (all loops, all tries).
        self.frames_sent = 0
        #: Completed passes over the file.
        self.loops = 0

    async def run(self, session: SourceSession) -> None:
        """Publish the file's track, then send its frames at real time until cancelled (or the end, without loop)."""
        if self.clip is None:
            path = self.path
            assert path is not None
            self.clip = await trio.to_thread.run_sync(lambda: load_clip(path, fps=self.fps))
        clip = self.clip
        publisher = session.publish([clip.track])
        codec = clip.track.codec
        start = trio.current_time()
        base = self.start_pts
        elapsed = 0  # 90 kHz ticks of the passes already played
        while True:
            for data, pts, dts, key in clip.frames:
                await trio.sleep_until(start + (elapsed + dts) / 90000)
                publisher.send(new_media_frame(codec, data, base + elapsed + pts, base + elapsed + dts, key, 0))
                self.frames_sent += 1
            self.loops += 1
            if not self.loop:
                return
            elapsed += clip.period
