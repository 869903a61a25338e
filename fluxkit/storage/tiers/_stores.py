"""Blob stores: where the tier policies put segment files (a local directory, a NAS mount; S3 is in `_s3`).

Strategy: a policy sees every backend as a `BlobStore`, a flat key -> file store with put / fetch / range read /
stat / delete / list, keyed by the segment's relative path (`<stream>/<YYYY-MM-DD>/<HH>/<name>.mp4`). The
segment index lives in one place (`TierIndex`), not in the stores; each store also keeps the segment metadata
beside the data (S3 object metadata, a hidden JSON sidecar on disk) so `rebuild` can reconstruct the index from
the stores alone.

`DirStore` writes with the recording layer's crash-safe order (write a hidden partial, fsync, rename, fsync the
directory) and runs every blocking call in a worker thread under `io_timeout`, abandoning a thread stuck on a
hung file system (`abandon_on_cancel`) so the caller gets `TierError(ETIMEDOUT)` instead of a hang. `NasStorage`
adds the checks a network share needs before each write: the mount is still there (never write into the bare
mount-point directory), not read-only, not full.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs
import trio

from fluxkit.errors import FluxkitError

__all__ = ["BlobInfo", "BlobStore", "DirStore", "NasStorage", "TierError", "sha256_file"]

T = TypeVar("T")
#: Default seconds a blocking file-system call may take before the store reports slow I/O.
DEFAULT_IO_TIMEOUT = 30.0
#: Bytes per read when hashing or copying.
COPY_CHUNK = 1 << 20


class TierError(FluxkitError, OSError):
    """A storage backend failed. Also an `OSError` with an errno (EIO, ETIMEDOUT, EROFS, ENOSPC, ENODEV, EACCES),
    so the recorder's disk-error handling (retry with backoff) applies to remote backends unchanged."""

    def __init__(self, code: int, message: str) -> None:
        OSError.__init__(self, code, message)


@attrs.frozen(kw_only=True, slots=True)
class BlobInfo:
    """What a store says about one stored segment: its key, size, the sha256 recorded with it (None when
    unknown) and the segment metadata stored beside it (string values)."""

    key: str
    size: int
    sha256: str | None
    metadata: Mapping[str, str] = attrs.field(factory=dict)


@runtime_checkable
class BlobStore(Protocol):
    """A backend as the policies see it. All methods raise `TierError` (an OSError) on failure."""

    name: str

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str, metadata: Mapping[str, str]) -> None:
        """Store the file at `path` under `key`, durably, verifying what the backend received."""
        ...

    async def fetch(self, key: str, dest: Path) -> None:
        """Write the blob to `dest` (verified against its recorded sha256)."""
        ...

    async def read_range(self, key: str, offset: int, length: int) -> bytes: ...

    async def stat(self, key: str) -> BlobInfo | None: ...

    async def delete(self, key: str) -> None: ...

    async def list_blobs(self) -> list[BlobInfo]: ...

    def local_path(self, key: str) -> Path | None:
        """The path a local reader can open directly, or None for a remote store."""
        ...


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, sha256 hex) of a file (blocking)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}.json")


