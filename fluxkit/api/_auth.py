"""Bearer-token authentication (RFC 6750) for every HTTP request and WebSocket handshake, and the token file.

Strategy: a pure ASGI middleware in front of the whole app, so no route can forget it. The comparison is
`hmac.compare_digest` over bytes (constant time). Browsers cannot set headers on a WebSocket, so a WebSocket
handshake may carry the token as the `access_token` query parameter instead (RFC 6750 §2.3); plain HTTP requests
must use the header. A refusal is a 401 JSON body with `WWW-Authenticate: Bearer` (RFC 6750 §3); for a WebSocket
it is sent as the handshake's HTTP response where the server supports that, else the handshake is closed (1008).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TOKEN_FILE_NAME", "BearerAuthMiddleware", "ensure_token"]

#: Name of the generated token's file inside the data directory.
TOKEN_FILE_NAME = "api-token"

Scope = dict[str, Any]


def ensure_token(data_dir: str | os.PathLike[str]) -> str:
    """The API token stored in `<data_dir>/api-token`, generated (256 random bits) and stored 0600 on first run.

    The directory is created when missing. A file that is empty or unreadable as text is replaced.
    """
    directory = Path(data_dir)
    path = directory / TOKEN_FILE_NAME
    with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
        token = path.read_text("ascii").strip()
        if token and all("!" <= c <= "~" for c in token):
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            return token
    directory.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = directory / f".{TOKEN_FILE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    return token


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


class BearerAuthMiddleware:
    """ASGI middleware: every `http` and `websocket` scope needs the token; `lifespan` passes through.

    Args:
        app: the wrapped application.
        token: the expected token; None turns authentication off.
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self._token = None if token is None else token.encode()

    def _authorized(self, scope: Scope) -> bool:
        assert self._token is not None
        supplied: bytes | None = None
        header = _header(scope, b"authorization")
        if header is not None:
            scheme, _, credentials = header.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                supplied = credentials.strip()
        elif scope["type"] == "websocket":
            values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
            if values:
                supplied = values[0].encode("latin-1")
        # compare_digest takes time independent of where the bytes differ (lengths may leak, which is fine).
        return supplied is not None and hmac.compare_digest(supplied, self._token)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self._token is None or scope["type"] not in ("http", "websocket") or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        message = "missing or invalid bearer token" if _header(scope, b"authorization") else "bearer token required"
        body = json.dumps({"error": message, "status": 401}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="fluxkit"'),
        ]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": message})
