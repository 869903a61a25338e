"""The event bus and clean shutdown.

Shutdown is checked structurally: the set of tasks reachable from Trio's root task (through every task's
`child_nurseries`) is recorded before `open_engine` and compared after it closes, so a task left behind anywhere in
the tree fails the test.
"""

from __future__ import annotations

import pytest
import trio

from fluxkit.engine import (
    EngineSettings,
    SourceSession,
    StreamPublished,
    StreamStopped,
    SubscriberLagging,
    Subscription,
    open_engine,
)

from .helpers import H264, all_tasks, video_frames


@pytest.mark.trio
async def test_several_listeners_each_see_every_event() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            first = engine.events()
            second = engine.events()
            publisher = engine.publish_stream("cam1", [H264])
            publisher.close()
            for listener in (first, second):
                a, b = listener.receive_nowait(), listener.receive_nowait()
                assert isinstance(a, StreamPublished)
                assert isinstance(b, StreamStopped)
                assert (a.stream_id, b.stream_id, b.reason) == ("cam1", "cam1", "publisher closed")
                with pytest.raises(trio.WouldBlock):
                    listener.receive_nowait()
            await second.aclose()
            with pytest.raises(trio.ClosedResourceError):
                second.receive_nowait()
            engine.publish_stream("cam2", [H264])
            assert first.receive_nowait().stream_id == "cam2"
            assert second.statistics().pending == 0


@pytest.mark.trio
async def test_listener_buffer_drops_oldest_and_counts() -> None:
    with trio.fail_after(5):
        async with open_engine(EngineSettings(event_buffer=3)) as engine:
            events = engine.events()
            for i in range(5):
                engine.publish_stream(f"s{i}", [H264])
            stats = events.statistics()
            assert (stats.dropped, stats.pending, stats.buffer_size) == (2, 3, 3)
            assert [events.receive_nowait().stream_id for _ in range(3)] == ["s2", "s3", "s4"]
            assert events.statistics().delivered == 3


@pytest.mark.trio
async def test_listeners_end_when_the_engine_closes() -> None:
    with trio.fail_after(5):
        got = []
        async with trio.open_nursery() as nursery, open_engine() as engine:
            listener = engine.events()

            async def listen() -> None:
                got.extend([event async for event in listener])

            nursery.start_soon(listen)
            engine.publish_stream("cam1", [H264])
            await trio.testing.wait_all_tasks_blocked()
        assert [type(e) for e in got] == [StreamPublished, StreamStopped]
        assert isinstance(got[-1], StreamStopped)
        assert got[-1].reason == "engine closed"
        late = engine.events()
        with pytest.raises(trio.EndOfChannel):
            late.receive_nowait()


@pytest.mark.trio
async def test_lagging_event_is_emitted_once_per_overflow() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine, engine.events() as events:
            publisher = engine.publish_stream("cam1", [H264])
            engine.subscribe_stream("cam1", queue_size=4, name="viewer")
            publisher.send_all(video_frames(30, gop=10))
            lagging = []
            while True:
                try:
                    event = events.receive_nowait()
                except trio.WouldBlock:
                    break
                if isinstance(event, SubscriberLagging):
                    lagging.append(event)
    # Overflow at frame 4 (skip to 10), at 14 (skip to 20), at 24 (no keyframe follows).
    assert [(e.subscriber, e.dropped, e.skip_events) for e in lagging] == [
        ("viewer", 4, 1),
        ("viewer", 4, 2),
        ("viewer", 4, 3),
    ]
    assert [e.skipped_frames for e in lagging] == [5, 15, 25]


class Busy:
    """A source with helper tasks of its own, all blocked forever."""

    async def run(self, session: SourceSession) -> None:
        publisher = session.publish([H264])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)
            for frame in video_frames(10):
                publisher.send(frame)
            await trio.sleep_forever()


async def _consume(subscription: Subscription) -> None:
    async for _ in subscription:
        pass


class Retrying:
    async def run(self, session: SourceSession) -> None:
        raise ConnectionResetError("camera went away")


@pytest.mark.trio
async def test_leaving_the_block_leaves_no_task_behind(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        before = all_tasks()
        async with trio.open_nursery() as consumers, open_engine() as engine:
            for i in range(3):
                engine.add_source(f"busy{i}", Busy())
            engine.add_source("retrying", Retrying())
            publisher = engine.publish_stream("direct", [H264])
            subs = [engine.subscribe_stream(f"busy{i}") for i in range(3)]
            for sub in subs:
                consumers.start_soon(_consume, sub)
            events = engine.events()
            await trio.sleep(5)
            assert len(all_tasks()) == len(before) + 4 + 6 + 3  # supervisors, helpers, consumers
            assert engine.stream_statistics("retrying").state == "reconnecting"
            # Every stream was stopped and told so; consumers were woken by end-of-stream.
        assert all_tasks() == before
        assert publisher.closed
        reasons = {}
        async for event in events:
            if isinstance(event, StreamStopped):
                reasons[event.stream_id] = event.reason
        assert reasons == dict.fromkeys(["busy0", "busy1", "busy2", "retrying", "direct"], "engine closed")


@pytest.mark.trio
async def test_cancellation_from_outside_shuts_down_cleanly(autojump_clock: trio.abc.Clock) -> None:
    # What Ctrl-C does: the scope around the engine is cancelled while its tasks are busy.
    with trio.fail_after(60):
        before = all_tasks()
        with trio.move_on_after(3) as scope:
            async with open_engine() as engine:
                engine.add_source("busy", Busy())
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert all_tasks() == before
        assert engine.list_streams() == []


@pytest.mark.trio
async def test_an_error_in_the_block_propagates_and_still_cleans_up(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        before = all_tasks()
        with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="app bug"), allow_unwrapped=True):
            async with open_engine() as engine:
                engine.add_source("busy", Busy())
                await trio.sleep(1)
                raise RuntimeError("app bug")
        assert all_tasks() == before


@pytest.mark.trio
async def test_a_crashing_subscriber_affects_nobody_else(autojump_clock: trio.abc.Clock) -> None:
    frames = video_frames(50)
    with trio.fail_after(60):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            healthy = engine.subscribe_stream("cam1", queue_size=100)

            async def crashing() -> None:
                async with engine.subscribe_stream("cam1", name="crasher") as sub:
                    async for frame in sub:
                        if frame is frames[10]:
                            raise ZeroDivisionError("viewer bug")

            async def viewer_app() -> None:
                # The viewer's own nursery fails; the engine and the source are not in it.
                with pytest.RaisesGroup(ZeroDivisionError):
                    async with trio.open_nursery() as viewer_nursery:
                        viewer_nursery.start_soon(crashing)
                crashed.set()

            crashed = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(viewer_app)
                await trio.testing.wait_all_tasks_blocked()
                for frame in frames:
                    publisher.send(frame)
                    await trio.sleep(0.04)
            assert crashed.is_set()
            assert engine.list_streams()[0].subscribers == 1  # the crashed one left with its `async with`
            publisher.close()
            assert [f async for f in healthy] == frames
