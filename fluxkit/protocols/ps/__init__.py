"""MPEG program stream (ISO/IEC 13818-1 §2.5) as GB28181 uses it: a streaming demuxer and a muxer (sans-IO)."""

from __future__ import annotations

from fluxkit.protocols._media import MediaFrame as MediaFrame

from ._codec import CODEC_TO_STREAM_TYPE as CODEC_TO_STREAM_TYPE
from ._codec import STREAM_TYPE_TO_CODEC as STREAM_TYPE_TO_CODEC
from ._codec import PackHeader as PackHeader
from ._codec import PesPacket as PesPacket
from ._codec import ProgramStreamMap as ProgramStreamMap
from ._codec import PsmEntry as PsmEntry
from ._codec import SystemHeader as SystemHeader
from ._codec import SystemHeaderStream as SystemHeaderStream
from ._codec import crc32_mpeg2 as crc32_mpeg2
from ._codec import parse_pack_header as parse_pack_header
from ._codec import parse_pes as parse_pes
from ._codec import parse_psm as parse_psm
from ._codec import parse_system_header as parse_system_header
from ._demuxer import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
from ._demuxer import PsDemuxer as PsDemuxer
from ._demuxer import PsStatistics as PsStatistics
from ._muxer import DEFAULT_MUX_RATE as DEFAULT_MUX_RATE
from ._muxer import MAX_PES_PAYLOAD as MAX_PES_PAYLOAD
from ._muxer import PsMuxer as PsMuxer

__all__ = [
    "CODEC_TO_STREAM_TYPE",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MUX_RATE",
    "MAX_PES_PAYLOAD",
    "STREAM_TYPE_TO_CODEC",
    "MediaFrame",
    "PackHeader",
    "PesPacket",
    "ProgramStreamMap",
    "PsDemuxer",
    "PsMuxer",
    "PsStatistics",
    "PsmEntry",
    "SystemHeader",
    "SystemHeaderStream",
    "crc32_mpeg2",
    "parse_pack_header",
    "parse_pes",
    "parse_psm",
    "parse_system_header",
]
