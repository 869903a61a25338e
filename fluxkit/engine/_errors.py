"""Errors raised by the engine; all in the fluxkit.errors family (FluxkitError)."""

from __future__ import annotations

from fluxkit.errors import FluxkitError

__all__ = ["PermanentSourceError", "StreamExistsError", "StreamNotFoundError"]


class PermanentSourceError(FluxkitError):
    """Raised by a `Source` for a failure that retrying cannot fix (wrong credentials, a path the server does not
    have, an unsupported codec). The supervisor stops at once instead of retrying: no retry storm."""


class StreamNotFoundError(FluxkitError, LookupError):
    """No stream with this id is registered."""


class StreamExistsError(FluxkitError, ValueError):
    """A stream with this id is already registered."""
