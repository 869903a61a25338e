"""The REST/CLI PTZ command names of issue 6, mapped to GB/T 28181-2016 Appendix A.3 PTZCmd values.

Speeds: one `speed` (0..255) drives what the command moves. Pan and tilt speeds go in bytes 5 and 6 (A.4 notes:
byte 5 horizontal, byte 6 vertical), a diagonal gets it on both; zoom speed is a 4-bit nibble (byte 7 high), so
the 0..255 value is scaled down with `>> 4` (as Monibuca does); focus and iris speeds take bytes 5 and 6.
"""

from __future__ import annotations

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.manscdp import PtzAction, PtzCommand

__all__ = ["PTZ_COMMANDS", "ptz_command"]

_MOVES: dict[str, tuple[str | None, str | None, str | None]] = {
    # name: (pan, tilt, zoom)
    "up": (None, "up", None),
    "down": (None, "down", None),
    "left": ("left", None, None),
    "right": ("right", None, None),
    "up_left": ("left", "up", None),
    "up_right": ("right", "up", None),
    "down_left": ("left", "down", None),
    "down_right": ("right", "down", None),
    "zoom_in": (None, None, "in"),
    "zoom_out": (None, None, "out"),
}
_FOCUS_IRIS: dict[str, tuple[str | None, str | None]] = {
    "focus_near": ("near", None),
    "focus_far": ("far", None),
    "iris_open": (None, "open"),
    "iris_close": (None, "close"),
}
_PRESETS = {
    "preset_set": PtzAction.PRESET_SET,
    "preset_call": PtzAction.PRESET_CALL,
    "preset_delete": PtzAction.PRESET_DELETE,
}

#: Every command name `ptz_command` accepts.
PTZ_COMMANDS: frozenset[str] = frozenset({*_MOVES, *_FOCUS_IRIS, *_PRESETS, "stop"})


def ptz_command(name: str, *, speed: int = 128, preset: int | None = None) -> PtzCommand:
    """The PtzCommand for a command name.

    Args:
        name: one of `PTZ_COMMANDS` ("up", "zoom_in", "stop", "preset_call", ...).
        speed: 0..255.
        preset: 1..255, required by the preset commands.

    Raises:
        LocalProtocolError: unknown name, speed out of range, or a missing/out-of-range preset.
    """
    if not 0 <= speed <= 255:
        raise LocalProtocolError(f"PTZ speed {speed} is outside 0..255")
    if name == "stop":
        return PtzCommand.stop()
    move = _MOVES.get(name)
    if move is not None:
        pan, tilt, zoom = move
        return PtzCommand.move(
            pan=pan,  # type: ignore[arg-type]
            tilt=tilt,  # type: ignore[arg-type]
            zoom=zoom,  # type: ignore[arg-type]
            pan_speed=speed if pan else 0,
            tilt_speed=speed if tilt else 0,
            zoom_speed=min(15, speed >> 4) if zoom else 0,
        )
    focus_iris = _FOCUS_IRIS.get(name)
    if focus_iris is not None:
        focus, iris = focus_iris
        return PtzCommand(
            action=PtzAction.FOCUS_IRIS,
            focus=focus,  # type: ignore[arg-type]
            iris=iris,  # type: ignore[arg-type]
            focus_speed=speed if focus else 0,
            iris_speed=speed if iris else 0,
        )
    action = _PRESETS.get(name)
    if action is not None:
        if preset is None or not 1 <= preset <= 255:
            raise LocalProtocolError(f"{name} needs a preset number 1..255, not {preset!r}")
        return PtzCommand.preset_command(action, preset)
    raise LocalProtocolError(f"unknown PTZ command {name!r}; expected one of {', '.join(sorted(PTZ_COMMANDS))}")
