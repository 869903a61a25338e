"""Storage tiers without a network peer: directory/NAS stores, primary/backup, multi-replica, tiered moves,
the buffered writer, check/rebuild, and a real recording into a tiered storage."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
from pathlib import Path

import pytest
import trio

from fluxkit.engine import open_engine
from fluxkit.storage import FinishedSegment, RecordingSettings, StorageBackend, open_recorder
from fluxkit.storage.tiers import (
    BackendSettings,
    BufferedStorage,
    DirStore,
    ManagedStorage,
    MultiReplicaStorage,
    NasStorage,
    PrimaryBackupStorage,
    TieredStorage,
    TierError,
    TierSettings,
    build_storage,
    check_main,
    migrate_main,
    rebuild_main,
)
from tests.storage._feed import build

T0 = 1_700_000_000_000_000  # µs


def make_segment(storage: ManagedStorage | BufferedStorage, i: int, size: int = 4096, stream: str = "cam1"):
    """Write a spooled segment file the way the recorder does and describe it."""
    start_us = T0 + i * 2_000_000
    final, partial = storage.segment_paths(stream, start_us)
    data = hashlib.sha256(str(i).encode()).digest() * (size // 32)
    partial.write_bytes(data)
    seg = FinishedSegment(
        stream_id=stream, partial_path=partial, final_path=final, start_us=start_us, media_us=2_000_000,
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), run_id=1, frames=50, keyframes=((0.0, 0),),
    )  # fmt: skip
    return seg, data


@pytest.mark.trio
async def test_dirstore_round_trip_and_protocol(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with ManagedStorage([DirStore(tmp_path / "d")], state_dir=tmp_path / "state") as storage:
            assert isinstance(storage, StorageBackend)
            seg, data = make_segment(storage, 0)
            record = await storage.save_segment(seg)
            assert not seg.partial_path.exists()
            assert Path(record.path).read_bytes() == data
            query = await storage.query_segments("cam1", 0, 4e9)
            assert [s.sha256 for s in query.segments] == [seg.sha256]
            assert await storage.read_range(record, 5, 10) == data[5:15]
            assert (await storage.check()).ok
            deleted = await storage.cleanup_expired(now=T0 / 1e6 + 3600, max_age=60)
            assert [d.id for d in deleted] == [record.id]
            assert not Path(record.path).exists()
            assert (await storage.query_segments("cam1", 0, 4e9)).segments == ()


@pytest.mark.trio
async def test_primary_backup_failover_and_repair(tmp_path: Path) -> None:
    # As root, permissions do not stop writes: a file where the primary's directory should be does.
    blocker = tmp_path / "primary"
    blocker.write_text("not a directory")
    primary, backup = DirStore(blocker / "data", name="primary"), DirStore(tmp_path / "backup", name="backup")
    with trio.fail_after(20):
        async with PrimaryBackupStorage(primary, backup, state_dir=tmp_path / "state") as storage:
            assert "primary" in storage.down
            segs = [make_segment(storage, i) for i in range(3)]
            records = [await storage.save_segment(s) for s, _ in segs]
            assert all(r.path.startswith(str(tmp_path / "backup")) for r in records)
            report = await storage.check()
            assert len(report.degraded) == 3  # all on the backup only: degraded until repaired
            assert await storage.repair() == 0  # primary still gone
            blocker.unlink()
            assert await storage.repair() == 3
            report = await storage.check()
            assert report.ok, report.lines()
            query = await storage.query_segments("cam1", 0, 4e9)
            for record, (_seg, data) in zip(query.segments, segs, strict=True):
                assert record.path.startswith(str(tmp_path / "primary"))
                assert Path(record.path).read_bytes() == data
            assert not list(backup.root.rglob("*.mp4"))


@pytest.mark.trio
async def test_multi_replica_quorum_degraded_and_repair(tmp_path: Path) -> None:
    blocker = tmp_path / "r3"
    blocker.write_text("x")
    stores = [DirStore(tmp_path / "r1", name="r1"), DirStore(tmp_path / "r2", name="r2"),
              DirStore(blocker / "d", name="r3")]  # fmt: skip
    with trio.fail_after(20):
        (tmp_path / "x").write_text("blocked")
        async with MultiReplicaStorage(stores, quorum=2, state_dir=tmp_path / "state") as storage:
            seg, _ = make_segment(storage, 0)
            await storage.save_segment(seg)
            report = await storage.check()
            assert len(report.degraded) == 1
            assert "2 of 3" in report.degraded[0]
            blocker.unlink()
            assert await storage.repair() == 1
            assert (await storage.check()).ok
        async with MultiReplicaStorage(
            [DirStore(tmp_path / "r1", name="r1"), DirStore(tmp_path / "x" / "d", name="x")],
            quorum=2, state_dir=tmp_path / "state2",
        ) as storage:  # fmt: skip
            seg, _ = make_segment(storage, 1)
            with pytest.raises(TierError, match="quorum is 2"):
                await storage.save_segment(seg)
            assert seg.partial_path.exists()  # the spooled file is kept: nothing lost


@pytest.mark.trio
async def test_nas_refuses_unmounted_share(tmp_path: Path) -> None:
    bare = tmp_path / "mnt" / "nas"
    bare.mkdir(parents=True)
    nas = NasStorage(bare, "fluxkit")
    with trio.fail_after(10):
        with pytest.raises(TierError, match="not a mount point") as info:
            await nas.open()
        assert info.value.errno == errno.ENODEV
        src = tmp_path / "seg.mp4"
        src.write_bytes(b"x" * 100)
        with pytest.raises(TierError, match="refusing to write"):
            await nas.put_file("cam1/a.mp4", src, size=100, sha256=hashlib.sha256(b"x" * 100).hexdigest(), metadata={})
        assert list(bare.iterdir()) == []  # nothing written into the bare mount-point directory
        # Primary/backup with an unmounted NAS as primary: the backup takes the segment.
        async with PrimaryBackupStorage(nas, DirStore(tmp_path / "b", name="b"), state_dir=tmp_path / "s") as st:
            seg, _ = make_segment(st, 0)
            record = await st.save_segment(seg)
            assert record.path.startswith(str(tmp_path / "b"))
        # A real mount point is accepted ("/" always is one).
        assert os.path.ismount("/")


@pytest.mark.trio
async def test_nas_slow_io_times_out(tmp_path: Path) -> None:
    nas = NasStorage(tmp_path, "fluxkit", require_mount=False, io_timeout=0.2, min_free_bytes=0)
    await nas.open()
    release = trio.Event()
    nas._check_writable = lambda size: trio.from_thread.run(release.wait)  # a hung share  # type: ignore[method-assign]
    src = tmp_path / "seg.mp4"
    src.write_bytes(b"y")
    with trio.fail_after(10):
        with pytest.raises(TierError, match="slower than") as info:
            await nas.put_file("cam1/a.mp4", src, size=1, sha256=hashlib.sha256(b"y").hexdigest(), metadata={})
        assert info.value.errno == errno.ETIMEDOUT
        release.set()


@pytest.mark.trio
async def test_tiered_local_nas_moves_with_verify(tmp_path: Path) -> None:
    hot, warm = (
        DirStore(tmp_path / "hot", name="hot"),
        NasStorage(tmp_path, "warm", require_mount=False, min_free_bytes=0),
    )
    cold = DirStore(tmp_path / "cold", name="cold")
    with trio.fail_after(20):
        async with TieredStorage(hot, warm, cold, hot_days=1, warm_days=2, state_dir=tmp_path / "st") as storage:
            segs = [make_segment(storage, i) for i in range(4)]
            for s, _ in segs:
                await storage.save_segment(s)
            now = T0 / 1e6
            assert await storage.migrate(now=now) == 0
            assert await storage.migrate(now=now + 1.5 * 86400) == 4
            query = await storage.query_segments("cam1", 0, 4e9)
            assert all(r.path.startswith(str(tmp_path / "warm")) for r in query.segments)
            assert not list((tmp_path / "hot").rglob("*.mp4"))
            assert await storage.migrate(now=now + 3 * 86400) == 4
            query = await storage.query_segments("cam1", 0, 4e9)
            for record, (_s, data) in zip(query.segments, segs, strict=True):
                assert record.path.startswith(str(tmp_path / "cold"))
                assert (await storage.fetch_to_cache(record)).read_bytes() == data
            assert (await storage.check()).ok


@pytest.mark.trio
async def test_tiered_move_refuses_corrupt_copy(tmp_path: Path) -> None:
    class Corrupting(DirStore):
        def _put(self, key, src, size, sha256, metadata):  # type: ignore[no-untyped-def]
            super()._put(key, src, size, sha256, metadata)
            with open(self.root / key, "r+b") as f:
                f.write(b"\0\0\0\0")
            (self.root / key).with_name(f".{Path(key).name}.json").write_text('{"sha256": "bad"}')

    hot, cold = DirStore(tmp_path / "hot", name="hot"), Corrupting(tmp_path / "cold", name="cold")
    with trio.fail_after(20):
        async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "st") as storage:
            seg, data = make_segment(storage, 0)
            await storage.save_segment(seg)
            with pytest.raises(TierError, match="verification"):
                await storage.migrate(now=T0 / 1e6 + 10)
            (record,) = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert Path(record.path).read_bytes() == data  # the source stays until a verified copy exists


@pytest.mark.trio
async def test_buffered_spills_under_back_pressure_and_never_drops(tmp_path: Path) -> None:
    gate = trio.Event()

    class SlowRemote(DirStore):
        async def put_file(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            await gate.wait()
            await super().put_file(*args, **kwargs)

    remote = ManagedStorage([SlowRemote(tmp_path / "remote", name="remote")], state_dir=tmp_path / "st")
    with trio.fail_after(20):
        async with remote:
            buffered = BufferedStorage(remote, tmp_path / "spill", max_queue=2, retry_initial=0.01)
            async with trio.open_nursery() as nursery:
                await nursery.start(buffered.run)
                segs = [make_segment(buffered, i) for i in range(6)]
                for s, _ in segs:
                    await buffered.save_segment(s)  # returns at once although the remote is stuck
                assert buffered.spilled >= 3
                assert len(list((tmp_path / "spill").glob("*.mp4"))) == buffered.spilled
                assert buffered.pending == 6
                gate.set()
                await buffered.drain()
                nursery.cancel_scope.cancel()
            query = await remote.query_segments("cam1", 0, 4e9)
            assert sorted(r.sha256 for r in query.segments) == sorted(s.sha256 for s, _ in segs)
            assert not list((tmp_path / "spill").iterdir())
            assert (await remote.check()).ok


@pytest.mark.trio
async def test_buffered_resumes_spilled_after_restart(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with ManagedStorage([DirStore(tmp_path / "r", name="r")], state_dir=tmp_path / "st") as remote:
            first = BufferedStorage(remote, tmp_path / "spill", max_queue=0)
            seg, _ = make_segment(first, 0)
            await first.save_segment(seg)  # spilled straight away; the worker never ran ("crash")
            second = BufferedStorage(remote, tmp_path / "spill", max_queue=0)
            assert second.pending == 1
            async with trio.open_nursery() as nursery:
                await nursery.start(second.run)
                await second.drain()
                nursery.cancel_scope.cancel()
            assert len((await remote.query_segments("cam1", 0, 4e9)).segments) == 1


def test_rebuild_check_migrate_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = TierSettings(
        policy="tiered", state_dir=str(tmp_path / "st"), hot_days=0, warm_days=0,
        backends=(BackendSettings(type="local", name="hot", base_path=str(tmp_path / "hot")),
                  BackendSettings(type="nas", name="warm", mount_point=str(tmp_path), base_path="warm",
                                  require_mount=False),
                  BackendSettings(type="local", name="cold", base_path=str(tmp_path / "cold"))),
    )  # fmt: skip

    async def _fill() -> None:
        async with build_storage(settings) as storage:
            for i in range(3):
                await storage.save_segment(make_segment(storage, i)[0])

    trio.run(_fill)
    assert check_main(settings) == 0
    assert migrate_main(settings) == 0
    out = capsys.readouterr().out
    assert "migrate: 3/3 segments" in out
    assert "migrate done: 3 segments moved" in out
    assert len(list((tmp_path / "cold").rglob("*.mp4"))) == 3
    (tmp_path / "st" / "tiers.sqlite3").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / "st" / f"tiers.sqlite3{extra}").unlink(missing_ok=True)
    assert rebuild_main(settings) == 0
    assert "rebuild done: 3 copies indexed" in capsys.readouterr().out
    assert check_main(settings) == 0


@pytest.mark.trio
async def test_recorder_into_tiered_storage_playable_after_moves(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    tracks, frames = build("h264", frames=100, gop=25)
    hot, cold = DirStore(tmp_path / "hot", name="hot"), DirStore(tmp_path / "cold", name="cold")
    with trio.fail_after(30):
        async with (
            TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "st") as storage,
            open_engine() as engine,
        ):
            settings = RecordingSettings(segment_duration=2.0, part_duration=0.5)
            async with open_recorder(engine, storage, settings) as recorder:
                publisher = engine.publish_stream("cam1", tracks)
                await trio.lowlevel.checkpoint()
                for i, frame in enumerate(frames):
                    publisher.send(frame)
                    if i % 4 == 0:
                        await trio.sleep(0.001)
                publisher.close()
                await trio.lowlevel.checkpoint()
                await recorder.wait_idle()
            # The segments' wall-clock ends lie ahead of now (4 s of media recorded in far less): migrate "later".
            await storage.migrate(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
            query = await storage.query_segments("cam1", 0, 4e9)
            assert len(query.segments) >= 2
            total = 0
            for record in query.segments:
                assert record.path.startswith(str(tmp_path / "cold"))
                with av.open(str(await storage.fetch_to_cache(record))) as container:
                    total += sum(1 for p in container.demux(video=0) if p.size)
            assert total == 100
            assert (await storage.check()).ok
            assert not list((tmp_path / "st" / "spool").rglob("*.mp4"))


@pytest.mark.trio
async def test_keyframes_stay_local_and_are_listed(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with ManagedStorage([DirStore(tmp_path / "d")], state_dir=tmp_path / "state") as storage:
            record = await storage.save_keyframe("cam1", 1_700_000_000.5, b"\x00\x00\x00\x01\x65", jpeg=b"\xff\xd8x")
            later = await storage.save_keyframe("cam1", 1_700_000_060.0, b"\x00\x00\x00\x01\x65", codec="hevc")
            listed = await storage.query_keyframes("cam1", 1_699_999_999, 1_700_000_100)
    assert listed == [record, later]
    assert Path(record.path).read_bytes() == b"\xff\xd8x"
    assert Path(later.au_path).suffix == ".h265"
    assert not list((tmp_path / "state" / "keyframes").rglob("*.partial"))  # written by temporary name, renamed


# -- crash windows --------------------------------------------------------------------------------------------------


class Killed(Exception):
    """Stands for the process being killed at that point."""


@pytest.mark.parametrize("warm", [False, True], ids=["hot-cold", "hot-warm-cold"])
@pytest.mark.trio
async def test_migrate_finishes_a_move_killed_between_copy_and_mark(tmp_path: Path, warm: bool) -> None:
    def tiers() -> TieredStorage:
        hot, cold = DirStore(tmp_path / "hot", name="hot"), DirStore(tmp_path / "cold", name="cold")
        middle = DirStore(tmp_path / "warm", name="warm") if warm else None
        return TieredStorage(hot, middle, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "st")

    with trio.fail_after(20):
        async with tiers() as storage:
            segs = [make_segment(storage, i) for i in range(3)]
            for s, _ in segs:
                await storage.save_segment(s)
            index = storage.index
            original = index.mark_deleting
            calls = 0

            def mark_deleting(seg_id: int, backend: str) -> None:
                nonlocal calls
                calls += 1
                if calls == 2:  # the second segment's first copy is recorded; its source not marked yet
                    raise Killed
                original(seg_id, backend)

            index.mark_deleting = mark_deleting  # type: ignore[method-assign]
            with pytest.raises(Killed):
                await storage.migrate(now=T0 / 1e6 + 60)
        # Restarted: the next migrate finishes the interrupted move (and the third segment's).
        async with tiers() as storage:
            assert len(list((tmp_path / "hot").rglob("*.mp4"))) == 2  # the interrupted source is still there
            await storage.migrate(now=T0 / 1e6 + 60)
            assert not list((tmp_path / "hot").rglob("*.mp4"))
            if warm:
                assert not list((tmp_path / "warm").rglob("*.mp4"))
            assert sorted(p.read_bytes() for p in (tmp_path / "cold").rglob("*.mp4")) == sorted(d for _s, d in segs)
            copies = await trio.to_thread.run_sync(storage.index.all_copies)
            assert sorted(copies.values()) == [["cold"]] * 3
            assert await storage.migrate(now=T0 / 1e6 + 60) == 0  # nothing left to do
            assert (await storage.check()).ok


@pytest.mark.trio
async def test_repair_finishes_a_move_to_the_primary_killed_between_copy_and_mark(tmp_path: Path) -> None:
    blocker = tmp_path / "primary"
    blocker.write_text("not a directory")

    def storage() -> PrimaryBackupStorage:
        primary, backup = DirStore(blocker / "data", name="primary"), DirStore(tmp_path / "backup", name="backup")
        return PrimaryBackupStorage(primary, backup, state_dir=tmp_path / "state")

    with trio.fail_after(20):
        async with storage() as st:
            segs = [make_segment(st, i) for i in range(2)]
            for seg, _data in segs:
                await st.save_segment(seg)  # on the backup: the primary is down
            blocker.unlink()

            def killed(seg_id: int, backend: str) -> None:
                raise Killed

            st.index.mark_deleting = killed  # type: ignore[method-assign]
            with pytest.raises(Killed):
                await st.repair()
        assert len(list((blocker / "data").rglob("*.mp4"))) == 1
        async with storage() as st:
            assert await st.repair() == 1  # the other segment; the interrupted one is finished first
            assert not list((tmp_path / "backup").rglob("*.mp4"))
            assert sorted(p.read_bytes() for p in (blocker / "data").rglob("*.mp4")) == sorted(d for _s, d in segs)
            assert sorted((await trio.to_thread.run_sync(st.index.all_copies)).values()) == [["primary"]] * 2
            assert (await st.check()).ok


@pytest.mark.trio
async def test_buffered_upload_of_a_save_during_the_idle_check(tmp_path: Path) -> None:
    """A segment saved while the idle uploader looks at the spill directory is uploaded without another save."""
    import threading

    looking, release = threading.Event(), threading.Event()
    with trio.fail_after(10):
        async with ManagedStorage([DirStore(tmp_path / "r", name="r")], state_dir=tmp_path / "st") as remote:
            buffered = BufferedStorage(remote, tmp_path / "spill")
            original = buffered._next_spilled
            first = True

            def next_spilled() -> FinishedSegment | None:
                nonlocal first
                if first:  # the first idle check: held until the save is done
                    first = False
                    looking.set()
                    release.wait(10)
                return original()

            buffered._next_spilled = next_spilled  # type: ignore[method-assign]
            async with trio.open_nursery() as nursery:
                await nursery.start(buffered.run)
                await trio.to_thread.run_sync(looking.wait, 10)
                seg, _data = make_segment(buffered, 0)
                await buffered.save_segment(seg)
                release.set()
                await buffered.drain()  # hangs (until fail_after) when the wakeup is lost
                nursery.cancel_scope.cancel()
            assert (buffered.uploaded, buffered.pending) == (1, 0)
            assert len((await remote.query_segments("cam1", 0, 4e9)).segments) == 1


def test_commands_report_progress_to_a_callback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = TierSettings(
        policy="tiered", state_dir=str(tmp_path / "st"), hot_days=0, warm_days=0,
        backends=(BackendSettings(type="local", name="hot", base_path=str(tmp_path / "hot")),
                  BackendSettings(type="local", name="cold", base_path=str(tmp_path / "cold"))),
    )  # fmt: skip

    async def _fill() -> None:
        async with build_storage(settings) as storage:
            for i in range(2):
                await storage.save_segment(make_segment(storage, i)[0])

    trio.run(_fill)
    lines: list[str] = []
    assert migrate_main(settings, progress=lines.append) == 0
    assert lines == ["migrate: 1/2 segments, 0.0 MB", "migrate: 2/2 segments, 0.0 MB"]
    assert capsys.readouterr().out == "migrate done: 2 segments moved\n"  # the summary only: progress went to lines
    lines.clear()
    assert check_main(settings, progress=lines.append) == 0
    assert capsys.readouterr().out == "storage OK: 2 copies checked\n"
    for extra in ("", "-wal", "-shm"):
        (tmp_path / "st" / f"tiers.sqlite3{extra}").unlink(missing_ok=True)
    assert rebuild_main(settings, progress=lines.append) == 0
    assert "rebuild cold: 2/2" in lines
    assert capsys.readouterr().out == "rebuild done: 2 copies indexed\n"
