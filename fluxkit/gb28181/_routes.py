"""REST routes of the GB28181 platform (issue 6), mounted by the API app (which checks the bearer token).

* `GET /api/video/gb28181/devices`, `GET .../devices/{device_id}/channels`.
* `POST .../devices/{device_id}/ptz` with `{"channel_id", "command", "speed", "preset", "group", "switch",
  "value"}` (see `ptz_command`: moves, presets, cruise, scan, auxiliary switches).
* `GET .../devices/{device_id}/records?channel_id=&start=&end=`: the device's RecordInfo (A.2.4.7), times in and
  out in RFC 3339; optional filters `type` (all, time, alarm, manual), `secrecy` (0, 1), `file_path`, `address`,
  `recorder_id` (`record_fields`). GB28181 times are local and zone-less: an input with an offset is converted to
  this host's local time, a zone-less input is taken as local, and the device's times come back with this host's
  offset.
* `POST .../devices/{device_id}/playback` with `{"channel_id", "start_time", "end_time", "speed": 1.0,
  "transport": "udp", "stream_id"?}` -> 201 `{"stream_id", ...}`: an engine source
  `Gb28181Source(..., playback=(start, end), speed=speed)` under the given or a generated stream id, recorded
  and re-streamed like any stream; it stops by itself at the end of the recording (MediaStatus 121).
* `POST .../devices/{device_id}/download` with `{"channel_id", "start_time", "end_time", "download_speed": 4,
  "transport": "udp", "stream_id"?}` -> 201 `{"stream_id", ...}`: `Gb28181Source(..., playback=(start, end),
  download_speed=N)` (`s=Download`; the device sends N = 1..16 times faster). Its frames keep the device's
  timestamps and the stream carries a `WallOrigin`, so the recorder indexes it at the recording's original times
  (the range's start in UTC) under its stream id, by default `<channel_id>-download-<start Unix seconds>`; it ends
  by itself at MediaStatus 121. Stored next to recordings that overlap it in time (files are never overwritten):
  the default id keeps it apart from the channel's live recordings; a download into a stream id that already has
  segments over the range adds overlapping segments to that stream.
* `POST .../devices/{device_id}/live` with `{"channel_id", "transport", "stream_id"?}` -> 201: the channel's live
  stream (stream id defaults to the channel ID).
* `DELETE /api/video/gb28181/streams/{stream_id}` -> 204: stops a live or playback stream started here.
* `GET .../devices/{device_id}/subscriptions` -> `{"device_id", "subscriptions": [{"kind", "event", "active",
  "wanted", "expires", "interval", "expires_in"}]}`: the device's catalog, alarm and mobile-position
  subscriptions (9.11), wanted (kept up by the platform) or active (granted by the device, `expires_in` seconds
  left).
* `POST .../devices/{device_id}/subscriptions` with `{"kind": "catalog"|"alarm"|"mobile_position", "expires"?:
  60..86400, "interval"?: 1..3600 (mobile_position only)}` and filters (`subscription_filter`): alarm takes
  `channel_id`, `start_alarm_priority`/`end_alarm_priority` (1..4), `alarm_method` ("25"), `alarm_type`,
  `start_time`/`end_time` (RFC 3339); catalog takes `channel_id`, `start_time`/`end_time` -> 201 with the
  subscription (filters included), once the device accepted the SUBSCRIBE (502 when it refused, 504 when it did
  not answer); kept up from then on.
* `DELETE .../devices/{device_id}/subscriptions/{kind}` -> 204: unsubscribes (`Expires: 0` in the dialog).

Errors are `HTTPException`s, which the API app renders as `{"error", "status"}`: 400 for a bad body or query,
404 for an unknown device, channel, stream or subscription, 409 for an offline device or a stream id in use, 502
when the device refuses, 503 without an engine, 504 when the device does not answer.

Each route carries its OpenAPI operations in an `openapi` attribute (`OPENAPI_PATHS`), merged by the API app
into `/api/openapi.json`.
"""

from __future__ import annotations

import datetime
import json
import math
import secrets
from typing import TYPE_CHECKING, Any

import attrs
import trio
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fluxkit.engine import RestartPolicy, StreamExistsError, StreamNotFoundError
from fluxkit.errors import LocalProtocolError
from fluxkit.storage import validate_stream_id

from ._media import Gb28181Source
from ._ptz import PTZ_COMMANDS
from ._queries import MAX_RECORD_TEXT, MAX_RECORDER_ID, RECORD_TYPES, record_fields
from ._settings import DeviceNotFoundError, DeviceOfflineError, Gb28181Error, SubscriptionRefusedError
from ._subscriptions import SUBSCRIPTION_KINDS, SubscriptionFilter, subscription_filter

