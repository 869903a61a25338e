"""The pcap/pcapng pipeline of `fluxkit inspect`: packets -> IP -> UDP datagrams and TCP streams -> RTP.

Strategy: `CaptureReader` cuts the file into packets; `decode_packet` reduces each to a UDP datagram or TCP
segment (anything else is counted and dropped). UDP payloads go straight to the RTP demux, which decides per flow
whether it is RTP at all. TCP segments are put back in order per direction (`TcpReassembler`), and the byte
stream goes through the auto-detecting RFC 4571 / interleaved deframer; a direction that shows no framing within
`max_hunt` bytes (HTTP, TLS...) is dropped for good, so only media flows keep buffers. The number of TCP
directions followed is bounded too.

SIP is read on the side (`_sip.SipAnalyzer`): a UDP payload that starts like a SIP message (or any non-RTP
payload on port 5060/5061) goes to the analyzer instead of the RTP demux, and a TCP direction whose first bytes
start like SIP is framed by the SIP stream parser instead of the RTP deframer.
"""

from __future__ import annotations

from fluxkit.errors import ParseError
from fluxkit.inspect._ip import Datagram, Segment, decode_packet, format_endpoint
from fluxkit.inspect._pcap import CaptureReader
from fluxkit.inspect._rtp import FlowKey, RtpDemux
from fluxkit.inspect._sip import SIP_PORTS, SipAnalyzer, SipTcpFlow, looks_like_sip
from fluxkit.inspect._streams import Collector
from fluxkit.inspect._tcp import TcpReassembler
from fluxkit.protocols.rtp import TcpRtpDeframer

__all__ = ["DEFAULT_MAX_HUNT", "DEFAULT_MAX_TCP_FLOWS", "CapturePipeline"]

#: TCP directions followed at once; more are ignored (counted in `tcp_flows_ignored`).
DEFAULT_MAX_TCP_FLOWS = 64
#: Bytes of a TCP direction read without finding RTP framing before it is dropped as non-media.
DEFAULT_MAX_HUNT = 256 * 1024
_MAX_REJECTED = 4096
# IPv4 + UDP headers with no link layer: nothing shorter can carry a datagram.
_MIN_PACKET = 28


class _TcpFlow:
    __slots__ = ("deframer", "key", "reassembler", "seen", "sip")

    def __init__(self, key: FlowKey) -> None:
        self.key = key
        self.reassembler = TcpReassembler()
        self.deframer = TcpRtpDeframer()
        self.seen = 0
        self.sip: SipTcpFlow | None = None


