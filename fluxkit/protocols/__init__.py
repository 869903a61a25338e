"""The sans-IO core: pure state machines and codecs (bytes and `now` in, events and bytes out).

Nothing under this package opens sockets or files, reads clocks, draws random numbers, starts threads or imports
trio/asyncio; tests/test_import_hygiene.py enforces it.
"""

from __future__ import annotations

from ._media import MediaFrame as MediaFrame

__all__ = ["MediaFrame"]
