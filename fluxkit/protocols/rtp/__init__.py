"""RTP/RTCP: packets, framings, reordering and statistics, payload formats (sans-IO).

* `parse_rtp` / `RtpPacket` (RFC 3550 §5); `parse_rtcp` / `serialize_rtcp` and the RTCP records (RFC 3550 §6,
  RFC 4585, RFC 5104); `is_rtcp` for rtcp-mux (RFC 5761).
* Stream framings: `Rfc4571Deframer` / `frame_rfc4571`, `InterleavedDeframer` / `frame_interleaved`, and the
  auto-detecting, resynchronising `TcpRtpDeframer` for GB28181 TCP.
* `SequenceUnwrapper`, `TimestampUnwrapper`; `ReorderBuffer` (jitter buffer driven by `now`) and its events
  `RtpGap`, `RtpSourceChanged`, `RtpSequenceReset` (all `RtpDiscontinuity`); `RtpSourceTracker` and
  `RtpSourceStatistics` (RFC 3550 §A.1, §A.3, §A.8).
"""

from __future__ import annotations

from ._framing import DEFAULT_MAX_PACKET_SIZE as DEFAULT_MAX_PACKET_SIZE
from ._framing import InterleavedDeframer as InterleavedDeframer
from ._framing import InterleavedFrame as InterleavedFrame
from ._framing import Rfc4571Deframer as Rfc4571Deframer
from ._framing import TcpRtpDeframer as TcpRtpDeframer
from ._framing import frame_interleaved as frame_interleaved
from ._framing import frame_rfc4571 as frame_rfc4571
from ._packet import RTP_HEADER_SIZE as RTP_HEADER_SIZE
from ._packet import RtpPacket as RtpPacket
from ._packet import parse_rtp as parse_rtp
from ._reorder import DEFAULT_MAX_DELAY as DEFAULT_MAX_DELAY
from ._reorder import DEFAULT_MAX_MISORDER as DEFAULT_MAX_MISORDER
from ._reorder import DEFAULT_MAX_PACKETS as DEFAULT_MAX_PACKETS
from ._reorder import DEFAULT_SSRC_PROBATION as DEFAULT_SSRC_PROBATION
from ._reorder import ReorderBuffer as ReorderBuffer
from ._reorder import ReorderStatistics as ReorderStatistics
from ._reorder import RtpDiscontinuity as RtpDiscontinuity
from ._reorder import RtpGap as RtpGap
from ._reorder import RtpSequenceReset as RtpSequenceReset
from ._reorder import RtpSourceChanged as RtpSourceChanged
from ._rtcp import RTCP_APP as RTCP_APP
from ._rtcp import RTCP_BYE as RTCP_BYE
from ._rtcp import RTCP_PSFB as RTCP_PSFB
from ._rtcp import RTCP_RR as RTCP_RR
from ._rtcp import RTCP_RTPFB as RTCP_RTPFB
from ._rtcp import RTCP_SDES as RTCP_SDES
from ._rtcp import RTCP_SR as RTCP_SR
from ._rtcp import SDES_CNAME as SDES_CNAME
from ._rtcp import SDES_EMAIL as SDES_EMAIL
from ._rtcp import SDES_LOC as SDES_LOC
from ._rtcp import SDES_NAME as SDES_NAME
from ._rtcp import SDES_NOTE as SDES_NOTE
from ._rtcp import SDES_PHONE as SDES_PHONE
from ._rtcp import SDES_PRIV as SDES_PRIV
from ._rtcp import SDES_TOOL as SDES_TOOL
from ._rtcp import App as App
from ._rtcp import Bye as Bye
from ._rtcp import FirEntry as FirEntry
from ._rtcp import FullIntraRequest as FullIntraRequest
from ._rtcp import GenericNack as GenericNack
from ._rtcp import PictureLossIndication as PictureLossIndication
from ._rtcp import ReceiverReport as ReceiverReport
from ._rtcp import ReportBlock as ReportBlock
from ._rtcp import RtcpPacket as RtcpPacket
from ._rtcp import Sdes as Sdes
from ._rtcp import SdesChunk as SdesChunk
from ._rtcp import SdesItem as SdesItem
from ._rtcp import SenderReport as SenderReport
from ._rtcp import UnknownRtcp as UnknownRtcp
from ._rtcp import is_rtcp as is_rtcp
from ._rtcp import parse_rtcp as parse_rtcp
from ._rtcp import serialize_rtcp as serialize_rtcp
from ._seq import SequenceUnwrapper as SequenceUnwrapper
from ._seq import TimestampUnwrapper as TimestampUnwrapper
from ._stats import DEFAULT_CLOCK_RATE as DEFAULT_CLOCK_RATE
from ._stats import RtpSourceStatistics as RtpSourceStatistics
from ._stats import RtpSourceTracker as RtpSourceTracker

__all__ = [
    "DEFAULT_CLOCK_RATE",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_MISORDER",
    "DEFAULT_MAX_PACKETS",
    "DEFAULT_MAX_PACKET_SIZE",
    "DEFAULT_SSRC_PROBATION",
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_PSFB",
    "RTCP_RR",
    "RTCP_RTPFB",
    "RTCP_SDES",
    "RTCP_SR",
    "RTP_HEADER_SIZE",
    "SDES_CNAME",
    "SDES_EMAIL",
    "SDES_LOC",
    "SDES_NAME",
    "SDES_NOTE",
    "SDES_PHONE",
    "SDES_PRIV",
    "SDES_TOOL",
    "App",
    "Bye",
    "FirEntry",
    "FullIntraRequest",
    "GenericNack",
    "InterleavedDeframer",
    "InterleavedFrame",
    "PictureLossIndication",
    "ReceiverReport",
    "ReorderBuffer",
    "ReorderStatistics",
    "ReportBlock",
    "Rfc4571Deframer",
    "RtcpPacket",
    "RtpDiscontinuity",
    "RtpGap",
    "RtpPacket",
    "RtpSequenceReset",
    "RtpSourceChanged",
    "RtpSourceStatistics",
    "RtpSourceTracker",
    "Sdes",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SequenceUnwrapper",
    "TcpRtpDeframer",
    "TimestampUnwrapper",
    "UnknownRtcp",
    "frame_interleaved",
    "frame_rfc4571",
    "is_rtcp",
    "parse_rtcp",
    "parse_rtp",
    "serialize_rtcp",
]
