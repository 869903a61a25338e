"""Fuzz the RTP payload depacketizers (fluxkit.protocols.rtp.payload) with pseudo RTP packet sequences.

The input is cut into records `[control][length][payload]`: control bit 0 is the marker, bits 1-2 the step to
the next sequence number (+1, +2, -1, or +1 after a `feed_gap()`), bit 3 a timestamp change, bit 4 a second
SSRC. Every record is fed as one packet to each depacketizer (H.264, H.265 with and without DONL, PS chunks,
PS over RTP with demuxing). The depacketizers count and drop what they cannot use, so nothing at all should
escape them; the PS demuxer behind `PsOverRtpReceiver` may only raise ProtocolError.
"""

from __future__ import annotations

import contextlib
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket
from fluxkit.protocols.rtp.payload import (
    H264Depacketizer,
    H265Depacketizer,
    PsOverRtpReceiver,
    PsRtpDepacketizer,
)


def packets_from(data: bytes) -> list[tuple[RtpPacket, bool]]:
    """Decode the record format into (packet, gap_before) pairs."""
    out: list[tuple[RtpPacket, bool]] = []
    pos, seq, ts = 0, 65530, 0xFFFFFF00
    while pos + 2 <= len(data):
        control, size = data[pos], data[pos + 1]
        payload = data[pos + 2 : pos + 2 + size]
        pos += 2 + size
        step = (control >> 1) & 3
        seq = (seq + (1, 2, -1, 1)[step]) & 0xFFFF
        if control & 8:
            ts = (ts + 3000) & 0xFFFFFFFF
        packet = RtpPacket(
            payload_type=96,
            sequence_number=seq,
            timestamp=ts,
            ssrc=2 if control & 16 else 1,
            payload=payload,
            marker=bool(control & 1),
        )
        out.append((packet, step == 3))
    return out


def records_from(packets: list[RtpPacket]) -> bytes:
    """The inverse, for making seeds: consecutive packets (payloads of at most 255 bytes)."""
    out = bytearray()
    last_ts = None
    for p in packets:
        control = int(p.marker) | (8 if last_ts is not None and p.timestamp != last_ts else 0)
        last_ts = p.timestamp
        out += bytes((control, len(p.payload))) + p.payload
    return bytes(out)


def TestOneInput(data: bytes) -> None:
    video = [H264Depacketizer(max_frame_size=2000), H265Depacketizer(), H265Depacketizer(sprop_max_don_diff=1)]
    chunks = PsRtpDepacketizer(max_frame_size=2000)
    receiver = PsOverRtpReceiver()
    receiver_ok = True
    for packet, gap in packets_from(data):
        for dep in video:
            if gap:
                dep.feed_gap()
            for frame in dep.feed(packet):
                assert isinstance(frame, MediaFrame)
                assert frame.codec in ("h264", "hevc")
        if gap:
            chunks.feed_gap()
        for chunk in chunks.feed(packet):
            assert isinstance(chunk, bytes)
        if receiver_ok:
            try:
                receiver.feed(packet)
            except ProtocolError:
                receiver_ok = False
    for dep in video:
        dep.flush()
        stats = dep.statistics()
        assert stats.frames + stats.frames_dropped <= stats.packets
    chunks.flush()
    if receiver_ok:
        with contextlib.suppress(ProtocolError):
            receiver.flush()


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
