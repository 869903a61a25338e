"""The REST API: a Starlette app over the engine, the snapshot service and the recording storage.

Strategy: every handler validates its input first and turns each expected failure into an `HTTPException`
(JSON body `{"error": message, "status": code}`); a catch-all handler logs anything else and answers a JSON 500,
which only a bug can reach. Stream ids are matched with Starlette's `path` convertor so that an id carrying `/`,
`../` (percent-encoded) or control characters reaches the handler and is refused with a 400 by storage's
`validate_stream_id`, instead of silently matching another route. Authentication is a middleware around the
whole app (`_auth`). Playback and live view come from `fluxkit.playback`, imported when first used; the first
chunk of an export is produced before the response starts, so its errors still get their 4xx status.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import attrs
import trio
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from fluxkit.config import StreamSettings
from fluxkit.config import _redact as redact_url  # the password-free form config messages use
from fluxkit.engine import Source, StreamExistsError, StreamInfo, StreamNotFoundError, VideoEngine
from fluxkit.errors import FluxkitError, LocalProtocolError
from fluxkit.sources import UnsupportedProtocol, make_source_factory
from fluxkit.storage import validate_stream_id

from ._auth import BearerAuthMiddleware
from ._events import EVENTS_DROPPED, event_json
from ._metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ._metrics import render_metrics
from ._openapi import openapi_document
from ._times import format_time, parse_time

__all__ = [
    "DEFAULT_LIVE_SEND_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_LIST_RANGE",
    "DEFAULT_MAX_PLAYBACK_RANGE",
    "ApiServices",
    "make_app",
]

_log = logging.getLogger("fluxkit.api")

#: Longest range (seconds) a recordings or keyframes listing may span: 31 days.
DEFAULT_MAX_LIST_RANGE = 31 * 86400.0
#: Longest range (seconds) one playback export may span: 24 hours (larger is 413).
DEFAULT_MAX_PLAYBACK_RANGE = 24 * 3600.0
#: Largest request body accepted (bytes); larger is 413.
DEFAULT_MAX_BODY_SIZE = 64 * 1024
#: Seconds one live-view WebSocket message may take to send before the client is dropped as too slow.
DEFAULT_LIVE_SEND_TIMEOUT = 10.0

_BODY_FIELDS = ("stream_id", "protocol", "source_url", "transport")
_SPEED_RANGE = (0.25, 4.0)
#: Playback answers say the recording time of their first frame (a keyframe at or before `start`).
FIRST_FRAME_HEADER = "X-Fluxkit-First-Frame"


def _default_source(settings: StreamSettings) -> Source:
    return make_source_factory()(settings)


@attrs.frozen(kw_only=True, slots=True)
class ApiServices:
    """What the API serves.

    Attributes:
        engine: the running engine (streams, statistics, live frames).
        storage: recording storage (`LocalStorage`); None disables the recordings endpoints (503) and the
            recording metrics.
        snapshots: the running `SnapshotService`; None makes snapshots 503.
        token: the bearer token every request needs; None turns authentication off.
        source_factory: builds the `Source` of a stream created with `POST /api/video/streams` (default:
            `fluxkit.sources.make_source_factory()`: RTSP and RTMP; `UnsupportedProtocol` answers 422).
        max_list_range: longest range a recordings or keyframes listing may span, seconds (400 beyond).
        max_playback_range: longest range a playback export may span, seconds (413 beyond).
        max_body_size: largest request body, bytes (413 beyond).
        live_send_timeout: seconds a live-view or event message may take to send before that client is dropped.
        wall_clock: epoch seconds now (recording lag in the metrics); injectable for tests.
        extra_routes: more routes mounted ahead of these (the GB28181 device endpoints, WHIP, the NVR protocol);
            the `openapi` attribute of each (`{method: operation}`) is merged into `/api/openapi.json`.
    """

    engine: VideoEngine
    storage: Any = None
    snapshots: Any = None
    token: str | None = None
    source_factory: Callable[[StreamSettings], Source] = _default_source
    max_list_range: float = DEFAULT_MAX_LIST_RANGE
    max_playback_range: float = DEFAULT_MAX_PLAYBACK_RANGE
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    live_send_timeout: float = DEFAULT_LIVE_SEND_TIMEOUT
    wall_clock: Callable[[], float] = time.time
    extra_routes: tuple[BaseRoute, ...] = ()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, message, headers)


def _stream_id(request: Request | WebSocket) -> str:
    stream_id: str = request.path_params["stream_id"]
    try:
        return validate_stream_id(stream_id)
    except LocalProtocolError:
        raise _error(400, f"invalid stream id {stream_id[:80]!r}: 1 to 128 of A-Z a-z 0-9 _ - @ : + = , ~ . "
                     "not starting with '.'") from None  # fmt: skip


def _query(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise _error(400, f"{name} is given more than once")
    return values[0] if values else None


def _time_param(request: Request, name: str) -> dt.datetime:
    text = _query(request, name)
    if text is None or not text:
        raise _error(400, f"the query parameter {name} is required (RFC 3339, e.g. 2026-02-11T10:00:00Z)")
    try:
        return parse_time(text, name=name)
    except ValueError as exc:
        raise _error(400, str(exc)) from None


def _range(request: Request, limit: float, *, limit_status: int) -> tuple[dt.datetime, dt.datetime]:
    start = _time_param(request, "start")
    end = _time_param(request, "end")
    if end <= start:
        raise _error(400, "end must be after start")
    if (end - start).total_seconds() > limit:
        raise _error(limit_status, f"the range is too large: at most {limit:g} seconds")
    return start, end


def _track_json(track: Any) -> dict[str, Any]:
    return {
        "codec": track.codec,
        "kind": track.kind,
        "width": track.width,
        "height": track.height,
        "fps": track.fps,
        "sample_rate": track.sample_rate,
        "channels": track.channels,
    }


class _AnyTextConvertor(Convertor[str]):
    """Like Starlette's `path` convertor but also across newlines, so that an id with a control character reaches
    the handler (and its 400) instead of falling through to a 404."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("fluxkit_any", _AnyTextConvertor())


