"""Find the RTP streams among transport payloads and turn each into frames and statistics.

Strategy: a payload is a candidate only if it passes the cheap RTP header checks (version 2, length >= 12, and a
payload type outside 64..95, the range RFC 5761 §4 keeps free so RTCP (PT 200..204 with the marker bit) can share
the port). A (flow, SSRC) pair becomes a stream after `PROBATION` candidates in a row with the same payload type
and nearby sequence numbers (RFC 3550 §A.1 uses the same idea), so DNS, SIP, STUN or random UDP never become
streams; the candidates are kept and replayed. Each stream then runs arrival-order statistics
(`RtpSourceTracker`), a reorder buffer driven by the capture clock, and, once `_classify` has named the payload,
the matching depacketizer (H.264, H.265, PS over RTP) or, for G.711 and other static audio, one frame per packet.
Memory is bounded: candidates and streams are capped, and every stage below has its own bounded buffer.
"""

from __future__ import annotations

from fluxkit.errors import ProtocolError
from fluxkit.inspect._classify import AUDIO_PT, CLASSIFY_PACKETS, agrees, classify_payloads, strong_evidence
from fluxkit.inspect._ip import format_endpoint
from fluxkit.inspect._streams import Collector, RtpInfo, StreamStats
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp import ReorderBuffer, RtpDiscontinuity, RtpPacket, RtpSourceTracker, parse_rtp
from fluxkit.protocols.rtp.payload import H264Depacketizer, H265Depacketizer, PsOverRtpReceiver

__all__ = [
    "DEFAULT_MAX_CANDIDATES",
    "DEFAULT_MAX_SOURCES",
    "MAX_CLASSIFY_PACKETS",
    "PROBATION",
    "FlowKey",
    "RtpDemux",
]

#: (transport, source address, source port, destination address, destination port).
FlowKey = tuple[str, bytes, int, bytes, int]

#: Consecutive consistent packets a (flow, SSRC) needs to count as an RTP stream.
PROBATION = 3
#: (flow, SSRC) pairs on probation at once; the oldest is forgotten first.
DEFAULT_MAX_CANDIDATES = 1024
#: RTP streams followed at once; later ones are counted in `counters["rtp_sources_ignored"]`.
DEFAULT_MAX_SOURCES = 64
#: Packets held at most while the payload cannot be classified; then it is reported as "unknown".
MAX_CLASSIFY_PACKETS = 8 * CLASSIFY_PACKETS
# Largest sequence step between two probation packets (lost or reordered packets in between are fine).
_MAX_PROBATION_STEP = 100


class _Source:
    """One RTP stream: statistics, reordering, payload classification, depacketizing."""

    def __init__(self, demux: RtpDemux, key: FlowKey, first: RtpPacket) -> None:
        self.demux = demux
        transport, src, sport, dst, dport = key
        pt = first.payload_type
        audio = AUDIO_PT.get(pt)
        self.clock = audio[1] if audio else 90_000
        self.info = RtpInfo(
            ssrc=first.ssrc,
            pt=pt,
            transport=transport,
            src=format_endpoint(src, sport) if src else "",
            dst=format_endpoint(dst, dport) if dst else "",
        )
        self.tracker = RtpSourceTracker(clock_rate=self.clock)
        self.reorder = ReorderBuffer()
        self.codec: str | None = audio[0] if audio else None
        self.pending: list[RtpPacket] = []  # packets held until the payload is classified
        self.gaps_pending: list[int] = []  # positions in `pending` after which a gap was declared
        self.depacketizer: H264Depacketizer | H265Depacketizer | PsOverRtpReceiver | None = None
        self.streams: dict[tuple[int, str], StreamStats] = {}
        self._start()

    # -- input -------------------------------------------------------------------------------------------------

    def packet(self, packet: RtpPacket, now: float) -> None:
        self.tracker.update(packet, now)
        reorder = self.reorder
        timer = reorder.get_timer()
        if timer is not None and timer <= now:
            self._ordered(reorder.handle_timer(now))
        self._ordered(reorder.push(packet, now))

    def flush(self) -> None:
        self._ordered(self.reorder.flush())
        if self.codec is None:
            self._decide(classify_payloads(self.info.pt, [p.payload for p in self.pending]))
        dep = self.depacketizer
        if dep is not None:
            self._frames(dep.flush())
            self.info.dropped_frames = _dropped(dep)
        self._update_info()

    # -- ordered packets -----------------------------------------------------------------------------------------

    def _ordered(self, items: list[RtpPacket | RtpDiscontinuity]) -> None:
        for item in items:
            if isinstance(item, RtpPacket):
                if self.codec is None:
                    self._hold(item)
                else:
                    self._deliver(item)
            elif self.codec is None:
                self.gaps_pending.append(len(self.pending))
            else:
                self._gap()

    def _hold(self, packet: RtpPacket) -> None:
        self.pending.append(packet)
        evidence = strong_evidence(packet.payload)
        if evidence is not None and agrees(evidence, [p.payload for p in self.pending]):
            self._decide(evidence)
        elif len(self.pending) % CLASSIFY_PACKETS == 0:
            # No strong evidence yet: decide on the packets so far if they agree, else keep looking (a capture
            # may start in the middle of a big PS frame), up to a bound.
            codec = classify_payloads(self.info.pt, [p.payload for p in self.pending[-CLASSIFY_PACKETS:]])
            if codec != "unknown" or len(self.pending) >= MAX_CLASSIFY_PACKETS:
                self._decide(codec)

    def _decide(self, codec: str) -> None:
        self.codec = codec
        self._start()
        pending, gaps = self.pending, self.gaps_pending
        self.pending, self.gaps_pending = [], []
        g = 0
        for i, packet in enumerate(pending):
            while g < len(gaps) and gaps[g] <= i:
                self._gap()
                g += 1
            self._deliver(packet)
        for _ in gaps[g:]:
            self._gap()

    def _start(self) -> None:
        codec = self.codec
        if codec is None:
            return
        self.info.payload = codec
        if codec == "h264":
            self.depacketizer = H264Depacketizer()
        elif codec == "hevc":
            self.depacketizer = H265Depacketizer()
        elif codec == "ps":
            self.depacketizer = PsOverRtpReceiver()
        elif codec == "unknown":
            # Still a stream (its packets, loss and jitter are worth reporting), but no frames.
            self._stream(0, "unknown", "data")

    def _deliver(self, packet: RtpPacket) -> None:
        dep = self.depacketizer
        if dep is not None:
            try:
                frames = dep.feed(packet)
            except ProtocolError:
                self.demux.count("depacketizer_errors")
                return
            self._frames(frames)
        elif self.codec in ("pcm_alaw", "pcm_mulaw", "g722", "g723_1", "g729"):
            ts = packet.timestamp
            frame = MediaFrame(codec=self.codec, data=packet.payload, pts=ts, dts=ts, keyframe=True)
            self.demux.collector.frame(self._stream(0, self.codec, "audio"), frame)

    def _gap(self) -> None:
        dep = self.depacketizer
        if dep is not None:
            dep.feed_gap()

    def _frames(self, frames: list[MediaFrame]) -> None:
        for frame in frames:
            self.demux.collector.frame(self._stream(frame.stream_id, frame.codec, frame.kind), frame)

    def _stream(self, stream_id: int, codec: str, kind: str) -> StreamStats:
        key = (stream_id, codec)
        stream = self.streams.get(key)
        if stream is None:
            # RTP video timestamps are unwrapped by the depacketizer; PS ones by the demuxer; audio ones are raw.
            bits = 32 if kind == "audio" and self.codec != "ps" else 64
            clock = self.clock if self.codec != "ps" else 90_000
            stream = self.demux.collector.new_stream(kind=kind, codec=codec, clock=clock, rtp=self.info, ts_bits=bits)
            self.streams[key] = stream
        return stream

    def _update_info(self) -> None:
        stats = self.tracker.statistics()
        info = self.info
        info.packets = stats.received
        info.duplicates = stats.duplicates
        # Packets never seen: RFC 3550's cumulative loss counts duplicates as received, which hides real losses.
        info.lost = max(0, stats.expected - (stats.received - stats.duplicates))
        info.reordered = stats.reordered
        info.jitter = stats.jitter_seconds


