"""The tier index: one SQLite file that knows every copy of every segment, and what a move is doing.

Strategy: like the recording index (`fluxkit.storage._index`), plain `sqlite3` in WAL mode with
`synchronous=FULL`, short synchronous methods called through `trio.to_thread` behind a one-slot limiter. A
segment is identified by its key (`<stream>/<YYYY-MM-DD>/<HH>/<name>.mp4`, the local layout's relative path,
also the object key under an S3 prefix); `copies` holds one row per backend that has it.

Ordering rules (each step committed before the next starts, so a crash anywhere is finished at start-up):

* save: the data is durable on the backend(s) first, then the segment row and its copy rows go in one
  transaction.
* move (tier migration, repair): copy, verify size and checksum on the destination, insert the destination's
  copy row, and only then mark the source copy `deleting`, delete it, drop its row. `deleting` rows left by a
  crash are finished by `finish_deletions`; a copy made but not yet recorded is simply made again (same key,
  idempotent overwrite).
* delete (retention): the segment row is marked `garbage` and its copies `deleting` in one transaction, then
  each copy is deleted, then the rows go.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["TierIndex"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    start_us INTEGER NOT NULL,
    end_us INTEGER NOT NULL,
    media_us INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    keyframes TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    wall_delta_us INTEGER NOT NULL DEFAULT 0,
    garbage INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_stream_start ON segments (stream, start_us);
CREATE TABLE IF NOT EXISTS copies (
    segment_id INTEGER NOT NULL,
    backend TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (segment_id, backend)
);
CREATE INDEX IF NOT EXISTS copies_backend ON copies (backend, state);
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
"""

COLUMNS = "id, stream, key, start_us, end_us, media_us, size, sha256, keyframes, run_id, frames"
#: Copy states: `ok` (present and verified), `deleting` (being removed; finished at start-up).
OK = "ok"
DELETING = "deleting"


