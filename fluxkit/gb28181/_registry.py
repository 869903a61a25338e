"""The device registry of the GB28181 platform: devices and their channels, persisted in SQLite.

Strategy: the registry is the platform's memory of who registered, from where, over which transport and with
which charset, and of the catalog each device reported. It lives in memory (dicts of attrs records): every read
and every change is served from there at once, on the event loop. Persistence is behind it: a change that
matters across a restart (registration, unregistration, online state, address, catalog) marks the device dirty,
and one writer task (`run_writer`, started by the platform) writes the dirty devices in batches, one
transaction per batch, in a worker thread (`trio.to_thread`), so that SQLite and the disk never block the Trio
loop. Dirty state is coalesced per device (the latest row, the latest catalog, or a removal), so the queue is
bounded by the number of devices however fast they change, and writes stay in order: a batch holds the state of
each device at the moment it was taken, and the next batch starts only when the previous one is on disk.
Keepalive times alone stay in memory and reach the disk with the device's next real change. `flush` (async)
and `close` write what is still pending.

Across a restart devices come back with their last known state: the platform gives each one that was online a
full keepalive window to prove it still is (no false "offline" right after a platform restart, wvp#1868).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import trio

__all__ = ["ChannelRecord", "DeviceRecord", "DeviceRegistry"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    transport TEXT NOT NULL,
    charset TEXT,
    expires INTEGER NOT NULL,
    registered_at REAL NOT NULL,
    last_keepalive REAL,
    name TEXT,
    manufacturer TEXT,
    model TEXT,
    firmware TEXT
);
CREATE TABLE IF NOT EXISTS channels (
    device_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    name TEXT,
    status TEXT,
    manufacturer TEXT,
    model TEXT,
    parent_id TEXT,
    ptz_type INTEGER,
    PRIMARY KEY (device_id, channel_id)
);
"""
# Columns added after the first release, with their types: added to older files when opened.
_ADDED_DEVICE_COLUMNS = (("contact_host", "TEXT"), ("contact_port", "INTEGER"))
_REMOVED = None


@attrs.frozen(kw_only=True, slots=True)
class ChannelRecord:
    """One channel of a device, from its Catalog.

    Attributes:
        channel_id: the channel's 20-digit ID (what an INVITE or a PTZ command targets).
        name: the name decoded to Unicode (GB18030 unless the device says UTF-8).
        status: "ON" / "OFF" as the device reported it (None when it did not say).
    """

    channel_id: str
    name: str | None = None
    status: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    parent_id: str | None = None
    ptz_type: int | None = None

    def to_json(self) -> dict[str, object]:
        """The REST representation."""
        return {
            "channel_id": self.channel_id,
            "name": self.name,
            "status": self.status,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "parent_id": self.parent_id,
            "ptz_type": self.ptz_type,
        }


@attrs.frozen(kw_only=True, slots=True)
class DeviceRecord:
    """A device as the registry knows it.

    Attributes:
        device_id: its 20-digit SIP ID.
        online: registered and keeping alive.
        address: (host, port) the device's last request came from (replies and requests go there: NAT-aware).
        transport: "UDP" or "TCP", the SIP transport it registered over.
        contact: (host, port) of the Contact of its last REGISTER (None when it had none): where the platform
            opens a new TCP connection when the device's own has gone (RFC 3261 §18.1.1).
        charset: the charset its MANSCDP bodies used (None until one arrived).
        expires: the registration's lifetime in seconds.
        registered_at: wall-clock time (Unix seconds) of the last successful REGISTER.
        last_keepalive: wall-clock time of the last Keepalive (None before the first).
        name, manufacturer, model, firmware: from DeviceInfo, when queried.
        channels: the catalog, in the device's order.
    """

    device_id: str
    online: bool
    address: tuple[str, int]
    transport: str = "UDP"
    contact: tuple[str, int] | None = None
    charset: str | None = None
    expires: int = 3600
    registered_at: float = 0.0
    last_keepalive: float | None = None
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    channels: tuple[ChannelRecord, ...] = ()

    def channel(self, channel_id: str) -> ChannelRecord | None:
        """The channel with this ID, or None."""
        for channel in self.channels:
            if channel.channel_id == channel_id:
                return channel
        return None

    def to_json(self) -> dict[str, object]:
        """The REST representation (`GET /api/video/gb28181/devices`)."""
        return {
            "device_id": self.device_id,
            "online": self.online,
            "address": f"{self.address[0]}:{self.address[1]}",
            "transport": self.transport,
            "contact": None if self.contact is None else f"{self.contact[0]}:{self.contact[1]}",
            "charset": self.charset,
            "name": self.name,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "firmware": self.firmware,
            "registered_at": self.registered_at,
            "last_keepalive": self.last_keepalive,
            "channels": [c.to_json() for c in self.channels],
        }


