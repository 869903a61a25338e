"""The segment index shared by `LocalStorage` and the tier policies (`ManagedStorage`): SQLite in WAL mode.

Strategy: plain stdlib `sqlite3` with `synchronous=FULL`; every method is synchronous and short, and the storages
call it through `trio.to_thread.run_sync` behind a one-slot limiter, so the event loop never waits on the
database and calls never overlap (a lock guards direct use as well). Times are UTC microseconds.

A segment is identified by its key (`<stream>/<YYYY-MM-DD>/<HH>/<name>.mp4`: the local layout's relative path,
also the object key on a remote backend). `copies` holds one row per backend that has the segment; plain local
storage is the one-backend case (`LOCAL`).

Copy states: `ok` (present and verified), `deleting` (being removed: a move's source, or a segment being
deleted), `retiring` (removed by a backend's retention while another copy stays) and `retired` (that removal
done: the row keeps repair from copying the segment back). Ordering rules, each step committed before the next
starts, so a crash anywhere is finished at start-up (Moonfire NVR's order for deletion):

* save: the data is durable on the backend(s) first, then the segment row and its copy rows go in one
  transaction.
* move (tier migration, repair): copy, verify, insert the destination's copy row, and only then mark the source
  copy `deleting`, delete it, drop its row.
* delete (retention, the last copy): the segment row is marked `garbage` and its copies `deleting` in one
  transaction, then each copy is deleted, then the rows go (`drop_dead_segments`).

Older data directories hold one of two earlier schemas (`index.sqlite3` with a `path` column and a separate
`garbage` table; `tiers.sqlite3` without a schema version); `_migrate` brings either to this one in place, in
one transaction (`PRAGMA user_version` records the version).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DELETING", "LOCAL", "OK", "RETIRED", "RETIRING", "SCHEMA_VERSION", "SEGMENT_COLUMNS", "SegmentIndex"]

T = TypeVar("T")

#: `PRAGMA user_version` of the current schema (0: created by an earlier release, see `_migrate`).
SCHEMA_VERSION = 2
#: Backend name of plain local storage's copies.
LOCAL = "local"
OK = "ok"
DELETING = "deleting"
RETIRING = "retiring"
RETIRED = "retired"

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

#: Columns of a segment row as the query methods return it (`key` third).
SEGMENT_COLUMNS = "id, stream, key, start_us, end_us, media_us, size, sha256, keyframes, run_id, frames"
#: Copy states that still hold bytes on their backend.
_PRESENT = (OK, DELETING, RETIRING)


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an index written by an earlier release to `SCHEMA_VERSION` (inside the caller's transaction).

    * The recording index (`segments.path`, table `garbage` of rows already taken out of `segments`): the column
      becomes `key`, every segment gets its `local` copy, and each pending garbage entry becomes a garbage segment
      row with a `deleting` copy, which the usual deletion pass then finishes.
    * The tier index already has this layout; only the version is recorded.
    """
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "segments" in tables and "path" in _columns(db, "segments"):
        db.execute("ALTER TABLE segments RENAME COLUMN path TO key")
        db.execute("ALTER TABLE segments ADD COLUMN garbage INTEGER NOT NULL DEFAULT 0")
        if "wall_delta_us" not in _columns(db, "segments"):
            db.execute("ALTER TABLE segments ADD COLUMN wall_delta_us INTEGER NOT NULL DEFAULT 0")
    # One statement at a time: `executescript` would COMMIT the transaction this runs in.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    if "segments" in tables and "copies" not in tables:
        db.execute(
            "INSERT OR IGNORE INTO copies (segment_id, backend, state) SELECT id, ?, ? FROM segments", (LOCAL, OK)
        )
    if "garbage" in tables:
        for key, stream in db.execute("SELECT path, stream FROM garbage").fetchall():
            found = db.execute("SELECT id FROM segments WHERE key = ?", (key,)).fetchone()
            if found is not None:  # a live row took the name again: its file is not garbage
                continue
            cur = db.execute(
                "INSERT INTO segments (stream, key, start_us, end_us, media_us, size, sha256, keyframes, run_id,"
                " frames, garbage) VALUES (?, ?, 0, 0, 0, 0, '', '[]', -1, 0, 1)",
                (stream, key),
            )
            db.execute(
                "INSERT INTO copies (segment_id, backend, state) VALUES (?, ?, ?)", (cur.lastrowid, LOCAL, DELETING)
            )
        db.execute("DROP TABLE garbage")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class SegmentIndex:
    """The SQLite index at `path` (created when missing; an earlier schema is migrated in place).

    Segment rows come back as tuples in `SEGMENT_COLUMNS` order. Keys are relative (see the module docstring).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed row survives power loss, since a row is only written after its data is durable.
            self._db.execute("PRAGMA synchronous=FULL")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version < SCHEMA_VERSION:
                self._tx(_migrate)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(db)` in one IMMEDIATE transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    db.execute("ROLLBACK")
                raise
            return out

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- segments ----------------------------------------------------------------------------------------------

    def insert_segment(self, row: dict[str, Any], backends: Iterable[str] = (LOCAL,)) -> int:
        """Insert (or, for a key already known, update) a segment row and its `ok` copies in one transaction.

        `row` holds `key` (or, as the recording index called it, `path`), `stream`, `start_us`, `end_us`,
        `media_us`, `size`, `sha256` and optionally `keyframes` ([seconds, offset] pairs), `run_id`, `frames`,
        `wall_delta_us`.
        """
        key = row["key"] if "key" in row else row["path"]
        names = list(backends)

        def _do(db: sqlite3.Connection) -> int:
            found = db.execute("SELECT id FROM segments WHERE key = ?", (key,)).fetchone()
            values = (
                row["stream"], row["start_us"], row["end_us"], row["media_us"], row["size"], row["sha256"],
                json.dumps(row.get("keyframes", [])), row.get("run_id", 0), row.get("frames", 0),
                row.get("wall_delta_us", 0),
            )  # fmt: skip
            if found is None:
                cur = db.execute(
                    "INSERT INTO segments (stream, start_us, end_us, media_us, size, sha256, keyframes, run_id,"
                    " frames, wall_delta_us, key) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (*values, key),
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
                [(seg_id, b, OK) for b in names],
            )
            return seg_id

        return self._tx(_do)

    def set_keyframes(self, seg_id: int, keyframes: Sequence[Sequence[float]]) -> None:
        """Replace a segment's keyframe list ([seconds from start, fragment byte offset] pairs)."""
        with self._lock:
            self._db.execute(
                "UPDATE segments SET keyframes = ? WHERE id = ?", (json.dumps([list(k) for k in keyframes]), seg_id)
            )

    def segments(self, stream: str | None, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        """Live rows overlapping [start_us, end_us), oldest first."""
        if stream is None:
            return self._all(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE garbage = 0 AND end_us > ? AND start_us < ?"
                " ORDER BY start_us",
                (start_us, end_us),
            )
        return self._all(
            f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE garbage = 0 AND stream = ? AND end_us > ? AND start_us < ?"
            " ORDER BY start_us",
            (stream, start_us, end_us),
        )

    def streams(self) -> list[str]:
        """The stream ids that have live segments, sorted."""
        return [str(s) for (s,) in self._all("SELECT DISTINCT stream FROM segments WHERE garbage = 0 ORDER BY stream")]

    def all_segments(self) -> list[tuple[Any, ...]]:
        return self._all(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE garbage = 0 ORDER BY start_us")

    def segment_by_key(self, key: str) -> tuple[Any, ...] | None:
        rows = self._all(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE key = ?", (key,))
        return rows[0] if rows else None

    def segment_by_id(self, seg_id: int) -> tuple[Any, ...] | None:
        rows = self._all(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?", (seg_id,))
        return rows[0] if rows else None

    def sizes(self, backend: str | None = None) -> list[tuple[str, int, int, int]]:
        """(stream, id, end_us, size) of every live segment (with `backend`: those it holds an `ok` copy of),
        oldest first: what retention needs."""
        if backend is None:
            rows = self._all("SELECT stream, id, end_us, size FROM segments WHERE garbage = 0 ORDER BY start_us")
        else:
            rows = self._all(
                "SELECT s.stream, s.id, s.end_us, s.size FROM segments s JOIN copies c ON c.segment_id = s.id"
                " WHERE s.garbage = 0 AND c.backend = ? AND c.state = ? ORDER BY s.start_us",
                (backend, OK),
            )
        return [(str(a), int(b), int(c), int(d)) for a, b, c, d in rows]

    def usage(self) -> dict[str, tuple[int, int]]:
        """{backend: (segments, bytes)} of the `ok` copies of live segments."""
        rows = self._all(
            "SELECT c.backend, COUNT(*), COALESCE(SUM(s.size), 0) FROM copies c JOIN segments s ON s.id = c.segment_id"
            " WHERE c.state = ? AND s.garbage = 0 GROUP BY c.backend",
            (OK,),
        )
        return {b: (int(n), int(z)) for b, n, z in rows}

    def indexed_paths(self) -> dict[str, tuple[int, int]]:
        """{key: (id, size)} of every live segment."""
        return {k: (i, s) for i, k, s in self._all("SELECT id, key, size FROM segments WHERE garbage = 0")}

    def delete_segment_rows(self, ids: list[int]) -> None:
        """Forget segments outright (their data is known to be gone), copies included."""

        def _do(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM copies WHERE segment_id = ?", [(i,) for i in ids])
            db.executemany("DELETE FROM segments WHERE id = ?", [(i,) for i in ids])

        if ids:
            self._tx(_do)

    # -- copies ------------------------------------------------------------------------------------------------

    def copies(self, seg_id: int) -> list[str]:
        """Backends holding a verified copy of the segment."""
        return [
            b
            for (b,) in self._all(
                "SELECT backend FROM copies WHERE segment_id = ? AND state = ? ORDER BY backend", (seg_id, OK)
            )
        ]

    def all_copies(self, state: str = OK) -> dict[int, list[str]]:
        """{segment id: backends} of the copies of live segments in `state`."""
        out: dict[int, list[str]] = {}
        for seg_id, backend in self._all(
            "SELECT c.segment_id, c.backend FROM copies c JOIN segments s ON s.id = c.segment_id"
            " WHERE c.state = ? AND s.garbage = 0 ORDER BY c.segment_id, c.backend",
            (state,),
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
        """The copy's bytes are gone: drop its row (a `retiring` copy becomes `retired` instead)."""
        with self._lock:
            self._db.execute(
                "UPDATE copies SET state = ? WHERE segment_id = ? AND backend = ? AND state = ?",
                (RETIRED, seg_id, backend, RETIRING),
            )
            self._db.execute(
                "DELETE FROM copies WHERE segment_id = ? AND backend = ? AND state != ?", (seg_id, backend, RETIRED)
            )

    def pending_deletions(self) -> list[tuple[int, str, str]]:
        """(segment id, backend, key) of every copy being deleted (`deleting` or `retiring`)."""
        rows = self._all(
            "SELECT c.segment_id, c.backend, s.key FROM copies c JOIN segments s ON s.id = c.segment_id"
            " WHERE c.state IN (?, ?) ORDER BY s.start_us",
            (DELETING, RETIRING),
        )
        return [(int(i), str(b), str(k)) for i, b, k in rows]

    def garbage(self) -> list[tuple[str, str]]:
        """(key, stream) of the segments being deleted whose copies are not all gone yet."""
        rows = self._all(
            "SELECT DISTINCT s.key, s.stream FROM segments s JOIN copies c ON c.segment_id = s.id"
            " WHERE s.garbage = 1 AND c.state = ?",
            (DELETING,),
        )
        return [(str(k), str(s)) for k, s in rows]

    def to_garbage(self, ids: list[int]) -> list[tuple[Any, ...]]:
        """Mark segments garbage and their present copies `deleting`, in one transaction; returns the rows of those
        that were live (unknown ids, and segments already being deleted, are not returned)."""
        if not ids:
            return []

        def _do(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
            marks = ",".join("?" * len(ids))
            rows = db.execute(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE garbage = 0 AND id IN ({marks}) ORDER BY start_us", ids
            ).fetchall()
            db.execute(f"UPDATE segments SET garbage = 1 WHERE id IN ({marks})", ids)
            db.execute(f"DELETE FROM copies WHERE state = ? AND segment_id IN ({marks})", [RETIRED, *ids])
            db.execute(f"UPDATE copies SET state = ? WHERE segment_id IN ({marks})", [DELETING, *ids])
            return rows

        return self._tx(_do)

    def retire(self, pairs: Sequence[tuple[int, str]]) -> tuple[list[int], list[tuple[int, str]]]:
        """Retention's deletion of copies, planned in one transaction: a (segment id, backend) copy whose segment
        keeps another `ok` copy is marked `retiring`; one that is the last copy makes its segment garbage (every
        present copy `deleting`). Returns (segment ids now garbage, copies now retiring)."""

        def _do(db: sqlite3.Connection) -> tuple[list[int], list[tuple[int, str]]]:
            doomed: list[int] = []
            retiring: list[tuple[int, str]] = []
            for seg_id, backend in pairs:
                others = db.execute(
                    "SELECT COUNT(*) FROM copies WHERE segment_id = ? AND backend != ? AND state = ?",
                    (seg_id, backend, OK),
                ).fetchone()[0]
                if others:
                    db.execute(
                        "UPDATE copies SET state = ? WHERE segment_id = ? AND backend = ? AND state = ?",
                        (RETIRING, seg_id, backend, OK),
                    )
                    retiring.append((seg_id, backend))
                else:
                    db.execute("UPDATE segments SET garbage = 1 WHERE id = ?", (seg_id,))
                    db.execute("DELETE FROM copies WHERE segment_id = ? AND state = ?", (seg_id, RETIRED))
                    db.execute("UPDATE copies SET state = ? WHERE segment_id = ?", (DELETING, seg_id))
                    doomed.append(seg_id)
            return doomed, retiring

        return self._tx(_do)

    def retired(self) -> dict[int, list[str]]:
        """{segment id: backends} whose copy retention removed on purpose (repair leaves those alone)."""
        return self.all_copies(RETIRED)

    def drop_dead_segments(self) -> None:
        """Delete garbage rows none of whose copies still hold bytes."""
        marks = ",".join("?" * len(_PRESENT))

        def _do(db: sqlite3.Connection) -> None:
            dead = (
                "SELECT id FROM segments WHERE garbage = 1 AND id NOT IN"
                f" (SELECT segment_id FROM copies WHERE state IN ({marks}))"
            )
            db.execute(f"DELETE FROM copies WHERE segment_id IN ({dead})", _PRESENT)
            db.execute(f"DELETE FROM segments WHERE id IN ({dead})", _PRESENT)

        self._tx(_do)

    # -- gaps and keyframes ------------------------------------------------------------------------------------

    def insert_gap(self, stream: str, start_us: int, end_us: int, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO gaps (stream, start_us, end_us, reason) VALUES (?,?,?,?)",
                (stream, start_us, end_us, reason),
            )

    def gaps(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        return self._all(
            "SELECT stream, start_us, end_us, reason FROM gaps WHERE stream = ? AND end_us > ? AND start_us < ?"
            " ORDER BY start_us",
            (stream, start_us, end_us),
        )

    def delete_gaps_before(self, end_us: int, stream: str | None = None) -> None:
        with self._lock:
            if stream is None:
                self._db.execute("DELETE FROM gaps WHERE end_us <= ?", (end_us,))
            else:
                self._db.execute("DELETE FROM gaps WHERE stream = ? AND end_us <= ?", (stream, end_us))

    def insert_keyframe(self, stream: str, time_us: int, path: str, au_path: str, *, unique: bool = False) -> bool:
        """Record a stored keyframe; with `unique`, not when one of the stream at that time is already recorded
        (rebuild, which may run twice). Returns whether a row was added."""
        with self._lock:
            if (
                unique
                and self._db.execute(
                    "SELECT 1 FROM keyframes WHERE stream = ? AND time_us = ?", (stream, time_us)
                ).fetchone()
            ):
                return False
            self._db.execute(
                "INSERT INTO keyframes (stream, time_us, path, au_path) VALUES (?,?,?,?)",
                (stream, time_us, path, au_path),
            )
            return True

    def keyframes(self, stream: str, start_us: int, end_us: int) -> list[tuple[Any, ...]]:
        return self._all(
            "SELECT stream, time_us, path, au_path FROM keyframes WHERE stream = ? AND time_us >= ? AND time_us < ?"
            " ORDER BY time_us",
            (stream, start_us, end_us),
        )
