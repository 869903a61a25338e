"""`fluxkit inspect`: what is in a media file (raw H.264/H.265, MPEG-PS, RTP dumps, pcap/pcapng captures).

Unlike `fluxkit.protocols`, this package reads files; the parsing itself is done by the sans-IO protocol
modules and by the capture-file readers here, which are pure feeders too.
"""

from __future__ import annotations

from ._inspect import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._inspect import DEFAULT_PROBE_LIMIT as DEFAULT_PROBE_LIMIT
from ._inspect import InspectReport as InspectReport
from ._inspect import inspect_file as inspect_file
from ._ip import Datagram as Datagram
from ._ip import Segment as Segment
from ._ip import Skipped as Skipped
from ._ip import decode_packet as decode_packet
from ._output import format_human as format_human
from ._pcap import DEFAULT_MAX_RECORD_SIZE as DEFAULT_MAX_RECORD_SIZE
from ._pcap import CapturedPacket as CapturedPacket
from ._pcap import CaptureReader as CaptureReader
from ._sniff import sniff as sniff
from ._streams import FrameInfo as FrameInfo
from ._tcp import DEFAULT_MAX_TCP_PENDING as DEFAULT_MAX_TCP_PENDING
from ._tcp import TcpReassembler as TcpReassembler

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_RECORD_SIZE",
    "DEFAULT_MAX_TCP_PENDING",
    "CaptureReader",
    "CapturedPacket",
    "Datagram",
    "FrameInfo",
    "InspectReport",
    "Segment",
    "Skipped",
    "TcpReassembler",
    "decode_packet",
    "format_human",
    "inspect_file",
    "sniff",
]
