"""The NVR HTTP protocol: `NvrStorage` (a blob store that keeps segments on a remote fluxkit or NVR) and
`nvr_routes` (the same protocol served by a fluxkit, so one fluxkit is the NVR of many edge fluxkits).

Protocol (every request carries `Authorization: Bearer <token>`; times are RFC 3339, µs precision):

- `POST /api/v1/recordings/{stream_id}?key=&start=&end=&sha256=&size=&media_us=&frames=&run_id=` uploads one
  segment in chunks, each with `Content-Range: bytes A-B/SIZE`. A chunk must start where the stored part ends;
  otherwise (and for a status query, `Content-Range: bytes */SIZE` with an empty body) the answer is
  `308` with `Range: bytes=0-N` (the bytes held, no header when none), the resumable-upload convention. The
  server keeps every byte it received, also when the connection drops mid-chunk, so a client resumes where the
  server stopped instead of from zero. When the last byte arrives it checks size and sha256 (`422` on a mismatch,
  the partial is discarded), stores the segment and answers `201` with the record; a segment already stored
  (same stream, start and sha256) answers `200` with it, so a retried upload whose answer was lost is harmless.
- `GET /api/v1/recordings/{stream_id}?start=&end=` lists `{"recordings": [record, ...]}` overlapping the range;
  `GET /api/v1/recordings?start=&end=` lists every stream.
- `GET /api/v1/recordings/{id}/playback` returns the segment's bytes (`Range` requests answered with 206).
- `DELETE /api/v1/recordings/{id}` deletes one segment (tier moves and retention of the edge need it).

A record is `{id, key, stream_id, start, end, start_us, end_us, media_us, size, sha256, frames, run_id}`; `id` is
opaque to clients (`<segment id>.<start µs>.<stream id>`, so the server finds it with an index range query).

Client strategy: every request is bounded by `timeout` and retried `retries` times with exponential backoff on
connection errors, timeouts, 5xx and 429; 401/403 fail at once (`TierError(EACCES)`). Uploads are sent in
`chunk_size` pieces read from the file (memory bounded by one chunk); after any failure the client asks the server
how much it holds and continues from there. Downloads go to a temporary file, resume with `Range` after a dropped
connection, and are verified against the listed sha256 before they are renamed into place.

Each route of `nvr_routes` carries its OpenAPI operations in an `openapi` attribute (`OPENAPI_PATHS`), merged by
the API app into `/api/openapi.json`. `{stream_id}` (GET, POST) and `{id}` (DELETE) are the same URL template, so
the document has one path `/api/v1/recordings/{id}` whose `id` each operation describes (a stream id for GET and
POST, a record's id for DELETE); the server tells them apart by the method, as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import trio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from fluxkit.storage._model import SegmentRecord, datetime_from_us, segment_name, us_from_datetime, validate_stream_id
from fluxkit.storage._mux import FinishedSegment

from ._stores import BlobInfo, TierError, sha256_file

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_UPLOAD_MAX_AGE",
    "DEFAULT_UPLOAD_SWEEP_INTERVAL",
    "OPENAPI_PATHS",
    "UPLOADS_DIR_NAME",
    "NvrStorage",
    "NvrUploads",
    "nvr_routes",
]

_log = logging.getLogger("fluxkit.storage.tiers")

#: Bytes per upload request (one chunk is held in memory at a time).
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
#: Seconds a request may take (connect, each read and write) before it is retried.
DEFAULT_TIMEOUT = 30.0
#: Retries of a failed request (after the first try).
DEFAULT_RETRIES = 5
#: Seconds after its last received byte that an unfinished upload is abandoned and removed (server side).
DEFAULT_UPLOAD_MAX_AGE = 24 * 3600.0
#: Seconds between two sweeps for abandoned uploads (server side).
DEFAULT_UPLOAD_SWEEP_INTERVAL = 3600.0
#: Directory under the serving storage's root that holds unfinished uploads.
UPLOADS_DIR_NAME = ".nvr-uploads"
API = "/api/v1/recordings"
_RANGE_RE = re.compile(r"bytes=0-(\d+)")
_CONTENT_RANGE_RE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)")
_NAME_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}\.mp4")
_FAR_FUTURE_US = 32_503_680_000_000_000  # year 3000


def _format_us(us: int) -> str:
    when = datetime_from_us(us)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{when.microsecond:06d}Z" if when.microsecond else "Z")


def _parse_us(text: str) -> int:
    """µs from an RFC 3339 time (or a plain integer of µs)."""
    if text.lstrip("-").isdigit():
        return int(text)
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"time without an offset: {text!r}")
    return us_from_datetime(when)


def _key_of(record: SegmentRecord) -> str:
    """`<stream>/<day>/<hour>/<name>` of a record (its path is a local file or `<backend>:<key>`)."""
    parts = PurePosixPath(record.path.replace(os.sep, "/")).parts[-3:]
    return f"{record.stream_id}/{'/'.join(parts)}"


def _record_json(record: SegmentRecord) -> dict[str, Any]:
    start_us, end_us = us_from_datetime(record.start), us_from_datetime(record.end)
    return {
        "id": f"{record.id}.{start_us}.{record.stream_id}",
        "key": _key_of(record),
        "stream_id": record.stream_id,
        "start": _format_us(start_us),
        "end": _format_us(end_us),
        "start_us": start_us,
        "end_us": end_us,
        "media_us": round(record.duration * 1_000_000),
        "size": record.size,
        "sha256": record.sha256,
        "frames": record.frames,
        "run_id": record.run_id,
    }


def _blob(rec: Mapping[str, Any]) -> BlobInfo:
    meta = {
        "stream": str(rec["stream_id"]),
        "start-us": str(rec["start_us"]),
        "media-us": str(rec["media_us"]),
        "frames": str(rec.get("frames", 0)),
        "run-id": str(rec.get("run_id", 0)),
        "nvr-id": str(rec["id"]),
    }
    return BlobInfo(key=str(rec["key"]), size=int(rec["size"]), sha256=rec.get("sha256") or None, metadata=meta)


def _held(response: httpx.Response) -> int:
    """Bytes the server holds of an upload, from a 308/409 `Range: bytes=0-N` (none: 0)."""
    match = _RANGE_RE.fullmatch(response.headers.get("range", "").strip())
    return int(match.group(1)) + 1 if match else 0


class NvrStorage:
    """Segments kept on an NVR (or a central fluxkit) through the NVR HTTP protocol; a `BlobStore`.

    Args:
        nvr_url: base URL, e.g. `http://nvr.example:8080`.
        auth_token: bearer token.
        name: backend name in the index.
        timeout: seconds per request phase (connect, read, write) before it is retried.
        retries: retries of a failed request, with exponential backoff from `retry_initial` to `retry_max`.
        chunk_size: bytes per upload request.
        transport: an httpx transport (tests); default: the network.
    """

    def __init__(
        self,
        nvr_url: str,
        auth_token: str,
        *,
        name: str = "nvr",
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        self.nvr_url = nvr_url.rstrip("/")
        self.name = name
        self.timeout, self.retries = timeout, retries
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.chunk_size = chunk_size
        self._token = auth_token
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        #: Upload bytes that did not have to be sent again thanks to resuming (statistics, tests).
        self.resumed_bytes = 0
        #: Requests retried after a failure (statistics, tests).
        self.retried = 0

    def __repr__(self) -> str:
        return f"NvrStorage({self.nvr_url!r}, name={self.name!r})"

    # -- plumbing ----------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.nvr_url,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
                transport=self._transport,
            )
        await self._request("GET", API, params={"start": _format_us(0), "end": _format_us(1)})

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _backoff(self, attempt: int) -> None:
        self.retried += 1
        await trio.sleep(min(self.retry_initial * 2**attempt, self.retry_max))

    async def _request(self, method: str, url: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """One request with retries; returns a response whose status is in `ok` (or 308/404/409/422, which the
        callers handle); raises TierError otherwise."""
        if self._client is None:
            raise TierError(errno.ENOTCONN, f"{self.name}: not open")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await self._backoff(attempt - 1)
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            status = response.status_code
            if status in ok or status in (308, 404, 409, 422):
                return response
            if status in (401, 403):
                raise TierError(errno.EACCES, f"{self.name}: {method} {url}: {status} (wrong auth_token?)")
            if status >= 500 or status == 429:
                last = f"HTTP {status}"
                continue
            raise TierError(errno.EIO, f"{self.name}: {method} {url}: HTTP {status}: {response.text[:200]}")
        code = errno.ETIMEDOUT if last.startswith("timed out") else errno.EIO
        raise TierError(code, f"{self.name}: {method} {url} failed after {self.retries + 1} tries: {last}")

    # -- listing -----------------------------------------------------------------------------------------------

    async def list_records(self, stream_id: str | None, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """The NVR's records overlapping [start_us, end_us) (every stream when `stream_id` is None)."""
        url = API if stream_id is None else f"{API}/{validate_stream_id(stream_id)}"
        response = await self._request("GET", url, params={"start": _format_us(start_us), "end": _format_us(end_us)})
        if response.status_code != 200:
            raise TierError(errno.EIO, f"{self.name}: listing {url}: HTTP {response.status_code}")
        try:
            records: list[dict[str, Any]] = response.json()["recordings"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TierError(errno.EIO, f"{self.name}: listing {url}: bad answer ({exc})") from None
        return records

    async def _find(self, key: str) -> dict[str, Any] | None:
        """The record stored under `key` (`<stream>/<day>/<hour>/<name>`): a listing of that hour."""
        parts = key.split("/")
        if len(parts) != 4:
            raise TierError(errno.EINVAL, f"{self.name}: {key!r} is not a segment key")
        try:
            hour = dt.datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        except ValueError:
            raise TierError(errno.EINVAL, f"{self.name}: {key!r} is not a segment key") from None
        start_us = us_from_datetime(hour)
        # Starting in that hour; listed by overlap, so a segment may also show up in the hour before.
        for rec in await self.list_records(parts[0], start_us, start_us + 3_600_000_000):
            if rec.get("key") == key:
                return rec
        return None

    async def stat(self, key: str) -> BlobInfo | None:
        rec = await self._find(key)
        return None if rec is None else _blob(rec)

    async def list_blobs(self) -> list[BlobInfo]:
        return sorted((_blob(r) for r in await self.list_records(None, 0, _FAR_FUTURE_US)), key=lambda b: b.key)

    def local_path(self, key: str) -> Path | None:
        return None

    # -- upload ------------------------------------------------------------------------------------------------

    async def put_file(self, key: str, path: Path, *, size: int, sha256: str, metadata: Mapping[str, str]) -> None:
        """Upload in `Content-Range` chunks, resuming from what the server holds after any failure."""
        stream = metadata.get("stream") or key.split("/", 1)[0]
        start_us = int(metadata.get("start-us", "0"))
        media_us = int(metadata.get("media-us", "0"))
        params = {
            "key": key, "start": _format_us(start_us), "end": _format_us(start_us + media_us), "sha256": sha256,
            "size": str(size), "media_us": str(media_us), "frames": metadata.get("frames", "0"),
            "run_id": metadata.get("run-id", "0"),
        }  # fmt: skip
        url = f"{API}/{validate_stream_id(stream)}"

        def _read(offset: int) -> bytes:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(min(self.chunk_size, size - offset))

        async def _post(headers: dict[str, str], content: bytes) -> httpx.Response:
            return await self._request("POST", url, ok=(200, 201), params=params, headers=headers, content=content)

        # Ask first: a previous (crashed or dropped) upload may have left bytes on the server.
        response = await _post({"Content-Range": f"bytes */{size}"}, b"")
        failures = 0
        while True:
            status = response.status_code
            if status in (200, 201):
                rec = response.json()
                if rec.get("sha256") != sha256 or int(rec.get("size", -1)) != size:
                    raise TierError(errno.EIO, f"{self.name}: {key}: the NVR stored something else ({rec})")
                return
            if status == 422:  # the assembled file did not match: the server dropped it, start again
                failures += 1
                if failures > self.retries:
                    raise TierError(errno.EIO, f"{self.name}: {key}: checksum mismatch on the NVR: {response.text}")
                offset = 0
            elif status in (308, 409):
                offset = _held(response)
            else:
                raise TierError(errno.EIO, f"{self.name}: {key}: HTTP {status}: {response.text[:200]}")
            if offset >= size:  # all there but not finished (a lost last answer): the status query finishes it
                response = await _post({"Content-Range": f"bytes */{size}"}, b"")
                continue
            chunk = await trio.to_thread.run_sync(_read, offset)
            try:
                response = await _post({"Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{size}"}, chunk)
            except TierError as exc:
                if exc.errno == errno.EACCES:
                    raise
                failures += 1
                if failures > self.retries:
                    raise
                await self._backoff(failures - 1)
                response = await _post({"Content-Range": f"bytes */{size}"}, b"")
                if response.status_code in (308, 409):
                    self.resumed_bytes += _held(response) - offset if _held(response) > offset else 0
                continue
            if response.status_code in (308, 409) and _held(response) < offset + len(chunk):
                # The connection dropped inside the chunk: the server kept part of it.
                self.resumed_bytes += max(0, _held(response) - offset)

    # -- download ----------------------------------------------------------------------------------------------

    async def _require(self, key: str) -> dict[str, Any]:
        rec = await self._find(key)
        if rec is None:
            raise TierError(errno.ENOENT, f"{self.name}: {key}: not found")
        return rec

    async def fetch(self, key: str, dest: Path) -> None:
        rec = await self._require(key)
        size, expected = int(rec["size"]), rec.get("sha256")
        url = f"{API}/{rec['id']}/playback"
        tmp = dest.with_name(f".{dest.name}.fetch")
        await trio.to_thread.run_sync(lambda: dest.parent.mkdir(parents=True, exist_ok=True))
        assert self._client is not None
        failures = 0
        async with await trio.open_file(tmp, "wb") as out:
            offset = 0
            while offset < size:
                headers = {"Range": f"bytes={offset}-"} if offset else {}
                try:
                    async with self._client.stream("GET", url, headers=headers) as response:
                        if response.status_code not in (200, 206):
                            if response.status_code >= 500 or response.status_code == 429:
                                raise httpx.TransportError(f"HTTP {response.status_code}")
                            raise TierError(errno.EIO, f"{self.name}: {key}: download: HTTP {response.status_code}")
                        if offset and response.status_code == 200:  # range ignored: start over
                            await out.seek(0)
                            await out.truncate()
                            offset = 0
                        async for data in response.aiter_bytes():
                            await out.write(data)
                            offset += len(data)
                except httpx.TransportError as exc:
                    failures += 1
                    if failures > self.retries:
                        raise TierError(errno.EIO, f"{self.name}: {key}: download failed: {exc}") from exc
                    await self._backoff(failures - 1)
                    continue
                if offset < size and response.status_code in (200, 206):
                    failures += 1  # a short body without a transport error: resume like a drop
                    if failures > self.retries:
                        raise TierError(errno.EIO, f"{self.name}: {key}: download keeps ending at {offset}")
        got_size, got_sha = await trio.to_thread.run_sync(sha256_file, tmp)
        if got_size != size or (expected and got_sha != expected):
            await trio.to_thread.run_sync(tmp.unlink)
            raise TierError(errno.EIO, f"{self.name}: {key}: checksum mismatch ({got_sha} != {expected})")
        await trio.to_thread.run_sync(os.rename, tmp, dest)

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        rec = await self._require(key)
        if length <= 0 or offset >= int(rec["size"]):
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        response = await self._request("GET", f"{API}/{rec['id']}/playback", ok=(200, 206), headers=headers)
        if response.status_code == 206:
            return response.content
        if response.status_code == 200:
            return response.content[offset : offset + length]
        raise TierError(errno.EIO, f"{self.name}: {key}: range read: HTTP {response.status_code}")

    async def delete(self, key: str) -> None:
        rec = await self._find(key)
        if rec is None:
            return
        response = await self._request("DELETE", f"{API}/{rec['id']}", ok=(200, 204))
        if response.status_code not in (200, 204, 404):
            raise TierError(errno.EIO, f"{self.name}: {key}: delete: HTTP {response.status_code}")


# -- the server side -------------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers=headers)


def _range_headers(held: int) -> dict[str, str]:
    return {"Range": f"bytes=0-{held - 1}"} if held else {}


async def _records(storage: Any, stream_id: str | None, start_us: int, end_us: int) -> list[SegmentRecord]:
    """Records overlapping [start_us, end_us) of one stream, or of every stream (`storage.stream_ids()`)."""
    streams = [stream_id] if stream_id is not None else await storage.stream_ids()
    out: list[SegmentRecord] = []
    for stream in streams:
        query = await storage.query_segments(stream, datetime_from_us(start_us), datetime_from_us(end_us))
        out += query.segments
    return out


async def _by_id(storage: Any, rec_id: str) -> SegmentRecord | None:
    seg_text, _, rest = rec_id.partition(".")
    start_text, _, stream = rest.partition(".")
    if not (seg_text.isdigit() and start_text.lstrip("-").isdigit() and stream):
        return None
    start_us = int(start_text)
    for record in await _records(storage, validate_stream_id(stream), start_us - 1, start_us + 1):
        if record.id == int(seg_text):
            return record
    return None


async def _local_file(storage: Any, record: SegmentRecord) -> Path:
    if await trio.to_thread.run_sync(os.path.isfile, record.path):
        return Path(record.path)
    fetch = getattr(storage, "fetch_to_cache", None)
    if fetch is None:
        raise TierError(errno.ENOENT, f"segment file {record.path} is gone")
    path: Path = await fetch(record)
    return path


class NvrUploads:
    """The unfinished uploads of an NVR server, and the removal of those a client abandoned.

    A partial upload is `<storage.root>/.nvr-uploads/<stream>/<day>T<hour>_<name>.upload`: on the storage's file
    system (the finished file is renamed into place), outside the recordings that the storage reconciles (a dot
    directory), and in one directory per stream, so a sweep lists only uploads, never the recordings. An upload that
    received no byte for `max_age` seconds is removed (a client that comes back later is told it holds nothing and
    starts over, so nothing is lost): by `run()` at start and every `sweep_interval` seconds, and by the routes of
    `nvr_routes` on a request when no sweep ran for `sweep_interval` (so a server without `run()` sweeps too).
    An upload being written is never removed: the sweep takes the same per-upload lock as the request.

    Args:
        storage: the serving storage (`LocalStorage` or `ManagedStorage`: its `root`).
        max_age: seconds since its last byte after which an unfinished upload is abandoned.
        sweep_interval: seconds between sweeps.
        wall_clock: epoch seconds now (compared with file modification times); injectable for tests.
    """

    def __init__(
        self,
        storage: Any,
        *,
        max_age: float = DEFAULT_UPLOAD_MAX_AGE,
        sweep_interval: float = DEFAULT_UPLOAD_SWEEP_INTERVAL,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age < 0 or sweep_interval <= 0:
            raise ValueError(f"max_age must be >= 0 and sweep_interval > 0, not {max_age}, {sweep_interval}")
        self.directory = Path(storage.root) / UPLOADS_DIR_NAME
        self.max_age, self.sweep_interval = max_age, sweep_interval
        self._wall_clock = wall_clock
        self._locks: dict[Path, trio.Lock] = {}
        self._last_sweep: float | None = None
        #: Abandoned uploads removed so far (statistics, tests).
        self.removed = 0

    def path(self, stream_id: str, start_us: int, name: str) -> Path:
        """Where the upload of segment `name` of `stream_id` starting at `start_us` is assembled."""
        day, hour, _name = segment_name(start_us)
        return self.directory / stream_id / f"{day}T{hour}_{name}.upload"

    def lock(self, path: Path) -> trio.Lock:
        """The lock that serializes every request (and the sweep) on one upload."""
        return self._locks.setdefault(path, trio.Lock())

    def forget(self, path: Path) -> None:
        """Drop the lock of a finished or removed upload unless a request holds or awaits it."""
        lock = self._locks.get(path)
        if lock is not None and not lock.locked() and not lock.statistics().tasks_waiting:
            del self._locks[path]

    def _stale(self, now: float) -> list[Path]:
        """Uploads whose last byte is `max_age` old (blocking: lists the uploads directory)."""
        out: list[Path] = []
        try:
            streams = list(os.scandir(self.directory))
        except FileNotFoundError:
            return out
        for stream in streams:
            if not stream.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(stream.path):
                    if entry.name.endswith(".upload") and now - entry.stat().st_mtime >= self.max_age:
                        out.append(Path(entry.path))
        return out

    async def sweep(self, *, now: float | None = None) -> list[Path]:
        """Remove the abandoned uploads now; returns their paths."""
        now = self._wall_clock() if now is None else now
        self._last_sweep = now
        removed: list[Path] = []
        for path in await trio.to_thread.run_sync(self._stale, now):
            async with self.lock(path):  # not while a request appends to it
                try:
                    mtime = (await trio.to_thread.run_sync(path.stat)).st_mtime
                    if now - mtime < self.max_age:  # a byte arrived since it was listed
                        continue
                    await trio.to_thread.run_sync(path.unlink)
                except FileNotFoundError:
                    continue
            self.forget(path)
            removed.append(path)
            self.removed += 1
            _log.info("nvr: removed abandoned upload %s (no byte for %.0f s)", path.name, now - mtime)
        return removed

    async def sweep_if_due(self) -> None:
        """Sweep unless one ran within `sweep_interval` (a request's housekeeping)."""
        now = self._wall_clock()
        if self._last_sweep is None or now - self._last_sweep >= self.sweep_interval:
            await self.sweep(now=now)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep at start, then every `sweep_interval` seconds, until cancelled (`await nursery.start(x.run)`)."""
        await self.sweep()
        task_status.started()
        while True:
            await trio.sleep(self.sweep_interval)
            try:
                await self.sweep()
            except OSError as exc:  # a transient file system error: the next sweep tries again
                _log.warning("nvr: sweeping abandoned uploads failed: %s", exc)


# -- OpenAPI (merged into the API app's document; `Error` and the bearer scheme live there) ------------------------

_JSON = "application/json"
_NVR_ERRORS = {
    400: "Bad stream id or query parameter, or a missing or wrong Content-Range.",
    401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
    404: "No such recording.",
    409: "The chunk does not start where the stored part ends; Range says what is held.",
    422: "The complete upload does not match size and sha256 (the partial is discarded).",
    503: "The storage failed to read, store or delete the segment.",
}
_US_TIME = {"type": "string", "description": "RFC 3339 (µs precision) or integer µs", "example": "2026-02-11T10:00:00Z"}
_RECORD: dict[str, Any] = {
    "type": "object",
    "required": ["id", "key", "stream_id", "start", "end", "start_us", "end_us", "size", "sha256"],
    "properties": {
        "id": {"type": "string", "description": "opaque: <segment id>.<start µs>.<stream id>"},
        "key": {"type": "string"},
        "stream_id": {"type": "string"},
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "start_us": {"type": "integer"},
        "end_us": {"type": "integer"},
        "media_us": {"type": "integer"},
        "size": {"type": "integer"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "frames": {"type": "integer"},
        "run_id": {"type": "integer"},
    },
}


def _nvr_op(op_id: str, summary: str, ok: dict[str, Any], errors: tuple[int, ...], **extra: Any) -> dict[str, Any]:
    responses = dict(ok)
    for code in (*errors, 401):
        error = {"$ref": "#/components/schemas/Error"}
        responses[str(code)] = {"description": _NVR_ERRORS[code], "content": {_JSON: {"schema": error}}}
    responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return {"operationId": op_id, "summary": summary, "tags": ["nvr"], "responses": responses, **extra}


def _nvr_param(name: str, where: str, description: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _records_ok(*required: str) -> dict[str, Any]:
    properties: dict[str, Any] = {"recordings": {"type": "array", "items": _RECORD}}
    if "stream_id" in required:
        properties["stream_id"] = {"type": "string"}
    schema = {"type": "object", "required": list(required), "properties": properties}
    return {"200": {"description": "Records overlapping the range.", "content": {_JSON: {"schema": schema}}}}


_RANGE_PARAMS = [
    _nvr_param("start", "query", "Start of the range (default: the epoch).", _US_TIME, False),
    _nvr_param("end", "query", "End of the range (default: far future).", _US_TIME, False),
]
# `/api/v1/recordings/{stream_id}` (GET, POST) and `/api/v1/recordings/{rec_id}` (DELETE) are one URL template with
# two meanings of its last segment; OpenAPI needs one template per path, so both are `{id}`, described per method
# (the wire protocol is unchanged: the server tells them apart by the method).
_NVR_STREAM_ID = _nvr_param(
    "id", "path", "GET and POST: the stream's id (not a record's).", {"type": "string", "maxLength": 128}, True
)
_REC_ID = _nvr_param("id", "path", "DELETE and playback: a record's opaque `id` (from a listing).", {"type": "string"},
                     True)  # fmt: skip
_RANGE_HEADER = {"Range": {"schema": {"type": "string", "example": "bytes=0-1048575"}, "required": False}}
_MP4 = {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}
_SHA_HEADER = {"X-Content-SHA256": {"schema": {"type": "string"}}}

#: OpenAPI operations of each route, `{path: {method: operation}}`; `nvr_routes` attaches them.
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    API: {
        "get": _nvr_op(
            "nvrListAll", "Every stream's records overlapping the range.", _records_ok("recordings"), (400,),
            parameters=_RANGE_PARAMS,
        )
    },
    API + "/{id}/playback": {
        "get": _nvr_op(
            "nvrDownload",
            "The segment's bytes (Range requests answered with 206).",
            {
                "200": {"description": "The MP4 segment.", "headers": _SHA_HEADER, "content": _MP4},
                "206": {"description": "Part of it.", "headers": _SHA_HEADER, "content": _MP4},
            },
            (404, 503),
            parameters=[_REC_ID],
        )
    },
    API + "/{id}": {
        "delete": _nvr_op(
            "nvrDelete", "Delete one segment (`id` is a record's id).", {"204": {"description": "Deleted."}},
            (404, 503), parameters=[_REC_ID],
            description="Here `id` is a record's opaque `id`; with GET and POST the same path segment is a stream id.",
        ),
        "get": _nvr_op(
            "nvrListStream",
            "The stream's records overlapping the range (`id` is a stream id).",
            _records_ok("stream_id", "recordings"),
            (400,),
            parameters=[_NVR_STREAM_ID, *_RANGE_PARAMS],
            description="Here `id` is a stream id; with DELETE the same path segment is a record's id.",
        ),
        "post": _nvr_op(
            "nvrUpload",
            "Upload one segment of stream `id` in resumable chunks (`Content-Range: bytes A-B/SIZE`; `bytes */SIZE` "
            "with an empty body asks how much is held).",
            {
                "200": {"description": "Already stored (a retried upload).", "content": {_JSON: {"schema": _RECORD}}},
                "201": {"description": "Stored.", "content": {_JSON: {"schema": _RECORD}}},
                "308": {"description": "Incomplete: Range names the bytes held (none: no header).",
                        "headers": _RANGE_HEADER},
            },
            (400, 409, 422, 503),
            parameters=[
                _NVR_STREAM_ID,
                _nvr_param("key", "query", "The segment's key; its last part is the file name.", {"type": "string"},
                           True),
                _nvr_param("start", "query", "Segment start.", _US_TIME, True),
                _nvr_param("end", "query", "Segment end (not before start).", _US_TIME, True),
                _nvr_param("sha256", "query", "SHA-256 of the whole segment.", _RECORD["properties"]["sha256"], True),
                _nvr_param("size", "query", "Bytes in the whole segment.", {"type": "integer", "minimum": 0}, True),
                _nvr_param("media_us", "query", "Media duration, µs (default: end - start).", {"type": "integer"},
                           False),
                _nvr_param("frames", "query", "Frames in the segment.", {"type": "integer"}, False),
                _nvr_param("run_id", "query", "The recording run.", {"type": "integer"}, False),
                _nvr_param("Content-Range", "header", "bytes A-B/SIZE, or bytes */SIZE for a status query.",
                           {"type": "string", "example": "bytes 0-1048575/5242880"}, True),
            ],
            requestBody={"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            description="Here `id` is a stream id; with DELETE the same path segment is a record's id.",
        ),
    },
}  # fmt: skip


def nvr_routes(storage: Any, *, uploads: NvrUploads | None = None) -> list[Route]:
    """The NVR protocol (see the module docstring) served from `storage` (a `LocalStorage` or `ManagedStorage`,
    open). Mount inside the REST app (`ApiServices(extra_routes=...)`): its bearer-token middleware guards them.

    The routes use only the storage's public methods: `segment_paths`, `save_segment`, `query_segments`,
    `stream_ids`, `delete_segments`, `root`, and `fetch_to_cache` where a segment is not a local file.

    Args:
        storage: where uploaded segments are stored and listed from.
        uploads: the unfinished uploads (its `max_age` and sweeps); default `NvrUploads(storage)`. Pass the one
            whose `run()` the app starts, so that abandoned uploads are also removed at start.
    """
    uploads = NvrUploads(storage) if uploads is None else uploads

    def _params(request: Request) -> dict[str, Any]:
        q = request.query_params
        missing = [n for n in ("key", "start", "end", "sha256", "size") if not q.get(n)]
        if missing:
            raise ValueError(f"missing query parameters: {', '.join(missing)}")
        name = q["key"].rsplit("/", 1)[-1]
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"bad segment name {name[:80]!r}")
        sha = q["sha256"].lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError("sha256 must be 64 hex digits")
        start_us, end_us = _parse_us(q["start"]), _parse_us(q["end"])
        size = int(q["size"])
        if size < 0 or end_us < start_us:
            raise ValueError("size must not be negative and end must not be before start")
        return {
            "name": name, "sha256": sha, "size": size, "start_us": start_us, "end_us": end_us,
            "media_us": int(q.get("media_us") or end_us - start_us), "frames": int(q.get("frames") or 0),
            "run_id": int(q.get("run_id") or 0),
        }  # fmt: skip

    async def _existing(stream: str, p: dict[str, Any]) -> SegmentRecord | None:
        for record in await _records(storage, stream, p["start_us"] - 1, p["start_us"] + 1):
            if us_from_datetime(record.start) == p["start_us"] and record.sha256 == p["sha256"]:
                return record
        return None

    async def upload(request: Request) -> Response:
        try:
            stream = validate_stream_id(request.path_params["id"])
            p = _params(request)
        except (ValueError, Exception) as exc:  # validate_stream_id raises LocalProtocolError
            return _error(400, str(exc))
        match = _CONTENT_RANGE_RE.fullmatch(request.headers.get("content-range", "").strip())
        if match is None or int(match.group(3)) != p["size"]:
            return _error(400, "Content-Range: bytes A-B/SIZE (or bytes */SIZE) with SIZE = size is required")
        await uploads.sweep_if_due()
        upload_path = uploads.path(stream, p["start_us"], p["name"])
        async with uploads.lock(upload_path):
            existing = await _existing(stream, p)
            if existing is not None:
                return JSONResponse(_record_json(existing), 200)
            final, _partial = await trio.to_thread.run_sync(storage.segment_paths, stream, p["start_us"])
            final = final.with_name(p["name"])

            def _held() -> int:
                upload_path.parent.mkdir(parents=True, exist_ok=True)
                return upload_path.stat().st_size if upload_path.exists() else 0

            held = await trio.to_thread.run_sync(_held)
            if match.group(1) is not None:
                first, last = int(match.group(1)), int(match.group(2))
                if first != held or last < first or last >= p["size"]:
                    return _error(409, f"upload holds {held} bytes; send from there", _range_headers(held))
                try:
                    async with await trio.open_file(upload_path, "ab") as out:
                        async for data in request.stream():
                            room = last + 1 - held
                            if len(data) > room:
                                return _error(400, "body longer than its Content-Range", _range_headers(held))
                            await out.write(data)
                            held += len(data)
                except ClientDisconnect:
                    _log.info("nvr: upload of %s dropped at %d bytes (kept for resuming)", final.name, held)
                    return Response(status_code=308, headers=_range_headers(held))
            if held < p["size"]:
                return Response(status_code=308, headers=_range_headers(held))
            size, sha = await trio.to_thread.run_sync(sha256_file, upload_path)
            if size != p["size"] or sha != p["sha256"]:
                with contextlib.suppress(FileNotFoundError):
                    await trio.to_thread.run_sync(upload_path.unlink)
                return _error(422, f"received {size} bytes with sha256 {sha}, expected {p['size']} {p['sha256']}")
            segment = FinishedSegment(
                stream_id=stream, partial_path=upload_path, final_path=final, start_us=p["start_us"],
                media_us=p["media_us"], size=size, sha256=sha, run_id=p["run_id"], frames=p["frames"], keyframes=(),
            )  # fmt: skip
            try:
                record = await storage.save_segment(segment)
            except OSError as exc:
                return _error(503, f"storing the segment failed: {exc}")
        uploads.forget(upload_path)
        return JSONResponse(_record_json(record), 201)

    def _range(request: Request) -> tuple[int, int]:
        q = request.query_params
        return _parse_us(q.get("start") or "0"), _parse_us(q.get("end") or str(_FAR_FUTURE_US))

    async def list_stream(request: Request) -> Response:
        try:
            stream = validate_stream_id(request.path_params["id"])
            start_us, end_us = _range(request)
        except (ValueError, Exception) as exc:
            return _error(400, str(exc))
        records = await _records(storage, stream, start_us, end_us)
        return JSONResponse({"stream_id": stream, "recordings": [_record_json(r) for r in records]})

    async def list_all(request: Request) -> Response:
        try:
            start_us, end_us = _range(request)
        except ValueError as exc:
            return _error(400, str(exc))
        records = await _records(storage, None, start_us, end_us)
        return JSONResponse({"recordings": [_record_json(r) for r in records]})

    async def playback(request: Request) -> Response:
        try:
            record = await _by_id(storage, request.path_params["id"])
        except Exception:  # a bad stream id in the opaque id
            record = None
        if record is None:
            return _error(404, "no such recording")
        try:
            path = await _local_file(storage, record)
        except OSError as exc:
            return _error(503, f"segment unreadable: {exc}")
        return FileResponse(path, media_type="video/mp4", headers={"X-Content-SHA256": record.sha256})

    async def delete(request: Request) -> Response:
        try:
            record = await _by_id(storage, request.path_params["id"])
        except Exception:
            record = None
        if record is None:
            return _error(404, "no such recording")
        try:
            await storage.delete_segments([record.id])  # every copy, in the storage's crash-safe order
        except OSError as exc:
            return _error(503, f"delete failed: {exc}")
        return Response(status_code=204)

    def route(path: str, endpoint: Any, method: str) -> Route:
        documented = Route(path, endpoint, methods=[method])
        documented.openapi = {method.lower(): OPENAPI_PATHS[path][method.lower()]}  # type: ignore[attr-defined]
        return documented

    routes = [
        route(API, list_all, "GET"),
        route(API + "/{id}/playback", playback, "GET"),
        route(API + "/{id}", delete, "DELETE"),
        route(API + "/{id}", upload, "POST"),
        route(API + "/{id}", list_stream, "GET"),
    ]
    return routes
