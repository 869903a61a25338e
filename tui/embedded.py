"""`EmbeddedBackend`: fluxkit's main job (`run_fluxkit`) inside the console, in Trio guest mode.

Strategy: Textual owns the asyncio loop, so Trio runs as a guest on it (`trio.lowlevel.start_guest_run`, the
pattern of the stack notes): one thread, Trio keeps its cancel scopes, nothing blocks. Once `run_fluxkit`
reports it is serving, the console talks to the engine through its own REST API with a `RemoteBackend`, so the
embedded and remote consoles share one code path. Trio -> asyncio goes only through `loop.call_soon_threadsafe`
(the guest's documented callback), asyncio -> Trio only through `TrioToken.run_sync_soon` (the cancellation at
shutdown); `trio.from_thread` would deadlock, both loops sharing one thread. The engine's own events
(`engine.events()`) and fluxkit's log records become `EventLine`s, and the log records stop going to stderr,
which the console draws on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import trio

from fluxkit.app import RunningFluxkit, run_fluxkit
from fluxkit.config import Config, ProtocolSettings, load_config

from .backend import (
    BackendError,
    Device,
    EventLine,
    HttpAnswer,
    PtzResult,
    Recordings,
    RemoteBackend,
    StorageReport,
    StreamStatus,
)

__all__ = ["EmbeddedBackend", "embedded_config"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_config(path: str | Path | None = None, *, data_dir: str | Path | None = None) -> Config:
    """The configuration of an embedded engine: the file's, or the defaults with free loopback ports.

    The API token is made up when the configuration has none (run_fluxkit would print it on the terminal).
    """
    if path is not None:
        config = load_config(path)
    else:
        ports = [_free_port() for _ in range(4)]
        protocols = ProtocolSettings(api_port=ports[0], rtsp_port=ports[1], rtmp_port=ports[2], sip_port=ports[3])
        config = Config()
        config = attrs.evolve(config, video=attrs.evolve(config.video, protocols=protocols))
    video = config.video
    if data_dir is not None:
        video = attrs.evolve(video, data_dir=str(data_dir))
    if video.api.token is None:
        video = attrs.evolve(video, api=attrs.evolve(video.api, token=secrets.token_urlsafe(24)))
    return attrs.evolve(config, video=video)


class _ToQueue(logging.Handler):
    def __init__(self, push: Callable[[EventLine], None]) -> None:
        super().__init__(logging.INFO)
        self._push = push

    def emit(self, record: logging.LogRecord) -> None:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        kind = "log" if record.levelno < logging.WARNING else record.levelname.lower()
        self._push(EventLine(time=when, kind=kind, stream_id=record.name, text=record.getMessage()))


def _engine_event_line(event: Any) -> EventLine:
    name = type(event).__name__
    fields = {k: v for k, v in attrs.asdict(event).items() if k not in ("stream_id", "time")}
    text = " ".join(f"{k}={v}" for k, v in fields.items())
    kind = {"StreamFailed": "failed", "SourceReconnecting": "restart"}.get(name, "engine")
    return EventLine(time=dt.datetime.now(dt.UTC), kind=kind, stream_id=event.stream_id, text=f"{name} {text}")


class EmbeddedBackend:
    """Runs `run_fluxkit(config, demo=demo)` in Trio guest mode, then serves the console from its REST API.

    Args:
        config: the configuration (see `embedded_config`); its API must be enabled.
        demo: also start the demo cameras (streams demo1, demo2).
        poll_interval: passed to the inner `RemoteBackend`.
    """

    def __init__(self, config: Config, *, demo: bool = False, poll_interval: float = 1.0) -> None:
        if not config.video.api.enabled:
            raise ValueError("the embedded console needs [video.api] enabled")
        self.config = config
        self.demo = demo
        self.poll_interval = poll_interval
        self.description = "embedded"
        self.running: RunningFluxkit | None = None
        self._remote: RemoteBackend | None = None
        self._queue: asyncio.Queue[EventLine] = asyncio.Queue(maxsize=5000)
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._done: asyncio.Future[outcome.Outcome[None]] | None = None
        self._log_handler: _ToQueue | None = None

    def _push(self, line: EventLine) -> None:
        # The log is for people: under a flood, dropping the newest lines is fine.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(line)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        started: asyncio.Future[RunningFluxkit] = loop.create_future()

        def push_threadsafe(line: EventLine) -> None:
            loop.call_soon_threadsafe(self._push, line)

        async def forward_events(running: RunningFluxkit) -> None:
            async with running.engine.events() as events:
                async for event in events:
                    push_threadsafe(_engine_event_line(event))

        async def trio_main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._cancel = scope
                async with trio.open_nursery() as nursery:
                    running: RunningFluxkit = await nursery.start(
                        lambda task_status: run_fluxkit(self.config, demo=self.demo, task_status=task_status)
                    )
                    nursery.start_soon(forward_events, running)
                    loop.call_soon_threadsafe(_set_result, started, running)

        def done(result: outcome.Outcome[None]) -> None:
            assert self._done is not None
            if not self._done.done():
                self._done.set_result(result)
            if not started.done():
                error = result.error if isinstance(result, outcome.Error) else RuntimeError("fluxkit stopped")
                started.set_exception(BackendError(0, f"the embedded engine failed to start: {error!r}"))

        logger = logging.getLogger("fluxkit")
        self._log_handler = _ToQueue(push_threadsafe)
        logger.addHandler(self._log_handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done,
        )
        self.running = await started
        assert self.running.api_url is not None
        self.description = f"embedded {self.running.api_url}"
        self._remote = RemoteBackend(self.running.api_url, self.running.api_token, poll_interval=self.poll_interval)

    async def aclose(self) -> None:
        if self._remote is not None:
            await self._remote.aclose()
        if self._done is not None:
            if not self._done.done() and self._token is not None and self._cancel is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(self._cancel.cancel)
            result = await self._done
            if isinstance(result, outcome.Error) and not isinstance(result.error, trio.Cancelled):
                logging.getLogger("fluxkit_tui").warning("the embedded engine ended with %r", result.error)
        if self._log_handler is not None:
            logger = logging.getLogger("fluxkit")
            logger.removeHandler(self._log_handler)
            logger.propagate = True

    @property
    def remote(self) -> RemoteBackend:
        if self._remote is None:
            raise BackendError(0, "the embedded engine is not running")
        return self._remote

    async def list_streams(self) -> list[StreamStatus]:
        return await self.remote.list_streams()

    async def get_stream(self, stream_id: str) -> dict[str, Any]:
        return await self.remote.get_stream(stream_id)

    async def snapshot(self, stream_id: str) -> bytes:
        return await self.remote.snapshot(stream_id)

    async def recordings(self, stream_id: str, start: dt.datetime, end: dt.datetime) -> Recordings:
        return await self.remote.recordings(stream_id, start, end)

    async def export(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        path: Path,
        *,
        speed: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        return await self.remote.export(stream_id, start, end, path, speed=speed, progress=progress)

    async def playback(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float | None = None,
        on_first_frame: Callable[[dt.datetime], None] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        chunks = self.remote.playback(stream_id, start, end, speed=speed, on_first_frame=on_first_frame)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def devices(self) -> list[Device]:
        return await self.remote.devices()

    async def ptz(
        self, device_id: str, channel_id: str, command: str, *, speed: int = 128, preset: int | None = None
    ) -> PtzResult:
        return await self.remote.ptz(device_id, channel_id, command, speed=speed, preset=preset)

    async def start_live(self, device_id: str, channel_id: str, transport: str = "udp") -> HttpAnswer:
        return await self.remote.start_live(device_id, channel_id, transport)

    async def stop_live(self, stream_id: str) -> HttpAnswer:
        return await self.remote.stop_live(stream_id)

    async def storage(self) -> StorageReport:
        return await self.remote.storage()

    async def events(self) -> AsyncIterator[EventLine]:
        # The engine's real events and the log; the remote poll-diff events would only repeat them.
        while True:
            yield await self._queue.get()


def _set_result(future: asyncio.Future[RunningFluxkit], value: RunningFluxkit) -> None:
    if not future.done():
        future.set_result(value)
