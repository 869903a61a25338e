"""The help generated from the bindings, the command palette reaching every action, and the storage tiers:
`GET /api/video/storage` on the real API, `RemoteBackend.storage()` against a stub, and the storage screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.backend import RemoteBackend, StorageReport, storage_status
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.help import HelpScreen, key_rows
from fluxkit_tui.screens.storage import StorageScreen, retention_text
from textual.binding import Binding
from textual.widgets import Markdown

from tests.tui.fakes import T0, FakeBackend, make_metrics, make_storage_status


def console(backend: FakeBackend, tmp_path: Path, **kwargs: Any) -> FluxkitConsole:
    options: dict[str, Any] = {"poll_interval": 3600, "export_dir": tmp_path, "device_refresh": 0,
                               "storage_refresh": 0, "clock": lambda: T0}  # fmt: skip
    return make_app(backend, **(options | kwargs))


async def until(pilot: Any, predicate: Any) -> None:
    while not predicate():
        await pilot.pause(0.01)


# -- help and bindings -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_help_lists_exactly_the_bound_keys(tmp_path: Path) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.markdown
        assert text == help_screen.query_one(Markdown).source
        sections = app.key_sections()
        assert [s.title for s in sections][:2] == ["Everywhere", "Streams"]
        for section in sections:
            assert f"## {section.title}" in text
            for binding in Binding.make_bindings(section.bindings):
                assert binding.description, binding  # a palette title and a help line for every key
                assert f"`{app.get_key_display(binding)}`" in text, binding
        # `r` is listed everywhere because it is bound everywhere
        everywhere = {d: k for k, d in key_rows(app, sections[0].bindings)}
        assert everywhere["Recordings"] == "`3` `r`"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.asyncio
@pytest.mark.parametrize("start", ["d", "e", "t"])
async def test_r_opens_recordings_from_every_screen(tmp_path: Path, start: str) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press(start)
        assert app.current_mode != "recordings"
        await pilot.press("r")
        assert app.current_mode == "recordings"


@pytest.mark.asyncio
async def test_r_on_streams_opens_the_selected_streams_recordings(tmp_path: Path) -> None:
    app = console(FakeBackend(streams=4), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press("down", "down", "r")
        assert app.current_mode == "recordings"
        assert app.recordings_stream == "cam002"


@pytest.mark.asyncio
async def test_palette_offers_every_action_of_every_screen(tmp_path: Path) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.polls >= 1)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for title, screen in (("Devices and PTZ", DevicesScreen), ("Storage", StorageScreen)):
            for binding in Binding.make_bindings(screen.BINDINGS):
                assert f"{title}: {binding.description}" in titles
        assert {"Streams", "Devices", "Recordings", "Events", "Storage", "Help"} <= titles
        assert not any(t.startswith("Stream details:") for t in titles)  # only while a stream's details are shown
        await pilot.press("enter")
        assert any(c.title == "Stream details: Snapshot now" for c in app.get_system_commands(app.screen))


@pytest.mark.asyncio
async def test_palette_runs_a_ptz_command_from_the_streams_screen(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press("d")  # once, so the device list is loaded when the palette comes back here
        devices = app.screen
        assert isinstance(devices, DevicesScreen)
        await until(pilot, lambda: devices.target is not None)
        await pilot.press("s")
        assert app.current_mode == "streams"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Devices and PTZ: Zoom in")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await until(pilot, lambda: len(backend.ptz_calls) == 1)
        assert app.current_mode == "devices"
        assert backend.ptz_calls[0]["command"] == "zoom_in"


# -- storage tiers ---------------------------------------------------------------------------------------------


def test_storage_status_shape_and_junk() -> None:
    base = StorageReport()
    report = storage_status(base, make_storage_status())
    assert report.policy == "tiered"
    assert [t.name for t in report.tiers] == ["hot", "cold"]
    hot, cold = report.tiers
    assert (hot.type, hot.role, hot.healthy, hot.segments) == ("local", "hot", True, 1200)
    assert (hot.free_bytes, hot.total_bytes) == (50 * 1024**3, 200 * 1024**3)
    assert (cold.free_bytes, cold.total_bytes) == (None, None)
    assert retention_text(hot.retention) == "7 d · keep 5.0 GiB free"
    assert retention_text(cold.retention) == "90 d · 5.0 TiB"
    assert retention_text(None) == "-"
    assert report.migration is not None
    assert report.migration.fraction == pytest.approx(0.25)
    assert report.pending_repairs == 2
    # a wrong shape leaves the /metrics figures alone and says so; junk fields are ignored, not fatal
    assert storage_status(base, ["x"]).status_error is not None
    odd = storage_status(base, {"policy": "local", "backends": [7, {"name": "a", "used_bytes": "many",
                                "free_bytes": float("nan"), "healthy": None, "retention": "none"}],
                                "migration": None, "pending_repairs": True})  # fmt: skip
    assert (odd.policy, len(odd.tiers), odd.migration, odd.pending_repairs) == ("local", 1, None, 0)
    assert (odd.tiers[0].used_bytes, odd.tiers[0].free_bytes, odd.tiers[0].healthy) == (0, None, True)


@pytest.mark.asyncio
async def test_remote_backend_storage_status_and_fallbacks() -> None:
    answers: list[httpx.Response] = [
        httpx.Response(200, json=make_storage_status()),
        httpx.Response(503, json={"error": "recording storage is not enabled", "status": 503}),
        httpx.Response(404, json={"error": "not found", "status": 404}),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/metrics":
            return httpx.Response(200, text=make_metrics(2))
        assert request.url.path == "/api/video/storage"
        return answers.pop(0)

    backend = RemoteBackend("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    try:
        tiered = await backend.storage()
        assert (tiered.policy, len(tiered.tiers), tiered.status_error) == ("tiered", 2, None)
        assert [s.stream_id for s in tiered.streams] == ["cam000", "cam001"]
        disabled = await backend.storage()
        assert disabled.policy is None
        assert disabled.status_error == "503: recording storage is not enabled"
        assert len(disabled.streams) == 2  # the /metrics figures still come
        older = await backend.storage()
        assert older.policy is None
        again = await backend.storage()  # a server without the endpoint is not asked again
        assert again.status_error is not None
    finally:
        await backend.aclose()
    assert seen.count("/api/video/storage") == 3
    assert seen.count("/metrics") == 4


@pytest.mark.asyncio
async def test_storage_screen_shows_tiers_migration_and_retention(tmp_path: Path) -> None:
    backend = FakeBackend(streams=3, tiers=True)
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.reads == 1)
        tiers = screen.tiers
        assert tiers.row_count == 2
        assert str(tiers.get_cell("hot", "used")) == "40.0 GiB"
        assert str(tiers.get_cell("hot", "space")) == "50.0 GiB / 200.0 GiB"
        assert str(tiers.get_cell("cold", "space")) == "n/a"
        assert str(tiers.get_cell("hot", "health")) == "ok"
        policy = str(screen.query_one("#storage-policy").render())
        assert "policy tiered · 2 backends" in policy
        assert "2 repairs pending" in policy
        assert "migrating 30/120" in policy
        bar = screen.query_one("#storage-migration")
        assert bar.display
        assert (bar.progress, bar.total) == (30, 120)  # type: ignore[attr-defined]
        retention = str(screen.query_one("#storage-retention").render())
        assert "hot 7 d · keep 5.0 GiB free · cold 90 d · 5.0 TiB" in retention
        assert screen.table.row_count == 3  # per stream, from /metrics
        backend.tick()  # the cold tier goes down, the migration moves on
        await pilot.press("u")
        await until(pilot, lambda: screen.reads == 2)
        assert str(tiers.get_cell("cold", "health")) == "DOWN"
        assert "(1 down)" in str(screen.query_one("#storage-policy").render())
        assert bar.progress == 31  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_storage_screen_without_status_endpoint(tmp_path: Path) -> None:
    app = console(FakeBackend(streams=2), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.reads == 1)
        assert screen.tiers.row_count == 0
        assert not screen.tiers.display
        assert not screen.query_one("#storage-migration").display
        assert "storage status n/a (404: not found)" in str(screen.query_one("#storage-policy").render())
        assert screen.table.row_count == 2


def test_storage_tiers_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    app = console(FakeBackend(streams=3, tiers=True), tmp_path)

    async def ready(pilot: Any) -> None:
        await pilot.press("t")
        await until(pilot, lambda: getattr(app.screen, "reads", 0) == 1)
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


# -- GET /api/video/storage ------------------------------------------------------------------------------------


class _StatusStorage:
    """A storage that reports its status (the shape LocalStorage and ManagedStorage answer)."""

    async def status(self) -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return make_storage_status()


async def _get_storage(storage: Any) -> httpx.Response:
    from fluxkit.api import ApiServices
    from fluxkit.api import make_app as make_api
    from fluxkit.engine import open_engine

    async with open_engine() as engine:
        api = make_api(ApiServices(engine=engine, storage=storage, token="tok"))
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.get("/api/video/storage")).status_code == 401
            return await client.get("/api/video/storage", headers={"Authorization": "Bearer tok"})


@pytest.mark.trio
async def test_api_storage_status_route(tmp_path: Path) -> None:
    from fluxkit.api import openapi_document
    from fluxkit.storage import LocalStorage

    answer = await _get_storage(_StatusStorage())
    assert answer.status_code == 200
    assert answer.json() == json.loads(json.dumps(make_storage_status()))
    disabled = await _get_storage(None)
    assert disabled.status_code == 503
    assert disabled.json() == {"error": "recording storage is not enabled", "status": 503}
    async with LocalStorage(tmp_path) as local:
        real = await _get_storage(local)
    if hasattr(LocalStorage, "status"):
        assert real.status_code == 200
        assert real.json()["policy"] == "local"
        assert len(real.json()["backends"]) == 1
    else:  # the storage does not report itself yet
        assert real.status_code == 503
    operation = openapi_document()["paths"]["/api/video/storage"]["get"]
    assert set(operation["responses"]) == {"200", "401", "503"}
