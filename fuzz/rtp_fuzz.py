"""Fuzz harness: RTP packets, the TCP deframers and the reorder buffer/statistics fed from them.

The first input byte picks the chunk size the stream is fed in; the rest is the stream (for the deframers) and
the packet (for `parse_rtp`). Only fluxkit's ProtocolError may escape.
"""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.rtp import (
    InterleavedDeframer,
    ReorderBuffer,
    Rfc4571Deframer,
    RtpSourceTracker,
    TcpRtpDeframer,
    is_rtcp,
    parse_rtp,
)


def _parse_one(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except ProtocolError:
        return
    assert len(packet.serialize()) == len(data)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    step = data[0] % 64 + 1
    stream = data[1:]
    _parse_one(stream)
    for make in (Rfc4571Deframer, InterleavedDeframer):
        deframer = make(max_packet_size=2048)
        try:
            for i in range(0, len(stream), step):
                deframer.feed(stream[i : i + step])
            deframer.flush()
        except ProtocolError:
            pass
    tcp = TcpRtpDeframer(max_packet_size=2048)
    reorder = ReorderBuffer(max_packets=16, max_misorder=64)
    trackers: dict[int, RtpSourceTracker] = {}
    now = 0.0
    for i in range(0, len(stream), step):
        now += 0.01
        for unit in tcp.feed(stream[i : i + step]):
            if is_rtcp(unit):
                continue
            try:
                packet = parse_rtp(unit)
            except ProtocolError:
                continue
            trackers.setdefault(packet.ssrc, RtpSourceTracker()).update(packet, now)
            reorder.push(packet, now)
        reorder.handle_timer(now)
    tcp.flush()
    reorder.flush()
    for tracker in trackers.values():
        tracker.report_block(now).serialize()
    assert tcp.pending == 0


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
