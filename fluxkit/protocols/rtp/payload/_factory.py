"""Pick a depacketizer from an SDP rtpmap encoding name, for the RTSP and GB28181 layers."""

from __future__ import annotations

from typing import Protocol

from fluxkit.protocols._media import MediaFrame
from fluxkit.protocols.rtp._packet import RtpPacket

from ._common import DEFAULT_MAX_FRAME_SIZE, DepacketizerStatistics
from ._h264 import H264Depacketizer
from ._h265 import H265Depacketizer
from ._ps import PsOverRtpReceiver

__all__ = ["Depacketizer", "depacketizer_for"]


class Depacketizer(Protocol):
    """What every video depacketizer here offers: RTP packets in sequence order in, `MediaFrame`s out."""

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        """Take one packet; return the frames it completes."""
        ...

    def feed_gap(self) -> None:
        """Declare a loss (a reorder buffer's discontinuity) before the next packet."""
        ...

    def flush(self) -> list[MediaFrame]:
        """End of input: return what is complete."""
        ...

    def statistics(self) -> DepacketizerStatistics:
        """Counters since creation."""
        ...


def depacketizer_for(
    encoding_name: str,
    *,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    parameter_sets: list[bytes] | None = None,
    sprop_max_don_diff: int = 0,
) -> Depacketizer | None:
    """A depacketizer for an rtpmap encoding name (case-insensitive), or None when none is supported.

    Args:
        encoding_name: "H264"; "H265" or "HEVC"; "PS" or "MP2P" (GB28181's MPEG-PS, demuxed to frames).
        max_frame_size: the frame size limit.
        parameter_sets: H.264/H.265 parameter sets from the SDP (ignored for PS).
        sprop_max_don_diff: H.265's sprop-max-don-diff (ignored otherwise).
    """
    name = encoding_name.strip().upper()
    if name == "H264":
        return H264Depacketizer(max_frame_size=max_frame_size, parameter_sets=parameter_sets)
    if name in ("H265", "HEVC"):
        return H265Depacketizer(
            max_frame_size=max_frame_size, parameter_sets=parameter_sets, sprop_max_don_diff=sprop_max_don_diff
        )
    if name in ("PS", "MP2P"):
        return PsOverRtpReceiver(max_frame_size=max_frame_size)
    return None