class DirStore:
    """Segments in a directory with the local layout (`<root>/<key>`), metadata in a hidden JSON sidecar.

    Args:
        root: the directory (created when missing).
        name: the backend name used in the index.
        io_timeout: seconds one blocking call may take (None: no limit); past it `TierError(ETIMEDOUT)`.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, name: str = "local", io_timeout: float | None = DEFAULT_IO_TIMEOUT
    ) -> None:
        self.root = Path(root)
        self.name = name
        self.io_timeout = io_timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, name={self.name!r})"

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file work in a thread; a hung share costs a leaked thread, never a hung caller."""
        try:
            if self.io_timeout is None:
                return await trio.to_thread.run_sync(fn, *args)
            with trio.fail_after(self.io_timeout):
                return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)
        except trio.TooSlowError:
            raise TierError(errno.ETIMEDOUT, f"{self.name}: file system slower than {self.io_timeout} s") from None
        except TierError:
            raise
        except OSError as exc:
            raise TierError(exc.errno or errno.EIO, f"{self.name}: {exc}") from exc

    def _check_writable(self, size: int) -> None:
        """Hook for `NasStorage` (blocking); a plain directory has nothing to check."""

    async def open(self) -> None:
        await self._io(lambda: self.root.mkdir(parents=True, exist_ok=True))

    async def aclose(self) -> None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self.root / key

    def _put(self, key: str, src: Path, size: int, sha256: str, metadata: Mapping[str, str]) -> None:
        self._check_writable(size)
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        digest = hashlib.sha256()
        written = 0
        with open(src, "rb") as fin, open(partial, "xb") as fout:
            while chunk := fin.read(COPY_CHUNK):
                fout.write(chunk)
                digest.update(chunk)
                written += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if written != size or digest.hexdigest() != sha256:
            partial.unlink()
            raise TierError(errno.EIO, f"{self.name}: {key}: source changed while copying (size/sha256)")
        # The sidecar first: a data file never exists without its metadata (rebuild relies on it).
        side = _sidecar(dest)
        side_tmp = side.with_name(side.name + ".tmp")
        with open(side_tmp, "w") as f:
            json.dump({"sha256": sha256, "size": size, **metadata}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(side_tmp, side)
        os.rename(partial, dest)
        _fsync_dir(dest.parent)

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str, metadata: Mapping[str, str]) -> None:
        await self._io(self._put, key, path, size, sha256, dict(metadata))

    def _stat(self, key: str) -> BlobInfo | None:
        path = self.root / key
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(_sidecar(path).read_text())
        sha = meta.pop("sha256", None)
        meta.pop("size", None)
        return BlobInfo(key=key, size=size, sha256=sha, metadata={k: str(v) for k, v in meta.items()})

    async def stat(self, key: str) -> BlobInfo | None:
        return await self._io(self._stat, key)

    def _fetch(self, key: str, dest: Path) -> None:
        info = self._stat(key)
        if info is None:
            raise TierError(errno.ENOENT, f"{self.name}: {key}: not found")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.fetch")
        shutil.copyfile(self.root / key, tmp)
        _size, sha = sha256_file(tmp)
        if info.sha256 is not None and sha != info.sha256:
            tmp.unlink()
            raise TierError(errno.EIO, f"{self.name}: {key}: checksum mismatch ({sha} != {info.sha256})")
        os.rename(tmp, dest)

    async def fetch(self, key: str, dest: Path) -> None:
        await self._io(self._fetch, key, dest)

    def _read_range(self, key: str, offset: int, length: int) -> bytes:
        with open(self.root / key, "rb") as f:
            f.seek(offset)
            return f.read(length)

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        return await self._io(self._read_range, key, offset, length)

    def _delete(self, key: str) -> None:
        path = self.root / key
        for p in (path, _sidecar(path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(FileNotFoundError):
            _fsync_dir(path.parent)
        for d in (path.parent, path.parent.parent):  # empty hour/day directories go too (best effort)
            try:
                d.rmdir()
            except OSError:
                break

    async def delete(self, key: str) -> None:
        await self._io(self._delete, key)

    def _list(self) -> list[BlobInfo]:
        out: list[BlobInfo] = []
        if not self.root.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "keyframes"]
            for name in filenames:
                if name.endswith(".mp4") and not name.startswith("."):
                    key = str((Path(dirpath) / name).relative_to(self.root))
                    info = self._stat(key)
                    if info is not None:
                        out.append(info)
        return sorted(out, key=lambda b: b.key)

    async def list_blobs(self) -> list[BlobInfo]:
        return await self._io(self._list)

    def _disk_usage(self) -> tuple[int, int]:
        path = self.root
        while not path.exists() and path != path.parent:  # not created yet: the file system it will be on
            path = path.parent
        usage = shutil.disk_usage(path)
        return usage.free, usage.total

    async def disk_usage(self) -> tuple[int, int]:
        """(free bytes, total bytes) of the file system the store writes to (statvfs, under `io_timeout`)."""
        return await self._io(self._disk_usage)


class NasStorage(DirStore):
    """A NAS share (NFS/SMB) mounted at `mount_point`, segments under `mount_point/base_path` (local layout).

    Before every write it checks that `mount_point` is still a mount point (`os.path.ismount`): an unmounted
    share leaves an empty directory on the root disk, and writing there would fill the wrong disk and hide
    the recordings when the share comes back. It also refuses a read-only share (EROFS) and one without room
    for the segment plus `min_free_bytes` (ENOSPC). Every call is bounded by `io_timeout` (a hung NFS server).

    Args:
        mount_point: where the share is mounted.
        base_path: directory under the mount point (relative).
        name: backend name in the index.
        io_timeout: seconds per blocking call.
        min_free_bytes: free space to leave on the share.
        require_mount: False to accept a plain directory (tests, a share mounted above `mount_point`).
    """

    def __init__(
        self,
        mount_point: str | os.PathLike[str],
        base_path: str = "fluxkit",
        *,
        name: str = "nas",
        io_timeout: float | None = DEFAULT_IO_TIMEOUT,
        min_free_bytes: int = 64 * 1024 * 1024,
        require_mount: bool = True,
    ) -> None:
        self.mount_point = Path(mount_point)
        super().__init__(self.mount_point / base_path, name=name, io_timeout=io_timeout)
        self.min_free_bytes = min_free_bytes
        self.require_mount = require_mount

    def _check_mounted(self) -> None:
        if self.require_mount and not os.path.ismount(self.mount_point):
            raise TierError(
                errno.ENODEV,
                f"{self.name}: {self.mount_point} is not a mount point (share unmounted?); refusing to write into "
                "the bare mount-point directory",
            )

    def _check_writable(self, size: int) -> None:
        self._check_mounted()
        st = os.statvfs(self.mount_point)
        if st.f_flag & os.ST_RDONLY:
            raise TierError(errno.EROFS, f"{self.name}: {self.mount_point} is mounted read-only")
        free = st.f_bavail * st.f_frsize
        if free < size + self.min_free_bytes:
            raise TierError(errno.ENOSPC, f"{self.name}: share full ({free} bytes free, {size} needed)")

    async def open(self) -> None:
        def _open() -> None:
            self._check_mounted()
            self.root.mkdir(parents=True, exist_ok=True)

        await self._io(_open)

    def _list(self) -> list[BlobInfo]:
        self._check_mounted()  # an unmounted share must not look like an empty one (rebuild would drop rows)
        return super()._list()

    def _disk_usage(self) -> tuple[int, int]:
        self._check_mounted()  # the root disk's free space is not the share's
        return super()._disk_usage()