class _Api:
    def __init__(self, services: ApiServices) -> None:
        self.services = services
        self.engine = services.engine
        #: Sources created through the API: {stream_id: settings}, shown as the stream's `source`.
        self.created: dict[str, StreamSettings] = {}
        #: The OpenAPI document with the mounted route groups' own paths, built once (a clash fails `make_app`).
        self.document = openapi_document(services.extra_routes)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _info(self, stream_id: str) -> StreamInfo:
        for info in self.engine.list_streams():
            if info.stream_id == stream_id:
                return info
        raise _error(404, f"no stream {stream_id!r}")

    def _stream_json(self, info: StreamInfo) -> dict[str, Any]:
        try:
            s = self.engine.stream_statistics(info.stream_id)
        except StreamNotFoundError:
            statistics = None
        else:
            statistics = {
                "frames": s.frames,
                "keyframes": s.keyframes,
                "bytes": s.bytes,
                "fps": s.fps,
                "bitrate": s.bitrate,
                "gop": s.gop,
                "last_keyframe_age": s.last_keyframe_age,
                "losses": s.losses,
                "jitter": s.jitter,
                "subscribers": s.subscribers,
                "restarts": s.restarts,
            }
        created = self.created.get(info.stream_id)
        source = None
        if created is not None:
            source = {
                "protocol": created.protocol,
                "source_url": redact_url(created.source_url),
                "transport": created.transport or "tcp",
            }
        return {
            "stream_id": info.stream_id,
            "state": info.state,
            "supervised": info.supervised,
            "subscribers": info.subscribers,
            "tracks": [_track_json(t) for t in info.tracks],
            "statistics": statistics,
            "source": source,
        }

    def _storage(self) -> Any:
        if self.services.storage is None:
            raise _error(503, "recording storage is not enabled")
        return self.services.storage

    def _known(self, stream_id: str) -> bool:
        return any(info.stream_id == stream_id for info in self.engine.list_streams())

    async def _body(self, request: Request) -> Any:
        limit = self.services.max_body_size
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _error(413, f"the body is larger than {limit} bytes")
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > limit:
                raise _error(413, f"the body is larger than {limit} bytes")
        try:
            return json.loads(bytes(chunks))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _error(422, f"the body is not valid JSON: {exc}") from None

    # -- streams -----------------------------------------------------------------------------------------------

    async def list_streams(self, request: Request) -> Response:
        return JSONResponse({"streams": [self._stream_json(i) for i in self.engine.list_streams()]})

    async def create_stream(self, request: Request) -> Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise _error(422, "the body must be a JSON object")
        problems: list[str] = [f"unknown field {key!r}" for key in body if key not in _BODY_FIELDS]
        for key in _BODY_FIELDS:
            value = body.get(key)
            if key not in body and key != "transport":
                problems.append(f"{key} is required")
            elif not isinstance(value, str) and not (key == "transport" and value is None):
                problems.append(f"{key} must be a string{' or null' if key == 'transport' else ''}")
        if problems:
            raise _error(422, "; ".join(problems))
        with attrs.validators.disabled():
            settings = StreamSettings(
                stream_id=body["stream_id"],
                protocol=body["protocol"],
                source_url=body["source_url"],
                transport=body.get("transport"),
            )
        for field in attrs.fields(StreamSettings):
            try:
                if field.validator is not None:
                    field.validator(settings, field, getattr(settings, field.name))
            except ValueError as exc:
                problems.append(f"{field.name}: {exc}")
        if not problems:
            try:
                validate_stream_id(settings.stream_id)
            except LocalProtocolError as exc:
                problems.append(f"stream_id: {exc}")
        if problems:
            raise _error(422, "; ".join(problems))
        if self._known(settings.stream_id):
            raise _error(409, f"stream {settings.stream_id!r} already exists")
        try:
            source = self.services.source_factory(settings)
        except UnsupportedProtocol as exc:
            raise _error(422, f"protocol {settings.protocol!r}: {exc}") from None
        except (ValueError, FluxkitError) as exc:
            raise _error(422, f"source_url: {exc}") from None
        try:
            self.engine.add_source(settings.stream_id, source)
        except StreamExistsError:
            raise _error(409, f"stream {settings.stream_id!r} already exists") from None
        self.created[settings.stream_id] = settings
        info = self._info(settings.stream_id)
        location = f"/api/video/streams/{quote(settings.stream_id, safe='')}"
        return JSONResponse(self._stream_json(info), status_code=201, headers={"Location": location})

    async def get_stream(self, request: Request) -> Response:
        return JSONResponse(self._stream_json(self._info(_stream_id(request))))

    async def delete_stream(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        info = self._info(stream_id)
        try:
            if info.supervised:
                self.engine.remove_source(stream_id)
            else:
                self.engine.stop_stream(stream_id)
        except StreamNotFoundError:
            raise _error(404, f"no stream {stream_id!r}") from None
        self.created.pop(stream_id, None)
        return Response(status_code=204)

    async def snapshot(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        self._info(stream_id)
        if self.services.snapshots is None:
            raise _error(503, "snapshots are not enabled")
        from fluxkit.keyframes import SnapshotUnavailable

        try:
            jpeg: bytes = await self.services.snapshots.snapshot(stream_id)
        except SnapshotUnavailable as exc:
            raise _error(503, f"no snapshot yet: {exc}", {"Retry-After": "1"}) from None
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    # -- recordings --------------------------------------------------------------------------------------------

    async def storage_status(self, request: Request) -> Response:
        """`GET /api/video/storage`: the storage's own report (tiers, usage, retention, migration); 503 without one."""
        status = getattr(self._storage(), "status", None)
        if status is None:
            raise _error(503, "this recording storage does not report its status")
        return JSONResponse(await status())

    async def recordings(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        start, end = _range(request, self.services.max_list_range, limit_status=400)
        result = await self._storage().query_segments(stream_id, start, end)
        if not result.segments and not result.gaps and not self._known(stream_id):
            raise _error(404, f"no stream or recordings {stream_id!r} in this range")
        return JSONResponse(
            {
                "stream_id": stream_id,
                "start": format_time(start),
                "end": format_time(end),
                "segments": [
                    {
                        "start": format_time(s.start),
                        "end": format_time(s.end),
                        "size": s.size,
                        "duration": s.duration,
                        "frames": s.frames,
                    }
                    for s in result.segments
                ],
                "gaps": [
                    {"start": format_time(g.start), "end": format_time(g.end), "reason": g.reason} for g in result.gaps
                ],
            }
        )

    async def playback(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        start, end = _range(request, self.services.max_playback_range, limit_status=413)
        speed_text = _query(request, "speed")
        speed: float | None = None
        if speed_text is not None:
            try:
                speed = float(speed_text)
            except ValueError:
                speed = math.nan
            if not _SPEED_RANGE[0] <= speed <= _SPEED_RANGE[1]:  # False for NaN
                raise _error(400, f"speed must be a number from 0.25 to 4, not {speed_text[:32]!r}")
        storage = self._storage()
        from fluxkit import playback

        try:
            plan = await playback.plan_export(
                storage, stream_id, start, end, max_duration=self.services.max_playback_range
            )
        except playback.RangeTooLarge as exc:
            raise _error(413, str(exc)) from None
        except playback.InvalidRange as exc:
            raise _error(400, str(exc)) from None
        except playback.NoRecording as exc:
            raise _error(404, str(exc)) from None
        chunks: AsyncIterator[bytes] = playback.export_plan(plan, speed=speed)
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        except BaseException:
            await _aclose(chunks)
            raise

        async def body() -> AsyncIterator[bytes]:
            try:
                if first:
                    yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await _aclose(chunks)

        name = f"{stream_id}-{start.strftime('%Y%m%dT%H%M%SZ')}.mp4"
        headers = {
            "Content-Disposition": f'inline; filename="{name}"',
            # The export starts at the keyframe at or before `start`: players show true recording times from it.
            FIRST_FRAME_HEADER: format_time(plan.first_frame),
        }
        return StreamingResponse(body(), media_type="video/mp4", headers=headers)

    async def keyframes(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        start, end = _range(request, self.services.max_list_range, limit_status=400)
        records = await self._storage().query_keyframes(stream_id, start, end)
        if not records and not self._known(stream_id):
            raise _error(404, f"no stream or keyframes {stream_id!r} in this range")
        base = f"/api/video/recordings/{quote(stream_id, safe='')}/keyframes"
        items = []
        for record in records:
            ms = _epoch_ms(record.time)
            items.append({"time": format_time(record.time), "ms": ms, "url": f"{base}/{ms}.jpg"})
        return JSONResponse({"stream_id": stream_id, "keyframes": items})

    async def keyframe_jpeg(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        text: str = request.path_params["ms"]
        if not text.isascii() or not text.isdigit() or len(text) > 15:
            raise _error(400, f"a keyframe is named by its epoch milliseconds, not {text[:32]!r}")
        ms = int(text)
        records = await self._storage().query_keyframes(stream_id, ms / 1000, (ms + 1) / 1000)
        record = next((r for r in records if _epoch_ms(r.time) == ms), None)
        if record is None:
            raise _error(404, f"no keyframe of {stream_id!r} at {ms}")
        try:
            data = await trio.Path(record.path).read_bytes()
        except OSError:
            raise _error(404, f"the thumbnail of keyframe {ms} is not stored") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    # -- live view ---------------------------------------------------------------------------------------------

    async def http_flv(self, request: Request) -> Response:
        """HTTP-FLV: the live stream as one endless FLV file (sequence headers first, from a keyframe)."""
        from fluxkit.net._flv_out import flv_stream

        stream_id = _stream_id(request)
        self._info(stream_id)
        chunks = flv_stream(self.engine, stream_id)
        try:
            first = await chunks.__anext__()
        except (StopAsyncIteration, StreamNotFoundError):
            raise _error(404, f"no stream {stream_id!r}") from None
        except LocalProtocolError as exc:
            raise _error(409, f"stream {stream_id!r} cannot be sent as FLV: {exc}") from None

        async def body() -> AsyncIterator[bytes]:
            try:
                yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # the client went away: release the engine subscription now

        return StreamingResponse(body(), media_type="video/x-flv", headers={"Cache-Control": "no-store"})

    async def live_http(self, request: Request) -> Response:
        stream_id = _stream_id(request)
        self._info(stream_id)
        raise _error(
            426, "live view is a WebSocket: connect with an Upgrade: websocket request", {"Upgrade": "websocket"}
        )

    async def live(self, websocket: WebSocket) -> None:
        try:
            stream_id = _stream_id(websocket)
            self._info(stream_id)
        except HTTPException as exc:
            await _deny(websocket, exc.status_code, exc.detail)
            return
        try:
            from fluxkit.playback import live_fmp4
        except ImportError:  # pragma: no cover - fluxkit.playback ships with fluxkit
            await _deny(websocket, 503, "live view is not available")
            return
        await websocket.accept()
        await _serve_websocket(
            websocket,
            live_fmp4(self.engine, stream_id),
            send_timeout=self.services.live_send_timeout,
            what=f"live view of {stream_id!r}",
            end=(1000, "stream ended"),
        )

    # -- events ------------------------------------------------------------------------------------------------

    def _events_filter(self, request: Request | WebSocket) -> str | None:
        values = request.query_params.getlist("stream_id")
        if len(values) > 1:
            raise _error(400, "stream_id is given more than once")
        if not values:
            return None
        try:
            return validate_stream_id(values[0])
        except LocalProtocolError:
            raise _error(400, f"invalid stream id {values[0][:80]!r}") from None

    async def events_http(self, request: Request) -> Response:
        self._events_filter(request)
        raise _error(
            426, "the event feed is a WebSocket: connect with an Upgrade: websocket request", {"Upgrade": "websocket"}
        )

    async def events(self, websocket: WebSocket) -> None:
        """One JSON text message per engine event (optionally of one stream), until the engine closes.

        The listener is made before the handshake completes, so every event after the accept is sent. Its
        bounded buffer drops the oldest while this client lags (an `EventsDropped` message then says how many).
        Hypercorn shields its socket writes from cancellation, so a timeout around `send_text` would never fire:
        a separate task sends, taking one message at a time over an unbuffered channel, and when it has not
        taken the next message within `live_send_timeout` the client is dropped (1008) and its listener closed.
        The engine never waits for any of it.
        """
        try:
            only = self._events_filter(websocket)
        except HTTPException as exc:
            await _deny(websocket, exc.status_code, exc.detail)
            return
        listener = self.engine.events()  # before the accept: every event after it is sent
        try:
            await websocket.accept()
        except BaseException:
            listener.close()
            raise

        async def messages() -> AsyncIterator[str]:
            reported = 0
            try:
                async for event in listener:
                    if only is not None and event.stream_id != only:
                        continue
                    body = event_json(event, self.services.wall_clock())
                    dropped = listener.statistics().dropped
                    if dropped > reported:
                        lost = {"type": EVENTS_DROPPED, "stream_id": None, "time": body["time"]}
                        yield json.dumps({**lost, "count": dropped - reported}, separators=(",", ":"))
                        reported = dropped
                    yield json.dumps(body, separators=(",", ":"))
            finally:
                listener.close()  # also when a lagging client is dropped: the engine side is released at once

        await _serve_websocket(
            websocket,
            messages(),
            send_timeout=self.services.live_send_timeout,
            what="event feed",
            end=(1001, "engine closed"),
        )

    # -- documents ---------------------------------------------------------------------------------------------

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(self.document)

    async def metrics(self, request: Request) -> Response:
        text = await render_metrics(self.engine, self.services.storage, self.services.wall_clock)
        return Response(text, media_type=METRICS_CONTENT_TYPE)


def _epoch_ms(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        with trio.CancelScope(shield=True):
            await close()


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket handshake: an HTTP response where the server supports it, else close 1008."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"error": message, "status": status}, status_code=status))
    else:
        await websocket.close(code=1008, reason=message[:120])


async def _serve_websocket(
    websocket: WebSocket,
    messages: AsyncIterator[bytes] | AsyncIterator[str],
    *,
    send_timeout: float,
    what: str,
    end: tuple[int, str],
) -> None:
    """Send `messages` to an accepted WebSocket until they end (close with `end`), the client leaves, or it lags.

    Hypercorn shields its socket writes from cancellation, so a timeout around `send_bytes` would never fire. A
    separate task sends, taking one message at a time over an unbuffered channel; when it has not taken the next
    one within `send_timeout`, the client is dropped (1008) and `messages` closed at once, which releases the
    engine subscription or listener behind it. The engine never waits for a client.
    """
    code, reason = end
    gone = trio.Event()  # the client disconnected (or its socket failed)
    to_sender, from_pump = trio.open_memory_channel[bytes | str](0)
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    if (await websocket.receive())["type"] == "websocket.disconnect":
                        break
            gone.set()
            nursery.cancel_scope.cancel()

        async def send() -> None:
            try:
                async for message in from_pump:
                    if isinstance(message, bytes):
                        await websocket.send_bytes(message)
                    else:
                        await websocket.send_text(message)
            except (WebSocketDisconnect, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                gone.set()
            nursery.cancel_scope.cancel()  # done or gone: stop watching so the close below can run

        nursery.start_soon(watch)
        nursery.start_soon(send)
        try:
            async for message in messages:
                with trio.move_on_after(send_timeout) as scope:
                    await to_sender.send(message)
                if scope.cancelled_caught:
                    code, reason = 1008, "client too slow"
                    _log.warning("%s: dropping a client too slow to keep up", what)
                    break
        except (StreamNotFoundError, FluxkitError) as exc:
            code, reason = 1011, str(exc)[:120]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            gone.set()
        finally:
            await _aclose(messages)
            to_sender.close()  # the sender finishes what it holds, sees the end and ends the nursery
        if code != end[0] or gone.is_set():
            nursery.cancel_scope.cancel()
    if not gone.is_set():
        with trio.move_on_after(1), contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return JSONResponse({"error": exc.detail, "status": exc.status_code}, exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    _log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal server error", "status": 500}, 500)


def make_app(services: ApiServices) -> Starlette:
    """The Starlette application serving `services` (see the module docstring and `openapi_document()`)."""
    api = _Api(services)
    streams = "/api/video/streams"
    recordings = "/api/video/recordings"
    # Order matters: the `path` convertor is greedy, so the routes with a suffix come before the bare ones.
    routes = [
        *services.extra_routes,
        Route("/api/openapi.json", api.openapi, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        WebSocketRoute("/api/video/events", api.events),
        Route("/api/video/events", api.events_http, methods=["GET"]),
        Route("/api/video/storage", api.storage_status, methods=["GET"]),
        Route(streams, api.list_streams, methods=["GET"]),
        Route(streams, api.create_stream, methods=["POST"]),
        Route(streams + "/{stream_id:fluxkit_any}/snapshot", api.snapshot, methods=["GET"]),
        WebSocketRoute(streams + "/{stream_id:fluxkit_any}/live", api.live),
        Route(streams + "/{stream_id:fluxkit_any}/live", api.live_http, methods=["GET"]),
        Route(streams + "/{stream_id:fluxkit_any}.flv", api.http_flv, methods=["GET"]),
        Route(streams + "/{stream_id:fluxkit_any}", api.get_stream, methods=["GET"]),
        Route(streams + "/{stream_id:fluxkit_any}", api.delete_stream, methods=["DELETE"]),
        Route(recordings + "/{stream_id:fluxkit_any}/playback", api.playback, methods=["GET"]),
        Route(recordings + "/{stream_id:fluxkit_any}/keyframes/{ms}.jpg", api.keyframe_jpeg, methods=["GET"]),
        Route(recordings + "/{stream_id:fluxkit_any}/keyframes", api.keyframes, methods=["GET"]),
        Route(recordings + "/{stream_id:fluxkit_any}", api.recordings, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BearerAuthMiddleware, token=services.token)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
