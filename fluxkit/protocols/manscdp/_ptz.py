"""PTZCmd: the 8-byte front-end control command of GB/T 28181-2016 Appendix A.3, sent as 16 hex characters.

Strategy: `bytes.fromhex` then plain indexing (eight bytes, no loop worth avoiding). The byte layout (A.3.1):

    1: 0xA5   2: version (high nibble) | check (low nibble) = (0xA + 0x5 + version) % 16   3: address low 8 bits
    4: command   5: data 1   6: data 2   7: data 3 (high nibble) | address high 4 bits (low nibble)
    8: checksum = (sum of bytes 1..7) % 256

`PtzCommand` carries the command as an `action` plus named parameters (directions, speeds, preset, cruise group,
...). Bytes a command does not use are written as zero and ignored when decoding, so a round trip is exact for
every command whose unused bytes are zero (all the worked examples of the reference, and what real platforms send).
"""

from __future__ import annotations

import enum
from typing import Literal

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = ["PtzAction", "PtzCommand"]

Pan = Literal["left", "right"]
Tilt = Literal["up", "down"]
Zoom = Literal["in", "out"]
Focus = Literal["near", "far"]
Iris = Literal["open", "close"]


class PtzAction(enum.Enum):
    """The command families of A.3.2 to A.3.7 (byte 4)."""

    #: 0x00: stop pan, tilt and zoom (also stops a running cruise or scan).
    STOP = "stop"
    #: 0x01..0x3F: pan/tilt/zoom, directions combinable (A.3.2).
    MOVE = "move"
    #: 0x40..0x4F: focus near/far, iris open/close; 0x40 alone stops them (A.3.3).
    FOCUS_IRIS = "focus_iris"
    #: 0x81, 0x82, 0x83: preset set / call / delete (A.3.4).
    PRESET_SET = "preset_set"
    PRESET_CALL = "preset_call"
    PRESET_DELETE = "preset_delete"
    #: 0x84..0x88: cruise add point / delete point / speed / dwell / start (A.3.5).
    CRUISE_ADD = "cruise_add"
    CRUISE_DELETE = "cruise_delete"
    CRUISE_SPEED = "cruise_speed"
    CRUISE_DWELL = "cruise_dwell"
    CRUISE_START = "cruise_start"
    #: 0x89 with data 2 = 0 / 1 / 2: scan start / set left bound / set right bound; 0x8A scan speed (A.3.6).
    SCAN_START = "scan_start"
    SCAN_LEFT = "scan_left"
    SCAN_RIGHT = "scan_right"
    SCAN_SPEED = "scan_speed"
    #: 0x8C / 0x8D: auxiliary switch on / off (A.3.7; switch 1 = wiper).
    AUX_ON = "aux_on"
    AUX_OFF = "aux_off"


_SIMPLE_CODES: dict[PtzAction, int] = {
    PtzAction.PRESET_SET: 0x81,
    PtzAction.PRESET_CALL: 0x82,
    PtzAction.PRESET_DELETE: 0x83,
    PtzAction.CRUISE_ADD: 0x84,
    PtzAction.CRUISE_DELETE: 0x85,
    PtzAction.CRUISE_SPEED: 0x86,
    PtzAction.CRUISE_DWELL: 0x87,
    PtzAction.CRUISE_START: 0x88,
    PtzAction.SCAN_SPEED: 0x8A,
    PtzAction.AUX_ON: 0x8C,
    PtzAction.AUX_OFF: 0x8D,
}
_SCAN_OPS: dict[PtzAction, int] = {PtzAction.SCAN_START: 0, PtzAction.SCAN_LEFT: 1, PtzAction.SCAN_RIGHT: 2}
_ACTION_BY_CODE = {code: action for action, code in _SIMPLE_CODES.items()}
_SCAN_BY_OP = {op: action for action, op in _SCAN_OPS.items()}
# Actions whose value is 12 bits: data 2 (low 8) + data 3 (high nibble of byte 7) (A.3.5, A.3.6).
_TWELVE_BIT = frozenset({PtzAction.CRUISE_SPEED, PtzAction.CRUISE_DWELL, PtzAction.SCAN_SPEED})


