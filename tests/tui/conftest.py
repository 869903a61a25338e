"""Fixtures of the console tests: a deterministic fake backend and a real fluxkit running in a thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest


class RealFluxkit:
    """`run_fluxkit(config, demo=True)` under `trio.run` in a thread; `.running` once it serves."""

    def __init__(self, data_dir: Path) -> None:
        import attrs
        from fluxkit_tui.embedded import embedded_config

        from fluxkit.config import KeyframeSettings, RecordingSettings

        config = embedded_config(data_dir=data_dir)
        video = attrs.evolve(
            config.video,
            recording=RecordingSettings(segment_duration=1.0, part_duration=0.5),
            keyframe=KeyframeSettings(interval_seconds=1.0),
        )
        self.config = attrs.evolve(config, video=video)
        self.ready = threading.Event()
        self.running = None
        self.error: BaseException | None = None
        self._token = None
        self._scope = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        import trio

        from fluxkit.app import run_fluxkit

        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    self.running = await nursery.start(partial(run_fluxkit, self.config, demo=True))
                    self.ready.set()

        try:
            trio.run(main)
        except BaseException as exc:  # reported by the fixture
            self.error = exc
        finally:
            self.ready.set()

    def start(self) -> None:
        self._thread.start()
        self.ready.wait(60)
        if self.running is None:
            raise RuntimeError(f"fluxkit did not start: {self.error!r}")

    def stop(self) -> None:
        if self._token is not None and self._scope is not None and self._thread.is_alive():
            self._token.run_sync_soon(self._scope.cancel)
        self._thread.join(30)


@pytest.fixture(scope="module")
def real_fluxkit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFluxkit]:
    fluxkit = RealFluxkit(tmp_path_factory.mktemp("fluxkit-data"))
    fluxkit.start()
    try:
        yield fluxkit
    finally:
        fluxkit.stop()
    assert fluxkit.error is None, fluxkit.error
