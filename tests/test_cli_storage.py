"""`fluxkit storage check|rebuild|migrate`: exit codes on a tiered local -> directory setup, every copy verified
(presence, size, sha256), and plain local storage unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trio

from fluxkit.cli import main
from fluxkit.config import load_config
from fluxkit.storage import FinishedSegment
from fluxkit.storage.tiers import INDEX_NAME, build_storage, settings_from_config

T0 = 1_700_000_000_000_000  # µs


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "fluxkit.toml"
    path.write_text(
        f"""
[video]
data_dir = "{tmp_path / "data"}"
[video.storage]
policy = "tiered"
hot_days = 0
warm_days = 0
[[video.storage.backends]]
type = "local"
name = "hot"
[[video.storage.backends]]
type = "local"
name = "cold"
base_path = "{tmp_path / "cold"}"
"""
    )
    return path


def _record(config_path: Path, count: int) -> list[bytes]:
    settings = settings_from_config(load_config(config_path))
    assert settings is not None
    datas = []

    async def _main() -> None:
        async with build_storage(settings) as storage:
            for i in range(count):
                start_us = T0 + i * 2_000_000
                final, partial = storage.segment_paths("cam1", start_us)
                data = hashlib.sha256(str(i).encode()).digest() * 128
                partial.write_bytes(data)
                datas.append(data)
                seg = FinishedSegment(
                    stream_id="cam1", partial_path=partial, final_path=final, start_us=start_us, media_us=2_000_000,
                    size=len(data), sha256=hashlib.sha256(data).hexdigest(), run_id=1, frames=50,
                    keyframes=((0.0, 0),),
                )  # fmt: skip
                await storage.save_segment(seg)

    trio.run(_main)
    return datas


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.mp4") if not p.name.startswith("."))


def test_tiered_check_migrate_rebuild(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    hot, cold = tmp_path / "data" / "recordings", tmp_path / "cold"
    datas = _record(cfg, 3)
    assert len(_files(hot)) == 3
    assert main(["storage", "check", "--config", str(cfg)]) == 0
    assert "storage OK: 3 copies checked" in capsys.readouterr().out

    assert main(["storage", "migrate", "--config", str(cfg)]) == 0
    assert "migrate done: 3 segments moved" in capsys.readouterr().out
    assert _files(hot) == []
    assert [p.read_bytes() for p in _files(cold)] == datas
    assert main(["storage", "check", "--config", str(cfg)]) == 0
    capsys.readouterr()

    # Same size, other bytes: only hashing the copy finds it.
    victim = _files(cold)[1]
    victim.write_bytes(bytes(len(datas[1])))
    assert main(["storage", "check", "--config", str(cfg)]) == 1
    assert "checksum/size mismatch: cold:" in capsys.readouterr().out
    victim.write_bytes(datas[1])
    victim.unlink()
    assert main(["storage", "check", "--config", str(cfg)]) == 1
    assert "missing copy: cold:" in capsys.readouterr().out
    victim.write_bytes(datas[1])  # its sidecar is still there

    # The index rebuilt from the backends alone.
    (tmp_path / "data" / "storage-tiers" / INDEX_NAME).unlink()
    assert main(["storage", "rebuild", "--config", str(cfg)]) == 0
    assert "rebuild done: 3 copies indexed" in capsys.readouterr().out
    assert main(["storage", "check", "--config", str(cfg)]) == 0


def test_data_dir_override_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    _record(cfg, 1)
    # --data-dir moves the hot tier (the recordings directory) and the tier state: an empty index, clean.
    assert main(["storage", "check", "--config", str(cfg), "--data-dir", str(tmp_path / "other")]) == 0
    assert "storage OK: 0 copies checked" in capsys.readouterr().out
    assert main(["storage", "check", "--config", str(cfg)]) == 0
    assert "storage OK: 1 copies checked" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[video.storage]\npolicy = "tiered"\n')
    for action in ("check", "rebuild", "migrate"):
        assert main(["storage", action, "--config", str(bad)]) == 2
        assert "policy 'tiered' needs 2 to 3 backends, not 0 @ $.video.storage.backends" in capsys.readouterr().err


def test_plain_local_storage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "plain"
    assert main(["storage", "check", "--data-dir", str(data)]) == 0
    for action in ("rebuild", "migrate"):
        assert main(["storage", action, "--data-dir", str(data)]) == 0
        assert "local storage only" in capsys.readouterr().out
