"""The embedded console (run_fluxkit in Trio guest mode on Textual's loop) and a tmux smoke test of
`fluxkit console --url ... --token ...` against a real fluxkit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fluxkit_tui.app import make_app
from fluxkit_tui.embedded import EmbeddedBackend, embedded_config
from fluxkit_tui.screens.streams import StreamsScreen

from tests.conftest import require_tool
from tests.tui.conftest import RealFluxkit

pytestmark = pytest.mark.slow


@pytest.mark.asyncio
async def test_embedded_engine_in_trio_guest_mode(tmp_path: Path) -> None:
    backend = EmbeddedBackend(embedded_config(data_dir=tmp_path), demo=True, poll_interval=0.5)
    app = make_app(backend, poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, StreamsScreen)
        for _ in range(600):
            rows = {r.stream_id: r for r in app.latest_rows}
            if {"demo1", "demo2"} <= rows.keys() and all(r.fps > 0 for r in rows.values()):
                break
            await pilot.pause(0.05)
        else:
            raise AssertionError(f"no live demo streams: {app.latest_rows}")
        assert screen.table.row_count == len(app.latest_rows) == 5  # demo1, demo2 and the GB28181 cameras gb1..gb3
        assert any(line.kind in ("engine", "log") for line in app.event_lines)
        await pilot.press("q")
    assert backend._done is not None
    assert backend._done.done()


def test_tmux_smoke(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    tmux = require_tool("tmux")
    running = real_fluxkit.running
    assert running is not None
    fluxkit = Path(sys.executable).with_name("fluxkit")
    status = tmp_path / "status"
    env = dict(os.environ, TERM="xterm-256color")
    name = f"fluxkit-tui-{os.getpid()}"
    command = f"{fluxkit} console --url {running.api_url} --token {running.api_token}; echo $? > {status}"
    subprocess.run(
        [tmux, "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command], check=True, env=env, cwd=tmp_path
    )
    try:
        screen = ""
        for _ in range(300):
            screen = subprocess.run(
                [tmux, "capture-pane", "-p", "-t", name], capture_output=True, text=True, check=False
            ).stdout
            if "demo1" in screen and "demo2" in screen:
                break
            time.sleep(0.1)
        assert "demo1" in screen, screen
        assert "demo2" in screen, screen
        assert "fluxkit" in screen
        subprocess.run([tmux, "send-keys", "-t", name, "q"], check=True)
        for _ in range(100):
            if status.exists() and status.read_text().strip():
                break
            time.sleep(0.1)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run([tmux, "kill-session", "-t", name], capture_output=True, check=False)
