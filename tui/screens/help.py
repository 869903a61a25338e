"""The help screen: every key, by screen, generated from the bindings themselves.

Strategy: the app hands the screen a list of `KeySection`s (its own bindings, then each screen class's
`BINDINGS` with the screen's `HELP` note), and `help_markdown` turns them into one Markdown table per section,
keys shown as the footer shows them (`App.get_key_display`) and grouped by description, so the help can never
list a key that is not bound, nor miss one that is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import attrs
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

__all__ = ["HelpScreen", "KeySection", "help_markdown", "key_rows"]


@attrs.frozen(kw_only=True, slots=True)
class KeySection:
    """The keys of one screen (or of the whole app): a title, the bindings, and a line of prose."""

    title: str
    bindings: tuple[BindingType, ...]
    note: str = ""


def key_rows(app: App[Any], bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """`(keys, description)` rows: the keys of one description joined, in binding order."""
    rows: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(bindings):
        description = binding.description or binding.action
        keys = rows.setdefault(description, [])
        display = app.get_key_display(binding)
        if display not in keys:
            keys.append(display)
    return [(" ".join(f"`{k}`" for k in keys), description) for description, keys in rows.items()]


def help_markdown(app: App[Any], sections: Sequence[KeySection], *, intro: str = "") -> str:
    """The help page: a title, `intro`, then one key table per section."""
    out = ["# fluxkit console", ""]
    if intro:
        out += [intro, ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        if section.note:
            out += [section.note, ""]
        out += ["| key | action |", "|---|---|"]
        out += [f"| {keys} | {description} |" for keys, description in key_rows(app, section.bindings)]
        out.append("")
    return "\n".join(out)


class HelpScreen(ModalScreen[None]):
    """Keys of every screen (`markdown`, see `help_markdown`); any of escape, q, ?, F1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(self.markdown)
        yield Footer()  # its Close key is the mouse's way out
