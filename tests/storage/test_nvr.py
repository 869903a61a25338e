"""Edge-to-central on loopback: an edge `ManagedStorage` with an `NvrStorage` uploading to a central fluxkit's
REST app serving `nvr_routes`; faults (500s, the central down, a connection dropped mid-upload) lose nothing."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from fluxkit.api import openapi_document
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
from fluxkit.storage.tiers._nvr import UPLOADS_DIR_NAME, NvrUploads
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
async def central(
    tmp_path: Path, storage_class: type[LocalStorage] = LocalStorage, **route_kw: Any
) -> AsyncIterator[tuple[LocalStorage, int]]:
    async with storage_class(tmp_path / "central") as storage:
        routes = tuple(nvr_routes(storage, **route_kw))
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


# -- abandoned uploads, OpenAPI, deletion through the storage's public method ------------------------------------


class FakeWallClock:
    def __init__(self) -> None:
        self.now = T0 / 1e6 + 86_400

    def __call__(self) -> float:
        return self.now


def upload_params(seg: FinishedSegment) -> dict[str, str]:
    return {"key": f"cam1/x/y/{seg.final_path.name}", "start": str(seg.start_us),
            "end": str(seg.start_us + seg.media_us), "sha256": seg.sha256, "size": str(seg.size)}  # fmt: skip


async def post_chunk(client: httpx.AsyncClient, seg: FinishedSegment, data: bytes, first: int, last: int) -> int:
    """POST bytes first..last of the segment; returns the bytes the server says it holds."""
    cr = f"bytes {first}-{last}/{seg.size}" if last >= first else f"bytes */{seg.size}"
    r = await client.post("/api/v1/recordings/cam1", params=upload_params(seg), content=data[first : last + 1],
                          headers={"Content-Range": cr})  # fmt: skip
    assert r.status_code == 308, r.text
    return int(r.headers["range"].split("-")[1]) + 1 if "range" in r.headers else 0


@pytest.mark.trio
async def test_abandoned_uploads_are_removed_and_the_client_starts_over(tmp_path: Path) -> None:
    clock = FakeWallClock()
    with trio.fail_after(30):
        async with LocalStorage(tmp_path / "central") as storage:
            uploads = NvrUploads(storage, max_age=600, sweep_interval=3600, wall_clock=clock)
            routes = tuple(nvr_routes(storage, uploads=uploads))
            async with running_api(lambda _e: {"storage": storage, "extra_routes": routes}, token=TOKEN) as api:
                (old, old_data), (new, new_data) = make_segment(storage, 0), make_segment(storage, 1)
                # The first request sweeps (nothing yet), then both uploads stop half way.
                assert await post_chunk(api.client, old, old_data, 0, 999) == 1000
                assert await post_chunk(api.client, new, new_data, 0, 1999) == 2000
                files = sorted((tmp_path / "central" / UPLOADS_DIR_NAME / "cam1").iterdir())
                assert [f.name for f in files] == [f"2023-11-14T22_{s.final_path.name}.upload" for s in (old, new)]
                os.utime(files[0], (clock.now - 601, clock.now - 601))  # no byte for longer than max_age
                os.utime(files[1], (clock.now - 599, clock.now - 599))
                # Not swept before sweep_interval: the old upload still resumes.
                assert await post_chunk(api.client, old, old_data, 0, -1) == 1000
                os.utime(files[0], (clock.now - 601, clock.now - 601))
                clock.now += 3600  # a request after sweep_interval sweeps; ages count from this new now
                os.utime(files[1], (clock.now - 10, clock.now - 10))
                assert await post_chunk(api.client, new, new_data, 0, -1) == 2000
                assert not files[0].exists()
                assert files[1].exists()
                assert uploads.removed == 1
                # The abandoned one is asked about again: nothing held, the client sends it whole, nothing lost.
                assert await post_chunk(api.client, old, old_data, 0, -1) == 0
                nvr = edge_store(api.port)
                await nvr.open()
                for seg, _data in ((old, old_data), (new, new_data)):
                    await nvr.put_file(upload_params(seg)["key"], seg.partial_path, size=seg.size, sha256=seg.sha256,
                                       metadata={"stream": "cam1", "start-us": str(seg.start_us),
                                                 "media-us": str(seg.media_us)})  # fmt: skip
                await nvr.aclose()
                stored = (await storage.query_segments("cam1", 0, 4e9)).segments
                assert [Path(r.path).read_bytes() for r in stored] == [old_data, new_data]
                assert list(files[0].parent.iterdir()) == []  # finished uploads leave nothing behind


@pytest.mark.trio
async def test_upload_sweeper_runs_at_start_and_periodically(tmp_path: Path) -> None:
    clock = FakeWallClock()
    async with LocalStorage(tmp_path / "central") as storage:
        uploads = NvrUploads(storage, max_age=60, sweep_interval=0.01, wall_clock=clock)
        stale = uploads.path("cam1", T0, "a.mp4")
        later = uploads.path("cam2", T0, "b.mp4")
        fresh = uploads.path("cam1", T0 + 2_000_000, "c.mp4")
        for path in (stale, later, fresh):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 10)
            os.utime(path, (clock.now - 30, clock.now - 30))
        os.utime(stale, (clock.now - 61, clock.now - 61))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(uploads.run)
                assert not stale.exists()  # swept before started()
                assert later.exists()
                assert fresh.exists()
                os.utime(later, (clock.now - 61, clock.now - 61))
                while later.exists():  # noqa: ASYNC110  (the next periodic sweep takes it; nothing to wait on)
                    await trio.sleep(0.01)
                assert fresh.exists()
                assert uploads.removed == 2
                nursery.cancel_scope.cancel()
    assert not (tmp_path / "central" / "cam1").exists()  # outside the recordings: reconcile never sees them
    with pytest.raises(ValueError):
        NvrUploads(storage, sweep_interval=0)


def test_openapi_one_template_per_path() -> None:
    doc = openapi_document(nvr_routes(LocalStorage("/nonexistent")))
    templates = [re.sub(r"{\w+}", "{}", path) for path in doc["paths"]]
    assert len(templates) == len(set(templates))  # no two paths that one URL template could match
    item = doc["paths"]["/api/v1/recordings/{id}"]
    assert set(item) == {"get", "post", "delete"}
    described = {m: [p["description"] for p in op["parameters"] if p["in"] == "path"] for m, op in item.items()}
    assert "stream" in described["get"][0]
    assert "stream" in described["post"][0]
    assert "record" in described["delete"][0]
    assert "/api/v1/recordings/{id}/playback" in doc["paths"]


class PublicDeleteStorage(LocalStorage):
    """A storage with the public `delete_segments` the NVR delete should use."""

    deleted: list[int] = []  # noqa: RUF012  (one test)

    async def delete_segments(self, ids: list[int]) -> list[Any]:
        self.deleted.extend(ids)
        return await self.cleanup_expired(max_age=None)  # (stand-in) only records the call


@pytest.mark.trio
async def test_delete_goes_through_the_public_storage_method(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with central(tmp_path, PublicDeleteStorage) as (storage, port):
            nvr = edge_store(port)
            await nvr.open()
            seg, _data = make_segment(storage, 0)
            key = f"cam1/2023-11-14/22/{seg.final_path.name}"
            meta = {"stream": "cam1", "start-us": str(seg.start_us), "media-us": "2000000"}
            await nvr.put_file(key, seg.partial_path, size=seg.size, sha256=seg.sha256, metadata=meta)
            (record,) = (await storage.query_segments("cam1", 0, 4e9)).segments
            await nvr.delete(key)
            assert PublicDeleteStorage.deleted == [record.id]
            await nvr.aclose()


class PublicOnly:
    """A storage seen through its public methods only: the NVR routes need nothing else (no index, no private
    helpers)."""

    ALLOWED = frozenset({"root", "segment_paths", "save_segment", "query_segments", "stream_ids", "delete_segments",
                         "fetch_to_cache"})  # fmt: skip

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name not in self.ALLOWED:
            raise AttributeError(f"the NVR routes reached for {name!r}")
        return getattr(self._inner, name)


@pytest.mark.parametrize("kind", ["local", "managed"])
@pytest.mark.trio
async def test_nvr_routes_use_only_public_storage_methods(tmp_path: Path, kind: str) -> None:
    inner: Any = (
        LocalStorage(tmp_path / "central")
        if kind == "local"
        else ManagedStorage([DirStore(tmp_path / "central-data", name="d")], state_dir=tmp_path / "central")
    )
    with trio.fail_after(30):
        async with inner:
            routes = tuple(nvr_routes(PublicOnly(inner)))
            async with running_api(lambda _e: {"storage": inner, "extra_routes": routes}, token=TOKEN) as api:
                nvr = edge_store(api.port)
                await nvr.open()
                segs = [make_segment(inner, i, stream=s) for i, s in enumerate(["cam1", "cam2", "cam1"])]
                keys = []
                for seg, _data in segs:
                    keys.append(f"{seg.stream_id}/2023-11-14/22/{seg.final_path.name}")
                    await nvr.put_file(keys[-1], seg.partial_path, size=seg.size, sha256=seg.sha256,
                                       metadata={"stream": seg.stream_id, "start-us": str(seg.start_us),
                                                 "media-us": str(seg.media_us)})  # fmt: skip
                assert sorted(b.key for b in await nvr.list_blobs()) == sorted(keys)  # every stream
                await nvr.delete(keys[0])
                assert sorted(b.key for b in await nvr.list_blobs()) == sorted(keys[1:])
                assert await inner.stream_ids() == ["cam1", "cam2"]
                (left,) = (await inner.query_segments("cam1", 0, 4e9)).segments
                assert left.sha256 == segs[2][0].sha256
                dest = tmp_path / "back.mp4"
                await nvr.fetch(keys[2], dest)
                assert dest.read_bytes() == segs[2][1]
                await nvr.delete(keys[1])
                assert await inner.stream_ids() == ["cam1"]
                await nvr.aclose()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.trio
async def test_fluxkit_run_serving_nvr_sweeps_abandoned_uploads_at_start(tmp_path: Path) -> None:
    import time
    from functools import partial

    from fluxkit.app import run_fluxkit
    from fluxkit.config import ApiSettings, Config, KeyframeSettings, ProtocolSettings, StorageSettings, VideoSettings

    ports = {name: _free_port() for name in ("rtsp_port", "api_port", "rtmp_port", "sip_port")}
    config = Config(video=VideoSettings(
        data_dir=str(tmp_path), protocols=ProtocolSettings(**ports), api=ApiSettings(token=TOKEN),
        keyframe=KeyframeSettings(enabled=False),
        storage=StorageSettings(serve_nvr=True, nvr_upload_max_age_hours=1.5),
    ))  # fmt: skip
    uploads = tmp_path / "recordings" / UPLOADS_DIR_NAME / "cam1"
    uploads.mkdir(parents=True)
    seg_old, seg_recent = (f"20231114T2213{s:02d}.000Z.mp4" for s in (20, 22))
    old, recent = uploads / f"2023-11-14T22_{seg_old}.upload", uploads / f"2023-11-14T22_{seg_recent}.upload"
    for path in (old, recent):
        path.write_bytes(b"x" * 100)
    now = time.time()
    os.utime(old, (now - 2 * 3600, now - 2 * 3600))  # older than 1.5 h: abandoned
    os.utime(recent, (now - 3600, now - 3600))  # within 1.5 h (the 24 h default would keep both)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(partial(run_fluxkit, config))
            assert not old.exists()  # swept before fluxkit reported it was serving
            assert recent.exists()
            # The routes serve the same uploads: the recent one still resumes from its 100 bytes.
            async with httpx.AsyncClient(base_url=running.api_url,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as client:  # fmt: skip
                params = {"key": f"cam1/2023-11-14/22/{seg_recent}", "start": str(T0 + 2_000_000),
                          "end": str(T0 + 4_000_000), "sha256": "0" * 64, "size": "4096"}  # fmt: skip
                r = await client.post("/api/v1/recordings/cam1", params=params,
                                      headers={"Content-Range": "bytes */4096"})  # fmt: skip
                assert (r.status_code, r.headers.get("range")) == (308, "bytes=0-99")
            nursery.cancel_scope.cancel()
