"""`FluxkitConsole`: the Textual operator console, and `main`, the `fluxkit-console` entry point.

Strategy: the app owns one `Backend` (remote over the REST API, embedded in Trio guest mode, or a test fake)
and two workers: a poller that lists the streams every `poll_interval` seconds and posts `StreamsUpdated`
(replaceable, so a busy UI skips stale polls instead of queueing them), and an event pump that posts
`EventReceived`. The message handlers push the data into whichever screens exist. Screens are Textual modes
(streams, devices, recordings, events, storage), so each keeps its state while another is shown; stream details,
playback and help are pushed on top. `make_app(backend)` is the factory the tests and the CLI use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from fluxkit.cli import add_console_arguments

from .backend import Backend, BackendError, EventLine, RemoteBackend, StreamStatus
from .graphics import Graphics, detect_graphics
from .messages import BackendFailed, EventReceived, StreamsUpdated
from .screens.details import DetailsScreen
from .screens.devices import DevicesScreen
from .screens.events import EventsScreen
from .screens.help import HelpScreen, KeySection, help_markdown
from .screens.playback import PlaybackScreen
from .screens.recordings import RecordingsScreen
from .screens.storage import StorageScreen
from .screens.streams import StreamsScreen

__all__ = ["MAX_EVENTS", "FluxkitConsole", "main", "make_app"]

#: Event lines kept for the events screen.
MAX_EVENTS = 2000

#: The screens that are modes (each keeps its state while another is shown), by mode name.
_MODES: dict[str, type[Screen[None]]] = {
    "streams": StreamsScreen,
    "devices": DevicesScreen,
    "recordings": RecordingsScreen,
    "events": EventsScreen,
    "storage": StorageScreen,
}


class FluxkitConsole(App[int]):
    """The operator console.

    Args:
        backend: where the data comes from and the commands go.
        poll_interval: seconds between stream polls.
        export_dir: where recordings exports are written.
        device_refresh: seconds between GB28181 device list refreshes (0: only on `u`).
        storage_refresh: seconds between storage (`/metrics`) refreshes (0: only on `u`).
        clock: the current UTC time (the recordings screen's "now"); injectable for tests.
        graphics: how snapshots are drawn: "halfblock" (default), "kitty" or "sixel" (`detect_graphics`, called
            before the app runs, tells which the terminal has).
    """

    CSS_PATH = "app.tcss"
    TITLE = "fluxkit"
    MODES: ClassVar = dict(_MODES)
    DEFAULT_MODE = "streams"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("1,s", "switch_mode('streams')", "Streams", show=False),
        Binding("2,d", "switch_mode('devices')", "Devices"),
        Binding("3,r", "switch_mode('recordings')", "Recordings", show=False),
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
        graphics: Graphics = "halfblock",
    ) -> None:
        super().__init__()
        self.graphics: Graphics = graphics
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

    def key_sections(self) -> list[KeySection]:
        """The keys of the app and of every screen, from their bindings (the help and the palette use them)."""
        palette = Binding(self.COMMAND_PALETTE_BINDING, "command_palette", "Command palette")
        everywhere = (*self.BINDINGS, palette)
        sections = [KeySection(title="Everywhere", bindings=everywhere, note=_EVERYWHERE_NOTE)]
        for title, screen in _SCREENS:
            sections.append(KeySection(title=title, bindings=tuple(screen.BINDINGS), note=getattr(screen, "HELP", "")))
        return sections

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_markdown(self, self.key_sections())))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's commands, the screens, and every key binding of the app and of every screen.

        A binding of the screen shown runs there; one of another screen first switches to that screen (the stream
        details screen's own keys are offered only while it is shown, since it belongs to one stream).
        """
        yield from super().get_system_commands(screen)
        for mode, text in (
            ("streams", "live table of every stream"),
            ("devices", "GB28181 device tree and PTZ"),
            ("recordings", "segments, gaps, export and playback"),
            ("events", "filterable log of engine events"),
            ("storage", "tiers, usage, retention and migration"),
        ):
            yield SystemCommand(mode.capitalize(), f"Show the {text}", partial(self.switch_mode, mode))
        yield SystemCommand("Help", "Every key of every screen", self.action_help)
        for title, screen_class in _SCREENS:
            home = _MODE_OF.get(screen_class)
            if home is None and not isinstance(screen, screen_class):
                continue
            for keys, description, action in _commands(self, screen_class.BINDINGS):
                if action.startswith("app.") and description in _APP_DESCRIPTIONS:
                    continue  # the same as an app-wide command listed above
                run = partial(self._run_screen_action, home, action)
                yield SystemCommand(f"{title}: {description}", f"key {keys}", run, discover=False)

    async def _run_screen_action(self, mode: str | None, action: str) -> None:
        if mode is not None and self.current_mode != mode:
            await self.switch_mode(mode)
        await self.run_action(action, self.screen)

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        await self.backend.aclose()


_EVERYWHERE_NOTE = (
    "A screen's own keys win over these. The mouse works too: click rows and tree nodes, the footer's keys and the "
    "PTZ buttons; the command palette runs any action of any screen."
)

#: The screens in help order, with their titles.
_SCREENS: tuple[tuple[str, type[Screen[None]]], ...] = (
    ("Streams", StreamsScreen),
    ("Stream details", DetailsScreen),
    ("Devices and PTZ", DevicesScreen),
    ("Recordings", RecordingsScreen),
    ("Playback", PlaybackScreen),
    ("Events", EventsScreen),
    ("Storage", StorageScreen),
)
_MODE_OF: dict[type[Screen[None]], str] = {screen: mode for mode, screen in _MODES.items()}
_APP_DESCRIPTIONS = {"Streams", "Devices", "Recordings", "Events", "Storage"}


def _commands(app: App[Any], bindings: Iterable[BindingType]) -> Iterable[tuple[str, str, str]]:
    """`(keys, description, action)` of each distinct action of `bindings`, keys as the footer shows them."""
    seen: dict[str, tuple[list[str], str]] = {}
    for binding in Binding.make_bindings(bindings):
        keys, _ = seen.setdefault(binding.action, ([], binding.description or binding.action))
        keys.append(app.get_key_display(binding))
    for action, (keys, description) in seen.items():
        yield " ".join(keys), description, action


def make_app(backend: Backend, **kwargs: object) -> FluxkitConsole:
    """The console over `backend` (keyword arguments as `FluxkitConsole`)."""
    return FluxkitConsole(backend, **kwargs)  # type: ignore[arg-type]


def build_parser(prog: str = "fluxkit-console") -> argparse.ArgumentParser:
    """The console's command-line options (shared with `fluxkit console`)."""
    parser = argparse.ArgumentParser(prog=prog, description="fluxkit operator console (Textual).")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the console's options to `parser` (one definition, shared with `fluxkit console`)."""
    add_console_arguments(parser)


def run_console(args: argparse.Namespace) -> int:
    """Run the console from parsed arguments; returns the exit status."""
    import os

    backend: Backend
    if args.embedded:
        from fluxkit.errors import ConfigError

        from .embedded import EmbeddedBackend, embedded_config

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
    try:
        graphics = detect_graphics(getattr(args, "graphics", None))  # before Textual owns the terminal
    except ValueError as exc:
        print(f"fluxkit console: {exc}", file=sys.stderr)
        return 2
    app = make_app(backend, export_dir=export_dir, graphics=graphics)
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
