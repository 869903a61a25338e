"""`serve_api`: the API on Hypercorn's Trio worker, inside the caller's nursery.

Strategy: `hypercorn.trio.serve` reports the bound addresses through `task_status`, so `nursery.start(serve_api,
...)` returns the real port (useful with port 0). Stopping is plain Trio cancellation of the caller's scope.
Hypercorn's own logs go to the `fluxkit.api` logger; the access log is off.
"""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from ._app import ApiServices, make_app

__all__ = ["serve_api"]

_log = logging.getLogger("fluxkit.api")


async def serve_api(
    services: ApiServices,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `make_app(services)` on `host:port` until cancelled.

    Use `port = await nursery.start(serve_api, services, host, port)`: it returns once listening, with the bound
    port (the real one when `port` is 0). The default host is loopback only; bind elsewhere deliberately, with a
    token set.

    Raises:
        OSError: the address cannot be bound.
    """
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = _log
    config.graceful_timeout = 1.0
    app = make_app(services)

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, app, config)
        bound = int(binds[0].rsplit(":", 1)[1]) if binds else port
        _log.info("REST API listening on %s", ", ".join(binds))
        task_status.started(bound)
