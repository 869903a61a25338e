"""Turn a JPEG snapshot (or a decoded video frame) into terminal cells (coloured upper half-blocks, two pixels per
cell), or into pixels.

Strategy: PyAV decodes the JPEG and scales it once (swscale, area filter) to at most `columns` x `2 * rows`
pixels keeping the aspect ratio (a terminal cell is about twice as tall as wide, so two stacked pixels are
square); each cell is then `▀` with the top pixel as foreground and the bottom one as background. Styles are
cached by colour pair, so a frame costs one dict lookup per cell. The cells come as a Rich `Text` (snapshots) or
as Textual strips (`halfblock_strips`, for video playback, several pictures a second: far cheaper to draw).
"""

from __future__ import annotations

import io

import av
import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

__all__ = ["decode_fit", "decode_jpeg", "fit_frame", "halfblock_strips", "halfblock_text"]


def decode_fit(jpeg: bytes, width: int, height: int, *, even: bool = False, upscale: bool = True) -> np.ndarray:
    """Decode and scale to fit `width` x `height` pixels keeping the aspect ratio; an (h, w, 3) uint8 array.

    Args:
        even: round the height down to an even number (half-blocks draw two rows per cell).
        upscale: scale a smaller picture up to the box (else only down).
    """
    with av.open(io.BytesIO(jpeg), "r", format="image2pipe") as container:
        frame = next(container.decode(video=0))
    return fit_frame(frame, width, height, even=even, upscale=upscale)


def fit_frame(frame: av.VideoFrame, width: int, height: int, *, even: bool = False, upscale: bool = True) -> np.ndarray:
    """Scale a decoded frame to fit `width` x `height` pixels keeping the aspect ratio; (h, w, 3) uint8 RGB.

    Args:
        even: round the height down to an even number (half-blocks draw two rows per cell).
        upscale: scale a smaller picture up to the box (else only down).
    """
    scale = min(width / frame.width, height / frame.height)
    if not upscale:
        scale = min(1.0, scale)
    out_w = max(1, int(frame.width * scale))
    out_h = max(2, int(frame.height * scale) // 2 * 2) if even else max(1, int(frame.height * scale))
    image: np.ndarray = frame.reformat(width=out_w, height=out_h, format="rgb24").to_ndarray()
    return image


def decode_jpeg(jpeg: bytes, columns: int, rows: int) -> np.ndarray:
    """Decode and scale to fit `columns` x `2*rows` pixels; returns an (h, w, 3) uint8 array (h even)."""
    return decode_fit(jpeg, columns, 2 * rows, even=True)


def halfblock_text(image: np.ndarray) -> Text:
    """Render an (h, w, 3) RGB array as `h // 2` lines of half-blocks."""
    cache: dict[tuple[int, ...], Style] = {}
    text = Text(no_wrap=True, overflow="crop")
    height = image.shape[0] // 2 * 2
    pairs = image[:height].reshape(height // 2, 2, image.shape[1], 3)
    for y, (top, bottom) in enumerate(pairs.tolist()):
        if y:
            text.append("\n")
        segments = []
        for upper, lower in zip(top, bottom, strict=True):
            key = (*upper, *lower)
            style = cache.get(key)
            if style is None:
                style = cache[key] = Style(color=Color.from_rgb(*upper), bgcolor=Color.from_rgb(*lower))
            segments.append(Segment("▀", style))
        for segment in segments:
            text.append(segment.text, segment.style)
    return text


def halfblock_strips(image: np.ndarray) -> list[Strip]:
    """Render an (h, w, 3) RGB array as `h // 2` Textual strips of half-blocks (one segment a cell).

    The same cells as `halfblock_text`, made for a widget's `render_line`: drawing them skips Rich's text layout,
    which costs far more than the cells themselves on a large terminal (video playback draws several a second).
    """
    cache: dict[tuple[int, ...], Style] = {}
    height = image.shape[0] // 2 * 2
    width = image.shape[1]
    pairs = image[:height].reshape(height // 2, 2, width, 3)
    strips = []
    for top, bottom in pairs.tolist():
        segments = []
        for upper, lower in zip(top, bottom, strict=True):
            key = (*upper, *lower)
            style = cache.get(key)
            if style is None:
                style = cache[key] = Style(color=Color.from_rgb(*upper), bgcolor=Color.from_rgb(*lower))
            segments.append(Segment("▀", style))
        strips.append(Strip(segments, width))
    return strips
