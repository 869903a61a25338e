"""Screenshots of the main screens (pytest-textual-snapshot) with `FakeBackend`'s deterministic data.

Regenerate after a deliberate change with `pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.widgets.snapshot_view import SnapshotView

from tests.tui.fakes import T0, FakeBackend


def app_for(tmp_path: Path, streams: int = 12) -> FluxkitConsole:
    return make_app(
        FakeBackend(streams=streams), poll_interval=3600, export_dir=tmp_path, device_refresh=0, clock=lambda: T0
    )


async def until(pilot: Any, predicate: Any) -> None:
    while not predicate():
        await pilot.pause(0.01)


def test_streams_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press("down", "down")

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)


def test_streams_screen_80x24(snap_compare: Any, tmp_path: Path) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: app.polls >= 1)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_details_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.query(SnapshotView) and app.screen.query_one(SnapshotView).pixels)

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)


def test_devices_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await pilot.press("d")
        await until(pilot, lambda: getattr(app.screen, "target", None) is not None)
        await pilot.press("up")
        await until(pilot, lambda: len(app.screen.sent) == 1)  # type: ignore[attr-defined]

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)


def test_recordings_screen(snap_compare: Any, tmp_path: Path) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await until(pilot, lambda: app.polls >= 1)
        await pilot.press("3")
        await until(pilot, lambda: getattr(app.screen, "recordings", None) is not None)
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=(100, 30), run_before=ready)


@pytest.mark.parametrize("size", [(100, 30)])
def test_events_and_help(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    app = app_for(tmp_path)

    async def ready(pilot: Any) -> None:
        await pilot.press("e")
        await until(pilot, lambda: len(app.event_lines) == 3)
        await pilot.pause(0.05)

    assert snap_compare(app, terminal_size=size, run_before=ready)
