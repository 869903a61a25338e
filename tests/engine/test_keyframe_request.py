"""The keyframe-request hook: `Publisher.set_keyframe_handler` and `VideoEngine.request_keyframe`.

Sources that can ask their sender for a keyframe (WHIP: RTCP PLI) register a handler; the engine calls it when
asked, and by itself when a subscriber joins with no cached GOP to start from.
"""

from __future__ import annotations

import logging

import pytest
import trio

from fluxkit.engine import EngineSettings, SourceReconnecting, SourceSession, StreamNotFoundError, open_engine

from .helpers import H264, video_frames


@pytest.mark.trio
async def test_request_reaches_the_handler_of_the_current_publisher() -> None:
    calls: list[str] = []
    async with open_engine() as engine:
        publisher = engine.publish_stream("cam", [H264])
        assert not engine.request_keyframe("cam")  # no handler: RTSP-like sources keep their own schedule
        publisher.set_keyframe_handler(lambda: calls.append("pli"))
        assert engine.request_keyframe("cam")
        assert engine.request_keyframe("cam")
        assert calls == ["pli", "pli"]  # the source rate-limits, not the engine
        publisher.set_keyframe_handler(None)
        assert not engine.request_keyframe("cam")
        with pytest.raises(StreamNotFoundError):
            engine.request_keyframe("nope")
        publisher.close()
        with pytest.raises(StreamNotFoundError):
            engine.request_keyframe("cam")


@pytest.mark.trio
async def test_subscriber_without_a_gop_to_start_from_asks_for_a_keyframe() -> None:
    calls: list[int] = []
    async with open_engine(EngineSettings(gop_cache_frames=0)) as engine:
        publisher = engine.publish_stream("cam", [H264])
        publisher.set_keyframe_handler(lambda: calls.append(1))
        publisher.send_all(video_frames(5))
        async with engine.subscribe_stream("cam"):
            assert calls == [1]
    calls.clear()
    async with open_engine() as engine:
        publisher = engine.publish_stream("cam", [H264])
        publisher.set_keyframe_handler(lambda: calls.append(1))
        publisher.send_all(video_frames(5))
        async with engine.subscribe_stream("cam") as subscription:
            assert calls == []  # started from the cached GOP: nothing to ask for
            assert (await subscription.receive()).keyframe


@pytest.mark.trio
async def test_a_failing_handler_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    async with open_engine() as engine:
        publisher = engine.publish_stream("cam", [H264])
        publisher.set_keyframe_handler(broken)
        with caplog.at_level(logging.ERROR, logger="fluxkit.engine"):
            assert engine.request_keyframe("cam")
    assert any("keyframe request handler of 'cam' failed" in r.getMessage() for r in caplog.records)


@pytest.mark.trio
async def test_handler_of_an_ended_source_try_is_not_called() -> None:
    calls: list[int] = []
    tried = trio.Event()
    release = trio.Event()

    class Source:
        async def run(self, session: SourceSession) -> None:
            publisher = session.publish([H264])
            publisher.set_keyframe_handler(lambda: calls.append(session.attempt))
            tried.set()
            await release.wait()
            raise OSError("dropped")  # retried: the next try has not registered a handler yet

    async with open_engine() as engine:
        events = engine.events()
        engine.add_source("cam", Source())
        with trio.fail_after(5):
            await tried.wait()
            assert engine.request_keyframe("cam")
            release.set()
            async with events:
                async for event in events:
                    if isinstance(event, SourceReconnecting):
                        break
        assert not engine.request_keyframe("cam")
    assert calls == [0]
