"""The one error family of fluxkit.

Parsers and protocol state machines raise only `ProtocolError` subclasses; anything else escaping a parser is a
bug (the fuzz harnesses assert exactly this). The split follows h11:

* `LocalProtocolError`: *we* tried to do something invalid (serialize an impossible packet, send in the wrong
  state). The caller's code is wrong.
* `RemoteProtocolError`: the *peer* (or the file) sent bytes that break the protocol. Nothing the caller did.
* `ParseError`: a `RemoteProtocolError` that knows the byte offset where parsing failed.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FluxkitError",
    "LocalProtocolError",
    "ParseError",
    "ProtocolError",
    "RemoteProtocolError",
]


class FluxkitError(Exception):
    """Base class of every error fluxkit raises on purpose."""


class ProtocolError(FluxkitError):
    """A protocol rule was broken. Never raised directly: see the two subclasses.

    Attributes:
        status_hint: a status code the layer above may answer with (SIP 400/513, RTSP 400/413, HTTP 400).
        event_hint: an event the layer above may send before closing (h11's idea).
    """

    def __init__(self, msg: str, *, status_hint: int | None = None, event_hint: object | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract: raise LocalProtocolError or RemoteProtocolError")
        super().__init__(msg)
        self.msg = msg
        self.status_hint = status_hint
        self.event_hint = event_hint


class LocalProtocolError(ProtocolError):
    """Our side asked for something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer, or the input file, broke the protocol."""


class ParseError(RemoteProtocolError):
    """Input bytes could not be parsed; `offset` is where, relative to the start of the unit being parsed."""

    def __init__(
        self,
        msg: str,
        *,
        offset: int | None = None,
        status_hint: int | None = None,
        event_hint: object | None = None,
    ) -> None:
        super().__init__(
            msg if offset is None else f"{msg} (at byte {offset})", status_hint=status_hint, event_hint=event_hint
        )
        self.offset = offset


class ConfigError(FluxkitError):
    """A configuration file or value is invalid. `messages` holds one line per problem, with its path."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {m}" for m in messages))
        self.messages = messages
