"""The one segment index (legacy schemas migrated in place), keyframes restored by rebuild, per-backend retention
for every policy, and `status()`."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
import trio

from fluxkit.engine import open_engine
from fluxkit.storage import (
    INDEX_NAME,
    LocalStorage,
    RecordingSettings,
    RetentionLimits,
    SegmentIndex,
    open_recorder,
    rebuild_main,
)
from fluxkit.storage._fmp4 import fragments, scan_boxes
from fluxkit.storage._index import SCHEMA_VERSION
from fluxkit.storage.tiers import INDEX_NAME as TIER_INDEX_NAME
from fluxkit.storage.tiers import (
    DirStore,
    ManagedStorage,
    MultiReplicaStorage,
    PrimaryBackupStorage,
    TieredStorage,
)
from tests.storage._feed import build
from tests.storage.test_tiers import T0, make_segment

DAY = 86400.0

# The DDL of the recording index (`index.sqlite3`) as the previous release wrote it.
OLD_LOCAL_DDL = """
CREATE TABLE segments (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, path TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, media_us INTEGER NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, keyframes TEXT NOT NULL, run_id INTEGER NOT NULL, frames INTEGER NOT NULL,
    wall_delta_us INTEGER NOT NULL DEFAULT 0);
CREATE INDEX segments_stream_start ON segments (stream, start_us);
CREATE TABLE gaps (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX gaps_stream_start ON gaps (stream, start_us);
CREATE TABLE keyframes (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, time_us INTEGER NOT NULL, path TEXT NOT NULL,
    au_path TEXT NOT NULL);
CREATE INDEX keyframes_stream_time ON keyframes (stream, time_us);
CREATE TABLE garbage (path TEXT PRIMARY KEY, stream TEXT NOT NULL);
"""

# The DDL of the tier index (`tiers.sqlite3`) as the previous release wrote it.
OLD_TIER_DDL = """
CREATE TABLE segments (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, key TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL, end_us INTEGER NOT NULL, media_us INTEGER NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, keyframes TEXT NOT NULL, run_id INTEGER NOT NULL, frames INTEGER NOT NULL,
    wall_delta_us INTEGER NOT NULL DEFAULT 0, garbage INTEGER NOT NULL DEFAULT 0);
CREATE INDEX segments_stream_start ON segments (stream, start_us);
CREATE TABLE copies (segment_id INTEGER NOT NULL, backend TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (segment_id, backend));
CREATE INDEX copies_backend ON copies (backend, state);
CREATE TABLE gaps (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, start_us INTEGER NOT NULL, end_us INTEGER NOT NULL,
    reason TEXT NOT NULL);
CREATE INDEX gaps_stream_start ON gaps (stream, start_us);
CREATE TABLE keyframes (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, time_us INTEGER NOT NULL, path TEXT NOT NULL,
    au_path TEXT NOT NULL);
CREATE INDEX keyframes_stream_time ON keyframes (stream, time_us);
"""


def _old_db(path: Path, ddl: str) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(ddl)
    return db


# -- the index: legacy data directories ---------------------------------------------------------------------------


@pytest.mark.trio
async def test_legacy_recording_index_migrated_in_place(tmp_path: Path) -> None:
    rels = ["cam1/2023-11-14/22/a.mp4", "cam1/2023-11-14/22/b.mp4", "cam1/2023-11-14/22/gone.mp4"]
    for i, rel in enumerate(rels):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * (100 + i))
    db = _old_db(tmp_path / INDEX_NAME, OLD_LOCAL_DDL)
    for i, rel in enumerate(rels[:2]):
        db.execute(
            "INSERT INTO segments (stream, path, start_us, end_us, media_us, size, sha256, keyframes, run_id, frames)"
            " VALUES ('cam1', ?, ?, ?, 2000000, ?, 'ab', '[[0.0, 48]]', 1, 50)",
            (rel, T0 + i * 2_000_000, T0 + (i + 1) * 2_000_000, 100 + i),
        )
    db.execute("INSERT INTO garbage (path, stream) VALUES (?, 'cam1')", (rels[2],))  # a deletion cut short
    db.execute("INSERT INTO gaps (stream, start_us, end_us, reason) VALUES ('cam1', ?, ?, 'stopped')", (T0 - 9, T0))
    db.execute("INSERT INTO keyframes (stream, time_us, path, au_path) VALUES ('cam1', ?, 'k.jpg', 'k.h264')", (T0,))
    db.close()

    index = SegmentIndex(tmp_path / INDEX_NAME)
    assert [r[2] for r in index.all_segments()] == rels[:2]
    assert index.copies(index.all_segments()[0][0]) == ["local"]
    assert [k for _i, _b, k in index.pending_deletions()] == [rels[2]]
    index.close()
    with trio.fail_after(20):
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            assert not (tmp_path / rels[2]).exists()  # the pending deletion was finished at open
            query = await storage.query_segments("cam1", 0, 4e9)
            assert [Path(s.path).name for s in query.segments] == ["a.mp4", "b.mp4"]
            assert query.segments[0].keyframes == ((0.0, 48),)
            assert [g.reason for g in query.gaps] == ["stopped"]
            assert len(await storage.query_keyframes("cam1", T0 / 1e6 - 1, T0 / 1e6 + 1)) == 1
            assert storage.index.garbage() == []
            deleted = await storage.cleanup_expired(now=T0 / 1e6 + 3600, max_age=60)
            assert len(deleted) == 2
            assert not (tmp_path / rels[0]).exists()
    with sqlite3.connect(str(tmp_path / INDEX_NAME)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "garbage" not in tables
        assert "copies" in tables


@pytest.mark.trio
async def test_legacy_tier_index_opened_and_used(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "d", name="d")
    with trio.fail_after(20):
        async with ManagedStorage([store], state_dir=tmp_path / "seed") as seed:
            seg, _ = make_segment(seed, 0)
            record = await seed.save_segment(seg)
    db = _old_db(tmp_path / "old.sqlite3", OLD_TIER_DDL)
    (tmp_path / "st").mkdir()
    db.execute(
        "INSERT INTO segments (id, stream, key, start_us, end_us, media_us, size, sha256, keyframes, run_id, frames)"
        " VALUES (7, 'cam1', ?, ?, ?, 2000000, ?, ?, '[[0.0, 0]]', 1, 50)",
        (str(Path(record.path).relative_to(store.root)), T0, T0 + 2_000_000, record.size, record.sha256),
    )
    db.execute("INSERT INTO copies VALUES (7, 'd', 'ok')")
    db.execute("VACUUM INTO ?", (str(tmp_path / "st" / TIER_INDEX_NAME),))
    db.close()
    with trio.fail_after(20):
        async with ManagedStorage([store], state_dir=tmp_path / "st") as storage:
            (got,) = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert (got.id, got.sha256, got.path) == (7, record.sha256, record.path)
            assert (await storage.check()).ok
    with sqlite3.connect(str(tmp_path / "st" / TIER_INDEX_NAME)) as check_db:
        assert check_db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- rebuild restores keyframes -----------------------------------------------------------------------------------


async def _record_into(storage, frames, tracks) -> list[float]:
    """Record `frames` and store a keyframe (µs-precise time) per keyframe sent, as the app does."""
    times = []
    settings = RecordingSettings(segment_duration=2.0, part_duration=0.5)
    async with open_engine() as engine, open_recorder(engine, storage, settings) as rec:
        publisher = engine.publish_stream("cam1", tracks)
        await trio.lowlevel.checkpoint()
        for i, frame in enumerate(frames):
            publisher.send(frame)
            if frame.keyframe:
                t = 1_700_000_000.123457 + i / 25
                await storage.save_keyframe("cam1", t, frame.data, jpeg=b"\xff\xd8%d" % i)
                times.append(t)
            if i % 4 == 0:
                await trio.sleep(0.001)
        publisher.close()
        await trio.lowlevel.checkpoint()
        await rec.wait_idle()
    return times


def _fragment_count(path: str) -> int:
    with open(path, "rb") as f:
        return len(fragments(f, scan_boxes(f, os.fstat(f.fileno()).st_size)))


def _unlink_index(path: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)


@pytest.mark.trio
async def test_local_rebuild_restores_keyframes(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)
    with trio.fail_after(60):
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            await _record_into(storage, frames, tracks)
            before = (await storage.query_segments("cam1", 0, 4e9)).segments
            keys_before = await storage.query_keyframes("cam1", 0, 4e9)
        assert len(before) >= 2
        assert len(keys_before) == 4
        # Parts of 0.5 s with a keyframe every second: half the fragments are not keyframes, and the sample flags
        # tell them apart.
        assert all(len(s.keyframes) > 0 for s in before)
        assert _fragment_count(before[0].path) > len(before[0].keyframes)
        _unlink_index(tmp_path / INDEX_NAME)
        assert await trio.to_thread.run_sync(rebuild_main, tmp_path) == 0
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            after = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert await storage.query_keyframes("cam1", 0, 4e9) == keys_before
        assert [(s.path, s.sha256, s.keyframes) for s in after] == [(s.path, s.sha256, s.keyframes) for s in before]
        # A lost index is also rebuilt by simply opening the directory (reconciliation at start-up).
        _unlink_index(tmp_path / INDEX_NAME)
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            assert [s.keyframes for s in (await storage.query_segments("cam1", 0, 4e9)).segments] == [
                s.keyframes for s in before
            ]
            assert await storage.query_keyframes("cam1", 0, 4e9) == keys_before


class RemoteDir(DirStore):
    """A directory that plays a remote store: no local path, so reads go through `read_range`."""

    def local_path(self, key: str) -> Path | None:
        return None


@pytest.mark.trio
async def test_tiered_rebuild_restores_keyframes_from_local_and_remote_copies(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)
    hot, cold = DirStore(tmp_path / "hot", name="hot"), RemoteDir(tmp_path / "cold", name="cold")
    with trio.fail_after(60):
        async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "st") as storage:
            await _record_into(storage, frames, tracks)
            before = (await storage.query_segments("cam1", 0, 4e9)).segments
            keys_before = await storage.query_keyframes("cam1", 0, 4e9)
            # Move all but the newest to the "remote" cold tier.
            cutoff = before[-1].end.timestamp()
            for record in before[:-1]:
                await storage.move(record.id, "hot", "cold")
            assert cutoff
        assert len(before) >= 2
        assert all(s.keyframes for s in before)
        _unlink_index(tmp_path / "st" / TIER_INDEX_NAME)
        async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "st") as storage:
            lines: list[str] = []
            assert await storage.rebuild(lines.append) == len(before)
            assert "rebuild keyframes: 4 indexed" in lines
            after = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert [(s.sha256, s.keyframes) for s in after] == [(s.sha256, s.keyframes) for s in before]
            assert await storage.query_keyframes("cam1", 0, 4e9) == keys_before
            await storage.rebuild()  # idempotent: nothing doubled
            assert await storage.query_keyframes("cam1", 0, 4e9) == keys_before


# -- retention per backend ----------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_primary_backup_retention_per_backend(tmp_path: Path) -> None:
    primary, backup = DirStore(tmp_path / "p", name="primary"), DirStore(tmp_path / "b", name="backup")
    limits = {"primary": RetentionLimits(max_age_days=3), "backup": RetentionLimits(max_age_days=1)}
    with trio.fail_after(20):
        async with PrimaryBackupStorage(
            primary, backup, state_dir=tmp_path / "st", keep_backup_copy=True, retention=limits
        ) as storage:
            storage.down["primary"] = "test: down"  # the first two go to the backup only
            segs = [make_segment(storage, i) for i in range(4)]
            for seg, _ in segs[:2]:
                await storage.save_segment(seg)
            del storage.down["primary"]
            for seg, _ in segs[2:]:
                await storage.save_segment(seg)
            assert await storage.repair() == 2  # copied to the primary, the backup copies kept
            assert sorted(len(v) for v in storage.index.all_copies().values()) == [1, 1, 2, 2]
            now = T0 / 1e6 + 2 * DAY
            assert await storage.apply_retention(now=now) == []  # backup copies go, every segment stays
            assert not list(backup.root.rglob("*.mp4"))
            assert len(list(primary.root.rglob("*.mp4"))) == 4
            assert await storage.repair() == 0  # a copy retention removed is not brought back
            assert (await storage.check()).ok
            assert (await storage.status())["pending_repairs"] == 0
            gone = await storage.apply_retention(now=T0 / 1e6 + 4 * DAY)  # the last copies: the segments go
            assert len(gone) == 4
            assert (await storage.query_segments("cam1", 0, 4e9)).segments == ()
            assert not list(primary.root.rglob("*.mp4"))
            assert (await storage.check()).ok


@pytest.mark.trio
async def test_multi_replica_retention_by_size_on_one_replica(tmp_path: Path) -> None:
    stores = [DirStore(tmp_path / f"r{i}", name=f"r{i}") for i in range(3)]
    with trio.fail_after(20):
        async with MultiReplicaStorage(
            stores, quorum=2, state_dir=tmp_path / "st", retention={"r2": RetentionLimits(max_bytes=2 * 4096)}
        ) as storage:
            segs = [make_segment(storage, i) for i in range(4)]
            for seg, _ in segs:
                await storage.save_segment(seg)
            assert await storage.apply_retention(now=T0 / 1e6) == []
            kept = sorted(p.name for p in stores[2].root.rglob("*.mp4"))
            assert kept == sorted(Path(s.final_path).name for s, _ in segs[2:])  # the two newest
            assert len(list(stores[0].root.rglob("*.mp4"))) == 4
            assert await storage.repair() == 0
            report = await storage.check()
            assert report.ok, report.lines()
            status = await storage.status()
            assert [b["segments"] for b in status["backends"]] == [4, 4, 2]
            assert status["backends"][2]["used_bytes"] == 2 * 4096


@pytest.mark.trio
async def test_tiered_retention_free_space_and_crash_between_mark_and_delete(tmp_path: Path) -> None:
    hot, cold = DirStore(tmp_path / "hot", name="hot"), DirStore(tmp_path / "cold", name="cold")
    kwargs = {"hot_days": 1, "warm_days": 1, "state_dir": tmp_path / "st"}
    with trio.fail_after(20):
        async with TieredStorage(hot, None, cold, **kwargs) as storage:
            segs = [make_segment(storage, i) for i in range(4)]
            for seg, _ in segs:
                await storage.save_segment(seg)
            assert await storage.migrate(now=T0 / 1e6 + 2 * DAY) == 4  # all on cold now
            for seg, _ in [make_segment(storage, i) for i in range(4, 6)]:
                await storage.save_segment(seg)  # two on hot
            # "Crash" after retention marked the oldest cold copy but before it was deleted.
            oldest = storage.index.all_segments()[0][0]
            assert storage.index.retire([(oldest, "cold")]) == ([oldest], [])
        assert len(list(cold.root.rglob("*.mp4"))) == 4
        limits = {"cold": RetentionLimits(max_bytes=2 * 4096), "hot": RetentionLimits(min_free_bytes=1 << 62)}
        async with TieredStorage(hot, None, cold, retention=limits, **kwargs) as storage:
            assert len(list(cold.root.rglob("*.mp4"))) == 3  # finished at open
            gone = await storage.apply_retention(now=T0 / 1e6 + 2 * DAY)
            # cold keeps its two newest; hot cannot reach its free-space goal, so its (only) copies all go.
            assert len(gone) == 3
            left = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert [r.path for r in left] == [str(cold.root / Path(s.final_path).relative_to(storage.spool))
                                              for s, _ in segs[2:4]]  # fmt: skip
            assert not list(hot.root.rglob("*.mp4"))
            assert (await storage.check()).ok


@pytest.mark.trio
async def test_local_retention_limits_and_free_space(tmp_path: Path) -> None:
    tracks, frames = build("h264", frames=100, gop=25)
    with trio.fail_after(60):
        storage = LocalStorage(tmp_path, reserve_bytes=0, retention=RetentionLimits(max_age_days=0))
        async with storage:
            await _record_into(storage, frames, tracks)
            segments = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert len(segments) >= 2
            assert await storage.cleanup_expired(min_free_bytes=0) == []
            deleted = await storage.cleanup_expired(min_free_bytes=1 << 62)  # never reachable: everything goes
            assert [d.id for d in deleted] == [s.id for s in segments]
            assert storage.index.pending_deletions() == []
            assert await storage.apply_retention() == []


# -- deleting on request, stream ids ------------------------------------------------------------------------------


class Killed(Exception):
    """Stands for the process being killed at that point."""


@pytest.mark.trio
async def test_local_delete_segments_and_stream_ids(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            assert await storage.stream_ids() == []
            records = [await storage.save_segment(make_segment(storage, i, stream=s)[0])
                       for i, s in enumerate(["cam2", "cam1", "cam1", "cam3"])]  # fmt: skip
            assert await storage.stream_ids() == ["cam1", "cam2", "cam3"]
            # Unknown ids are skipped; what was deleted comes back, its file and rows gone.
            deleted = await storage.delete_segments([records[0].id, 999_999, records[2].id])
            assert [d.id for d in deleted] == [records[0].id, records[2].id]
            assert [d.path for d in deleted] == [records[0].path, records[2].path]
            assert not Path(records[0].path).exists()
            assert not Path(records[2].path).exists()
            assert Path(records[1].path).exists()
            assert await storage.stream_ids() == ["cam1", "cam3"]
            assert storage.index.pending_deletions() == []
            assert storage.index.segment_by_id(records[0].id) is None
            assert await storage.delete_segments([records[0].id]) == []  # twice: nothing more
            # Killed after the rows were marked, before the file went: the next open finishes the deletion.
            storage._collect_garbage = lambda: (_ for _ in ()).throw(Killed())  # type: ignore[method-assign]
            with pytest.raises(Killed):
                await storage.delete_segments([records[1].id])
            assert await storage.stream_ids() == ["cam3"]  # no longer listed, although its file is still there
            assert Path(records[1].path).exists()
        async with LocalStorage(tmp_path, reserve_bytes=0) as storage:
            assert not Path(records[1].path).exists()  # finished, not adopted back
            assert [s.id for s in (await storage.query_segments("cam1", 0, 4e9)).segments] == []
            assert storage.index.pending_deletions() == []
            assert await storage.stream_ids() == ["cam3"]


@pytest.mark.trio
async def test_managed_delete_segments_every_copy_and_stream_ids(tmp_path: Path) -> None:
    class Flaky(DirStore):
        broken = False

        async def delete(self, key: str) -> None:
            if self.broken:
                raise OSError(5, "simulated I/O error")
            await super().delete(key)

    r1, r2 = DirStore(tmp_path / "r1", name="r1"), Flaky(tmp_path / "r2", name="r2")
    with trio.fail_after(20):
        async with MultiReplicaStorage([r1, r2], quorum=2, state_dir=tmp_path / "st") as storage:
            assert await storage.stream_ids() == []
            records = [await storage.save_segment(make_segment(storage, i, stream=s)[0])
                       for i, s in enumerate(["cam1", "cam2", "cam1"])]  # fmt: skip
            assert await storage.stream_ids() == ["cam1", "cam2"]
            deleted = await storage.delete_segments([records[1].id, 424242])
            assert [d.id for d in deleted] == [records[1].id]
            assert await storage.stream_ids() == ["cam1"]
            assert len(list(r1.root.rglob("*.mp4"))) == len(list(r2.root.rglob("*.mp4"))) == 2
            # One backend cannot delete: the segment is gone from the listings at once, its copy there stays
            # marked and goes once the backend works again; nothing is left behind.
            r2.broken = True
            deleted = await storage.delete_segments([records[0].id])
            assert [d.id for d in deleted] == [records[0].id]
            assert [s.id for s in (await storage.query_segments("cam1", 0, 4e9)).segments] == [records[2].id]
            assert len(list(r1.root.rglob("*.mp4"))) == 1
            assert len(list(r2.root.rglob("*.mp4"))) == 2
            assert [(i, b) for i, b, _k in storage.index.pending_deletions()] == [(records[0].id, "r2")]
            r2.broken = False
            await storage.finish_deletions()
            assert storage.index.pending_deletions() == []
            assert storage.index.segment_by_id(records[0].id) is None
            assert len(list(r2.root.rglob("*.mp4"))) == 1
            assert (await storage.check()).ok


# -- status -------------------------------------------------------------------------------------------------------


def _entry_ok(entry: dict) -> None:
    assert set(entry) == {"name", "type", "role", "healthy", "used_bytes", "segments", "free_bytes", "total_bytes",
                          "retention"}  # fmt: skip
    assert set(entry["retention"]) == {"max_age_days", "max_bytes", "min_free_bytes"}


@pytest.mark.trio
async def test_status_of_every_policy(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with LocalStorage(tmp_path / "l", reserve_bytes=0, retention=RetentionLimits(max_age_days=7)) as local:
            status = await local.status()
        json.dumps(status)
        (entry,) = status["backends"]
        _entry_ok(entry)
        assert (status["policy"], status["migration"], status["pending_repairs"]) == ("local", None, 0)
        assert (entry["name"], entry["type"], entry["role"], entry["healthy"]) == ("local", "local", "local", True)
        assert entry["retention"] == {"max_age_days": 7, "max_bytes": None, "min_free_bytes": None}
        assert entry["total_bytes"] >= entry["free_bytes"] > 0
        assert entry["segments"] == 0

        blocker = tmp_path / "blocked"
        blocker.write_text("not a directory")
        pb = PrimaryBackupStorage(
            DirStore(blocker / "d", name="p"),
            DirStore(tmp_path / "b", name="b"),
            state_dir=tmp_path / "pb",
            retention={"b": RetentionLimits(max_bytes=10**9)},
        )
        async with pb:
            await pb.save_segment(make_segment(pb, 0)[0])
            status = await pb.status()
        json.dumps(status)
        assert (status["policy"], status["pending_repairs"]) == ("primary_backup", 1)
        assert [(b["name"], b["role"], b["healthy"], b["segments"]) for b in status["backends"]] == [
            ("p", "primary", False, 0), ("b", "backup", True, 1)]  # fmt: skip
        assert status["backends"][0]["free_bytes"] is None
        assert status["backends"][1]["retention"]["max_bytes"] == 10**9

        mr = MultiReplicaStorage(
            [DirStore(tmp_path / f"m{i}", name=f"m{i}") for i in range(2)], state_dir=tmp_path / "m"
        )
        async with mr:
            status = await mr.status()
        assert (status["policy"], status["migration"]) == ("multi_replica", None)
        assert [b["role"] for b in status["backends"]] == ["replica", "replica"]

        tiers = [DirStore(tmp_path / n, name=n) for n in ("t-hot", "t-warm", "t-cold")]
        async with TieredStorage(*tiers, hot_days=0, warm_days=0, state_dir=tmp_path / "t") as tiered:
            assert (await tiered.status())["migration"] == {"running": False, "done": 0, "total": 0}
            for i in range(2):
                await tiered.save_segment(make_segment(tiered, i)[0])
            seen: list[dict] = []

            async def watch() -> None:
                seen.append(await tiered.status())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(tiered.migrate)
                nursery.start_soon(watch)
            status = await tiered.status()
        json.dumps(status)
        for entry in status["backends"]:
            _entry_ok(entry)
        assert [(b["role"], b["type"], b["segments"]) for b in status["backends"]] == [
            ("hot", "local", 0), ("warm", "local", 0), ("cold", "local", 2)]  # fmt: skip
        assert status["policy"] == "tiered"
        assert status["migration"] == {"running": False, "done": 2, "total": 2}
        assert seen
        assert seen[0]["migration"]["total"] in (0, 2)
