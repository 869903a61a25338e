"""`CloudStorage` and the S3 tiers against a real S3 server on loopback (SeaweedFS, `tests/storage/seaweed.py`):
round trip with checksums, multipart, range reads, wrong credentials, the server killed mid-multipart, a dead S3
primary with a local backup, tiered local -> NAS -> S3 with playback from S3, and a migration killed with SIGKILL."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from fluxkit.storage.tiers import (
    BackendSettings,
    CloudStorage,
    DirStore,
    ManagedStorage,
    NasStorage,
    PrimaryBackupStorage,
    TieredStorage,
    TierError,
    TierSettings,
    build_storage,
    check_main,
    migrate_main,
)
from tests.storage.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedServer
from tests.storage.test_tiers import T0, make_segment

pytestmark = pytest.mark.interop

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    try:
        yield server
    finally:
        server.kill()


#: One bucket for every test (each bucket is a SeaweedFS collection with volumes of its own); tests use prefixes.
BUCKET = "fluxkit"


def cloud(server: SeaweedServer, prefix: str, **kwargs: object) -> CloudStorage:
    kwargs.setdefault("access_key", ACCESS_KEY)
    kwargs.setdefault("secret_key", SECRET_KEY)
    kwargs.setdefault("create_bucket", True)
    return CloudStorage(server.endpoint, BUCKET, prefix=f"{prefix}/", **kwargs)  # type: ignore[arg-type]


@pytest.mark.trio
async def test_round_trip_multipart_range_and_checksum(seaweed: SeaweedServer, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with ManagedStorage([cloud(seaweed, "round-trip")], state_dir=tmp_path / "st") as storage:
            small, small_data = make_segment(storage, 0, size=64 * 1024)
            big, big_data = make_segment(storage, 1, size=20 * MiB + 96)  # 3 parts of 8 MiB
            for seg in (small, big):
                record = await storage.save_segment(seg)
                assert record.path.startswith("s3:cam1/")
                assert not seg.partial_path.exists()
            query = await storage.query_segments("cam1", 0, 4e9)
            assert [r.size for r in query.segments] == [len(small_data), len(big_data)]
            rec_big = query.segments[1]
            assert await storage.read_range(rec_big, 9 * MiB - 3, 10) == big_data[9 * MiB - 3 : 9 * MiB + 7]
            cached = await storage.fetch_to_cache(rec_big)
            assert hashlib.sha256(cached.read_bytes()).hexdigest() == big.sha256
            report = await storage.check()
            assert report.ok, report.lines()
            assert report.copies == 2
            s3 = storage.stores["s3"]
            info = await s3.stat(rec_big.path.split(":", 1)[1])
            assert info is not None
            assert info.sha256 == big.sha256
            assert info.metadata["stream"] == "cam1"


@pytest.mark.trio
async def test_download_detects_corruption(seaweed: SeaweedServer, tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with cloud(seaweed, "corrupt") as s3:
            src = tmp_path / "a.mp4"
            src.write_bytes(b"a" * 1000)
            # Stored metadata says another digest: the download must refuse the bytes.
            await s3.put_file("cam1/a.mp4", src, size=1000, sha256=hashlib.sha256(b"a" * 1000).hexdigest(),
                              metadata={})  # fmt: skip
            await s3._call("put", s3._client.put_object, Bucket=BUCKET, Key="corrupt/cam1/a.mp4", Body=b"b" * 1000,
                           Metadata={"sha256": hashlib.sha256(b"a" * 1000).hexdigest()})  # fmt: skip
            with pytest.raises(TierError, match="checksum mismatch"):
                await s3.fetch("cam1/a.mp4", tmp_path / "out.mp4")
            assert not (tmp_path / "out.mp4").exists()


@pytest.mark.trio
async def test_wrong_credentials_clear_error(seaweed: SeaweedServer) -> None:
    with trio.fail_after(30):
        with pytest.raises(TierError, match="credentials rejected") as info:
            async with cloud(seaweed, "creds", secret_key="wrong-secret"):
                pass
        assert info.value.errno == errno.EACCES
        with pytest.raises(TierError, match="credentials rejected"):
            async with cloud(seaweed, "creds", access_key="nobody"):
                pass


@pytest.fixture(scope="module")
def crashing_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A server of its own for the tests that kill it."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed-crash")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.slow
@pytest.mark.trio
async def test_server_killed_mid_multipart_then_restarted(crashing_seaweed: SeaweedServer, tmp_path: Path) -> None:
    server = crashing_seaweed
    killed = trio.Event()

    class Crashing(CloudStorage):
        async def upload_part(self, **kwargs):  # type: ignore[no-untyped-def]
            response = await super().upload_part(**kwargs)
            if kwargs["number"] == 1 and not killed.is_set():
                server.kill()  # the server dies between part 1 and part 2
                killed.set()
            return response

    s3 = Crashing(server.endpoint, BUCKET, access_key=ACCESS_KEY, secret_key=SECRET_KEY, create_bucket=True,
                  max_concurrency=1, backoff_initial=0.2, backoff_max=2.0, max_retries=30,
                  connect_timeout=2)  # fmt: skip
    with trio.fail_after(120):
        async with ManagedStorage([s3], state_dir=tmp_path / "st") as storage, trio.open_nursery() as nursery:

            async def _restart() -> None:
                await killed.wait()
                await trio.sleep(0.5)
                await trio.to_thread.run_sync(server.start)

            nursery.start_soon(_restart)
            seg, data = make_segment(storage, 0, size=20 * MiB)
            record = await storage.save_segment(seg)
            assert killed.is_set()
            assert s3.retries > 0
            assert record.path == "s3:" + record.path.split(":", 1)[1]
            cached = await storage.fetch_to_cache(record)
            assert cached.read_bytes() == data
            assert (await storage.check()).ok


@pytest.mark.slow
@pytest.mark.trio
async def test_primary_backup_dead_s3_then_repaired(crashing_seaweed: SeaweedServer, tmp_path: Path) -> None:
    server = crashing_seaweed
    s3 = CloudStorage(server.endpoint, BUCKET, prefix="pb/", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                      create_bucket=True, max_retries=1, backoff_initial=0.05, connect_timeout=1)  # fmt: skip
    backup = DirStore(tmp_path / "backup", name="backup")
    with trio.fail_after(90):
        async with PrimaryBackupStorage(s3, backup, state_dir=tmp_path / "st") as storage:
            first, _ = make_segment(storage, 0)
            assert (await storage.save_segment(first)).path == f"s3:{first.final_path.relative_to(storage.spool)}"
            await trio.to_thread.run_sync(server.kill)
            segs = [make_segment(storage, i) for i in range(1, 4)]
            for seg, _ in segs:
                record = await storage.save_segment(seg)
                assert record.path.startswith(str(tmp_path / "backup"))  # the index says where it went
            assert await storage.repair() == 0  # still down: nothing moved, nothing lost
            assert len((await storage.check()).degraded) == 3
            await trio.to_thread.run_sync(server.start)
            assert await storage.repair() == 3
            report = await storage.check()
            assert report.ok, report.lines()
            query = await storage.query_segments("cam1", 0, 4e9)
            assert all(r.path.startswith("s3:") for r in query.segments)
            for record, (_seg, data) in zip(query.segments[1:], segs, strict=True):
                assert (await storage.fetch_to_cache(record)).read_bytes() == data


@pytest.mark.trio
async def test_tiered_local_nas_s3_playback_from_cache(seaweed: SeaweedServer, tmp_path: Path) -> None:
    hot = DirStore(tmp_path / "hot", name="hot")
    warm = NasStorage(tmp_path / "share", "fluxkit", name="nas", require_mount=False, min_free_bytes=0)
    with trio.fail_after(60):
        async with TieredStorage(hot, warm, cloud(seaweed, "tiers"), hot_days=0, warm_days=0,
                                 state_dir=tmp_path / "st") as storage:  # fmt: skip
            segs = [make_segment(storage, i, size=256 * 1024) for i in range(3)]
            for seg, _ in segs:
                await storage.save_segment(seg)
            lines: list[str] = []
            assert await storage.migrate(lines.append, now=T0 / 1e6 + 3600) == 3
            assert lines[-1].startswith("migrate: 3/3")
            assert not list((tmp_path / "hot").rglob("*.mp4"))
            assert not list((tmp_path / "share").rglob("*.mp4"))
            query = await storage.query_segments("cam1", 0, 4e9)
            for record, (_seg, data) in zip(query.segments, segs, strict=True):
                assert record.path.startswith("s3:")
                path = await storage.fetch_to_cache(record)
                assert path.is_relative_to(tmp_path / "st" / "cache")
                assert path.read_bytes() == data
                assert await storage.read_range(record, 100, 50) == data[100:150]
            assert (await storage.check()).ok


_CHILD = """
import json, os, sys
from fluxkit.storage.tiers import BackendSettings, TierSettings, migrate_main
raw = json.loads(os.environ["FLUXKIT_TIERS"])
raw["backends"] = tuple(BackendSettings(**b) for b in raw["backends"])
sys.exit(migrate_main(TierSettings(**raw)))
"""


def test_migration_killed_and_resumed(seaweed: SeaweedServer, tmp_path: Path) -> None:
    seaweed.create_bucket(BUCKET)
    raw = {
        "policy": "tiered", "state_dir": str(tmp_path / "st"), "hot_days": 0, "warm_days": 0,
        "backends": [
            {"type": "local", "name": "hot", "base_path": str(tmp_path / "hot")},
            {"type": "s3", "name": "cold", "endpoint": seaweed.endpoint, "bucket": BUCKET,
             "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "prefix": "edge/"},
        ],
    }  # fmt: skip
    settings = TierSettings(**{**raw, "backends": tuple(BackendSettings(**b) for b in raw["backends"])})  # type: ignore[arg-type]
    count = 24

    async def _fill() -> None:
        async with build_storage(settings) as storage:
            for i in range(count):
                await storage.save_segment(make_segment(storage, i, size=512 * 1024)[0])

    trio.run(_fill)
    env = {**os.environ, "FLUXKIT_TIERS": json.dumps(raw)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parents[2])  # fmt: skip
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line)
        if line.startswith("migrate: 3/"):
            os.kill(child.pid, signal.SIGKILL)  # fluxkit killed mid-migration
            break
    child.wait()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL, seen
    assert migrate_main(settings) == 0  # resumes: the index says what was moved
    assert check_main(settings) == 0
    assert not list((tmp_path / "hot").rglob("*.mp4"))

    async def _verify() -> None:
        async with build_storage(settings) as storage:
            query = await storage.query_segments("cam1", 0, 4e9)
            assert len(query.segments) == count
            assert all(r.path.startswith("cold:") for r in query.segments)

    trio.run(_verify)