class TierIndex:
    """The SQLite tier index at `path` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return out

    # -- segments ----------------------------------------------------------------------------------------------

    def insert_segment(self, row: dict[str, Any], backends: list[str]) -> int:
        """Insert (or, for a key already known, update) a segment row and its `ok` copies in one transaction."""

        def _do(db: sqlite3.Connection) -> int:
            found = db.execute("SELECT id FROM segments WHERE key = ?", (row["key"],)).fetchone()
            values = (
                row["stream"], row["start_us"], row["end_us"], row["media_us"], row["size"], row["sha256"],
                json.dumps(row.get("keyframes", [])), row.get("run_id", 0), row.get("frames", 0),
                row.get("wall_delta_us", 0),
            )  # fmt: skip
            if found is None:
                cur = db.execute(
                    "INSERT INTO segments (stream, start_us, end_us, media_us, size, sha256, keyframes, run_id,"
                    " frames, wall_delta_us, key) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (*values, row["key"]),
                )
                assert cur.lastrowid is not None
                seg_id = int(cur.lastrowid)
            else:
                seg_id = int(found[0])
                db.execute(
                    "UPDATE segments SET stream=?, start_us=?, end_us=?, media_us=?, size=?, sha256=?, keyframes=?,"
                    " run_id=?, frames=?, wall_delta_us=?, garbage=0 WHERE id=?",
                    (*values, seg_id),
                )
            db.executemany(
                "INSERT OR REPLACE INTO copies (segment_id, backend, state) VALUES (?, ?, ?)",
                [(seg_id, b, OK) for b in backends],
            )
            return seg_id

        result: int = self._tx(_do)
        return result

    def segments(self, stream: str | None, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        """Live rows overlapping [start_us, end_us), oldest first."""
        with self._lock:
            if stream is None:
                return self._db.execute(
                    f"SELECT {COLUMNS} FROM segments WHERE garbage = 0 AND end_us > ? AND start_us < ?"
                    " ORDER BY start_us",
                    (start_us, end_us),
                ).fetchall()
            return self._db.execute(
                f"SELECT {COLUMNS} FROM segments WHERE garbage = 0 AND stream = ? AND end_us > ? AND start_us < ?"
                " ORDER BY start_us",
                (stream, start_us, end_us),
            ).fetchall()

    def all_segments(self) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(f"SELECT {COLUMNS} FROM segments WHERE garbage = 0 ORDER BY start_us").fetchall()

    def segment_by_key(self, key: str) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(
                f"SELECT {COLUMNS} FROM segments WHERE key = ?", (key,)
            ).fetchone()
            return row

    def segment_by_id(self, seg_id: int) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(
                f"SELECT {COLUMNS} FROM segments WHERE id = ?", (seg_id,)
            ).fetchone()
            return row

    # -- copies ------------------------------------------------------------------------------------------------

    def copies(self, seg_id: int) -> list[str]:
        """Backends holding a verified copy of the segment."""
        with self._lock:
            return [
                b
                for (b,) in self._db.execute(
                    "SELECT backend FROM copies WHERE segment_id = ? AND state = ? ORDER BY backend", (seg_id, OK)
                )
            ]

    def all_copies(self) -> dict[int, list[str]]:
        with self._lock:
            out: dict[int, list[str]] = {}
            for seg_id, backend in self._db.execute(
                "SELECT c.segment_id, c.backend FROM copies c JOIN segments s ON s.id = c.segment_id"
                " WHERE c.state = ? AND s.garbage = 0",
                (OK,),
            ):
                out.setdefault(seg_id, []).append(backend)
            return out

    def add_copy(self, seg_id: int, backend: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO copies (segment_id, backend, state) VALUES (?, ?, ?)", (seg_id, backend, OK)
            )

    def mark_deleting(self, seg_id: int, backend: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE copies SET state = ? WHERE segment_id = ? AND backend = ?", (DELETING, seg_id, backend)
            )

    def drop_copy(self, seg_id: int, backend: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM copies WHERE segment_id = ? AND backend = ?", (seg_id, backend))

    def pending_deletions(self) -> list[tuple[int, str, str]]:
        """(segment id, backend, key) of every copy marked `deleting`."""
        with self._lock:
            return self._db.execute(
                "SELECT c.segment_id, c.backend, s.key FROM copies c JOIN segments s ON s.id = c.segment_id"
                " WHERE c.state = ?",
                (DELETING,),
            ).fetchall()

    def to_garbage(self, ids: list[int]) -> None:
        """Mark segments garbage and all their copies `deleting`, in one transaction."""
        if not ids:
            return

        def _do(db: sqlite3.Connection) -> None:
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE segments SET garbage = 1 WHERE id IN ({marks})", ids)
            db.execute(f"UPDATE copies SET state = ? WHERE segment_id IN ({marks})", [DELETING, *ids])

        self._tx(_do)

    def drop_dead_segments(self) -> None:
        """Delete garbage rows whose copies are all gone."""
        with self._lock:
            self._db.execute("DELETE FROM segments WHERE garbage = 1 AND id NOT IN (SELECT segment_id FROM copies)")

    def sizes(self) -> list[tuple[str, int, int, int]]:
        with self._lock:
            return self._db.execute(
                "SELECT stream, id, end_us, size FROM segments WHERE garbage = 0 ORDER BY start_us"
            ).fetchall()

    # -- gaps and keyframes ------------------------------------------------------------------------------------

    def insert_gap(self, stream: str, start_us: int, end_us: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO gaps (stream, start_us, end_us, reason) VALUES (?,?,?,?)",
                (stream, start_us, end_us, reason),
            )

    def gaps(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT stream, start_us, end_us, reason FROM gaps WHERE stream = ? AND end_us > ? AND start_us < ?"
                " ORDER BY start_us",
                (stream, start_us, end_us),
            ).fetchall()

    def delete_gaps_before(self, end_us: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM gaps WHERE end_us <= ?", (end_us,))

    def insert_keyframe(self, stream: str, time_us: int, path: str, au_path: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO keyframes (stream, time_us, path, au_path) VALUES (?,?,?,?)",
                (stream, time_us, path, au_path),
            )

    def keyframes(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(
                "SELECT stream, time_us, path, au_path FROM keyframes WHERE stream = ? AND time_us >= ? AND time_us < ?"
                " ORDER BY time_us",
                (stream, start_us, end_us),
            ).fetchall()
