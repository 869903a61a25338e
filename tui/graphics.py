"""Which way the console draws pictures: a terminal image protocol (kitty graphics, sixel) or coloured half-blocks.

Strategy: textual-image does the detection and the drawing, but it detects by writing queries to the terminal and
reading the answers from stdin, which works only before Textual starts (Textual's input thread would swallow the
answers, and the queries themselves go out at import time). So `detect_graphics` runs once, before `App.run`,
and its answer is passed to the app; nothing imports textual-image afterwards unless a protocol was chosen.
Half-blocks are used without asking when stdout is not a terminal, under a non-terminal Textual driver (the web
driver of textual-serve: its stdout carries Textual's own protocol, where an escape sequence written beside it
would corrupt the stream), or when textual-image is not installed. iTerm2 answers the sixel query (it draws
sixel), so it gets sixel. `FLUXKIT_CONSOLE_GRAPHICS` (or `fluxkit-console --graphics`) forces a choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO, Final, Literal, cast

__all__ = ["ENV_GRAPHICS", "GRAPHICS", "Graphics", "detect_graphics", "have_image_protocols"]

Graphics = Literal["kitty", "sixel", "halfblock"]
#: The choices, `auto` first: detect.
GRAPHICS: Final = ("auto", "kitty", "sixel", "halfblock")
#: The environment variable that forces a choice.
ENV_GRAPHICS: Final = "FLUXKIT_CONSOLE_GRAPHICS"


def have_image_protocols() -> bool:
    """Whether textual-image (the optional drawing library) is installed."""
    import importlib.util

    return importlib.util.find_spec("textual_image") is not None


def detect_graphics(
    requested: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: IO[str] | None = None,
) -> Graphics:
    """The drawing method: `requested`, else `$FLUXKIT_CONSOLE_GRAPHICS`, else what the terminal answers.

    Call it before the Textual app starts: in `auto` on a terminal, it queries the terminal (about 0.2 s when the
    terminal does not answer).

    Args:
        requested: `auto`, `kitty`, `sixel` or `halfblock`; None: from the environment (default `auto`).
        environ: the environment (default `os.environ`).
        stdout: the terminal's output (default `sys.__stdout__`).

    Raises:
        ValueError: an unknown choice.
    """
    env = os.environ if environ is None else environ
    choice = (requested or env.get(ENV_GRAPHICS) or "auto").strip().lower()
    if choice not in GRAPHICS:
        raise ValueError(f"unknown graphics {choice!r}: one of {', '.join(GRAPHICS)}")
    if choice == "halfblock":
        return "halfblock"
    if not have_image_protocols():
        return "halfblock"
    if choice == "auto":
        out = sys.__stdout__ if stdout is None else stdout
        if env.get("TEXTUAL_DRIVER") or out is None or not out.isatty():
            return "halfblock"
        # Importing the package asks the terminal (sixel first, then the kitty graphics protocol).
        from textual_image import renderable

        if renderable.Image is renderable.SixelImage:
            choice = "sixel"
        elif renderable.Image is renderable.TGPImage:
            choice = "kitty"
        else:
            return "halfblock"
    # The widgets measure the terminal's cell size in pixels when first imported: now, while it can answer.
    import textual_image.widget  # noqa: F401

    return cast(Graphics, choice)
