"""Playback timestamps when the speed is not 1 (`_Restamper`, see `fluxkit.gb28181._media`).

The simulator, like real devices, sends N times faster at Scale N and leaves its timestamps on the recording's
clock (3600 ticks per frame at 25 fps). The engine stream carries them on the receiving clock: 3600 / N per frame,
continuous and increasing across speed changes and seeks. A device that answers 200 to Scale but keeps sending
at 1x (the simulator's `ignore_scale` quirk, like many Hikvision NVRs) is caught by the measured sending rate:
once measured, its frames are stamped at 1x again (3600 apart), and a warning and a `ScaleMismatchDetected` event
(on the platform's events and the engine's feed) say so, once per session.
"""

from __future__ import annotations

import itertools
import logging
import random

import pytest
import trio

from fluxkit.api._events import event_json
from fluxkit.engine import EngineEvent, RestartPolicy, StreamStopped
from fluxkit.gb28181 import Gb28181Event, Gb28181Source, ScaleMismatchDetected
from fluxkit.gb28181._media import _RATE_MIN_SPAN, _Restamper
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols import MediaFrame

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform
from .test_platform_rest import DEVICE, catalog_of

ONCE = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=1)
START = 1_700_000_000


def frame(dts: int, pts: int | None = None) -> MediaFrame:
    return MediaFrame(
        codec="h264", data=b"\x00\x00\x00\x01\x65", pts=dts if pts is None else pts, dts=dts, keyframe=True
    )


def steps(frames: list[MediaFrame]) -> list[int]:
    return [b.dts - a.dts for a, b in itertools.pairwise(frames)]  # type: ignore[operator]


def test_restamper_divides_by_the_scale_and_stays_continuous() -> None:
    r = _Restamper(4.0)
    out = r.restamp([frame(1000 + 3600 * i, 1000 + 3600 * i + 7200) for i in range(5)])
    assert [f.dts for f in out] == [1000 + 900 * i for i in range(5)]  # the first frame keeps its timestamp
    assert [f.pts - f.dts for f in out] == [1800] * 5  # type: ignore[operator]
    r.set_scale(1.0)  # continues from the last frame
    out = r.restamp([frame(1000 + 3600 * i) for i in range(5, 8)])
    assert [f.dts for f in out] == [8200, 11800, 15400]
    r.rebase = True  # a seek: the device jumps back; the engine stream goes on by one step
    out = r.restamp([frame(50), frame(3650)])
    assert [f.dts for f in out] == [19000, 22600]
    out = r.restamp([frame(3650 + 90000 * 60), frame(3650 + 90000 * 60 + 3600)])  # a jump forwards
    assert [f.dts for f in out] == [26200, 29800]
    out = r.restamp([frame(0)])  # a big step back
    assert [f.dts for f in out] == [33400]
    audio = MediaFrame(codec="pcm_alaw", data=b"\xd5" * 160, pts=None, dts=None, keyframe=True)
    assert r.restamp([audio]) == [audio]  # nothing to map


def feed(r: _Restamper, times: list[float], stamps: list[int]) -> list[MediaFrame]:
    """One frame per received batch: device timestamp `stamps[k]` arriving at receive time `times[k]`."""
    return [f for now, t in zip(times, stamps, strict=True) for f in r.restamp([frame(t)], now)]


def test_restamper_follows_a_device_that_ignores_scale() -> None:
    mismatches: list[tuple[float, float]] = []
    r = _Restamper(4.0, lambda requested, observed: mismatches.append((requested, observed)))
    n = 100  # 4 s of a device that goes on at 1x: 40 ms and 3600 ticks apart
    out = feed(r, [0.04 * i for i in range(n)], [3600 * i for i in range(n)])
    measured = round(_RATE_MIN_SPAN / 0.04)  # the frame whose batch completes the first measuring window
    assert steps(out) == [900] * measured + [3600] * (n - 1 - measured)
    assert mismatches == [(4.0, 1.0)]
    assert r.scale == 1.0
    assert r.requested == 4.0
    r.set_scale(2.0)  # asked again: trusted again until measured, then caught again
    out = feed(r, [4.0 + 0.04 * i for i in range(50)], [3600 * (n + i) for i in range(50)])
    assert steps(out)[:measured] == [1800] * measured
    assert set(steps(out)[measured:]) == {3600}
    assert mismatches == [(4.0, 1.0), (2.0, 1.0)]