if TYPE_CHECKING:
    from starlette.requests import Request

    from fluxkit.engine import VideoEngine
    from fluxkit.protocols.manscdp import RecordItem

    from ._platform import Gb28181Platform

__all__ = ["OPENAPI_PATHS", "gb28181_routes"]

_TRANSPORTS = ("udp", "tcp-passive", "tcp-active")
_MIN_SPEED, _MAX_SPEED = 0.25, 4.0  # Appendix B: the speeds devices must support are 0.25 to 4
_MIN_DOWNLOAD_SPEED, _MAX_DOWNLOAD_SPEED = 1, 16  # a=downloadspeed (Appendix F); devices offer 1, 2, 4, 8, 16
_DEFAULT_DOWNLOAD_SPEED = 4
_DOWNLOAD_FIELDS = ("channel_id", "start_time", "end_time", "download_speed", "transport", "stream_id")
# A playback is re-INVITEd a few times on a failure, then given up (it has an end; retrying forever makes no sense).
_PLAYBACK_RESTART = RestartPolicy(max_attempts=3)


# -- OpenAPI (merged into the API app's document; `Error` and the bearer scheme live there) ------------------------

_JSON = "application/json"
_ERROR_TEXT = {
    400: "Bad body or query: not a JSON object, an unknown command or field, a bad channel_id, time, speed, "
    "transport or filter.",
    401: "Missing or wrong bearer token (`WWW-Authenticate: Bearer`).",
    404: "Unknown device, channel, or stream.",
    409: "The device is offline, or the stream id is in use.",
    502: "The device refused the request (its SIP status is in the message).",
    503: "The platform has no engine to stream into.",
    504: "The device did not answer.",
}
_GB_ID = {"type": "string", "pattern": "^[0-9]{20}$", "example": "34020000001320000001"}
_NULLABLE_STRING = {"type": "string", "nullable": True}
_CHANNEL = {
    "type": "object",
    "required": ["channel_id"],
    "properties": {
        "channel_id": {"type": "string"},
        "name": _NULLABLE_STRING,
        "status": _NULLABLE_STRING,
        "manufacturer": _NULLABLE_STRING,
        "model": _NULLABLE_STRING,
        "parent_id": _NULLABLE_STRING,
        "ptz_type": {"type": "integer", "nullable": True},
    },
}
_DEVICE = {
    "type": "object",
    "required": ["device_id", "online", "channels"],
    "properties": {
        "device_id": {"type": "string"},
        "online": {"type": "boolean"},
        "address": {"type": "string", "description": "host:port of its last request"},
        "transport": {"type": "string", "enum": ["UDP", "TCP"]},
        "charset": _NULLABLE_STRING,
        "name": _NULLABLE_STRING,
        "manufacturer": _NULLABLE_STRING,
        "model": _NULLABLE_STRING,
        "firmware": _NULLABLE_STRING,
        "registered_at": {"type": "number", "nullable": True, "description": "Unix seconds"},
        "last_keepalive": {"type": "number", "nullable": True, "description": "Unix seconds"},
        "channels": {"type": "array", "items": _CHANNEL},
    },
}
_TIME = {"type": "string", "format": "date-time", "example": "2026-02-11T10:00:00+08:00"}
_MIN_EXPIRES, _MAX_EXPIRES = 60, 86400  # a SUBSCRIBE's Expires: at least a minute, at most a day
_MIN_INTERVAL, _MAX_INTERVAL = 1, 3600  # MobilePosition report interval, seconds
_KIND = {"type": "string", "enum": list(SUBSCRIPTION_KINDS)}
_SUBSCRIPTION = {
    "type": "object",
    "required": ["kind", "event", "active", "wanted", "expires"],
    "properties": {
        "kind": _KIND,
        "event": {"type": "string", "description": "the GB28181 event name (Catalog, Alarm, MobilePosition)"},
        "active": {"type": "boolean", "description": "granted by the device and not expired"},
        "wanted": {"type": "boolean", "description": "kept up (refreshed, renewed after re-registrations)"},
        "expires": {"type": "integer", "description": "the Expires asked for, seconds"},
        "interval": {"type": "integer", "nullable": True, "description": "mobile_position report interval, s"},
        "expires_in": {"type": "number", "nullable": True, "description": "seconds left of the device's grant"},
        "channel_id": {**_NULLABLE_STRING, "description": "alarm, catalog: the one channel asked about"},
        "start_alarm_priority": {"type": "integer", "nullable": True, "description": "alarm: 1 (highest) .. 4"},
        "end_alarm_priority": {"type": "integer", "nullable": True, "description": "alarm: 1 (highest) .. 4"},
        "alarm_method": {**_NULLABLE_STRING, "description": "alarm: method digits 1-7 (null: all)"},
        "alarm_type": {**_NULLABLE_STRING, "description": "alarm: the AlarmType asked for"},
        "start_time": {**_TIME, "nullable": True, "description": "alarm: happened from; catalog: changes from"},
        "end_time": {**_TIME, "nullable": True, "description": "alarm: happened until; catalog: changes until"},
    },
}
_PRIORITY = {"type": "integer", "minimum": 1, "maximum": 4}
_SUBSCRIPTION_FILTERS = {
    "channel_id": {**_GB_ID, "description": "alarm, catalog: only this channel's alarms or catalog changes."},
    "start_alarm_priority": {**_PRIORITY, "description": "alarm: from this priority (1 highest; default 1)."},
    "end_alarm_priority": {**_PRIORITY, "description": "alarm: to this priority (default 4); not before the start."},
    "alarm_method": {
        "type": "string",
        "pattern": "^(0|[1-7]{1,7})$",
        "example": "25",
        "description": "alarm: methods, digits combined (1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault, "
        "7 other; 0 all); an integer is taken too. Distinct digits.",
    },
    "alarm_type": {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "description": "alarm: the AlarmType asked for; an integer is taken too.",
    },
    "start_time": {**_TIME, "description": "alarm: happened from; catalog: changes notified from."},
    "end_time": {**_TIME, "description": "alarm: happened until; catalog: changes notified until; after start."},
}
_SUBSCRIPTION_OF_DEVICE = {
    "type": "object",
    "required": ["device_id", "kind", "event", "active", "wanted", "expires"],
    "properties": {"device_id": {"type": "string"}, **_SUBSCRIPTION["properties"]},  # type: ignore[dict-item]
}
_TRANSPORT = {"type": "string", "enum": list(_TRANSPORTS), "default": "udp"}
_STARTED_STREAM = {
    "type": "object",
    "required": ["stream_id", "device_id", "channel_id", "transport"],
    "properties": {
        "stream_id": {"type": "string"},
        "device_id": {"type": "string"},
        "channel_id": {"type": "string"},
        "transport": {"type": "string"},
        "start_time": _TIME,
        "end_time": _TIME,
        "speed": {"type": "number"},
        "download_speed": {"type": "integer"},
    },
}
_STREAM_BODY = {
    "channel_id": {**_GB_ID, "description": "Default: the device itself (an IPC)."},
    "transport": _TRANSPORT,
    "stream_id": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in (*codes, 401):
        error = {"$ref": "#/components/schemas/Error"}
        out[str(code)] = {"description": _ERROR_TEXT[code], "content": {_JSON: {"schema": error}}}
    out["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return out


def _op(
    op_id: str, summary: str, status: int, schema: dict[str, Any] | None, errors: tuple[int, ...], **extra: Any
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": summary}
    if schema is not None:
        ok["content"] = {_JSON: {"schema": schema}}
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["gb28181"],
        "responses": {str(status): ok, **_errors(*errors)},
    }
    operation.update(extra)
    return operation


def _path_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _body(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return {"required": True, "content": {_JSON: {"schema": schema}}}


_DEVICE_ID = _path_param("device_id", "The device's 20-digit SIP ID.", {"type": "string"})
_BASE = "/api/video/gb28181/devices"

#: OpenAPI operations of each route, `{path: {method: operation}}`; `gb28181_routes` attaches them.
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    _BASE: {
        "get": _op(
            "gb28181ListDevices",
            "Every GB28181 device known to the platform, with its channels.",
            200,
            {"type": "object", "required": ["devices"], "properties": {"devices": {"type": "array", "items": _DEVICE}}},
            (),
        )
    },
    _BASE + "/{device_id}/channels": {
        "get": _op(
            "gb28181ListChannels",
            "The device's channels (its last Catalog).",
            200,
            {
                "type": "object",
                "required": ["device_id", "channels"],
                "properties": {"device_id": {"type": "string"}, "channels": {"type": "array", "items": _CHANNEL}},
            },
            (404,),
            parameters=[_DEVICE_ID],
        )
    },
    _BASE + "/{device_id}/ptz": {
        "post": _op(
            "gb28181Ptz",
            "Send a PTZ command (moves, presets, cruise, scan, auxiliary switches; A.3 PTZCmd).",
            200,
            {
                "type": "object",
                "required": ["device_id", "channel_id", "command", "status"],
                "properties": {
                    "device_id": {"type": "string"},
                    "channel_id": {"type": "string"},
                    "command": {"type": "string"},
                    "status": {"type": "integer", "description": "the device's SIP status"},
                },
            },
            (400, 404, 409, 504),
            parameters=[_DEVICE_ID],
            requestBody=_body(
                {
                    "channel_id": {"type": "string", "description": "Default: the device itself."},
                    "command": {"type": "string", "enum": sorted(PTZ_COMMANDS)},
                    "speed": {"type": "integer", "minimum": 0, "maximum": 255, "default": 128},
                    "preset": {"type": "integer", "minimum": 1, "maximum": 255},
                    "group": {"type": "integer"},
                    "switch": {"type": "integer"},
                    "value": {"type": "integer"},
                },
                ("command",),
            ),
        )
    },
    _BASE + "/{device_id}/records": {
        "get": _op(
            "gb28181ListRecords",
            "The device's recordings in the range (RecordInfo, A.2.4.7); zone-less times are this host's local time.",
            200,
            {
                "type": "object",
                "required": ["device_id", "channel_id", "records"],
                "properties": {
                    "device_id": {"type": "string"},
                    "channel_id": {"type": "string"},
                    "records": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "channel_id": _NULLABLE_STRING,
                                "name": _NULLABLE_STRING,
                                "file_path": _NULLABLE_STRING,
                                "address": _NULLABLE_STRING,
                                "start_time": {**_TIME, "nullable": True},
                                "end_time": {**_TIME, "nullable": True},
                                "secrecy": _NULLABLE_STRING,
                                "type": _NULLABLE_STRING,
                                "recorder_id": _NULLABLE_STRING,
                                "file_size": {**_NULLABLE_STRING, "description": "bytes, as the device wrote it"},
                            },
                        },
                    },
                },
            },
            (400, 404, 409, 504),
            parameters=[
                _DEVICE_ID,
                _query("channel_id", "The channel; default: the device itself.", _GB_ID, required=False),
                _query("start", "Start of the range, RFC 3339.", _TIME),
                _query("end", "End of the range, RFC 3339; after start.", _TIME),
                _query(
                    "type",
                    "Recordings made how (Type): all, by schedule, by alarm, by hand.",
                    {"type": "string", "enum": list(RECORD_TYPES), "default": "all"},
                    required=False,
                ),
                _query(
                    "secrecy",
                    "Secret recordings (1) or not (0).",
                    {"type": "integer", "enum": [0, 1], "default": 0},
                    required=False,
                ),
                _query(
                    "file_path",
                    "One file's path on the device (FilePath).",
                    {"type": "string", "minLength": 1, "maxLength": MAX_RECORD_TEXT},
                    required=False,
                ),
                _query(
                    "address",
                    "Where it was recorded (Address); devices may match a part of it.",
                    {"type": "string", "minLength": 1, "maxLength": MAX_RECORD_TEXT},
                    required=False,
                ),
                _query(
                    "recorder_id",
                    "Who triggered the recording (RecorderID).",
                    {"type": "string", "minLength": 1, "maxLength": MAX_RECORDER_ID},
                    required=False,
                ),
            ],
        )
    },
    _BASE + "/{device_id}/playback": {
        "post": _op(
            "gb28181Playback",
            "Play a device recording back into the engine as a stream (it stops at the recording's end).",
            201,
            _STARTED_STREAM,
            (400, 404, 409, 503),
            parameters=[_DEVICE_ID],
            requestBody=_body(
                {
                    **_STREAM_BODY,
                    "start_time": _TIME,
                    "end_time": _TIME,
                    "speed": {"type": "number", "minimum": _MIN_SPEED, "maximum": _MAX_SPEED, "default": 1.0},
                },
                ("start_time", "end_time"),
            ),
        )
    },
    _BASE + "/{device_id}/download": {
        "post": _op(
            "gb28181Download",
            "Download a device recording (s=Download) into a stream that is recorded at the recording's original "
            "times; it ends by itself at the recording's end (MediaStatus 121).",
            201,
            _STARTED_STREAM,
            (400, 404, 409, 503),
            parameters=[_DEVICE_ID],
            requestBody=_body(
                {
                    **_STREAM_BODY,
                    "stream_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "pattern": "^[A-Za-z0-9_@:+=,~-][A-Za-z0-9_@:+=,~.-]*$",
                        "description": "Default: `<channel_id>-download-<start Unix seconds>`. Must be storable.",
                    },
                    "start_time": _TIME,
                    "end_time": _TIME,
                    "download_speed": {
                        "type": "integer",
                        "minimum": _MIN_DOWNLOAD_SPEED,
                        "maximum": _MAX_DOWNLOAD_SPEED,
                        "default": _DEFAULT_DOWNLOAD_SPEED,
                        "description": "a=downloadspeed: how many times faster than real time the device sends.",
                    },
                },
                ("start_time", "end_time"),
            ),
        )
    },
    _BASE + "/{device_id}/live": {
        "post": _op(
            "gb28181Live",
            "Stream a channel live into the engine (stream id default: the channel ID).",
            201,
            _STARTED_STREAM,
            (400, 404, 409, 503),
            parameters=[_DEVICE_ID],
            requestBody=_body(_STREAM_BODY),
        )
    },
    _BASE + "/{device_id}/subscriptions": {
        "get": _op(
            "gb28181ListSubscriptions",
            "The device's catalog, alarm and mobile-position subscriptions, wanted or active (9.11).",
            200,
            {
                "type": "object",
                "required": ["device_id", "subscriptions"],
                "properties": {
                    "device_id": {"type": "string"},
                    "subscriptions": {"type": "array", "items": _SUBSCRIPTION},
                },
            },
            (404,),
            parameters=[_DEVICE_ID],
        ),
        "post": _op(
            "gb28181Subscribe",
            "Subscribe to a device's catalog, alarm or mobile-position events, optionally filtered (A.2.4); kept "
            "up from then on. Subscribing again to a kind replaces its expires, interval and filters.",
            201,
            _SUBSCRIPTION_OF_DEVICE,
            (400, 404, 409, 502, 504),
            parameters=[_DEVICE_ID],
            requestBody=_body(
                {
                    "kind": _KIND,
                    "expires": {"type": "integer", "minimum": _MIN_EXPIRES, "maximum": _MAX_EXPIRES},
                    "interval": {
                        "type": "integer",
                        "minimum": _MIN_INTERVAL,
                        "maximum": _MAX_INTERVAL,
                        "description": "mobile_position only: seconds between reports",
                    },
                    **_SUBSCRIPTION_FILTERS,
                },
                ("kind",),
            ),
        ),
    },
    _BASE + "/{device_id}/subscriptions/{kind}": {
        "delete": _op(
            "gb28181Unsubscribe",
            "End a subscription (SUBSCRIBE with Expires: 0 in its dialog) and stop keeping it up.",
            204,
            None,
            (404,),
            parameters=[_DEVICE_ID, _path_param("kind", "The subscription's kind.", _KIND)],
        )
    },
    "/api/video/gb28181/streams/{stream_id}": {
        "delete": _op(
            "gb28181StopStream",
            "Stop a live or playback stream started through these routes.",
            204,
            None,
            (404, 503),
            parameters=[_path_param("stream_id", "The stream's id.", {"type": "string"})],
        )
    },
}


