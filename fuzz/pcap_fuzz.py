"""Fuzz the capture-file side of `fluxkit inspect`: pcap/pcapng reading, link/IP/UDP/TCP decoding, TCP
reassembly, the format sniffer, and the whole capture pipeline down to the RTP demux and depacketizers.

Only fluxkit's ProtocolError family may escape. The input is read whole and again in uneven chunks (the first
byte picks the chunk size); every packet the reader yields is decoded under every supported link type, since a
mutated link type is the cheapest way for the fuzzer to reach each link-layer decoder.
"""

from __future__ import annotations

import contextlib
import sys

from fluxkit.errors import ProtocolError
from fluxkit.inspect import CaptureReader, InspectReport, Segment, TcpReassembler, decode_packet, format_human, sniff
from fluxkit.inspect._capture import CapturePipeline
from fluxkit.inspect._streams import Collector

_LINKTYPES = (0, 1, 101, 108, 113, 228, 229, 276)


def TestOneInput(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        sniff(data[:65536], "fuzz.bin")
    step = (data[0] if data else 1) or 1
    packets = []
    try:
        reader = CaptureReader(max_record_size=1 << 16)
        for i in range(0, len(data), step):
            packets += reader.feed(data[i : i + step])
        reader.flush()
    except ProtocolError:
        pass
    reassembler = TcpReassembler(max_pending=4096)
    for packet in packets[:64]:
        for linktype in (packet.linktype, *_LINKTYPES):
            try:
                decoded = decode_packet(linktype, packet.data)
            except ProtocolError:
                continue
            if isinstance(decoded, Segment):
                reassembler.segment(decoded)
    reassembler.flush()
    collector = Collector(lambda frame: frame.to_json())
    pipeline = CapturePipeline(collector)
    try:
        pipeline.feed(data)
        pipeline.flush()
    except ProtocolError:
        pass
    # The report side too: SIP sessions tied to the streams, the JSON summary and the human text.
    streams = [s.summary() for s in collector.streams]
    pipeline.sip.tie_streams(streams)
    report = InspectReport(
        path="fuzz", format="pcap", streams=streams, warnings=pipeline.warnings, counters={}, sip=pipeline.sip.summary()
    )
    report.to_json()
    format_human(report)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
