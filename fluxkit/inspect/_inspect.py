"""`inspect_file`: read a media file in chunks and report its streams.

Strategy: sniff the format from the first chunk (`_sniff`), then stream the whole file through one pipeline per
format, each a feeder over the sans-IO parsers (Annex-B splitter + access-unit assembler; PsDemuxer; the RFC 4571
deframer + RTP demux; the capture reader + IP decoding + TCP reassembly + RTP demux). Frames go to a `Collector`
that keeps running figures only and hands each frame to the caller's callback, so memory is bounded by the chunk
size plus the parsers' own bounded buffers, whatever the file size. A file that yields no stream within
`probe_limit` bytes is abandoned early, so a huge non-media file ends quickly.

Captures may also carry SIP (GB28181 signalling): the capture pipeline's `SipAnalyzer` lists transactions,
sessions, MANSCDP bodies and registrations, and ties each RTP stream to its session (`"session"`, `"flags"`). A
capture with signalling and no media is valid input.

Errors: `OSError` for a file that cannot be read; `RemoteProtocolError` (a `ParseError` where an offset is known)
for a file that is not media or holds none (neither streams nor SIP). Damage after media was found is not an
error: reading stops there and the report carries a warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

import attrs

from fluxkit.errors import ProtocolError, RemoteProtocolError
from fluxkit.inspect._capture import CapturePipeline
from fluxkit.inspect._rtp import RtpDemux
from fluxkit.inspect._sniff import SNIFF_SIZE, sniff
from fluxkit.inspect._streams import Collector, FrameInfo, StreamStats
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import AccessUnit, AccessUnitAssembler, AnnexBSplitter
from fluxkit.protocols.ps import PsDemuxer
from fluxkit.protocols.rtp import TcpRtpDeframer

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_PROBE_LIMIT", "InspectReport", "inspect_file"]

#: Bytes read from the file at a time.
DEFAULT_CHUNK_SIZE = 1 << 20
#: Bytes read without finding any stream before the file is declared to hold no media.
DEFAULT_PROBE_LIMIT = 64 << 20
#: Frame rate assumed for raw Annex-B without VUI timing (3600 ticks of 90 kHz per access unit).
ASSUMED_FPS = 25


@attrs.frozen(kw_only=True, slots=True)
class InspectReport:
    """What `inspect_file` found.

    Attributes:
        path: the file inspected.
        format: "pcap", "pcapng", "mpeg-ps", "rtp" (RFC 4571 dump), "h264" or "hevc".
        streams: one summary dict per stream (the objects of the JSON summary line).
        warnings: damage found after media was read (reading stopped there), skipped packets...
        counters: format-specific counts (captured packets, IP fragments skipped, malformed packets, ...).
        sip: for captures, the signalling found: {"transactions", "sessions", "messages", "registrations",
            "keepalives"} (see `_sip.SipAnalyzer.summary`); None for other formats.
    """

    path: str
    format: str
    streams: list[dict[str, Any]]
    warnings: list[str]
    counters: dict[str, int]
    sip: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The final JSON line: `{"type": "summary", "streams": [...], ...}`."""
        out: dict[str, Any] = {
            "type": "summary",
            "file": self.path,
            "format": self.format,
            "streams": self.streams,
            "warnings": self.warnings,
            "counters": self.counters,
        }
        if self.sip is not None:
            out["sip"] = self.sip
        return out


class _Pipeline(Protocol):
    counters: dict[str, int]
    warnings: list[str]

    def feed(self, data: bytes) -> None: ...

    def flush(self) -> None: ...


class _AnnexBPipeline:
    """Raw H.264/H.265 byte stream: no timestamps, so one access unit per 1/fps (VUI rate, else 25 fps)."""

    def __init__(self, codec: str, collector: Collector) -> None:
        self.codec = codec
        self.collector = collector
        self.counters: dict[str, int] = {}
        self.warnings: list[str] = []
        self._splitter = AnnexBSplitter()
        # Inspect reports the stream as it is: do not insert parameter sets into keyframes.
        self._assembler = AccessUnitAssembler(codec, insert_parameter_sets=False)
        self._stream: StreamStats | None = None
        self._tick = 0
        self._count = 0

    def feed(self, data: bytes) -> None:
        for nal in self._splitter.feed(data):
            self._nal(nal)

    def flush(self) -> None:
        for nal in self._splitter.flush():
            self._nal(nal)
        for au in self._assembler.flush():
            self._emit(au)
        self.counters["skipped_bytes"] = self._splitter.skipped_bytes
        self.counters["dropped_nals"] = self._assembler.dropped_nals

    def _nal(self, nal: bytes) -> None:
        for au in self._assembler.feed(nal):
            self._emit(au)

    def _emit(self, au: AccessUnit) -> None:
        if self._stream is None:
            info = self._assembler.parameter_sets.sps_info()
            fps = info.fps if info is not None and info.fps else ASSUMED_FPS
            self._tick = max(1, round(90_000 / fps))
            self._stream = self.collector.new_stream(kind="video", codec=self.codec, timestamps="assumed")
        ts = self._count * self._tick
        self._count += 1
        frame = MediaFrame(codec=self.codec, data=au.annexb, pts=ts, dts=ts, keyframe=au.keyframe)
        self.collector.frame(self._stream, frame)


