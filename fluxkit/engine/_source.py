"""The contract between the engine and a stream source, and the restart policy the supervisor applies.

A source (the RTSP client, the GB28181 media receiver, a file player, a test fake) implements `Source.run`:
connect, announce the tracks with `session.publish(tracks)` (which returns the `Publisher` to send frames to),
then send frames until the source ends. The engine runs each source in its own cancel scope under a supervisor:

* `run` returns normally: the source is finished (end of a file); the stream stops, no restart.
* `run` raises `PermanentSourceError` (alone or inside an exception group): the stream fails at once.
* `run` raises any other `Exception`: the source is restarted after an exponential backoff with jitter, up to
  `RestartPolicy.max_attempts` consecutive failures; a try that stayed connected `reset_after` seconds resets
  the count.
* cancellation (`remove_source`, `stop_stream`, engine exit) ends `run` with `trio.Cancelled`, as usual.

`publish` plays the part of trio's `task_status.started()`: it is the point where the source counts as connected,
and it carries the tracks, which a network source only learns after connecting (RTSP DESCRIBE).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from ._engine import SourceSession

__all__ = ["RestartPolicy", "Source"]


class Source(Protocol):
    """Anything the engine can supervise as the origin of one stream."""

    async def run(self, session: SourceSession) -> None:
        """Connect, call `session.publish(tracks)`, send frames to the publisher it returns; return when done.

        Raise `PermanentSourceError` for failures a retry cannot fix, anything else for those it might. Open a
        nursery inside `run` for helper tasks (an RTCP sender, a keep-alive): they then live and die with it.
        """
        ...


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must not be negative")


@attrs.frozen(kw_only=True, slots=True)
class RestartPolicy:
    """How a failed source is restarted: exponential backoff with jitter, bounded attempts.

    The delay before restart number n (1-based) is `min(max_delay, initial_delay * multiplier**(n-1))`, minus a
    random fraction of up to `jitter` of it (drawn from the engine's injected `random.Random`), so that many
    cameras behind one broken switch do not reconnect in lockstep.

    Attributes:
        initial_delay: seconds before the first restart.
        max_delay: ceiling of the delay, seconds.
        multiplier: growth of the delay per consecutive failure.
        jitter: fraction (0..1) of the delay that is randomised away.
        max_attempts: consecutive failed restarts allowed before the stream fails; None retries forever.
        reset_after: a try that stayed connected (published) this many seconds resets the attempt count.
    """

    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_non_negative)
    multiplier: float = attrs.field(default=2.0, validator=attrs.validators.ge(1.0))
    jitter: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    max_attempts: int | None = attrs.field(default=10, validator=_non_negative)
    reset_after: float = attrs.field(default=30.0, validator=_non_negative)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before restart number `attempt` (1 for the first restart after a failure)."""
        try:
            base = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        except OverflowError:  # float power past 1e308 after very many attempts: the ceiling applies anyway
            base = self.max_delay
        return base * (1.0 - self.jitter * rng.random())
