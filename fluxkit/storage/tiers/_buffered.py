"""`BufferedStorage`: the batch writer in front of a remote backend; never blocks the recorder, never drops.

Strategy: `save_segment` returns at once. Up to `max_queue` finished segments wait in memory (their files stay
where the recorder wrote them); past that, a segment is spilled: its file is moved into `spill_dir` with a JSON
sidecar describing it. A single worker (`run`) uploads queued segments, then spilled ones, oldest first, retrying
with backoff while the remote fails. Spilled segments survive a restart (the worker picks them up at start), so
back-pressure and crashes cost disk space, not recordings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from fluxkit.storage._model import KeyframeRecord, RecordingQuery, SegmentRecord, datetime_from_us
from fluxkit.storage._mux import FinishedSegment

from ._managed import ManagedStorage

__all__ = ["DEFAULT_MAX_QUEUE", "BufferedStorage"]

_log = logging.getLogger("fluxkit.storage.tiers")

#: Segments waiting in memory before they spill to disk.
DEFAULT_MAX_QUEUE = 16
TimeArg = dt.datetime | float | int


def _to_json(seg: FinishedSegment) -> dict[str, Any]:
    return {
        "stream_id": seg.stream_id, "final_path": str(seg.final_path), "start_us": seg.start_us,
        "media_us": seg.media_us, "size": seg.size, "sha256": seg.sha256, "run_id": seg.run_id,
        "frames": seg.frames, "keyframes": [list(k) for k in seg.keyframes], "wall_delta_us": seg.wall_delta_us,
    }  # fmt: skip


def _from_json(data: dict[str, Any], path: Path) -> FinishedSegment:
    return FinishedSegment(
        stream_id=data["stream_id"], partial_path=path, final_path=Path(data["final_path"]),
        start_us=data["start_us"], media_us=data["media_us"], size=data["size"], sha256=data["sha256"],
        run_id=data["run_id"], frames=data["frames"], keyframes=tuple((float(t), int(o)) for t, o in data["keyframes"]),
        wall_delta_us=data.get("wall_delta_us", 0),
    )  # fmt: skip


class BufferedStorage:
    """A bounded queue in front of `remote` that spills to `spill_dir` instead of dropping.

    Run `await nursery.start(buffered.run)` for the uploader; `drain()` waits until everything is uploaded.

    Args:
        remote: the storage segments end up in (a `ManagedStorage` or any with `save_segment`).
        spill_dir: local directory for spilled segments (created when missing).
        max_queue: segments held in memory before spilling.
        retry_initial: first retry delay after a failed upload (doubles up to `retry_max`).
        retry_max: longest retry delay.
    """

    def __init__(
        self,
        remote: ManagedStorage,
        spill_dir: str | os.PathLike[str],
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        self.remote = remote
        self.spill_dir = Path(spill_dir)
        self.max_queue = max_queue
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self._queue: list[FinishedSegment] = []
        self._wakeup = trio.Event()
        self._progress = trio.Event()
        #: Segments spilled to disk so far, and uploaded so far.
        self.spilled = 0
        self.uploaded = 0
        self.spill_dir.mkdir(parents=True, exist_ok=True)

    def segment_paths(self, stream_id: str, start_us: int) -> tuple[Path, Path]:
        return self.remote.segment_paths(stream_id, start_us)

    @property
    def pending(self) -> int:
        """Segments not uploaded yet (queued + spilled)."""
        return len(self._queue) + len(self._spilled_files())

    def _spilled_files(self) -> list[Path]:
        return sorted(p for p in self.spill_dir.glob("*.mp4"))

    def _spill(self, seg: FinishedSegment) -> None:
        """Move the segment's file and description into the spill directory (blocking), durably."""
        dest = self.spill_dir / f"{seg.start_us:020d}-{seg.stream_id}-{seg.run_id}.mp4"
        try:
            os.rename(seg.partial_path, dest)
        except OSError:  # another file system
            shutil.copyfile(seg.partial_path, dest)
            with open(dest, "rb") as f:
                os.fsync(f.fileno())
            seg.partial_path.unlink()
        side = dest.with_suffix(".json.tmp")
        side.write_text(json.dumps(_to_json(seg)))
        os.rename(side, dest.with_suffix(".json"))
        fd = os.open(self.spill_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def save_segment(self, segment: FinishedSegment) -> SegmentRecord:
        """Queue (or spill) the segment and return at once; the record's id is -1 until it is uploaded."""
        if len(self._queue) < self.max_queue:
            self._queue.append(segment)
        else:
            await trio.to_thread.run_sync(self._spill, segment)
            self.spilled += 1
        self._wakeup.set()
        return SegmentRecord(
            id=-1, stream_id=segment.stream_id, start=datetime_from_us(segment.start_us),
            end=datetime_from_us(segment.start_us + segment.media_us), duration=segment.media_us / 1e6,
            size=segment.size, path=str(segment.partial_path), sha256=segment.sha256, run_id=segment.run_id,
            frames=segment.frames, keyframes=segment.keyframes,
        )  # fmt: skip

    def _next_spilled(self) -> FinishedSegment | None:
        for path in self._spilled_files():
            side = path.with_suffix(".json")
            try:
                return _from_json(json.loads(side.read_text()), path)
            except (OSError, ValueError, KeyError):
                continue  # sidecar not written yet (crash mid-spill): the file waits for the operator
        return None

    async def _upload(self, seg: FinishedSegment) -> None:
        delay = self.retry_initial
        while True:
            try:
                await self.remote.save_segment(seg)
                break
            except OSError as exc:
                _log.warning("buffered storage: upload of %s failed, retry in %.1f s: %s", seg.final_path.name,
                             delay, exc)  # fmt: skip
                await trio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
        if seg.partial_path.parent == self.spill_dir:  # the file went with the upload; the sidecar goes now
            with contextlib.suppress(FileNotFoundError):
                seg.partial_path.with_suffix(".json").unlink()
        self.uploaded += 1
        self._progress.set()
        self._progress = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Upload queued, then spilled, segments until cancelled."""
        task_status.started()
        while True:
            # Armed before looking: a save while the spill directory is read (in a thread) sets this event, so the
            # wait below returns at once instead of missing it until the next save.
            self._wakeup = trio.Event()
            if self._queue:
                seg = self._queue[0]
                await self._upload(seg)
                self._queue.pop(0)
                continue
            spilled = await trio.to_thread.run_sync(self._next_spilled)
            if spilled is not None:
                await self._upload(spilled)
                continue
            await self._wakeup.wait()

    async def drain(self) -> None:
        """Wait until nothing is pending (the worker must be running)."""
        while self.pending:
            await self._progress.wait()

    # The rest of the contract goes straight to the remote storage.
    async def save_gap(self, stream_id: str, start: TimeArg, end: TimeArg, reason: str) -> None:
        await self.remote.save_gap(stream_id, start, end, reason)

    async def save_keyframe(
        self, stream_id: str, time: TimeArg, access_unit: bytes, *, codec: str = "h264", jpeg: bytes | None = None
    ) -> KeyframeRecord:
        return await self.remote.save_keyframe(stream_id, time, access_unit, codec=codec, jpeg=jpeg)

    async def query_segments(self, stream_id: str, start: TimeArg, end: TimeArg) -> RecordingQuery:
        return await self.remote.query_segments(stream_id, start, end)

    async def cleanup_expired(self, **kwargs: Any) -> list[SegmentRecord]:
        return await self.remote.cleanup_expired(**kwargs)

    async def delete_segments(self, ids: Sequence[int]) -> list[SegmentRecord]:
        """The remote storage's `delete_segments` (segments still queued or spilled have no id yet)."""
        return await self.remote.delete_segments(ids)

    async def stream_ids(self) -> list[str]:
        return await self.remote.stream_ids()

    async def status(self) -> dict[str, Any]:
        """The remote storage's `status()` (spilled segments are not in it yet)."""
        result: dict[str, Any] = await self.remote.status()
        return result