class _PsPipeline:
    """MPEG-PS file: PsDemuxer frames, one stream per (stream_id, codec)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.counters: dict[str, int] = {}
        self.warnings: list[str] = []
        self._demuxer = PsDemuxer()
        self._streams: dict[tuple[int, str], StreamStats] = {}

    def feed(self, data: bytes) -> None:
        self._frames(self._demuxer.feed(data))

    def flush(self) -> None:
        self._frames(self._demuxer.flush())

    def _frames(self, frames: list[MediaFrame]) -> None:
        for frame in frames:
            key = (frame.stream_id, frame.codec)
            stream = self._streams.get(key)
            if stream is None:
                stream = self.collector.new_stream(kind=frame.kind, codec=frame.codec, ts_bits=33)
                self._streams[key] = stream
            self.collector.frame(stream, frame)


class _RtpDumpPipeline:
    """RTP packets stored back to back in RFC 4571 framing (2-byte length before each)."""

    def __init__(self, collector: Collector) -> None:
        self.counters: dict[str, int] = {}
        self.warnings: list[str] = []
        self._deframer = TcpRtpDeframer()
        self._demux = RtpDemux(collector)
        self._flow = ("file", b"", 0, b"", 0)

    def feed(self, data: bytes) -> None:
        for unit in self._deframer.feed(data):
            # No capture clock in a dump: arrival time is unknown, so jitter is not meaningful (reported as 0).
            self._demux.unit(self._flow, unit, 0.0)

    def flush(self) -> None:
        for unit in self._deframer.flush():
            self._demux.unit(self._flow, unit, 0.0)
        self._demux.flush()
        self.counters.update(self._demux.counters)
        self.counters["skipped_bytes"] = self._deframer.skipped_bytes
        self.counters["resyncs"] = self._deframer.resyncs


def _pipeline(kind: str, collector: Collector) -> _Pipeline:
    if kind in ("h264", "hevc"):
        return _AnnexBPipeline(kind, collector)
    if kind == "mpeg-ps":
        return _PsPipeline(collector)
    if kind == "rtp":
        return _RtpDumpPipeline(collector)
    return CapturePipeline(collector)


def inspect_file(
    path: str | os.PathLike[str],
    *,
    on_frame: Callable[[FrameInfo], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    probe_limit: int = DEFAULT_PROBE_LIMIT,
) -> InspectReport:
    """Inspect one media file: raw H.264/H.265, MPEG-PS, an RFC 4571 RTP dump, or a pcap/pcapng capture.

    Args:
        path: the file.
        on_frame: called with each frame as it is read (in file order); frames are not kept otherwise.
        chunk_size: bytes read at a time.
        probe_limit: bytes read without finding any stream before giving up.

    Returns:
        The report; its `streams` list is never empty, except for a capture that holds SIP signalling only.

    Raises:
        OSError: the file cannot be opened or read (missing, a directory, no permission, I/O error).
        RemoteProtocolError: the file is not a recognised media file, or no media (nor SIP, for a capture) was
            found in it (a `ParseError` when the failing byte offset is known).
    """
    name = os.fspath(path)
    collector = Collector(on_frame)
    warnings: list[str] = []
    with open(name, "rb") as f:
        head = f.read(max(chunk_size, SNIFF_SIZE))
        kind = sniff(head[:SNIFF_SIZE], name)
        pipeline = _pipeline(kind, collector)
        sip = pipeline.sip if isinstance(pipeline, CapturePipeline) else None

        def found() -> bool:
            return bool(collector.streams) or (sip is not None and sip.seen)

        total = 0
        chunk = head
        flushed = False
        try:
            while chunk:
                total += len(chunk)
                pipeline.feed(chunk)
                if not found() and total >= probe_limit:
                    raise RemoteProtocolError(f"no media found in the first {total} bytes ({kind})")
                chunk = f.read(chunk_size)
            flushed = True
            pipeline.flush()
        except ProtocolError as exc:
            if not found():
                raise
            warnings.append(f"stopped at damage: {exc}")
            if not flushed:
                try:
                    pipeline.flush()
                except ProtocolError as again:
                    warnings.append(f"while finishing: {again}")
    warnings += pipeline.warnings
    if not found():
        raise RemoteProtocolError(f"no media streams found ({kind} file, {total} bytes read)")
    streams = [s.summary() for s in collector.streams]
    if sip is not None:
        sip.tie_streams(streams)
    return InspectReport(
        path=name,
        format=kind,
        streams=streams,
        warnings=warnings,
        counters=dict(pipeline.counters),
        sip=sip.summary() if sip is not None else None,
    )
