"""The storage policies: one index over several backends (`primary_backup`, `multi_replica`, `tiered`).

Strategy: `ManagedStorage` implements the recorder's `StorageBackend` contract over a `SegmentIndex` (the same
index as plain local storage, `fluxkit.storage._index`; the file here is `tiers.sqlite3`) and named
`BlobStore`s. The recorder writes each segment into a local spool (`segment_paths`); `save_segment` places the
finished file on backends as the policy says, records the copies (data durable first, then one index
transaction), and only then removes the spooled file. Reads (`query_segments`) come from the index;
`fetch_to_cache` / `read_range` read a segment from whichever backend holds it, a local one directly.

Moves (tier migration, repair) follow the index's order: copy, verify (size and sha256 as the destination reports
them; S3 also checked the ETag against the bytes sent), add the destination copy, then mark the source
`deleting`, delete it, drop its row. Every step is in the index, so a killed process resumes where it stopped:
`finish_deletions` at open, and the next `migrate()` / `repair()` sees what is still to do, including a move
killed between recording the destination copy and marking the source (both copies `ok`): the destination is
checked on its backend again, then the source goes (`_finish_move`).

`delete_segments(ids)` deletes segments on request (every copy, the same order) and `stream_ids()` lists the
streams with recordings: with `query_segments`, what the NVR server routes (`_nvr`) need.

Retention runs per backend (`retention={name: RetentionLimits}`, applied by `apply_retention` in the background
pass): by age, by bytes kept and by free space, oldest first. A copy whose segment has another copy is retired
(marked, deleted, then its row turns `retired` so repair does not copy it back); the last copy takes the segment
with it (marked garbage, deleted, rows dropped), the recording layer's deletion order either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import attrs
import trio

from fluxkit.storage._index import SegmentIndex
from fluxkit.storage._local import (
    index_keyframe_files,
    keyframe_files,
    segment_keyframes,
    write_keyframe_files,
)
from fluxkit.storage._model import (
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
from fluxkit.storage._mux import FinishedSegment, describe_file, salvage_partial

from ._stores import BlobStore, TierError, sha256_file

__all__ = [
    "INDEX_NAME",
    "ManagedStorage",
    "MultiReplicaStorage",
    "PrimaryBackupStorage",
    "TierCheckReport",
    "TieredStorage",
]

_log = logging.getLogger("fluxkit.storage.tiers")

INDEX_NAME = "tiers.sqlite3"
TimeArg = dt.datetime | float | int
Progress = Callable[[str], None]


@attrs.frozen(kw_only=True, slots=True)
class TierCheckReport:
    """Result of `check()` across every copy: one line of text per finding.

    Attributes:
        copies: copies checked.
        missing: copies the index lists that the backend does not have.
        mismatched: copies whose size or sha256 differs from the index.
        unreachable: backends that could not be asked (the error).
        degraded: segments with fewer copies than the policy wants.
        orphans: blobs on a backend that the index does not know.
    """

    copies: int = 0
    missing: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.unreachable or self.degraded or self.orphans)

    def lines(self) -> list[str]:
        out = [f"missing copy: {x}" for x in self.missing]
        out += [f"checksum/size mismatch: {x}" for x in self.mismatched]
        out += [f"backend unreachable: {x}" for x in self.unreachable]
        out += [f"degraded: {x}" for x in self.degraded]
        out += [f"orphan: {x}" for x in self.orphans]
        return out


def _metadata(row: dict[str, Any]) -> dict[str, str]:
    """The segment fields stored beside the data (rebuild reads them back). Keyframe offsets are not (S3 metadata
    is limited to 2 KB); a rebuilt row has none until the file is read again."""
    return {
        "stream": row["stream"],
        "start-us": str(row["start_us"]),
        "media-us": str(row["media_us"]),
        "frames": str(row.get("frames", 0)),
        "run-id": str(row.get("run_id", 0)),
    }


#: Seconds `status()` waits for a backend's free space before calling it unhealthy (a hung NAS).
STATUS_IO_TIMEOUT = 5.0


def backend_type(store: BlobStore) -> str:
    """The config `type` of a store: "local", "nas", "s3" or "nvr" (a store may say so with `backend_type`)."""
    from ._stores import DirStore, NasStorage

    declared = getattr(store, "backend_type", None)
    if isinstance(declared, str):
        return declared
    if isinstance(store, NasStorage):
        return "nas"
    if isinstance(store, DirStore):
        return "local"
    names = {c.__name__ for c in type(store).__mro__}
    return "s3" if "CloudStorage" in names else "nvr" if "NvrStorage" in names else type(store).__name__.lower()


class _RangeReader:
    """A read-only file object over `read_range` of a remote store (from a worker thread), reading ahead in
    `window`-byte requests: the fMP4 scan reads box headers and small `moof`s, so one request covers most."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, window: int = 64 * 1024) -> None:
        self._fetch, self._size, self._window = fetch, size, window
        self._pos = 0
        self._buf = b""
        self._buf_at = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else self._pos + pos if whence == 1 else self._size + pos
        return self._pos

    def read(self, n: int = -1) -> bytes:
        pos = self._pos
        end = self._size if n < 0 else min(self._size, pos + n)
        if end <= pos:
            return b""
        if not (self._buf_at <= pos and end <= self._buf_at + len(self._buf)):
            self._buf = self._fetch(pos, min(self._size - pos, max(end - pos, self._window)))
            self._buf_at = pos
        out = self._buf[pos - self._buf_at : end - self._buf_at]
        self._pos = pos + len(out)
        return out


