"""Recordings: per-stream segments and gaps as a timeline bar, a chosen range, MP4 export with progress, playback.

Strategy: the screen lists the last `window` of the chosen stream (`Backend.recordings`) and draws it with
`TimelineBar`; the export range is given as two times (RFC 3339, `HH:MM:SS` today in UTC, or relative like
`-90s`/`-5m`) and is highlighted on the bar. The export streams the playback MP4 into a file, with a progress bar
whose total is the size of the recorded segments overlapping the range (an estimate: the MP4 is remuxed, not
re-encoded, so it is close). The speed selector is passed to the playback endpoint (0.25x to 4x). Play (`p`, the
Play button, or the palette) opens `PlaybackScreen` on the same range at the chosen speed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, ProgressBar, Select, Static

from ..backend import BackendError, Recordings
from ..widgets.timeline import TimelineBar
from .playback import PlaybackScreen

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["SPEEDS", "RecordingsScreen", "parse_when"]

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smh])$")


def parse_when(text: str, now: dt.datetime) -> dt.datetime:
    """`-90s`, `-5m`, `-1h`, `HH:MM[:SS]` (today, UTC) or an ISO/RFC 3339 time; ValueError otherwise."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]
        return now - dt.timedelta(seconds=seconds)
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", text):
        parts = [int(p) for p in text.split(":")] + [0]
        return now.replace(hour=parts[0], minute=parts[1], second=parts[2], microsecond=0)
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class RecordingsScreen(Screen[None]):
    """Segments of one stream; `l` lists, `x` exports the chosen range, `p` plays it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "list", "List"),
        Binding("x", "export", "Export"),
        Binding("p", "play", "Play", show=False),  # the Play button shows it: the footer keeps room for Help
        Binding("escape", "app.switch_mode('streams')", "Streams"),
    ]
    HELP: ClassVar[str] = (
        "Choose the stream, the start and end (`-90s`, `-5m`, `HH:MM:SS` UTC or RFC 3339) and the speed; the "
        "timeline shows recorded segments in green and gaps in red, the export writes the range as MP4, and play "
        "shows it here at the chosen speed."
    )

    def __init__(self, *, window: float = 600.0) -> None:
        super().__init__(id="recordings")
        self.window = window
        self.recordings: Recordings | None = None
        self.exported: Path | None = None

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="form-row"):
            yield Select[str]([], prompt="stream", id="rec-stream", allow_blank=True)
            yield Input(value="-60s", placeholder="start", id="rec-start")
            yield Input(value="-0s", placeholder="end", id="rec-end")
            yield Select[float]([(f"{s:g}x", s) for s in SPEEDS], value=1.0, allow_blank=False, id="rec-speed")
        yield TimelineBar(id="rec-timeline")
        yield Label("", id="rec-summary")
        table: DataTable[str] = DataTable(id="rec-segments", cursor_type="row")
        table.add_columns("start", "end", "seconds", "size")
        yield table
        with Horizontal(classes="form-row", id="rec-export-row"):
            yield Button("Play", id="rec-play", action="screen.play", compact=True)
            yield ProgressBar(total=1, show_eta=False, id="rec-progress")
            yield Static("", id="rec-status")
        yield Footer()

    def on_mount(self) -> None:
        self.on_screen_resume()

    def on_screen_resume(self) -> None:
        select: Select[str] = self.query_one("#rec-stream", Select)
        ids = [r.stream_id for r in self.console.latest_rows]
        select.set_options([(i, i) for i in ids])
        wanted = self.console.recordings_stream or (ids[0] if ids else None)
        if wanted is not None and wanted in ids:
            select.value = wanted
            self.action_list()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "rec-stream" and isinstance(event.value, str):
            self.console.recordings_stream = event.value
            self.action_list()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_list()

    def _range(self) -> tuple[dt.datetime, dt.datetime] | None:
        now = self.console.clock()
        try:
            start = parse_when(self.query_one("#rec-start", Input).value, now)
            end = parse_when(self.query_one("#rec-end", Input).value, now)
        except ValueError as exc:
            self._status(f"bad time: {exc}", error=True)
            return None
        if end <= start:
            self._status("the end must come after the start", error=True)
            return None
        return start, end

    def _status(self, text: str, *, error: bool = False) -> None:
        with contextlib.suppress(NoMatches):  # a worker's last word after the console closed
            self.query_one("#rec-status", Static).update(f"[red]{text}[/]" if error else text)

    @property
    def stream_id(self) -> str | None:
        value = self.query_one("#rec-stream", Select).value
        return value if isinstance(value, str) else None

    @work(exclusive=True, group="list")
    async def action_list(self) -> None:
        stream_id = self.stream_id
        chosen = self._range()
        if stream_id is None or chosen is None:
            return
        end = max(chosen[1], self.console.clock())
        start = min(chosen[0], end - dt.timedelta(seconds=self.window))
        try:
            recordings = await self.console.backend.recordings(stream_id, start, end)
        except BackendError as exc:
            self._status(f"{stream_id}: {exc}", error=True)
            return
        with contextlib.suppress(NoMatches):  # the console closed while the list was on its way
            self._show_list(recordings, chosen, start, end)

    def _show_list(
        self, recordings: Recordings, chosen: tuple[dt.datetime, dt.datetime], start: dt.datetime, end: dt.datetime
    ) -> None:
        stream_id = recordings.stream_id
        self.recordings = recordings
        self.query_one(TimelineBar).show(recordings, chosen)
        table: DataTable[str] = self.query_one("#rec-segments", DataTable)
        table.clear()
        for s in recordings.segments:
            seconds = (s.end - s.start).total_seconds()
            table.add_row(f"{s.start:%H:%M:%S}", f"{s.end:%H:%M:%S}", f"{seconds:.1f}", f"{s.size}")
        total = sum(s.size for s in recordings.segments)
        self.query_one("#rec-summary", Label).update(
            f"{stream_id}: {len(recordings.segments)} segments ({total / 1e6:.1f} MB), {len(recordings.gaps)} gaps "
            f"from {start:%H:%M:%S} to {end:%H:%M:%S} UTC"
        )

    def _estimate(self, start: dt.datetime, end: dt.datetime) -> int | None:
        if self.recordings is None:
            return None
        total = 0.0
        for s in self.recordings.segments:
            length = (s.end - s.start).total_seconds()
            overlap = (min(s.end, end) - max(s.start, start)).total_seconds()
            if length > 0 and overlap > 0:
                total += s.size * min(1.0, overlap / length)
        return int(total) or None

    def _speed(self) -> float:
        speed = self.query_one("#rec-speed", Select).value
        return speed if isinstance(speed, float) else 1.0

    def action_play(self) -> None:
        stream_id = self.stream_id
        if stream_id is None:
            self._status("choose a stream first", error=True)
            return
        chosen = self._range()
        if chosen is None:
            return
        self.app.push_screen(PlaybackScreen(stream_id, chosen[0], chosen[1], speed=self._speed()))

    @work(exclusive=True, group="export")
    async def action_export(self) -> None:
        stream_id = self.stream_id
        chosen = self._range()
        if stream_id is None or chosen is None:
            return
        start, end = chosen
        speed = self._speed()
        name = f"{stream_id}-{start:%Y%m%dT%H%M%SZ}-{int((end - start).total_seconds())}s.mp4"
        path = self.console.export_dir / name
        bar = self.query_one("#rec-progress", ProgressBar)
        estimate = self._estimate(start, end)
        bar.update(total=estimate or 1, progress=0)

        def progress(done: int) -> None:
            if estimate is not None:
                bar.update(total=max(estimate, done), progress=done)
            self._status(f"exporting {done / 1e6:.2f} MB")

        self._status(f"exporting to {path}")
        try:
            size = await self.console.backend.export(stream_id, start, end, path, speed=speed, progress=progress)
        except BackendError as exc:
            self._status(f"export failed: {exc}", error=True)
            return
        bar.update(total=size or 1, progress=size or 1)
        self.exported = path
        self._status(f"exported {size / 1e6:.2f} MB to {path}")