def _dropped(dep: H264Depacketizer | H265Depacketizer | PsOverRtpReceiver) -> int:
    stats = dep.statistics()
    return int(getattr(stats, "frames_dropped", 0))


class RtpDemux:
    """Sorts transport payloads into RTP streams (see the module docstring).

    Args:
        collector: receives the streams and their frames.
        max_candidates: (flow, SSRC) pairs on probation at once.
        max_sources: RTP streams followed at once.

    Attributes:
        counters: "not_rtp", "rtcp", "rtp_malformed", "rtp_sources_ignored", "rtp_streams", ...
    """

    def __init__(
        self,
        collector: Collector,
        *,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        self.collector = collector
        self._max_candidates = max_candidates
        self._max_sources = max_sources
        self._sources: dict[tuple[FlowKey, int], _Source] = {}
        self._candidates: dict[tuple[FlowKey, int], list[tuple[RtpPacket, float]]] = {}
        self._ignored: set[tuple[FlowKey, int]] = set()
        self.counters: dict[str, int] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def datagram(self, flow: FlowKey, data: bytes, now: float) -> None:
        """One UDP payload (which may or may not be RTP)."""
        self.unit(flow, data, now)

    def unit(self, flow: FlowKey, data: bytes, now: float) -> None:
        """One packet-sized unit: a UDP payload or a deframed TCP / dump unit."""
        if len(data) < 12 or data[0] >> 6 != 2:
            self.count("not_rtp")
            return
        if 64 <= data[1] & 0x7F <= 95:
            self.count("rtcp")
            return
        key = (flow, int.from_bytes(data[8:12], "big"))
        try:
            packet = parse_rtp(data)
        except ProtocolError:
            self.count("rtp_malformed")
            return
        source = self._sources.get(key)
        if source is not None:
            source.packet(packet, now)
            return
        if key in self._ignored:
            return
        self._probation(key, packet, now)

    def _probation(self, key: tuple[FlowKey, int], packet: RtpPacket, now: float) -> None:
        held = self._candidates.get(key)
        if held:
            last = held[-1][0]
            step = (packet.sequence_number - last.sequence_number) & 0xFFFF
            if packet.payload_type != last.payload_type or not 0 < step <= _MAX_PROBATION_STEP:
                held.clear()
        else:
            if len(self._candidates) >= self._max_candidates:
                self._candidates.pop(next(iter(self._candidates)))
            held = self._candidates[key] = []
        held.append((packet, now))
        if len(held) < PROBATION:
            return
        del self._candidates[key]
        if len(self._sources) >= self._max_sources:
            self._ignored.add(key)
            self.count("rtp_sources_ignored")
            return
        source = self._sources[key] = _Source(self, key[0], held[0][0])
        for p, t in held:
            source.packet(p, t)

    def flush(self) -> None:
        """End of input: drain every stream and fill in the RTP statistics."""
        for source in self._sources.values():
            source.flush()
        self.count("rtp_streams", len(self._sources))
