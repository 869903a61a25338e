"""MPEG-PS over RTP as GB28181 sends it (GB/T 28181-2016 Annex C.1; RFC 2250 §2 style, 90 kHz clock).

Strategy: the PS byte stream is cut into RTP payloads with no alignment to PS units, so the receiver only needs
to put the payloads back together. It does so frame by frame: cameras send one pack per frame, end it with the
marker bit and stamp all its packets with the frame's timestamp, and some set only one of the two signals, so a
chunk ends at whichever comes first. Each chunk is joined once and handed on whole.

A chunk hit by a loss is dropped (counted) rather than passed on with a hole, so the PS demuxer never sees a
pack spliced from two frames. After a loss the next chunk is kept only when its first packet begins with a pack
header (`00 00 01 BA`), which proves that nothing of it was lost; the lost packets were then whole frames.
Payload bytes are never parsed here, so nothing is malformed at this layer: damage inside a chunk is left to
`PsDemuxer`, which resynchronises on the next pack header.
"""

from __future__ import annotations

import attrs

from fluxkit.protocols._media import MediaFrame
from fluxkit.protocols.ps import PsDemuxer
from fluxkit.protocols.rtp._packet import RtpPacket

from ._common import DEFAULT_MAX_FRAME_SIZE, DEFAULT_MTU, DepacketizerStatistics, SequenceCounter

__all__ = ["PsOverRtpReceiver", "PsRtpDepacketizer", "PsRtpPacketizer"]

_PACK_START = b"\x00\x00\x01\xba"
_MAX_MISORDER = 100  # RFC 3550 Appendix A.1, as in `_video`


class PsRtpDepacketizer:
    """RTP packets in, whole PS chunks (one frame each) out.

    Args:
        max_frame_size: most payload bytes gathered for one chunk; a larger chunk is dropped and counted (datagram
            stream: nothing is raised).

    Losses are seen from sequence numbers or told by `feed_gap()`; late and duplicate packets are dropped and
    counted (`late`). `statistics().frames` counts chunks.
    """

    __slots__ = (
        "_after_gap",
        "_broken",
        "_dropped",
        "_frames",
        "_late",
        "_malformed",
        "_markers",
        "_max",
        "_next_seq",
        "_packets",
        "_parts",
        "_size",
        "_ssrc",
        "_ts",
    )

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max = max_frame_size
        self._parts: list[bytes] = []
        self._size = 0
        self._ts = -1  # timestamp of the chunk in progress, -1 when none is
        self._broken = False
        self._after_gap = True  # joining mid-stream: the first chunk must start with a pack header
        self._next_seq = -1
        self._markers = False  # the sender ends its frames with the marker bit
        self._ssrc = -1
        self._packets = 0
        self._frames = 0
        self._dropped = 0
        self._malformed = 0
        self._late = 0

    def feed(self, packet: RtpPacket) -> list[bytes]:
        """Take one RTP packet (in sequence order); returns the chunks it completes (zero, one, rarely two)."""
        self._packets += 1
        seq = packet.sequence_number
        if seq != self._next_seq and self._sequence_break(packet):
            return []
        self._next_seq = (seq + 1) & 0xFFFF
        payload = packet.payload
        out: list[bytes] = []
        if payload:
            ts = packet.timestamp
            if ts != self._ts:
                if self._ts >= 0:
                    self._finish(out)
                self._ts = ts
                if self._after_gap:
                    self._after_gap = False
                    self._broken = not payload.startswith(_PACK_START)
            elif self._after_gap:
                self._after_gap = False  # the gap lay inside this chunk, already marked broken
            self._parts.append(payload)
            self._size += len(payload)
            if self._size > self._max:
                self._parts = []  # dropped when it ends; freed now to keep memory bounded
                self._broken = True
        else:
            self._malformed += 1  # an empty payload carries nothing (some senders use it as a keepalive)
        if packet.marker and self._ts >= 0:
            self._markers = True
            self._finish(out)
        return out

    def feed_gap(self) -> None:
        """Declare a loss before the next packet (call on a reorder buffer's `RtpGap` or other discontinuity)."""
        self._loss()

    def flush(self) -> list[bytes]:
        """End of input: returns the chunk in progress unless a loss hit it or, the sender having set marker bits so
        far, its last packet is missing."""
        out: list[bytes] = []
        if self._ts >= 0:
            if self._markers:
                self._broken = True
            self._finish(out)
        return out

    def statistics(self) -> DepacketizerStatistics:
        """Counters since creation (`frames` counts chunks)."""
        return DepacketizerStatistics(
            packets=self._packets,
            frames=self._frames,
            frames_dropped=self._dropped,
            malformed=self._malformed,
            late=self._late,
        )

    def _sequence_break(self, packet: RtpPacket) -> bool:
        if packet.ssrc != self._ssrc:
            if self._ssrc >= 0:
                self._loss()
            self._ssrc = packet.ssrc
            return False
        behind = (self._next_seq - packet.sequence_number) & 0xFFFF
        if 0 < behind <= _MAX_MISORDER:
            self._late += 1
            return True
        self._loss()
        return False

    def _loss(self) -> None:
        if self._ts >= 0:
            self._broken = True
        self._after_gap = True

    def _finish(self, out: list[bytes]) -> None:
        parts = self._parts
        broken = self._broken
        self._parts = []
        self._size = 0
        self._broken = False
        self._ts = -1
        if broken:
            self._dropped += 1
            return
        self._frames += 1
        out.append(parts[0] if len(parts) == 1 else b"".join(parts))


