"""Per-stream media timeline: wrapping source timestamps in, unwrapped media time and run numbers out.

Strategy: each track keeps the last raw timestamp it saw and the unwrapped value it mapped to. A new raw value is
compared with the last one modulo 2**wrap_bits and read as a *signed* difference (serial-number arithmetic, as
RFC 3550 §A.1 does for sequence numbers and RFC 1982 defines it), so a 32-bit RTP timestamp that wraps keeps
counting up. The difference is then judged against the wall clock, which is kept apart and never mixed into media
time:

* a step backwards larger than `max_backward` seconds (a camera clock reset, a reboot, a new RTP base), or
* a step forwards that outruns the wall time elapsed since the previous frame by more than `max_forward` seconds
  (a clock jump; an outage during which the camera clock kept running is *not* a jump, since wall time ran too)

starts a new *run*: `run_id` increments and every track re-anchors at its next frame. Consumers (the recorder, the
RTSP output) see the run change and cut there instead of gluing two unrelated timelines together. Small backwards
steps (B-frame presentation order, audio reordering) stay within one run.

The class is pure: no clock, the caller passes `now` (seconds, e.g. `trio.current_time()`).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = [
    "DEFAULT_MAX_BACKWARD",
    "DEFAULT_MAX_FORWARD",
    "TimePoint",
    "Timeline",
    "WallOrigin",
]

#: A backwards step up to this many seconds stays in the run (presentation reordering, late audio).
DEFAULT_MAX_BACKWARD = 0.5
#: Media time may outrun wall time by this many seconds between two frames before it counts as a clock jump.
DEFAULT_MAX_FORWARD = 10.0


@attrs.frozen(kw_only=True, slots=True)
class TimePoint:
    """Where one timestamp landed.

    Attributes:
        run_id: the run it belongs to (0 for the first); a change means a discontinuity.
        media: unwrapped media time in the track's clock-rate ticks, counted from the run's first raw value.
        seconds: media time since the start of the run on this track, in seconds.
        wall: the wall time (`now`) the frame arrived at; kept apart from media time.
        new_run: True on the first timestamp of a run after the first one.
        reason: on the first timestamp of a run, why it started: "start", "backward_jump", "forward_jump" or
            "reset"; "" otherwise.
    """

    run_id: int
    media: int
    seconds: float
    wall: float
    new_run: bool
    reason: str


@attrs.frozen(kw_only=True, slots=True)
class WallOrigin:
    """Where a stream's media time lies on the wall clock, for a source whose frames were captured long before
    they arrive (a GB28181 download, sent N times faster than real time).

    Published with the stream (`SourceSession.publish(..., wall_origin=)`), it tells consumers that place frames
    on the wall clock (the recorder) to use the frames' own timestamps from this point instead of the time they
    arrived, the way an RTCP sender report maps RTP time to NTP time (RFC 3550 §6.4.1). Live streams have none.

    Attributes:
        epoch_us: UTC microseconds at which the frame stamped `timestamp` was captured.
        timestamp: that frame's raw timestamp (dts, else pts), as published (before any unwrapping).
        clock_rate: ticks per second of `timestamp`; it applies to the tracks with this clock rate (90000: video,
            and every track of an MPEG-PS stream).
    """

    epoch_us: int
    timestamp: int
    clock_rate: int = 90000

    def wall_us(self, timestamp: int, clock_rate: int, wrap_bits: int | None = 32) -> int | None:
        """UTC microseconds of a frame stamped `timestamp` on a track of `clock_rate`; None for another clock.

        Timestamps are compared modulo 2**wrap_bits as a signed step (RFC 1982), so a clock that wrapped since the
        origin still maps forwards (up to half the wrap: 6.6 hours at 90 kHz and 32 bits).
        """
        if clock_rate != self.clock_rate:
            return None
        delta = timestamp - self.timestamp
        if wrap_bits is not None:
            modulus = 1 << wrap_bits
            delta %= modulus
            if delta >= modulus >> 1:
                delta -= modulus
        return self.epoch_us + round(delta * 1_000_000 / clock_rate)


class _TrackClock:
    __slots__ = ("anchor", "clock_rate", "last_raw", "last_unwrapped", "last_wall")

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.last_raw: int | None = None
        self.last_unwrapped = 0
        self.anchor = 0
        self.last_wall = 0.0


class Timeline:
    """Unwraps the timestamps of a stream's tracks and splits them into runs at clock jumps.

    Args:
        clock_rates: the clock rate of each track (90000 for video, the sample rate for most audio), or one int
            for a single track.
        wrap_bits: width of the raw timestamps (32 for RTP, 33 for MPEG PES); None when they never wrap.
        max_backward: seconds a timestamp may step back and stay in the run.
        max_forward: seconds media time may outrun wall time between two frames and stay in the run.
    """

    def __init__(
        self,
        clock_rates: Sequence[int] | int = 90000,
        *,
        wrap_bits: int | None = 32,
        max_backward: float = DEFAULT_MAX_BACKWARD,
        max_forward: float = DEFAULT_MAX_FORWARD,
    ) -> None:
        rates = [clock_rates] if isinstance(clock_rates, int) else list(clock_rates)
        if not rates or any(rate <= 0 for rate in rates):
            raise ValueError("every clock rate must be a positive integer")
        if wrap_bits is not None and not 8 <= wrap_bits <= 64:
            raise ValueError("wrap_bits must be between 8 and 64, or None")
        self._tracks = [_TrackClock(rate) for rate in rates]
        self._modulus = None if wrap_bits is None else 1 << wrap_bits
        self._half = None if wrap_bits is None else 1 << (wrap_bits - 1)
        self._max_backward = max_backward
        self._max_forward = max_forward
        #: The current run; -1 until the first timestamp arrives.
        self.run_id = -1
        #: Wall time at which the current run started (None before the first timestamp).
        self.run_start_wall: float | None = None
        self._reason = "start"
        #: Why the run of the last timestamp started, when that timestamp started one; "" otherwise.
        self.last_reason = ""

    @property
    def tracks(self) -> int:
        """How many tracks this timeline follows."""
        return len(self._tracks)

    def set_clock_rates(self, clock_rates: Sequence[int]) -> None:
        """Follow a new set of tracks (the stream re-announced them); a new run starts at the next timestamp."""
        if not clock_rates or any(rate <= 0 for rate in clock_rates):
            raise ValueError("every clock rate must be a positive integer")
        self._tracks = [_TrackClock(rate) for rate in clock_rates]
        if self.run_id >= 0:
            self._reason = "reset"

    def reset(self) -> None:
        """Start a new run at the next timestamp (the source reconnected: its clock base is new)."""
        for clock in self._tracks:
            clock.last_raw = None
        if self.run_id >= 0:
            self._reason = "reset"

    def update(self, timestamp: int, now: float, *, track: int = 0) -> TimePoint:
        """Map one raw timestamp of `track` that arrived at wall time `now`.

        Raises:
            IndexError: `track` is not one of this timeline's tracks.
        """
        run = self.run_id
        media = self.observe(timestamp, now, track=track)
        clock = self._tracks[track]
        started = self.last_reason
        return TimePoint(
            run_id=self.run_id,
            media=media,
            seconds=(media - clock.anchor) / clock.clock_rate,
            wall=now,
            new_run=self.run_id != run and self.run_id > 0,
            reason=started,
        )

    def observe(self, timestamp: int, now: float, *, track: int = 0) -> int:
        """`update` without building a `TimePoint` (the engine's per-frame path): returns the unwrapped media time.

        A new run shows as a changed `run_id`; `last_reason` then says why ("" when no run started).
        """
        clock = self._tracks[track]
        modulus = self._modulus
        if modulus is not None:
            timestamp %= modulus
        last = clock.last_raw
        reason = ""
        if last is None:
            if self.run_id < 0 or self._reason != "":
                reason = self._reason
        else:
            delta = timestamp - last
            if modulus is not None:
                delta %= modulus
                if delta >= self._half:  # type: ignore[operator]
                    delta -= modulus  # serial-number arithmetic: read as a signed step
            rate = clock.clock_rate
            if delta < 0 and -delta > self._max_backward * rate:
                reason = "backward_jump"
            elif delta > 0 and delta / rate - (now - clock.last_wall) > self._max_forward:
                reason = "forward_jump"
            else:
                unwrapped = clock.last_unwrapped + delta
                clock.last_raw = timestamp
                clock.last_unwrapped = unwrapped
                clock.last_wall = now
                self.last_reason = ""
                return unwrapped
        if reason:
            self.run_id += 1
            self.run_start_wall = now
            self._reason = ""
            for other in self._tracks:  # every track re-anchors in the new run
                if other is not clock:
                    other.last_raw = None
        # The first timestamp of a track in a run anchors it: unwrapped time starts at the raw value.
        clock.last_raw = timestamp
        clock.last_unwrapped = timestamp
        clock.anchor = timestamp
        clock.last_wall = now
        self.last_reason = reason
        return timestamp
