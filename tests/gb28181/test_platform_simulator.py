"""The platform against fluxkit's own GB28181 device simulator (`fluxkit.gb28181.device`), end to end.

An NVR simulator registers with Digest, its multi-part catalog lands in the registry with Unicode names, PTZ
commands arrive in its log byte-exact, and live streams over all three media transports (and with vendor quirks:
Hikvision PSM descriptors, Dahua SSRC 0, GB2312 bodies with a bare `&`) reach the engine as H.264 frames.
"""

from __future__ import annotations

import random

import pytest
import trio

from fluxkit.engine import RestartPolicy, StreamStopped, VideoEngine
from fluxkit.gb28181 import CatalogUpdated, Gb28181Platform, Gb28181Source
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols import MediaFrame

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform

NVR_ID = "34020000001180000001"
FAST_RETRY = RestartPolicy(initial_delay=0.05, max_delay=0.2, jitter=0.0, max_attempts=5)


def simulator(platform: Gb28181Platform, **kwargs: object) -> SimulatedDevice:
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=platform.sip_port,
        server_id=PLATFORM_ID,
        domain=DOMAIN,
        device_id=NVR_ID,
        password=PASSWORD,
        **kwargs,  # type: ignore[arg-type]
    )
    return SimulatedDevice(settings, rng=random.Random(4), report=lambda _line: None)


async def catalog_of(platform: Gb28181Platform, count: int) -> None:
    events = platform.events()
    while True:
        device = platform.device(NVR_ID)
        if device is not None and len(device.channels) == count:
            return
        with trio.move_on_after(0.2):
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break


async def frames_of(engine: VideoEngine, stream_id: str, count: int) -> list[MediaFrame]:
    while True:
        try:
            subscription = engine.subscribe_stream(stream_id)
            break
        except Exception:
            await trio.sleep(0.01)
    out = []
    async with subscription as frames:
        async for frame in frames:
            out.append(frame)
            if len(out) == count:
                return out
    return out


@pytest.mark.trio
async def test_simulated_nvr_registers_catalog_and_ptz() -> None:
    with trio.fail_after(20):
        async with engine_and_platform() as (_, platform), trio.open_nursery() as nursery:
            device = await nursery.start(simulator(platform, kind="nvr", channels=5, catalog_page_size=2).run)
            await catalog_of(platform, 5)
            record = platform.device(NVR_ID)
            assert record is not None
            assert record.online
            assert [c.channel_id for c in record.channels] == list(device.channel_ids)
            assert all(c.name and "模拟" in c.name for c in record.channels)
            channel = device.channel_ids[2]
            assert await platform.ptz(NVR_ID, channel, "up_left", speed=0x40) == 200
            assert await platform.ptz(NVR_ID, channel, "preset_call", preset=3) == 200
            assert [(e.channel_id, e.hex) for e in device.ptz_log] == [
                (channel, "A50F010A4040003F"),
                (channel, "A50F01820003003A"),
            ]
            nursery.cancel_scope.cancel()


@pytest.mark.trio
@pytest.mark.parametrize(
    ("transport", "quirks"),
    [
        ("udp", ()),
        ("tcp-passive", ()),
        ("tcp-active", ()),
        ("udp", ("ssrc_zero", "hik_psm", "gb2312_bare_amp")),
    ],
)
async def test_simulated_device_live_stream(transport: str, quirks: tuple[str, ...]) -> None:
    with trio.fail_after(20):
        async with engine_and_platform(media_timeout=3.0) as (engine, platform), trio.open_nursery() as nursery:
            device = await nursery.start(simulator(platform, quirks=frozenset(quirks)).run)
            await catalog_of(platform, 1)
            channel = device.channel_ids[0]
            source = Gb28181Source.from_url(platform, f"gb28181://{NVR_ID}/{channel}?transport={transport}")
            engine.add_source("sim", source, restart=FAST_RETRY)
            frames = await frames_of(engine, "sim", 10)
            assert frames[0].keyframe
            assert all(f.codec == "h264" for f in frames)
            assert all(f.data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) for f in frames)
            engine.remove_source("sim")
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_simulated_device_playback_at_4x_ends_at_media_status_121() -> None:
    with trio.fail_after(20):
        async with engine_and_platform(media_timeout=3.0) as (engine, platform), trio.open_nursery() as nursery:
            device = await nursery.start(simulator(platform).run)
            await catalog_of(platform, 1)
            channel = device.channel_ids[0]
            start = 1_700_000_000
            source = Gb28181Source(platform, NVR_ID, channel, playback=(start, start + 2), speed=4.0)
            events = engine.events()
            engine.add_source("replay", source, restart=FAST_RETRY)
            frames = await frames_of(engine, "replay", 5)
            assert all(f.codec == "h264" for f in frames)
            async for event in events:
                if isinstance(event, StreamStopped) and event.stream_id == "replay":
                    break
            assert source.finished  # ended by MediaStatus 121, not by an error
            nursery.cancel_scope.cancel()
