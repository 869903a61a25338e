"""Recording storage: crash-safe fragmented-MP4 segments, a SQLite index, retention, and the recorder.

`LocalStorage(root)` implements the `StorageBackend` contract; `open_recorder(engine, storage, settings)` records
engine streams into it. `check(root)` / `check_main(data_dir)` compare the index with the files
(`fluxkit storage check`); `rebuild_main(data_dir)` rebuilds a lost index from them (`fluxkit storage rebuild`).
`SegmentIndex` is the one SQLite index of plain local storage and of the tier policies
(`fluxkit.storage.tiers`). See `_local` for the layout and the crash-safety ordering.
"""

from __future__ import annotations

from ._index import SegmentIndex as SegmentIndex
from ._local import INDEX_NAME as INDEX_NAME
from ._local import LocalStorage as LocalStorage
from ._local import StorageBackend as StorageBackend
from ._local import check as check
from ._local import check_main as check_main
from ._local import rebuild_main as rebuild_main
from ._local import reconcile as reconcile
from ._model import CheckReport as CheckReport
from ._model import GapRecord as GapRecord
from ._model import KeyframeRecord as KeyframeRecord
from ._model import RecordingFailed as RecordingFailed
from ._model import RecordingQuery as RecordingQuery
from ._model import RecordingResumed as RecordingResumed
from ._model import RecordingSettings as RecordingSettings
from ._model import RetentionLimits as RetentionLimits
from ._model import SegmentRecord as SegmentRecord
from ._model import parse_segment_name as parse_segment_name
from ._model import segment_name as segment_name
from ._model import validate_stream_id as validate_stream_id
from ._mux import FinishedSegment as FinishedSegment
from ._mux import SegmentMuxer as SegmentMuxer
from ._mux import salvage_partial as salvage_partial
from ._recorder import Recorder as Recorder
from ._recorder import open_recorder as open_recorder

__all__ = [
    "INDEX_NAME",
    "CheckReport",
    "FinishedSegment",
    "GapRecord",
    "KeyframeRecord",
    "LocalStorage",
    "Recorder",
    "RecordingFailed",
    "RecordingQuery",
    "RecordingResumed",
    "RecordingSettings",
    "RetentionLimits",
    "SegmentIndex",
    "SegmentMuxer",
    "SegmentRecord",
    "StorageBackend",
    "check",
    "check_main",
    "open_recorder",
    "parse_segment_name",
    "rebuild_main",
    "reconcile",
    "salvage_partial",
    "segment_name",
    "validate_stream_id",
]
