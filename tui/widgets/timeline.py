"""`TimelineBar`: a one-line bar of a time range, recorded spans in green, gaps in red, the chosen range marked.

Strategy: each column covers `(end - start) / width` seconds; a column is "recorded" when any segment overlaps
it, and a gap wins over a segment so that short holes stay visible.
"""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.widgets import Static

from ..backend import Recordings

__all__ = ["TimelineBar", "render_timeline"]


def _col(when: dt.datetime, start: dt.datetime, span: float, width: int) -> int:
    return int((when - start).total_seconds() / span * width)


def render_timeline(
    recordings: Recordings, width: int, selection: tuple[dt.datetime, dt.datetime] | None = None
) -> Text:
    """The bar as Rich text: `█` recorded, `░` gap, `·` nothing; the selection underlined in reverse."""
    width = max(1, width)
    span = max(1e-6, (recordings.end - recordings.start).total_seconds())
    cells = ["none"] * width
    for kind, spans in (("rec", recordings.segments), ("gap", recordings.gaps)):
        for s in spans:
            a = max(0, _col(s.start, recordings.start, span, width))
            b = min(width, max(a + 1, _col(s.end, recordings.start, span, width)))
            for i in range(a, b):
                if kind == "gap" or cells[i] == "none":
                    cells[i] = kind
    selected = range(0)
    if selection is not None:
        a = max(0, _col(selection[0], recordings.start, span, width))
        b = min(width, max(a + 1, _col(selection[1], recordings.start, span, width)))
        selected = range(a, b)
    glyph = {"rec": ("█", "green"), "gap": ("░", "red"), "none": ("·", "bright_black")}
    text = Text(no_wrap=True)
    for i, kind in enumerate(cells):
        char, style = glyph[kind]
        text.append(char, style + (" reverse" if i in selected else ""))
    return text


class TimelineBar(Static):
    """The timeline of the listed recordings; call `show(recordings, selection)`."""

    DEFAULT_CSS = "TimelineBar { height: 1; width: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self.recordings: Recordings | None = None
        self.selection: tuple[dt.datetime, dt.datetime] | None = None

    def show(self, recordings: Recordings, selection: tuple[dt.datetime, dt.datetime] | None) -> None:
        self.recordings, self.selection = recordings, selection
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.recordings is not None:
            self.update(render_timeline(self.recordings, self.size.width or 60, self.selection))
