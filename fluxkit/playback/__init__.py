"""Playback: export of recorded ranges as one streamed MP4, paced playback, and live fragmented MP4 for MSE."""

from __future__ import annotations

from ._errors import InvalidRange as InvalidRange
from ._errors import NoRecording as NoRecording
from ._errors import PlaybackError as PlaybackError
from ._errors import RangeTooLarge as RangeTooLarge
from ._export import DEFAULT_FRAGMENT_DURATION as DEFAULT_FRAGMENT_DURATION
from ._export import DEFAULT_MAX_DURATION as DEFAULT_MAX_DURATION
from ._export import MAX_SPEED as MAX_SPEED
from ._export import MIN_SPEED as MIN_SPEED
from ._export import ExportPlan as ExportPlan
from ._export import check_speed as check_speed
from ._export import export_plan as export_plan
from ._export import export_range as export_range
from ._export import plan_export as plan_export
from ._live import DEFAULT_MAX_FRAGMENT_BYTES as DEFAULT_MAX_FRAGMENT_BYTES
from ._live import LiveFmp4Muxer as LiveFmp4Muxer
from ._live import annexb_to_lengths as annexb_to_lengths
from ._live import live_fmp4 as live_fmp4

__all__ = [
    "DEFAULT_FRAGMENT_DURATION",
    "DEFAULT_MAX_DURATION",
    "DEFAULT_MAX_FRAGMENT_BYTES",
    "MAX_SPEED",
    "MIN_SPEED",
    "ExportPlan",
    "InvalidRange",
    "LiveFmp4Muxer",
    "NoRecording",
    "PlaybackError",
    "RangeTooLarge",
    "annexb_to_lengths",
    "check_speed",
    "export_plan",
    "export_range",
    "live_fmp4",
    "plan_export",
]
