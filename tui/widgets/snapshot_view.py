"""`SnapshotView`: a JPEG drawn with half-blocks, redrawn to fit when the widget is resized."""

from __future__ import annotations

from fluxkit_tui.snapshot import decode_jpeg, halfblock_text
from rich.text import Text
from textual.widgets import Static

__all__ = ["SnapshotView"]


class SnapshotView(Static):
    """Shows the latest JPEG given to `show`, or a message."""

    DEFAULT_CSS = """
    SnapshotView { width: 1fr; height: 1fr; content-align: center middle; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002  (Textual's name)
        super().__init__("no snapshot yet", id=id)
        self.jpeg: bytes | None = None
        self.pixels: tuple[int, int] | None = None

    def show(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self._draw()

    def show_message(self, message: str) -> None:
        if self.jpeg is None:
            self.update(Text(message, style="dim"))

    def on_resize(self) -> None:
        if self.jpeg is not None:
            self._draw()

    def _draw(self) -> None:
        if self.jpeg is None:
            return
        columns = max(4, self.size.width or 40)
        rows = max(2, self.size.height or 10)
        try:
            image = decode_jpeg(self.jpeg, columns, rows)
        except Exception as exc:  # a bad JPEG must not take the console down: FFmpeg raises several kinds
            self.update(Text(f"cannot decode snapshot: {exc}", style="red"))
            return
        self.pixels = (image.shape[1], image.shape[0])
        self.update(halfblock_text(image))
