"""Messages the backend side posts to the console (`app.post_message`)."""

from __future__ import annotations

from textual.message import Message

from .backend import EventLine, StreamStatus

__all__ = ["BackendFailed", "EventReceived", "StreamsUpdated"]


class StreamsUpdated(Message):
    """A fresh poll of every stream; a newer one replaces an undelivered older one (no backlog when busy)."""

    def __init__(self, rows: list[StreamStatus]) -> None:
        super().__init__()
        self.rows = rows

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StreamsUpdated)


class EventReceived(Message):
    """One event for the events log."""

    def __init__(self, line: EventLine) -> None:
        super().__init__()
        self.line = line


class BackendFailed(Message):
    """The backend could not be reached (shown in the sub-title; polling goes on)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
