"""The segment index: SQLite in WAL mode, one connection used by one thread at a time.

Strategy: plain stdlib `sqlite3`; every method is synchronous and short, and `LocalStorage` calls it through
`trio.to_thread.run_sync` with a one-slot limiter, so the event loop never waits on the database and calls never
overlap (a lock guards direct use as well). Times are UTC microseconds. The `garbage` table makes deletion
crash-safe (Moonfire NVR's order): a segment row is moved to `garbage` in one transaction, then the file is
unlinked and its directory fsynced, then the garbage row is deleted; a crash at any step leaves either a row
with its file or a garbage entry that start-up finishes, never a row pointing at nothing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["SegmentIndex"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    media_us INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    keyframes TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    wall_delta_us INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_stream_start ON segments (stream, start_us);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_stream_start ON gaps (stream, start_us);
CREATE TABLE IF NOT EXISTS keyframes (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    path TEXT NOT NULL,
    au_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS keyframes_stream_time ON keyframes (stream, time_us);
CREATE TABLE IF NOT EXISTS garbage (
    path TEXT PRIMARY KEY,
    stream TEXT NOT NULL
);
"""

SEGMENT_COLUMNS = "id, stream, path, start_us, end_us, media_us, size, sha256, keyframes, run_id, frames"


class SegmentIndex:
    """The SQLite index at `path` (created when missing). Paths stored are relative to the storage root."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed row survives power loss, since a row is only written after its file is durable.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert_segment(self, row: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO segments (stream, path, start_us, end_us, media_us, size, sha256, keyframes, run_id,"
                " frames, wall_delta_us) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row["stream"],
                    row["path"],
                    row["start_us"],
                    row["end_us"],
                    row["media_us"],
                    row["size"],
                    row["sha256"],
                    json.dumps(row.get("keyframes", [])),
                    row.get("run_id", 0),
                    row.get("frames", 0),
                    row.get("wall_delta_us", 0),
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def insert_gap(self, stream: str, start_us: int, end_us: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO gaps (stream, start_us, end_us, reason) VALUES (?,?,?,?)",
                (stream, start_us, end_us, reason),
            )

    def insert_keyframe(self, stream: str, time_us: int, path: str, au_path: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO keyframes (stream, time_us, path, au_path) VALUES (?,?,?,?)",
                (stream, time_us, path, au_path),
            )

    def segments(self, stream: str | None, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        """Rows overlapping [start_us, end_us), oldest first."""
        with self._lock:
            if stream is None:
                return self._db.execute(
                    f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE end_us > ? AND start_us < ? ORDER BY start_us",
                    (start_us, end_us),
                ).fetchall()
            return self._db.execute(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE stream = ? AND end_us > ? AND start_us < ?"
                " ORDER BY start_us",
                (stream, start_us, end_us),
            ).fetchall()

    def all_segments(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY start_us").fetchall()

    def gaps(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT stream, start_us, end_us, reason FROM gaps WHERE stream = ? AND end_us > ? AND start_us < ?"
                " ORDER BY start_us",
                (stream, start_us, end_us),
            ).fetchall()

    def keyframes(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT stream, time_us, path, au_path FROM keyframes WHERE stream = ? AND time_us >= ?"
                " AND time_us < ? ORDER BY time_us",
                (stream, start_us, end_us),
            ).fetchall()

    def sizes(self) -> list[tuple[str, int, int, int]]:
        """(stream, id, end_us, size) of every segment, oldest first: what retention needs."""
        with self._lock:
            return self._db.execute("SELECT stream, id, end_us, size FROM segments ORDER BY start_us").fetchall()

    def to_garbage(self, ids: list[int]) -> list[tuple[Any, ...]]:
        """Move segment rows to `garbage` in one transaction; returns the moved rows (full columns)."""
        if not ids:
            return []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                marks = ",".join("?" * len(ids))
                rows = db.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id IN ({marks})", ids).fetchall()
                db.executemany(
                    "INSERT OR REPLACE INTO garbage (path, stream) VALUES (?, ?)", [(r[2], r[1]) for r in rows]
                )
                db.execute(f"DELETE FROM segments WHERE id IN ({marks})", ids)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    db.execute("ROLLBACK")
                raise
            return rows

    def garbage(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute("SELECT path, stream FROM garbage").fetchall()

    def drop_garbage(self, paths: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM garbage WHERE path = ?", [(p,) for p in paths])

    def delete_segment_rows(self, ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in ids])

    def delete_gaps_before(self, stream: str | None, end_us: int) -> None:
        with self._lock:
            if stream is None:
                self._db.execute("DELETE FROM gaps WHERE end_us <= ?", (end_us,))
            else:
                self._db.execute("DELETE FROM gaps WHERE stream = ? AND end_us <= ?", (stream, end_us))

    def indexed_paths(self) -> dict[str, tuple[int, int]]:
        """{relative path: (id, size)}."""
        with self._lock:
            return {p: (i, s) for i, p, s in self._db.execute("SELECT id, path, size FROM segments").fetchall()}
