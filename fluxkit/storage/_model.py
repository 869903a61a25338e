"""Records, settings and events of the recording layer, plus the path rules (stream-id validation, file names).

Strategy: everything here is pure data or pure functions: times are UTC microseconds since the epoch (ints) in
the index and aware `datetime`s in the public records, so the REST layer can print RFC 3339 directly.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import attrs

from fluxkit.errors import LocalProtocolError

__all__ = [
    "CheckReport",
    "GapRecord",
    "KeyframeRecord",
    "RecordingFailed",
    "RecordingQuery",
    "RecordingResumed",
    "RecordingSettings",
    "RetentionLimits",
    "SegmentRecord",
    "datetime_from_us",
    "parse_segment_name",
    "plan_retention",
    "segment_name",
    "us_from_datetime",
    "validate_stream_id",
]

UTC = dt.UTC
#: Longest stream id accepted as a directory name.
MAX_STREAM_ID_LENGTH = 128
# Printable, no path separators, no leading dot (hidden files, "." and ".." are refused with it).
_STREAM_ID_RE = re.compile(r"[A-Za-z0-9_\-@:+=,~][A-Za-z0-9_\-@:+=,~.]*")
# `<YYYYMMDD>T<HHMMSS>.<mmm>Z.mp4`: sortable, readable, UTC, millisecond resolution.
# `<start>.mp4`, or `<start>-<run>-<size>[-<n>].mp4` when a segment of the same millisecond was already there.
_NAME_RE = re.compile(r"(\d{8}T\d{6})\.(\d{3})Z(?:-\d+-\d+(?:-\d+)?)?\.mp4")


def validate_stream_id(stream_id: str) -> str:
    """Return `stream_id` when it is safe as one directory name, else raise LocalProtocolError.

    Allowed: 1 to 128 of `A-Z a-z 0-9 _ - @ : + = , ~ .`, not starting with a dot (so no `..`, no hidden files);
    never `/`, `\\`, whitespace or control characters, and not the reserved name "keyframes".
    """
    if (
        not isinstance(stream_id, str)
        or len(stream_id) > MAX_STREAM_ID_LENGTH
        or _STREAM_ID_RE.fullmatch(stream_id) is None
        or stream_id == "keyframes"
    ):
        raise LocalProtocolError(f"invalid stream id for storage: {stream_id!r}")
    return stream_id


def us_from_datetime(value: dt.datetime | float) -> int:
    """UTC microseconds since the epoch from an aware datetime (naive ones are taken as UTC) or epoch seconds."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return round(value * 1_000_000)


def datetime_from_us(us: int) -> dt.datetime:
    """Aware UTC datetime from epoch microseconds."""
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=us)


def segment_name(start_us: int) -> tuple[str, str, str]:
    """(`YYYY-MM-DD`, `HH`, `<YYYYMMDD>T<HHMMSS>.<mmm>Z.mp4`) for a segment starting at `start_us` (UTC)."""
    when = datetime_from_us(start_us)
    return (
        when.strftime("%Y-%m-%d"),
        when.strftime("%H"),
        f"{when.strftime('%Y%m%dT%H%M%S')}.{when.microsecond // 1000:03d}Z.mp4",
    )


def alternate_segment_name(name: str, run_id: int, size: int, taken: Callable[[str], bool]) -> str:
    """A name for a segment whose `name` is `taken` (same millisecond start: a restart, or a re-download):
    `<start>-<run>-<size>.mp4`, then `-2`, `-3`... until one is free. Never overwrite a recording."""
    stem = name[: -len(".mp4")]
    candidate = f"{stem}-{run_id}-{size}.mp4"
    n = 2
    while taken(candidate):
        candidate = f"{stem}-{run_id}-{size}-{n}.mp4"
        n += 1
    return candidate


