"""Source supervision: restart with backoff and jitter, bounded attempts, permanent errors, isolation, removal.

Fake sources record the engine time of each try; with the autojump clock and an injected `random.Random(0)` the
delays are exact and reproducible, so the test recomputes them with a second `Random(0)`.
"""

from __future__ import annotations

import itertools
import random

import pytest
import trio

from fluxkit.engine import (
    EngineEvent,
    EngineSettings,
    EventListener,
    PermanentSourceError,
    RestartPolicy,
    SourceConnected,
    SourceReconnecting,
    SourceSession,
    StreamFailed,
    StreamPublished,
    StreamStopped,
    TimelineRunStarted,
    open_engine,
)
from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame

from .helpers import H264, video_frames


class FlakySource:
    """Fails every try with a transient error after `connect_for` seconds connected (or before connecting)."""

    def __init__(self, *, connect: bool = False, connect_for: float = 0.0, frames: int = 0) -> None:
        self.tries: list[tuple[int, float]] = []
        self.connect = connect
        self.connect_for = connect_for
        self.frames = frames

    async def run(self, session: SourceSession) -> None:
        self.tries.append((session.attempt, trio.current_time()))
        if self.connect:
            publisher = session.publish([H264])
            for frame in video_frames(self.frames, base=123_456_789 * (session.attempt + 1)):
                publisher.send(frame)
                await trio.sleep(0.04)
            await trio.sleep(self.connect_for)
        raise ConnectionRefusedError(111, "Connection refused")


class SteadySource:
    """Publishes frames at 25 fps forever."""

    def __init__(self) -> None:
        self.sent: list[MediaFrame] = []

    async def run(self, session: SourceSession) -> None:
        publisher = session.publish([H264])
        i = 0
        while True:
            frame = video_frames(1, start=i)[0]
            self.sent.append(frame)
            publisher.send(frame)
            i += 1
            await trio.sleep(0.04)


async def _drain_until_stopped(events: EventListener[EngineEvent], stream_id: str) -> list[EngineEvent]:
    seen: list[EngineEvent] = []
    async for event in events:
        if event.stream_id == stream_id:
            seen.append(event)
            if isinstance(event, StreamStopped):
                break
    return seen


@pytest.mark.trio
async def test_backoff_is_exponential_with_jitter_and_bounded(autojump_clock: trio.abc.Clock) -> None:
    policy = RestartPolicy(initial_delay=1.0, multiplier=2.0, max_delay=8.0, jitter=0.5, max_attempts=5)
    source = FlakySource()
    with trio.fail_after(600):
        async with open_engine(EngineSettings(restart=policy), rng=random.Random(0)) as engine, engine.events() as ev:
            engine.add_source("cam1", source)
            assert engine.list_streams()[0].state == "waiting"
            seen = await _drain_until_stopped(ev, "cam1")

    expected_rng = random.Random(0)
    expected = [policy.delay(n, expected_rng) for n in range(1, 6)]
    reconnecting = [e for e in seen if isinstance(e, SourceReconnecting)]
    assert [e.attempt for e in reconnecting] == [1, 2, 3, 4, 5]
    assert [e.delay for e in reconnecting] == pytest.approx(expected)
    assert all(e.error.startswith("ConnectionRefusedError") for e in reconnecting)
    # Bases 1, 2, 4, 8, 8 (capped), each shortened by up to half.
    for delay, base in zip(expected, [1, 2, 4, 8, 8], strict=True):
        assert base / 2 <= delay <= base
    # The tries really were that far apart.
    starts = [t for _, t in source.tries]
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx(expected)
    assert [a for a, _ in source.tries] == [0, 1, 2, 3, 4, 5]
    failed = [e for e in seen if isinstance(e, StreamFailed)]
    assert len(failed) == 1
    assert (failed[0].permanent, failed[0].attempts) == (False, 5)
    assert isinstance(seen[-1], StreamStopped)
    assert seen[-1].reason == "failed"


@pytest.mark.trio
async def test_permanent_error_stops_at_once(autojump_clock: trio.abc.Clock) -> None:
    calls = []

    class BadCredentials:
        async def run(self, session: SourceSession) -> None:
            calls.append(session.attempt)
            raise PermanentSourceError("401 Unauthorized: wrong user or password")

    with trio.fail_after(60):
        async with open_engine() as engine, engine.events() as events:
            engine.add_source("cam1", BadCredentials())
            seen = await _drain_until_stopped(events, "cam1")
    assert calls == [0]
    assert [type(e) for e in seen] == [StreamFailed, StreamStopped]
    failed = seen[0]
    assert isinstance(failed, StreamFailed)
    assert failed.permanent
    assert failed.error == "PermanentSourceError: 401 Unauthorized: wrong user or password"


@pytest.mark.trio
async def test_permanent_error_inside_an_exception_group(autojump_clock: trio.abc.Clock) -> None:
    class GroupSource:
        async def run(self, session: SourceSession) -> None:
            async def helper() -> None:
                raise PermanentSourceError("404 Not Found")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(helper)
                await trio.sleep_forever()

    with trio.fail_after(60):
        async with open_engine() as engine, engine.events() as events:
            engine.add_source("cam1", GroupSource())
            seen = await _drain_until_stopped(events, "cam1")
    assert isinstance(seen[0], StreamFailed)
    assert seen[0].permanent
    assert seen[0].error == "PermanentSourceError: 404 Not Found"