def test_restamper_trusts_a_device_that_obeys_even_with_jitter() -> None:
    rng = random.Random(1)
    mismatches: list[tuple[float, float]] = []
    r = _Restamper(4.0, lambda requested, observed: mismatches.append((requested, observed)))
    # 12 s of recording sent at 4x (10 ms apart), each batch received up to 20 ms late.
    times = list(itertools.accumulate((0.01 * i + rng.uniform(0, 0.02) for i in range(300)), max))
    out = feed(r, times, [1000 + 3600 * i for i in range(300)])
    assert set(steps(out)) == {900}
    assert mismatches == []
    # A pause: nothing for 5 s, then the device goes on; the silence is not taken for slow sending.
    out = feed(r, [8.0 + 0.01 * i for i in range(200)], [1000 + 3600 * i for i in range(300, 500)])
    assert set(steps(out)) == {900}
    assert mismatches == []


def test_restamper_uses_an_observed_rate_that_is_no_standard_speed() -> None:
    mismatches: list[tuple[float, float]] = []
    r = _Restamper(1.0, lambda requested, observed: mismatches.append((requested, observed)))
    # A device that sends 3 times faster than asked: 3 is within the tolerance of no standard speed.
    out = feed(r, [i / 75 for i in range(150)], [3600 * i for i in range(150)])
    assert steps(out)[-50:] == [1200] * 50
    assert len(mismatches) == 1
    assert mismatches[0][1] == pytest.approx(3.0)


class Seen:
    """What a playback produced besides its frames: the engine's events and the platform's."""

    def __init__(self) -> None:
        self.engine: list[EngineEvent] = []
        self.platform: list[Gb28181Event] = []


async def playback_frames(
    speed: float,
    *,
    control: bool = False,
    quirks: frozenset[str] = frozenset(),
    seconds: int | None = None,
    speed_changes: dict[int, float] | None = None,
    seen: Seen | None = None,
) -> tuple[list[MediaFrame], Gb28181Source]:
    """Play `seconds` of the simulator's recording back at `speed` into the engine, return the frames.

    `control`: speed 4 at frame 10 and a seek to 0 at frame 40; `speed_changes`: frame number -> speed to set then.
    """
    async with engine_and_platform(media_timeout=3.0) as (engine, platform), trio.open_nursery() as nursery:
        settings = DeviceSettings(
            server_host="127.0.0.1",
            server_port=platform.sip_port,
            server_id=PLATFORM_ID,
            domain=DOMAIN,
            device_id=DEVICE,
            password=PASSWORD,
            quirks=quirks,
        )
        device = await nursery.start(SimulatedDevice(settings, rng=random.Random(4), report=lambda _l: None).run)
        await catalog_of(platform)
        seconds = seconds or (8 if control else 2)
        source = Gb28181Source(platform, DEVICE, device.channel_ids[0], playback=(START, START + seconds), speed=speed)
        events = engine.events()
        platform_events = platform.events()
        engine.add_source("replay", source, restart=ONCE)
        frames: list[MediaFrame] = []
        async with trio.open_nursery() as inner:

            async def take() -> None:
                async with engine.subscribe_stream("replay", queue_size=4096) as subscription:
                    async for f in subscription:
                        frames.append(f)
                        if control and len(frames) == 10:
                            assert await source.set_speed(4.0) == 200
                        if control and len(frames) == 40:
                            assert await source.seek(0.0) == 200
                        if speed_changes and len(frames) in speed_changes:
                            assert await source.set_speed(speed_changes[len(frames)]) == 200

            inner.start_soon(take)
            async for event in events:
                if seen is not None:
                    seen.engine.append(event)
                if isinstance(event, StreamStopped) and event.stream_id == "replay":
                    break
            await trio.sleep(0.05)
            inner.cancel_scope.cancel()
        while seen is not None:
            try:
                seen.platform.append(platform_events.receive_nowait())
            except trio.WouldBlock:
                break
        nursery.cancel_scope.cancel()
    return frames, source


