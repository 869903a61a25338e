"""Snapshots drawn with a terminal image protocol (kitty graphics, sixel) or with half-blocks.

The detection runs in a child process on a pseudo-terminal whose far end this test plays: it answers the
queries as a sixel terminal, a kitty terminal, or one that does not answer. The drawing is checked inside the
console: the widget used, and the escape sequences written (kitty: to stdout beside Textual; sixel: in the lines
Textual composes).
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from fluxkit_tui.app import FluxkitConsole, make_app
from fluxkit_tui.graphics import ENV_GRAPHICS, detect_graphics
from fluxkit_tui.screens.details import DetailsScreen
from fluxkit_tui.widgets.snapshot_view import SnapshotView

from tests.tui.fakes import FakeBackend

textual_image = pytest.importorskip("textual_image", reason="textual-image is not installed")

ROOT = Path(__file__).resolve().parents[2]


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_detect_forced_env_and_not_a_terminal() -> None:
    assert detect_graphics("kitty", environ={}) == "kitty"
    assert detect_graphics("sixel", environ={}) == "sixel"
    assert detect_graphics("halfblock", environ={ENV_GRAPHICS: "kitty"}) == "halfblock"
    assert detect_graphics(None, environ={ENV_GRAPHICS: "Sixel"}) == "sixel"
    # auto: a pipe, or Textual's web driver (textual-serve), never gets escape sequences
    assert detect_graphics(None, environ={}, stdout=_Pipe()) == "halfblock"
    web = {"TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver"}
    assert detect_graphics("auto", environ=web, stdout=_Tty()) == "halfblock"
    with pytest.raises(ValueError, match="unknown graphics"):
        detect_graphics("iterm", environ={})


def _detect_on_a_pty(answers: dict[str, str]) -> str:
    """Run `detect_graphics()` in a child on a pty; answer each query (a regex) with its reply; its result."""
    master, slave = pty.openpty()
    # 40 rows x 100 columns of 10x20-pixel cells: textual-image reads the cell size with TIOCGWINSZ, no query.
    termios_winsize = struct.pack("HHHH", 40, 100, 1000, 800)
    import fcntl

    fcntl.ioctl(slave, termios.TIOCSWINSZ, termios_winsize)
    code = "from fluxkit_tui.graphics import detect_graphics; print('RESULT=' + detect_graphics(environ={}))"
    env = {k: v for k, v in os.environ.items() if k not in (ENV_GRAPHICS, "TEXTUAL_DRIVER")}
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True
    )
    os.close(slave)
    seen = ""
    answered: set[str] = set()
    deadline = time.monotonic() + 30
    try:
        while "RESULT=" not in seen or not seen.rstrip().endswith(("kitty", "sixel", "halfblock")):
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer from the child: {seen!r}")
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if child.poll() is not None:
                    break
                continue
            try:
                seen += os.read(master, 4096).decode(errors="replace")
            except OSError:
                break
            for query, reply in answers.items():
                match = re.search(query, seen)
                if match and query not in answered:
                    answered.add(query)
                    os.write(master, reply.format(*match.groups()).encode())
    finally:
        child.wait(30)
        os.close(master)
    result = re.search(r"RESULT=(\w+)", seen)
    assert result is not None, seen
    return result[1]


def test_detect_sixel_terminal() -> None:
    # DA1 (ESC [ c) answered with attribute 4: sixel graphics (xterm -ti vt340, foot, mlterm, iTerm2, WezTerm)
    assert _detect_on_a_pty({r"\x1b\[c": "\x1b[?62;4;22c"}) == "sixel"


def test_detect_kitty_terminal() -> None:
    # no sixel in DA1; the graphics protocol query (a=q) answered OK, as kitty does
    answers = {r"\x1b\[c": "\x1b[?62;22c", r"\x1b_Gi=(\d+),[^;]*a=q[^;]*;AAAA\x1b\\": "\x1b_Gi={0};OK\x1b\\"}
    assert _detect_on_a_pty(answers) == "kitty"


def test_detect_plain_terminal() -> None:
    assert _detect_on_a_pty({r"\x1b\[c": "\x1b[?62;22c"}) == "halfblock"


def console(tmp_path: Path, graphics: Any) -> FluxkitConsole:
    return make_app(FakeBackend(), poll_interval=3600, export_dir=tmp_path, device_refresh=0, graphics=graphics)


async def _details(app: FluxkitConsole, pilot: Any) -> SnapshotView:
    while app.polls < 1:
        await pilot.pause(0.01)
    await pilot.press("enter")
    screen = app.screen
    assert isinstance(screen, DetailsScreen)
    view = screen.query_one(SnapshotView)
    while view.pixels is None:
        await pilot.pause(0.01)
    await pilot.pause(0.05)
    return view


@pytest.mark.asyncio
async def test_halfblocks_where_no_protocol(tmp_path: Path) -> None:
    app = console(tmp_path, "halfblock")
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _details(app, pilot)
        assert view.image_widget is None
        assert not view.query(".snapshot-image")
        cells = str(view.cells.render())
        assert "▀" in cells
        assert "\x1b" not in cells


@pytest.mark.asyncio
async def test_kitty_graphics_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textual_image.widget import TGPImage

    terminal = io.StringIO()  # textual-image writes the image beside Textual, on stdout
    monkeypatch.setattr(sys, "__stdout__", terminal)
    app = console(tmp_path, "kitty")
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _details(app, pilot)
        assert isinstance(view.image_widget, TGPImage)
        assert view.image_widget.display
        assert not view.cells.display
        while "a=p" not in terminal.getvalue():
            await pilot.pause(0.01)
        lines = [strip.text for strip in view.image_widget.render_lines(view.image_widget.region.reset_offset)]
    out = terminal.getvalue()
    # the PNG goes in base64 chunks (f=100), then one virtual placement (a=p,U=1) the placeholders refer to
    transmit = re.findall(r"\x1b_Gi=(\d+),m=[01],f=100,q=2;([A-Za-z0-9+/=]+)\x1b\\", out)
    assert transmit
    image_id = int(transmit[0][0])
    assert re.search(rf"\x1b_Ga=p,i={image_id},c=\d+,r=\d+,U=1,q=2\x1b\\", out)
    assert any("\U0010eeee" in line for line in lines)  # Unicode placeholders in the cells
    assert view.pixels == (64, 36)


@pytest.mark.asyncio
async def test_sixel_protocol(tmp_path: Path) -> None:
    from textual_image.widget import SixelImage

    app = console(tmp_path, "sixel")
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _details(app, pilot)
        assert isinstance(view.image_widget, SixelImage)
        assert not view.cells.display
        inner = view.image_widget.children[0]
        strips = inner.render_lines(inner.region.reset_offset)
    data = "".join(segment.text for strip in strips for segment in strip)
    # DCS q ... ST: the sixel image, placed with a cursor move, drawn over the cells it covers
    assert re.search(r"\x1bP[0-9;]*q.*\x1b\\", data, re.DOTALL)
    assert "#0;2;" in data  # a colour register (RGB percentages)
