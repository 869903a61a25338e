"""The events log: every backend event, newest last, filtered by a substring (kind, stream or text).

Strategy: the app keeps the last `MAX_EVENTS` lines whether or not this screen is shown; the screen appends
the lines that match the filter as they arrive and rewrites the log when the filter changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, RichLog

from ..backend import EventLine

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["EventsScreen", "format_event", "matches"]

_KIND_STYLE = {"state": "yellow", "restart": "red", "failed": "bold red", "loss": "magenta", "stream": "cyan"}


def format_event(line: EventLine) -> Text:
    text = Text(f"{line.time:%H:%M:%S} ", style="dim")
    text.append(f"{line.kind:<9}", style=_KIND_STYLE.get(line.kind, "blue"))
    text.append(f"{line.stream_id:<14} ", style="bold")
    text.append(line.text)
    return text


def matches(line: EventLine, needle: str) -> bool:
    needle = needle.strip().lower()
    return not needle or any(needle in f.lower() for f in (line.kind, line.stream_id, line.text))


class EventsScreen(Screen[None]):
    """The filterable log; `/` focuses the filter."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter"),
    ]
    HELP: ClassVar[str] = "Every engine event and alarm, newest last; the filter matches the kind, stream or text."

    def __init__(self) -> None:
        super().__init__(id="events")

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter (kind, stream or text); / to focus", id="events-filter")
        yield RichLog(id="events-log", max_lines=2000, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self._rewrite()
        self.query_one(RichLog).focus()

    @property
    def needle(self) -> str:
        return self.query_one("#events-filter", Input).value

    def add(self, line: EventLine) -> None:
        if matches(line, self.needle):
            self.query_one(RichLog).write(format_event(line))

    def _rewrite(self) -> None:
        log = self.query_one(RichLog)
        log.clear()
        needle = self.needle
        for line in self.console.event_lines:
            if matches(line, needle):
                log.write(format_event(line))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._rewrite()

    def action_focus_filter(self) -> None:
        self.query_one("#events-filter", Input).focus()

    def action_clear_filter(self) -> None:
        self.query_one("#events-filter", Input).value = ""
        self.query_one(RichLog).focus()