@pytest.mark.trio
async def test_failing_source_does_not_disturb_other_streams(autojump_clock: trio.abc.Clock) -> None:
    steady = SteadySource()
    policy = RestartPolicy(initial_delay=0.1, max_attempts=3)
    with trio.fail_after(600):
        async with open_engine(EngineSettings(restart=policy)) as engine, engine.events() as events:
            engine.add_source("bad", FlakySource(connect=True, frames=5))
            engine.add_source("good", steady)
            engine.add_source("worse", FlakySource())
            good = engine.subscribe_stream("good", queue_size=1000)
            got: list[MediaFrame] = []
            with trio.move_on_after(30):
                async for frame in good:
                    got.append(frame)
            stopped = []
            while True:
                try:
                    event = events.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(event, StreamStopped):
                    stopped.append(event.stream_id)
            assert sorted(stopped) == ["bad", "worse"]
            assert [s.stream_id for s in engine.list_streams()] == ["good"]
    assert len(got) > 700
    assert got == steady.sent[: len(got)]
    assert good.statistics().skipped_frames == 0


@pytest.mark.trio
async def test_reconnect_keeps_subscribers_and_starts_a_new_run(autojump_clock: trio.abc.Clock) -> None:
    source = FlakySource(connect=True, frames=30)
    policy = RestartPolicy(initial_delay=1.0, max_attempts=1)
    with trio.fail_after(600):
        async with open_engine(EngineSettings(restart=policy)) as engine, engine.events() as events:
            engine.add_source("cam1", source)
            sub = engine.subscribe_stream("cam1", queue_size=1000)
            got = [frame async for frame in sub]
            seen = await _drain_until_stopped(events, "cam1")
    assert len(got) == 60  # both tries, through one subscription
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "SourceConnected",
        "StreamPublished",
        "SourceReconnecting",
        "SourceConnected",
        "StreamPublished",
        "TimelineRunStarted",
        "StreamFailed",
        "StreamStopped",
    ]
    connected = [e for e in seen if isinstance(e, SourceConnected)]
    assert [e.attempt for e in connected] == [0, 1]
    run = next(e for e in seen if isinstance(e, TimelineRunStarted))
    assert (run.run_id, run.reason, run.codec) == (1, "reset", "h264")
    published = [e for e in seen if isinstance(e, StreamPublished)]
    assert all(e.tracks == (H264,) for e in published)


@pytest.mark.trio
async def test_long_connection_resets_the_attempt_count(autojump_clock: trio.abc.Clock) -> None:
    source = FlakySource(connect=True, connect_for=60.0)
    policy = RestartPolicy(initial_delay=1.0, max_attempts=2, reset_after=30.0)
    with trio.fail_after(600):
        async with open_engine(EngineSettings(restart=policy)) as engine, engine.events() as events:
            engine.add_source("cam1", source)
            attempts = []
            async for event in events:
                if isinstance(event, SourceReconnecting):
                    attempts.append(event.attempt)
                    if len(attempts) == 4:
                        break
            engine.remove_source("cam1")
    assert attempts == [1, 1, 1, 1]


@pytest.mark.trio
async def test_remove_source_cancels_it(autojump_clock: trio.abc.Clock) -> None:
    cleaned = trio.Event()

    class Forever:
        async def run(self, session: SourceSession) -> None:
            session.publish([H264])
            try:
                await trio.sleep_forever()
            finally:
                cleaned.set()

    with trio.fail_after(60):
        async with open_engine() as engine, engine.events() as events:
            engine.add_source("cam1", Forever())
            sub = engine.subscribe_stream("cam1")
            await trio.testing.wait_all_tasks_blocked()
            assert engine.list_streams()[0].state == "live"
            engine.publish_stream("direct", [H264])
            with pytest.raises(LocalProtocolError, match="no supervised source"):
                engine.remove_source("direct")
            engine.stop_stream("direct")
            engine.remove_source("cam1")
            await cleaned.wait()
            assert [f async for f in sub] == []
            assert engine.list_streams() == []
            seen = await _drain_until_stopped(events, "cam1")
    assert isinstance(seen[-1], StreamStopped)
    assert seen[-1].reason == "source removed"


@pytest.mark.trio
async def test_source_that_finishes_stops_its_stream(autojump_clock: trio.abc.Clock) -> None:
    frames = video_frames(20)

    class FilePlayer:
        async def run(self, session: SourceSession) -> None:
            publisher = session.publish([H264])
            for frame in frames:
                publisher.send(frame)
                await trio.sleep(0.04)

    with trio.fail_after(60):
        async with open_engine() as engine, engine.events() as events:
            engine.add_source("file", FilePlayer())
            sub = engine.subscribe_stream("file")
            assert [f async for f in sub] == frames
            seen = await _drain_until_stopped(events, "file")
    assert isinstance(seen[-1], StreamStopped)
    assert seen[-1].reason == "source finished"


@pytest.mark.trio
async def test_stale_publisher_of_an_ended_try_is_closed(autojump_clock: trio.abc.Clock) -> None:
    kept = []
    second_try = trio.Event()

    class Leaky:
        async def run(self, session: SourceSession) -> None:
            kept.append(session.publish([H264]))
            if session.attempt == 1:
                second_try.set()
            if session.attempt == 0:
                raise OSError("network unreachable")
            await trio.sleep_forever()

    with trio.fail_after(60):
        async with open_engine(EngineSettings(restart=RestartPolicy(initial_delay=0.5))) as engine:
            engine.add_source("cam1", Leaky())
            await second_try.wait()
            with pytest.raises(trio.ClosedResourceError):
                kept[0].send(video_frames(1)[0])
            kept[1].send(video_frames(1)[0])
            assert engine.stream_statistics("cam1").restarts == 1
