"""Storage: the tiers (or replicas) with their health, usage and retention, migration progress, pending repairs,
and per stream the recorded bytes, segments and recording lag, with the disk use.

Strategy: `Backend.storage()` merges the storage's own report (`GET /api/video/storage`: policy, backends,
migration, repairs) with the per-stream figures of the Prometheus page (`GET /metrics`); it is read every
`refresh_interval` seconds by an exclusive worker (a slow read is replaced, never queued). Both tables are updated
in place, keyed by backend name and stream id. A server without the status endpoint (or with storage disabled)
still gets the `/metrics` figures, and the tier table says why it is empty rather than guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from ..backend import BackendError, StorageReport, StorageRetention, StorageTier, StreamStorage

if TYPE_CHECKING:
    from ..app import FluxkitConsole

__all__ = ["LAG_STALLED", "STORAGE_REFRESH", "StorageScreen", "human_bytes", "retention_text"]

#: Seconds between `/metrics` reads.
STORAGE_REFRESH = 3.0
#: Recording lag (seconds) from which a stream is shown as stalled.
LAG_STALLED = 30.0

_COLUMNS = (("stream", "stream"), ("bytes", "recorded"), ("segments", "segments"), ("lag", "lag"))
_TIER_COLUMNS = (
    ("name", "backend"),
    ("type", "type"),
    ("role", "role"),
    ("health", "health"),
    ("used", "used"),
    ("segments", "segs"),
    ("space", "free / total"),
)


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


def retention_text(retention: StorageRetention | None) -> str:
    """`30 d · 100.0 GiB · keep 5.0 GiB free`; `-` without limits."""
    if retention is None:
        return "-"
    parts = []
    if retention.max_age_days is not None:
        parts.append(f"{retention.max_age_days:g} d")
    if retention.max_bytes is not None:
        parts.append(human_bytes(retention.max_bytes))
    if retention.min_free_bytes is not None:
        parts.append(f"keep {human_bytes(retention.min_free_bytes)} free")
    return " · ".join(parts) or "-"


def _tier_cells(tier: StorageTier) -> tuple[str | Text, ...]:
    space = "n/a"
    if tier.total_bytes is not None:
        space = f"{human_bytes(tier.free_bytes)} / {human_bytes(tier.total_bytes)}"
    elif tier.free_bytes is not None:
        space = f"{human_bytes(tier.free_bytes)} free"
    return (
        tier.name,
        tier.type,
        tier.role,
        Text("ok", style="green") if tier.healthy else Text("DOWN", style="bold red"),
        Text(human_bytes(tier.used_bytes), justify="right"),
        Text(str(tier.segments), justify="right"),
        space,
    )


def _lag_text(lag: float | None) -> Text:
    if lag is None:
        return Text("-", style="dim")
    return Text(f"{lag:.1f}s", style="red" if lag >= LAG_STALLED else "green")


class StorageScreen(Screen[None]):
    """The storage's tiers and the recorded streams, refreshed every few seconds."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("u", "refresh_storage", "Refresh")]
    HELP: ClassVar[str] = (
        "The storage policy and each backend (tier or replica) with its health, usage, free space and retention, "
        "the migration between tiers in progress and the repairs pending (`GET /api/video/storage`); below, per "
        "stream, the recorded bytes, segments and recording lag from `/metrics`. Refreshed every few seconds."
    )

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
        yield Static("reading the storage status…", id="storage-policy")
        yield ProgressBar(total=1, show_eta=False, id="storage-migration")
        tiers: DataTable[str | Text] = DataTable(id="storage-tiers", cursor_type="row", zebra_stripes=True)
        for key, label in _TIER_COLUMNS:
            tiers.add_column(label, key=key)
        yield tiers
        yield Static("reading /metrics…", id="storage-disk")
        yield ProgressBar(total=100, show_eta=False, id="storage-disk-bar")
        yield Static("", id="storage-retention")
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
        self._apply_status(report)
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

    @property
    def tiers(self) -> DataTable[str | Text]:
        return self.query_one("#storage-tiers", DataTable)

    def _apply_status(self, report: StorageReport) -> None:
        """The policy line, the migration bar, the tier table and the retention line."""
        policy = Text()
        retention = self.query_one("#storage-retention", Static)
        migration_bar = self.query_one("#storage-migration", ProgressBar)
        if report.policy is None:
            policy.append("storage status n/a", style="yellow")
            if report.status_error:
                policy.append(f" ({report.status_error})", style="dim")
            retention.update(Text("retention: n/a (not reported by this server)", style="dim"))
            migration_bar.display = False
        else:
            down = sum(1 for t in report.tiers if not t.healthy)
            policy.append(f"policy {report.policy} · {len(report.tiers)} backends")
            if down:
                policy.append(f" ({down} down)", style="bold red")
            policy.append(" · ")
            policy.append(f"{report.pending_repairs} repairs pending", style="yellow" if report.pending_repairs else "")
            migration = report.migration
            if migration is None or migration.total <= 0:
                policy.append(" · no migration")
                migration_bar.display = False
            else:
                state = "migrating" if migration.running else "migration paused"
                policy.append(f" · {state} {migration.done:g}/{migration.total:g}")
                migration_bar.display = True
                migration_bar.update(total=migration.total, progress=min(migration.done, migration.total))
            limited = [t for t in report.tiers if retention_text(t.retention) != "-"]
            retention.update(
                "retention: " + " · ".join(f"{t.name} {retention_text(t.retention)}" for t in limited)
                if limited
                else "retention: no limits"
            )
        self.query_one("#storage-policy", Static).update(policy)
        tiers = self.tiers
        tiers.display = report.policy is not None
        wanted = {t.name: t for t in report.tiers}
        for key in [k for k in tiers.rows if k.value not in wanted]:
            tiers.remove_row(key)
        for tier in report.tiers:
            cells = _tier_cells(tier)
            if tier.name in tiers.rows:
                for (column, _label), cell in zip(_TIER_COLUMNS, cells, strict=True):
                    tiers.update_cell(tier.name, column, cell)
            else:
                tiers.add_row(*cells, key=tier.name)

    @staticmethod
    def _cells(stream: StreamStorage) -> tuple[str | Text, ...]:
        return (
            stream.stream_id,
            Text(human_bytes(stream.bytes), justify="right"),
            Text(str(stream.segments), justify="right"),
            _lag_text(stream.lag),
        )
