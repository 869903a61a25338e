"""Integrations put their own events on the engine's feed; long values stay out of the log line."""

from __future__ import annotations

import logging

import attrs
import pytest
import trio

from fluxkit.engine import EngineEvent, open_engine


@attrs.frozen(kw_only=True, slots=True)
class _DeviceNote(EngineEvent):
    text: str


@pytest.mark.trio
async def test_published_event_reaches_listeners_and_a_long_value_is_cut_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fluxkit.engine")
    note = _DeviceNote(stream_id="", time=0.0, text="x" * 10_000)
    with trio.fail_after(10):
        async with open_engine() as engine, engine.events() as events:
            engine.publish_event(note)
            async for event in events:
                assert event is note
                break
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("_DeviceNote")]
    assert len(lines) == 1
    assert "(10000 chars)" in lines[0]
    assert "stream_id" not in lines[0]  # a device event is about no stream: no empty field in the line
    assert len(lines[0]) < 400
