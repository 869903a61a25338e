"""GB28181 download (`s=Download`, `a=downloadspeed`) from fluxkit's device simulator, end to end.

The simulator sends the recording `downloadspeed` times faster; the platform keeps the device's own timestamps
(a download is stored, not watched) and ends the stream at MediaStatus 121.
"""

from __future__ import annotations

import itertools
import random

import pytest
import trio

from fluxkit.engine import PermanentSourceError, RestartPolicy, StreamStopped
from fluxkit.gb28181 import Gb28181Source
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols import MediaFrame

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform
from .test_platform_rest import DEVICE, catalog_of

ONCE = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=1)
START = 1_700_000_000


@pytest.mark.trio
async def test_download_at_4x_yields_the_clip_in_order_and_ends() -> None:
    with trio.fail_after(20):
        async with engine_and_platform(media_timeout=3.0) as (engine, platform), trio.open_nursery() as nursery:
            settings = DeviceSettings(
                server_host="127.0.0.1",
                server_port=platform.sip_port,
                server_id=PLATFORM_ID,
                domain=DOMAIN,
                device_id=DEVICE,
                password=PASSWORD,
            )
            device = await nursery.start(SimulatedDevice(settings, rng=random.Random(4), report=lambda _l: None).run)
            await catalog_of(platform)
            channel = device.channel_ids[0]
            source = Gb28181Source(platform, DEVICE, channel, playback=(START, START + 2), download_speed=4)
            events = engine.events()
            engine.add_source("download", source, restart=ONCE)
            frames: list[MediaFrame] = []
            async with trio.open_nursery() as inner:

                async def take() -> None:
                    async with engine.subscribe_stream("download", queue_size=4096) as subscription:
                        async for f in subscription:
                            frames.append(f)

                inner.start_soon(take)
                async for event in events:
                    if isinstance(event, StreamStopped) and event.stream_id == "download":
                        break
                await trio.sleep(0.05)
                inner.cancel_scope.cancel()
            assert source.finished  # ended by MediaStatus 121, not by an error or a timeout
            session = device.finished_sessions[-1]
            assert session.kind == "Download"
            assert session.control.scale == 4.0
            clip = device._clip
            assert clip is not None
            nursery.cancel_scope.cancel()
    # 2 s at 25 fps, the device's own clock: 3600 ticks apart, never restamped by the transfer speed.
    assert len(frames) == 50
    assert frames[0].keyframe
    assert all(f.codec == "h264" for f in frames)
    assert {b.dts - a.dts for a, b in itertools.pairwise(frames)} == {3600}  # type: ignore[operator]
    expected = [f[0] for f in itertools.islice(itertools.cycle(clip.frames), 50)]
    assert [f.data for f in frames] == expected


def test_download_needs_a_range_and_a_positive_speed() -> None:
    with pytest.raises(PermanentSourceError):
        Gb28181Source(None, DEVICE, DEVICE, download_speed=4)  # type: ignore[arg-type]
    with pytest.raises(PermanentSourceError):
        Gb28181Source(None, DEVICE, DEVICE, playback=(START, START + 2), download_speed=0)  # type: ignore[arg-type]
