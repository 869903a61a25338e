"""Fan-out: shared frame objects, bounded queues, keyframe skipping, GOP priming, statistics.

Frames are checked with `is`: every subscriber must get the publisher's own object, never a copy. Time-dependent
tests run on the autojump clock, so "slow" subscribers are slow in virtual time and the tests stay fast.
"""

from __future__ import annotations

import itertools

import pytest
import trio

from fluxkit.engine import (
    EngineSettings,
    StreamExistsError,
    StreamNotFoundError,
    StreamPublished,
    StreamStopped,
    SubscriberLagging,
    Subscription,
    Track,
    open_engine,
)
from fluxkit.errors import LocalProtocolError
from fluxkit.protocols import MediaFrame

from .helpers import AAC, H264, audio_frame, video_frames


async def _collect(subscription: Subscription, out: list[MediaFrame], delay: float = 0.0) -> None:
    async for frame in subscription:
        out.append(frame)
        if delay:
            await trio.sleep(delay)


@pytest.mark.trio
async def test_every_subscriber_gets_the_same_object() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            subs = [engine.subscribe_stream("cam1", queue_size=100) for _ in range(5)]
            frames = video_frames(30)
            publisher.send_all(frames)
            publisher.close()
            for sub in subs:
                got = [frame async for frame in sub]
                assert len(got) == len(frames)
                assert all(a is b for a, b in zip(got, frames, strict=True))
                assert all(a.data is b.data for a, b in zip(got, frames, strict=True))
                assert sub.statistics().delivered == 30
                assert sub.statistics().skipped_frames == 0


@pytest.mark.trio
async def test_slow_subscriber_skips_to_keyframe_while_others_get_everything(autojump_clock: trio.abc.Clock) -> None:
    frames = video_frames(200, gop=10)
    with trio.fail_after(600):
        async with open_engine() as engine, engine.events() as events:
            publisher = engine.publish_stream("cam1", [H264])
            fast = engine.subscribe_stream("cam1", queue_size=8, name="fast")
            slow = engine.subscribe_stream("cam1", queue_size=8, name="slow")
            got_fast: list[MediaFrame] = []
            got_slow: list[MediaFrame] = []
            source_times: list[float] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, fast, got_fast)
                nursery.start_soon(_collect, slow, got_slow, 0.2)  # 5 fps consumer of a 25 fps stream

                for frame in frames:
                    publisher.send(frame)
                    source_times.append(trio.current_time())
                    await trio.sleep(0.04)
                publisher.close()
            lag_events = []
            while True:
                event = events.receive_nowait()
                if isinstance(event, SubscriberLagging):
                    lag_events.append(event)
                if isinstance(event, StreamStopped):
                    break

    # The source never waited: exactly one frame interval between sends.
    assert all(b - a == pytest.approx(0.04) for a, b in itertools.pairwise(source_times))
    assert len(got_fast) == 200
    assert all(a is b for a, b in zip(got_fast, frames, strict=True))
    assert fast.statistics().skip_events == 0

    stats = slow.statistics()
    assert stats.skip_events > 0
    assert stats.delivered == len(got_slow)
    assert stats.delivered + stats.skipped_frames == 200
    # Each delivered frame is one of the originals, in order; after every gap comes a keyframe.
    positions = [frames.index(f) for f in got_slow]
    assert positions == sorted(positions)
    assert all(got_slow[i] is frames[p] for i, p in enumerate(positions))
    for before, after in itertools.pairwise(positions):
        if after != before + 1:
            assert frames[after].keyframe
    assert [e.subscriber for e in lag_events] == ["slow"] * stats.skip_events
    assert lag_events[-1].skip_events == stats.skip_events
    assert all(e.dropped == 8 for e in lag_events)


@pytest.mark.trio
async def test_overflow_on_a_keyframe_resumes_at_that_keyframe() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            sub = engine.subscribe_stream("cam1", queue_size=5)
            frames = video_frames(9, gop=5)  # keyframes at 0 and 5
            publisher.send_all(frames[:5])  # queue full
            publisher.send(frames[5])  # a keyframe: the queue is dropped, the keyframe queued
            assert sub.statistics().skipped_frames == 5
            publisher.send_all(frames[6:])
            publisher.close()
            got = [f async for f in sub]
    assert got == frames[5:]
    assert sub.statistics().skip_events == 1


@pytest.mark.trio
async def test_new_subscriber_starts_with_the_cached_gop() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            frames = video_frames(25, gop=10)
            publisher.send_all(frames[:14])
            late = engine.subscribe_stream("cam1")
            publisher.send_all(frames[14:])
            publisher.close()
            got = [f async for f in late]
    assert got[0] is frames[10]
    assert got == frames[10:]
    assert late.statistics().skipped_frames == 0


@pytest.mark.trio
async def test_without_gop_cache_a_new_subscriber_waits_for_a_keyframe() -> None:
    with trio.fail_after(5):
        async with open_engine(EngineSettings(gop_cache_frames=0)) as engine:
            publisher = engine.publish_stream("cam1", [H264])
            frames = video_frames(25, gop=10)
            publisher.send_all(frames[:14])
            late = engine.subscribe_stream("cam1")
            publisher.send_all(frames[14:])
            publisher.close()
            got = [f async for f in late]
    assert got == frames[20:]
    assert late.statistics().skipped_frames == 0  # joining is not lagging


@pytest.mark.trio
async def test_stream_waits_for_its_first_keyframe() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            sub = engine.subscribe_stream("cam1")
            frames = video_frames(15, gop=10, start=3)  # starts mid-GOP: keyframe at index 7
            publisher.send_all(frames)
            publisher.close()
            got = [f async for f in sub]
    assert got == frames[7:]
    assert got[0].keyframe


