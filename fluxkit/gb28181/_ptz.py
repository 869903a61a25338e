"""The REST/CLI PTZ command names of issue 6, mapped to GB/T 28181-2016 Appendix A.3 PTZCmd values.

Speeds: one `speed` (0..255) drives what the command moves. Pan and tilt speeds go in bytes 5 and 6 (A.4 notes:
byte 5 horizontal, byte 6 vertical), a diagonal gets it on both; zoom speed is a 4-bit nibble (byte 7 high), so
the 0..255 value is scaled down with `>> 4` (as Monibuca does); focus and iris speeds take bytes 5 and 6.

Cruise, scan and auxiliary switches (A.3.5 to A.3.7) take their own parameters, never `speed`: `group` (byte 5)
for every cruise and scan command (scan defaults to group 1, cruise has no default), `preset` as the cruise point
(`cruise_add`, `cruise_delete`; 0 deletes the whole cruise), `value` for the 12-bit `cruise_speed`, `cruise_dwell`
(seconds) and `scan_speed`, and `switch` for `aux_on`/`aux_off` (switch 1 is the wiper). A running cruise or scan
is stopped with `stop`.
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

_CRUISE = {
    "cruise_add": PtzAction.CRUISE_ADD,
    "cruise_delete": PtzAction.CRUISE_DELETE,
    "cruise_speed": PtzAction.CRUISE_SPEED,
    "cruise_dwell": PtzAction.CRUISE_DWELL,
    "cruise_start": PtzAction.CRUISE_START,
}
_SCAN = {
    "scan_start": PtzAction.SCAN_START,
    "scan_left": PtzAction.SCAN_LEFT,
    "scan_right": PtzAction.SCAN_RIGHT,
    "scan_speed": PtzAction.SCAN_SPEED,
}
_AUX = {"aux_on": PtzAction.AUX_ON, "aux_off": PtzAction.AUX_OFF}
# Commands whose 12-bit `value` is required (A.3.5, A.3.6).
_VALUED = frozenset({"cruise_speed", "cruise_dwell", "scan_speed"})

#: Every command name `ptz_command` accepts.
PTZ_COMMANDS: frozenset[str] = frozenset({*_MOVES, *_FOCUS_IRIS, *_PRESETS, *_CRUISE, *_SCAN, *_AUX, "stop"})


def _in_range(what: str, number: int | None, low: int, high: int, name: str) -> int:
    if number is None or isinstance(number, bool) or not low <= number <= high:
        raise LocalProtocolError(f"{name} needs {what} {low}..{high}, not {number!r}")
    return number


def ptz_command(
    name: str,
    *,
    speed: int = 128,
    preset: int | None = None,
    group: int | None = None,
    switch: int | None = None,
    value: int | None = None,
) -> PtzCommand:
    """The PtzCommand for a command name.

    Args:
        name: one of `PTZ_COMMANDS` ("up", "zoom_in", "stop", "preset_call", "cruise_start", "aux_on", ...).
        speed: 0..255 (moves, focus, iris).
        preset: 1..255, required by the preset commands; the cruise point (0..255) of cruise_add/cruise_delete.
        group: cruise or scan group 0..255 (required by cruise_*; scan_* default to 1).
        switch: auxiliary switch 0..255, required by aux_on/aux_off.
        value: 0..4095, required by cruise_speed, cruise_dwell (seconds) and scan_speed.

    Raises:
        LocalProtocolError: unknown name, or a parameter the command needs missing or out of range.
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
    action = _CRUISE.get(name) or _SCAN.get(name)
    if action is not None:
        number = _in_range("a group", 1 if group is None and name in _SCAN else group, 0, 255, name)
        if name in _VALUED:
            return PtzCommand(action=action, group=number, value=_in_range("a value", value, 0, 0xFFF, name))
        if name in ("cruise_add", "cruise_delete"):
            return PtzCommand(action=action, group=number, point=_in_range("a preset (point)", preset, 0, 255, name))
        return PtzCommand(action=action, group=number)
    action = _AUX.get(name)
    if action is not None:
        return PtzCommand(action=action, switch=_in_range("a switch", switch, 0, 255, name))
    raise LocalProtocolError(f"unknown PTZ command {name!r}; expected one of {', '.join(sorted(PTZ_COMMANDS))}")
