"""RTP/RTCP: packets, framings, reordering and statistics, payload formats (sans-IO)."""

from __future__ import annotations

from ._packet import RTP_HEADER_SIZE as RTP_HEADER_SIZE
from ._packet import RtpPacket as RtpPacket
from ._packet import parse_rtp as parse_rtp

__all__ = ["RTP_HEADER_SIZE", "RtpPacket", "parse_rtp"]
