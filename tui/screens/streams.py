"""The streams screen: one DataTable row per stream, refreshed in place.

Strategy: rows are keyed by stream id and each update compares the new cell texts with the last ones, calling
`update_cell` only for the cells that changed (with `update_width=False`), so a refresh of 500 streams touches a
few hundred cells and never rebuilds the table or moves the cursor. Rows are added and removed as streams come
and go.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from ..backend import StreamStatus
from ..widgets.sparkline import History

__all__ = ["COLUMNS", "StreamsScreen", "cells"]

COLUMNS = (
    ("id", "id", 12),
    ("protocol", "proto", 5),
    ("codec", "codec", 5),
    ("resolution", "res", 9),
    ("fps", "fps", 5),
    ("bitrate", "bitrate", 16),
    ("gop", "GOP", 4),
    ("losses", "loss", 5),
    ("viewers", "view", 4),
    ("recording", "rec", 7),
    ("health", "health", 24),
)

_STATE_STYLE = {"live": "green", "waiting": "yellow", "reconnecting": "red", "failed": "bold red"}


def _rate(bits: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bits >= scale:
            return f"{bits / scale:5.1f}{unit}"
    return f"{bits:5.0f} "


def cells(row: StreamStatus, spark: str) -> tuple[str | Text, ...]:
    """The cell values of one row, in `COLUMNS` order."""
    health = row.state
    if row.restarts:
        health += f" ({row.restarts} restarts)"
    if row.last_error:
        health += f" {row.last_error}"
    return (
        row.stream_id,
        row.protocol,
        row.codec,
        row.resolution,
        f"{row.fps:5.1f}",
        f"{_rate(row.bitrate)} {spark}",
        "-" if row.gop is None else str(row.gop),
        str(row.losses),
        str(row.viewers),
        row.recording,
        Text(health, style=_STATE_STYLE.get(row.state, "")),
    )


class StreamsScreen(Screen[None]):
    """The live table of streams; Enter opens the details of the selected stream."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "details", "Details"),
        Binding("r", "recordings", "Recordings"),
    ]
    HELP: ClassVar[str] = (
        "One row per stream, updated in place; the bitrate carries a sparkline. Click a row to move to it and "
        "click it again (or press its key) for its details; Recordings opens the selected stream's recordings."
    )

    def __init__(self) -> None:
        super().__init__(id="streams")
        self._last: dict[str, tuple[str | Text, ...]] = {}
        self._history: dict[str, History] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str | Text] = DataTable(id="streams-table", cursor_type="row", zebra_stripes=True)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        rows = getattr(self.app, "latest_rows", None)
        if rows:
            self.apply(rows)

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#streams-table", DataTable)

    @property
    def selected(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return None if key.value is None else str(key.value)

    def apply(self, rows: list[StreamStatus]) -> int:
        """Bring the table up to date; returns how many cells changed."""
        table = self.table
        changed = 0
        seen = set()
        for row in rows:
            sid = row.stream_id
            seen.add(sid)
            history = self._history.get(sid)
            if history is None:
                history = self._history[sid] = History()
            values = cells(row, history.push(row.bitrate))
            old = self._last.get(sid)
            if old is None:
                table.add_row(*values, key=sid)
                changed += len(values)
            else:
                for (key, _, _), new, before in zip(COLUMNS, values, old, strict=True):
                    if new != before:
                        table.update_cell(sid, key, new)
                        changed += 1
            self._last[sid] = values
        for sid in [s for s in self._last if s not in seen]:
            table.remove_row(sid)
            del self._last[sid]
            self._history.pop(sid, None)
        return changed

    def action_details(self) -> None:
        sid = self.selected
        if sid is not None:
            from .details import DetailsScreen

            self.app.push_screen(DetailsScreen(sid))

    def action_recordings(self) -> None:
        sid = self.selected
        if sid is not None:
            self.app.recordings_stream = sid  # type: ignore[attr-defined]
        self.app.switch_mode("recordings")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_details()
