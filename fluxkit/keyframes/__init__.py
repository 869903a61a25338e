"""Keyframes and snapshots: zero-decode keyframe extraction, JPEG thumbnails, and the latest snapshot per stream.

`KeyframeExtractor` finds IDR/IRAP access units from NAL headers only and makes them self-contained;
`ThumbnailDecoder` turns them into JPEGs with one long-lived PyAV decoder per stream (hardware when present);
`SnapshotService` runs both on every stream of a `VideoEngine`.
"""

from __future__ import annotations

from ._extractor import DEFAULT_MAX_KEYFRAME_SIZE as DEFAULT_MAX_KEYFRAME_SIZE
from ._extractor import Keyframe as Keyframe
from ._extractor import KeyframeExtractor as KeyframeExtractor
from ._service import DEFAULT_MAX_PENDING_KEYFRAMES as DEFAULT_MAX_PENDING_KEYFRAMES
from ._service import KeyframeCallback as KeyframeCallback
from ._service import SnapshotService as SnapshotService
from ._service import SnapshotUnavailable as SnapshotUnavailable
from ._thumbnail import DEFAULT_JPEG_QUALITY as DEFAULT_JPEG_QUALITY
from ._thumbnail import DEFAULT_THUMBNAIL_WIDTH as DEFAULT_THUMBNAIL_WIDTH
from ._thumbnail import HWACCEL_CANDIDATES as HWACCEL_CANDIDATES
from ._thumbnail import HwaccelProbe as HwaccelProbe
from ._thumbnail import ThumbnailDecoder as ThumbnailDecoder
from ._thumbnail import probe_hwaccel as probe_hwaccel

__all__ = [
    "DEFAULT_JPEG_QUALITY",
    "DEFAULT_MAX_KEYFRAME_SIZE",
    "DEFAULT_MAX_PENDING_KEYFRAMES",
    "DEFAULT_THUMBNAIL_WIDTH",
    "HWACCEL_CANDIDATES",
    "HwaccelProbe",
    "Keyframe",
    "KeyframeCallback",
    "KeyframeExtractor",
    "SnapshotService",
    "SnapshotUnavailable",
    "ThumbnailDecoder",
    "probe_hwaccel",
]
