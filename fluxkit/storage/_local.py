"""`StorageBackend` (the design's contract) and `LocalStorage`, its local-disk implementation.

Layout under `root` (all times UTC)::

    index.sqlite3                                   the segment index (WAL)
    <stream>/<YYYY-MM-DD>/<HH>/<YYYYMMDD>T<HHMMSS>.<mmm>Z.mp4     finished segments (name = start time)
    <stream>/<YYYY-MM-DD>/<HH>/.<same name>.partial              the segment being written
    <stream>/keyframes/<YYYY-MM-DD>/<epoch ms>.jpg (+ .h264/.h265) keyframe thumbnails and access units

Segment metadata lives in the index and, so the index can be rebuilt from files, in the MP4 itself (a `comment`
tag with the stream id, start time and run id) and in its name.

Crash-safety order. Writing: open `O_EXCL` under the partial name, write and fsync parts, fsync the file, rename
into place, fsync the directory, and only then insert the index row. Deleting (Moonfire's order): mark the row
garbage and its copy `deleting` (one transaction), unlink, fsync the directory, drop the rows. So a live index row
always has its file; a crash leaves at worst an orphan file (adopted at start-up), a partial (cut to its last
complete part and adopted) or a pending deletion (finished at start-up). The index is `SegmentIndex`, shared with
the tier policies (plain local storage is its one-backend case).

An index lost or deleted is rebuilt from the files (`rebuild`, or `open` on a directory without one): segments are
adopted with their keyframe list read back from the fMP4 sample flags, keyframe thumbnails from their files (the
access unit's mtime keeps the keyframe's exact time).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import itertools
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import av
import trio

from ._fmp4 import keyframe_fragments
from ._index import LOCAL, SegmentIndex
from ._model import (
    CheckReport,
    GapRecord,
    KeyframeRecord,
    RecordingQuery,
    RetentionLimits,
    SegmentRecord,
    alternate_segment_name,
    backend_status,
    datetime_from_us,
    parse_segment_name,
    plan_retention,
    segment_name,
    us_from_datetime,
    validate_stream_id,
)
from ._mux import FinishedSegment, describe_file, salvage_partial

__all__ = [
    "INDEX_NAME",
    "LocalStorage",
    "StorageBackend",
    "check",
    "check_main",
    "index_keyframe_files",
    "rebuild_main",
    "reconcile",
    "segment_keyframes",
]

_log = logging.getLogger("fluxkit.recording")

INDEX_NAME = "index.sqlite3"
#: The space reserve beside the index (see `LocalStorage.reserve_bytes`).
RESERVE_NAME = ".fluxkit-reserve"
#: Default size of the reserve: room for the index's WAL while retention deletes on a full disk.
DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024
#: Below this much free space, opening the storage releases the reserve first (see `LocalStorage.open`).
MIN_FREE_TO_OPEN = 1024 * 1024


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, sqlite3.Error) and "full" in str(exc).lower()


def _as_os_error(fn: Any, *args: Any) -> Any:
    """Run a blocking storage call; SQLite's I/O failures come out as OSError, the family callers handle.

    A full disk makes SQLite raise `sqlite3.OperationalError("database or disk is full")`: to the recorder that
    is the same event as a write failing with ENOSPC, so it is reported as one (and other SQLite I/O errors as
    EIO), instead of escaping as a type nobody above the storage knows.
    """
    try:
        return fn(*args)
    except sqlite3.OperationalError as exc:
        code = errno.ENOSPC if _disk_full(exc) else errno.EIO
        raise OSError(code, f"index: {exc}") from exc


#: Holes between consecutive segments shorter than this are not reported as gaps (frame-duration rounding).
GAP_TOLERANCE_US = 100_000

TimeArg = dt.datetime | float | int


@runtime_checkable
class StorageBackend(Protocol):
    """Where recordings go. Async methods are Trio-friendly (blocking work runs in worker threads)."""

    def segment_paths(self, stream_id: str, start_us: int) -> tuple[Path, Path]:
        """(final path, partial path) for a new segment; creates the directories. Blocking: call off the loop."""
        ...

    async def save_segment(self, segment: FinishedSegment) -> SegmentRecord:
        """Make a finished segment durable and indexed (rename into place, fsync the directory, insert)."""
        ...

    async def save_gap(self, stream_id: str, start: TimeArg, end: TimeArg, reason: str) -> None:
        """Record a stretch with no recording and why."""
        ...

    async def save_keyframe(
        self, stream_id: str, time: TimeArg, access_unit: bytes, *, codec: str = "h264", jpeg: bytes | None = None
    ) -> KeyframeRecord:
        """Store a keyframe access unit and its JPEG thumbnail."""
        ...

    async def query_segments(self, stream_id: str, start: TimeArg, end: TimeArg) -> RecordingQuery:
        """Segments overlapping [start, end) and the gaps inside it."""
        ...

    async def cleanup_expired(
        self,
        *,
        now: TimeArg | None = None,
        max_age: float | None = None,
        max_bytes: int | None = None,
        max_stream_bytes: int | None = None,
        free_bytes: int = 0,
        min_free_bytes: int | None = None,
    ) -> list[SegmentRecord]:
        """Delete segments past retention, oldest first; returns what was deleted."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_keyframe_files(
    directory: Path, time_us: int, access_unit: bytes, *, codec: str, jpeg: bytes | None
) -> tuple[Path, Path]:
    """Write a keyframe's access unit and JPEG as `<ms>.<h264|h265>` / `<ms>.jpg` in `directory`, crash-safely
    (temporary name, fsync, rename, directory fsync); returns (jpeg path, access-unit path)."""
    _makedirs(directory)
    stem = str(time_us // 1000)
    au_path = directory / f"{stem}.{'h265' if codec == 'hevc' else codec}"
    jpg_path = directory / f"{stem}.jpg"
    for path, data in ((au_path, access_unit), (jpg_path, jpeg)):
        if data is None:
            continue
        tmp = path.with_name(f".{path.name}.partial")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            # The name keeps milliseconds; the mtime keeps the exact time for a rebuild (`keyframe_time_us`).
            os.utime(f.fileno(), ns=(time_us * 1000, time_us * 1000))
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _fsync_dir(directory)
    return jpg_path, au_path


_AU_SUFFIXES = {".h264": "h264", ".h265": "hevc"}


def keyframe_time_us(au_path: Path) -> int | None:
    """The time of a keyframe stored by `write_keyframe_files`, from its access-unit file: the mtime when it
    agrees with the millisecond name (it was set to the exact time), else the name; None for another file."""
    stem = au_path.stem
    if au_path.suffix not in _AU_SUFFIXES or not stem.isdigit():
        return None
    ms = int(stem)
    try:
        exact = au_path.stat().st_mtime_ns // 1000
    except OSError:
        return None
    return exact if exact // 1000 == ms else ms * 1000


def index_keyframe_files(index: SegmentIndex, files: list[tuple[str, Path]], relative_to: Path | None = None) -> int:
    """Record keyframes found on disk that the index does not list (rebuild); returns how many were added.

    Args:
        index: the index.
        files: (stream, access-unit path) of each keyframe (`<ms>.h264` / `<ms>.h265`, thumbnail `<ms>.jpg`).
        relative_to: store paths relative to this directory (plain local storage), else absolute (the tiers).
    """
    added = 0
    for stream, au_path in files:
        time_us = keyframe_time_us(au_path)
        if time_us is None:
            continue
        jpg = au_path.with_suffix(".jpg")
        if relative_to is not None:
            paths = (str(jpg.relative_to(relative_to)), str(au_path.relative_to(relative_to)))
        else:
            paths = (str(jpg), str(au_path))
        added += index.insert_keyframe(stream, time_us, *paths, unique=True)
    return added


def keyframe_files(directory: Path) -> list[Path]:
    """Access-unit files of stored keyframes under `directory` (`<day>/<ms>.<h264|h265>`), oldest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("*/*") if p.suffix in _AU_SUFFIXES and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (p.parent.name, p.name))


def segment_keyframes(f: Any, size: int) -> tuple[tuple[float, int], ...]:
    """A segment's keyframe list ((video tfdt in seconds, fragment byte offset) pairs, as `describe_file` makes
    it when recording) read back from the fMP4 sample flags of its video track (track 1)."""
    return tuple(keyframe_fragments(f, size, track_id=1))


def _makedirs(path: Path) -> None:
    """mkdir -p that fsyncs each parent whose entry it created (a new directory must survive power loss too)."""
    if path.is_dir():
        return
    _makedirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _record(root: Path, row: tuple[Any, ...]) -> SegmentRecord:
    seg_id, stream, rel, start_us, end_us, media_us, size, sha, keys, run_id, frames = row
    return SegmentRecord(
        id=seg_id,
        stream_id=stream,
        start=datetime_from_us(start_us),
        end=datetime_from_us(end_us),
        duration=media_us / 1e6,
        size=size,
        path=str(root / rel),
        sha256=sha,
        run_id=run_id,
        frames=frames,
        keyframes=tuple((float(t), int(o)) for t, o in json.loads(keys)),
    )


class LocalStorage:
    """Recordings on a local file system, indexed in SQLite. Use `async with LocalStorage(root) as storage`
    or call `open()` / `aclose()`; `open()` reconciles the index with the files first.

    Args:
        root: the data directory (created when missing).
        reconcile_on_open: run `reconcile` when opening (default True).
        wall_clock: returns epoch seconds (retention's default `now`); injectable for tests.
        reserve_bytes: size of the space reserve kept beside the index (0: none).
        retention: the configured limits, applied by `apply_retention` and shown by `status`.
    """

    #: The `policy` that `status()` reports.
    policy = "local"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        reconcile_on_open: bool = True,
        wall_clock: Any = None,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
        retention: RetentionLimits | None = None,
    ) -> None:
        self.root = Path(root)
        self.retention = retention or RetentionLimits()
        #: Bytes pre-allocated in `RESERVE_NAME` and given up on a full disk, so that deleting old segments
        #: (which writes to the index first) can still proceed.
        self.reserve_bytes = reserve_bytes
        self._reconcile = reconcile_on_open
        self._index: SegmentIndex | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._wall_clock = wall_clock or (lambda: dt.datetime.now(dt.UTC).timestamp())
        #: The report of the reconciliation done by `open()` (None before).
        self.last_report: CheckReport | None = None

    @property
    def index(self) -> SegmentIndex:
        if self._index is None:
            raise RuntimeError("LocalStorage is not open")
        return self._index

    async def open(self) -> CheckReport | None:
        """Create the root, open the index, reconcile (unless disabled); returns the reconciliation report."""

        def _open() -> CheckReport | None:
            self.root.mkdir(parents=True, exist_ok=True)
            # SQLite maps its WAL index (`-shm`) into memory; on a full file system a page of that file may have
            # no block behind it and touching it kills the process with SIGBUS (seen in the loop-mounted
            # disk-full test). Opening on a (nearly) full disk therefore first gives up the reserve.
            if (
                shutil.disk_usage(self.root).free < max(self.reserve_bytes, MIN_FREE_TO_OPEN)
                and self._release_reserve()
            ):
                _log.warning(
                    "disk nearly full: released the %d-byte reserve before opening the index", self.reserve_bytes
                )
            fresh = not (self.root / INDEX_NAME).exists()
            self._index = SegmentIndex(self.root / INDEX_NAME)
            report = reconcile(self.root, self._index) if self._reconcile else None
            if fresh and self._reconcile:  # a lost index: the keyframes come back from their files too
                self._adopt_keyframes()
            self._make_reserve()
            return report

        self.last_report = await trio.to_thread.run_sync(_open)
        if self.last_report is not None and (self.last_report.adopted or self.last_report.removed):
            for line in self.last_report.adopted + self.last_report.removed:
                _log.warning("storage reconcile: %s", line)
        return self.last_report

    async def aclose(self) -> None:
        if self._index is not None:
            index, self._index = self._index, None
            await trio.to_thread.run_sync(index.close, limiter=self._limiter)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(_as_os_error, fn, *args, limiter=self._limiter)

    async def recover_partial(self, partial_path: str | os.PathLike[str]) -> bool:
        """Finish a segment whose writing failed (disk full): keep its complete parts as an indexed segment.

        Returns True when something playable was kept. The same recovery `reconcile` does at start-up, run as
        soon as the disk takes writes again, so the recording is complete without waiting for a restart.
        """

        def _recover() -> bool:
            line = _recover_partial(self.root, self.index, Path(partial_path))
            _log.warning("storage: %s", line)
            return line.startswith("recovered")

        result: bool = await self._run(_recover)
        return result

    # -- the space reserve -------------------------------------------------------------------------------------

    def _make_reserve(self) -> None:
        """(Re)create the reserve file; best effort: a disk too full for it simply has none for now."""
        path = self.root / RESERVE_NAME
        if not self.reserve_bytes or (path.exists() and path.stat().st_size >= self.reserve_bytes):
            return
        try:
            with path.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, self.reserve_bytes)
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()

    def _release_reserve(self) -> bool:
        """Delete the reserve file so the index can write on a full disk; True when there was one."""
        try:
            (self.root / RESERVE_NAME).unlink()
        except FileNotFoundError:
            return False
        return True

    # -- writing -----------------------------------------------------------------------------------------------

    def segment_paths(self, stream_id: str, start_us: int) -> tuple[Path, Path]:
        validate_stream_id(stream_id)
        day, hour, name = segment_name(start_us)
        directory = self.root / stream_id / day / hour
        _makedirs(directory)
        return directory / name, directory / f".{name}.partial"

    def _save(self, segment: FinishedSegment) -> SegmentRecord:
        final = segment.final_path
        if final.exists():  # same millisecond start (a restart): never overwrite a recording
            parent = final.parent
            final = parent / alternate_segment_name(
                final.name, segment.run_id, segment.size, lambda name: (parent / name).exists()
            )
        os.rename(segment.partial_path, final)
        _fsync_dir(final.parent)
        rel = str(final.relative_to(self.root))
        row = {
            "stream": segment.stream_id,
            "key": rel,
            "start_us": segment.start_us,
            "end_us": segment.start_us + segment.media_us,
            "media_us": segment.media_us,
            "size": segment.size,
            "sha256": segment.sha256,
            "keyframes": [list(k) for k in segment.keyframes],
            "run_id": segment.run_id,
            "frames": segment.frames,
            "wall_delta_us": segment.wall_delta_us,
        }
        seg_id = self.index.insert_segment(row)
        return _record(
            self.root,
            (seg_id, segment.stream_id, rel, row["start_us"], row["end_us"], segment.media_us, segment.size,
             segment.sha256, json.dumps(row["keyframes"]), segment.run_id, segment.frames),
        )  # fmt: skip

    async def save_segment(self, segment: FinishedSegment) -> SegmentRecord:
        validate_stream_id(segment.stream_id)
        record: SegmentRecord = await self._run(self._save, segment)
        return record

    async def save_gap(self, stream_id: str, start: TimeArg, end: TimeArg, reason: str) -> None:
        validate_stream_id(stream_id)
        await self._run(self.index.insert_gap, stream_id, us_from_datetime(start), us_from_datetime(end), reason)

    async def save_keyframe(
        self, stream_id: str, time: TimeArg, access_unit: bytes, *, codec: str = "h264", jpeg: bytes | None = None
    ) -> KeyframeRecord:
        validate_stream_id(stream_id)
        time_us = us_from_datetime(time)

        def _write() -> KeyframeRecord:
            directory = self.root / stream_id / "keyframes" / datetime_from_us(time_us).strftime("%Y-%m-%d")
            jpg_path, au_path = write_keyframe_files(directory, time_us, access_unit, codec=codec, jpeg=jpeg)
            self.index.insert_keyframe(
                stream_id, time_us, str(jpg_path.relative_to(self.root)), str(au_path.relative_to(self.root))
            )
            return KeyframeRecord(
                stream_id=stream_id, time=datetime_from_us(time_us), path=str(jpg_path), au_path=str(au_path)
            )

        record: KeyframeRecord = await self._run(_write)
        return record

    # -- reading -----------------------------------------------------------------------------------------------

    async def query_segments(self, stream_id: str, start: TimeArg, end: TimeArg) -> RecordingQuery:
        validate_stream_id(stream_id)
        start_us, end_us = us_from_datetime(start), us_from_datetime(end)

        def _query() -> RecordingQuery:
            rows = self.index.segments(stream_id, start_us, end_us)
            segments = tuple(_record(self.root, r) for r in rows)
            gaps = [
                GapRecord(stream_id=s, start=datetime_from_us(a), end=datetime_from_us(b), reason=r)
                for s, a, b, r in self.index.gaps(stream_id, start_us, end_us)
            ]
            covered = [(us_from_datetime(g.start), us_from_datetime(g.end)) for g in gaps]
            for prev, nxt in itertools.pairwise(rows):
                hole_start, hole_end = prev[4], nxt[3]
                if hole_end - hole_start > GAP_TOLERANCE_US and not any(
                    a <= hole_start + GAP_TOLERANCE_US and b >= hole_end - GAP_TOLERANCE_US for a, b in covered
                ):
                    gaps.append(
                        GapRecord(
                            stream_id=stream_id,
                            start=datetime_from_us(hole_start),
                            end=datetime_from_us(hole_end),
                            reason="not_recorded",
                        )
                    )
            gaps.sort(key=lambda g: g.start)
            return RecordingQuery(segments=segments, gaps=tuple(gaps))

        result: RecordingQuery = await self._run(_query)
        return result

    async def query_keyframes(self, stream_id: str, start: TimeArg, end: TimeArg) -> list[KeyframeRecord]:
        """Stored keyframes in [start, end), oldest first."""
        validate_stream_id(stream_id)
        rows = await self._run(self.index.keyframes, stream_id, us_from_datetime(start), us_from_datetime(end))
        return [
            KeyframeRecord(stream_id=s, time=datetime_from_us(t), path=str(self.root / p), au_path=str(self.root / a))
            for s, t, p, a in rows
        ]

    # -- retention ---------------------------------------------------------------------------------------------

    def _plan_retention(
        self, now_us: int, max_age: float | None, max_bytes: int | None, max_stream_bytes: int | None, free_bytes: int
    ) -> list[int]:
        return plan_retention(
            self.index.sizes(), now_us=now_us, max_age=max_age, max_bytes=max_bytes,
            max_stream_bytes=max_stream_bytes, free_bytes=free_bytes,
        )  # fmt: skip

    def _delete(self, ids: list[int]) -> list[SegmentRecord]:
        rows = self.index.to_garbage(ids)  # 1. mark the rows garbage, the copies `deleting` (one transaction)
        records = [_record(self.root, r) for r in rows]
        self._collect_garbage()
        return records

    def _delete_making_room(self, ids: list[int]) -> list[SegmentRecord]:
        """`_delete`, giving up the reserve first when the disk is too full for the index to record it."""
        try:
            deleted = self._delete(ids)
        except (OSError, sqlite3.Error) as exc:
            # On a full disk the index cannot even record what it is about to delete: give it the reserve,
            # delete in the usual crash-safe order, then take the reserve back from the freed space.
            if not _disk_full(exc) or not self._release_reserve():
                raise
            _log.warning("disk full: released the %d-byte reserve so the deletion can run", self.reserve_bytes)
            deleted = self._delete(ids)
        self._make_reserve()
        return deleted

    async def delete_segments(self, ids: Sequence[int]) -> list[SegmentRecord]:
        """Delete these segments now, in the crash-safe order (rows marked garbage, files unlinked and the directory
        fsynced, rows dropped); ids not indexed (or already being deleted) are skipped. Returns the segments
        deleted. This is how a segment is deleted on request (the NVR protocol's DELETE)."""
        wanted = [int(i) for i in ids]
        deleted: list[SegmentRecord] = await self._run(self._delete_making_room, wanted)
        for record in deleted:
            _log.info("deleted %s on request (%d bytes)", record.path, record.size)
        return deleted

    async def stream_ids(self) -> list[str]:
        """The ids of the streams that have recordings, sorted."""
        result: list[str] = await self._run(self.index.streams)
        return result

    def _collect_garbage(self) -> list[str]:
        """Finish every pending deletion; returns the relative paths whose files were removed."""
        pending = self.index.pending_deletions()
        if not pending:
            return []
        dirs: set[Path] = set()
        removed: list[str] = []
        for _seg_id, _backend, rel in pending:
            path = self.root / rel
            try:
                path.unlink()  # 2. unlink
                removed.append(rel)
            except FileNotFoundError:
                pass
            dirs.add(path.parent)
        for directory in dirs:
            with contextlib.suppress(FileNotFoundError):
                _fsync_dir(directory)  # 3. fsync the directory
        for seg_id, backend, _rel in pending:  # 4. drop the rows
            self.index.drop_copy(seg_id, backend)
        self.index.drop_dead_segments()
        for directory in dirs:  # empty hour/day directories go too (best effort)
            for d in (directory, directory.parent):
                try:
                    d.rmdir()
                except OSError:
                    break
        return removed

    async def cleanup_expired(
        self,
        *,
        now: TimeArg | None = None,
        max_age: float | None = None,
        max_bytes: int | None = None,
        max_stream_bytes: int | None = None,
        free_bytes: int = 0,
        min_free_bytes: int | None = None,
    ) -> list[SegmentRecord]:
        """Delete indexed segments past retention, oldest first, in the crash-safe order; returns them.

        The segment being written is never indexed yet, so it is never a candidate.

        Args:
            now: the current wall time (default: the storage's wall clock).
            max_age: seconds after its end that a segment is kept.
            max_bytes: total bytes kept over every stream.
            max_stream_bytes: bytes kept per stream.
            free_bytes: delete at least this many bytes more (oldest first), to make room on a full disk.
            min_free_bytes: delete the oldest until the file system has this much free space.
        """
        now_us = us_from_datetime(self._wall_clock() if now is None else now)

        def _cleanup() -> list[SegmentRecord]:
            need = free_bytes
            if min_free_bytes is not None:
                need = max(need, min_free_bytes - shutil.disk_usage(self.root).free)
            ids = self._plan_retention(now_us, max_age, max_bytes, max_stream_bytes, need)
            deleted = self._delete_making_room(ids)
            if max_age is not None:
                self.index.delete_gaps_before(now_us - round(max_age * 1_000_000))
            return deleted

        deleted: list[SegmentRecord] = await self._run(_cleanup)
        for record in deleted:
            _log.info("retention deleted %s (%d bytes)", record.path, record.size)
        return deleted

    async def apply_retention(self, *, now: TimeArg | None = None) -> list[SegmentRecord]:
        """Apply the storage's own `retention` limits once (nothing when none is set); returns what was deleted."""
        limits = self.retention
        if not limits.active:
            return []
        return await self.cleanup_expired(
            now=now,
            max_age=None if limits.max_age_days is None else limits.max_age_days * 86400.0,
            max_bytes=limits.max_bytes,
            min_free_bytes=limits.min_free_bytes,
        )

    async def run_background(
        self, *, interval: float = 60.0, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Apply `retention` every `interval` seconds until cancelled (as `ManagedStorage.run_background`)."""
        task_status.started()
        while True:
            try:
                await self.apply_retention()
            except OSError as exc:
                _log.warning("storage retention pass failed (retried): %s", exc)
            await trio.sleep(interval)

    # -- rebuild and status ------------------------------------------------------------------------------------

    def _adopt_keyframes(self) -> int:
        files: list[tuple[str, Path]] = []
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            if entry.is_dir() and not entry.name.startswith(".") and _stream_of(self.root, entry) is not None:
                files += [(entry.name, p) for p in keyframe_files(entry / "keyframes")]
        return index_keyframe_files(self.index, files, relative_to=self.root)

    async def rebuild(self, progress: Callable[[str], None] | None = None) -> CheckReport:
        """Bring the index up to date with the files: `reconcile` (orphan segments adopted with their keyframe
        lists read from the fMP4 sample flags) and keyframe thumbnails the index does not list. Idempotent."""

        def _rebuild() -> tuple[CheckReport, int]:
            report = reconcile(self.root, self.index)
            return report, self._adopt_keyframes()

        report: CheckReport
        keyframes: int
        report, keyframes = await self._run(_rebuild)
        if progress is not None:
            progress(f"rebuild {LOCAL}: {len(report.adopted)} segments adopted, {keyframes} keyframes indexed")
        return report

    async def status(self) -> dict[str, Any]:
        """JSON-ready state of the storage for the REST API and the console (index reads and statvfs in a
        worker thread): `{"policy": "local", "backends": [one entry], "migration": None, "pending_repairs": 0}`;
        see `ManagedStorage.status` for the entry's fields."""

        def _status() -> dict[str, Any]:
            disk: tuple[int, int] | None = None
            try:
                usage = shutil.disk_usage(self.root)
                disk, healthy = (usage.free, usage.total), os.access(self.root, os.W_OK)
            except OSError:
                healthy = False
            entry = backend_status(
                name=LOCAL, kind="local", role="local", healthy=healthy,
                usage=self.index.usage().get(LOCAL, (0, 0)), disk=disk, retention=self.retention,
            )  # fmt: skip
            return {"policy": self.policy, "backends": [entry], "migration": None, "pending_repairs": 0}

        result: dict[str, Any] = await self._run(_status)
        return result


# -- reconciliation and check -----------------------------------------------------------------------------------


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """(finished segment files, partial files) under root, skipping keyframe directories."""
    finished: list[Path] = []
    partial: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        dirnames[:] = [d for d in dirnames if d != "keyframes"]
        for name in filenames:
            if name.endswith(".mp4.partial") and name.startswith("."):
                partial.append(Path(dirpath) / name)
            elif name.endswith(".mp4") and not name.startswith("."):
                finished.append(Path(dirpath) / name)
    return finished, partial


def _probe(path: Path) -> tuple[int, int] | None:
    """(media µs, video frames) of a segment read with PyAV (no decoding), or None when it is unreadable."""
    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            if not streams:
                return None
            stream = streams[0]
            first = last = None
            step = 0
            frames = 0
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                if first is None:
                    first = packet.dts
                if last is not None and packet.dts > last:
                    step = packet.dts - last
                last = packet.dts
                frames += 1
            if first is None or last is None or stream.time_base is None:
                return None
            return round((last - first + step) * stream.time_base * 1_000_000), frames
    except (av.FFmpegError, OSError, ValueError):
        return None


def _stream_of(root: Path, path: Path) -> str | None:
    try:
        stream = path.relative_to(root).parts[0]
        return validate_stream_id(stream)
    except (ValueError, IndexError, Exception):
        return None


def _adopt(root: Path, index: SegmentIndex, path: Path) -> str | None:
    start_us = parse_segment_name(path.name.split("-")[0] if "-" in path.name else path.name)
    stream = _stream_of(root, path)
    probe = _probe(path)
    if start_us is None or stream is None or probe is None:
        return None
    media_us, frames = probe
    size, digest, _fragments = describe_file(path)
    with open(path, "rb") as f:
        keyframes = segment_keyframes(f, size)  # the sync-sample flags, not every fragment (parts are fragments)
    index.insert_segment(
        {
            "stream": stream,
            "key": str(path.relative_to(root)),
            "start_us": start_us,
            "end_us": start_us + media_us,
            "media_us": media_us,
            "size": size,
            "sha256": digest,
            "keyframes": [list(k) for k in keyframes],
            "run_id": -1,
            "frames": frames,
        }
    )
    return f"{path.relative_to(root)} ({media_us / 1e6:.3f} s)"


def _recover_partial(root: Path, index: SegmentIndex, path: Path) -> str:
    """Cut a `.partial` back to its last complete part, rename it into place and index it; one line of report.

    The line starts with "recovered" when the file was adopted; otherwise it says why it was removed.
    """
    final = path.with_name(path.name[1 : -len(".partial")])
    if not salvage_partial(path):
        return f"{path.relative_to(root)} (no complete part)"
    if final.exists():
        final = final.with_name(final.stem + "-recovered.mp4")
    os.rename(path, final)
    _fsync_dir(final.parent)
    line = _adopt(root, index, final)
    if line is None:
        final.unlink()
        return f"{final.relative_to(root)} (unreadable after recovery)"
    return f"recovered {line}"


def _inspect(root: Path, index: SegmentIndex) -> tuple[CheckReport, list[Path], list[Path], list[int]]:
    indexed = index.indexed_paths()
    finished, partials = _walk(root)
    on_disk = {str(p.relative_to(root)): p for p in finished}
    missing = sorted(rel for rel in indexed if rel not in on_disk)
    orphans = sorted(rel for rel in on_disk if rel not in indexed)
    mismatched = []
    for rel, (_id, size) in indexed.items():
        path = on_disk.get(rel)
        if path is not None:
            actual = path.stat().st_size
            if actual != size:
                mismatched.append(f"{rel} (index {size}, file {actual})")
    garbage = sorted(rel for rel, _s in index.garbage())
    report = CheckReport(
        missing=tuple(missing),
        orphans=tuple(orphans),
        partials=tuple(sorted(str(p.relative_to(root)) for p in partials)),
        mismatched=tuple(mismatched),
        garbage=tuple(garbage),
    )
    return report, [on_disk[r] for r in orphans], partials, [indexed[r][0] for r in missing]


def reconcile(root: Path, index: SegmentIndex) -> CheckReport:
    """Bring the index and the files into agreement (blocking; run at start-up before recording).

    Finishes pending garbage deletions, cuts `.partial` files back to their last complete fragment and adopts
    them, adopts orphan MP4 files that PyAV can read (removing unreadable ones), and drops index rows whose file
    vanished. Returns what it found (`missing`, `orphans`, `partials`, `garbage`) and did (`adopted`, `removed`).
    """
    report, orphans, partials, missing_ids = _inspect(root, index)
    adopted: list[str] = []
    removed: list[str] = []
    # Pending deletions first: those files must not be adopted back.
    pending = index.pending_deletions()
    for _seg_id, _backend, rel in pending:
        with contextlib.suppress(FileNotFoundError):
            (root / rel).unlink()
            removed.append(f"{rel} (pending deletion)")
        with contextlib.suppress(FileNotFoundError):
            _fsync_dir((root / rel).parent)
    for seg_id, backend, _rel in pending:
        index.drop_copy(seg_id, backend)
    index.drop_dead_segments()
    garbage_set = set(report.garbage) | {rel for _i, _b, rel in pending}
    if missing_ids:  # before adopting: a recovered file may take the name of a row whose file vanished
        index.delete_segment_rows(missing_ids)
        removed += [f"{rel} (index row, file missing)" for rel in report.missing]
    for path in partials:
        outcome = _recover_partial(root, index, path)
        (adopted if outcome.startswith("recovered") else removed).append(outcome)
    for path in orphans:
        rel = str(path.relative_to(root))
        if rel in garbage_set or not path.exists():
            continue
        line = _adopt(root, index, path)
        if line is None:
            path.unlink()
            _fsync_dir(path.parent)
            removed.append(f"{rel} (unreadable orphan)")
        else:
            adopted.append(f"orphan {line}")
    return CheckReport(
        missing=report.missing,
        orphans=report.orphans,
        partials=report.partials,
        mismatched=report.mismatched,
        garbage=report.garbage,
        adopted=tuple(adopted),
        removed=tuple(removed),
    )


def check(root: str | os.PathLike[str]) -> CheckReport:
    """Compare the index under `root` with the files, changing nothing (blocking)."""
    root = Path(root)
    if not (root / INDEX_NAME).exists():
        finished, partials = _walk(root) if root.exists() else ([], [])
        return CheckReport(
            orphans=tuple(sorted(str(p.relative_to(root)) for p in finished)),
            partials=tuple(sorted(str(p.relative_to(root)) for p in partials)),
        )
    index = SegmentIndex(root / INDEX_NAME)
    try:
        return _inspect(root, index)[0]
    finally:
        index.close()


def check_main(data_dir: str | os.PathLike[str]) -> int:
    """`fluxkit storage check`: print one line per mismatch; 0 when the index and the files agree, else 1."""
    try:
        report = check(data_dir)
    except OSError as exc:
        print(f"storage check failed: {exc}")
        return 1
    for line in report.lines():
        print(line)
    if report.ok:
        print(f"storage OK: {data_dir}")
        return 0
    return 1


def rebuild_main(data_dir: str | os.PathLike[str], progress: Callable[[str], None] | None = None) -> int:
    """`fluxkit storage rebuild` for plain local storage: bring the index under `data_dir` up to date with the
    files (segments with their keyframe lists, keyframe thumbnails); 0 on success, 1 on an error."""

    async def _main() -> CheckReport:
        async with LocalStorage(data_dir, reconcile_on_open=False) as storage:
            return await storage.rebuild(progress or (lambda line: print(line, flush=True)))

    try:
        report = trio.run(_main)
    except OSError as exc:
        print(f"storage rebuild failed: {exc}", flush=True)
        return 1
    for line in report.adopted + report.removed:
        print(line, flush=True)
    print(f"rebuild done: {len(report.adopted)} segments adopted", flush=True)
    return 0


def is_disk_error(exc: BaseException) -> bool:
    """True for the write errors that pause recording (disk full, read-only, permission, quota, I/O)."""
    return isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EDQUOT,
        errno.EIO,
    )