def _documented(route: Route) -> Route:
    methods = route.methods or set()
    route.openapi = {m: op for m, op in OPENAPI_PATHS[route.path].items() if m.upper() in methods}  # type: ignore[attr-defined]
    return route


def _parse_time(text: object, name: str) -> datetime.datetime:
    """An RFC 3339 time as a zone-less local datetime (GB28181 times are local, 9.10)."""
    if not isinstance(text, str) or not text:
        raise HTTPException(400, f"{name} must be an RFC 3339 time")
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"{name} {text!r} is not an RFC 3339 time") from None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when.replace(microsecond=0)


def _rfc3339(text: str | None) -> str | None:
    """A device's local ISO time ("2024-01-01T12:00:00") as RFC 3339 with this host's offset; None if unreadable."""
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when.astimezone().isoformat() if when.tzinfo is None else when.isoformat()


def _record_json(item: RecordItem) -> dict[str, Any]:
    return {
        "channel_id": item.device_id,
        "name": item.name,
        "file_path": item.file_path,
        "address": item.address,
        "start_time": _rfc3339(item.start_time),
        "end_time": _rfc3339(item.end_time),
        "secrecy": item.secrecy,
        "type": item.type,
        "recorder_id": item.recorder_id,
        "file_size": item.file_size,
    }


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body: Any = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise HTTPException(400, f"{name} must be an integer")
    return value


