"""The thread-side segment writer: Annex-B / AAC frames in, one fragmented MP4 file out, no transcoding of video.

Strategy: PyAV remuxes (`movflags=frag_keyframe+empty_moov+default_base_moof`, `frag_duration` = one part), so
the file is `ftyp moov` followed by self-contained `moof mdat` fragments; every keyframe starts a fragment and no
fragment is longer than a part. The muxer writes through `_PartFile`, our own file object over a descriptor
opened with `O_CREAT|O_EXCL` on a hidden `.<name>.partial` name in the final directory, so we see every byte
leave FFmpeg: when a batch of frames made a fragment reach the file, it is `fdatasync`ed (`fsync_parts`) and the
frames in it count as durable. A crash then loses at most the fragment in progress. `finish` closes the muxer,
fsyncs the file and hashes it; renaming into place and indexing is the storage's job, after this returns.

Video parameters come from a *template*: PyAV's Annex-B demuxer reads the first keyframe (parameter sets
prepended), and its codec parameters (extradata, size) are copied, so FFmpeg's MP4 muxer writes avcC/hvcC and
converts the Annex-B packets to length-prefixed NAL units itself. AAC is copied with its AudioSpecificConfig and
Opus (WebRTC) as received; G.711 (which the MP4 muxer refuses) is decoded and encoded to AAC, the only transcoding
done.

Not thread-safe: one thread at a time (the recorder's per-stream worker calls it sequentially).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import av

from fluxkit.engine import Track

from ._fmp4 import complete_length, fragments, keyframe_fragments, scan_boxes, track_timescales

__all__ = ["FinishedSegment", "MuxItem", "SegmentMuxer", "salvage_partial"]

# The one place that writes segment bytes: a seam for fault-injection tests (ENOSPC, EROFS, EACCES).
_os_write = os.write
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@attrs.frozen(kw_only=True, slots=True)
class FinishedSegment:
    """A segment file closed and fsynced under its partial name, ready to be renamed into place and indexed.

    Attributes:
        stream_id: the stream.
        partial_path: where it is now.
        final_path: where it goes.
        start_us: wall time (UTC µs) of its first frame.
        media_us: media duration in µs.
        size: bytes.
        sha256: hex digest.
        run_id: timeline run.
        frames: video frames.
        keyframes: (seconds from start, byte offset of its fragment) pairs.
        wall_delta_us: wall clock at close minus (start + media duration): drift and latency, for audit.
    """

    stream_id: str
    partial_path: Path
    final_path: Path
    start_us: int
    media_us: int
    size: int
    sha256: str
    run_id: int
    frames: int
    keyframes: tuple[tuple[float, int], ...]
    wall_delta_us: int = 0


# One frame for the muxer: (is_video, data, pts, dts, keyframe, received_at) with pts/dts in the track's clock,
# counted from the segment start. A plain tuple: built once per frame on the hot path.
MuxItem = tuple[bool, bytes, int, int, bool, float]


class _PartFile(io.RawIOBase):
    """The file object FFmpeg writes through: raw `os.write` on an O_EXCL descriptor, tracking the offset."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.pos = 0
        self.end = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        total = len(view)
        done = 0
        while done < total:
            done += _os_write(self.fd, view[done:])
        self.pos += total
        self.end = max(self.end, self.pos)
        return total

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = os.lseek(self.fd, offset, whence)
        return self.pos

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        super().close()


def _param_prefix(track: Track) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + ps for ps in track.parameter_sets)


def _aac_config(track: Track) -> bytes:
    if track.extradata:
        return track.extradata
    rate = track.sample_rate or track.clock_rate
    index = _AAC_RATES.index(rate) if rate in _AAC_RATES else 11
    channels = track.channels or 1
    # AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1): AAC LC (2), sampling index, channel configuration.
    return bytes([(2 << 3) | (index >> 1), ((index & 1) << 7) | (channels << 3)])


def _adts(config: bytes, frame: bytes) -> bytes:
    # An ADTS header (ISO/IEC 14496-3 §1.A.2) so PyAV's AAC demuxer can describe the stream for the template.
    obj = config[0] >> 3
    index = ((config[0] & 7) << 1) | (config[1] >> 7)
    channels = (config[1] >> 3) & 15
    n = len(frame) + 7
    head = bytes(
        [0xFF, 0xF1, ((obj - 1) << 6) | (index << 2) | (channels >> 2), ((channels & 3) << 6) | (n >> 11),
         (n >> 3) & 0xFF, ((n & 7) << 5) | 0x1F, 0xFC]
    )  # fmt: skip
    return head + frame


