"""The help screen: every key, by screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

__all__ = ["HELP_TEXT", "HelpScreen"]

HELP_TEXT = """\
# fluxkit console

| key | everywhere |
|---|---|
| `1` `s` | streams |
| `2` `d` | GB28181 devices and PTZ |
| `3` `r` | recordings |
| `4` `e` | events |
| `?` `F1` | this help |
| `ctrl+p` | command palette |
| `q` | quit |

**Streams**: arrows move, `enter` opens details (statistics and snapshot; `s` refreshes the snapshot,
`escape` goes back).

**Devices / PTZ**: `j`/`k` move in the tree, `enter` picks the channel; arrows pan and tilt, `space` stops,
`+`/`-` zoom, `n`/`f` focus near/far, `o`/`c` iris open/close, `1`-`9` choose the preset number, `p` set,
`g` call, `x` delete the preset, `<`/`>` speed. The request sent and the platform's answer are shown.

**Recordings**: choose the stream, the start and end (`-90s`, `-5m`, `HH:MM:SS` UTC or RFC 3339) and the
speed; `l` lists the segments (green) and gaps (red), `x` exports the range to an MP4 file.

**Events**: `/` filters by kind, stream or text; `escape` clears the filter.
"""


class HelpScreen(ModalScreen[None]):
    """Keys of every screen; any of escape, q, ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP_TEXT)
