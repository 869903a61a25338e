"""Edge-to-central on loopback: an edge `ManagedStorage` with an `NvrStorage` uploading to a central fluxkit's
REST app serving `nvr_routes`; faults (500s, the central down, a connection dropped mid-upload) lose nothing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from fluxkit.storage import FinishedSegment, LocalStorage
from fluxkit.storage.tiers import (
    BufferedStorage,
    DirStore,
    ManagedStorage,
    NvrStorage,
    TieredStorage,
    TierError,
    nvr_routes,
)
from tests.api.helpers import TOKEN, running_api

T0 = 1_700_000_000_000_000  # µs


def make_segment(storage: Any, i: int, size: int = 4096, stream: str = "cam1") -> tuple[FinishedSegment, bytes]:
    start_us = T0 + i * 2_000_000
    final, partial = storage.segment_paths(stream, start_us)
    data = hashlib.sha256(str(i).encode()).digest() * (size // 32)
    partial.write_bytes(data)
    seg = FinishedSegment(
        stream_id=stream, partial_path=partial, final_path=final, start_us=start_us, media_us=2_000_000,
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), run_id=1, frames=50, keyframes=((0.0, 0),),
    )  # fmt: skip
    return seg, data


class FaultTransport(httpx.AsyncBaseTransport):
    """The real transport, with faults on demand: `fail_500` answers, `down` (connect errors), and
    `drop_next_upload` (send half of the next chunk, then drop the connection)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fail_500 = 0
        self.down = False
        self.drop_next_upload = False
        self.requests: list[tuple[str, str, str]] = []
        self.refused = 0
        self.refused_three = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, request.headers.get("content-range", "")))
        if self.down:
            self.refused += 1
            if self.refused >= 3:
                self.refused_three.set()
            raise httpx.ConnectError("connection refused (simulated)", request=request)
        if self.fail_500 > 0:
            self.fail_500 -= 1
            return httpx.Response(500, json={"error": "simulated"}, request=request)
        cr = request.headers.get("content-range", "")
        if self.drop_next_upload and request.method == "POST" and not cr.startswith("bytes */"):
            self.drop_next_upload = False
            body = await request.aread()
            half = len(body) // 2

            async def _half() -> AsyncIterator[bytes]:
                yield body[:half]
                await trio.sleep(0.2)  # let the server read the half before the connection goes
                raise httpx.WriteError("connection dropped (simulated)")

            cut = httpx.Request(request.method, request.url, headers=request.headers, stream=_Stream(_half()))
            return await self.inner.handle_async_request(cut)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Stream(httpx.AsyncByteStream):
    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self.it = it

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.it:
            yield chunk


@asynccontextmanager
async def central(tmp_path: Path) -> AsyncIterator[tuple[LocalStorage, int]]:
    async with LocalStorage(tmp_path / "central") as storage:
        routes = tuple(nvr_routes(storage))
        async with running_api(lambda _engine: {"storage": storage, "extra_routes": routes}, token=TOKEN) as api:
            yield storage, api.port


def edge_store(port: int, transport: httpx.AsyncBaseTransport | None = None, **kw: Any) -> NvrStorage:
    return NvrStorage(f"http://127.0.0.1:{port}", TOKEN, name="central", timeout=5, retry_initial=0.01,
                      retry_max=0.05, transport=transport, **kw)  # fmt: skip