class SegmentMuxer:
    """Writes one segment. Made on the worker thread with the segment's first frame (a video keyframe).

    Args:
        partial_path: the hidden temp name (created with O_EXCL; an existing file is an error).
        final_path: the name it gets once finished (kept in the result).
        video: the video track.
        audio: the audio track to record, or None.
        first_keyframe: Annex-B data of the first keyframe (its parameter sets describe the stream).
        first_audio: one audio frame when `audio` is AAC (its template), else ignored.
        part_duration: seconds per fragment.
        fsync_parts: fdatasync each fragment as it reaches the file.
        comment: metadata stored in the file (`comment` tag; JSON with the stream id and start time).
    """

    def __init__(
        self,
        *,
        stream_id: str,
        partial_path: Path,
        final_path: Path,
        start_us: int,
        run_id: int,
        video: Track,
        audio: Track | None,
        first_keyframe: bytes,
        part_duration: float,
        fsync_parts: bool,
        comment: str,
    ) -> None:
        self.stream_id = stream_id
        self.partial_path = partial_path
        self.final_path = final_path
        self.start_us = start_us
        self.run_id = run_id
        self._fsync_parts = fsync_parts
        self._file = _PartFile(partial_path)
        self._synced = 0
        self._pending_times: list[float] = []
        self.frames = 0
        self._last_dts = 0
        self._last_step = 0
        self._key_dts: list[int] = []
        self._video_rate = video.clock_rate
        try:
            self._out = av.open(
                self._file,
                "w",
                format="mp4",
                options={
                    "movflags": "frag_keyframe+empty_moov+default_base_moof",
                    "frag_duration": str(max(1, round(part_duration * 1_000_000))),
                    "flush_packets": "1",
                    "max_interleave_delta": str(max(1, round(part_duration * 500_000))),
                },
            )
            self._out.metadata["comment"] = comment
            fmt = "h264" if video.codec == "h264" else "hevc"
            with av.open(io.BytesIO(_param_prefix(video) + first_keyframe), format=fmt) as probe:
                template = probe.streams.video[0]
                self._video = self._out.add_stream_from_template(template)
            self._video.time_base = Fraction(1, video.clock_rate)
            self._vtb = Fraction(1, video.clock_rate)
            self._audio: Any = None
            self._audio_mode = ""
            if audio is not None:
                self._add_audio(audio)
        except BaseException:
            self._file.close()
            raise

    def _add_audio(self, audio: Track) -> None:
        self._atb = Fraction(1, audio.clock_rate)
        if audio.codec == "aac":
            config = _aac_config(audio)
            with av.open(io.BytesIO(_adts(config, b"\x00" * 8) * 2), format="aac") as probe:
                self._audio = self._out.add_stream_from_template(probe.streams.audio[0])
            context = self._audio.codec_context
            context.extradata = config
            # The probe saw silence only: state rate and layout from the config (ISO/IEC 14496-3 §1.6.2.1).
            index = ((config[0] & 7) << 1) | (config[1] >> 7)
            context.sample_rate = audio.sample_rate or (_AAC_RATES[index] if index < len(_AAC_RATES) else 8000)
            context.layout = "stereo" if (audio.channels or (config[1] >> 3) & 15) == 2 else "mono"
            self._audio.time_base = self._atb
            self._audio_mode = "copy"
        elif audio.codec == "opus":
            # Opus packets are copied as received (ISO/IEC 14496-12 Opus mapping, 48 kHz timescale). The MP4
            # muxer needs an OpusHead (RFC 7845 §5.1) for the dOps box and we have no Opus stream to template:
            # an unused libopus encoder context supplies it when the header is written (channel count from the
            # track, pre-skip 312). It never encodes anything.
            channels = audio.channels or 2
            self._audio = self._out.add_stream("libopus", rate=48000, layout="stereo" if channels == 2 else "mono")
            self._audio.time_base = self._atb
            self._audio_mode = "copy"
        elif audio.codec in ("pcm_alaw", "pcm_mulaw"):
            # The MP4 muxer has no G.711 entry: decode (trivial) and encode AAC; the only transcoding we do.
            rate = audio.sample_rate or 8000
            decoder: Any = av.CodecContext.create(audio.codec, "r")
            decoder.sample_rate = rate
            decoder.layout = "mono"
            decoder.format = "s16"
            self._decoder = decoder
            self._audio = self._out.add_stream("aac", rate=rate, layout="mono")
            self._audio.time_base = Fraction(1, rate)
            self._audio_rate = rate
            self._audio_next = 0
            self._audio_mode = "g711"

    def write(self, items: list[MuxItem]) -> list[float]:
        """Mux `items`; returns the receive times of the frames that became durable (their part reached disk)."""
        out = self._out
        video = self._video
        vtb = self._vtb
        pending = self._pending_times
        for is_video, data, pts, dts, key, received in items:
            if is_video:
                packet = av.Packet(data)
                packet.stream = video
                packet.time_base = vtb
                packet.pts = pts
                packet.dts = dts
                packet.is_keyframe = key
                if key:
                    self._key_dts.append(dts)
                if dts > self._last_dts:
                    self._last_step = dts - self._last_dts
                    self._last_dts = dts
                self.frames += 1
                out.mux(packet)
            elif self._audio_mode == "copy":
                packet = av.Packet(data)
                packet.stream = self._audio
                packet.time_base = self._atb
                packet.pts = pts
                packet.dts = dts
                out.mux(packet)
            elif self._audio_mode == "g711":
                self._transcode(data, pts)
            pending.append(received)
        return self._sync_if_written()

    def _transcode(self, data: bytes, pts: int) -> None:
        packet = av.Packet(data)
        for frame in self._decoder.decode(packet):
            frame.pts = None
            for encoded in self._audio.encode(frame):
                self._out.mux(encoded)

    def _sync_if_written(self) -> list[float]:
        written = self._file.end
        if written == self._synced:
            return []
        if self._fsync_parts:
            os.fdatasync(self._file.fd)
        self._synced = written
        # The fragment just written holds the frames queued before the last one that triggered it; count all but
        # the newest as durable (close enough for latency figures, exact at fragment boundaries).
        done = self._pending_times[:-1]
        self._pending_times = self._pending_times[-1:]
        return done

    def finish(self, end_dts: int | None, wall_now_us: int) -> tuple[FinishedSegment, list[float]]:
        """Close the muxer, fsync the file, hash it. `end_dts`: the next segment's first dts when known."""
        if self._audio_mode == "g711":
            for encoded in self._audio.encode(None):
                self._out.mux(encoded)
        self._out.close()
        fd = self._file.fd
        os.fsync(fd)
        durable = self._pending_times
        self._pending_times = []
        self._file.close()
        if end_dts is None or end_dts <= self._last_dts:
            end_dts = self._last_dts + self._last_step
        media_us = round(end_dts * 1_000_000 / self._video_rate)
        size, digest, keyframes = describe_file(self.partial_path, set(self._key_dts), self._video_rate)
        finished = FinishedSegment(
            stream_id=self.stream_id,
            partial_path=self.partial_path,
            final_path=self.final_path,
            start_us=self.start_us,
            media_us=media_us,
            size=size,
            sha256=digest,
            run_id=self.run_id,
            frames=self.frames,
            keyframes=keyframes,
            wall_delta_us=wall_now_us - (self.start_us + media_us),
        )
        return finished, durable

    def abort(self) -> int:
        """Stop after a write error: close what can be closed; returns the playable length left (see salvage)."""
        with contextlib.suppress(OSError, av.FFmpegError, ValueError):
            self._out.close()
        self._file.close()
        return salvage_partial(self.partial_path)


