"""A one-line text sparkline for table cells (Textual's `Sparkline` widget cannot live inside a DataTable cell).

Strategy: keep the last `width` values per stream in a bounded deque and map each to one of eight block
characters, scaled to the window's maximum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["BLOCKS", "History", "sparkline"]

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Iterable[float]) -> str:
    """Eight-level blocks for the values, scaled to their maximum (all blank-low for zeros)."""
    data = list(values)
    top = max(data, default=0.0)
    if top <= 0:
        return BLOCKS[0] * len(data)
    last = len(BLOCKS) - 1
    return "".join(BLOCKS[min(last, int(v / top * last + 0.5))] for v in data)


class History:
    """The last `width` values of a series."""

    def __init__(self, width: int = 8) -> None:
        self._values: deque[float] = deque(maxlen=width)

    def push(self, value: float) -> str:
        """Add a value; returns the sparkline of the window."""
        self._values.append(value)
        return sparkline(self._values)
