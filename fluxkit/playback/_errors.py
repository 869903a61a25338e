"""Errors of playback and export: one family under `FluxkitError`, mapped to HTTP statuses by the API layer."""

from __future__ import annotations

from fluxkit.errors import FluxkitError

__all__ = ["InvalidRange", "NoRecording", "PlaybackError", "RangeTooLarge"]


class PlaybackError(FluxkitError):
    """Base class of playback and export errors."""


class InvalidRange(PlaybackError, ValueError):
    """The request is malformed: end not after start, a speed outside 0.25..4 (HTTP 400)."""


class RangeTooLarge(InvalidRange):
    """The range is longer than the allowed maximum (HTTP 400/413)."""


class NoRecording(PlaybackError):
    """Nothing is recorded in the requested range (HTTP 404)."""
