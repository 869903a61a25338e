"""The OpenAPI 3.0 document of the REST API, written by hand beside the routes it describes.

Strategy: small builders (`_op`, `_error_responses`) keep each operation to a few lines while still listing every
parameter and every status the handler can answer, so a schema-driven test (schemathesis) can check the server
against it: status codes, content types and JSON bodies.

Route groups mounted with `ApiServices(extra_routes=...)` (GB28181, WHIP, the NVR protocol) document themselves:
each of their routes carries an `openapi` attribute, `{method: operation}`, written beside its handler, and
`openapi_document(extra_routes)` files those operations under the route's path (convertors stripped:
`{id:path}` -> `{id}`). The core document stays the single home of the shared `Error` schema and the bearer scheme.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["openapi_document", "route_path"]

_JSON = "application/json"
_ERROR_TEXT = {
    400: "Bad input: an invalid stream id, a missing or malformed parameter, end not after start.",
    401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
    404: "Unknown stream, or nothing recorded.",
    409: "A stream with this id exists.",
    413: "The range or the body is too large.",
    422: "The body is not a valid stream description.",
    426: "Live view and the event feed need a WebSocket upgrade.",
    503: "The service behind this endpoint is not enabled, or has nothing yet (see Retry-After).",
}
_STREAM_ID_PATTERN = r"^[A-Za-z0-9_\-@:+=,~][A-Za-z0-9_\-@:+=,~.]*$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> dict[str, Any]:
    return {"type": kind, "nullable": True}


_TIME = {"type": "string", "format": "date-time", "example": "2026-02-11T10:00:00Z"}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
    "Track": {
        "type": "object",
        "required": ["codec", "kind"],
        "properties": {
            "codec": {"type": "string", "example": "h264"},
            "kind": {"type": "string", "enum": ["video", "audio"]},
            "width": _nullable("integer"),
            "height": _nullable("integer"),
            "fps": _nullable("number"),
            "sample_rate": _nullable("integer"),
            "channels": _nullable("integer"),
        },
    },
    "Statistics": {
        "type": "object",
        "nullable": True,
        "properties": {
            "frames": {"type": "integer"},
            "keyframes": {"type": "integer"},
            "bytes": {"type": "integer"},
            "fps": {"type": "number"},
            "bitrate": {"type": "number", "description": "bits per second"},
            "gop": _nullable("integer"),
            "last_keyframe_age": _nullable("number"),
            "losses": {"type": "integer"},
            "jitter": _nullable("number"),
            "subscribers": {"type": "integer"},
            "restarts": {"type": "integer"},
        },
    },
    "Stream": {
        "type": "object",
        "required": ["stream_id", "state", "tracks", "subscribers", "supervised"],
        "properties": {
            "stream_id": {"type": "string"},
            "state": {"type": "string", "enum": ["waiting", "live", "reconnecting"]},
            "supervised": {"type": "boolean"},
            "subscribers": {"type": "integer"},
            "tracks": {"type": "array", "items": _ref("Track")},
            "statistics": _ref("Statistics"),
            "source": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "protocol": {"type": "string"},
                    "source_url": {"type": "string", "description": "password replaced by ***"},
                    "transport": {"type": "string"},
                },
            },
        },
    },
    "StreamList": {
        "type": "object",
        "required": ["streams"],
        "properties": {"streams": {"type": "array", "items": _ref("Stream")}},
    },
    "CreateStream": {
        "type": "object",
        "required": ["stream_id", "protocol", "source_url"],
        "additionalProperties": False,
        "properties": {
            "stream_id": {"type": "string", "pattern": _STREAM_ID_PATTERN, "maxLength": 64, "example": "cam1"},
            "protocol": {
                "type": "string",
                "enum": ["rtsp", "gb28181", "rtmp", "webrtc"],
                "description": "rtsp only, for now",
            },
            "source_url": {"type": "string", "example": "rtsp://user:pass@192.168.1.10:554/stream1"},
            "transport": {"type": "string", "enum": ["tcp", "udp"], "nullable": True},
        },
    },
    "Recordings": {
        "type": "object",
        "required": ["stream_id", "segments", "gaps"],
        "properties": {
            "stream_id": {"type": "string"},
            "start": _TIME,
            "end": _TIME,
            "segments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "end", "size", "duration"],
                    "properties": {
                        "start": _TIME,
                        "end": _TIME,
                        "size": {"type": "integer", "description": "bytes"},
                        "duration": {"type": "number", "description": "media seconds"},
                        "frames": {"type": "integer"},
                    },
                },
            },
            "gaps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["start", "end", "reason"],
                    "properties": {"start": _TIME, "end": _TIME, "reason": {"type": "string"}},
                },
            },
        },
    },
    "StorageStatus": {
        "type": "object",
        "required": ["policy", "backends"],
        "properties": {
            "policy": {"type": "string", "enum": ["local", "primary_backup", "multi_replica", "tiered"]},
            "backends": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "type", "role", "healthy"],
                    "properties": {
                        "name": {"type": "string"},
                        "type": {"type": "string", "example": "local"},
                        "role": {"type": "string", "example": "primary"},
                        "healthy": {"type": "boolean"},
                        "used_bytes": {"type": "integer"},
                        "segments": {"type": "integer"},
                        "free_bytes": _nullable("integer"),
                        "total_bytes": _nullable("integer"),
                        "retention": {
                            "type": "object",
                            "nullable": True,
                            "properties": {
                                "max_age_days": _nullable("number"),
                                "max_bytes": _nullable("integer"),
                                "min_free_bytes": _nullable("integer"),
                            },
                        },
                    },
                },
            },
            "migration": {
                "type": "object",
                "nullable": True,
                "properties": {"running": {"type": "boolean"}, "done": {"type": "number"}, "total": {"type": "number"}},
            },
            "pending_repairs": {"type": "integer"},
        },
    },
    "Keyframes": {
        "type": "object",
        "required": ["stream_id", "keyframes"],
        "properties": {
            "stream_id": {"type": "string"},
            "keyframes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["time", "url"],
                    "properties": {"time": _TIME, "ms": {"type": "integer"}, "url": {"type": "string"}},
                },
            },
        },
    },
}


def _param(name: str, where: str, schema: dict[str, Any], description: str, *, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


_STREAM_ID = _param(
    "stream_id",
    "path",
    {"type": "string", "pattern": _STREAM_ID_PATTERN, "maxLength": 128},
    "The stream's id (no '/', no leading '.', no control characters: 400 otherwise).",
)
_START = _param("start", "query", _TIME, "Start of the range, RFC 3339.")
_END = _param("end", "query", _TIME, "End of the range, RFC 3339; after start.")
_SPEED = _param(
    "speed",
    "query",
    {"type": "number", "minimum": 0.25, "maximum": 4},
    "Pace the download at this multiple of real time; unpaced when absent.",
    required=False,
)


def _error_responses(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in (*codes, 401):
        response: dict[str, Any] = {"description": _ERROR_TEXT[code], "content": {_JSON: {"schema": _ref("Error")}}}
        if code == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code == 503:
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "required": False}}
        out[str(code)] = response
    return out


def _op(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    errors: tuple[int, ...],
    parameters: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "responses": {**ok, **_error_responses(*errors)},
    }
    if parameters:
        operation["parameters"] = parameters
    operation.update(extra)
    return operation


def _json_ok(code: int, description: str, schema: str) -> dict[str, Any]:
    return {str(code): {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}}


def _with_header(ok: dict[str, Any], name: str, description: str) -> dict[str, Any]:
    ((code, response),) = ok.items()
    return {code: {**response, "headers": {name: {"description": description, "schema": {"type": "string"}}}}}


def _binary_ok(description: str, media_type: str) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
    }


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "fluxkit video API",
        "version": "1",
        "description": "Streams, snapshots, recordings, playback, live view and metrics. Times are RFC 3339 "
        '(2026-02-11T10:00:00Z). Errors are JSON: {"error": message, "status": code}.',
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/openapi.json": {
            "get": _op(
                "getOpenApi",
                "This document.",
                {"200": {"description": "The OpenAPI document.", "content": {_JSON: {"schema": {"type": "object"}}}}},
                (),
            )
        },
        "/metrics": {
            "get": _op(
                "getMetrics",
                "Prometheus metrics (text exposition format 0.0.4).",
                {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                (),
            )
        },
        "/api/video/events": {
            "get": _op(
                "engineEvents",
                "WebSocket (send `Upgrade: websocket`; browsers may pass the token as ?access_token=): one JSON "
                "text message per engine event, from the accept on, until the engine closes (1001). Add "
                "`?stream_id=ID` for one stream's events only (a malformed id is refused with 400). A message is "
                '`{"type": "StreamPublished", "stream_id": "cam1", "time": "2026-02-11T10:00:00.25Z", '
                '"engine_time": 812.5, ...}`: `type` is the engine event class (StreamPublished, StreamStopped, '
                "StreamFailed, SourceConnected, SourceReconnecting, SubscriberLagging, TimelineRunStarted, ...; with "
                "the GB28181 platform also DeviceOnline, DeviceOffline, CatalogUpdated, AlarmReceived, "
                "MobilePositionReceived, MediaStatusReceived and ScaleMismatchDetected, whose `stream_id` is empty "
                "for device events and which a `stream_id` filter leaves out), "
                "`time` the wall time of sending, `engine_time` the engine's monotonic time of the event, and the "
                "event's other fields follow (tracks as codec, kind, width, height, fps; errors as text). A client "
                'that lags loses the oldest events, announced by `{"type": "EventsDropped", "count": n}`; one that '
                "stops reading is closed with 1008.",
                {"101": {"description": "Switching to the WebSocket protocol."}},
                (400, 426),
            )
        },
        "/api/video/storage": {
            "get": _op(
                "getStorageStatus",
                "The recording storage: its policy, each backend (tier or replica) with its health, usage and "
                "retention, the migration between tiers in progress, and the repairs pending.",
                _json_ok(200, "The storage status.", "StorageStatus"),
                (503,),
            )
        },
        "/api/video/streams": {
            "get": _op(
                "listStreams",
                "Every stream with its state, tracks and statistics.",
                _json_ok(200, "The streams.", "StreamList"),
                (),
            ),
            "post": _op(
                "createStream",
                "Add a stream ingested from a source (rtsp for now).",
                _json_ok(201, "Created; Location names it.", "Stream"),
                (409, 413, 422),
                requestBody={"required": True, "content": {_JSON: {"schema": _ref("CreateStream")}}},
            ),
        },
        "/api/video/streams/{stream_id}": {
            "get": _op("getStream", "One stream.", _json_ok(200, "The stream.", "Stream"), (400, 404), [_STREAM_ID]),
            "delete": _op(
                "deleteStream",
                "Stop a stream (and its source).",
                {"204": {"description": "Stopped."}},
                (400, 404),
                [_STREAM_ID],
            ),
        },
        "/api/video/streams/{stream_id}/snapshot": {
            "get": _op(
                "getSnapshot",
                "The latest keyframe as a JPEG (fresh within one GOP).",
                _binary_ok("JPEG image.", "image/jpeg"),
                (400, 404, 503),
                [_STREAM_ID],
            )
        },
        "/api/video/streams/{stream_id}/live": {
            "get": _op(
                "liveView",
                "WebSocket (send `Upgrade: websocket`; browsers may pass the token as ?access_token=): binary "
                "messages of fragmented MP4, the init segment first, then fragments starting at a keyframe.",
                {"101": {"description": "Switching to the WebSocket protocol."}},
                (400, 404, 426),
                [_STREAM_ID],
            )
        },
        "/api/video/streams/{stream_id}.flv": {
            "get": _op(
                "httpFlv",
                "HTTP-FLV: the live stream as one endless FLV file (sequence headers first, then tags from a "
                "keyframe), for players that want FLV.",
                _binary_ok("FLV stream.", "video/x-flv"),
                (400, 404, 409),
                [_STREAM_ID],
            )
        },
        "/api/video/recordings/{stream_id}": {
            "get": _op(
                "listRecordings",
                "Recorded segments overlapping the range, and the gaps inside it.",
                _json_ok(200, "Segments and gaps.", "Recordings"),
                (400, 404, 503),
                [_STREAM_ID, _START, _END],
            )
        },
        "/api/video/recordings/{stream_id}/playback": {
            "get": _op(
                "playback",
                "An MP4 of the range, cut on keyframes, streamed (paced when speed is given). It starts at the "
                "keyframe at or before `start`; the X-Fluxkit-First-Frame header gives that frame's recording time.",
                _with_header(
                    _binary_ok("MP4 file.", "video/mp4"),
                    "X-Fluxkit-First-Frame",
                    "Recording time (RFC 3339, UTC) of the first frame of the MP4.",
                ),
                (400, 404, 413, 503),
                [_STREAM_ID, _START, _END, _SPEED],
            )
        },
        "/api/video/recordings/{stream_id}/keyframes": {
            "get": _op(
                "listKeyframes",
                "Stored keyframes in the range, each with the URL of its JPEG thumbnail.",
                _json_ok(200, "Keyframes.", "Keyframes"),
                (400, 404, 503),
                [_STREAM_ID, _START, _END],
            )
        },
        "/api/video/recordings/{stream_id}/keyframes/{ms}.jpg": {
            "get": _op(
                "getKeyframe",
                "The JPEG thumbnail of the keyframe at `ms` (epoch milliseconds).",
                _binary_ok("JPEG image.", "image/jpeg"),
                (400, 404, 503),
                [
                    _STREAM_ID,
                    _param("ms", "path", {"type": "string", "pattern": "^[0-9]{1,15}$"}, "Epoch milliseconds."),
                ],
            )
        },
    },
}


_CONVERTOR = re.compile(r"{(\w+):[^}]*}")


def route_path(path: str) -> str:
    """A Starlette route path as an OpenAPI path template: `{name:convertor}` becomes `{name}`."""
    return _CONVERTOR.sub(r"{\1}", path)


def openapi_document(extra_routes: Iterable[Any] = ()) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document (a fresh copy each call).

    Args:
        extra_routes: routes mounted beside the core ones (`ApiServices.extra_routes`); each one's `openapi`
            attribute (`{"get": operation, ...}`, lower-case methods) is merged under its path. Routes without
            one are skipped.

    Raises:
        ValueError: two routes document the same method of the same path, or an extra route documents a core
            operation or reuses a core operationId (an app that mounts them would be ambiguous).
    """
    document = copy.deepcopy(_DOCUMENT)
    paths: dict[str, dict[str, Any]] = document["paths"]
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values()}
    for route in extra_routes:
        operations = getattr(route, "openapi", None)
        if not operations:
            continue
        path = route_path(route.path)
        item = paths.setdefault(path, {})
        for method, operation in operations.items():
            method = method.lower()
            if method in item:
                raise ValueError(f"{method.upper()} {path} is documented twice")
            if operation["operationId"] in operation_ids:
                raise ValueError(f"operationId {operation['operationId']!r} is used twice")
            operation_ids.add(operation["operationId"])
            item[method] = copy.deepcopy(operation)
    return document
