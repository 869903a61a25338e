"""Events of an `RtmpConnection`: frozen records, nouns or past-tense facts (style.md §6.5)."""

from __future__ import annotations

import enum

import attrs

from ._amf0 import AmfValue

__all__ = [
    "NEED_DATA",
    "CommandReceived",
    "Connected",
    "ConnectionClosed",
    "Event",
    "MediaMessage",
    "MetaData",
    "NeedData",
    "PlayRequested",
    "PublishRequested",
    "StatusReceived",
    "StreamCreated",
    "StreamDeleted",
]


class NeedData(enum.Enum):
    """Type of the `NEED_DATA` sentinel: `next_event()` has nothing until more bytes arrive."""

    NEED_DATA = "NEED_DATA"


#: Returned by `next_event()` when no event is ready.
NEED_DATA = NeedData.NEED_DATA


@attrs.frozen(kw_only=True, slots=True)
class Event:
    """Base class of the RTMP events."""


@attrs.frozen(kw_only=True, slots=True)
class Connected(Event):
    """NetConnection connected: the peer's `connect` (server role, already answered with success), or the
    server's `_result` to ours (client role).

    Attributes:
        app: the application name ("live").
        tc_url: the tcUrl the client sent ("rtmp://host:1935/live"), or "" when absent.
        properties: the connect command object (server role) or the `_result` information object (client role).
    """

    app: str
    tc_url: str
    properties: dict[str, AmfValue] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, slots=True)
class StreamCreated(Event):
    """Client role: the server answered `createStream` with this message stream id."""

    stream_id: int
    transaction_id: int


@attrs.frozen(kw_only=True, slots=True)
class PublishRequested(Event):
    """Server role: the peer wants to publish on `stream_id`; answer with `accept_publish` or `refuse_publish`.

    Attributes:
        stream_id: the message stream id (from createStream).
        stream_key: the publishing name as sent, query included ("cam1?token=abc").
        app: the application of the connection.
        publish_type: "live", "record" or "append".
    """

    stream_id: int
    stream_key: str
    app: str
    publish_type: str = "live"


@attrs.frozen(kw_only=True, slots=True)
class PlayRequested(Event):
    """Server role: the peer wants to play `stream_name`; answer with `accept_play` or `refuse_play`."""

    stream_id: int
    stream_name: str
    app: str


@attrs.frozen(kw_only=True, slots=True)
class MediaMessage(Event):
    """An audio or video message: its payload is an FLV tag body (see fluxkit.protocols.flv).

    Attributes:
        kind: "audio" (message type 8) or "video" (type 9).
        stream_id: the message stream id.
        timestamp: milliseconds (32 bits, may wrap).
        payload: the FLV AUDIODATA / VIDEODATA body.
    """

    kind: str
    stream_id: int
    timestamp: int
    payload: bytes


@attrs.frozen(kw_only=True, slots=True)
class MetaData(Event):
    """A data message: `@setDataFrame onMetaData {...}` from a publisher or `onMetaData {...}` to a player.

    Attributes:
        stream_id: the message stream id.
        name: the handler name ("onMetaData", or the first value's name for other data messages).
        values: the metadata object (an ECMA array or object; empty when absent).
    """

    stream_id: int
    name: str
    values: dict[str, AmfValue] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, slots=True)
class StreamDeleted(Event):
    """The peer sent deleteStream, closeStream or FCUnpublish for `stream_id`."""

    stream_id: int
    command: str = "deleteStream"


@attrs.frozen(kw_only=True, slots=True)
class StatusReceived(Event):
    """Client role: an `onStatus` (or an `_error` to one of our commands).

    Attributes:
        stream_id: the message stream id it came on (0 for NetConnection).
        level: "status", "warning" or "error".
        code: "NetStream.Play.Start", "NetStream.Publish.BadName", "NetConnection.Connect.Rejected", ...
        description: the human-readable text, or "".
    """

    stream_id: int
    level: str
    code: str
    description: str = ""


@attrs.frozen(kw_only=True, slots=True)
class CommandReceived(Event):
    """A command the connection does not handle by itself (passed on for the application to log or answer)."""

    stream_id: int
    name: str
    transaction_id: float
    values: tuple[AmfValue, ...] = ()


@attrs.frozen(kw_only=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed the TCP connection (`receive_data(b"")`)."""
