"""`SnapshotView`: a JPEG (or a decoded frame) drawn with a terminal image protocol or with half-blocks, redrawn to fit
when resized.

Strategy: the view holds a `Static` for the half-blocks and the messages, and, once a picture arrives with a
protocol chosen (`graphics` "kitty" or "sixel", see `fluxkit_tui.graphics`), a textual-image widget beside it that
takes its place. The JPEG is decoded once by PyAV (at most `MAX_PICTURE` pixels a side) and handed over as a PIL
image; textual-image scales it to the cells and pixels the widget has and writes the escape sequences. Playback
hands over pictures already decoded and scaled (`show_image`, an RGB array, and with half-blocks its cells as
strips, made off the event loop), so a video frame costs no JPEG round trip and no Rich text layout: they are drawn
by `HalfBlockPicture`, a widget whose `render_line` returns the strips centred. After a resize the last picture
is rescaled until the next arrives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from ..graphics import Graphics
from ..snapshot import decode_fit, decode_jpeg, fit_frame, halfblock_strips, halfblock_text

if TYPE_CHECKING:
    from textual_image.widget import SixelImage, TGPImage

__all__ = ["MAX_PICTURE", "HalfBlockPicture", "SnapshotView"]

#: Largest side (pixels) of the picture handed to a terminal image protocol; the terminal scales it to the cells.
MAX_PICTURE: Final = 1280


class HalfBlockPicture(Widget):
    """Half-block cells given as strips (`halfblock_strips`), centred in the widget."""

    DEFAULT_CSS = "HalfBlockPicture { width: 1fr; height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.lines: list[Strip] = []
        self._width = 0

    def show(self, lines: list[Strip]) -> None:
        self.lines = lines
        self._width = max((line.cell_length for line in lines), default=0)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        row = y - max(0, (self.size.height - len(self.lines)) // 2)
        if not 0 <= row < len(self.lines):
            return Strip.blank(width, self.rich_style)
        left = max(0, (width - self._width) // 2)
        line = Strip.join([Strip.blank(left, self.rich_style), self.lines[row]]) if left else self.lines[row]
        return line.crop_extend(0, width, self.rich_style)


class SnapshotView(Widget):
    """Shows the latest JPEG given to `show`, or a message.

    Args:
        graphics: "halfblock" (default), or the image protocol to draw with ("kitty", "sixel").
    """

    DEFAULT_CSS = """
    SnapshotView { width: 1fr; height: 1fr; align: center middle; }
    SnapshotView > #snapshot-cells { width: 1fr; height: 1fr; content-align: center middle; }
    SnapshotView > .snapshot-image { width: auto; height: auto; }
    SnapshotView > #snapshot-picture { display: none; }
    """

    def __init__(self, *, graphics: Graphics = "halfblock", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.graphics: Graphics = graphics
        self.jpeg: bytes | None = None
        #: The RGB picture last given to `show_image` (None once a JPEG is shown).
        self.image: np.ndarray | None = None
        #: Pictures drawn so far (JPEGs and frames).
        self.drawn = 0
        #: Size (width, height) in pixels of the picture last drawn.
        self.pixels: tuple[int, int] | None = None
        #: The textual-image widget drawing with a protocol (None with half-blocks, or before the first picture).
        self.image_widget: TGPImage | SixelImage | None = None

    def compose(self) -> ComposeResult:
        yield Static("no snapshot yet", id="snapshot-cells")
        yield HalfBlockPicture(id="snapshot-picture")

    @property
    def cells(self) -> Static:
        return self.query_one("#snapshot-cells", Static)

    @property
    def picture(self) -> HalfBlockPicture:
        return self.query_one("#snapshot-picture", HalfBlockPicture)

    def show(self, jpeg: bytes) -> None:
        self.jpeg = jpeg
        self.image = None
        self.picture.display = False
        self._draw()

    def show_image(self, image: np.ndarray, cells: list[Strip] | None = None) -> None:
        """Draw an (h, w, 3) uint8 RGB picture as it is: with half-blocks it should fit `picture_box()` already.

        Args:
            cells: `halfblock_strips(image)` when the caller made them already (playback makes them off the event
                loop).
        """
        self.jpeg = None
        self.image = image
        self.pixels = (image.shape[1], image.shape[0])
        self.drawn += 1
        if self.graphics == "halfblock":
            self.cells.display = False
            self.picture.display = True
            self.picture.show(cells if cells is not None else halfblock_strips(image))
        else:
            self._show_picture(image)

    def picture_box(self, max_picture: int = MAX_PICTURE) -> tuple[int, int]:
        """The (width, height) in pixels a picture should fit: the cells (two pixels a row) with half-blocks, else
        `max_picture` a side (the protocol widget scales it to its cells)."""
        if self.graphics != "halfblock":
            return max_picture, max_picture
        return max(4, self.size.width or 40), 2 * max(2, self.size.height or 10)

    def show_message(self, message: str) -> None:
        if self.jpeg is None and self.image is None:
            self.cells.update(Text(message, style="dim"))

    def on_resize(self) -> None:
        if self.graphics != "halfblock":
            return  # a protocol widget rescales by itself
        if self.jpeg is not None:
            self._draw()
        elif self.image is not None:
            import av

            width, height = self.picture_box()
            frame = av.VideoFrame.from_ndarray(self.image, format="rgb24")
            self.picture.show(halfblock_strips(fit_frame(frame, width, height, even=True)))

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
        self.drawn += 1
        if self.graphics == "halfblock":
            self.cells.display = True
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
