"""The console against a real fluxkit: `run_fluxkit(demo=True)` in a thread (its own `trio.run`), and for PTZ a
real GB28181 platform behind the REST API with `SimulatedDevice` registered to it.

Each test drives the console through Pilot with a `RemoteBackend` on the real API, and checks the result at the
far end: live fps of the demo streams, a decoded snapshot, an exported MP4 that PyAV reads, a recorded range
played back (frames drawn, the time moving, pause, a new speed, everything closed), PTZCmd bytes in the
simulator's log.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any, Self

import av
import pytest
from fluxkit_tui.app import make_app
from fluxkit_tui.backend import RemoteBackend
from fluxkit_tui.playback import DECODER_THREAD_NAME
from fluxkit_tui.screens.details import DetailsScreen
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.playback import PlaybackScreen, format_position
from fluxkit_tui.screens.recordings import RecordingsScreen
from fluxkit_tui.screens.storage import StorageScreen
from fluxkit_tui.screens.streams import StreamsScreen
from fluxkit_tui.widgets.snapshot_view import SnapshotView
from textual.widgets import Button, Input, Select

from tests.tui.conftest import RealFluxkit

pytestmark = pytest.mark.slow


async def wait_for(pilot: Any, predicate: Any, seconds: float = 30.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the console")


def backend_of(fluxkit: RealFluxkit) -> RemoteBackend:
    running = fluxkit.running
    assert running is not None
    assert running.api_url is not None
    return RemoteBackend(running.api_url, running.api_token, poll_interval=0.5)


@pytest.mark.asyncio
async def test_streams_details_and_snapshot(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    app = make_app(backend_of(real_fluxkit), poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, StreamsScreen)
        table = screen.table

        def live() -> bool:
            return table.row_count == 5 and all(
                float(str(table.get_cell(s, "fps"))) > 0 for s in ("demo1", "demo2", "gb1")
            )

        await wait_for(pilot, live)
        assert str(table.get_cell("demo1", "codec")) == "h264"
        await pilot.press("enter")
        details = app.screen
        assert isinstance(details, DetailsScreen)
        assert details.stream_id == "demo1"
        view = details.query_one(SnapshotView)
        await wait_for(pilot, lambda: view.pixels is not None)


@pytest.mark.asyncio
async def test_recordings_list_and_export_mp4(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    app = make_app(backend_of(real_fluxkit), poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.latest_rows) == 5)  # demo1, demo2 and the GB28181 cameras gb1..gb3
        app.recordings_stream = "demo2"
        await pilot.press("3")
        screen = app.screen
        assert isinstance(screen, RecordingsScreen)

        def segments() -> bool:
            if screen.recordings is not None and len(screen.recordings.segments) >= 2:
                return True
            screen.action_list()
            return False

        await wait_for(pilot, segments, 40)
        assert screen.stream_id == "demo2"
        screen.query_one("#rec-start").value = "-20s"  # type: ignore[attr-defined]
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.exported is not None, 40)
        assert screen.exported is not None
        with av.open(str(screen.exported)) as container:
            frames = [p for p in container.demux(video=0) if p.size]
            assert container.streams.video[0].codec_context.name == "h264"
        assert len(frames) > 10


@pytest.mark.asyncio
async def test_storage_screen_reads_real_metrics(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    app = make_app(backend_of(real_fluxkit), poll_interval=0.5, export_dir=tmp_path, storage_refresh=0.5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, StorageScreen)

        def recorded() -> bool:
            report = screen.report
            return report is not None and any(s.segments > 0 and s.bytes > 0 for s in report.streams)

        await wait_for(pilot, recorded, 40)
        assert screen.report is not None
        assert screen.report.disk_total is not None
        assert screen.report.disk_total > 0
        assert screen.report.disk_free is not None
        assert screen.table.row_count == len(screen.report.streams)
        assert "disk free" in str(screen.query_one("#storage-disk").render())


class RealPlatform:
    """An engine, a GB28181 platform, the REST API with its routes, and a SimulatedDevice, in one `trio.run`."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.api_url = ""
        self.device: Any = None
        self.error: BaseException | None = None
        self._token: Any = None
        self._scope: Any = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import trio

        from fluxkit.api import ApiServices, serve_api
        from fluxkit.engine import open_engine
        from fluxkit.gb28181 import Gb28181Platform, PlatformSettings, gb28181_routes
        from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with open_engine() as engine, trio.open_nursery() as nursery:
                    platform = Gb28181Platform(
                        engine, PlatformSettings(sip_port=0, password="12345678"), rng=random.Random(1)
                    )
                    await nursery.start(platform.serve)
                    services = ApiServices(engine=engine, token="t0ken", extra_routes=tuple(gb28181_routes(platform)))
                    port = await nursery.start(serve_api, services, "127.0.0.1", 0)
                    self.api_url = f"http://127.0.0.1:{port}"
                    settings = DeviceSettings(
                        server_host="127.0.0.1", server_port=platform.sip_port, server_id="34020000002000000001",
                        domain="3402000000", device_id="34020000001320000007", password="12345678",
                    )  # fmt: skip
                    self.device = SimulatedDevice(settings, rng=random.Random(2), report=lambda _line: None)
                    await nursery.start(self.device.run)
                    await self.device.wait_registered()
                    while not (platform.device(settings.device_id) and platform.device(settings.device_id).channels):  # noqa: ASYNC110
                        await trio.sleep(0.05)
                    self.ready.set()

        try:
            trio.run(main)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    def __enter__(self) -> Self:
        self._thread.start()
        self.ready.wait(30)
        if self.error is not None or not self.api_url:
            raise RuntimeError(f"the platform did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._thread.is_alive():
            self._token.run_sync_soon(self._scope.cancel)
        self._thread.join(20)


@pytest.mark.asyncio
async def test_ptz_keys_reach_the_simulated_device(tmp_path: Path) -> None:
    from fluxkit.gb28181 import ptz_command

    with RealPlatform() as real:
        app = make_app(RemoteBackend(real.api_url, "t0ken"), poll_interval=1, export_dir=tmp_path, device_refresh=0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("d")
            screen = app.screen
            assert isinstance(screen, DevicesScreen)
            await wait_for(pilot, lambda: screen.target is not None)
            await pilot.press("up", "space", "plus", "greater_than_sign", "5", "g")
            await wait_for(pilot, lambda: len(screen.sent) == 4)
            assert [r.status for r in screen.sent] == [200, 200, 200, 200]
            log = real.device.ptz_log
            assert [e.hex for e in log] == [
                ptz_command("up", speed=128).encode(),
                ptz_command("stop").encode(),
                ptz_command("zoom_in", speed=128).encode(),
                ptz_command("preset_call", speed=160, preset=5).encode(),
            ]
            assert log[0].channel_id == screen.target[1]
            assert "200" in str(screen.query_one("#ptz-log").render())


@pytest.mark.asyncio
async def test_live_start_and_stop_on_the_real_platform(tmp_path: Path) -> None:
    with RealPlatform() as real:
        backend = RemoteBackend(real.api_url, "t0ken")
        app = make_app(backend, poll_interval=1, export_dir=tmp_path, device_refresh=0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("d")
            screen = app.screen
            assert isinstance(screen, DevicesScreen)
            await wait_for(pilot, lambda: screen.target is not None)
            assert screen.target is not None
            device = screen.devices[0]
            assert device.transport == "UDP"
            assert device.address.startswith("127.0.0.1:")
            assert "address 127.0.0.1:" in str(screen.query_one("#device-info").render())
            await pilot.press("v")
            await wait_for(pilot, lambda: len(screen.live_answers) == 1)
            started = screen.live_answers[0]
            assert started.status == 201, started.answer
            stream_id = screen.live[screen.target]
            assert stream_id == screen.target[1]
            assert (await backend.get_stream(stream_id))["stream_id"] == stream_id
            await pilot.press("v")
            await wait_for(pilot, lambda: len(screen.live_answers) == 2)
            assert screen.live_answers[1].status == 204, screen.live_answers[1].answer
            assert screen.live == {}
            assert "answer 204" in str(screen.query_one("#live-log").render())


async def press(pilot: Any, key: str, done: Any) -> None:
    """Press `key` and wait until `done()`. (`Pilot.press` first waits for the process to be idle, up to 2 s a
    key, and with the engine recording in this process it seldom is.)"""
    pilot.app.simulate_key(key)
    await wait_for(pilot, done)


async def open_recordings(pilot: Any, app: Any, stream_id: str, seconds: float) -> RecordingsScreen:
    """The recordings screen of `stream_id`, once it lists recorded segments of `seconds` in all."""
    await wait_for(pilot, lambda: len(app.latest_rows) == 5)
    app.recordings_stream = stream_id
    await pilot.press("3")
    screen = app.screen
    assert isinstance(screen, RecordingsScreen)

    def recorded() -> bool:
        listed = screen.recordings
        if listed is not None and sum((s.end - s.start).total_seconds() for s in listed.segments) >= seconds:
            return True
        screen.action_list()
        return False

    await wait_for(pilot, recorded, 40)
    return screen


@pytest.mark.asyncio
async def test_playback_at_2x_pause_speed_and_escape(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    backend = backend_of(real_fluxkit)
    app = make_app(backend, poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(80, 24)) as pilot:
        recordings = await open_recordings(pilot, app, "demo1", 8.0)  # 4 s at 2x: plenty
        recordings.query_one("#rec-start", Input).value = "-60s"
        recordings.query_one("#rec-speed", Select).value = 2.0
        await press(pilot, "p", lambda: isinstance(app.screen, PlaybackScreen))
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        assert screen.stream_id == "demo1"
        view = screen.query_one(SnapshotView)
        await wait_for(pilot, lambda: view.drawn >= 2)
        player = screen.player
        assert player is not None
        assert player.speed == 2.0
        assert view.pixels is not None
        assert "playing 2x" in screen.message
        first = screen.position
        await wait_for(pilot, lambda: screen.position > first)
        assert format_position(screen.position) in screen.message

        await press(pilot, "space", lambda: "paused 2x" in screen.message)  # the time shown stops
        held, drawn = screen.position, view.drawn
        await pilot.pause(0.5)
        assert (screen.position, view.drawn) == (held, drawn)
        await press(pilot, "space", lambda: screen.position > held)  # resume: it moves on from there

        # 4x: a new request from the time shown, the old one closed first
        await press(pilot, "plus", lambda: screen.player is not player and screen.player is not None)
        assert screen.speed == 4.0
        assert player.thread is not None
        assert not player.thread.is_alive()
        faster = screen.player
        assert faster is not None
        assert faster.speed == 4.0
        assert faster.start_time >= held
        assert faster.anchor < faster.start_time  # the keyframe the server starts from, as the old player saw it
        await wait_for(pilot, lambda: faster.shown >= 1)
        assert "4x" in screen.message

        await press(pilot, "escape", lambda: isinstance(app.screen, RecordingsScreen))
        assert all(p.thread is not None and not p.thread.is_alive() for p in (player, faster))
        assert backend.playbacks_open == 0
        assert not [t for t in threading.enumerate() if t.name == DECODER_THREAD_NAME]


@pytest.mark.asyncio
async def test_playback_of_an_empty_range_shows_the_message(real_fluxkit: RealFluxkit, tmp_path: Path) -> None:
    backend = backend_of(real_fluxkit)
    app = make_app(backend, poll_interval=0.5, export_dir=tmp_path, device_refresh=0)
    async with app.run_test(size=(80, 24)) as pilot:
        recordings = await open_recordings(pilot, app, "demo2", 0.0)
        recordings.query_one("#rec-start", Input).value = "2020-01-01T00:00:00Z"
        recordings.query_one("#rec-end", Input).value = "2020-01-01T00:01:00Z"
        recordings.query_one("#rec-play", Button).press()  # the Play button (clicked without Pilot's idle waits)
        await wait_for(pilot, lambda: isinstance(app.screen, PlaybackScreen))
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        await wait_for(pilot, lambda: "playback failed: 404" in screen.message)
        assert screen.player is not None
        assert screen.player.state == "failed"
        assert "nothing recorded" in screen.message
        assert "nothing recorded" in str(screen.query_one(SnapshotView).cells.render())
        await press(pilot, "escape", lambda: isinstance(app.screen, RecordingsScreen))
        assert all(p.thread is not None and not p.thread.is_alive() for p in screen.players)
        assert backend.playbacks_open == 0
