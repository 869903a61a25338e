"""UI latency with 500 streams updating: key press to screen update, while the table refreshes every 0.2 s.

Run: `.venv/bin/python -m tests.tui.bench_latency` (not a test: figures, no assertions). Each sample presses
`down` through Pilot and waits until the cursor moved and the app is idle again (Pilot's `press` returns after
the key was handled and the resulting refresh was processed), while a poller replaces all 500 rows' statistics
every 0.2 s. Also reports the cost of one table refresh (`StreamsScreen.apply`).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fluxkit_tui.app import make_app
from fluxkit_tui.screens.streams import StreamsScreen

import tests.tui.conftest  # noqa: F401  (the fluxkit_tui shim)
from tests.tui.fakes import FakeBackend


class Ticking(FakeBackend):
    async def list_streams(self):  # type: ignore[no-untyped-def]
        self.ticks += 1
        return await super().list_streams()


async def main() -> None:
    backend = Ticking(streams=500)
    app = make_app(backend, poll_interval=0.2, export_dir=Path(tempfile.mkdtemp()), device_refresh=0)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.polls < 2:
            await pilot.pause(0.01)
        screen = app.screen
        assert isinstance(screen, StreamsScreen)
        samples = []
        for i in range(60):
            before = screen.table.cursor_row
            t0 = time.perf_counter()
            await pilot.press("down" if i < 40 else "up")
            while screen.table.cursor_row == before:  # noqa: ASYNC110  (a busy wait is the measurement)
                await asyncio.sleep(0)
            samples.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.03)
        polls = app.polls
        rows = await backend.list_streams()
        t0 = time.perf_counter()
        changed = screen.apply(rows)
        apply_ms = (time.perf_counter() - t0) * 1000
    samples.sort()
    print(f"500 streams, table refreshed every 0.2 s ({polls} refreshes during the run)")
    print(
        f"key press -> screen updated: median {statistics.median(samples):.1f} ms, "
        f"p95 {samples[int(len(samples) * 0.95) - 1]:.1f} ms, max {samples[-1]:.1f} ms over {len(samples)} presses"
    )
    print(f"one refresh of 500 rows: {apply_ms:.1f} ms ({changed} cells changed)")


if __name__ == "__main__":
    asyncio.run(main())
