"""What the console talks to: the `Backend` protocol, its records, and the REST implementation.

Strategy: every screen reads and commands through one small async protocol, so the real console
(`RemoteBackend`, httpx over fluxkit's REST API), the in-process console (`EmbeddedBackend` in
`fluxkit_tui.embedded`, which runs `run_fluxkit` in Trio guest mode and then uses a `RemoteBackend` against its
own API) and the tests' fakes are interchangeable. Records are plain frozen attrs classes built from the API's
JSON, so widgets never see raw dictionaries. The remote API has no event stream, so `RemoteBackend.events()`
derives events from what changes between two polls (state changes, restarts, losses, new and gone streams).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import attrs
import httpx

__all__ = [
    "PTZ_COMMANDS",
    "Backend",
    "BackendError",
    "Channel",
    "Device",
    "EventLine",
    "PtzResult",
    "Recordings",
    "RemoteBackend",
    "Span",
    "StreamStatus",
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

    async def devices(self) -> list[Device]: ...

    async def ptz(
        self, device_id: str, channel_id: str, command: str, *, speed: int = 128, preset: int | None = None
    ) -> PtzResult: ...

    def events(self) -> AsyncIterator[EventLine]:
        """Events as they happen, until the backend closes."""
        ...


def format_time(when: dt.datetime) -> str:
    """RFC 3339 UTC with a Z, as the API wants it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


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
        poll_interval: seconds between the polls that `events()` derives events from.
        transport: an httpx transport (tests: `httpx.ASGITransport`); None for the network.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        poll_interval: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
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
            if old is None:
                out.append(EventLine(time=now, kind="stream", stream_id=sid, text=f"new stream ({row.state})"))
                continue
            if old.state != row.state:
                out.append(EventLine(time=now, kind="state", stream_id=sid, text=f"{old.state} -> {row.state}"))
            if row.restarts > old.restarts:
                out.append(EventLine(time=now, kind="restart", stream_id=sid, text=f"restarted ({row.restarts})"))
            if row.losses > old.losses:
                out.append(EventLine(time=now, kind="loss", stream_id=sid, text=f"+{row.losses - old.losses} lost"))
        for sid in previous.keys() - current.keys():
            out.append(EventLine(time=now, kind="stream", stream_id=sid, text="stream gone"))
        del out[:-1000]

    async def events(self) -> AsyncIterator[EventLine]:
        import asyncio

        while True:
            if self._event_queue:
                lines, self._event_queue = self._event_queue, []
                for line in lines:
                    yield line
            await asyncio.sleep(self.poll_interval / 2)

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


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text[:200]
