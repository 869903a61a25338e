"""What the console talks to: the `Backend` protocol, its records, and the REST implementation.

Strategy: every screen reads and commands through one small async protocol, so the real console
(`RemoteBackend`, httpx over fluxkit's REST API), the in-process console (`EmbeddedBackend` in
`fluxkit_tui.embedded`, which runs `run_fluxkit` in Trio guest mode and then uses a `RemoteBackend` against its
own API) and the tests' fakes are interchangeable. Records are plain frozen attrs classes built from the API's
JSON, so widgets never see raw dictionaries. `RemoteBackend.events()` reads the engine's own events from the
API's event WebSocket (`/api/video/events`, a small wsproto client on asyncio streams, since httpx has no
WebSockets); while that feed is down it derives events from what changes between two polls (state changes,
restarts, losses, new and gone streams), retrying the feed every `reconnect_delay` seconds, and for good when the
server has no such endpoint (404). Losses are not engine events, so they always come from the polls.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import attrs
import httpx

from fluxkit.api import FIRST_FRAME_HEADER

__all__ = [
    "PTZ_COMMANDS",
    "Backend",
    "BackendError",
    "Channel",
    "Device",
    "EventLine",
    "HttpAnswer",
    "Migration",
    "PtzResult",
    "Recordings",
    "RemoteBackend",
    "Span",
    "StorageReport",
    "StorageRetention",
    "StorageTier",
    "StreamStatus",
    "StreamStorage",
    "parse_metrics",
    "storage_report",
    "storage_status",
]

#: The PTZ command names the platform accepts (`POST /api/video/gb28181/devices/{id}/ptz`).
PTZ_COMMANDS = (
    "up", "down", "left", "right", "up_left", "up_right", "down_left", "down_right", "zoom_in", "zoom_out", "stop",
    "focus_near", "focus_far", "iris_open", "iris_close", "preset_set", "preset_call", "preset_delete",
)  # fmt: skip


class BackendError(Exception):
    """A request failed: the HTTP status (0 when nothing answered) and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status or 'no answer'}: {message}")
        self.status = status
        self.message = message


@attrs.frozen(kw_only=True, slots=True)
class StreamStatus:
    """One row of the streams table."""

    stream_id: str
    protocol: str = "-"
    codec: str = "-"
    width: int | None = None
    height: int | None = None
    fps: float = 0.0
    bitrate: float = 0.0
    gop: int | None = None
    losses: int = 0
    viewers: int = 0
    recording: str = "-"
    state: str = "waiting"
    restarts: int = 0
    last_error: str = ""
    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    jitter: float | None = None
    last_keyframe_age: float | None = None
    source_url: str = ""

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}" if self.width and self.height else "-"

    @classmethod
    def from_json(cls, body: dict[str, Any], recording: str = "-") -> StreamStatus:
        """Build from one item of `GET /api/video/streams`."""
        stats = body.get("statistics") or {}
        video = next((t for t in body.get("tracks") or () if t.get("kind") == "video"), None)
        first = video or next(iter(body.get("tracks") or ()), None) or {}
        source = body.get("source") or {}
        return cls(
            stream_id=str(body["stream_id"]),
            protocol=str(source.get("protocol") or _guess_protocol(body)),
            codec=str(first.get("codec") or "-"),
            width=first.get("width"),
            height=first.get("height"),
            fps=float(stats.get("fps") or 0.0),
            bitrate=float(stats.get("bitrate") or 0.0),
            gop=stats.get("gop"),
            losses=int(stats.get("losses") or 0),
            viewers=int(stats.get("subscribers") or body.get("subscribers") or 0),
            recording=recording,
            state=str(stats.get("state") or body.get("state") or "-"),
            restarts=int(stats.get("restarts") or 0),
            frames=int(stats.get("frames") or 0),
            keyframes=int(stats.get("keyframes") or 0),
            bytes=int(stats.get("bytes") or 0),
            jitter=stats.get("jitter"),
            last_keyframe_age=stats.get("last_keyframe_age"),
            source_url=str(source.get("source_url") or ""),
        )


def _guess_protocol(body: dict[str, Any]) -> str:
    return "pull" if body.get("supervised") else "push"


@attrs.frozen(kw_only=True, slots=True)
class Channel:
    """A GB28181 channel."""

    channel_id: str
    name: str = ""
    status: str = ""
    ptz_type: Any = None