@pytest.mark.trio
async def test_playback_at_4x_is_restamped_to_the_receiving_clock() -> None:
    with trio.fail_after(20):
        frames, source = await playback_frames(4.0)
    assert source.finished
    assert 25 <= len(frames) <= 50  # 2 s of recording at 25 fps, from the first keyframe
    assert set(steps(frames)) == {900}  # 3600 ticks of recording per frame, sent and stamped 4 times faster
    assert frames[-1].dts - frames[0].dts == 900 * (len(frames) - 1)  # type: ignore[operator]


@pytest.mark.trio
async def test_speed_change_and_seek_keep_timestamps_continuous() -> None:
    with trio.fail_after(30):
        frames, source = await playback_frames(1.0, control=True)
    assert source.finished
    deltas = steps(frames)
    assert all(d > 0 for d in deltas)  # the seek back to 0 did not move the engine stream back
    assert deltas[:8] == [3600] * 8  # 1x at first
    # Then 4x (a frame in flight at the change may be stamped either way), also after the seek.
    assert deltas.count(900) >= len(deltas) - 8 - 4


@pytest.mark.trio
async def test_a_device_that_ignores_scale_is_restamped_by_its_real_rate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fluxkit.gb28181")
    seen = Seen()
    with trio.fail_after(30):
        frames, source = await playback_frames(4.0, quirks=frozenset({"ignore_scale"}), seconds=3, seen=seen)
    assert source.finished
    assert source.scale_mismatch == (4.0, 1.0)
    warnings = [r for r in caplog.records if "ignores Scale" in r.getMessage()]
    assert len(warnings) == 1
    # Published once, on the engine's feed (with the playback's stream id) and on the platform's events.
    mismatches = [e for e in seen.engine if isinstance(e, ScaleMismatchDetected)]
    assert len(mismatches) == 1
    event = mismatches[0]
    assert (event.stream_id, event.device_id, event.requested, event.observed) == ("replay", DEVICE, 4.0, 1.0)
    assert [e for e in seen.platform if isinstance(e, ScaleMismatchDetected)] == mismatches
    body = event_json(event, 1_700_000_000.0)  # as the /api/video/events WebSocket sends it
    assert (body["type"], body["stream_id"], body["requested"], body["observed"]) == (
        "ScaleMismatchDetected",
        "replay",
        4.0,
        1.0,
    )
    assert body["channel_id"] == event.channel_id
    # The device answered 200 to Scale 4 and sent at 1x. Frames of the first measuring window are stamped as if
    # it obeyed (900 apart); from then on they follow the receive clock: 3600 ticks per frame, 40 ms at 25 fps.
    deltas = steps(frames)
    head = deltas.index(3600)
    assert set(deltas[:head]) <= {900}
    assert head <= 2 * _RATE_MIN_SPAN * 25  # about one window of frames at 25 fps
    assert set(deltas[head:]) == {3600}
    assert len(deltas[head:]) >= 25  # at least one second of the 3-second recording at the real rate


@pytest.mark.trio
async def test_scale_mismatch_is_published_once_per_session() -> None:
    # The device ignores Scale 4, then Scale 2 asked in the same session: the restamper follows it both times, the
    # event (and the warning) come once.
    seen = Seen()
    with trio.fail_after(30):
        frames, source = await playback_frames(
            4.0, quirks=frozenset({"ignore_scale"}), seconds=4, speed_changes={50: 2.0}, seen=seen
        )
    assert source.finished
    assert source.scale_mismatch == (4.0, 1.0)
    assert [(e.requested, e.observed) for e in seen.engine if isinstance(e, ScaleMismatchDetected)] == [(4.0, 1.0)]
    deltas = steps(frames)
    assert deltas[-10:] == [3600] * 10  # after Scale 2 too, the frames follow the real (1x) rate
