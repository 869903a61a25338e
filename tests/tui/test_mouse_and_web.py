"""Mouse and browser: the console against a real fluxkit, driven by clicks (rows, footer keys, the device tree, the
PTZ buttons), and served to a browser by textual-serve (`fluxkit console --url ... --token ...` behind its page and
WebSocket, as a browser would open them)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.backend import RemoteBackend
from fluxkit_tui.screens.details import DetailsScreen
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.help import HelpScreen
from fluxkit_tui.screens.recordings import RecordingsScreen
from fluxkit_tui.screens.storage import StorageScreen
from fluxkit_tui.screens.streams import StreamsScreen
from textual.widgets import Tree
from textual.widgets._footer import FooterKey

from tests.tui.conftest import RealFluxkit
from tests.tui.test_real_fluxkit import RealPlatform, backend_of, wait_for

pytestmark = pytest.mark.slow


async def click_footer(app: FluxkitConsole, pilot: Any, description: str) -> None:
    """Click the footer key labelled `description` on the current screen."""
    for _ in range(100):
        keys = [k for k in app.screen.query(FooterKey) if k.description == description]
        if keys:
            assert await pilot.click(keys[0])
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError(f"no footer key {description!r} on {app.screen!r}")


@pytest.mark.asyncio
async def test_click_rows_and_footer_keys(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    app = make_app(backend_of(real_fluxkit), poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, StreamsScreen)
        await wait_for(pilot, lambda: screen.table.row_count >= 2)
        second = str(screen.table.coordinate_to_cell_key((1, 0)).row_key.value)
        # one click moves to a row (the header is line 0), a second click on it opens its details
        assert await pilot.click("#streams-table", offset=(3, 2))
        await pilot.pause()
        assert screen.selected == second
        assert app.screen is screen
        assert await pilot.click("#streams-table", offset=(3, 2))
        await wait_for(pilot, lambda: isinstance(app.screen, DetailsScreen))
        details = app.screen
        assert isinstance(details, DetailsScreen)
        assert details.stream_id == second
        await click_footer(app, pilot, "Back")
        assert app.screen is screen
        # the footer's keys are buttons: recordings of the selected stream, devices, events, storage, help
        await click_footer(app, pilot, "Recordings")
        assert app.current_mode == "recordings"
        assert isinstance(app.screen, RecordingsScreen)
        await wait_for(pilot, lambda: app.screen.stream_id == second)  # type: ignore[attr-defined]
        await click_footer(app, pilot, "Streams")
        assert app.current_mode == "streams"
        await click_footer(app, pilot, "Devices")
        assert app.current_mode == "devices"
        await click_footer(app, pilot, "Events")
        assert app.current_mode == "events"
        await click_footer(app, pilot, "Help")
        assert isinstance(app.screen, HelpScreen)
        await click_footer(app, pilot, "Close")
        assert app.current_mode == "events"
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.asyncio
async def test_storage_screen_on_the_real_engine(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    running = real_fluxkit.running
    assert running is not None
    app = make_app(backend_of(real_fluxkit), poll_interval=0.5, export_dir=tmp_path, storage_refresh=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.report is not None and any(s.segments for s in screen.report.streams))
        report = screen.report
        assert report is not None
        if hasattr(running.storage, "status"):  # the storage reports its tiers: one row per backend
            assert report.policy is not None, report.status_error
            assert screen.tiers.row_count == len(report.tiers) >= 1
            assert report.tiers[0].used_bytes > 0
        else:  # not yet: the /metrics figures, and the reason the tiers are missing
            assert report.policy is None
            assert report.status_error is not None
            assert "503" in report.status_error


@pytest.mark.asyncio
async def test_click_tree_and_ptz_buttons_reach_the_simulated_device(tmp_path: Path) -> None:
    from fluxkit.gb28181 import ptz_command

    with RealPlatform() as real:
        app = make_app(RemoteBackend(real.api_url, "t0ken"), poll_interval=1, export_dir=tmp_path, device_refresh=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await click_footer(app, pilot, "Devices")
            screen = app.screen
            assert isinstance(screen, DevicesScreen)
            await wait_for(pilot, lambda: screen.target is not None)
            assert screen.target is not None
            device_id, channel_id = screen.target
            await pilot.press("k")  # the keyboard moves to the device line; a click picks the channel again
            assert screen.target == (device_id, device_id)
            assert await pilot.click(Tree, offset=(6, 1))
            await wait_for(pilot, lambda: screen.target == (device_id, channel_id))
            for button in ("#ptz-up", "#ptz-stop", "#ptz-zoom-in", "#ptz-call"):
                assert await pilot.click(button)
            await wait_for(pilot, lambda: len(screen.sent) == 4)
            assert [r.status for r in screen.sent] == [200, 200, 200, 200]
            assert [e.hex for e in real.device.ptz_log] == [
                ptz_command("up", speed=128).encode(),
                ptz_command("stop").encode(),
                ptz_command("zoom_in", speed=128).encode(),
                ptz_command("preset_call", speed=128, preset=1).encode(),
            ]
            assert {e.channel_id for e in real.device.ptz_log} == {channel_id}


# -- textual-serve ---------------------------------------------------------------------------------------------


def require_module(name: str) -> None:
    """Skip on a developer machine without `name`, fail under CI (as `require_tool`)."""
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (requirements.txt has it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def textual_serve(command: str, log: Path) -> Iterator[str]:
    """textual-serve serving `command` on a free loopback port; its base URL."""
    port = _free_port()
    script = (
        "import sys; from textual_serve.server import Server; "
        "Server(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2])).serve()"
    )
    with log.open("wb") as out:
        server = subprocess.Popen([sys.executable, "-c", script, command, str(port)], stdout=out, stderr=out)
    try:
        for _ in range(300):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None:
                raise AssertionError(f"textual-serve ended: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


@pytest.mark.asyncio
async def test_console_in_a_browser_through_textual_serve(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    require_module("textual_serve")
    import aiohttp

    running = real_fluxkit.running
    assert running is not None
    assert running.api_url is not None
    headers = {"Authorization": f"Bearer {running.api_token}"}
    async with httpx.AsyncClient(base_url=running.api_url, headers=headers) as api:
        streams = (await api.get("/api/video/streams")).json()["streams"]
    ids = {s["stream_id"] for s in streams}
    assert ids
    fluxkit = Path(sys.executable).with_name("fluxkit")
    command = f"{fluxkit} console --url {running.api_url} --token {running.api_token}"
    with textual_serve(command, tmp_path / "serve.log") as base:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/") as page:
                assert page.status == 200
                html = await page.text()
            websocket_url = f"ws{base[4:]}/ws"
            assert websocket_url in html  # the page opens this WebSocket
            screen = ""
            async with session.ws_connect(f"{websocket_url}?width=100&height=30") as ws:
                while not ("fluxkit" in screen and any(i in screen for i in ids)):
                    message = await ws.receive(timeout=60)
                    assert message.type == aiohttp.WSMsgType.BINARY, (message, screen[-2000:])
                    screen += _ESCAPES.sub("", message.data.decode("utf-8", "replace"))
                assert "proto" in screen  # the streams table's header
                await ws.send_json(["stdin", "q"])
                while (await ws.receive(timeout=30)).type not in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    pass
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log
