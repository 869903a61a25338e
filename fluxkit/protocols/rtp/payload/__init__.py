"""RTP payload formats: H.264 (RFC 6184), H.265 (RFC 7798), GB28181 MPEG-PS (both directions), G.711 and AAC
(RFC 3551, RFC 3640; receiving) — sans-IO.

Depacketizers take `RtpPacket`s in sequence order (from a `ReorderBuffer`, or straight from the network: they
check sequence numbers themselves) and return `MediaFrame`s; call `feed_gap()` on each discontinuity the reorder
buffer reports. A frame hit by a loss is dropped and counted, never spliced into the next one. Packetizers take
one access unit (or one PS pack) and a timestamp and return `RtpPacket`s.
"""

from __future__ import annotations

from ._audio import AacDepacketizer as AacDepacketizer
from ._audio import G711Depacketizer as G711Depacketizer
from ._common import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._common import DEFAULT_MTU as DEFAULT_MTU
from ._common import DepacketizerStatistics as DepacketizerStatistics
from ._factory import Depacketizer as Depacketizer
from ._factory import depacketizer_for as depacketizer_for
from ._h264 import H264Depacketizer as H264Depacketizer
from ._h264 import H264Packetizer as H264Packetizer
from ._h265 import H265Depacketizer as H265Depacketizer
from ._h265 import H265Packetizer as H265Packetizer
from ._ps import PsOverRtpReceiver as PsOverRtpReceiver
from ._ps import PsRtpDepacketizer as PsRtpDepacketizer
from ._ps import PsRtpPacketizer as PsRtpPacketizer

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MTU",
    "AacDepacketizer",
    "Depacketizer",
    "DepacketizerStatistics",
    "G711Depacketizer",
    "H264Depacketizer",
    "H264Packetizer",
    "H265Depacketizer",
    "H265Packetizer",
    "PsOverRtpReceiver",
    "PsRtpDepacketizer",
    "PsRtpPacketizer",
    "depacketizer_for",
]