class CapturePipeline:
    """Feeder of capture-file bytes that reports the RTP streams found in them to a `Collector`.

    Attributes:
        counters: packets read, and why packets were skipped ("ip-fragment", "not-ip", "malformed", ...).
        warnings: notes for the report (flows ignored because of a limit).
        sip: the signalling found on the way.
    """

    def __init__(
        self, collector: Collector, *, max_tcp_flows: int = DEFAULT_MAX_TCP_FLOWS, max_hunt: int = DEFAULT_MAX_HUNT
    ) -> None:
        self._reader = CaptureReader()
        self._demux = RtpDemux(collector)
        self._tcp: dict[FlowKey, _TcpFlow] = {}
        self._rejected: dict[FlowKey, None] = {}
        self._max_flows = max_tcp_flows
        self._max_hunt = max_hunt
        self._now = 0.0  # capture time of the latest packet
        self.counters: dict[str, int] = {"packets": 0}
        self.warnings: list[str] = []
        self.sip = SipAnalyzer()

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def feed(self, data: bytes) -> None:
        """Add file bytes.

        Raises:
            ParseError: the capture file itself is malformed (the packets inside are only counted when bad).
        """
        packets = self._reader.feed(data)
        self.counters["packets"] += len(packets)
        count = self._count
        demux = self._demux
        for packet in packets:
            raw = packet.data
            if len(raw) < _MIN_PACKET:
                count("malformed")  # too short for any link + IP + transport header: skip the exception path
                continue
            now = packet.timestamp
            if now:
                self._now = now
            try:
                decoded = decode_packet(packet.linktype, raw)
            except ParseError:
                count("malformed")
                continue
            if isinstance(decoded, Datagram):
                if decoded.truncated:
                    count("truncated")
                    continue
                payload = decoded.payload
                if looks_like_sip(payload) or (
                    (decoded.dport in SIP_PORTS or decoded.sport in SIP_PORTS) and payload[:1] < b"\x80"
                ):
                    self.sip.datagram(decoded.src, decoded.sport, decoded.dst, decoded.dport, payload, now)
                    continue
                key: FlowKey = ("udp", decoded.src, decoded.sport, decoded.dst, decoded.dport)
                demux.datagram(key, payload, now)
            elif isinstance(decoded, Segment):
                self._segment(decoded, now)
            else:
                count(decoded.reason)

    def flush(self) -> None:
        """End of file: drain the TCP flows and the RTP demux.

        Raises:
            ParseError: the capture file is truncated (after everything read so far has been reported).
        """
        try:
            self._reader.flush()
        finally:
            for flow in list(self._tcp.values()):
                self._finish(flow)
            self._tcp.clear()
            self._demux.flush()
            self.counters.update(self._demux.counters)
            self.counters.update(self.sip.counters)
            self.counters["linktypes"] = len(self._reader.linktypes)
            self.warnings += self.sip.warnings

    def _segment(self, seg: Segment, now: float) -> None:
        key: FlowKey = ("tcp", seg.src, seg.sport, seg.dst, seg.dport)
        if key in self._rejected:
            return
        flow = self._tcp.get(key)
        if flow is None:
            if not seg.payload and not seg.syn:
                return  # a pure ACK of a direction we do not follow: nothing to read
            if len(self._tcp) >= self._max_flows:
                self._count("tcp_flows_ignored")
                return
            flow = self._tcp[key] = _TcpFlow(key)
        if seg.truncated:
            # The snap length cut the segment: its bytes are missing, which is a hole in the stream.
            self._count("truncated")
            seg = Segment(
                src=seg.src, dst=seg.dst, sport=seg.sport, dport=seg.dport, seq=seg.seq, syn=seg.syn,
                fin=seg.fin, rst=seg.rst, payload=b"",
            )  # fmt: skip
        self._deliver(flow, flow.reassembler.segment(seg), now)
        if seg.fin or seg.rst:
            self._finish(flow)
            self._tcp.pop(key, None)

    def _deliver(self, flow: _TcpFlow, chunks: list[bytes | None], now: float) -> None:
        deframer = flow.deframer
        for chunk in chunks:
            sip = flow.sip
            if sip is None and chunk and not flow.seen and deframer.mode is None and looks_like_sip(chunk):
                _, src, sport, dst, dport = flow.key
                sip = flow.sip = SipTcpFlow(format_endpoint(src, sport), format_endpoint(dst, dport))
            if sip is not None:
                if chunk is None:
                    sip.gap()
                elif not sip.feed(self.sip, chunk, now):
                    self._reject(flow)
                    return
                continue
            if chunk is None:
                continue  # a hole: the deframer notices the broken framing and resynchronises
            if deframer.mode is None:
                flow.seen += len(chunk)
            for unit in deframer.feed(chunk):
                self._demux.unit(flow.key, unit, now)
        if flow.sip is None and deframer.mode is None and flow.seen > self._max_hunt:
            self._reject(flow)

    def _reject(self, flow: _TcpFlow) -> None:
        if flow.sip is None:
            self._count("tcp_flows_not_media")
        self._tcp.pop(flow.key, None)
        if len(self._rejected) >= _MAX_REJECTED:
            self._rejected.pop(next(iter(self._rejected)))
        self._rejected[flow.key] = None

    def _finish(self, flow: _TcpFlow) -> None:
        self._deliver(flow, flow.reassembler.flush(), self._now)
        for unit in flow.deframer.flush():
            self._demux.unit(flow.key, unit, self._now)
        r = flow.reassembler
        if r.gap_bytes:
            self._count("tcp_gap_bytes", r.gap_bytes)
        if r.retransmitted:
            self._count("tcp_retransmitted_bytes", r.retransmitted)
