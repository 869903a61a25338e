"""`FluxkitConsole`: the Textual operator console, and `main`, the `fluxkit-console` entry point.

Strategy: the app owns one `Backend` (remote over the REST API, embedded in Trio guest mode, or a test fake)
and two workers: a poller that lists the streams every `poll_interval` seconds and posts `StreamsUpdated`
(replaceable, so a busy UI skips stale polls instead of queueing them), and an event pump that posts
`EventReceived`. The message handlers push the data into whichever screens exist. Screens are Textual modes
(streams, devices, recordings, events, storage), so each keeps its state while another is shown; stream details and
help are pushed on top. `make_app(backend)` is the factory the tests and the CLI use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from fluxkit_tui.backend import Backend, BackendError, EventLine, RemoteBackend, StreamStatus
from fluxkit_tui.messages import BackendFailed, EventReceived, StreamsUpdated
from fluxkit_tui.screens.details import DetailsScreen
from fluxkit_tui.screens.devices import DevicesScreen
from fluxkit_tui.screens.events import EventsScreen
from fluxkit_tui.screens.help import HelpScreen
from fluxkit_tui.screens.recordings import RecordingsScreen
from fluxkit_tui.screens.storage import StorageScreen
from fluxkit_tui.screens.streams import StreamsScreen
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

__all__ = ["MAX_EVENTS", "FluxkitConsole", "main", "make_app"]

#: Event lines kept for the events screen.
MAX_EVENTS = 2000


class FluxkitConsole(App[int]):
    """The operator console.

    Args:
        backend: where the data comes from and the commands go.
        poll_interval: seconds between stream polls.
        export_dir: where recordings exports are written.
        device_refresh: seconds between GB28181 device list refreshes (0: only on `u`).
        storage_refresh: seconds between storage (`/metrics`) refreshes (0: only on `u`).
        clock: the current UTC time (the recordings screen's "now"); injectable for tests.
    """

    CSS_PATH = "app.tcss"
    TITLE = "fluxkit"
    MODES: ClassVar = {
        "streams": StreamsScreen,
        "devices": DevicesScreen,
        "recordings": RecordingsScreen,
        "events": EventsScreen,
        "storage": StorageScreen,
    }
    DEFAULT_MODE = "streams"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("1,s", "switch_mode('streams')", "Streams", show=False),
        Binding("2,d", "switch_mode('devices')", "Devices"),
        Binding("3", "switch_mode('recordings')", "Recordings", show=False),
        Binding("4,e", "switch_mode('events')", "Events"),
        Binding("5,t", "switch_mode('storage')", "Storage", show=False),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(
        self,
        backend: Backend,
        *,
        poll_interval: float = 1.0,
        export_dir: Path | None = None,
        device_refresh: float | None = None,
        storage_refresh: float | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.poll_interval = poll_interval
        self.export_dir = export_dir or Path.cwd()
        self.latest_rows: list[StreamStatus] = []
        self.event_lines: deque[EventLine] = deque(maxlen=MAX_EVENTS)
        self.recordings_stream: str | None = None
        self.polls = 0
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self.backend_error: str | None = None
        if device_refresh is not None:
            self._modes["devices"] = lambda: DevicesScreen(refresh_interval=device_refresh)
        if storage_refresh is not None:
            self._modes["storage"] = lambda: StorageScreen(refresh_interval=storage_refresh)

    async def on_mount(self) -> None:
        self.sub_title = self.backend.description
        self._run_backend()

    @work(group="backend", exit_on_error=False)
    async def _run_backend(self) -> None:
        try:
            await self.backend.start()
        except BackendError as exc:
            self.exit(1, message=f"fluxkit console: {exc}")
            return
        self.sub_title = self.backend.description
        self._pump_events()
        self._poll()

    @work(group="poll", exit_on_error=False)
    async def _poll(self) -> None:
        import asyncio

        while True:
            try:
                rows = await self.backend.list_streams()
            except BackendError as exc:
                self.post_message(BackendFailed(str(exc)))
            else:
                self.post_message(StreamsUpdated(rows))
            await asyncio.sleep(self.poll_interval)

    @work(group="events", exit_on_error=False)
    async def _pump_events(self) -> None:
        async for line in self.backend.events():
            self.post_message(EventReceived(line))

    def on_streams_updated(self, message: StreamsUpdated) -> None:
        self.latest_rows = message.rows
        self.polls += 1
        if self.backend_error is not None:
            self.backend_error = None
            self.sub_title = self.backend.description
        for screen in self._all_screens():
            if isinstance(screen, StreamsScreen) and screen.is_mounted:
                screen.apply(message.rows)
            elif isinstance(screen, DetailsScreen) and screen.is_mounted:
                for row in message.rows:
                    if row.stream_id == screen.stream_id:
                        screen.update_row(row)

    def on_backend_failed(self, message: BackendFailed) -> None:
        self.backend_error = message.error
        self.sub_title = f"{self.backend.description} · {message.error}"

    def on_event_received(self, message: EventReceived) -> None:
        self.event_lines.append(message.line)
        for screen in self._all_screens():
            if isinstance(screen, EventsScreen) and screen.is_mounted:
                screen.add(message.line)

    def _all_screens(self) -> Iterable[Screen[object]]:
        seen: set[int] = set()
        for stack in self._screen_stacks.values():
            for screen in stack:
                if id(screen) not in seen:
                    seen.add(id(screen))
                    yield screen

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, text in (
            ("streams", "live table of every stream"),
            ("devices", "GB28181 device tree and PTZ"),
            ("recordings", "segments, gaps and export"),
            ("events", "filterable log of engine events"),
            ("storage", "recorded bytes, segments, lag and disk use"),
        ):
            yield SystemCommand(mode.capitalize(), f"Show the {text}", lambda m=mode: self.switch_mode(m))
        yield SystemCommand("Help", "Every key of every screen", self.action_help)

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        await self.backend.aclose()


def make_app(backend: Backend, **kwargs: object) -> FluxkitConsole:
    """The console over `backend` (keyword arguments as `FluxkitConsole`)."""
    return FluxkitConsole(backend, **kwargs)  # type: ignore[arg-type]


def build_parser(prog: str = "fluxkit-console") -> argparse.ArgumentParser:
    """The console's command-line options (shared with `fluxkit console`)."""
    parser = argparse.ArgumentParser(prog=prog, description="fluxkit operator console (Textual).")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the console's options to `parser`."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the fluxkit REST API, e.g. http://127.0.0.1:8080 (remote mode)")
    where.add_argument("--embedded", action="store_true", help="run fluxkit in-process (with the demo cameras)")
    parser.add_argument("--token", help="the API bearer token (remote mode; default: $FLUXKIT_TOKEN)")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file (embedded mode)")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (embedded mode)")
    parser.add_argument("--no-demo", action="store_true", help="embedded mode without the demo cameras")
    parser.add_argument("--export-dir", metavar="DIR", help="where exports are written (default: here)")


def run_console(args: argparse.Namespace) -> int:
    """Run the console from parsed arguments; returns the exit status."""
    import os

    backend: Backend
    if args.embedded:
        from fluxkit_tui.embedded import EmbeddedBackend, embedded_config

        from fluxkit.errors import ConfigError

        try:
            config = embedded_config(args.config, data_dir=args.data_dir)
        except (ConfigError, OSError, ValueError) as exc:
            print(f"fluxkit console: {exc}", file=sys.stderr)
            return 2
        backend = EmbeddedBackend(config, demo=not args.no_demo)
    else:
        if args.config or args.data_dir or args.no_demo:
            print("fluxkit console: --config, --data-dir and --no-demo go with --embedded", file=sys.stderr)
            return 2
        backend = RemoteBackend(args.url, args.token or os.environ.get("FLUXKIT_TOKEN"))
    export_dir = Path(args.export_dir) if args.export_dir else None
    app = make_app(backend, export_dir=export_dir)
    code = app.run()
    return int(code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """`fluxkit-console`: parse the options and run the console."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return run_console(args)


if __name__ == "__main__":
    sys.exit(main())