class ManagedStorage:
    """Segments on one or more backends with one index; the base of the policies (alone: every write goes to
    every backend, all must succeed).

    Args:
        stores: the backends (names must differ).
        state_dir: local directory for the index, the write spool, keyframes and the read cache.
        own_stores: open and close the stores with this storage.
        wall_clock: returns epoch seconds (for ages); injectable for tests.
        retention: per-backend limits ({backend name: RetentionLimits}), applied by `apply_retention`.
    """

    #: Copies a segment should have (`check` reports fewer as degraded).
    wanted_copies = 1
    #: The `policy` that `status()` reports (every write to every backend is `multi_replica` with a full quorum).
    policy = "multi_replica"

    def __init__(
        self,
        stores: Sequence[BlobStore],
        *,
        state_dir: str | os.PathLike[str],
        own_stores: bool = True,
        wall_clock: Callable[[], float] | None = None,
        retention: Mapping[str, RetentionLimits] | None = None,
    ) -> None:
        names = [s.name for s in stores]
        if len(set(names)) != len(names):
            raise ValueError(f"backend names must differ: {names}")
        unknown = sorted(set(retention or {}) - set(names))
        if unknown:
            raise ValueError(f"retention for unknown backends: {unknown}")
        self.retention: dict[str, RetentionLimits] = {n: (retention or {}).get(n, RetentionLimits()) for n in names}
        self.stores: dict[str, BlobStore] = {s.name: s for s in stores}
        self.state_dir = Path(state_dir)
        self.spool = self.state_dir / "spool"
        self.cache = self.state_dir / "cache"
        self._own = own_stores
        self._wall_clock = wall_clock or (lambda: dt.datetime.now(dt.UTC).timestamp())
        self._index: SegmentIndex | None = None
        self._db_limiter = trio.CapacityLimiter(1)
        #: Backends that failed to open (retried by `repair`).
        self.down: dict[str, str] = {}
        #: The last (or running) `migrate()`: {"running", "done", "total"}; None before the first (see `status`).
        self.migration: dict[str, Any] | None = None

    # -- life cycle --------------------------------------------------------------------------------------------

    @property
    def index(self) -> SegmentIndex:
        if self._index is None:
            raise RuntimeError("storage is not open")
        return self._index

    async def open(self) -> None:
        def _open() -> SegmentIndex:
            self.spool.mkdir(parents=True, exist_ok=True)
            self.cache.mkdir(parents=True, exist_ok=True)
            return SegmentIndex(self.state_dir / INDEX_NAME)

        self._index = await trio.to_thread.run_sync(_open)
        if self._own:
            for store in self.stores.values():
                try:
                    await store.open()
                except OSError as exc:  # a backend that is down must not stop recording to the others
                    self.down[store.name] = str(exc)
                    _log.warning("storage backend %s unavailable: %s", store.name, exc)
        await self.finish_deletions()
        await self.salvage_spool()

    def _spool_leftovers(self) -> list[FinishedSegment]:
        """Segments a crash (or a failed save) left in the spool, cut back to their last complete fragment and
        described from the file (blocking). Unusable leftovers are removed."""
        from fluxkit.storage._local import _probe  # PyAV, no decoding: (media µs, frames)

        out: list[FinishedSegment] = []
        for path in sorted(self.spool.rglob(".*.mp4.partial")):
            name = path.name[1 : -len(".partial")]
            start_us = parse_segment_name(name)
            stream = path.relative_to(self.spool).parts[0]
            probed = _probe(path) if start_us is not None and salvage_partial(path) else None
            if start_us is None or probed is None:
                _log.warning("storage: dropping unusable spool leftover %s", path)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            size, sha, keyframes = describe_file(path)
            out.append(FinishedSegment(
                stream_id=stream, partial_path=path, final_path=path.with_name(name), start_us=start_us,
                media_us=probed[0], size=size, sha256=sha, run_id=-1, frames=probed[1], keyframes=keyframes,
            ))  # fmt: skip
        return out

    async def salvage_spool(self) -> int:
        """Store what a crash left in the spool (segments being written, or whose save failed); returns how many.
        A segment that still cannot be stored stays in the spool for the next open."""
        saved = 0
        for segment in await trio.to_thread.run_sync(self._spool_leftovers):
            try:
                await self.save_segment(segment)
            except OSError as exc:
                _log.warning("storage: salvaged %s not stored yet: %s", segment.partial_path, exc)
                continue
            saved += 1
            _log.warning("storage: salvaged %s from the spool", segment.final_path.name)
        return saved

    async def aclose(self) -> None:
        if self._own:
            for store in reversed(list(self.stores.values())):
                with contextlib.suppress(Exception):
                    await store.aclose()
        if self._index is not None:
            index, self._index = self._index, None
            await trio.to_thread.run_sync(index.close, limiter=self._db_limiter)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._db_limiter)

    # -- writing -----------------------------------------------------------------------------------------------

    def segment_paths(self, stream_id: str, start_us: int) -> tuple[Path, Path]:
        validate_stream_id(stream_id)
        day, hour, name = segment_name(start_us)
        directory = self.spool / stream_id / day / hour
        directory.mkdir(parents=True, exist_ok=True)
        return directory / name, directory / f".{name}.partial"

    async def _put(self, store: BlobStore, key: str, path: Path, row: dict[str, Any]) -> None:
        await store.put_file(key, path, size=row["size"], sha256=row["sha256"], metadata=_metadata(row))

    async def _put_many(self, names: Sequence[str], key: str, path: Path, row: dict[str, Any]) -> dict[str, str]:
        """Put to several backends at once; {name: error} of those that failed."""
        errors: dict[str, str] = {}

        async def _one(name: str) -> None:
            try:
                await self._put(self.stores[name], key, path, row)
            except OSError as exc:
                errors[name] = str(exc)
                _log.warning("storage: writing %s to %s failed: %s", key, name, exc)

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(_one, name)
        return errors

    async def place(self, key: str, path: Path, row: dict[str, Any]) -> list[str]:
        """Write a new segment; returns the backends that now hold it. The policy's decision: override."""
        errors = await self._put_many(list(self.stores), key, path, row)
        if errors:
            raise TierError(
                errno.EIO, f"segment {key} not stored: " + "; ".join(f"{n}: {e}" for n, e in errors.items())
            )
        return list(self.stores)

    async def save_segment(self, segment: FinishedSegment) -> SegmentRecord:
        validate_stream_id(segment.stream_id)
        source = segment.partial_path
        key = self._key_for(segment)
        row = {
            "key": key,
            "stream": segment.stream_id,
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
        placed = await self.place(key, source, row)
        seg_id: int = await self._db(self.index.insert_segment, row, placed)
        with contextlib.suppress(FileNotFoundError):
            await trio.to_thread.run_sync(source.unlink)  # only now: the copies are durable and indexed
        return self._record(
            (seg_id, row["stream"], key, row["start_us"], row["end_us"], row["media_us"], row["size"], row["sha256"],
             json.dumps(row["keyframes"]), row["run_id"], row["frames"]),
            placed,
        )  # fmt: skip

    def _key_for(self, segment: FinishedSegment) -> str:
        try:
            key = str(segment.final_path.relative_to(self.spool))
        except ValueError:
            day, hour, name = segment_name(segment.start_us)
            key = f"{segment.stream_id}/{day}/{hour}/{name}"
        if self.index.segment_by_key(key) is not None:  # same millisecond start after a restart: never overwrite
            folder, _, name = key.rpartition("/")
            name = alternate_segment_name(
                name, segment.run_id, segment.size, lambda n: self.index.segment_by_key(f"{folder}/{n}") is not None
            )
            key = f"{folder}/{name}"
        return key

    async def save_gap(self, stream_id: str, start: TimeArg, end: TimeArg, reason: str) -> None:
        validate_stream_id(stream_id)
        await self._db(self.index.insert_gap, stream_id, us_from_datetime(start), us_from_datetime(end), reason)

    async def save_keyframe(
        self, stream_id: str, time: TimeArg, access_unit: bytes, *, codec: str = "h264", jpeg: bytes | None = None
    ) -> KeyframeRecord:
        """Keyframes stay local (in `state_dir/keyframes`): they are small and read often."""
        validate_stream_id(stream_id)
        time_us = us_from_datetime(time)

        def _write() -> KeyframeRecord:
            directory = self.state_dir / "keyframes" / stream_id / datetime_from_us(time_us).strftime("%Y-%m-%d")
            jpg, au_path = write_keyframe_files(directory, time_us, access_unit, codec=codec, jpeg=jpeg)
            self.index.insert_keyframe(stream_id, time_us, str(jpg), str(au_path))
            return KeyframeRecord(stream_id=stream_id, time=datetime_from_us(time_us), path=str(jpg),
                                  au_path=str(au_path))  # fmt: skip

        record: KeyframeRecord = await trio.to_thread.run_sync(_write, limiter=self._db_limiter)
        return record

    async def query_keyframes(self, stream_id: str, start: TimeArg, end: TimeArg) -> list[KeyframeRecord]:
        """Stored keyframes in [start, end), oldest first (they stay local, see `save_keyframe`)."""
        validate_stream_id(stream_id)
        rows = await self._db(self.index.keyframes, stream_id, us_from_datetime(start), us_from_datetime(end))
        return [KeyframeRecord(stream_id=s, time=datetime_from_us(t), path=p, au_path=a) for s, t, p, a in rows]

    @property
    def root(self) -> Path:
        """The local directory this storage writes to first (its state: index, spool, keyframes, cache)."""
        return self.state_dir

    # -- reading -----------------------------------------------------------------------------------------------

    def _location(self, key: str, backends: Sequence[str]) -> str:
        """The path of a local copy when there is one, else `<backend>:<key>` (read it with `fetch_to_cache`)."""
        for name in backends:
            local = self.stores[name].local_path(key) if name in self.stores else None
            if local is not None:
                return str(local)
        return f"{backends[0]}:{key}" if backends else f"?:{key}"

    def _record(self, row: tuple[Any, ...], backends: Sequence[str]) -> SegmentRecord:
        seg_id, stream, key, start_us, end_us, media_us, size, sha, keys, run_id, frames = row
        return SegmentRecord(
            id=seg_id, stream_id=stream, start=datetime_from_us(start_us), end=datetime_from_us(end_us),
            duration=media_us / 1e6, size=size, path=self._location(key, backends), sha256=sha, run_id=run_id,
            frames=frames, keyframes=tuple((float(t), int(o)) for t, o in json.loads(keys)),
        )  # fmt: skip

    async def query_segments(self, stream_id: str, start: TimeArg, end: TimeArg) -> RecordingQuery:
        validate_stream_id(stream_id)
        start_us, end_us = us_from_datetime(start), us_from_datetime(end)

        def _query() -> RecordingQuery:
            rows = self.index.segments(stream_id, start_us, end_us)
            copies = self.index.all_copies()
            segments = tuple(self._record(r, copies.get(r[0], [])) for r in rows)
            gaps = tuple(
                GapRecord(stream_id=s, start=datetime_from_us(a), end=datetime_from_us(b), reason=why)
                for s, a, b, why in self.index.gaps(stream_id, start_us, end_us)
            )
            return RecordingQuery(segments=segments, gaps=gaps)

        result: RecordingQuery = await self._db(_query)
        return result

    def _readable(self, backends: list[str]) -> list[str]:
        """Backends to read from, local ones first."""
        return sorted(backends, key=lambda n: self.stores[n].local_path("x") is None) if backends else []

    async def _row_copies(self, record: SegmentRecord) -> tuple[str, list[str]]:
        row = await self._db(self.index.segment_by_id, record.id)
        if row is None:
            raise TierError(errno.ENOENT, f"segment {record.id} is no longer indexed")
        copies = [n for n in await self._db(self.index.copies, record.id) if n in self.stores]
        return row[2], self._readable(copies)

    async def fetch_to_cache(self, record: SegmentRecord) -> Path:
        """A local path to the segment's bytes: the local copy itself, or a verified download into the cache.

        This is how playback and export (which open local files) read a segment kept only remotely.
        """
        key, backends = await self._row_copies(record)
        errors: list[str] = []
        for name in backends:
            store = self.stores[name]
            local = store.local_path(key)
            if local is not None:
                if local.exists():
                    return local
                continue
            dest = self.cache / key
            if dest.exists() and dest.stat().st_size == record.size:
                return dest
            try:
                await store.fetch(key, dest)
                return dest
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        raise TierError(errno.EIO, f"segment {key} unreadable from every copy: {'; '.join(errors) or 'no copy'}")

    async def read_range(self, record: SegmentRecord, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of the segment, from the first copy that answers (range GET on S3)."""
        key, backends = await self._row_copies(record)
        errors: list[str] = []
        for name in backends:
            try:
                return await self.stores[name].read_range(key, offset, length)
            except OSError as exc:
                errors.append(f"{name}: {exc}")
        raise TierError(errno.EIO, f"segment {key} unreadable from every copy: {'; '.join(errors) or 'no copy'}")

    # -- moving copies -----------------------------------------------------------------------------------------

    async def _source_file(self, key: str, src: str, scratch: Path) -> Path:
        local = self.stores[src].local_path(key)
        if local is not None:
            return local
        await self.stores[src].fetch(key, scratch)
        return scratch

    async def copy(self, seg_id: int, src: str, dst: str) -> None:
        """Copy a segment from backend `src` to `dst`, verify it there, and record the new copy."""
        row = await self._db(self.index.segment_by_id, seg_id)
        if row is None:
            return
        key, size, sha = row[2], row[6], row[7]
        fields = {"stream": row[1], "start_us": row[3], "media_us": row[5], "frames": row[10], "run_id": row[9],
                  "size": size, "sha256": sha}  # fmt: skip
        scratch = self.cache / ".moving" / key
        path = await self._source_file(key, src, scratch)
        try:
            await self._put(self.stores[dst], key, path, fields)
        finally:
            if path == scratch:
                with contextlib.suppress(FileNotFoundError):
                    scratch.unlink()
        info = await self.stores[dst].stat(key)
        if info is None or info.size != size or (info.sha256 is not None and info.sha256 != sha):
            raise TierError(errno.EIO, f"{dst}: {key}: verification after copy failed ({info})")
        await self._db(self.index.add_copy, seg_id, dst)

    async def move(self, seg_id: int, src: str, dst: str) -> None:
        """Copy, verify, record, and only then delete the source copy."""
        await self.copy(seg_id, src, dst)
        await self._db(self.index.mark_deleting, seg_id, src)
        await self.finish_deletions()

    async def _finish_move(self, seg_id: int, sources: Sequence[str], kept: Sequence[str], *, verify: bool) -> bool:
        """The end of a move whose destination copy is recorded: mark the `sources` copies `deleting`, delete
        them, drop their rows. With `verify`, first ask the backends of `kept` (one must hold the segment as the
        index describes it: a move killed before its source was marked is finished by a later run this way).
        Returns False, keeping the sources, when no kept copy is good."""
        if verify:
            row = await self._db(self.index.segment_by_id, seg_id)
            good = False
            for name in kept:
                if row is None or name in self.down:
                    continue
                info = await self.stores[name].stat(row[2])
                if info is not None and info.size == row[6] and (info.sha256 is None or info.sha256 == row[7]):
                    good = True
                    break
            if not good:
                _log.warning("storage: segment %d keeps its %s copy: no verified copy on %s", seg_id,
                             ", ".join(sources), ", ".join(kept) or "the destination")  # fmt: skip
                return False
        elif not kept:
            return False
        for name in sources:
            await self._db(self.index.mark_deleting, seg_id, name)
        await self.finish_deletions()
        return True

    async def finish_deletions(self) -> int:
        """Delete the copies marked `deleting` (a move's last step, retention, or a crash's leftovers)."""
        pending = await self._db(self.index.pending_deletions)
        done = 0
        for seg_id, backend, key in pending:
            store = self.stores.get(backend)
            if store is None or backend in self.down:
                continue
            try:
                await store.delete(key)
            except OSError as exc:
                _log.warning("storage: deleting %s from %s failed (retried later): %s", key, backend, exc)
                continue
            await self._db(self.index.drop_copy, seg_id, backend)
            done += 1
        await self._db(self.index.drop_dead_segments)
        return done

    # -- retention ---------------------------------------------------------------------------------------------

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
        """Delete segments past retention (every copy), oldest first, in the crash-safe order.

        These limits count segments, whatever their copies (the recorder's `[video.storage]` retention);
        `min_free_bytes` is applied per backend as in `apply_retention`. Per-backend limits are `retention`.
        """
        now_us = us_from_datetime(self._wall_clock() if now is None else now)

        def _plan() -> list[SegmentRecord]:
            doomed = plan_retention(
                self.index.sizes(), now_us=now_us, max_age=max_age, max_bytes=max_bytes,
                max_stream_bytes=max_stream_bytes, free_bytes=free_bytes,
            )  # fmt: skip
            copies = self.index.all_copies()
            records = []
            for seg_id in doomed:
                r = self.index.segment_by_id(seg_id)
                if r is not None:
                    records.append(self._record(r, copies.get(seg_id, [])))
            self.index.to_garbage(doomed)
            if max_age is not None:
                self.index.delete_gaps_before(now_us - round(max_age * 1_000_000))
            return records

        records: list[SegmentRecord] = await self._db(_plan)
        await self.finish_deletions()
        if min_free_bytes is not None:
            limits = RetentionLimits(min_free_bytes=min_free_bytes)
            gone = await self._retire(dict.fromkeys(self.stores, limits), now_us)
            records += [r for r in gone if all(r.id != x.id for x in records)]
        return records

    async def delete_segments(self, ids: Sequence[int]) -> list[SegmentRecord]:
        """Delete these segments now, every copy, in the crash-safe order: the rows marked garbage and the copies
        `deleting` (one transaction), each copy deleted, the rows dropped. Ids not indexed (or already being
        deleted) are skipped; a copy on a backend that is down stays marked and goes when it is back (the segment
        is no longer listed meanwhile). Returns the segments deleted (the NVR protocol's DELETE uses this)."""
        wanted = [int(i) for i in ids]

        def _mark() -> list[SegmentRecord]:
            copies = self.index.all_copies()
            return [self._record(row, copies.get(row[0], [])) for row in self.index.to_garbage(wanted)]

        records: list[SegmentRecord] = await self._db(_mark)
        await self.finish_deletions()
        for record in records:
            _log.info("deleted segment %s on request (%d bytes, every copy)", record.path, record.size)
        return records

    async def stream_ids(self) -> list[str]:
        """The ids of the streams that have recordings, sorted."""
        result: list[str] = await self._db(self.index.streams)
        return result

    async def disk_usage(self, name: str) -> tuple[int, int] | None:
        """(free bytes, total bytes) of a backend's file system, or None when it cannot tell (S3, NVR) or is
        unreachable. Runs in a worker thread under the store's I/O timeout."""
        store = self.stores[name]
        usage = getattr(store, "disk_usage", None)
        if usage is None or name in self.down:
            return None
        try:
            result: tuple[int, int] | None = await usage()
        except OSError:
            return None
        return result

    async def _retire(self, limits: Mapping[str, RetentionLimits], now_us: int) -> list[SegmentRecord]:
        """Plan and run per-backend retention; returns the segments whose last copy went (see `apply_retention`)."""
        pairs: list[tuple[int, str]] = []
        for name, limit in limits.items():
            if not limit.active or name in self.down:
                continue
            need = 0
            if limit.min_free_bytes is not None:
                usage = await self.disk_usage(name)
                need = 0 if usage is None else max(0, limit.min_free_bytes - usage[0])
            rows = await self._db(self.index.sizes, name)
            max_age = None if limit.max_age_days is None else limit.max_age_days * 86400.0
            ids = plan_retention(rows, now_us=now_us, max_age=max_age, max_bytes=limit.max_bytes, free_bytes=need)
            pairs += [(seg_id, name) for seg_id in ids]
        if not pairs:
            return []

        def _mark() -> list[SegmentRecord]:
            copies = self.index.all_copies()
            before = {seg_id: self.index.segment_by_id(seg_id) for seg_id, _n in pairs}
            doomed, retiring = self.index.retire(pairs)
            for seg_id, name in retiring:
                _log.info("retention: removing the %s copy of segment %d (other copies stay)", name, seg_id)
            return [self._record(row, copies.get(i, [])) for i in doomed if (row := before.get(i)) is not None]

        records: list[SegmentRecord] = await self._db(_mark)
        await self.finish_deletions()
        for record in records:
            _log.info("retention deleted segment %s (%d bytes, last copy)", record.path, record.size)
        return records

    async def status(self) -> dict[str, Any]:
        """JSON-ready state for the REST API and the console; index reads and statvfs run in worker threads.

        Returns `{"policy", "backends": [...], "migration", "pending_repairs"}`; each backend entry is
        `{"name", "type" ("local" | "nas" | "s3" | "nvr"), "role" ("primary" | "backup" | "replica" | "hot" |
        "warm" | "cold"), "healthy", "used_bytes", "segments", "free_bytes", "total_bytes", "retention":
        {"max_age_days", "max_bytes", "min_free_bytes"}}`, where `used_bytes` / `segments` count the verified
        copies the index knows on that backend, `free_bytes` / `total_bytes` are its file system's (None for S3
        and NVR, or when it does not answer within `STATUS_IO_TIMEOUT`), and `healthy` is False for a backend
        that failed to open or whose file system cannot be read. `migration` is `{"running", "done", "total"}`
        of the current or last tier move (None for other policies), `pending_repairs` the copies `repair()`
        would make now.
        """
        usage: dict[str, tuple[int, int]] = await self._db(self.index.usage)
        pending: int = await self._db(self.pending_repairs)
        backends = []
        for name, store in self.stores.items():
            healthy = name not in self.down
            disk: tuple[int, int] | None = None
            if healthy and getattr(store, "disk_usage", None) is not None:
                healthy = False
                with trio.move_on_after(STATUS_IO_TIMEOUT):
                    with contextlib.suppress(OSError):
                        disk = await store.disk_usage()  # type: ignore[attr-defined]
                        healthy = True
            backends.append(
                backend_status(
                    name=name, kind=backend_type(store), role=self.role(name), healthy=healthy,
                    usage=usage.get(name, (0, 0)), disk=disk, retention=self.retention[name],
                )
            )  # fmt: skip
        migration = None if self.migration is None else dict(self.migration)
        return {"policy": self.policy, "backends": backends, "migration": migration, "pending_repairs": pending}

    async def apply_retention(self, *, now: TimeArg | None = None) -> list[SegmentRecord]:
        """Apply each backend's `retention` once, oldest first; returns the segments deleted altogether.

        A copy past its backend's limits is deleted; when another copy of the segment exists only that copy
        goes (and repair will not bring it back), when it is the last copy the segment goes. Each deletion is
        marked in the index, then the data is deleted, then the row dropped (`finish_deletions`).
        """
        now_us = us_from_datetime(self._wall_clock() if now is None else now)
        return await self._retire(self.retention, now_us)

    # -- background work ---------------------------------------------------------------------------------------

    async def reopen_down(self) -> None:
        for name in list(self.down):
            try:
                await self.stores[name].open()
            except OSError as exc:
                self.down[name] = str(exc)
                continue
            del self.down[name]
            _log.warning("storage backend %s is back", name)

    async def repair(self, progress: Progress | None = None) -> int:
        """Give segments the copies the policy wants (override); returns copies made."""
        await self.reopen_down()
        return 0

    async def migrate(self, progress: Progress | None = None, *, now: TimeArg | None = None) -> int:
        """Run the tier moves due now (override); returns segments moved."""
        return 0

    async def run_background(
        self, *, interval: float = 30.0, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Repair and migrate every `interval` seconds until cancelled (start it in the app's nursery)."""
        task_status.started()
        while True:
            try:
                await self.repair()
                await self.migrate()
                await self.apply_retention()
                await self.finish_deletions()
            except OSError as exc:
                _log.warning("storage background pass failed (retried): %s", exc)
            await trio.sleep(interval)

    # -- check and rebuild -------------------------------------------------------------------------------------

    def degraded_reason(self, backends: list[str], retired: Sequence[str] = ()) -> str | None:
        """Why a segment with these copies is degraded, or None (override). `retired`: backends whose copy
        retention removed on purpose (they count as done)."""
        have = len(backends) + len(retired)
        return None if have >= self.wanted_copies else f"{len(backends)} of {self.wanted_copies} copies"

    def pending_repairs(self) -> int:
        """Copies `repair()` would make now (blocking: index reads; override)."""
        return 0

    def role(self, name: str) -> str:
        """The backend's part in the policy, as `status()` shows it (override)."""
        return "replica"

    async def check(
        self, *, orphans: bool = True, progress: Progress | None = None, deep: bool = True
    ) -> TierCheckReport:
        """Ask every backend about every copy the index lists: present, same size, same sha256.

        Remote backends report the sha256 stored with the object; with `deep` a local copy (a directory, a NAS) is
        read and hashed, so silent corruption of the bytes is found too."""
        rows = await self._db(self.index.all_segments)
        copies = await self._db(self.index.all_copies)
        retired = await self._db(self.index.retired)
        listed: dict[str, dict[str, Any]] = {}
        unreachable: list[str] = []
        for name, store in self.stores.items():
            try:
                listed[name] = {b.key: b for b in await store.list_blobs()}
            except OSError as exc:
                unreachable.append(f"{name}: {exc}")
        missing: list[str] = []
        mismatched: list[str] = []
        degraded: list[str] = []
        known: set[str] = set()
        count = 0
        for i, row in enumerate(rows):
            seg_id, key, size, sha = row[0], row[2], row[6], row[7]
            known.add(key)
            have = copies.get(seg_id, [])
            for name in have:
                if name not in listed:
                    continue
                count += 1
                info = listed[name].get(key)
                if info is None:
                    missing.append(f"{name}:{key}")
                elif info.size != size or (info.sha256 is not None and info.sha256 != sha):
                    mismatched.append(f"{name}:{key} (index {size} {sha[:12]}, backend {info.size} "
                                      f"{(info.sha256 or '?')[:12]})")  # fmt: skip
                elif deep and (local := self.stores[name].local_path(key)) is not None:
                    try:
                        _n, actual = await trio.to_thread.run_sync(sha256_file, local)
                    except OSError as exc:
                        missing.append(f"{name}:{key} ({exc})")
                        continue
                    if actual != sha:
                        mismatched.append(f"{name}:{key} (index sha256 {sha[:12]}, file {actual[:12]})")
            reason = self.degraded_reason(have, retired.get(seg_id, ()))
            if reason is not None:
                degraded.append(f"{key} ({reason})")
            if progress is not None and (i + 1) % 100 == 0:
                progress(f"checked {i + 1}/{len(rows)} segments")
        orphan_lines = []
        if orphans:
            garbage_keys = {k for _s, _b, k in await self._db(self.index.pending_deletions)}
            for name, blobs in listed.items():
                orphan_lines += [f"{name}:{k}" for k in blobs if k not in known and k not in garbage_keys]
        return TierCheckReport(
            copies=count, missing=tuple(missing), mismatched=tuple(mismatched), unreachable=tuple(unreachable),
            degraded=tuple(degraded), orphans=tuple(sorted(orphan_lines)),
        )  # fmt: skip

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Reconstruct the index from the backends' listings and stored metadata; returns copies recorded.

        Each segment's keyframe list (times and fragment offsets) is read back from its fMP4 sample flags (the
        file itself for a local copy, range reads of the box headers for a remote one), and the keyframe
        thumbnails kept in `state_dir/keyframes` are indexed again. Resumable: each blob is recorded as it is
        found (insert-or-update by key), so an interrupted rebuild is simply run again.
        """
        added = 0
        for name, store in self.stores.items():
            blobs = await store.list_blobs()
            for i, blob in enumerate(blobs):
                meta = blob.metadata
                try:
                    start_us, media_us = int(meta["start-us"]), int(meta["media-us"])
                    stream = validate_stream_id(meta.get("stream", blob.key.split("/", 1)[0]))
                except (KeyError, ValueError, Exception):
                    if progress:
                        progress(f"{name}: skipped {blob.key} (no segment metadata)")
                    continue
                existing = await self._db(self.index.segment_by_key, blob.key)
                if existing is not None:
                    await self._db(self.index.add_copy, existing[0], name)
                    if json.loads(existing[8]):
                        seg_id = None  # its keyframe list is known
                    else:
                        seg_id = existing[0]
                else:
                    row = {"key": blob.key, "stream": stream, "start_us": start_us, "end_us": start_us + media_us,
                           "media_us": media_us, "size": blob.size, "sha256": blob.sha256 or "",
                           "frames": int(meta.get("frames", 0)), "run_id": int(meta.get("run-id", -1))}  # fmt: skip
                    seg_id = await self._db(self.index.insert_segment, row, [name])
                if seg_id is not None:
                    keyframes = await self._blob_keyframes(name, blob.key, blob.size)
                    if keyframes:
                        await self._db(self.index.set_keyframes, seg_id, keyframes)
                added += 1
                if progress is not None and ((i + 1) % 50 == 0 or i + 1 == len(blobs)):
                    progress(f"rebuild {name}: {i + 1}/{len(blobs)}")
        thumbnails = await self._db(self._index_keyframe_files)
        if progress is not None:
            progress(f"rebuild keyframes: {thumbnails} indexed")
        return added

    def _index_keyframe_files(self) -> int:
        root = self.state_dir / "keyframes"
        files: list[tuple[str, Path]] = []
        for entry in sorted(root.iterdir()) if root.is_dir() else []:
            if entry.is_dir():
                files += [(entry.name, p) for p in keyframe_files(entry)]
        return index_keyframe_files(self.index, files)

    async def _blob_keyframes(self, name: str, key: str, size: int) -> tuple[tuple[float, int], ...]:
        """A stored segment's keyframe list from its fMP4 sample flags; () when it cannot be read."""
        store = self.stores[name]
        local = store.local_path(key)

        def _scan_local() -> tuple[tuple[float, int], ...]:
            assert local is not None
            with open(local, "rb") as f:
                return segment_keyframes(f, size)

        def _scan_remote() -> tuple[tuple[float, int], ...]:
            reader = _RangeReader(lambda offset, length: trio.from_thread.run(store.read_range, key, offset, length),
                                  size)  # fmt: skip
            return segment_keyframes(reader, size)

        try:
            return await trio.to_thread.run_sync(_scan_local if local is not None else _scan_remote)
        except (OSError, ValueError, struct.error) as exc:
            _log.warning("storage rebuild: keyframes of %s:%s unreadable: %s", name, key, exc)
            return ()


class PrimaryBackupStorage(ManagedStorage):
    """`primary_backup`: write to the primary; when it fails, to the backup (the index records where).
    `repair()` (run by `run_background`) copies backup-only segments to the primary once it is back, and then
    removes the backup copy (`keep_backup_copy=False`, the default) so the backup only holds what it covered for.
    """

    def __init__(
        self, primary: BlobStore, backup: BlobStore, *, state_dir: str | os.PathLike[str],
        keep_backup_copy: bool = False, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__([primary, backup], state_dir=state_dir, **kwargs)
        self.primary, self.backup = primary.name, backup.name
        self.keep_backup_copy = keep_backup_copy

    async def place(self, key: str, path: Path, row: dict[str, Any]) -> list[str]:
        if self.primary not in self.down:
            try:
                await self._put(self.stores[self.primary], key, path, row)
                return [self.primary]
            except OSError as exc:
                _log.warning("storage: primary %s failed for %s, using backup %s: %s", self.primary, key,
                             self.backup, exc)  # fmt: skip
        try:
            await self._put(self.stores[self.backup], key, path, row)
        except OSError as exc:
            raise TierError(errno.EIO, f"segment {key}: primary and backup both failed: {exc}") from exc
        return [self.backup]

    policy = "primary_backup"

    def role(self, name: str) -> str:
        return "primary" if name == self.primary else "backup"

    def degraded_reason(self, backends: list[str], retired: Sequence[str] = ()) -> str | None:
        return None if self.primary in backends or self.primary in retired else "not on the primary"

    def _repair_todo(self) -> list[int]:
        copies = self.index.all_copies()
        retired = self.index.retired()
        return [seg_id for seg_id, names in sorted(copies.items())
                if self.primary not in names and self.primary not in retired.get(seg_id, ())]  # fmt: skip

    def pending_repairs(self) -> int:
        return len(self._repair_todo())

    def _unfinished_moves(self) -> list[int]:
        """Segments on the primary that still have a backup copy although `keep_backup_copy` is off: a repair
        killed after the primary copy was recorded, before the backup copy was marked."""
        if self.keep_backup_copy:
            return []
        return [seg_id for seg_id, names in sorted(self.index.all_copies().items())
                if self.primary in names and self.backup in names]  # fmt: skip

    async def repair(self, progress: Progress | None = None) -> int:
        """Copy backup-only segments to the primary (moving them unless `keep_backup_copy`); also finishes the
        moves a killed repair left with both copies. Returns the segments repaired."""
        await self.reopen_down()
        if self.primary in self.down:
            return 0
        for seg_id in await self._db(self._unfinished_moves):
            await self._finish_move(seg_id, [self.backup], [self.primary], verify=True)
        todo: list[int] = await self._db(self._repair_todo)
        done = 0
        for seg_id in todo:
            try:
                if self.keep_backup_copy:
                    await self.copy(seg_id, self.backup, self.primary)
                else:
                    await self.move(seg_id, self.backup, self.primary)
            except OSError as exc:
                _log.warning("storage: repair of segment %d to %s failed: %s", seg_id, self.primary, exc)
                break  # primary still sick: try again next pass
            done += 1
            if progress is not None:
                progress(f"repaired {done}/{len(todo)} to {self.primary}")
        return done


class MultiReplicaStorage(ManagedStorage):
    """`multi_replica`: write to every backend at once; succeed when `quorum` of them took it. Segments with
    fewer copies than backends are degraded (`check`), and `repair()` copies them where they are missing."""

    def __init__(
        self, backends: Sequence[BlobStore], *, quorum: int | None = None, state_dir: str | os.PathLike[str],
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(backends, state_dir=state_dir, **kwargs)
        self.quorum = quorum if quorum is not None else len(backends) // 2 + 1
        if not 1 <= self.quorum <= len(backends):
            raise ValueError(f"quorum must be 1..{len(backends)}, not {self.quorum}")
        self.wanted_copies = len(backends)

    async def place(self, key: str, path: Path, row: dict[str, Any]) -> list[str]:
        targets = [n for n in self.stores if n not in self.down]
        errors = await self._put_many(targets, key, path, row)
        placed = [n for n in targets if n not in errors]
        if len(placed) < self.quorum:
            # Keep what was written: the index must know every copy even of a failed write. The spooled file
            # stays too (the recorder retries), so nothing is lost.
            raise TierError(
                errno.EIO,
                f"segment {key}: {len(placed)} of {len(self.stores)} backends took it, quorum is {self.quorum}: "
                + "; ".join(f"{n}: {e}" for n, e in errors.items()),
            )
        return placed

    def pending_repairs(self) -> int:
        copies = self.index.all_copies()
        retired = self.index.retired()
        return sum(
            1 for seg_id, names in copies.items() for dst in self.stores
            if dst not in names and dst not in retired.get(seg_id, ())
        )  # fmt: skip

    async def repair(self, progress: Progress | None = None) -> int:
        await self.reopen_down()
        copies = await self._db(self.index.all_copies)
        retired = await self._db(self.index.retired)
        done = 0
        for seg_id, names in sorted(copies.items()):
            for dst in self.stores:
                if dst in names or dst in self.down or dst in retired.get(seg_id, ()):
                    continue
                try:
                    await self.copy(seg_id, self._readable(names)[0], dst)
                    done += 1
                except OSError as exc:
                    _log.warning("storage: replica repair of %d to %s failed: %s", seg_id, dst, exc)
        if progress is not None:
            progress(f"repaired {done} replicas")
        return done


class TieredStorage(ManagedStorage):
    """`tiered`: new segments go to `hot`; `migrate()` moves those older than `hot_days` to `warm` and those
    older than `warm_days` (counted from the segment's end, like `hot_days`) to `cold`. Ages are in days,
    fractions allowed (0 moves every closed segment). `warm` may be None (hot -> cold)."""

    policy = "tiered"

    def __init__(
        self, hot: BlobStore, warm: BlobStore | None, cold: BlobStore | None, *, hot_days: float,
        warm_days: float, state_dir: str | os.PathLike[str], **kwargs: Any,
    ) -> None:  # fmt: skip
        stores = [s for s in (hot, warm, cold) if s is not None]
        super().__init__(stores, state_dir=state_dir, **kwargs)
        self.migration = {"running": False, "done": 0, "total": 0}
        self.tiers = [s.name for s in stores]
        self.hot_days, self.warm_days = hot_days, warm_days

    async def place(self, key: str, path: Path, row: dict[str, Any]) -> list[str]:
        await self._put(self.stores[self.tiers[0]], key, path, row)
        return [self.tiers[0]]

    def _target(self, age_days: float) -> int:
        """Index in `tiers` where a segment of this age belongs."""
        if len(self.tiers) == 3:
            return 2 if age_days >= self.warm_days else 1 if age_days >= self.hot_days else 0
        if len(self.tiers) == 2:
            return 1 if age_days >= min(self.hot_days, self.warm_days) else 0
        return 0

    async def migrate(self, progress: Progress | None = None, *, now: TimeArg | None = None) -> int:
        """Move every segment that is due, one tier step at a time; returns the segments moved (or finished).

        Resumable: the index says where each copy is. The plan takes every segment with a copy on a tier below
        the one it belongs on: one not moved yet, and also one whose move was killed after the destination copy
        was recorded but before the source was marked (it has a verified copy at or above its target, and its
        lower copies are then marked, deleted and dropped here).
        """
        await self.finish_deletions()
        now_us = us_from_datetime(self._wall_clock() if now is None else now)
        rows = await self._db(self.index.all_segments)
        copies = await self._db(self.index.all_copies)
        plan: list[tuple[int, int, int]] = []  # (segment id, its highest tier, its target tier)
        for row in rows:
            levels = [self.tiers.index(n) for n in copies.get(row[0], []) if n in self.tiers]
            if not levels:
                continue
            target = self._target((now_us - row[4]) / 86_400e6)
            if min(levels) < target:
                plan.append((row[0], max(levels), target))
        moved = 0
        total_bytes = 0
        state = self.migration = {"running": True, "done": 0, "total": len(plan)}  # what `status` shows
        try:
            for i, (seg_id, level, target) in enumerate(plan):
                top = level
                while level < target:  # hot -> warm -> cold: each hop verified before the source goes
                    await self.move(seg_id, self.tiers[level], self.tiers[level + 1])
                    level += 1
                if not await self._drop_lower_copies(seg_id, target, verify=top >= target):
                    continue
                moved += 1
                state["done"] = moved
                row = await self._db(self.index.segment_by_id, seg_id)
                total_bytes += row[6] if row else 0
                if progress is not None:
                    progress(f"migrate: {i + 1}/{len(plan)} segments, {total_bytes / 1e6:.1f} MB")
        finally:
            state["running"] = False
        return moved

    async def _drop_lower_copies(self, seg_id: int, target: int, *, verify: bool) -> bool:
        """Remove the segment's copies on tiers below `target` once a copy at or above it is in place; with
        `verify`, that copy (recorded by an earlier, interrupted run) is checked on its backend first. Returns
        False when no good copy at or above `target` exists (the lower copies then stay)."""
        names = [n for n in await self._db(self.index.copies, seg_id) if n in self.tiers]
        lower = [n for n in names if self.tiers.index(n) < target]
        upper = [n for n in names if self.tiers.index(n) >= target]
        if not lower:
            return True
        return await self._finish_move(seg_id, lower, upper, verify=verify)

    def degraded_reason(self, backends: list[str], retired: Sequence[str] = ()) -> str | None:
        return None if backends else "no copy"

    def role(self, name: str) -> str:
        if name == self.tiers[0]:
            return "hot"
        return "cold" if name == self.tiers[-1] else "warm"