@attrs.frozen(kw_only=True, slots=True)
class Device:
    """A GB28181 device and its channels."""

    device_id: str
    online: bool
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    address: str = ""
    transport: str = ""
    last_keepalive: float | None = None
    channels: tuple[Channel, ...] = ()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Device:
        return cls(
            device_id=str(body["device_id"]),
            online=bool(body.get("online")),
            name=str(body.get("name") or ""),
            manufacturer=str(body.get("manufacturer") or ""),
            model=str(body.get("model") or ""),
            address=str(body.get("address") or ""),
            transport=str(body.get("transport") or ""),
            last_keepalive=body.get("last_keepalive"),
            channels=tuple(
                Channel(
                    channel_id=str(c["channel_id"]),
                    name=str(c.get("name") or ""),
                    status=str(c.get("status") or ""),
                    ptz_type=c.get("ptz_type"),
                )
                for c in body.get("channels") or ()
            ),
        )


@attrs.frozen(kw_only=True, slots=True)
class PtzResult:
    """What one PTZ request sent and what came back."""

    request: dict[str, Any]
    status: int
    answer: str


@attrs.frozen(kw_only=True, slots=True)
class HttpAnswer:
    """One command request (method, path, JSON body) and the HTTP answer (status 0: nothing answered)."""

    method: str
    path: str
    request: dict[str, Any] | None
    status: int
    answer: str
    body: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@attrs.frozen(kw_only=True, slots=True)
class StreamStorage:
    """Recorded data of one stream (`/metrics`); `lag` is None when the stream is not in the engine."""

    stream_id: str
    bytes: int = 0
    segments: int = 0
    lag: float | None = None


@attrs.frozen(kw_only=True, slots=True)
class StorageRetention:
    """The retention limits of one storage backend (None: no such limit)."""

    max_age_days: float | None = None
    max_bytes: int | None = None
    min_free_bytes: int | None = None


@attrs.frozen(kw_only=True, slots=True)
class StorageTier:
    """One backend of the storage (a tier or a replica), from `GET /api/video/storage`."""

    name: str
    type: str = "-"
    role: str = "-"
    healthy: bool = True
    used_bytes: int = 0
    segments: int = 0
    free_bytes: int | None = None
    total_bytes: int | None = None
    retention: StorageRetention | None = None


@attrs.frozen(kw_only=True, slots=True)
class Migration:
    """Segments moving between tiers: `done` of `total`."""

    running: bool = False
    done: float = 0
    total: float = 0

    @property
    def fraction(self) -> float | None:
        return min(1.0, max(0.0, self.done / self.total)) if self.total > 0 else None


@attrs.frozen(kw_only=True, slots=True)
class StorageReport:
    """Storage use: per stream from `/metrics`, and the tiers from `GET /api/video/storage` where it answers.

    `policy` is None (and `tiers` empty) when the server does not report its storage status; `status_error` then
    says why (an older server, or storage disabled).
    """

    streams: tuple[StreamStorage, ...] = ()
    disk_free: int | None = None
    disk_total: int | None = None
    retention: dict[str, Any] | None = None
    policy: str | None = None
    tiers: tuple[StorageTier, ...] = ()
    migration: Migration | None = None
    pending_repairs: int = 0
    status_error: str | None = None

    @property
    def recorded_bytes(self) -> int:
        return sum(s.bytes for s in self.streams)


@attrs.frozen(kw_only=True, slots=True)
class Span:
    """A recorded segment or a gap, in UTC."""

    start: dt.datetime
    end: dt.datetime
    size: int = 0
    reason: str = ""


@attrs.frozen(kw_only=True, slots=True)
class Recordings:
    """Segments and gaps of one stream over a range."""

    stream_id: str
    start: dt.datetime
    end: dt.datetime
    segments: tuple[Span, ...]
    gaps: tuple[Span, ...]


@attrs.frozen(kw_only=True, slots=True)
class EventLine:
    """One line of the events log."""

    time: dt.datetime
    kind: str
    stream_id: str
    text: str


