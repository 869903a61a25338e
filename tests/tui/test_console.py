"""Pilot tests of every screen and key binding against `FakeBackend` (deterministic data, no network)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.screens.details import DetailsScreen
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.events import EventsScreen
from fluxkit_tui.screens.help import HelpScreen
from fluxkit_tui.screens.recordings import RecordingsScreen, parse_when
from fluxkit_tui.screens.streams import StreamsScreen
from fluxkit_tui.snapshot import decode_jpeg, halfblock_text
from fluxkit_tui.widgets.snapshot_view import SnapshotView
from fluxkit_tui.widgets.sparkline import sparkline
from fluxkit_tui.widgets.timeline import render_timeline

from tests.tui.fakes import FakeBackend, make_rows


def console(backend: FakeBackend, tmp_path: Path) -> FluxkitConsole:
    return make_app(backend, poll_interval=3600, export_dir=tmp_path, device_refresh=0)


async def polled(app: FluxkitConsole, pilot: object, count: int = 1) -> None:
    while app.polls < count:
        await pilot.pause(0.01)  # type: ignore[attr-defined]


def test_sparkline_and_timeline() -> None:
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([1, 2, 4, 8]) == "▂▃▅█"
    from fluxkit_tui.backend import Recordings, Span

    from tests.tui.fakes import T0

    rec = Recordings(
        stream_id="a", start=T0, end=T0 + dt.timedelta(seconds=10),
        segments=(Span(start=T0, end=T0 + dt.timedelta(seconds=4)),),
        gaps=(Span(start=T0 + dt.timedelta(seconds=4), end=T0 + dt.timedelta(seconds=6)),),
    )  # fmt: skip
    assert render_timeline(rec, 10).plain == "████░░····"


def test_parse_when() -> None:
    now = dt.datetime(2026, 1, 2, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_when("-90s", now) == now - dt.timedelta(seconds=90)
    assert parse_when("-5m", now) == now - dt.timedelta(minutes=5)
    assert parse_when("11:30", now) == now.replace(hour=11, minute=30)
    assert parse_when("2026-01-02T11:00:00Z", now) == now.replace(hour=11)
    with pytest.raises(ValueError):
        parse_when("yesterday", now)


def test_halfblocks_keep_the_colours() -> None:
    from tests.tui.fakes import make_jpeg

    image = decode_jpeg(make_jpeg(64, 36), 16, 4)
    assert image.shape[1] <= 16
    assert image.shape[0] <= 8
    text = halfblock_text(image)
    assert len(text.plain.splitlines()) == image.shape[0] // 2
    top_left = text.spans[0].style
    assert not isinstance(top_left, str)
    assert top_left.color is not None
    assert top_left.color.triplet is not None
    red, green, blue = top_left.color.triplet
    assert (red > 200, green < 60, blue < 60) == (True, True, True)


@pytest.mark.asyncio
async def test_streams_table_updates_in_place(tmp_path: Path) -> None:
    backend = FakeBackend(streams=5)
    app = console(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(app, pilot)
        screen = app.screen
        assert isinstance(screen, StreamsScreen)
        table = screen.table
        assert table.row_count == 5
        assert table.get_cell("cam001", "codec") == "h264"
        await pilot.press("down", "down")
        assert screen.selected == "cam002"
        backend.tick()
        changed = screen.apply(await backend.list_streams())
        assert 0 < changed < 5 * 11
        assert table.row_count == 5
        assert screen.selected == "cam002"  # the cursor did not move
        assert table.get_cell("cam001", "fps").strip() == f"{make_rows(5, 1)[1].fps:.1f}"
        backend.count = 3
        screen.apply(await backend.list_streams())
        assert table.row_count == 3


@pytest.mark.asyncio
async def test_details_shows_statistics_and_snapshot(tmp_path: Path) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(app, pilot)
        await pilot.press("down", "enter")
        await pilot.pause(0.1)
        screen = app.screen
        assert isinstance(screen, DetailsScreen)
        assert screen.stream_id == "cam001"
        view = screen.query_one(SnapshotView)
        while view.pixels is None:
            await pilot.pause(0.01)
        assert view.pixels is not None
        assert view.pixels[0] <= view.size.width
        await pilot.press("escape")
        assert isinstance(app.screen, StreamsScreen)


@pytest.mark.asyncio
async def test_ptz_keys_send_the_right_commands(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DevicesScreen)
        while screen.target is None:
            await pilot.pause(0.01)
        await pilot.press("up", "right", "down", "left", "space", "plus", "minus", "n", "f", "o", "c")
        await pilot.press("greater_than_sign", "3", "p", "g", "x", "less_than_sign", "less_than_sign")
        await pilot.press("up")
        while len(backend.ptz_calls) < 15:
            await pilot.pause(0.01)
        commands = [c["command"] for c in backend.ptz_calls]
        assert commands == [
            "up", "right", "down", "left", "stop", "zoom_in", "zoom_out", "focus_near", "focus_far", "iris_open",
            "iris_close", "preset_set", "preset_call", "preset_delete", "up",
        ]  # fmt: skip
        assert backend.ptz_calls[0]["speed"] == 128
        assert backend.ptz_calls[11] == {
            "device_id": "34020000001320000001", "channel_id": "34020000001320000001", "command": "preset_set",
            "speed": 160, "preset": 3,
        }  # fmt: skip
        assert backend.ptz_calls[-1]["speed"] == 96
        await pilot.pause(0.05)
        log = str(screen.query_one("#ptz-log").render())
        assert '"command": "up"' in log
        assert "200" in log
        # j moves to the offline device's channel: its 409 is shown.
        await pilot.press("j", "j", "j", "up")
        while len(backend.ptz_calls) < 16:
            await pilot.pause(0.01)
        assert backend.ptz_calls[-1]["device_id"] == "34020000001180000002"
        await pilot.pause(0.05)
        assert "409" in str(screen.query_one("#ptz-log").render())


@pytest.mark.asyncio
async def test_recordings_list_and_export(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await polled(app, pilot)
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RecordingsScreen)
        while screen.recordings is None:
            await pilot.pause(0.01)
        assert len(screen.recordings.segments) == 7
        await pilot.press("x")
        while screen.exported is None:
            await pilot.pause(0.01)
        assert screen.exported.parent == tmp_path
        assert screen.exported.stat().st_size == 4096
        assert backend.exports[0][0] == "cam000"
        assert backend.exports[0][3] == 1.0


@pytest.mark.asyncio
async def test_events_filter_help_and_quit(tmp_path: Path) -> None:
    backend = FakeBackend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("e")
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        while len(app.event_lines) < 3:
            await pilot.pause(0.01)
        await pilot.pause(0.05)
        from textual.widgets import RichLog

        log = screen.query_one(RichLog)
        assert len(log.lines) == 3
        await pilot.press("slash", *"restart")
        await pilot.pause(0.05)
        assert len(log.lines) == 1
        await pilot.press("escape")
        assert len(log.lines) == 3
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, EventsScreen)
        await pilot.press("q")
    assert backend.closed
    assert app.return_code in (0, None)