class PsOverRtpReceiver:
    """GB28181 receiver half: RTP packets in, demultiplexed `MediaFrame`s out (`PsRtpDepacketizer` + `PsDemuxer`).

    Each complete chunk goes to the demuxer; a chunk hit by a loss never does. The demuxer emits an access unit
    when the next one starts, so a frame comes out one chunk after its own (or at `flush()`).

    Args:
        max_frame_size: passed to both the depacketizer and the demuxer.
    """

    __slots__ = ("_demuxer", "_frames", "_rtp")

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._rtp = PsRtpDepacketizer(max_frame_size=max_frame_size)
        self._demuxer = PsDemuxer(max_frame_size=max_frame_size)
        self._frames = 0

    @property
    def demuxer(self) -> PsDemuxer:
        """The PS demuxer (for its `statistics()` and `program_stream_map`)."""
        return self._demuxer

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """Take one RTP packet (in sequence order); returns the frames that became complete."""
        chunks = self._rtp.feed(packet)
        if not chunks:
            return []
        frames: list[MediaFrame] = []
        for chunk in chunks:
            frames += self._demuxer.feed(chunk)
        self._frames += len(frames)
        return frames

    def feed_gap(self) -> None:
        """Declare a loss before the next packet (call on a reorder buffer's discontinuity)."""
        self._rtp.feed_gap()

    def flush(self) -> list[MediaFrame]:
        """End of input: the last complete chunk's frames and whatever the demuxer still holds."""
        frames: list[MediaFrame] = []
        for chunk in self._rtp.flush():
            frames += self._demuxer.feed(chunk)
        frames += self._demuxer.flush()
        self._frames += len(frames)
        return frames

    def statistics(self) -> DepacketizerStatistics:
        """The depacketizer's counters, with `frames` counting the media frames emitted."""
        return attrs.evolve(self._rtp.statistics(), frames=self._frames)


class PsRtpPacketizer:
    """PS bytes of one frame in, RTP packets out (GB28181 Annex C.1): payloads of at most `mtu - 12` bytes, all
    stamped with the frame's timestamp, the marker on the last.

    Args:
        payload_type: 96 is GB28181's PS payload type.
        ssrc: the SSRC from the SDP's y= line (GB28181 Annex F).
        mtu: largest RTP packet in bytes, header included.
        initial_sequence: sequence number of the first packet.

    Raises:
        LocalProtocolError: a field out of range, or an MTU too small to carry anything.
    """

    __slots__ = ("_counter",)

    def __init__(self, *, payload_type: int = 96, ssrc: int, mtu: int = DEFAULT_MTU, initial_sequence: int = 0) -> None:
        self._counter = SequenceCounter(
            payload_type=payload_type, ssrc=ssrc, mtu=mtu, initial_sequence=initial_sequence
        )

    @property
    def next_sequence(self) -> int:
        """Sequence number of the next packet."""
        return self._counter.next_sequence

    def packetize(self, ps_bytes: bytes, timestamp: int) -> list[RtpPacket]:
        """Packets carrying `ps_bytes` (one frame's pack), stamped `timestamp` (90 kHz, modulo 2**32)."""
        room = self._counter.max_payload
        data = bytes(ps_bytes)
        return self._counter.packets([data[k : k + room] for k in range(0, len(data), room)], timestamp)
