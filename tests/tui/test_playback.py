"""Playback without an engine: the byte pipe between the loop and the decoder thread, `Player` over
`FakeBackend.playback` (a fragmented H.264 MP4 made with PyAV), and the playback screen's keys, button, palette
entries and help. The same screen against a real engine's recordings is in test_real_fluxkit.py."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.backend import BackendError, Recordings, Span
from fluxkit_tui.playback import BytePipe, PipeClosed, Player, playback_anchor
from fluxkit_tui.screens.help import HelpScreen
from fluxkit_tui.screens.playback import PlaybackScreen, format_position
from fluxkit_tui.screens.recordings import RecordingsScreen
from fluxkit_tui.widgets.snapshot_view import SnapshotView

from tests.tui.fakes import T0, FakeBackend, make_fmp4


async def until(predicate: Any, pilot: Any = None) -> None:
    while not predicate():
        await (pilot.pause(0.01) if pilot is not None else asyncio.sleep(0.01))


# -- the pipe ------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pipe_bounds_the_writer_and_ends_the_reader() -> None:
    pipe = BytePipe(max_bytes=10)
    await pipe.put(b"0123456789ab")  # under the bound when put: one chunk may go over
    assert pipe.held == 12
    put = asyncio.create_task(pipe.put(b"cd"))
    await asyncio.sleep(0.01)
    assert not put.done()  # full: the writer waits

    def read(n: int) -> bytes:
        buffer = bytearray(n)
        return bytes(buffer[: pipe.readinto(buffer)])

    assert await asyncio.to_thread(read, 5) == b"01234"
    await asyncio.wait_for(put, 5)  # room again: the writer went on
    pipe.finish()
    assert await asyncio.to_thread(read, 100) == b"56789abcd"  # across chunks
    assert await asyncio.to_thread(read, 100) == b""  # the end
    with pytest.raises(PipeClosed):
        await pipe.put(b"late")


@pytest.mark.asyncio
async def test_pipe_abort_wakes_the_reader_and_the_writer() -> None:
    pipe = BytePipe(max_bytes=4)
    await pipe.put(b"full")
    writer = asyncio.create_task(pipe.put(b"more"))
    empty = BytePipe(max_bytes=4)
    reader = asyncio.create_task(asyncio.to_thread(empty.readinto, bytearray(2)))
    await asyncio.sleep(0.02)
    assert not writer.done()
    assert not reader.done()
    empty.abort()
    assert await asyncio.wait_for(reader, 5) == 0  # the end, at once
    pipe.abort()
    with pytest.raises(PipeClosed):
        await asyncio.wait_for(writer, 5)
    assert pipe.readinto(bytearray(2)) == 0  # what was held is dropped
    assert pipe.held == 0
    assert not pipe.seekable()
    with pytest.raises(ValueError, match="positive"):
        BytePipe(0)


# -- the player ----------------------------------------------------------------------------------------------


def playing_backend() -> FakeBackend:
    backend = FakeBackend()
    backend.playback_error = None
    return backend


@pytest.mark.asyncio
async def test_player_keeps_at_most_max_fps_and_ends() -> None:
    backend = playing_backend()
    end = T0 + dt.timedelta(seconds=2)
    player = Player(backend, "cam000", T0, end, speed=4.0, box=(32, 20), max_fps=10)
    assert player.state == "starting"
    player.start()
    shown = []
    while player.state not in ("ended", "failed"):
        frame = player.take()
        if frame is not None:
            shown.append(frame)
        await asyncio.sleep(0.005)
    assert player.error is None
    assert backend.playbacks == [("cam000", T0, end, 4.0)]
    assert player.decoded == 50  # every frame decoded (2 s at 25 fps) ...
    # ... but kept only 0.4 s of media apart (4x at 10 pictures a second): 0, 0.4, 0.8, 1.2 and 1.6 s
    assert 1 <= len(shown) <= player.shown + player.dropped <= 5
    assert [f.time for f in shown] == sorted(f.time for f in shown)
    assert all(f.image.shape[1] <= 32 and f.image.shape[0] <= 20 and f.image.shape[0] % 2 == 0 for f in shown)
    assert list(player.keyframes) == [0.0, 1.0]  # a keyframe a second
    assert player.keyframe_before(T0 + dt.timedelta(seconds=1.5)) == T0 + dt.timedelta(seconds=1)
    assert player.keyframe_before(T0 - dt.timedelta(seconds=1)) is None
    assert player.position == T0 + dt.timedelta(seconds=shown[-1].time)
    assert await player.close()
    assert player.state == "closed"
    assert player.thread is not None
    assert not player.thread.is_alive()


@pytest.mark.asyncio
async def test_player_pause_holds_the_decoder() -> None:
    player = Player(playing_backend(), "cam000", T0, T0 + dt.timedelta(seconds=2), speed=1.0, max_fps=10)
    player.start()
    await until(lambda: player.take() is not None)
    player.pause()
    assert player.state == "paused"
    await asyncio.sleep(0.05)
    while player.take() is not None:  # what was queued before the pause
        pass
    decoded = player.decoded
    await asyncio.sleep(0.4)  # at 1x, 4 pictures would be due by now
    assert player.take() is None
    assert player.decoded - decoded <= 3  # the decoder holds the next kept frame (it decodes up to it)
    player.resume()
    await until(lambda: player.take() is not None)
    assert await player.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "data", "message"),
    [
        (BackendError(503, "recordings are not enabled"), None, "503: recordings are not enabled"),
        (BackendError(0, "connection refused"), None, "no answer: connection refused"),
        (None, b"not an mp4 at all" * 100, "cannot decode the playback"),
        (None, b"", "the server sent nothing"),
    ],
)
async def test_player_errors_are_messages(error: BackendError | None, data: bytes | None, message: str) -> None:
    backend = FakeBackend()
    backend.playback_error = error
    if data is not None:

        async def playback(*args: Any, **kwargs: Any) -> Any:
            if data:
                yield data

        backend.playback = playback  # type: ignore[method-assign]
    player = Player(backend, "cam000", T0, T0 + dt.timedelta(seconds=2))
    player.start()
    await until(lambda: player.state == "failed")
    assert player.error is not None
    assert message in player.error
    assert await player.close()


@pytest.mark.asyncio
async def test_player_close_mid_stream_closes_the_answer() -> None:
    opened = asyncio.Event()
    closed = asyncio.Event()

    async def endless(*args: Any, **kwargs: Any) -> Any:
        data = make_fmp4()
        opened.set()
        try:
            while True:
                yield data  # the same fragments again and again: far more than the pipe holds
        finally:
            closed.set()

    backend = FakeBackend()
    backend.playback = endless  # type: ignore[method-assign]
    player = Player(backend, "cam000", T0, T0 + dt.timedelta(hours=1), max_buffer=1 << 14)
    player.start()
    await asyncio.wait_for(opened.wait(), 5)
    await asyncio.sleep(0.1)
    # The pipe pushes back: what was read is the pipe, a chunk over it, FFmpeg's read buffer and a few frames.
    assert player.received < (1 << 14) + 32768 + 4 * len(make_fmp4())
    assert await player.close()
    assert closed.is_set()
    assert player.thread is not None
    assert not player.thread.is_alive()


def test_playback_anchor() -> None:
    s = dt.timedelta(seconds=1)
    segments = (Span(start=T0, end=T0 + 10 * s), Span(start=T0 + 20 * s, end=T0 + 30 * s))
    rec = Recordings(stream_id="x", start=T0, end=T0 + 30 * s, segments=segments, gaps=())
    assert playback_anchor(rec, T0 + 5 * s) == T0 + 5 * s  # inside a segment: the start itself
    assert playback_anchor(rec, T0 + 12 * s) == T0 + 20 * s  # in a gap: the next segment's first keyframe
    assert playback_anchor(rec, T0 + 40 * s) == T0 + 40 * s  # after everything
    assert playback_anchor(None, T0) == T0
    assert format_position(T0 + dt.timedelta(seconds=1.25)) == "2026-01-02 03:04:01.2"
    with pytest.raises(ValueError, match="speed"):
        Player(FakeBackend(), "x", T0, T0 + s, speed=8)


# -- the screen ----------------------------------------------------------------------------------------------


def console(backend: FakeBackend, tmp_path: Path) -> FluxkitConsole:
    return make_app(
        backend, poll_interval=3600, export_dir=tmp_path, device_refresh=0, storage_refresh=0, clock=lambda: T0
    )


async def recordings_screen(app: FluxkitConsole, pilot: Any) -> RecordingsScreen:
    await until(lambda: app.polls >= 1, pilot)
    await pilot.press("3")
    screen = app.screen
    assert isinstance(screen, RecordingsScreen)
    await until(lambda: screen.recordings is not None, pilot)
    return screen


@pytest.mark.asyncio
async def test_play_key_plays_to_the_end_and_space_plays_again(tmp_path: Path) -> None:
    backend = playing_backend()
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        recordings = await recordings_screen(app, pilot)
        recordings.query_one("#rec-speed").value = 4.0  # type: ignore[attr-defined]
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        assert (screen.stream_id, screen.speed) == ("cam000", 4.0)
        view = screen.query_one(SnapshotView)
        await until(lambda: "ended" in screen.message, pilot)
        assert view.drawn >= 1
        assert view.image is not None
        assert "end of the range" in screen.message
        # FakeBackend's recordings start with a segment at the range's start: the anchor is the start
        assert screen.start <= screen.position <= screen.start + dt.timedelta(seconds=2)
        await pilot.press("space")  # again, from the start
        await until(lambda: len(backend.playbacks) == 2 and screen.player is not None, pilot)
        assert backend.playbacks[1][1] == screen.start
        await pilot.press("minus")  # 2x: from the time shown
        await until(lambda: len(backend.playbacks) == 3, pilot)
        assert backend.playbacks[2][3] == 2.0
        await pilot.press("escape")
        assert app.screen is recordings
        assert all(p.state == "closed" for p in screen.players)
        assert all(p.thread is not None and not p.thread.is_alive() for p in screen.players)


@pytest.mark.asyncio
async def test_quitting_while_playing_ends_the_decoder(tmp_path: Path) -> None:
    app = console(playing_backend(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await recordings_screen(app, pilot)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        await until(lambda: screen.player is not None and screen.player.thread is not None, pilot)
        await pilot.press("space")  # paused: the decoder thread waits
        await pilot.press("q")
    player = screen.player
    assert player is not None
    assert player.thread is not None
    player.thread.join(5)
    assert not player.thread.is_alive()
    assert player.state == "closed"


@pytest.mark.asyncio
async def test_play_button_shows_the_servers_refusal(tmp_path: Path) -> None:
    backend = FakeBackend()  # its playback answers 503
    app = console(backend, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await recordings_screen(app, pilot)
        await pilot.click("#rec-play")
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        await until(lambda: "playback failed" in screen.message, pilot)
        assert "503: recordings are not enabled" in screen.message
        await pilot.press("plus", "plus", "plus")  # speeds change, no crash; 4x is the most
        assert screen.speed == 4.0
        await pilot.press("escape")
        assert isinstance(app.screen, RecordingsScreen)
        assert all(p.thread is not None and not p.thread.is_alive() for p in screen.players)


@pytest.mark.asyncio
async def test_play_needs_a_stream_and_a_range(tmp_path: Path) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await recordings_screen(app, pilot)
        screen.query_one("#rec-end").value = "-90s"  # type: ignore[attr-defined]
        await pilot.press("p")
        assert app.screen is screen
        assert "the end must come after the start" in str(screen.query_one("#rec-status").render())


@pytest.mark.asyncio
async def test_palette_and_help_list_the_playback_keys(tmp_path: Path) -> None:
    app = console(FakeBackend(), tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await recordings_screen(app, pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Recordings: Play" in titles
        assert not any(t.startswith("Playback:") for t in titles)  # only while playing
        await pilot.press("p")
        assert isinstance(app.screen, PlaybackScreen)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Playback: Pause/resume", "Playback: Faster", "Playback: Slower", "Playback: Back"} <= titles
        await pilot.press("question_mark")
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.markdown
        assert "## Playback" in text
        for row in ("| `p` | Play |", "| `space` | Pause/resume |", "| `+` `]` | Faster |", "| `-` `[` | Slower |"):
            assert row in text


# -- the backends and the drawing ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_remote_backend_playback_streams_and_refuses() -> None:
    import contextlib

    import httpx
    from fluxkit_tui.backend import RemoteBackend

    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if "gone" in request.url.path:
            return httpx.Response(404, json={"error": "nothing recorded for 'gone'", "status": 404})
        headers = {"content-type": "video/mp4", "x-fluxkit-first-frame": "2026-01-02T03:03:59.5Z"}
        return httpx.Response(200, content=make_fmp4(), headers=headers)

    backend = RemoteBackend("http://127.0.0.1:1", "tok", transport=httpx.MockTransport(handler))
    try:
        data = b""
        anchors: list[dt.datetime] = []
        chunks = backend.playback("cam 1", T0, T0 + dt.timedelta(seconds=2), speed=0.5, on_first_frame=anchors.append)
        async with contextlib.aclosing(chunks) as it:
            async for chunk in it:
                assert backend.playbacks_open == 1
                data += chunk
        assert data == make_fmp4()
        assert anchors == [T0 - dt.timedelta(seconds=0.5)]  # the server's word on the first frame's time
        assert backend.playbacks_open == 0
        assert seen[0].raw_path.split(b"?")[0] == b"/api/video/recordings/cam%201/playback"
        assert dict(seen[0].params) == {
            "start": "2026-01-02T03:04:00.000Z",
            "end": "2026-01-02T03:04:02.000Z",
            "speed": "0.5",
        }
        with pytest.raises(BackendError) as refused:
            async for _ in backend.playback("gone", T0, T0 + dt.timedelta(seconds=2)):
                pass
        assert (refused.value.status, refused.value.message) == (404, "nothing recorded for 'gone'")
        assert "speed" not in dict(seen[1].params)
        assert backend.playbacks_open == 0
    finally:
        await backend.aclose()


@pytest.mark.asyncio
async def test_embedded_backend_plays_through_its_own_api() -> None:
    from fluxkit_tui.embedded import EmbeddedBackend, embedded_config

    calls: list[tuple[Any, ...]] = []

    class Remote:
        async def playback(self, *args: Any, **kwargs: Any) -> Any:
            calls.append((*args, kwargs))
            yield b"ab"
            yield b"cd"

    backend = EmbeddedBackend(embedded_config())
    backend._remote = Remote()  # type: ignore[assignment]
    chunks = [c async for c in backend.playback("cam", T0, T0 + dt.timedelta(seconds=1), speed=2.0)]
    assert chunks == [b"ab", b"cd"]
    assert calls == [("cam", T0, T0 + dt.timedelta(seconds=1), {"speed": 2.0, "on_first_frame": None})]


def test_halfblock_strips_are_the_text_cells() -> None:
    import numpy as np
    from fluxkit_tui.snapshot import halfblock_strips, halfblock_text

    image = np.zeros((6, 5, 3), dtype=np.uint8)
    image[::2] = (255, 0, 0)
    image[:, 3:] = (0, 0, 255)
    from rich.console import Console

    strips = halfblock_strips(image)
    console = Console(width=10)
    cells = [s for s in console.render(halfblock_text(image)) if s.text == "▀"]
    assert len(strips) == 3
    assert all(strip.text == "▀" * 5 for strip in strips)
    assert [s.style for strip in strips for s in strip] == [s.style for s in cells]
