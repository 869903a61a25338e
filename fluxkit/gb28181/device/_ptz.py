"""A simulated pan/tilt/zoom head, driven by the PTZCmd commands a platform sends (GB/T 28181-2016 A.3).

Strategy: a head moves continuously like a real dome camera: a MOVE sets velocities from the direction bits and
speeds, and the position is integrated lazily (`position(now)`), so nothing runs in the background; STOP (or a
focus/iris stop) freezes it. Presets store and recall positions. Units: pan 0..360 degrees (wrapping), tilt
-90..90 degrees, zoom 1..30x. Speed 255 pans at `MAX_PAN_SPEED` degrees per second.
"""

from __future__ import annotations

import attrs

from fluxkit.protocols.manscdp import PtzAction, PtzCommand

__all__ = ["MAX_PAN_SPEED", "MAX_TILT_SPEED", "MAX_ZOOM_SPEED", "PtzHead", "PtzLogEntry", "PtzPosition"]

#: Degrees per second at speed byte 0xFF.
MAX_PAN_SPEED = 100.0
MAX_TILT_SPEED = 60.0
#: Zoom factor per second at zoom speed nibble 0xF.
MAX_ZOOM_SPEED = 8.0
_ZOOM_MIN, _ZOOM_MAX = 1.0, 30.0


@attrs.frozen(kw_only=True, slots=True)
class PtzPosition:
    """Where the head points: pan and tilt in degrees, zoom factor."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 1.0


@attrs.frozen(kw_only=True, slots=True)
class PtzLogEntry:
    """One DeviceControl with a PTZCmd as received.

    Attributes:
        time: the Trio clock when it arrived.
        channel_id: the `<DeviceID>` it addressed.
        hex: the `<PTZCmd>` text exactly as received.
        command: the decoded command, None when it did not decode (then it was not applied).
        sn: the MANSCDP SN.
    """

    time: float
    channel_id: str
    hex: str
    command: PtzCommand | None
    sn: int


class PtzHead:
    """The head of one channel."""

    def __init__(self) -> None:
        self._base = PtzPosition()
        self._since = 0.0
        self._velocity = (0.0, 0.0, 0.0)  # pan deg/s, tilt deg/s, zoom factor/s
        self.presets: dict[int, PtzPosition] = {}
        self.aux: dict[int, bool] = {}

    @property
    def moving(self) -> bool:
        """Whether a MOVE is in progress."""
        return self._velocity != (0.0, 0.0, 0.0)

    def position(self, now: float) -> PtzPosition:
        """The position at `now` (the head keeps moving until a stop)."""
        dt = max(0.0, now - self._since)
        vp, vt, vz = self._velocity
        base = self._base
        return PtzPosition(
            pan=(base.pan + vp * dt) % 360.0,
            tilt=min(90.0, max(-90.0, base.tilt + vt * dt)),
            zoom=min(_ZOOM_MAX, max(_ZOOM_MIN, base.zoom + vz * dt)),
        )

    def _settle(self, now: float, velocity: tuple[float, float, float]) -> None:
        self._base = self.position(now)
        self._since = now
        self._velocity = velocity

    def apply(self, command: PtzCommand, now: float) -> None:
        """Apply one decoded PTZCmd at `now`."""
        action = command.action
        if action is PtzAction.STOP:
            self._settle(now, (0.0, 0.0, 0.0))
        elif action is PtzAction.MOVE:
            vp = {"left": -1.0, "right": 1.0, None: 0.0}[command.pan] * command.pan_speed / 255 * MAX_PAN_SPEED
            vt = {"down": -1.0, "up": 1.0, None: 0.0}[command.tilt] * command.tilt_speed / 255 * MAX_TILT_SPEED
            # Zoom speed 0 still zooms slowly: platforms often leave the nibble at 0.
            vz = {"out": -1.0, "in": 1.0, None: 0.0}[command.zoom] * (command.zoom_speed + 1) / 16 * MAX_ZOOM_SPEED
            self._settle(now, (vp, vt, vz))
        elif action is PtzAction.PRESET_SET:
            self.presets[command.preset] = self.position(now)
        elif action is PtzAction.PRESET_CALL:
            target = self.presets.get(command.preset)
            if target is not None:
                self._base, self._since, self._velocity = target, now, (0.0, 0.0, 0.0)
        elif action is PtzAction.PRESET_DELETE:
            self.presets.pop(command.preset, None)
        elif action is PtzAction.AUX_ON:
            self.aux[command.switch] = True
        elif action is PtzAction.AUX_OFF:
            self.aux[command.switch] = False
        # Focus/iris, cruise and scan are logged only: the head has no lens or tour model.
