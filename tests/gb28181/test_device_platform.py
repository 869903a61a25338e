"""The simulated device against fluxkit's own GB28181 platform (`fluxkit.gb28181.Gb28181Platform`), end to end.

Registration with Digest, a 20-channel catalog assembled by the platform, DeviceInfo, PTZ byte-exact, and live
video in the three transports through `Gb28181Source` into the engine: the frames the engine gets are the clip's
access units, in order. Real clock, loopback, a second or two per stream.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio

from fluxkit.engine import RestartPolicy, VideoEngine
from fluxkit.gb28181 import Gb28181Source, ptz_command
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols import MediaFrame
from fluxkit.sim import LoadedClip, load_clip
from tests.mediagen import encode_annexb

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform, running_platform

DEVICE = "34020000001320000007"
FAST_RETRY = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=5)


@pytest.fixture(scope="module")
def sim_clip(tmp_path_factory: pytest.TempPathFactory) -> LoadedClip:
    path = tmp_path_factory.mktemp("simclip") / "clip.h264"
    path.write_bytes(encode_annexb("h264", width=160, height=96, frames=50, gop=25, fps=25))
    return load_clip(path)


def _device(port: int, clip: LoadedClip | None = None, **kw: object) -> SimulatedDevice:
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=port,
        server_id=PLATFORM_ID,
        domain=DOMAIN,
        device_id=DEVICE,
        password=PASSWORD,
        **kw,  # type: ignore[arg-type]
    )
    return SimulatedDevice(settings, rng=random.Random(11), report=lambda _: None, clip=clip)


@pytest.mark.trio
async def test_catalog_info_and_ptz_through_the_platform(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with running_platform(tmp_path, catalog_on_register=False) as platform, trio.open_nursery() as nursery:
            device = _device(platform.sip_port, channels=20, kind="nvr")
            await nursery.start(device.run)
            await device.wait_registered()
            channels = await platform.query_catalog(DEVICE)
            assert [c.channel_id for c in channels] == list(device.channel_ids)
            assert channels[0].name == "fluxkit 模拟设备 1"
            assert {c.status for c in channels} == {"ON"}
            info = await platform.query_device_info(DEVICE)
            assert info.manufacturer == "fluxkit"
            channel = device.channel_ids[3]
            status = await platform.ptz(DEVICE, channel, "right", speed=0x80)
            assert status == 200
            assert [(e.channel_id, e.hex) for e in device.ptz_log] == [
                (channel, ptz_command("right", speed=0x80).encode())
            ]
            await trio.sleep(0.2)
            assert device.ptz_position(channel).pan > 0
            await platform.ptz(DEVICE, channel, "stop")
            assert device.ptz_log[-1].hex == "A50F0100000000B5"
            nursery.cancel_scope.cancel()


async def _first_frames(engine: VideoEngine, stream_id: str, count: int) -> list[MediaFrame]:
    out: list[MediaFrame] = []
    while True:
        try:
            subscription = engine.subscribe_stream(stream_id)
            break
        except Exception:
            await trio.sleep(0.01)
    async with subscription as frames:
        async for frame in frames:
            out.append(frame)
            if len(out) == count:
                break
    return out


@pytest.mark.trio
@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
async def test_live_stream_through_the_platform(tmp_path: Path, sim_clip: LoadedClip, transport: str) -> None:
    with trio.fail_after(20):
        async with (
            engine_and_platform(tmp_path, catalog_on_register=False, media_timeout=3.0) as (engine, platform),
            trio.open_nursery() as nursery,
        ):
            device = _device(platform.sip_port, sim_clip)
            await nursery.start(device.run)
            await device.wait_registered()
            channel = device.channel_ids[0]
            source = Gb28181Source.from_url(platform, f"gb28181://{DEVICE}/{channel}?transport={transport}")
            engine.add_source("cam", source, restart=FAST_RETRY)
            frames = await _first_frames(engine, "cam", 20)
            assert all(f.codec == "h264" for f in frames)
            clip_data = [f[0] for f in sim_clip.frames]
            start = clip_data.index(frames[0].data)
            assert [f.data for f in frames] == [clip_data[(start + k) % len(clip_data)] for k in range(20)]
            session = device.sessions[0]
            assert session.transport == transport
            engine.remove_source("cam")
            await device.wait_state(lambda d: not d.sessions)  # the platform's BYE ends the stream
            nursery.cancel_scope.cancel()
