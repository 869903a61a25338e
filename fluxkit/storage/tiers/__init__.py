"""Storage tiers: S3 / NAS / local backends under one index, with primary/backup, multi-replica and
hot/warm/cold policies, a spilling batch writer, and the rebuild / migrate / check commands.

`build_storage(TierSettings)` builds the configured policy; the result implements the recorder's
`StorageBackend` contract (`fluxkit.storage.StorageBackend`), so `open_recorder` records into it unchanged.
The index is `fluxkit.storage.SegmentIndex` (shared with plain local storage; `TierIndex` is its old name here).
See `_managed` for the ordering that makes moves crash-safe, `_s3` for the S3 details and `_nvr` for the NVR
HTTP protocol (client `NvrStorage`, server `nvr_routes` with `NvrUploads`, which removes uploads a client
abandoned).
"""

from __future__ import annotations

from fluxkit.storage._index import SegmentIndex as TierIndex

from ._buffered import DEFAULT_MAX_QUEUE as DEFAULT_MAX_QUEUE
from ._buffered import BufferedStorage as BufferedStorage
from ._config import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from ._config import RESUME_HINTS as RESUME_HINTS
from ._config import BackendSettings as BackendSettings
from ._config import TierSettings as TierSettings
from ._config import build_storage as build_storage
from ._config import build_store as build_store
from ._config import check_main as check_main
from ._config import migrate_main as migrate_main
from ._config import open_configured_storage as open_configured_storage
from ._config import rebuild_main as rebuild_main
from ._config import settings_from_config as settings_from_config
from ._config import settings_from_dict as settings_from_dict
from ._managed import INDEX_NAME as INDEX_NAME
from ._managed import ManagedStorage as ManagedStorage
from ._managed import MultiReplicaStorage as MultiReplicaStorage
from ._managed import PrimaryBackupStorage as PrimaryBackupStorage
from ._managed import TierCheckReport as TierCheckReport
from ._managed import TieredStorage as TieredStorage
from ._nvr import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._nvr import DEFAULT_UPLOAD_MAX_AGE as DEFAULT_UPLOAD_MAX_AGE
from ._nvr import DEFAULT_UPLOAD_SWEEP_INTERVAL as DEFAULT_UPLOAD_SWEEP_INTERVAL
from ._nvr import NvrStorage as NvrStorage
from ._nvr import NvrUploads as NvrUploads
from ._nvr import nvr_routes as nvr_routes
from ._s3 import DEFAULT_PART_SIZE as DEFAULT_PART_SIZE
from ._s3 import CloudStorage as CloudStorage
from ._stores import BlobInfo as BlobInfo
from ._stores import BlobStore as BlobStore
from ._stores import DirStore as DirStore
from ._stores import NasStorage as NasStorage
from ._stores import TierError as TierError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_PART_SIZE",
    "DEFAULT_UPLOAD_MAX_AGE",
    "DEFAULT_UPLOAD_SWEEP_INTERVAL",
    "EXIT_INTERRUPTED",
    "INDEX_NAME",
    "RESUME_HINTS",
    "BackendSettings",
    "BlobInfo",
    "BlobStore",
    "BufferedStorage",
    "CloudStorage",
    "DirStore",
    "ManagedStorage",
    "MultiReplicaStorage",
    "NasStorage",
    "NvrStorage",
    "NvrUploads",
    "PrimaryBackupStorage",
    "TierCheckReport",
    "TierError",
    "TierIndex",
    "TieredStorage",
    "build_storage",
    "build_store",
    "check_main",
    "migrate_main",
    "nvr_routes",
    "open_configured_storage",
    "rebuild_main",
    "settings_from_config",
    "settings_from_dict",
]
