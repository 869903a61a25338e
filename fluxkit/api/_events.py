"""Engine events as JSON, for the `/api/video/events` WebSocket.

Strategy: one generic serializer over the attrs fields of any `EngineEvent`, so a new event class reaches clients
without touching the API: `type` is the class name, `time` the RFC 3339 wall time of sending, `engine_time` the
event's own monotonic engine time, and every other field is made JSON-safe (tracks as codec, kind, size and fps;
exceptions and unknown objects as strings; non-finite floats as null).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import attrs

from ._times import format_time

__all__ = ["EVENTS_DROPPED", "event_json"]

#: `type` of the message that tells a client its feed lost events (its buffer overflowed while it was slow).
EVENTS_DROPPED = "EventsDropped"


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)  # a byte payload never goes out raw; its size is what a log wants
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    codec = getattr(value, "codec", None)
    if isinstance(codec, str) and hasattr(value, "width"):  # a Track
        return {
            "codec": codec,
            "kind": _safe(getattr(value, "kind", None)),
            "width": _safe(value.width),
            "height": _safe(getattr(value, "height", None)),
            "fps": _safe(getattr(value, "fps", None)),
        }
    if attrs.has(type(value)):
        return {a.name: _safe(getattr(value, a.name)) for a in attrs.fields(type(value))}
    return str(value)


def event_json(event: Any, wall_time: float) -> dict[str, Any]:
    """The JSON object of one engine event, sent at `wall_time` (epoch seconds).

    Returns:
        `{"type": class name, "stream_id", "time": RFC 3339 of wall_time, "engine_time": event.time, ...fields}`.
    """
    out: dict[str, Any] = {
        "type": type(event).__name__,
        "stream_id": event.stream_id,
        "time": format_time(dt.datetime.fromtimestamp(wall_time, dt.UTC)),
        "engine_time": _safe(event.time),
    }
    for field in attrs.fields(type(event)):
        if field.name not in ("stream_id", "time"):
            out[field.name] = _safe(getattr(event, field.name))
    return out