def parse_segment_name(name: str) -> int | None:
    """Start time (epoch µs) encoded in a segment file name, or None when it is not one."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    try:
        when = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return us_from_datetime(when) + int(match.group(2)) * 1000


@attrs.frozen(kw_only=True, slots=True)
class RecordingSettings:
    """Tunables of the recorder and of retention.

    Attributes:
        segment_duration: seconds of media per segment; a segment is cut at the first keyframe past it.
        part_duration: seconds per fMP4 fragment ("part"): what a crash may lose at most.
        fsync_parts: fdatasync every part as it is written (power-loss safety) rather than only at segment end.
        retention_days: delete segments that ended longer ago than this (None: keep).
        max_size_bytes: total bytes kept over all streams (None: no limit).
        max_stream_size_bytes: bytes kept per stream (None: no limit).
        min_free_bytes: free space kept on the storage's file system, deleting oldest first (None: no limit).
        retention_interval: seconds between retention passes.
        queue_frames: frames buffered between the subscription and the writer thread.
        subscription_queue: bound of the engine subscription's queue (the recorder skips to a keyframe past it).
        retry_initial: first delay (seconds) before retrying after a write failure; doubles up to `retry_max`.
        retry_max: longest delay between retries.
    """

    segment_duration: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    part_duration: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    fsync_parts: bool = True
    retention_days: float | None = None
    max_size_bytes: int | None = None
    max_stream_size_bytes: int | None = None
    min_free_bytes: int | None = None
    retention_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    queue_frames: int = attrs.field(default=512, validator=attrs.validators.ge(1))
    subscription_queue: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    retry_initial: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    retry_max: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True, slots=True)
class RetentionLimits:
    """How long one store (plain local storage, or one backend of a policy) keeps segments; None: no limit.

    Attributes:
        max_age_days: delete copies of segments that ended longer ago than this many days (fractions allowed).
        max_bytes: keep at most this many bytes of segments, deleting the oldest first.
        min_free_bytes: delete the oldest until the store's file system has this much free space (stores that
            cannot tell their free space, S3 and NVR, ignore it).
    """

    max_age_days: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    max_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))
    min_free_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(0)))

    @property
    def active(self) -> bool:
        return self.max_age_days is not None or self.max_bytes is not None or self.min_free_bytes is not None

    def to_json(self) -> dict[str, float | int | None]:
        return {"max_age_days": self.max_age_days, "max_bytes": self.max_bytes, "min_free_bytes": self.min_free_bytes}


def backend_status(
    *,
    name: str,
    kind: str,
    role: str,
    healthy: bool,
    usage: tuple[int, int],
    disk: tuple[int, int] | None,
    retention: RetentionLimits,
) -> dict[str, Any]:
    """One backend's entry in a storage's `status()` (`usage`: (segments, bytes); `disk`: (free, total) or None)."""
    segments, used = usage
    free, total = disk if disk is not None else (None, None)
    return {
        "name": name, "type": kind, "role": role, "healthy": healthy, "used_bytes": used, "segments": segments,
        "free_bytes": free, "total_bytes": total, "retention": retention.to_json(),
    }  # fmt: skip


def plan_retention(
    rows: list[tuple[str, int, int, int]],
    *,
    now_us: int,
    max_age: float | None = None,
    max_bytes: int | None = None,
    max_stream_bytes: int | None = None,
    free_bytes: int = 0,
) -> list[int]:
    """Ids of the segments retention deletes, oldest first.

    Args:
        rows: (stream, id, end µs, size) of the candidates, oldest first (`SegmentIndex.sizes`).
        now_us: the current wall time.
        max_age: seconds after its end that a segment is kept.
        max_bytes: total bytes kept.
        max_stream_bytes: bytes kept per stream.
        free_bytes: delete at least this many bytes more (to make room).
    """
    doomed: set[int] = set()
    if max_age is not None:
        cutoff = now_us - round(max_age * 1_000_000)
        doomed.update(seg_id for _s, seg_id, end_us, _z in rows if end_us <= cutoff)
    if max_stream_bytes is not None:
        per: dict[str, int] = {}
        for stream, seg_id, _e, size in rows:
            if seg_id not in doomed:
                per[stream] = per.get(stream, 0) + size
        for stream, seg_id, _e, size in rows:
            if seg_id not in doomed and per[stream] > max_stream_bytes:
                doomed.add(seg_id)
                per[stream] -= size
    total = sum(size for _s, seg_id, _e, size in rows if seg_id not in doomed)
    need = free_bytes - sum(size for _s, seg_id, _e, size in rows if seg_id in doomed)  # those free room too
    for _stream, seg_id, _e, size in rows:
        if seg_id in doomed:
            continue
        if (max_bytes is not None and total > max_bytes) or need > 0:
            doomed.add(seg_id)
            total -= size
            need -= size
    return [seg_id for _s, seg_id, _e, _z in rows if seg_id in doomed]


@attrs.frozen(kw_only=True, slots=True)
class SegmentRecord:
    """One finished, indexed segment.

    Attributes:
        id: index row id.
        stream_id: the stream.
        start: wall time (UTC) of its first frame.
        end: wall time (UTC) just after its last frame (start + media duration).
        duration: media duration in seconds.
        size: file size in bytes.
        path: absolute path of the MP4 file.
        sha256: hex digest of the file.
        run_id: the timeline run it belongs to (consecutive segments of one run join without a gap).
        frames: video frames in it.
        keyframes: (seconds from start, byte offset of the fragment starting with that keyframe) pairs.
    """

    id: int
    stream_id: str
    start: dt.datetime
    end: dt.datetime
    duration: float
    size: int
    path: str
    sha256: str
    run_id: int
    frames: int
    keyframes: tuple[tuple[float, int], ...] = ()


@attrs.frozen(kw_only=True, slots=True)
class GapRecord:
    """A stretch with no recording: `reason` is "timeline_jump", "subscriber_lag", "write_error",
    "stream_restart" or "not_recorded" (a hole between segments with no recorded cause)."""

    stream_id: str
    start: dt.datetime
    end: dt.datetime
    reason: str


@attrs.frozen(kw_only=True, slots=True)
class KeyframeRecord:
    """A stored keyframe: the self-contained access unit and, when given, its JPEG thumbnail."""

    stream_id: str
    time: dt.datetime
    path: str
    au_path: str


@attrs.frozen(kw_only=True, slots=True)
class RecordingQuery:
    """Answer of `query_segments`: the segments overlapping the range (oldest first) and the gaps inside it."""

    segments: tuple[SegmentRecord, ...]
    gaps: tuple[GapRecord, ...]


@attrs.frozen(kw_only=True, slots=True)
class CheckReport:
    """Result of `check` / `reconcile`: each list holds one line of text per finding.

    Attributes:
        missing: index rows whose file is gone (removed from the index by `reconcile`).
        orphans: MP4 files not in the index (adopted or removed by `reconcile`).
        partials: unfinished `.partial` files (recovered up to their last complete part by `reconcile`).
        mismatched: files whose size differs from the index.
        garbage: files pending deletion (deleted by `reconcile`).
        adopted: what `reconcile` added to the index.
        removed: what `reconcile` deleted.
    """

    missing: tuple[str, ...] = ()
    orphans: tuple[str, ...] = ()
    partials: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    garbage: tuple[str, ...] = ()
    adopted: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the index and the files agree."""
        return not (self.missing or self.orphans or self.partials or self.mismatched or self.garbage)

    def lines(self) -> list[str]:
        """One line per mismatch (empty when `ok`)."""
        out = [f"missing file: {x}" for x in self.missing]
        out += [f"orphan file: {x}" for x in self.orphans]
        out += [f"partial file: {x}" for x in self.partials]
        out += [f"size mismatch: {x}" for x in self.mismatched]
        out += [f"pending garbage: {x}" for x in self.garbage]
        return out


@attrs.frozen(kw_only=True, slots=True)
class RecordingFailed:
    """Recording of a stream stopped writing (disk full, read-only, permission); ingestion goes on.

    Attributes:
        stream_id: the stream.
        error: the error as text.
        errno: the OS error number (0 when not an OSError).
        retry_in: seconds until the next try.
    """

    stream_id: str
    error: str
    errno: int
    retry_in: float


@attrs.frozen(kw_only=True, slots=True)
class RecordingResumed:
    """Recording of a stream works again after a `RecordingFailed`; `down_for` is the wall seconds lost."""

    stream_id: str
    down_for: float
