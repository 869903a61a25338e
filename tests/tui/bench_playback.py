"""Playback in the console: pictures drawn per second and how late the event loop answers, by terminal size.

Run: `.venv/bin/python -m tests.tui.bench_playback` (not a test: figures, no assertions). A `FakeBackend` serves a
fragmented H.264 MP4 (640x360, 25 fps) as the playback endpoint would; the console plays it at 1x on the playback
screen with half-blocks. Meanwhile a probe schedules a callback on the loop every 20 ms and measures how late it
runs: that is the delay any key press would see on top of its own handling.
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
from fluxkit_tui.screens.playback import PlaybackScreen

from tests.tui.fakes import FakeBackend, make_fmp4

SECONDS = 4.0


class LongPlayback(FakeBackend):
    async def playback(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        data = make_fmp4(frames=250, fps=25, width=640, height=360)
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]
            await asyncio.sleep(0)


async def run(size: tuple[int, int]) -> None:
    backend = LongPlayback()
    app = make_app(backend, poll_interval=3600, export_dir=Path(tempfile.mkdtemp()), device_refresh=0)
    async with app.run_test(size=size) as pilot:
        while app.polls < 1:
            await pilot.pause(0.01)
        await pilot.press("3")
        await pilot.pause(0.2)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PlaybackScreen)
        while screen.player is None or screen.player.shown == 0:
            await pilot.pause(0.01)
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        drawn0, t0 = screen.view.drawn, time.perf_counter()
        while time.perf_counter() - t0 < SECONDS:
            asked = time.perf_counter()
            done = loop.create_future()
            loop.call_soon(done.set_result, None)
            await done
            lags.append((time.perf_counter() - asked) * 1000)
            await asyncio.sleep(0.02)
        drawn = screen.view.drawn - drawn0
        player = screen.player
        assert player is not None
        await pilot.press("escape")
    lags.sort()
    print(
        f"{size[0]}x{size[1]}: {drawn / SECONDS:.1f} pictures/s drawn ({player.decoded} decoded, {player.dropped} "
        f"dropped); loop lag median {statistics.median(lags):.1f} ms, p95 {lags[int(len(lags) * 0.95) - 1]:.1f} ms, "
        f"max {lags[-1]:.1f} ms"
    )


async def main() -> None:
    for size in ((80, 24), (160, 50), (240, 70)):
        await run(size)


if __name__ == "__main__":
    asyncio.run(main())
