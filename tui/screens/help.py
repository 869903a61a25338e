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
| `5` `t` | storage |
| `?` `F1` | this help |
| `ctrl+p` | command palette |
| `q` | quit |

**Streams**: arrows move, `enter` opens details (statistics and snapshot; `s` refreshes the snapshot,
`escape` goes back).

**Devices / PTZ**: `j`/`k` move in the tree, `enter` picks the channel; arrows pan and tilt, `space` stops,
`+`/`-` zoom, `n`/`f` focus near/far, `o`/`c` iris open/close, `1`-`9` choose the preset number, `p` set,
`g` call, `x` delete the preset, `<`/`>` speed; `v` starts the channel's live video (UDP) and stops it on a
second press. The request sent and the platform's answer are shown, with the device's address, transport and
last keepalive.

**Recordings**: choose the stream, the start and end (`-90s`, `-5m`, `HH:MM:SS` UTC or RFC 3339) and the
speed; `l` lists the segments (green) and gaps (red), `x` exports the range to an MP4 file.

**Storage**: recorded bytes, segments and recording lag per stream, disk free/total, from `/metrics` every few
seconds; `u` refreshes now. Retention is n/a: the REST API does not expose it.

**Events**: `/` filters by kind, stream or text; `escape` clears the filter.
"""


class HelpScreen(ModalScreen[None]):
    """Keys of every screen; any of escape, q, ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP_TEXT)
