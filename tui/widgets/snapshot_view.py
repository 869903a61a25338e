"""`SnapshotView`: a JPEG drawn with a terminal image protocol or with half-blocks, redrawn to fit when resized.

Strategy: the view holds a `Static` for the half-blocks and the messages, and, once a picture arrives with a
protocol chosen (`graphics` "kitty" or "sixel", see `fluxkit_tui.graphics`), a textual-image widget beside it that
takes its place. The JPEG is decoded once by PyAV (at most `MAX_PICTURE` pixels a side) and handed over as a PIL
image; textual-image scales it to the cells and pixels the widget has and writes the escape sequences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from ..graphics import Graphics
from ..snapshot import decode_fit, decode_jpeg, halfblock_text

if TYPE_CHECKING:
    from textual_image.widget import SixelImage, TGPImage

__all__ = ["MAX_PICTURE", "SnapshotView"]

#: Largest side (pixels) of the picture handed to a terminal image protocol; the terminal scales it to the cells.
MAX_PICTURE: Final = 1280


class SnapshotView(Widget):
    """Shows the latest JPEG given to `show`, or a message.

    Args:
        graphics: "halfblock" (default), or the image protocol to draw with ("kitty", "sixel").
    """

    DEFAULT_CSS = """
    SnapshotView { width: 1fr; height: 1fr; align: center middle; }
    SnapshotView > #snapshot-cells { width: 1fr; height: 1fr; content-align: center middle; }
    SnapshotView > .snapshot-image { width: auto; height: auto; }
    """

    def __init__(self, *, graphics: Graphics = "halfblock", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.graphics: Graphics = graphics
        self.jpeg: bytes | None = None
        #: Size (width, height) in pixels of the picture last drawn.
        self.pixels: tuple[int, int] | None = None
        #: The textual-image widget drawing with a protocol (None with half-blocks, or before the first picture).
        self.image_widget: TGPImage | SixelImage | None = None

    def compose(self) -> ComposeResult:
        yield Static("no snapshot yet", id="snapshot-cells")

    @property
    def cells(self) -> Static:
        return self.query_one("#snapshot-cells", Static)

    def show(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self._draw()

    def show_message(self, message: str) -> None:
        if self.jpeg is None:
            self.cells.update(Text(message, style="dim"))

    def on_resize(self) -> None:
        if self.jpeg is not None and self.graphics == "halfblock":
            self._draw()  # a protocol widget rescales by itself

    def _draw(self) -> None:
        if self.jpeg is None:
            return
        columns = max(4, self.size.width or 40)
        rows = max(2, self.size.height or 10)
        try:
            if self.graphics == "halfblock":
                image = decode_jpeg(self.jpeg, columns, rows)
            else:
                image = decode_fit(self.jpeg, MAX_PICTURE, MAX_PICTURE, upscale=False)
        except Exception as exc:  # a bad JPEG must not take the console down: FFmpeg raises several kinds
            self.cells.display = True
            if self.image_widget is not None:
                self.image_widget.display = False
            self.cells.update(Text(f"cannot decode snapshot: {exc}", style="red"))
            return
        self.pixels = (image.shape[1], image.shape[0])
        if self.graphics == "halfblock":
            self.cells.update(halfblock_text(image))
        else:
            self._show_picture(image)

    def _show_picture(self, image: np.ndarray) -> None:
        from PIL import Image as PILImage
        from textual_image.widget import SixelImage, TGPImage

        picture = PILImage.fromarray(image, "RGB")
        if self.image_widget is None:
            kind = SixelImage if self.graphics == "sixel" else TGPImage
            self.image_widget = kind(picture, classes="snapshot-image")
            self.mount(self.image_widget)
        else:
            self.image_widget.image = picture
            self.image_widget.display = True
        self.cells.display = False