def _record_filters(query: Any) -> dict[str, Any]:
    """The RecordInfo filters of a records query string, validated (`record_fields`); 400 on a bad one."""
    filters: dict[str, Any] = {
        name: query[param]
        for param, name in (
            ("type", "record_type"),
            ("file_path", "file_path"),
            ("address", "address"),
            ("recorder_id", "recorder_id"),
        )
        if param in query
    }
    if "secrecy" in query:
        if query["secrecy"] not in ("0", "1"):
            raise HTTPException(400, "secrecy must be 0 or 1")
        filters["secrecy"] = int(query["secrecy"])
    try:
        record_fields(**filters)
    except LocalProtocolError as exc:
        raise HTTPException(400, str(exc)) from None
    return filters


def _subscription_filters(body: dict[str, Any], event: str) -> SubscriptionFilter:
    """A subscription body's filters, validated (`subscription_filter`); 400 with the reason on a bad one."""
    values: dict[str, Any] = {}
    for name in ("start_alarm_priority", "end_alarm_priority"):
        values[name] = _optional_int(body, name)
    for name in ("channel_id", "alarm_method", "alarm_type"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise HTTPException(400, f"{name} must be a string")
        values[name] = value
    for name in ("start_time", "end_time"):
        if body.get(name) is not None:
            values[name] = _parse_time(body[name], name)
    try:
        return subscription_filter(event, **values)
    except LocalProtocolError as exc:
        raise HTTPException(400, str(exc)) from None


def gb28181_routes(platform: Gb28181Platform) -> list[Route]:
    """The platform's routes, to add to the API app's route list."""

    async def list_devices(request: Request) -> JSONResponse:
        return JSONResponse({"devices": [d.to_json() for d in platform.devices()]})

    async def list_channels(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        device = platform.device(device_id)
        if device is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        return JSONResponse({"device_id": device_id, "channels": [c.to_json() for c in device.channels]})

    async def ptz(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        body = await _json_body(request)
        command = body.get("command")
        speed = body.get("speed", 128)
        preset = body.get("preset")
        if not isinstance(command, str) or command not in PTZ_COMMANDS:
            raise HTTPException(400, f"unknown PTZ command {command!r}; expected one of {sorted(PTZ_COMMANDS)}")
        if isinstance(speed, bool) or not isinstance(speed, int) or not 0 <= speed <= 255:
            raise HTTPException(400, "speed must be an integer 0..255")
        if preset is not None and (isinstance(preset, bool) or not isinstance(preset, int)):
            raise HTTPException(400, "preset must be an integer 1..255")
        extra = {name: _optional_int(body, name) for name in ("group", "switch", "value")}
        device = platform.device(device_id)
        if device is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        channel_id = body.get("channel_id", device_id)
        if not isinstance(channel_id, str) or not channel_id:
            raise HTTPException(400, "channel_id must be a string")
        try:
            status = await platform.ptz(device_id, channel_id, command, speed=speed, preset=preset, **extra)
        except LocalProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        except DeviceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except DeviceOfflineError as exc:
            raise HTTPException(409, str(exc)) from None
        if status == 408:
            raise HTTPException(504, f"device {device_id} did not answer the PTZ command")
        return JSONResponse({"device_id": device_id, "channel_id": channel_id, "command": command, "status": status})

    # Streams started through these routes: DELETE stops only those (other streams have their own endpoint).
    started: dict[str, Gb28181Source] = {}

    def engine_of() -> VideoEngine:
        engine = platform.engine
        if engine is None:
            raise HTTPException(503, "the GB28181 platform has no engine to stream into")
        return engine

    def channel_of(device_id: str, body: dict[str, Any]) -> str:
        """The body's channel (default: the device itself, an IPC), checked against the device and its catalog."""
        device = platform.device(device_id)
        if device is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        if not device.online:
            raise HTTPException(409, f"GB28181 device {device_id} is offline")
        channel_id = body.get("channel_id", device_id)
        if not (
            isinstance(channel_id, str) and len(channel_id) == 20 and channel_id.isascii() and channel_id.isdigit()
        ):
            raise HTTPException(400, "channel_id must be a 20-digit GB28181 ID")
        if channel_id != device_id and device.channels and channel_id not in {c.channel_id for c in device.channels}:
            raise HTTPException(404, f"device {device_id} has no channel {channel_id}")
        return channel_id

    def transport_of(body: dict[str, Any]) -> Any:
        transport = body.get("transport", "udp")
        if transport not in _TRANSPORTS:
            raise HTTPException(400, f"transport must be one of {list(_TRANSPORTS)}")
        return transport

    def stream_id_of(body: dict[str, Any], default: str) -> str:
        stream_id = body.get("stream_id", default)
        if not isinstance(stream_id, str) or not stream_id or len(stream_id) > 200:
            raise HTTPException(400, "stream_id must be a non-empty string")
        return stream_id

    def add(engine: VideoEngine, stream_id: str, source: Gb28181Source, policy: RestartPolicy | None) -> None:
        for sid in [sid for sid in started if not _has_stream(engine, sid)]:
            del started[sid]  # ended by itself (a playback at its end, a failed source)
        try:
            engine.add_source(stream_id, source, restart=policy)
        except StreamExistsError:
            raise HTTPException(409, f"stream {stream_id!r} already exists") from None
        except LocalProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        started[stream_id] = source

    async def list_records(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        query = request.query_params
        channel_id = channel_of(device_id, {"channel_id": query["channel_id"]} if "channel_id" in query else {})
        start = _parse_time(query.get("start"), "start")
        end = _parse_time(query.get("end"), "end")
        if end <= start:
            raise HTTPException(400, "end must be after start")
        filters = _record_filters(query)
        try:
            items = await platform.query_records(device_id, channel_id, start.isoformat(), end.isoformat(), **filters)
        except (DeviceNotFoundError, DeviceOfflineError) as exc:
            raise HTTPException(409 if isinstance(exc, DeviceOfflineError) else 404, str(exc)) from None
        except Gb28181Error as exc:
            raise HTTPException(504, str(exc)) from None
        return JSONResponse(
            {"device_id": device_id, "channel_id": channel_id, "records": [_record_json(i) for i in items]}
        )

    async def playback(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        body = await _json_body(request)
        engine = engine_of()
        channel_id = channel_of(device_id, body)
        start = _parse_time(body.get("start_time"), "start_time")
        end = _parse_time(body.get("end_time"), "end_time")
        if end <= start:
            raise HTTPException(400, "end_time must be after start_time")
        speed = body.get("speed", 1.0)
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not math.isfinite(speed)
            or not _MIN_SPEED <= speed <= _MAX_SPEED
        ):
            raise HTTPException(400, f"speed must be a number {_MIN_SPEED:g}..{_MAX_SPEED:g}")
        transport = transport_of(body)
        window = (int(start.timestamp()), int(end.timestamp()))
        default_id = f"{channel_id}-playback-{window[0]}-{secrets.token_hex(3)}"
        stream_id = stream_id_of(body, default_id)
        source = Gb28181Source(platform, device_id, channel_id, transport, playback=window, speed=float(speed))
        add(engine, stream_id, source, _PLAYBACK_RESTART)
        return JSONResponse(
            {
                "stream_id": stream_id,
                "device_id": device_id,
                "channel_id": channel_id,
                "start_time": start.astimezone().isoformat(),
                "end_time": end.astimezone().isoformat(),
                "speed": float(speed),
                "transport": transport,
            },
            201,
        )

    async def download(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        body = await _json_body(request)
        unknown = sorted(set(body) - set(_DOWNLOAD_FIELDS))
        if unknown:
            raise HTTPException(400, f"unknown fields {unknown}; expected {', '.join(_DOWNLOAD_FIELDS)}")
        engine = engine_of()
        channel_id = channel_of(device_id, body)
        start = _parse_time(body.get("start_time"), "start_time")
        end = _parse_time(body.get("end_time"), "end_time")
        if end <= start:
            raise HTTPException(400, "end_time must be after start_time")
        speed = body.get("download_speed", _DEFAULT_DOWNLOAD_SPEED)
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int)
            or not _MIN_DOWNLOAD_SPEED <= speed <= _MAX_DOWNLOAD_SPEED
        ):
            raise HTTPException(400, f"download_speed must be an integer {_MIN_DOWNLOAD_SPEED}..{_MAX_DOWNLOAD_SPEED}")
        transport = transport_of(body)
        window = (int(start.timestamp()), int(end.timestamp()))
        stream_id = stream_id_of(body, f"{channel_id}-download-{window[0]}")
        try:
            validate_stream_id(stream_id)  # a download exists to be recorded: refuse an id storage cannot take
        except LocalProtocolError:
            raise HTTPException(
                400, f"stream_id {stream_id!r} cannot be stored: 1-128 of A-Z a-z 0-9 _-@:+=,~."
            ) from None
        source = Gb28181Source(platform, device_id, channel_id, transport, playback=window, download_speed=speed)
        add(engine, stream_id, source, _PLAYBACK_RESTART)
        return JSONResponse(
            {
                "stream_id": stream_id,
                "device_id": device_id,
                "channel_id": channel_id,
                "start_time": start.astimezone().isoformat(),
                "end_time": end.astimezone().isoformat(),
                "download_speed": speed,
                "transport": transport,
            },
            201,
        )

    async def live(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        body = await _json_body(request)
        engine = engine_of()
        channel_id = channel_of(device_id, body)
        transport = transport_of(body)
        stream_id = stream_id_of(body, channel_id)
        add(engine, stream_id, Gb28181Source(platform, device_id, channel_id, transport), None)
        return JSONResponse(
            {"stream_id": stream_id, "device_id": device_id, "channel_id": channel_id, "transport": transport}, 201
        )

    def online_device_of(device_id: str) -> None:
        device = platform.device(device_id)
        if device is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        if not device.online:
            raise HTTPException(409, f"GB28181 device {device_id} is offline")

    async def list_subscriptions(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        if platform.device(device_id) is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        now = trio.current_time()
        items = [info.to_json(now) for info in platform.subscription_info(device_id)]
        return JSONResponse({"device_id": device_id, "subscriptions": items})

    async def subscribe(request: Request) -> JSONResponse:
        device_id = request.path_params["device_id"]
        body = await _json_body(request)
        known = ("kind", "expires", "interval", *_SUBSCRIPTION_FILTERS)
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise HTTPException(400, f"unknown fields {unknown}; expected {', '.join(known)}")
        kind = body.get("kind")
        if not isinstance(kind, str) or kind not in SUBSCRIPTION_KINDS:
            raise HTTPException(400, f"kind must be one of {list(SUBSCRIPTION_KINDS)}")
        expires = _optional_int(body, "expires")
        if expires is not None and not _MIN_EXPIRES <= expires <= _MAX_EXPIRES:
            raise HTTPException(400, f"expires must be an integer {_MIN_EXPIRES}..{_MAX_EXPIRES} (seconds)")
        interval = _optional_int(body, "interval")
        if interval is not None and kind != "mobile_position":
            raise HTTPException(400, "interval applies to mobile_position subscriptions only")
        if interval is not None and not _MIN_INTERVAL <= interval <= _MAX_INTERVAL:
            raise HTTPException(400, f"interval must be an integer {_MIN_INTERVAL}..{_MAX_INTERVAL} (seconds)")
        filters = _subscription_filters(body, SUBSCRIPTION_KINDS[kind])
        online_device_of(device_id)
        device = platform.device(device_id)
        channel_id = filters.channel_id
        known_channels = {c.channel_id for c in device.channels} if device is not None else set()
        if channel_id is not None and channel_id != device_id and known_channels and channel_id not in known_channels:
            raise HTTPException(404, f"device {device_id} has no channel {channel_id}")
        try:
            info = await platform.subscribe(
                device_id, SUBSCRIPTION_KINDS[kind], expires=expires, interval=interval, **attrs.asdict(filters)
            )
        except LocalProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        except DeviceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except DeviceOfflineError as exc:
            raise HTTPException(409, str(exc)) from None
        except SubscriptionRefusedError as exc:
            raise HTTPException(502, str(exc)) from None
        except Gb28181Error as exc:
            raise HTTPException(504, str(exc)) from None
        return JSONResponse({"device_id": device_id, **info.to_json(trio.current_time())}, 201)

    async def unsubscribe(request: Request) -> Response:
        device_id = request.path_params["device_id"]
        kind = request.path_params["kind"]
        if platform.device(device_id) is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        if kind not in SUBSCRIPTION_KINDS:
            raise HTTPException(404, f"no subscription kind {kind!r}; expected one of {list(SUBSCRIPTION_KINDS)}")
        if not await platform.unsubscribe(device_id, SUBSCRIPTION_KINDS[kind]):
            raise HTTPException(404, f"device {device_id} has no {kind} subscription")
        return Response(status_code=204)

    async def stop_stream(request: Request) -> Response:
        stream_id = request.path_params["stream_id"]
        engine = engine_of()
        if stream_id not in started:
            raise HTTPException(404, f"no GB28181 stream {stream_id!r} started through this API")
        del started[stream_id]
        try:
            engine.remove_source(stream_id)
        except StreamNotFoundError:
            raise HTTPException(404, f"stream {stream_id!r} has already ended") from None
        return Response(status_code=204)

    base = _BASE
    routes = [
        Route(base, list_devices, methods=["GET"]),
        Route(base + "/{device_id}/channels", list_channels, methods=["GET"]),
        Route(base + "/{device_id}/ptz", ptz, methods=["POST"]),
        Route(base + "/{device_id}/records", list_records, methods=["GET"]),
        Route(base + "/{device_id}/playback", playback, methods=["POST"]),
        Route(base + "/{device_id}/download", download, methods=["POST"]),
        Route(base + "/{device_id}/live", live, methods=["POST"]),
        Route(base + "/{device_id}/subscriptions", list_subscriptions, methods=["GET"]),
        Route(base + "/{device_id}/subscriptions", subscribe, methods=["POST"]),
        Route(base + "/{device_id}/subscriptions/{kind}", unsubscribe, methods=["DELETE"]),
        Route("/api/video/gb28181/streams/{stream_id}", stop_stream, methods=["DELETE"]),
    ]
    return [_documented(route) for route in routes]


def _has_stream(engine: VideoEngine, stream_id: str) -> bool:
    return any(info.stream_id == stream_id for info in engine.list_streams())
