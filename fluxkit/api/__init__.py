"""fluxkit's REST API: streams, snapshots, recordings, playback, live view (fMP4 over WebSocket), the engine
event feed (JSON over WebSocket) and metrics.

Run it in the engine's nursery::

    services = ApiServices(engine=engine, storage=storage, snapshots=snapshots, token=ensure_token(data_dir))
    port = await nursery.start(serve_api, services, "127.0.0.1", 8080)

`make_app(services)` gives the bare Starlette app; `openapi_document()` the OpenAPI 3.0 description it serves at
`/api/openapi.json`.
"""

from __future__ import annotations

from ._app import DEFAULT_LIVE_SEND_TIMEOUT as DEFAULT_LIVE_SEND_TIMEOUT
from ._app import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._app import DEFAULT_MAX_LIST_RANGE as DEFAULT_MAX_LIST_RANGE
from ._app import DEFAULT_MAX_PLAYBACK_RANGE as DEFAULT_MAX_PLAYBACK_RANGE
from ._app import FIRST_FRAME_HEADER as FIRST_FRAME_HEADER
from ._app import ApiServices as ApiServices
from ._app import make_app as make_app
from ._auth import TOKEN_FILE_NAME as TOKEN_FILE_NAME
from ._auth import BearerAuthMiddleware as BearerAuthMiddleware
from ._auth import ensure_token as ensure_token
from ._events import EVENTS_DROPPED as EVENTS_DROPPED
from ._events import event_json as event_json
from ._metrics import render_metrics as render_metrics
from ._openapi import openapi_document as openapi_document
from ._serve import serve_api as serve_api
from ._times import format_time as format_time
from ._times import parse_time as parse_time

__all__ = [
    "DEFAULT_LIVE_SEND_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_LIST_RANGE",
    "DEFAULT_MAX_PLAYBACK_RANGE",
    "EVENTS_DROPPED",
    "FIRST_FRAME_HEADER",
    "TOKEN_FILE_NAME",
    "ApiServices",
    "BearerAuthMiddleware",
    "ensure_token",
    "event_json",
    "format_time",
    "make_app",
    "openapi_document",
    "parse_time",
    "render_metrics",
    "serve_api",
]