def describe_file(
    path: Path, key_dts: set[int] | None = None, video_rate: int = 90000
) -> tuple[int, str, tuple[tuple[float, int], ...]]:
    """(size, sha256 hex, keyframe fragments) of a finished segment file.

    Keyframe fragments are those whose video tfdt is one of `key_dts` (video clock, known while recording); with
    `key_dts` None (a salvaged or adopted file) they come from the fragments' sync-sample flags, since 1 s parts
    split a GOP into fragments that do not start at a keyframe.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        if key_dts is None:
            return size, digest.hexdigest(), tuple(keyframe_fragments(f, size, track_id=1))
        boxes = scan_boxes(f, size)
        scale = track_timescales(f, boxes).get(1, video_rate)
        keys: list[tuple[float, int]] = []
        for fragment in fragments(f, boxes):
            base = fragment.base_times.get(1)
            if base is not None and round(base * video_rate / scale) in key_dts:
                keys.append((base / scale, fragment.offset))
    return size, digest.hexdigest(), tuple(keys)


def salvage_partial(path: Path) -> int:
    """Cut a partial segment back to its last complete fragment (fsynced); returns the new length.

    A file with no complete header is removed and 0 is returned.
    """
    try:
        with open(path, "r+b") as f:
            size = os.fstat(f.fileno()).st_size
            keep = complete_length(scan_boxes(f, size), size)
            if keep and not any(b.type == b"moof" for b in scan_boxes(f, keep)):
                keep = 0  # a header with no fragment holds no frame
            if keep:
                if keep < size:
                    f.truncate(keep)
                os.fsync(f.fileno())
    except FileNotFoundError:
        return 0
    if not keep:
        try:
            os.unlink(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
    return keep


def wall_now_us() -> int:
    """The wall clock in UTC µs (the recorder's default clock)."""
    return time.time_ns() // 1000
