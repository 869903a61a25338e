"""Storage: recorded bytes and segments per stream, recording lag, disk use, retention.

Strategy: everything comes from the REST API's Prometheus page (`GET /metrics`, parsed by
`fluxkit_tui.backend.storage_report`), the only place the API reports storage, read every `refresh_interval`
seconds by an exclusive worker (a slow scrape is replaced, never queued). The table is updated in place, keyed by
stream id. The API has no retention endpoint, so retention is shown as "n/a" with the reason rather than guessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from fluxkit_tui.backend import BackendError, StorageReport, StreamStorage
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

if TYPE_CHECKING:
    from fluxkit_tui.app import FluxkitConsole

__all__ = ["LAG_STALLED", "STORAGE_REFRESH", "StorageScreen", "human_bytes"]

#: Seconds between `/metrics` reads.
STORAGE_REFRESH = 3.0
#: Recording lag (seconds) from which a stream is shown as stalled.
LAG_STALLED = 30.0

_RETENTION_NA = "retention: n/a (the REST API does not expose the retention settings)"
_COLUMNS = (("stream", "stream"), ("bytes", "recorded"), ("segments", "segments"), ("lag", "lag"))


def human_bytes(count: int | None) -> str:
    """`1536` -> `1.5 KiB`; None -> `n/a`."""
    if count is None:
        return "n/a"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _lag_text(lag: float | None) -> Text:
    if lag is None:
        return Text("-", style="dim")
    return Text(f"{lag:.1f}s", style="red" if lag >= LAG_STALLED else "green")


class StorageScreen(Screen[None]):
    """Recording storage from `/metrics`, refreshed every few seconds (`u` refreshes now)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("u", "refresh_storage", "Refresh")]

    def __init__(self, *, refresh_interval: float = STORAGE_REFRESH) -> None:
        super().__init__(id="storage")
        self.refresh_interval = refresh_interval
        self.report: StorageReport | None = None
        self.reads = 0
        self.error: str | None = None

    @property
    def console(self) -> FluxkitConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading /metrics…", id="storage-disk")
        yield ProgressBar(total=100, show_eta=False, id="storage-disk-bar")
        yield Static(_RETENTION_NA, id="storage-retention")
        table: DataTable[str | Text] = DataTable(id="storage-table", cursor_type="row", zebra_stripes=True)
        for key, label in _COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.action_refresh_storage()
        if self.refresh_interval > 0:
            self.set_interval(self.refresh_interval, self.action_refresh_storage)

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#storage-table", DataTable)

    @work(exclusive=True, group="storage")
    async def action_refresh_storage(self) -> None:
        try:
            report = await self.console.backend.storage()
        except BackendError as exc:
            self.error = str(exc)
            self.query_one("#storage-disk", Static).update(Text(f"storage: {exc}", style="red"))
            return
        self.error = None
        self.reads += 1
        self.apply(report)

    def apply(self, report: StorageReport) -> None:
        """Show `report`: the disk line and bar, and one table row per stream (updated in place)."""
        self.report = report
        used = None
        if report.disk_free is not None and report.disk_total:
            used = report.disk_total - report.disk_free
        disk = Text()
        disk.append(f"recorded {human_bytes(report.recorded_bytes)} in {len(report.streams)} streams · ")
        if used is None or report.disk_total is None:
            disk.append("disk n/a (no storage on this fluxkit)", style="yellow")
        else:
            disk.append(f"disk free {human_bytes(report.disk_free)} of {human_bytes(report.disk_total)}")
        self.query_one("#storage-disk", Static).update(disk)
        bar = self.query_one("#storage-disk-bar", ProgressBar)
        if used is not None and report.disk_total:
            bar.update(total=report.disk_total, progress=used)
        table = self.table
        wanted = {s.stream_id: s for s in report.streams}
        for key in [k for k in table.rows if k.value not in wanted]:
            table.remove_row(key)
        for stream in report.streams:
            cells = self._cells(stream)
            if stream.stream_id in table.rows:
                for (column, _label), cell in zip(_COLUMNS, cells, strict=True):
                    table.update_cell(stream.stream_id, column, cell)
            else:
                table.add_row(*cells, key=stream.stream_id)

    @staticmethod
    def _cells(stream: StreamStorage) -> tuple[str | Text, ...]:
        return (
            stream.stream_id,
            Text(human_bytes(stream.bytes), justify="right"),
            Text(str(stream.segments), justify="right"),
            _lag_text(stream.lag),
        )
