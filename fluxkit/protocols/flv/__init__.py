"""FLV (sans-IO): video/audio tag bodies (AVC, HEVC legacy and Enhanced RTMP, AAC, G.711), avcC/hvcC and
AudioSpecificConfig records, length-prefixed <-> Annex-B conversion, FLV file framing, and the bridge between tag
bodies and `MediaFrame`s (`FlvDemuxer`, `FlvMuxer`). RTMP audio/video messages carry the same tag bodies.
"""

from __future__ import annotations

from ._codec import AacConfig as AacConfig
from ._codec import DecoderConfig as DecoderConfig
from ._codec import annexb_to_length_prefixed as annexb_to_length_prefixed
from ._codec import build_avcc as build_avcc
from ._codec import build_hvcc as build_hvcc
from ._codec import length_prefixed_to_annexb as length_prefixed_to_annexb
from ._codec import parse_aac_config as parse_aac_config
from ._codec import parse_avcc as parse_avcc
from ._codec import parse_hvcc as parse_hvcc
from ._codec import split_length_prefixed as split_length_prefixed
from ._frames import FlvDemuxer as FlvDemuxer
from ._frames import FlvMuxer as FlvMuxer
from ._frames import VideoConfig as VideoConfig
from ._tags import FLV_HEADER_SIZE as FLV_HEADER_SIZE
from ._tags import PACKET_END as PACKET_END
from ._tags import PACKET_FRAME as PACKET_FRAME
from ._tags import PACKET_METADATA as PACKET_METADATA
from ._tags import PACKET_SEQUENCE_HEADER as PACKET_SEQUENCE_HEADER
from ._tags import TAG_AUDIO as TAG_AUDIO
from ._tags import TAG_SCRIPT as TAG_SCRIPT
from ._tags import TAG_VIDEO as TAG_VIDEO
from ._tags import AudioTag as AudioTag
from ._tags import VideoTag as VideoTag
from ._tags import build_audio_tag as build_audio_tag
from ._tags import build_video_tag as build_video_tag
from ._tags import flv_header as flv_header
from ._tags import flv_tag as flv_tag
from ._tags import parse_audio_tag as parse_audio_tag
from ._tags import parse_video_tag as parse_video_tag

__all__ = [
    "FLV_HEADER_SIZE",
    "PACKET_END",
    "PACKET_FRAME",
    "PACKET_METADATA",
    "PACKET_SEQUENCE_HEADER",
    "TAG_AUDIO",
    "TAG_SCRIPT",
    "TAG_VIDEO",
    "AacConfig",
    "AudioTag",
    "DecoderConfig",
    "FlvDemuxer",
    "FlvMuxer",
    "VideoConfig",
    "VideoTag",
    "annexb_to_length_prefixed",
    "build_audio_tag",
    "build_avcc",
    "build_hvcc",
    "flv_header",
    "flv_tag",
    "length_prefixed_to_annexb",
    "parse_aac_config",
    "parse_audio_tag",
    "parse_avcc",
    "parse_hvcc",
    "parse_video_tag",
    "split_length_prefixed",
]
