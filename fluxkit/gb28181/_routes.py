"""REST routes of the GB28181 platform (issue 6), mounted by the API app.

`GET /api/video/gb28181/devices`, `GET /api/video/gb28181/devices/{device_id}/channels` and
`POST /api/video/gb28181/devices/{device_id}/ptz` with `{"channel_id", "command", "speed", "preset"}`. Errors are
`HTTPException`s, which the API app renders as `{"error", "status"}`: 400 for a bad body or an unknown command,
404 for an unknown device, 409 for an offline one, 504 when the device does not answer the PTZ MESSAGE.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route

from fluxkit.errors import LocalProtocolError

from ._ptz import PTZ_COMMANDS
from ._settings import DeviceNotFoundError, DeviceOfflineError

if TYPE_CHECKING:
    from starlette.requests import Request

    from ._platform import Gb28181Platform

__all__ = ["gb28181_routes"]


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
        try:
            body: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        command = body.get("command")
        speed = body.get("speed", 128)
        preset = body.get("preset")
        if not isinstance(command, str) or command not in PTZ_COMMANDS:
            raise HTTPException(400, f"unknown PTZ command {command!r}; expected one of {sorted(PTZ_COMMANDS)}")
        if isinstance(speed, bool) or not isinstance(speed, int) or not 0 <= speed <= 255:
            raise HTTPException(400, "speed must be an integer 0..255")
        if preset is not None and (isinstance(preset, bool) or not isinstance(preset, int)):
            raise HTTPException(400, "preset must be an integer 1..255")
        device = platform.device(device_id)
        if device is None:
            raise HTTPException(404, f"no GB28181 device {device_id}")
        channel_id = body.get("channel_id", device_id)
        if not isinstance(channel_id, str) or not channel_id:
            raise HTTPException(400, "channel_id must be a string")
        try:
            status = await platform.ptz(device_id, channel_id, command, speed=speed, preset=preset)
        except LocalProtocolError as exc:
            raise HTTPException(400, str(exc)) from None
        except DeviceNotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except DeviceOfflineError as exc:
            raise HTTPException(409, str(exc)) from None
        if status == 408:
            raise HTTPException(504, f"device {device_id} did not answer the PTZ command")
        return JSONResponse({"device_id": device_id, "channel_id": channel_id, "command": command, "status": status})

    base = "/api/video/gb28181/devices"
    return [
        Route(base, list_devices, methods=["GET"]),
        Route(base + "/{device_id}/channels", list_channels, methods=["GET"]),
        Route(base + "/{device_id}/ptz", ptz, methods=["POST"]),
    ]