@pytest.mark.trio
async def test_audio_and_video_stream_skips_to_a_video_keyframe() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264, AAC])
            sub = engine.subscribe_stream("cam1", queue_size=12)
            video = video_frames(15, gop=5)
            sent = []
            for i, frame in enumerate(video):
                sent += [frame, audio_frame(i)]
            publisher.send_all(sent)  # overflows; audio "keyframes" must not end the skip
            publisher.close()
            got = [f async for f in sub]
    assert got[0] is video[10]  # overflow at video[6]: skipped past audio and video[7..9]
    assert got == sent[20:]
    assert sub.statistics().skipped_frames == 20


@pytest.mark.trio
async def test_audio_only_stream_resumes_at_once() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("mic", [AAC])
            sub = engine.subscribe_stream("mic", queue_size=3)
            frames = [audio_frame(i) for i in range(7)]
            publisher.send_all(frames)
            publisher.close()
            got = [f async for f in sub]
    assert got == frames[6:]  # overflow at frame 3 and 6, each resuming with the frame that overflowed
    assert sub.statistics().skip_events == 2


@pytest.mark.trio
async def test_registry_and_errors() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            publisher = engine.publish_stream("a", [H264])
            engine.publish_stream("b", [H264, AAC])
            with pytest.raises(StreamExistsError):
                engine.publish_stream("a", [H264])
            with pytest.raises(StreamNotFoundError):
                engine.subscribe_stream("nope")
            with pytest.raises(LocalProtocolError):
                engine.publish_stream("c", [])
            with pytest.raises(LocalProtocolError):
                engine.publish_stream("c", [H264, Track(codec="h264")])
            assert [s.stream_id for s in engine.list_streams()] == ["a", "b"]  # "c" was not left behind
            with pytest.raises(LocalProtocolError, match="no aac track"):
                publisher.send(audio_frame(0))
            sub = engine.subscribe_stream("a")
            info = engine.list_streams()[0]
            assert (info.state, info.subscribers, info.supervised, info.tracks) == ("live", 1, False, (H264,))
            await sub.aclose()
            assert engine.list_streams()[0].subscribers == 0
            with pytest.raises(trio.ClosedResourceError):
                await sub.receive()
            engine.stop_stream("a")
            with pytest.raises(trio.ClosedResourceError):
                publisher.send(video_frames(1)[0])
            assert publisher.closed
            assert [s.stream_id for s in engine.list_streams()] == ["b"]
            with pytest.raises(StreamNotFoundError):
                engine.stop_stream("a")


@pytest.mark.trio
async def test_stop_wakes_a_waiting_subscriber_and_ends_iteration() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine:
            engine.publish_stream("cam1", [H264])
            sub = engine.subscribe_stream("cam1")
            done = trio.Event()

            async def consume() -> None:
                assert [f async for f in sub] == []
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await trio.testing.wait_all_tasks_blocked()
                engine.stop_stream("cam1")
            assert done.is_set()
            with pytest.raises(trio.EndOfChannel):
                sub.receive_nowait()


@pytest.mark.trio
async def test_update_tracks_announces_again() -> None:
    with trio.fail_after(5):
        async with open_engine() as engine, engine.events() as events:
            publisher = engine.publish_stream("cam1", [H264])
            new = Track(codec="h264", width=1920, height=1080)
            publisher.update_tracks([new])
            assert publisher.tracks == (new,)
            first, second = events.receive_nowait(), events.receive_nowait()
    assert isinstance(first, StreamPublished)
    assert isinstance(second, StreamPublished)
    assert second.tracks == (new,)


@pytest.mark.trio
async def test_stream_statistics(autojump_clock: trio.abc.Clock) -> None:
    with trio.fail_after(60):
        async with open_engine() as engine:
            publisher = engine.publish_stream("cam1", [H264])
            sub = engine.subscribe_stream("cam1", queue_size=1000)
            for frame in video_frames(100, gop=25, size=500):
                publisher.send(frame)
                await trio.sleep(0.04)
            publisher.report_losses(3)
            publisher.report_losses(2)
            publisher.report_jitter(0.012)
            await trio.sleep(0.2)
            stats = engine.stream_statistics("cam1")
            assert stats == publisher.statistics()
            assert sub.statistics().delivered == 0
    assert stats.frames == 100
    assert stats.keyframes == 4
    assert stats.bytes == 50_000
    assert stats.gop == 25
    assert stats.fps == pytest.approx(25, rel=0.15)
    assert stats.bitrate == pytest.approx(25 * 500 * 8, rel=0.15)
    assert stats.last_keyframe_age == pytest.approx(0.2 + 0.04 * 25)
    assert (stats.losses, stats.jitter) == (5, 0.012)
    assert (stats.subscribers, stats.run_id, stats.state) == (1, 0, "live")


def test_rates_of_a_connect_burst_stay_sane() -> None:
    # A camera that just connected may hand over its buffered GOP at once: 25 frames within a millisecond must
    # not read as 25,000 fps.
    from fluxkit.engine._stats import _StatsAccumulator

    stats = _StatsAccumulator()
    for i in range(25):
        stats.record(100.0 + i * 0.00004, 4000, True, i == 0)
    snap = stats.snapshot(now=100.001, stream_id="s", state="live", run_id=0, subscribers=0)
    assert snap.fps == 25.0
    assert snap.bitrate == 25 * 4000 * 8