class Backend(Protocol):
    """Everything the console needs from fluxkit; all methods run on Textual's asyncio loop."""

    description: str

    async def start(self) -> None:
        """Connect (or start the engine); called once when the app mounts."""

    async def aclose(self) -> None:
        """Disconnect (or stop the engine); called once when the app unmounts."""

    async def list_streams(self) -> list[StreamStatus]: ...

    async def get_stream(self, stream_id: str) -> dict[str, Any]: ...

    async def snapshot(self, stream_id: str) -> bytes: ...

    async def recordings(self, stream_id: str, start: dt.datetime, end: dt.datetime) -> Recordings: ...

    async def export(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        path: Path,
        *,
        speed: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write the range as MP4 to `path`; `progress(bytes_so_far)` after each chunk; returns the size."""
        ...

    def playback(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float | None = None,
        on_first_frame: Callable[[dt.datetime], None] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The range as one fragmented MP4, in chunks as the server makes it (paced at `speed`).

        An async generator: close it (`contextlib.aclosing`) to close the connection. Raises `BackendError` on
        the first `__anext__` when the server refuses (404: nothing recorded, 503: no storage, 400, 413).
        `on_first_frame(time)` is called before the first chunk with the recording time of the MP4's first frame
        when the server says it (the `X-Fluxkit-First-Frame` header).
        """
        ...

    async def devices(self) -> list[Device]: ...

    async def ptz(
        self, device_id: str, channel_id: str, command: str, *, speed: int = 128, preset: int | None = None
    ) -> PtzResult: ...

    async def start_live(self, device_id: str, channel_id: str, transport: str = "udp") -> HttpAnswer:
        """Start a GB28181 channel's live video; the answer's body holds the `stream_id` on success."""
        ...

    async def stop_live(self, stream_id: str) -> HttpAnswer:
        """Stop a live stream started with `start_live`."""
        ...

    async def storage(self) -> StorageReport: ...

    def events(self) -> AsyncIterator[EventLine]:
        """Events as they happen, until the backend closes."""
        ...


def format_time(when: dt.datetime) -> str:
    """RFC 3339 UTC with a Z, as the API wants it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _unescape_label(value: str) -> str:
    return value.replace("\\\\", "\0").replace('\\"', '"').replace("\\n", "\n").replace("\0", "\\")


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a Prometheus text exposition page (format 0.0.4), by metric name.

    Comments, blank lines and lines that do not parse are skipped; a timestamp after the value is ignored.
    """
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        labels: dict[str, str] = {}
        brace = line.find("{")
        if brace >= 0:
            name = line[:brace].strip()
            rest = line[brace + 1 :]
            while True:  # name="value" pairs; values escape backslash, double quote and newline
                rest = rest.lstrip(" ,")
                if rest.startswith("}"):
                    rest = rest[1:]
                    break
                eq = rest.find('="')
                if eq <= 0:
                    rest = ""
                    break
                key, rest = rest[:eq].strip(), rest[eq + 2 :]
                end = 0
                while True:
                    end = rest.find('"', end)
                    if end < 0:
                        break
                    slashes = len(rest[:end]) - len(rest[:end].rstrip("\\"))
                    if slashes % 2 == 0:
                        break
                    end += 1
                if end < 0:
                    rest = ""
                    break
                labels[key] = _unescape_label(rest[:end])
                rest = rest[end + 1 :]
            fields = rest.split()
        else:
            name, _, rest = line.partition(" ")
            fields = rest.split()
        if not name or not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        families.setdefault(name, []).append((labels, value))
    return families


def storage_report(metrics: str) -> StorageReport:
    """The storage figures of a `/metrics` page (`fluxkit_recording_*`, `fluxkit_disk_*`)."""
    families = parse_metrics(metrics)
    by_stream: dict[str, dict[str, float]] = {}
    for name, field in (
        ("fluxkit_recording_bytes", "bytes"),
        ("fluxkit_recording_segments", "segments"),
        ("fluxkit_recording_lag_seconds", "lag"),
    ):
        for labels, value in families.get(name, ()):
            if "stream" in labels:
                by_stream.setdefault(labels["stream"], {})[field] = value

    def single(name: str) -> int | None:
        samples = families.get(name)
        return int(samples[0][1]) if samples else None

    return StorageReport(
        streams=tuple(
            StreamStorage(
                stream_id=sid,
                bytes=int(f.get("bytes", 0)),
                segments=int(f.get("segments", 0)),
                lag=f.get("lag"),
            )
            for sid, f in sorted(by_stream.items())
        ),
        disk_free=single("fluxkit_disk_free_bytes"),
        disk_total=single("fluxkit_disk_total_bytes"),
    )


def _number(value: Any, default: float = 0.0) -> float:
    """A finite JSON number, else `default` (booleans are not numbers here)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _int_or_none(value: Any) -> int | None:
    number = _number(value, math.nan)
    return None if math.isnan(number) else int(number)


def storage_status(report: StorageReport, body: Any) -> StorageReport:
    """`report` with the tiers, migration and repairs of a `GET /api/video/storage` answer (unknown fields ignored).

    The body is `{"policy", "backends": [{"name", "type", "role", "healthy", "used_bytes", "segments", "free_bytes",
    "total_bytes", "retention": {"max_age_days", "max_bytes", "min_free_bytes"}}], "migration": {"running", "done",
    "total"} | null, "pending_repairs"}`; a body of another shape leaves `report` as it is, with `status_error` set.
    """
    if not isinstance(body, dict) or not isinstance(body.get("backends"), list):
        return attrs.evolve(report, status_error="the storage status has an unexpected shape")
    tiers = []
    for item in body["backends"]:
        if not isinstance(item, dict):
            continue
        limits = item.get("retention")
        retention = None
        if isinstance(limits, dict):
            age = limits.get("max_age_days")
            retention = StorageRetention(
                max_age_days=_number(age) if age is not None else None,
                max_bytes=_int_or_none(limits.get("max_bytes")),
                min_free_bytes=_int_or_none(limits.get("min_free_bytes")),
            )
        tiers.append(
            StorageTier(
                name=str(item.get("name") or "?"),
                type=str(item.get("type") or "-"),
                role=str(item.get("role") or "-"),
                healthy=item.get("healthy") is not False,
                used_bytes=_int_or_none(item.get("used_bytes")) or 0,
                segments=_int_or_none(item.get("segments")) or 0,
                free_bytes=_int_or_none(item.get("free_bytes")),
                total_bytes=_int_or_none(item.get("total_bytes")),
                retention=retention,
            )
        )
    moving = body.get("migration")
    migration = None
    if isinstance(moving, dict):
        migration = Migration(
            running=bool(moving.get("running")), done=_number(moving.get("done")), total=_number(moving.get("total"))
        )
    return attrs.evolve(
        report,
        policy=str(body.get("policy") or "-"),
        tiers=tuple(tiers),
        migration=migration,
        pending_repairs=_int_or_none(body.get("pending_repairs")) or 0,
        status_error=None,
    )


def _recording_states(metrics: str) -> dict[str, str]:
    """Per-stream recording state from `/metrics`: "rec" when the latest segment is recent, else "stalled"."""
    states: dict[str, str] = {}
    for line in metrics.splitlines():
        if not line.startswith("fluxkit_recording_lag_seconds{"):
            continue
        labels, _, value = line.rpartition(" ")
        start = labels.find('stream="')
        if start < 0:
            continue
        name = labels[start + 8 : labels.find('"', start + 8)]
        try:
            lag = float(value)
        except ValueError:
            continue
        states[name] = "rec" if lag < 30.0 else "stalled"
    return states


class RemoteBackend:
    """fluxkit's REST API over httpx.

    Args:
        url: the API's base URL (`http://127.0.0.1:8080`).
        token: the bearer token (None: no Authorization header).
        poll_interval: seconds between the polls that `events()` derives events from when the event feed is down.
        transport: an httpx transport (tests: `httpx.ASGITransport`); None for the network.
        event_feed: read events from `/api/video/events`; None (default): only when `transport` is None (an
            injected transport cannot carry a WebSocket).
        reconnect_delay: seconds between attempts to reopen a lost event feed.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        poll_interval: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        event_feed: bool | None = None,
        reconnect_delay: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.description = self.url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, transport=transport, timeout=timeout)
        self.poll_interval = poll_interval
        self._previous: dict[str, StreamStatus] | None = None
        self._event_queue: list[EventLine] = []
        self._recording: dict[str, str] = {}
        self._polls = 0
        self._token = token
        self.event_feed = transport is None if event_feed is None else event_feed
        self.reconnect_delay = reconnect_delay
        #: False once the server answered 404 to `GET /api/video/storage` (not asked again).
        self._storage_status = True
        #: True while the event WebSocket is open (the poll diff then only reports losses).
        self.feed_open = False
        #: Playback responses open now (`playback` streams not yet closed).
        self.playbacks_open = 0

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, **params: str) -> httpx.Response:
        try:
            response = await self._client.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise BackendError(0, str(exc) or type(exc).__name__) from None
        if response.status_code >= 400:
            raise BackendError(response.status_code, _message(response))
        return response

    async def list_streams(self) -> list[StreamStatus]:
        body = (await self._get("/api/video/streams")).json()
        if self._polls % 5 == 0:  # /metrics walks the storage: every 5th poll is enough for a state column
            try:
                self._recording = _recording_states((await self._get("/metrics")).text)
            except BackendError:
                self._recording = {}
        self._polls += 1
        rows = [StreamStatus.from_json(item, self._recording.get(item["stream_id"], "-")) for item in body["streams"]]
        self._diff(rows)
        return rows

    def _diff(self, rows: list[StreamStatus]) -> None:
        now = dt.datetime.now(dt.UTC)
        current = {r.stream_id: r for r in rows}
        previous = self._previous
        self._previous = current
        if previous is None:
            return
        out = self._event_queue
        for sid, row in current.items():
            old = previous.get(sid)
            if self.feed_open:  # the engine's own events cover the rest
                if old is not None and row.losses > old.losses:
                    out.append(EventLine(time=now, kind="loss", stream_id=sid, text=f"+{row.losses - old.losses} lost"))
                continue
            if old is None:
                out.append(EventLine(time=now, kind="stream", stream_id=sid, text=f"new stream ({row.state})"))
                continue
            if old.state != row.state:
                out.append(EventLine(time=now, kind="state", stream_id=sid, text=f"{old.state} -> {row.state}"))
            if row.restarts > old.restarts:
                out.append(EventLine(time=now, kind="restart", stream_id=sid, text=f"restarted ({row.restarts})"))
            if row.losses > old.losses:
                out.append(EventLine(time=now, kind="loss", stream_id=sid, text=f"+{row.losses - old.losses} lost"))
        for sid in () if self.feed_open else previous.keys() - current.keys():
            out.append(EventLine(time=now, kind="stream", stream_id=sid, text="stream gone"))
        del out[:-1000]

    async def events(self) -> AsyncIterator[EventLine]:
        import asyncio

        loop = asyncio.get_running_loop()
        retry_at = loop.time()
        while True:
            if self.event_feed and loop.time() >= retry_at:
                try:
                    feed = _event_feed(self.url, self._token, self._feed_opened, tick=self.poll_interval / 2)
                    async with contextlib.aclosing(feed):  # the socket closes when the console stops reading
                        async for body in feed:
                            for line in self._take_queued():
                                yield line  # losses from the polls (and, before the handshake, everything)
                            if body is not None:
                                yield _event_line(body)
                except _NoEventFeed:
                    self.event_feed = False  # an older server: polls only, for good
                except BackendError:
                    pass
                finally:
                    self.feed_open = False
                retry_at = loop.time() + self.reconnect_delay
            for line in self._take_queued():
                yield line
            await asyncio.sleep(self.poll_interval / 2)

    def _feed_opened(self) -> None:
        self.feed_open = True
        self._event_queue.clear()  # what the polls derived so far, the feed now tells first-hand

    def _take_queued(self) -> list[EventLine]:
        lines, self._event_queue = self._event_queue, []
        return lines

    async def get_stream(self, stream_id: str) -> dict[str, Any]:
        result: dict[str, Any] = (await self._get(f"/api/video/streams/{quote(stream_id, safe='')}")).json()
        return result

    async def snapshot(self, stream_id: str) -> bytes:
        return (await self._get(f"/api/video/streams/{quote(stream_id, safe='')}/snapshot")).content

    async def recordings(self, stream_id: str, start: dt.datetime, end: dt.datetime) -> Recordings:
        path = f"/api/video/recordings/{quote(stream_id, safe='')}"
        body = (await self._get(path, start=format_time(start), end=format_time(end))).json()
        return Recordings(
            stream_id=stream_id,
            start=start,
            end=end,
            segments=tuple(
                Span(start=parse_time(s["start"]), end=parse_time(s["end"]), size=int(s.get("size") or 0))
                for s in body.get("segments") or ()
            ),
            gaps=tuple(
                Span(start=parse_time(g["start"]), end=parse_time(g["end"]), reason=str(g.get("reason") or ""))
                for g in body.get("gaps") or ()
            ),
        )

    async def export(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        path: Path,
        *,
        speed: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        params = {"start": format_time(start), "end": format_time(end)}
        if speed is not None and speed != 1.0:
            params["speed"] = f"{speed:g}"
        url = f"/api/video/recordings/{quote(stream_id, safe='')}/playback"
        done = 0
        partial_path = path.with_name(path.name + ".part")
        try:
            async with self._client.stream("GET", url, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise BackendError(response.status_code, _message(response))
                with partial_path.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done)
        except httpx.HTTPError as exc:
            partial_path.unlink(missing_ok=True)
            raise BackendError(0, str(exc) or type(exc).__name__) from None
        except BaseException:
            partial_path.unlink(missing_ok=True)
            raise
        partial_path.replace(path)
        return done

    async def playback(
        self,
        stream_id: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        speed: float | None = None,
        on_first_frame: Callable[[dt.datetime], None] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        params = {"start": format_time(start), "end": format_time(end)}
        if speed is not None:
            params["speed"] = f"{speed:g}"
        url = f"/api/video/recordings/{quote(stream_id, safe='')}/playback"
        # No read timeout: a paced answer is quiet between fragments (4 s at 0.25x), and a paused reader stops
        # reading on purpose.
        timeout = httpx.Timeout(self._client.timeout.connect, read=None)
        opened = False
        try:
            async with self._client.stream("GET", url, params=params, timeout=timeout) as response:
                self.playbacks_open += 1
                opened = True
                if response.status_code >= 400:
                    await response.aread()
                    raise BackendError(response.status_code, _message(response))
                first_frame = response.headers.get(FIRST_FRAME_HEADER)
                if first_frame is not None and on_first_frame is not None:
                    with contextlib.suppress(ValueError):  # an older server's answer simply has no anchor
                        on_first_frame(parse_time(first_frame))
                async for chunk in response.aiter_bytes():
                    yield chunk
        except httpx.HTTPError as exc:
            raise BackendError(0, str(exc) or type(exc).__name__) from None
        finally:
            if opened:  # the response is closed by now
                self.playbacks_open -= 1

    async def devices(self) -> list[Device]:
        body = (await self._get("/api/video/gb28181/devices")).json()
        return [Device.from_json(d) for d in body.get("devices") or ()]

    async def ptz(
        self, device_id: str, channel_id: str, command: str, *, speed: int = 128, preset: int | None = None
    ) -> PtzResult:
        request: dict[str, Any] = {"channel_id": channel_id, "command": command, "speed": speed}
        if preset is not None:
            request["preset"] = preset
        try:
            response = await self._client.post(
                f"/api/video/gb28181/devices/{quote(device_id, safe='')}/ptz", json=request
            )
        except httpx.HTTPError as exc:
            return PtzResult(request=request, status=0, answer=str(exc) or type(exc).__name__)
        answer = _message(response) if response.status_code >= 400 else response.text
        return PtzResult(request=request, status=response.status_code, answer=answer)

    async def _command(self, method: str, path: str, request: dict[str, Any] | None) -> HttpAnswer:
        try:
            response = await self._client.request(method, path, json=request)
        except httpx.HTTPError as exc:
            message = str(exc) or type(exc).__name__
            return HttpAnswer(method=method, path=path, request=request, status=0, answer=message)
        body: dict[str, Any] | None = None
        if response.status_code < 400 and response.content:
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        answer = _message(response) if response.status_code >= 400 else response.text
        status = response.status_code
        return HttpAnswer(method=method, path=path, request=request, status=status, answer=answer, body=body)

    async def start_live(self, device_id: str, channel_id: str, transport: str = "udp") -> HttpAnswer:
        path = f"/api/video/gb28181/devices/{quote(device_id, safe='')}/live"
        return await self._command("POST", path, {"channel_id": channel_id, "transport": transport})

    async def stop_live(self, stream_id: str) -> HttpAnswer:
        return await self._command("DELETE", f"/api/video/gb28181/streams/{quote(stream_id, safe='')}", None)

    async def storage(self) -> StorageReport:
        report = storage_report((await self._get("/metrics")).text)
        if not self._storage_status:
            return attrs.evolve(report, status_error="the server does not report its storage status")
        try:
            body = (await self._get("/api/video/storage")).json()
        except BackendError as exc:
            if exc.status in (404, 405):  # a fluxkit from before the endpoint: /metrics only, for good
                self._storage_status = False
            return attrs.evolve(report, status_error=str(exc))
        except ValueError:
            return attrs.evolve(report, status_error="the storage status is not JSON")
        return storage_status(report, body)


class _NoEventFeed(Exception):
    """The server has no event WebSocket (an older fluxkit answers 404): derive events from polls instead."""


def _event_line(body: dict[str, Any]) -> EventLine:
    """An `EventLine` from one message of `/api/video/events` (the same text the embedded console writes)."""
    name = str(body.get("type") or "event")
    try:
        when = parse_time(str(body["time"]))
    except (KeyError, ValueError):
        when = dt.datetime.now(dt.UTC)
    fields = {k: v for k, v in body.items() if k not in ("type", "stream_id", "time", "engine_time")}
    text = " ".join(f"{k}={_field_text(v)}" for k, v in fields.items())
    kind = {"StreamFailed": "failed", "SourceReconnecting": "restart", "EventsDropped": "loss"}.get(name, "engine")
    return EventLine(time=when, kind=kind, stream_id=str(body.get("stream_id") or "-"), text=f"{name} {text}".strip())


def _field_text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_field_text(v) for v in value) + "]"
    if isinstance(value, dict) and "codec" in value:
        size = f" {value['width']}x{value['height']}" if value.get("width") and value.get("height") else ""
        fps = f"@{value['fps']:g}" if isinstance(value.get("fps"), int | float) else ""
        return f"{value['codec']}{size}{fps}"
    return str(value)


async def _event_feed(
    url: str, token: str | None, on_open: Callable[[], None], *, tick: float = 0.5, max_message: int = 1 << 20
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The JSON messages of `<url>/api/video/events`: a small WebSocket client (wsproto over asyncio streams).

    Yields None after `tick` quiet seconds, so the caller can pass on what it gathered meanwhile.

    Raises:
        _NoEventFeed: the server answered the handshake with 404 or 405 (no such endpoint).
        BackendError: any other refusal, or a connection that failed or ended.
    """
    import asyncio

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        CloseConnection,
        Ping,
        RejectConnection,
        RejectData,
        Request,
        TextMessage,
    )
    from wsproto.utilities import ProtocolError as WsProtocolError

    target = httpx.URL(url)
    secure = target.scheme == "https"
    port = target.port or (443 if secure else 80)
    path = target.path.rstrip("/") + "/api/video/events"
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(target.host, port, ssl=secure or None), 10)
    except (OSError, TimeoutError) as exc:
        raise BackendError(0, f"event feed: {exc}") from None
    ws = WSConnection(ConnectionType.CLIENT)
    try:
        writer.write(ws.send(Request(host=f"{target.host}:{port}", target=path, extra_headers=headers)))
        await writer.drain()
        text: list[str] = []
        size = 0
        status = 0
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), tick)
            except TimeoutError:
                yield None
                continue
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    status = 101
                    on_open()
                elif isinstance(event, RejectConnection):
                    status = event.status_code
                    if event.status_code in (404, 405):
                        raise _NoEventFeed
                elif isinstance(event, RejectData):
                    if event.body_finished:
                        raise BackendError(status, "event feed refused")
                elif isinstance(event, TextMessage):
                    text.append(event.data)
                    size += len(event.data)
                    if size > max_message:
                        raise BackendError(0, "event feed: a message is too large")
                    if event.message_finished:
                        body = "".join(text)
                        text, size = [], 0
                        try:
                            message = json.loads(body)
                        except ValueError:
                            continue
                        if isinstance(message, dict):
                            yield message
                elif isinstance(event, Ping):
                    writer.write(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    with contextlib.suppress(Exception):
                        writer.write(ws.send(event.response()))
                    raise BackendError(0, f"event feed closed ({event.code} {event.reason or ''})".strip())
            if not data:
                raise BackendError(0, "event feed: the connection ended")
            await writer.drain()
    except (OSError, WsProtocolError) as exc:
        raise BackendError(0, f"event feed: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:200]
