"""The storage screen and GB28181 live start/stop: `/metrics` parsing, Pilot tests on `FakeBackend`, the REST
calls of `RemoteBackend` against a stub API (httpx.MockTransport), and a snapshot of the storage screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.backend import RemoteBackend, parse_metrics, storage_report
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.storage import StorageScreen, human_bytes

from tests.tui.fakes import T0, FakeBackend, make_metrics


def console(backend: FakeBackend, tmp_path: Path, **kwargs: Any) -> FluxkitConsole:
    options: dict[str, Any] = {"poll_interval": 3600, "export_dir": tmp_path, "device_refresh": 0,
                               "storage_refresh": 0, "clock": lambda: T0}  # fmt: skip
    return make_app(backend, **(options | kwargs))


async def until(pilot: Any, predicate: Any) -> None:
    while not predicate():
        await pilot.pause(0.01)


def test_parse_metrics_labels_escapes_and_junk() -> None:
    text = (
        "# HELP x y\n# TYPE x gauge\n"
        'x{stream="a\\"b\\\\c\\nd",state="live"} 1\n'
        "plain 2.5 1700000000000\n"
        'spaced{stream="s",} 3\n'
        "bad_value{} abc\n"
        'unterminated{stream="oops} 4\n'
        "\n"
        "nan_value NaN\n"
    )
    families = parse_metrics(text)
    assert families["x"] == [({"stream": 'a"b\\c\nd', "state": "live"}, 1.0)]
    assert families["plain"] == [({}, 2.5)]
    assert families["spaced"] == [({"stream": "s"}, 3.0)]
    assert "bad_value" not in families
    assert "unterminated" not in families
    assert families["nan_value"][0][1] != families["nan_value"][0][1]


def test_storage_report_from_metrics() -> None:
    report = storage_report(make_metrics(3))
    assert [s.stream_id for s in report.streams] == ["cam000", "cam001", "cam002"]
    assert [s.bytes for s in report.streams] == [7_340_032, 14_680_064, 22_020_096]
    assert [s.segments for s in report.streams] == [12, 24, 36]
    assert [s.lag for s in report.streams] == [None, 21.5, 41.5]
    assert (report.disk_free, report.disk_total) == (50 * 1024**3, 200 * 1024**3)
    assert report.retention is None
    assert report.recorded_bytes == 44_040_192
    empty = storage_report("fluxkit_streams 0\n")
    assert (empty.streams, empty.disk_free, empty.disk_total) == ((), None, None)
    assert human_bytes(None) == "n/a"
    assert human_bytes(512) == "512 B"
    assert human_bytes(7_340_032) == "7.0 MiB"


@pytest.mark.asyncio
async def test_storage_screen_key_palette_and_refresh(tmp_path: Path) -> None:
    backend = FakeBackend(streams=3)
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.reads == 1)
        table = screen.table
        assert table.row_count == 3
        assert str(table.get_cell("cam001", "bytes")) == "14.0 MiB"
        assert str(table.get_cell("cam001", "segments")) == "24"
        assert str(table.get_cell("cam002", "lag")) == "41.5s"
        assert str(table.get_cell("cam000", "lag")) == "-"
        disk = str(screen.query_one("#storage-disk").render())
        assert "free 50.0 GiB of 200.0 GiB" in disk
        assert "recorded 42.0 MiB in 3 streams" in disk
        assert "n/a" in str(screen.query_one("#storage-retention").render())
        # `u` reads again and updates the rows in place; a stream gone from /metrics leaves the table
        backend.tick()
        backend.count = 2
        await pilot.press("u")
        await until(pilot, lambda: screen.reads == 2)
        assert table.row_count == 2
        assert str(table.get_cell("cam000", "segments")) == "13"
        # other screens and back by number; the palette reaches it too
        await pilot.press("1")
        assert app.current_mode == "streams"
        await pilot.press("5")
        assert app.current_mode == "storage"
        await pilot.press("1", "ctrl+p")
        await pilot.pause()
        await pilot.press(*"Storage")
        await pilot.pause(0.2)
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "storage")


@pytest.mark.asyncio
async def test_storage_screen_refreshes_by_itself(tmp_path: Path) -> None:
    backend = FakeBackend(streams=2)
    app = console(backend, tmp_path, storage_refresh=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("5")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.reads >= 3)


@pytest.mark.asyncio
async def test_storage_screen_shows_backend_errors(tmp_path: Path) -> None:
    from fluxkit_tui.backend import BackendError

    class Failing(FakeBackend):
        async def storage(self) -> Any:
            raise BackendError(401, "missing or wrong token")

    app = console(Failing(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.error is not None)
        assert "401" in str(screen.query_one("#storage-disk").render())


@pytest.mark.asyncio
async def test_live_start_stop_and_device_info(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DevicesScreen)
        await until(pilot, lambda: screen.target is not None)
        info = str(screen.query_one("#device-info").render())
        assert "address 127.0.0.1:5062" in info
        assert "transport UDP" in info
        assert "keepalive 03:03:48Z (12s ago)" in info
        gate = ("34020000001320000001", "34020000001320000001")
        assert screen.target == gate
        await pilot.press("v")
        await until(pilot, lambda: len(screen.live_answers) == 1)
        assert backend.live_calls == [("start", *gate, "udp")]
        assert screen.live == {gate: gate[1]}
        log = str(screen.query_one("#live-log").render())
        assert f"POST .../devices/{gate[0]}/live" in log
        assert "answer 201" in log
        assert f"live {gate[1]}" in str(screen.query_one("#device-info").render())
        await pilot.press("v")
        await until(pilot, lambda: len(screen.live_answers) == 2)
        assert backend.live_calls[-1] == ("stop", gate[1])
        assert screen.live == {}
        log = str(screen.query_one("#live-log").render())
        assert f"DELETE .../streams/{gate[1]}" in log
        assert "answer 204" in log
        # the offline NVR: its 409 is shown and nothing is remembered
        await pilot.press("j", "j", "j")
        assert screen.target == ("34020000001180000002", "34020000001310000003")
        assert "transport TCP" in str(screen.query_one("#device-info").render())
        assert "keepalive n/a" in str(screen.query_one("#device-info").render())
        await pilot.press("v")
        await until(pilot, lambda: len(screen.live_answers) == 3)
        assert screen.live == {}
        log = str(screen.query_one("#live-log").render())
        assert "answer 409" in log
        assert "offline" in log


@pytest.mark.asyncio
async def test_remote_backend_live_and_storage_requests() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        assert request.headers["authorization"] == "Bearer tok"
        if request.url.path == "/metrics":
            return httpx.Response(200, text=make_metrics(2))
        if request.method == "POST" and request.url.path.endswith("/live"):
            if body["channel_id"] == "34020000001310000099":
                return httpx.Response(404, json={"error": "device x has no channel y", "status": 404})
            return httpx.Response(201, json={"stream_id": body["channel_id"], "transport": body["transport"]})
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(500)

    backend = RemoteBackend("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    try:
        started = await backend.start_live("34020000001320000001", "34020000001310000001")
        assert (started.status, started.ok, started.body) == (201, True, {"stream_id": "34020000001310000001",
                                                                           "transport": "udp"})  # fmt: skip
        refused = await backend.start_live("34020000001320000001", "34020000001310000099")
        assert (refused.status, refused.ok, refused.answer, refused.body) == (404, False, "device x has no channel y",
                                                                             None)  # fmt: skip
        stopped = await backend.stop_live("34020000001310000001")
        assert (stopped.status, stopped.ok, stopped.request) == (204, True, None)
        report = await backend.storage()
        assert [s.stream_id for s in report.streams] == ["cam000", "cam001"]
    finally:
        await backend.aclose()
    assert seen[0] == (
        "POST",
        "/api/video/gb28181/devices/34020000001320000001/live",
        {"channel_id": "34020000001310000001", "transport": "udp"},
    )
    assert seen[2][:2] == ("DELETE", "/api/video/gb28181/streams/34020000001310000001")
    assert seen[3][:2] == ("GET", "/metrics")


def test_storage_screen_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    app = console(FakeBackend(streams=4), tmp_path)

    async def ready(pilot: Any) -> None:
        await pilot.press("t")
        await until(pilot, lambda: getattr(app.screen, "reads", 0) == 1)
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
