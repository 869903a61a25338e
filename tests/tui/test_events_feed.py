"""The remote console reads the engine's events from `/api/video/events` (and falls back to polls without it).

A real fluxkit API (`serve_api` over a real engine) runs under `trio.run` in a thread; the console runs on
Textual's asyncio loop with a `RemoteBackend` on that API, as `fluxkit console --url` does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fluxkit_tui.app import make_app
from fluxkit_tui.backend import EventLine, RemoteBackend, _event_line
from starlette.routing import WebSocketRoute

TOKEN = "console-events-token"


class ApiThread:
    """An engine and its REST API on a free loopback port, in a Trio thread; `call(fn)` runs fn in it."""

    def __init__(self, *, without_events: bool = False) -> None:
        self.without_events = without_events
        self.ready = threading.Event()
        self.port = 0
        self.engine: Any = None
        self._token: Any = None
        self._scope: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import trio

        from fluxkit.api import ApiServices, serve_api
        from fluxkit.engine import open_engine

        async def older_server(websocket: Any) -> None:  # a fluxkit from before the event feed
            from starlette.responses import JSONResponse

            await websocket.send_denial_response(JSONResponse({"error": "not found", "status": 404}, 404))

        extra = (WebSocketRoute("/api/video/events", older_server),) if self.without_events else ()

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with open_engine() as engine, trio.open_nursery() as nursery:
                    self.engine = engine
                    services = ApiServices(engine=engine, token=TOKEN, extra_routes=extra)
                    self.port = await nursery.start(serve_api, services, "127.0.0.1", 0)
                    self.ready.set()

        try:
            trio.run(main)
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    def start(self) -> None:
        self._thread.start()
        assert self.ready.wait(30)
        assert self.port, self.error

    def call(self, fn: Any) -> None:
        self._token.run_sync_soon(fn)

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive():
            self._token.run_sync_soon(self._scope.cancel)
        self._thread.join(30)


@pytest.fixture
def api() -> Iterator[ApiThread]:
    running = ApiThread()
    running.start()
    try:
        yield running
    finally:
        running.stop()
    assert running.error is None, running.error


async def wait_for(pilot: Any, predicate: Any, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("timed out waiting for the console")


def test_event_line_text() -> None:
    line = _event_line(
        {
            "type": "StreamPublished",
            "stream_id": "cam1",
            "time": "2026-02-11T10:00:00.25Z",
            "engine_time": 3.0,
            "tracks": [{"codec": "h264", "kind": "video", "width": 768, "height": 320, "fps": 25.0}],
        }
    )
    assert (line.kind, line.stream_id, line.text) == ("engine", "cam1", "StreamPublished tracks=[h264 768x320@25]")
    assert line.time.year == 2026
    failed = _event_line({"type": "StreamFailed", "stream_id": "c", "time": "bad", "error": "E: x", "attempts": 2})
    assert failed.kind == "failed"
    assert "error=E: x" in failed.text


@pytest.mark.asyncio
async def test_engine_events_reach_the_console_event_lines(api: ApiThread) -> None:
    from fluxkit.engine import Track

    backend = RemoteBackend(f"http://127.0.0.1:{api.port}", TOKEN, poll_interval=0.2)
    app = make_app(backend, poll_interval=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: backend.feed_open)

        def publish() -> None:
            api.engine.publish_stream("cam7", [Track(codec="h264", width=640, height=360, fps=25.0)]).close()

        api.call(publish)
        lines: list[EventLine] = app.event_lines  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: any(line.text.startswith("StreamStopped") for line in lines))
        engine_lines = [(line.stream_id, line.text.split()[0]) for line in lines if line.kind == "engine"]
        assert engine_lines == [("cam7", "StreamPublished"), ("cam7", "StreamStopped")]
        assert "h264 640x360@25" in lines[0].text
        await pilot.press("q")


@pytest.mark.asyncio
async def test_without_the_endpoint_the_console_falls_back_to_polls() -> None:
    from fluxkit.engine import Track

    older = ApiThread(without_events=True)
    older.start()
    try:
        backend = RemoteBackend(f"http://127.0.0.1:{older.port}", TOKEN, poll_interval=0.2)
        app = make_app(backend, poll_interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: not backend.event_feed)  # the 404 turned the feed off for good
            await wait_for(pilot, lambda: app.polls >= 2)  # type: ignore[attr-defined]
            older.call(lambda: older.engine.publish_stream("cam8", [Track(codec="h264")]))
            lines: list[EventLine] = app.event_lines  # type: ignore[attr-defined]
            await wait_for(pilot, lambda: any(line.stream_id == "cam8" for line in lines))
            assert (lines[0].kind, lines[0].text) == ("stream", "new stream (live)")
            assert not backend.feed_open
            await pilot.press("q")
    finally:
        older.stop()
    assert older.error is None, older.error
