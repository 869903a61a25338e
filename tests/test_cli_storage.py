"""`fluxkit storage check|rebuild|migrate`: exit codes on a tiered local -> directory setup, every copy verified
(presence, size, sha256), and plain local storage unchanged; progress bars on a real pty, plain lines otherwise;
Ctrl-C (a real SIGINT to a subprocess) exits 130 with how to resume, and an interrupted migrate resumes."""

from __future__ import annotations

import hashlib
import os
import re
import select
import signal
import subprocess
import sys
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


def test_plain_local_rebuild_calls_the_local_rebuild(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fluxkit.storage
    from fluxkit.storage import INDEX_NAME as LOCAL_INDEX_NAME
    from fluxkit.storage import LocalStorage
    from tests.storage._feed import build
    from tests.storage.test_index_retention import _record_into, _unlink_index

    data = tmp_path / "data"
    recordings = data / "recordings"
    tracks, frames = build("h264", frames=100, gop=25)

    async def _segments() -> list[tuple[str, str]]:
        async with LocalStorage(recordings, reserve_bytes=0) as storage:
            return [(s.path, s.sha256) for s in (await storage.query_segments("cam1", 0, 4e9)).segments]

    async def _record() -> None:
        async with LocalStorage(recordings, reserve_bytes=0) as storage:
            await _record_into(storage, frames, tracks)

    trio.run(_record)
    before = trio.run(_segments)
    assert len(before) >= 2
    _unlink_index(recordings / LOCAL_INDEX_NAME)
    # The command hands the recordings directory to `fluxkit.storage.rebuild_main`...
    calls = []
    real = fluxkit.storage.rebuild_main
    monkeypatch.setattr(fluxkit.storage, "rebuild_main", lambda *a, **kw: calls.append((a, kw)) or real(*a, **kw))
    assert main(["storage", "rebuild", "--data-dir", str(data)]) == 0
    assert calls == [((recordings,), {})]
    # ... which rebuilds the lost index from the files.
    out = capsys.readouterr().out
    assert f"rebuild done: {len(before)} segments adopted" in out
    assert "nothing to rebuild" not in out
    assert trio.run(_segments) == before
    assert main(["storage", "check", "--data-dir", str(data)]) == 0


# -- progress bars on a terminal, Ctrl-C --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

#: `fluxkit` with the third tier copy held until the file named by the first argument exists: the copy is made and
#: indexed, its source not deleted yet (the window where stopping would leave a segment half moved).
HOLD_THIRD_COPY = """
import os, sys, trio
from fluxkit.storage.tiers import TieredStorage
go = sys.argv.pop(1)
original = TieredStorage.copy
copies = 0
async def copy(self, *args):
    global copies
    await original(self, *args)
    copies += 1
    if copies == 3:
        print("HELD", file=sys.stderr, flush=True)
        while not os.path.exists(go):
            await trio.sleep(0.01)
TieredStorage.copy = copy
from fluxkit.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: `fluxkit` whose directory backends never finish listing.
HANG_LISTING = """
import sys, trio
from fluxkit.storage.tiers import DirStore
async def list_blobs(self):
    print("HELD", file=sys.stderr, flush=True)
    await trio.sleep_forever()
DirStore.list_blobs = list_blobs
from fluxkit.cli import main
sys.exit(main(sys.argv[1:]))
"""


class Child:
    """`python -c CODE ARGS` with stdout on a pipe and stderr on a pipe or on a real pseudo-terminal."""

    def __init__(self, code: str, args: list[str], *, tty: bool) -> None:
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
        err: int = subprocess.PIPE
        if tty:
            master, err = os.openpty()
        self.proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=err)  # fmt: skip
        if tty:
            os.close(err)
            self.fd = master
        else:
            assert self.proc.stderr is not None
            self.fd = self.proc.stderr.fileno()
        self.err = b""

    def _read(self) -> bool:
        ready, _, _ = select.select([self.fd], [], [], 60)  # a hang guard, not a timing assertion
        assert ready, f"no output for 60 s: {self.err!r}"
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the pty's other side is closed
            chunk = b""
        self.err += chunk
        return bool(chunk)

    def wait_for(self, text: str) -> None:
        while text.encode() not in self.err:
            assert self._read(), f"exited before {text!r}: {self.err!r}"

    def finish(self) -> tuple[int, str, str]:
        """(exit status, stdout, stderr without terminal escapes)."""
        while self._read():
            pass
        if self.proc.stderr is None:
            os.close(self.fd)  # the pty
        out, _ = self.proc.communicate(timeout=60)  # (closes the pipes)
        return self.proc.returncode, out.decode(), _ANSI.sub("", self.err.decode(errors="replace"))


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    datas = _record(cfg, 3)
    code = "import sys; from fluxkit.cli import main; sys.exit(main(sys.argv[1:]))"
    status, out, err = Child(code, ["storage", "migrate", "--config", str(cfg)], tty=True).finish()
    assert status == 0, err
    # The summary on stdout; the progress as a bar on the terminal, not as lines on stdout.
    assert out == "migrate done: 3 segments moved\n"
    assert "━" in err
    assert re.search(r"migrate .*3/3 +100% +[0-9.]+/s +[0-9:]+ ETA [0-9:]+ +segments, 0\.0 MB", err), err
    assert [p.read_bytes() for p in _files(tmp_path / "cold")] == datas
    # Rebuild: one bar per backend listing.
    (tmp_path / "data" / "storage-tiers" / INDEX_NAME).unlink()
    status, out, err = Child(code, ["storage", "rebuild", "--config", str(cfg)], tty=True).finish()
    assert status == 0, err
    assert out.endswith("rebuild done: 3 copies indexed\n")
    assert "3/3" not in out
    assert re.search(r"rebuild cold .*3/3 +100%", err), err


@pytest.mark.parametrize("tty", [False, True], ids=["lines", "bar"])
def test_ctrl_c_stops_migrate_between_segments_and_it_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tty: bool
) -> None:
    cfg = _config(tmp_path)
    datas = _record(cfg, 5)
    go = tmp_path / "go"
    child = Child(HOLD_THIRD_COPY, [str(go), "storage", "migrate", "--config", str(cfg)], tty=tty)
    child.wait_for("HELD")
    child.proc.send_signal(signal.SIGINT)
    child.wait_for("stopping after the current segment")
    go.touch()  # the third move completes (its source deleted), then the command stops
    status, out, err = child.finish()
    assert status == 130
    assert "fluxkit storage migrate: interrupted; every finished move is recorded; run it again to continue" in err
    assert "migrate done" not in out
    if not tty:
        assert out.splitlines() == [f"migrate: {i}/5 segments, 0.0 MB" for i in (1, 2, 3)]
    assert len(_files(tmp_path / "data" / "recordings")) == 2
    assert len(_files(tmp_path / "cold")) == 3
    # Run again: it continues with the two left, nothing copied twice, nothing left behind.
    assert main(["storage", "migrate", "--config", str(cfg)]) == 0
    assert "migrate: 2/2 segments" in capsys.readouterr().out
    assert _files(tmp_path / "data" / "recordings") == []
    assert [p.read_bytes() for p in _files(tmp_path / "cold")] == datas
    assert main(["storage", "check", "--config", str(cfg)]) == 0
    assert "storage OK: 5 copies checked" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["check", "rebuild"])
def test_ctrl_c_stops_check_and_rebuild_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    cfg = _config(tmp_path)
    _record(cfg, 2)
    child = Child(HANG_LISTING, ["storage", action, "--config", str(cfg)], tty=False)
    child.wait_for("HELD")
    child.proc.send_signal(signal.SIGINT)
    status, _out, err = child.finish()
    assert status == 130
    expected = {"check": "it changes nothing; run it again to check from the start",
                "rebuild": "every copy indexed so far is kept; run it again to finish"}  # fmt: skip
    assert f"fluxkit storage {action}: interrupted; {expected[action]}" in err
    assert "Traceback" not in err
    # Nothing was harmed: the same command runs to the end.
    assert main(["storage", action, "--config", str(cfg)]) == 0
    assert "2 copies" in capsys.readouterr().out
