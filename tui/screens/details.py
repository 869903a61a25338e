"""The details of one stream: its statistics (refreshed with every poll) and its latest snapshot.

Strategy: statistics come from the app's poll (`StreamsUpdated` is forwarded here by the app), the source and
track description from one `get_stream`, and the snapshot from a timer every `SNAPSHOT_INTERVAL` seconds in an
exclusive worker, so a slow snapshot never queues behind another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ..backend import BackendError, StreamStatus
from ..widgets.snapshot_view import SnapshotView

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["SNAPSHOT_INTERVAL", "DetailsScreen"]

#: Seconds between snapshot refreshes.
SNAPSHOT_INTERVAL = 2.0


class DetailsScreen(Screen[None]):
    """Statistics and snapshot of `stream_id`; Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "snapshot", "Snapshot now"),
        Binding("r", "recordings", "Recordings"),
    ]
    HELP: ClassVar[str] = (
        "Statistics of one stream (refreshed with every poll) and its latest keyframe, drawn with the terminal's "
        "image protocol (kitty graphics, sixel) where it has one and with coloured half-blocks otherwise."
    )

    def __init__(self, stream_id: str, *, snapshot_interval: float = SNAPSHOT_INTERVAL) -> None:
        super().__init__(id="details")
        self.stream_id = stream_id
        self.snapshot_interval = snapshot_interval
        self.info: dict[str, Any] = {}
        self.row: StreamStatus | None = None

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="details-body"):
            yield Static(id="details-stats")
            yield SnapshotView(id="details-snapshot", graphics=self.console.graphics)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.stream_id
        for row in self.console.latest_rows:
            if row.stream_id == self.stream_id:
                self.update_row(row)
        self.load_info()
        self.action_snapshot()
        if self.snapshot_interval > 0:
            self.set_interval(self.snapshot_interval, self.action_snapshot)

    @work(exclusive=True, group="info")
    async def load_info(self) -> None:
        try:
            self.info = await self.console.backend.get_stream(self.stream_id)
        except BackendError as exc:
            self.notify(f"{self.stream_id}: {exc}", severity="error")
        self._draw()

    def update_row(self, row: StreamStatus) -> None:
        self.row = row
        self._draw()

    def _draw(self) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold")
        table.add_column()
        row = self.row
        if row is not None:
            table.add_row("state", row.state)
            table.add_row("protocol", row.protocol)
            table.add_row("codec", f"{row.codec} {row.resolution}")
            table.add_row("fps", f"{row.fps:.1f}")
            table.add_row("bitrate", f"{row.bitrate / 1000:.0f} kb/s")
            table.add_row("GOP", "-" if row.gop is None else str(row.gop))
            table.add_row("frames", f"{row.frames} ({row.keyframes} key)")
            table.add_row("bytes", f"{row.bytes}")
            table.add_row("losses", str(row.losses))
            table.add_row("jitter", "-" if row.jitter is None else f"{row.jitter * 1000:.1f} ms")
            age = row.last_keyframe_age
            table.add_row("last key", "-" if age is None else f"{age:.1f} s ago")
            table.add_row("viewers", str(row.viewers))
            table.add_row("restarts", str(row.restarts))
            table.add_row("recording", row.recording)
            if row.last_error:
                table.add_row("last error", row.last_error)
        for track in self.info.get("tracks") or ():
            desc = track.get("codec", "?")
            if track.get("width"):
                desc += f" {track['width']}x{track['height']}"
            if track.get("sample_rate"):
                desc += f" {track['sample_rate']} Hz"
            table.add_row(f"track ({track.get('kind', '?')})", desc)
        source = self.info.get("source") or {}
        if source.get("source_url"):
            table.add_row("source", source["source_url"])
        self.query_one("#details-stats", Static).update(table)

    @work(exclusive=True, group="snapshot")
    async def action_snapshot(self) -> None:
        view = self.query_one(SnapshotView)
        try:
            jpeg = await self.console.backend.snapshot(self.stream_id)
        except BackendError as exc:
            view.show_message(f"no snapshot: {exc.message}")
            return
        view.show(jpeg)

    def action_recordings(self) -> None:
        self.console.recordings_stream = self.stream_id
        self.app.switch_mode("recordings")