def _check(name: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise LocalProtocolError(f"PTZCmd {name}={value} is outside 0..{limit}")


@attrs.frozen(kw_only=True, slots=True)
class PtzCommand:
    """One PTZCmd. Build with the keyword fields or the class-method shortcuts; `encode()` validates.

    Attributes:
        action: the command family.
        pan, tilt, zoom: MOVE directions (None = not moving on that axis). Directions follow the image on the
            monitor (A.3.2).
        pan_speed, tilt_speed: bytes 5 and 6 for MOVE/STOP, 0..255 (byte 5 is horizontal: follow the A.4 notes,
            not the swapped A.5 table).
        zoom_speed: high nibble of byte 7 for MOVE/STOP, 0..15.
        focus, iris: FOCUS_IRIS directions; focus_speed (byte 5) and iris_speed (byte 6), 0..255.
        preset: preset number (byte 6) for PRESET_*, 1..255 by the standard (0..255 accepted).
        group: cruise group (CRUISE_*) or scan group (SCAN_*), byte 5.
        point: the preset of a cruise point (CRUISE_ADD/DELETE; 0 deletes the whole cruise), byte 6.
        value: the 12-bit cruise speed, cruise dwell time in seconds or scan speed (CRUISE_SPEED/DWELL, SCAN_SPEED).
        switch: auxiliary switch number (AUX_ON/OFF), byte 5.
        address: the 12-bit device address (byte 3 + low nibble of byte 7); platforms send 1 and use <DeviceID>.
        version: the protocol version nibble of byte 2 (0).
    """

    action: PtzAction
    pan: Pan | None = None
    tilt: Tilt | None = None
    zoom: Zoom | None = None
    pan_speed: int = 0
    tilt_speed: int = 0
    zoom_speed: int = 0
    focus: Focus | None = None
    iris: Iris | None = None
    focus_speed: int = 0
    iris_speed: int = 0
    preset: int = 0
    group: int = 0
    point: int = 0
    value: int = 0
    switch: int = 0
    address: int = 1
    version: int = 0

    # -- shortcuts -------------------------------------------------------------------------------------------------

    @classmethod
    def stop(cls) -> PtzCommand:
        """The all-zero PTZ stop (also stops cruise and scan)."""
        return cls(action=PtzAction.STOP)

    @classmethod
    def move(
        cls,
        *,
        pan: Pan | None = None,
        tilt: Tilt | None = None,
        zoom: Zoom | None = None,
        pan_speed: int = 0,
        tilt_speed: int = 0,
        zoom_speed: int = 0,
    ) -> PtzCommand:
        """Pan/tilt/zoom in any combination of directions."""
        return cls(
            action=PtzAction.MOVE,
            pan=pan,
            tilt=tilt,
            zoom=zoom,
            pan_speed=pan_speed,
            tilt_speed=tilt_speed,
            zoom_speed=zoom_speed,
        )

    @classmethod
    def preset_command(cls, action: PtzAction, preset: int) -> PtzCommand:
        """PRESET_SET, PRESET_CALL or PRESET_DELETE of `preset`."""
        if action not in (PtzAction.PRESET_SET, PtzAction.PRESET_CALL, PtzAction.PRESET_DELETE):
            raise LocalProtocolError(f"{action} is not a preset action")
        return cls(action=action, preset=preset)

    # -- codec -----------------------------------------------------------------------------------------------------

    @property
    def is_stop(self) -> bool:
        """True for the PTZ stop and for the focus/iris stop (0x40)."""
        return self.action is PtzAction.STOP or (
            self.action is PtzAction.FOCUS_IRIS and self.focus is None and self.iris is None
        )

    def to_bytes(self) -> bytes:
        """The 8 bytes, checksum included. Raises LocalProtocolError for an out-of-range field."""
        _check("address", self.address, 0xFFF)
        _check("version", self.version, 0xF)
        action = self.action
        d3 = 0
        if action is PtzAction.STOP or action is PtzAction.MOVE:
            code = (
                (0x02 if self.pan == "left" else 0x01 if self.pan == "right" else 0)
                | (0x08 if self.tilt == "up" else 0x04 if self.tilt == "down" else 0)
                | (0x10 if self.zoom == "in" else 0x20 if self.zoom == "out" else 0)
            )
            if (code == 0) != (action is PtzAction.STOP):
                raise LocalProtocolError("PTZCmd MOVE needs a direction and STOP takes none")
            _check("pan_speed", self.pan_speed, 0xFF)
            _check("tilt_speed", self.tilt_speed, 0xFF)
            _check("zoom_speed", self.zoom_speed, 0xF)
            d1, d2, d3 = self.pan_speed, self.tilt_speed, self.zoom_speed
        elif action is PtzAction.FOCUS_IRIS:
            code = (
                0x40
                | (0x42 if self.focus == "near" else 0x41 if self.focus == "far" else 0)
                | (0x48 if self.iris == "close" else 0x44 if self.iris == "open" else 0)
            )
            _check("focus_speed", self.focus_speed, 0xFF)
            _check("iris_speed", self.iris_speed, 0xFF)
            d1, d2 = self.focus_speed, self.iris_speed
        elif action in _SCAN_OPS:
            _check("group", self.group, 0xFF)
            code, d1, d2 = 0x89, self.group, _SCAN_OPS[action]
        else:
            code = _SIMPLE_CODES[action]
            if code <= 0x83:  # presets (A.3.4): byte 5 = 0, byte 6 = preset
                _check("preset", self.preset, 0xFF)
                d1, d2 = 0, self.preset
            elif action in _TWELVE_BIT:
                _check("group", self.group, 0xFF)
                _check("value", self.value, 0xFFF)
                d1, d2, d3 = self.group, self.value & 0xFF, self.value >> 8
            elif action is PtzAction.AUX_ON or action is PtzAction.AUX_OFF:
                _check("switch", self.switch, 0xFF)
                d1, d2 = self.switch, 0
            else:  # cruise add/delete point, cruise start
                _check("group", self.group, 0xFF)
                _check("point", self.point, 0xFF)
                d1, d2 = self.group, self.point
        head = bytes(
            (
                0xA5,
                (self.version << 4) | ((0xA + 0x5 + self.version) & 0xF),
                self.address & 0xFF,
                code,
                d1,
                d2,
                (d3 << 4) | (self.address >> 8),
            )
        )
        return head + bytes((sum(head) & 0xFF,))

    def encode(self) -> str:
        """The 16 upper-case hex characters that go in `<PTZCmd>`."""
        return self.to_bytes().hex().upper()

    @classmethod
    def from_bytes(cls, data: bytes) -> PtzCommand:
        """Decode 8 bytes; raises ParseError for a bad length, lead byte, check nibble, checksum or command."""
        if len(data) != 8:
            raise ParseError(f"PTZCmd is 8 bytes, got {len(data)}")
        if data[0] != 0xA5:
            raise ParseError(f"PTZCmd must start with A5, got {data[0]:02X}", offset=0)
        version = data[1] >> 4
        if data[1] & 0xF != (0xA + 0x5 + version) & 0xF:
            raise ParseError(f"PTZCmd check nibble {data[1]:02X} does not match version {version}", offset=1)
        if sum(data[:7]) & 0xFF != data[7]:
            raise ParseError(f"PTZCmd checksum {data[7]:02X} != {sum(data[:7]) & 0xFF:02X}", offset=7)
        code, d1, d2, d3 = data[3], data[4], data[5], data[6] >> 4
        address = data[2] | (data[6] & 0xF) << 8
        if code < 0x40:
            if code & 0x03 == 0x03 or code & 0x0C == 0x0C or code & 0x30 == 0x30:
                raise ParseError(f"PTZCmd {code:02X} asks for two opposite directions", offset=3)
            pan: Pan | None = "left" if code & 0x02 else "right" if code & 0x01 else None
            tilt: Tilt | None = "up" if code & 0x08 else "down" if code & 0x04 else None
            zoom: Zoom | None = "in" if code & 0x10 else "out" if code & 0x20 else None
            return cls(
                action=PtzAction.MOVE if code else PtzAction.STOP,
                pan=pan,
                tilt=tilt,
                zoom=zoom,
                pan_speed=d1,
                tilt_speed=d2,
                zoom_speed=d3,
                address=address,
                version=version,
            )
        if code < 0x50:
            if code & 0x03 == 0x03 or code & 0x0C == 0x0C:
                raise ParseError(f"PTZCmd {code:02X} asks for two opposite focus/iris moves", offset=3)
            focus: Focus | None = "near" if code & 0x02 else "far" if code & 0x01 else None
            iris: Iris | None = "close" if code & 0x08 else "open" if code & 0x04 else None
            return cls(
                action=PtzAction.FOCUS_IRIS,
                focus=focus,
                iris=iris,
                focus_speed=d1,
                iris_speed=d2,
                address=address,
                version=version,
            )
        if code == 0x89:
            scan = _SCAN_BY_OP.get(d2)
            if scan is None:
                raise ParseError(f"PTZCmd scan operation {d2} is not 0, 1 or 2", offset=5)
            return cls(action=scan, group=d1, address=address, version=version)
        action = _ACTION_BY_CODE.get(code)
        if action is None:
            raise ParseError(f"PTZCmd command byte {code:02X} is not defined by A.3", offset=3)
        if code <= 0x83:
            return cls(action=action, preset=d2, address=address, version=version)
        if action in _TWELVE_BIT:
            return cls(action=action, group=d1, value=d2 | d3 << 8, address=address, version=version)
        if action is PtzAction.AUX_ON or action is PtzAction.AUX_OFF:
            return cls(action=action, switch=d1, address=address, version=version)
        return cls(action=action, group=d1, point=d2, address=address, version=version)

    @classmethod
    def decode(cls, hex_string: str) -> PtzCommand:
        """Decode the 16 hex characters of `<PTZCmd>` (either case, surrounding whitespace ignored)."""
        text = hex_string.strip()
        if len(text) != 16 or not text.isascii():
            raise ParseError(f"PTZCmd must be 16 hex characters, got {len(text)}")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise ParseError("PTZCmd is not hexadecimal") from None
        return cls.from_bytes(data)

    def describe(self) -> str:
        """A short human-readable form for logs and `fluxkit inspect`, e.g. "move right+up pan=128 tilt=64"."""
        action = self.action
        if action is PtzAction.MOVE or action is PtzAction.STOP:
            dirs = [d for d in (self.pan, self.tilt, f"zoom-{self.zoom}" if self.zoom else None) if d]
            head = "move " + "+".join(dirs) if dirs else "stop"
            speeds = f" pan={self.pan_speed} tilt={self.tilt_speed} zoom={self.zoom_speed}"
            return head + (speeds if dirs or self.pan_speed or self.tilt_speed or self.zoom_speed else "")
        if action is PtzAction.FOCUS_IRIS:
            dirs = [d for d in (f"focus-{self.focus}" if self.focus else None, self.iris and f"iris-{self.iris}") if d]
            if not dirs:
                return "focus/iris stop"
            return "+".join(dirs) + f" focus={self.focus_speed} iris={self.iris_speed}"
        if action.value.startswith("preset"):
            return f"{action.value.replace('_', ' ')} {self.preset}"
        if action in _TWELVE_BIT:
            return f"{action.value.replace('_', ' ')} group={self.group} value={self.value}"
        if action is PtzAction.AUX_ON or action is PtzAction.AUX_OFF:
            return f"{action.value.replace('_', ' ')} switch={self.switch}"
        if action in _SCAN_OPS:
            return f"{action.value.replace('_', ' ')} group={self.group}"
        return f"{action.value.replace('_', ' ')} group={self.group} point={self.point}"