class DeviceRegistry:
    """Devices and channels, in memory and in an SQLite file (`":memory:"` for none).

    Args:
        path: the database file; created with its tables when missing (older files gain the new columns).

    Changes are in memory at once and on disk once the writer (`run_writer`) or `flush` / `close` wrote them.
    """

    def __init__(self, path: str | Path) -> None:
        # Used by one thread at a time: the event loop when opening and closing, the writer's worker in between.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(devices)")}
        for name, kind in _ADDED_DEVICE_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE devices ADD COLUMN {name} {kind}")
        self._devices: dict[str, DeviceRecord] = {}
        # Pending writes, coalesced per device: its row (None: remove it) and its catalog.
        self._dirty_rows: dict[str, DeviceRecord | None] = {}
        self._dirty_channels: dict[str, tuple[ChannelRecord, ...]] = {}
        self._wake = trio.Event()
        self._write_lock = trio.Lock()
        self.batches_written = 0
        for row in self._db.execute(
            "SELECT device_id, online, host, port, transport, charset, expires, registered_at, last_keepalive,"
            " name, manufacturer, model, firmware, contact_host, contact_port FROM devices ORDER BY rowid"
        ):
            device_id = row[0]
            self._devices[device_id] = DeviceRecord(
                device_id=device_id,
                online=bool(row[1]),
                address=(row[2], int(row[3])),
                transport=row[4],
                charset=row[5],
                expires=int(row[6]),
                registered_at=float(row[7]),
                last_keepalive=row[8],
                name=row[9],
                manufacturer=row[10],
                model=row[11],
                firmware=row[12],
                contact=None if row[13] is None or row[14] is None else (row[13], int(row[14])),
            )
        channels: dict[str, list[ChannelRecord]] = {}
        for row in self._db.execute(
            "SELECT device_id, channel_id, name, status, manufacturer, model, parent_id, ptz_type FROM channels"
            " ORDER BY rowid"
        ):
            channels.setdefault(row[0], []).append(
                ChannelRecord(
                    channel_id=row[1],
                    name=row[2],
                    status=row[3],
                    manufacturer=row[4],
                    model=row[5],
                    parent_id=row[6],
                    ptz_type=row[7],
                )
            )
        for device_id, items in channels.items():
            if device_id in self._devices:
                self._devices[device_id] = attrs.evolve(self._devices[device_id], channels=tuple(items))

    # ---- reads and changes (in memory, immediate) ----------------------------------------------------------------

    def get(self, device_id: str) -> DeviceRecord | None:
        """The device, or None."""
        return self._devices.get(device_id)

    def all(self) -> list[DeviceRecord]:
        """Every device, in first-registration order."""
        return list(self._devices.values())

    def put(self, device: DeviceRecord, *, persist: bool = True) -> None:
        """Insert or replace a device's own fields (not its channels; see `set_channels`).

        `persist=False` keeps the change in memory only (it reaches the disk with the next persisted one).
        """
        self._devices[device.device_id] = device
        if persist:
            self._dirty_rows[device.device_id] = device
            self._wake.set()

    def set_channels(self, device_id: str, channels: tuple[ChannelRecord, ...]) -> None:
        """Replace a device's catalog."""
        device = self._devices.get(device_id)
        if device is None:
            return
        self._devices[device_id] = attrs.evolve(device, channels=channels)
        self._dirty_channels[device_id] = channels
        self._wake.set()

    def remove(self, device_id: str) -> None:
        """Forget a device and its channels."""
        self._devices.pop(device_id, None)
        self._dirty_rows[device_id] = _REMOVED
        self._dirty_channels.pop(device_id, None)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Devices with changes not yet on disk."""
        return len(self._dirty_rows.keys() | self._dirty_channels.keys())

    # ---- persistence ---------------------------------------------------------------------------------------------

    async def run_writer(self) -> None:
        """Write pending changes in batches, in a worker thread, until cancelled (then `flush` the rest)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> None:
        """Write everything pending now (in a worker thread; batches never overlap)."""
        async with self._write_lock:  # a batch in flight goes first: batches are written in the order taken
            batch = self._take()
            if batch is not None:
                # Shielded: a batch once taken is always written whole (sqlite3 is not interruptible anyway).
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(self._write, *batch)

    def close(self) -> None:
        """Write what is pending (synchronously) and close the database."""
        batch = self._take()
        if batch is not None:
            self._write(*batch)
        self._db.close()

    def _take(self) -> tuple[dict[str, DeviceRecord | None], dict[str, tuple[ChannelRecord, ...]]] | None:
        if not self._dirty_rows and not self._dirty_channels:
            return None
        rows, channels = self._dirty_rows, self._dirty_channels
        self._dirty_rows, self._dirty_channels = {}, {}
        return rows, channels

    def _write(self, rows: dict[str, DeviceRecord | None], channels: dict[str, tuple[ChannelRecord, ...]]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for device_id, device in rows.items():
                if device is None:
                    db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
                    db.execute("DELETE FROM channels WHERE device_id = ?", (device_id,))
                else:
                    db.execute(_UPSERT_DEVICE, _device_row(device))
            for device_id, items in channels.items():
                db.execute("DELETE FROM channels WHERE device_id = ?", (device_id,))
                db.executemany(
                    "INSERT OR REPLACE INTO channels (device_id, channel_id, name, status, manufacturer, model,"
                    " parent_id, ptz_type) VALUES (?,?,?,?,?,?,?,?)",
                    [
                        (device_id, c.channel_id, c.name, c.status, c.manufacturer, c.model, c.parent_id, c.ptz_type)
                        for c in items
                    ],
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self.batches_written += 1


_UPSERT_DEVICE = (
    "INSERT INTO devices (device_id, online, host, port, transport, charset, expires, registered_at,"
    " last_keepalive, name, manufacturer, model, firmware, contact_host, contact_port)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(device_id) DO UPDATE SET online=excluded.online, host=excluded.host,"
    " port=excluded.port, transport=excluded.transport, charset=excluded.charset,"
    " expires=excluded.expires, registered_at=excluded.registered_at,"
    " last_keepalive=excluded.last_keepalive, name=excluded.name, manufacturer=excluded.manufacturer,"
    " model=excluded.model, firmware=excluded.firmware, contact_host=excluded.contact_host,"
    " contact_port=excluded.contact_port"
)


def _device_row(device: DeviceRecord) -> tuple[object, ...]:
    contact = device.contact
    return (
        device.device_id,
        int(device.online),
        device.address[0],
        device.address[1],
        device.transport,
        device.charset,
        device.expires,
        device.registered_at,
        device.last_keepalive,
        device.name,
        device.manufacturer,
        device.model,
        device.firmware,
        None if contact is None else contact[0],
        None if contact is None else contact[1],
    )
