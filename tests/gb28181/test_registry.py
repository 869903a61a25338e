"""The device registry's persistence: writes leave the Trio loop (a worker thread), in order, coalesced per device,
and survive reopening; older database files gain the new columns."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import trio

from fluxkit.gb28181 import ChannelRecord, DeviceRecord, DeviceRegistry

A = "34020000001320000001"
B = "34020000001320000002"


def device(device_id: str, **changes: object) -> DeviceRecord:
    return DeviceRecord(device_id=device_id, online=True, address=("127.0.0.1", 5060), **changes)  # type: ignore[arg-type]


@pytest.mark.trio
async def test_writes_run_in_a_worker_thread_in_order_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    registry = DeviceRegistry(path)
    loop_thread = threading.get_ident()
    writer_threads: list[int] = []
    release = threading.Event()
    loop_ran_during_write: list[bool] = []
    original = registry._write

    def slow_write(*args: object) -> None:
        writer_threads.append(threading.get_ident())
        # Blocks until the event loop runs a task: impossible if this ran on the loop's thread.
        loop_ran_during_write.append(release.wait(timeout=30))
        original(*args)  # type: ignore[arg-type]

    registry._write = slow_write  # type: ignore[method-assign]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(registry.run_writer)
            registry.put(device(A, name="v1"))
            registry.put(device(B))
            await trio.lowlevel.checkpoint()  # the writer takes the first batch and blocks in its thread
            while not writer_threads:  # noqa: ASYNC110 - the worker thread has no trio event
                await trio.sleep(0.01)
            # Meanwhile the loop keeps serving, and later changes queue up behind the batch in flight.
            registry.put(device(A, name="v2"))
            registry.set_channels(A, (ChannelRecord(channel_id="34020000001310000001", name="东门"),))
            registry.remove(B)
            registry.put(device(A, name="v3"), persist=False)  # memory only
            assert registry.get(A).name == "v3"  # type: ignore[union-attr]
            assert registry.pending == 2
            release.set()
            await registry.flush()
            assert registry.pending == 0
            nursery.cancel_scope.cancel()
    registry.close()
    assert loop_ran_during_write
    assert all(loop_ran_during_write)
    assert writer_threads
    assert loop_thread not in writer_threads
    reopened = DeviceRegistry(path)
    assert [d.device_id for d in reopened.all()] == [A]
    record = reopened.get(A)
    assert record is not None
    assert record.name == "v2"  # the last persisted state, not the memory-only one
    assert [(c.channel_id, c.name) for c in record.channels] == [("34020000001310000001", "东门")]
    reopened.close()


def test_close_writes_what_is_pending_and_contact_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    registry = DeviceRegistry(path)
    registry.put(device(A, transport="TCP", contact=("127.0.0.1", 15060)))
    registry.close()  # no writer ran: close writes
    reopened = DeviceRegistry(path)
    assert reopened.get(A) == device(A, transport="TCP", contact=("127.0.0.1", 15060))
    assert reopened.get(A).to_json()["contact"] == "127.0.0.1:15060"  # type: ignore[union-attr]
    reopened.close()


def test_an_older_file_gains_the_contact_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE devices (device_id TEXT PRIMARY KEY, online INTEGER NOT NULL, host TEXT NOT NULL,"
        " port INTEGER NOT NULL, transport TEXT NOT NULL, charset TEXT, expires INTEGER NOT NULL,"
        " registered_at REAL NOT NULL, last_keepalive REAL, name TEXT, manufacturer TEXT, model TEXT, firmware TEXT);"
        f"INSERT INTO devices VALUES ('{A}', 1, '127.0.0.1', 5060, 'UDP', NULL, 3600, 0, NULL, 'old',"
        " NULL, NULL, NULL);"
    )
    db.commit()
    db.close()
    registry = DeviceRegistry(path)
    record = registry.get(A)
    assert record is not None
    assert (record.name, record.contact) == ("old", None)
    registry.put(device(A, contact=("127.0.0.1", 5070)))
    registry.close()
    reopened = DeviceRegistry(path)
    assert reopened.get(A).contact == ("127.0.0.1", 5070)  # type: ignore[union-attr]
    reopened.close()
