"""Storage tiers on local disks: migration throughput against a plain copy of the same files, and the cost of the
buffered writer (`BufferedStorage`) per segment against writing the segment directly, side by side in one run.

Run: `.venv/bin/python bench/bench_tiers.py [--segments N] [--size-mib M] [--rounds R]`. No server needed (the S3
figures are in `bench_s3.py`).

Migration: `TieredStorage.migrate()` moving N segments hot -> cold (two `DirStore`s on the same disk: copy with
sha256, fsync, sidecar, verify, index, delete the source) against two references on the same files: a plain move
(`shutil.copyfile` + unlink, no durability) and a careful hand-written move (copy while hashing, fsync the file and
the directory, unlink). The ratio against the careful move is the cost of the tier machinery (index, sidecar,
verification); against the plain one, of durability too.

Buffered writer: per segment, `ManagedStorage.save_segment` awaited directly (the recorder would wait for the
remote) against `BufferedStorage.save_segment` (what the recorder waits for: queueing, or spilling to disk past
`max_queue`) and the buffered end-to-end time (queue + background upload until drained).
Best of R rounds (interleaved), absolute times drift on shared machines: compare the ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxkit.storage import FinishedSegment
from fluxkit.storage.tiers import BufferedStorage, DirStore, ManagedStorage, TieredStorage

T0 = 1_700_000_000_000_000  # µs
COPY_CHUNK = 1024 * 1024


def _payload(i: int, size: int) -> bytes:
    block = hashlib.sha256(str(i).encode()).digest() * 1024  # 32 KiB, distinct per segment
    return (block * (size // len(block) + 1))[:size]


def _segment(storage: object, i: int, data: bytes, sha: str) -> FinishedSegment:
    start_us = T0 + i * 2_000_000
    final, partial = storage.segment_paths("bench", start_us)  # type: ignore[attr-defined]
    partial.write_bytes(data)
    return FinishedSegment(
        stream_id="bench", partial_path=partial, final_path=final, start_us=start_us, media_us=2_000_000,
        size=len(data), sha256=sha, run_id=1, frames=50, keyframes=((0.0, 0),),
    )  # fmt: skip


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- migration ---------------------------------------------------------------------------------------------------


async def _migrate(work: Path, datas: list[tuple[bytes, str]]) -> float:
    hot, cold = DirStore(work / "hot", name="hot"), DirStore(work / "cold", name="cold")
    async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=work / "state") as storage:
        for i, (data, sha) in enumerate(datas):
            await storage.save_segment(_segment(storage, i, data, sha))
        os.sync()  # the hot copies durable before the clock starts, as they would be
        t0 = time.perf_counter()
        moved = await storage.migrate(now=T0 / 1e6 + 86_400)
        elapsed = time.perf_counter() - t0
    assert moved == len(datas), moved
    return elapsed


def _sources(work: Path, datas: list[tuple[bytes, str]]) -> list[Path]:
    paths = []
    for i, (data, _sha) in enumerate(datas):
        path = work / "src" / f"{i // 1800:02d}" / f"seg{i:05d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    os.sync()
    return paths


def _plain_move(work: Path, datas: list[tuple[bytes, str]]) -> float:
    paths = _sources(work, datas)
    t0 = time.perf_counter()
    for path in paths:
        dest = work / "dst" / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        path.unlink()
    return time.perf_counter() - t0


def _careful_move(work: Path, datas: list[tuple[bytes, str]]) -> float:
    paths = _sources(work, datas)
    t0 = time.perf_counter()
    for path, (_data, sha) in zip(paths, datas, strict=True):
        dest = work / "dst" / path.parent.name / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(COPY_CHUNK):
                fout.write(chunk)
                digest.update(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        assert digest.hexdigest() == sha
        _fsync_dir(dest.parent)
        path.unlink()
    return time.perf_counter() - t0


# -- buffered writer ---------------------------------------------------------------------------------------------


async def _direct(work: Path, datas: list[tuple[bytes, str]]) -> float:
    async with ManagedStorage([DirStore(work / "remote", name="r")], state_dir=work / "state") as remote:
        segs = [_segment(remote, i, d, s) for i, (d, s) in enumerate(datas)]
        os.sync()
        t0 = time.perf_counter()
        for seg in segs:
            await remote.save_segment(seg)
        return time.perf_counter() - t0


async def _buffered(work: Path, datas: list[tuple[bytes, str]], max_queue: int) -> tuple[float, float]:
    """(seconds the recorder waited in total, seconds until everything was uploaded), the uploader running while
    the segments arrive, as in a recording."""
    async with ManagedStorage([DirStore(work / "remote", name="r")], state_dir=work / "state") as remote:
        buffered = BufferedStorage(remote, work / "spill", max_queue=max_queue)
        segs = [_segment(buffered, i, d, s) for i, (d, s) in enumerate(datas)]
        os.sync()
        async with trio.open_nursery() as nursery:
            await nursery.start(buffered.run)
            waited = 0.0
            t0 = time.perf_counter()
            for seg in segs:
                t1 = time.perf_counter()
                await buffered.save_segment(seg)
                waited += time.perf_counter() - t1
            await buffered.drain()
            total = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    assert buffered.uploaded == len(segs)
    return waited, total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=60)
    parser.add_argument("--size-mib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, size = args.segments, int(args.size_mib * 1024 * 1024)
    datas = [(d, hashlib.sha256(d).hexdigest()) for d in (_payload(i, size) for i in range(n))]
    mb = n * size / 1e6
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        for rnd in range(args.rounds):
            base = Path(tmp) / str(rnd)
            keep("migrate", trio.run(_migrate, base / "m", datas))
            keep("plain", _plain_move(base / "p", datas))
            keep("careful", _careful_move(base / "c", datas))
            keep("direct", trio.run(_direct, base / "d", datas))
            waited, total = trio.run(_buffered, base / "b", datas, 1_000_000)
            keep("queued_wait", waited)
            keep("queued_total", total)
            waited, total = trio.run(_buffered, base / "s", datas, 0)
            keep("spill_wait", waited)
            keep("spill_total", total)
            shutil.rmtree(base)

    def per(name: str) -> float:
        return best[name] / n * 1e6

    print(f"{n} segments x {args.size_mib:g} MiB under {Path(tmp).parent}, best of {args.rounds}")
    print("Migration hot -> cold (local DirStores):")
    print(f"  TieredStorage.migrate      {mb / best['migrate']:8.1f} MB/s  {n / best['migrate']:7.1f} segments/s")
    for name, label in (("careful", "careful move (hash, fsync)"), ("plain", "plain move (copy, unlink) ")):
        ratio = best[name] / best["migrate"]
        print(f"  {label} {mb / best[name]:8.1f} MB/s  migrate/this {ratio:.2f}")
    print("Buffered writer, per segment (remote = a ManagedStorage on a local DirStore):")
    print(f"  direct save_segment (recorder waits for the write)  {per('direct'):9.0f} µs")
    print(f"  BufferedStorage, queued: recorder waits             {per('queued_wait'):9.1f} µs"
          f"  ({best['direct'] / best['queued_wait']:.0f}x less than direct)")  # fmt: skip
    print(f"  BufferedStorage, queued: end to end (until drained) {per('queued_total'):9.0f} µs"
          f"  ratio to direct {best['queued_total'] / best['direct']:.2f}")  # fmt: skip
    print(f"  BufferedStorage, spilling: recorder waits           {per('spill_wait'):9.0f} µs"
          f"  ({best['direct'] / best['spill_wait']:.1f}x less than direct)")  # fmt: skip
    print(f"  BufferedStorage, spilling: end to end               {per('spill_total'):9.0f} µs"
          f"  ratio to direct {best['spill_total'] / best['direct']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
