"""Playback and export of segments kept only on a remote tier (read through `fetch_to_cache`), and
`open_configured_storage`."""

from __future__ import annotations

import io
import time
from contextlib import aclosing
from pathlib import Path

import av
import pytest
import trio

from fluxkit.config import parse_config
from fluxkit.playback import export_range
from fluxkit.storage import LocalStorage
from fluxkit.storage.tiers import DirStore, TieredStorage, open_configured_storage
from tests.api.helpers import record_clip


class RemoteDirStore(DirStore):
    """A directory that pretends to be remote: no local path, so every read goes through `fetch`."""

    def local_path(self, key: str) -> Path | None:
        return None


@pytest.mark.trio
async def test_export_of_segments_only_on_a_remote_tier(tmp_path: Path) -> None:
    with trio.fail_after(60):
        hot, cold = DirStore(tmp_path / "hot", name="hot"), RemoteDirStore(tmp_path / "cold", name="cold")
        async with TieredStorage(hot, None, cold, hot_days=0, warm_days=0, state_dir=tmp_path / "state") as storage:
            media = await record_clip(storage, frames=100, gop=25)
            assert await storage.migrate(now=time.time() + 86_400) >= 2
            segments = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert segments
            assert all(s.path.startswith("cold:") for s in segments)
            assert not list((tmp_path / "hot").rglob("*.mp4"))
            start, end = segments[0].start, segments[-1].end
            async with aclosing(export_range(storage, "cam1", start, end)) as chunks:
                data = b"".join([c async for c in chunks])
        with av.open(io.BytesIO(data), "r", format="mp4") as container:
            frames = sum(1 for p in container.demux(video=0) if p.size)
        assert frames == len([f for f in media if f.kind == "video"])
        assert list((tmp_path / "state" / "cache").rglob("*.mp4"))  # read through the verified cache


@pytest.mark.trio
async def test_open_configured_storage(tmp_path: Path) -> None:
    with trio.fail_after(20):
        plain = parse_config(f'[video]\ndata_dir = "{tmp_path / "a"}"\n')
        async with open_configured_storage(plain) as storage:
            assert isinstance(storage, LocalStorage)
            assert storage.root == tmp_path / "a" / "recordings"
        tiered = parse_config(
            f'[video]\ndata_dir = "{tmp_path / "b"}"\n[video.storage]\npolicy = "tiered"\n'
            '[[video.storage.backends]]\ntype = "local"\nname = "hot"\n'
            f'[[video.storage.backends]]\ntype = "local"\nname = "cold"\nbase_path = "{tmp_path / "cold"}"\n'
        )
        async with open_configured_storage(tiered, background_interval=0.01) as storage:
            assert isinstance(storage, TieredStorage)
            assert storage.tiers == ["hot", "cold"]
            assert storage.state_dir == tmp_path / "b" / "storage-tiers"
            await trio.sleep(0.05)  # the background pass runs (and finds nothing to do)
        assert storage._index is None  # closed on exit, background task cancelled


@pytest.mark.trio
async def test_spool_partials_are_salvaged_on_open(tmp_path: Path) -> None:
    with trio.fail_after(60):
        hot, cold = DirStore(tmp_path / "hot", name="hot"), DirStore(tmp_path / "cold", name="cold")
        async with TieredStorage(hot, None, cold, hot_days=1, warm_days=1, state_dir=tmp_path / "state") as storage:
            await record_clip(storage, frames=50, gop=25)
            segments = (await storage.query_segments("cam1", 0, 4e9)).segments
        # A crash mid-segment: put one back into the spool as a partial, cut inside its last fragment.
        victim = Path(segments[-1].path)
        data = victim.read_bytes()
        spool_partial = tmp_path / "state" / "spool" / victim.relative_to(tmp_path / "hot")
        spool_partial = spool_partial.with_name(f".{victim.name}.partial")
        spool_partial.parent.mkdir(parents=True, exist_ok=True)
        spool_partial.write_bytes(data[: len(data) - 10])
        (tmp_path / "state" / "spool" / "cam1" / "garbage").mkdir()
        (tmp_path / "state" / "spool" / "cam1" / "garbage" / ".20231114T221320.000Z.mp4.partial").write_bytes(b"x")
        async with TieredStorage(hot, None, cold, hot_days=1, warm_days=1, state_dir=tmp_path / "state") as storage:
            after = (await storage.query_segments("cam1", 0, 4e9)).segments
            assert len(after) == len(segments) + 1  # same start: stored under a new key, never overwriting
            salvaged = [s for s in after if s.run_id == -1]
            assert len(salvaged) == 1
            assert 0 < salvaged[0].frames <= segments[-1].frames
            assert not spool_partial.exists()
            assert not list((tmp_path / "state" / "spool").rglob("*.partial"))
            assert (await storage.check()).ok