@pytest.mark.trio
async def test_edge_to_central_upload_list_download(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with central(tmp_path) as (central_storage, port):
            nvr = edge_store(port, chunk_size=1000)
            async with ManagedStorage([nvr], state_dir=tmp_path / "edge") as edge:
                segs = [make_segment(edge, i, size=4096) for i in range(3)]
                records = [await edge.save_segment(s) for s, _ in segs]
                assert all(r.path.startswith("central:cam1/") for r in records)
                assert not any(s.partial_path.exists() for s, _ in segs)
                # The central indexed them like its own recordings, with the edge's names.
                on_central = (await central_storage.query_segments("cam1", 0, 4e9)).segments
                assert [s.sha256 for s in on_central] == [s.sha256 for s, _ in segs]
                assert [Path(s.path).name for s in on_central] == [Path(r.path).name for r in records]
                listed = await nvr.list_records("cam1", T0, T0 + 10_000_000)
                assert [r["key"] for r in listed] == [r.path.split(":", 1)[1] for r in records]
                assert [r["start_us"] for r in listed] == [s.start_us for s, _ in segs]
                # Downloaded back with checksums, and range reads.
                for record, (_seg, data) in zip(records, segs, strict=True):
                    path = await edge.fetch_to_cache(record)
                    assert path.read_bytes() == data
                    assert await edge.read_range(record, 100, 50) == data[100:150]
                assert (await edge.check()).ok
                # Rebuilding the edge index from the central alone finds them all.
                assert {b.key for b in await nvr.list_blobs()} == {r.path.split(":", 1)[1] for r in records}
                # An upload retried after its answer was lost is idempotent.
                seg, data = make_segment(edge, 0)
                await nvr.put_file(records[0].path.split(":", 1)[1], seg.partial_path, size=seg.size,
                                   sha256=seg.sha256, metadata={"stream": "cam1", "start-us": str(seg.start_us),
                                                                "media-us": "2000000"})  # fmt: skip
                assert len((await central_storage.query_segments("cam1", 0, 4e9)).segments) == 3
                # Retention on the edge deletes on the central.
                deleted = await edge.cleanup_expired(now=T0 / 1e6 + 3600, max_age=60)
                assert len(deleted) == 3
                assert (await central_storage.query_segments("cam1", 0, 4e9)).segments == ()


@pytest.mark.trio
async def test_wrong_token_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with central(tmp_path) as (_central, port):
            nvr = NvrStorage(f"http://127.0.0.1:{port}", "wrong-token", timeout=5, retry_initial=0.01)
            with pytest.raises(TierError) as info:
                await nvr.open()
            assert "401" in str(info.value)
            await nvr.aclose()


@pytest.mark.trio
async def test_central_500_and_down_nothing_lost(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with central(tmp_path) as (central_storage, port):
            faults = FaultTransport()
            nvr = edge_store(port, faults, retries=3)
            async with ManagedStorage([nvr], state_dir=tmp_path / "edge") as edge:
                # 500s within the retry budget: retried, stored once.
                faults.fail_500 = 2
                seg, _data = make_segment(edge, 0)
                await edge.save_segment(seg)
                assert nvr.retried >= 2
                # Central down for longer than the retries: BufferedStorage keeps (spills) everything.
                buffered = BufferedStorage(edge, tmp_path / "spill", max_queue=1, retry_initial=0.01, retry_max=0.05)
                async with trio.open_nursery() as nursery:
                    faults.down = True
                    await nursery.start(buffered.run)
                    segs = [make_segment(buffered, i) for i in range(1, 5)]
                    for s, _ in segs:
                        await buffered.save_segment(s)
                    await faults.refused_three.wait()
                    assert buffered.pending == 4
                    faults.down = False
                    await buffered.drain()
                    nursery.cancel_scope.cancel()
                on_central = (await central_storage.query_segments("cam1", 0, 4e9)).segments
                assert [s.start for s in on_central] == sorted(s.start for s in on_central)
                assert len(on_central) == 5
                assert (await edge.check()).ok
                assert len((await edge.query_segments("cam1", 0, 4e9)).segments) == 5


@pytest.mark.trio
async def test_resumable_upload_after_dropped_connection(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with central(tmp_path) as (central_storage, port):
            faults = FaultTransport()
            nvr = edge_store(port, faults, chunk_size=64 * 1024)
            async with ManagedStorage([nvr], state_dir=tmp_path / "edge") as edge:
                seg, data = make_segment(edge, 0, size=256 * 1024)
                faults.drop_next_upload = True
                record = await edge.save_segment(seg)
                assert nvr.resumed_bytes > 0  # the half chunk the server kept was not sent again
                chunks = [cr for m, _p, cr in faults.requests if m == "POST" and not cr.startswith("bytes */")]
                first = [int(cr.split()[1].split("-")[0]) for cr in chunks]
                assert any(o % (64 * 1024) for o in first)  # a chunk started mid-way: resumed, not restarted
                on_central = (await central_storage.query_segments("cam1", 0, 4e9)).segments
                assert [Path(s.path).read_bytes() for s in on_central] == [data]
                assert (await edge.fetch_to_cache(record)).read_bytes() == data


@pytest.mark.trio
async def test_tiered_hot_to_central_migration(tmp_path: Path) -> None:
    with trio.fail_after(30):
        async with central(tmp_path) as (_central, port):
            hot = DirStore(tmp_path / "hot", name="hot")
            storage = TieredStorage(hot, None, edge_store(port), hot_days=0, warm_days=0, state_dir=tmp_path / "e")
            async with storage:
                segs = [make_segment(storage, i) for i in range(2)]
                for s, _ in segs:
                    await storage.save_segment(s)
                assert await storage.migrate(now=T0 / 1e6 + 60) == 2
                query = await storage.query_segments("cam1", 0, 4e9)
                assert all(r.path.startswith("central:") for r in query.segments)
                assert [(await storage.fetch_to_cache(r)).read_bytes() for r in query.segments] == [d for _s, d in segs]
                assert (await storage.check()).ok
