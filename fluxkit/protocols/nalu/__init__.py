"""H.264 / H.265 NAL units (sans-IO): Annex-B scanning and streaming splitting, emulation prevention, access-unit
assembly with keyframe detection and parameter-set insertion, and SPS parsing (size, profile, fps, codec string).
"""

from __future__ import annotations

from ._annexb import DEFAULT_MAX_NAL_SIZE as DEFAULT_MAX_NAL_SIZE
from ._annexb import AnnexBSplitter as AnnexBSplitter
from ._annexb import escape_rbsp as escape_rbsp
from ._annexb import unescape_rbsp as unescape_rbsp
from ._au import DEFAULT_MAX_AU_SIZE as DEFAULT_MAX_AU_SIZE
from ._au import AccessUnit as AccessUnit
from ._au import AccessUnitAssembler as AccessUnitAssembler
from ._au import ParameterSets as ParameterSets
from ._scan import H264_NAL_AUD as H264_NAL_AUD
from ._scan import H264_NAL_IDR as H264_NAL_IDR
from ._scan import H264_NAL_PPS as H264_NAL_PPS
from ._scan import H264_NAL_SEI as H264_NAL_SEI
from ._scan import H264_NAL_SLICE as H264_NAL_SLICE
from ._scan import H264_NAL_SPS as H264_NAL_SPS
from ._scan import H265_NAL_AUD as H265_NAL_AUD
from ._scan import H265_NAL_PPS as H265_NAL_PPS
from ._scan import H265_NAL_PREFIX_SEI as H265_NAL_PREFIX_SEI
from ._scan import H265_NAL_SPS as H265_NAL_SPS
from ._scan import H265_NAL_SUFFIX_SEI as H265_NAL_SUFFIX_SEI
from ._scan import H265_NAL_VPS as H265_NAL_VPS
from ._scan import find_au_start as find_au_start
from ._scan import h264_nal_type as h264_nal_type
from ._scan import h265_nal_type as h265_nal_type
from ._scan import is_keyframe_au as is_keyframe_au
from ._scan import is_keyframe_nal_type as is_keyframe_nal_type
from ._scan import nal_types as nal_types
from ._scan import split_annexb as split_annexb
from ._sps import SpsInfo as SpsInfo
from ._sps import parse_h264_sps as parse_h264_sps
from ._sps import parse_h265_sps as parse_h265_sps
from ._sps import parse_h265_vps_fps as parse_h265_vps_fps
from ._sps import parse_sps as parse_sps

__all__ = [
    "DEFAULT_MAX_AU_SIZE",
    "DEFAULT_MAX_NAL_SIZE",
    "H264_NAL_AUD",
    "H264_NAL_IDR",
    "H264_NAL_PPS",
    "H264_NAL_SEI",
    "H264_NAL_SLICE",
    "H264_NAL_SPS",
    "H265_NAL_AUD",
    "H265_NAL_PPS",
    "H265_NAL_PREFIX_SEI",
    "H265_NAL_SPS",
    "H265_NAL_SUFFIX_SEI",
    "H265_NAL_VPS",
    "AccessUnit",
    "AccessUnitAssembler",
    "AnnexBSplitter",
    "ParameterSets",
    "SpsInfo",
    "escape_rbsp",
    "find_au_start",
    "h264_nal_type",
    "h265_nal_type",
    "is_keyframe_au",
    "is_keyframe_nal_type",
    "nal_types",
    "parse_h264_sps",
    "parse_h265_sps",
    "parse_h265_vps_fps",
    "parse_sps",
    "split_annexb",
    "unescape_rbsp",
]
