"""Live video from a GB28181 channel into the engine: INVITE, PS over RTP (UDP, TCP passive, TCP active), BYE.

The in-test device (conftest.py) answers the INVITE and streams `PsMuxer` output over RTP; the frames that come
out of the engine must be the access units it muxed, byte for byte, from the first keyframe on.
"""

from __future__ import annotations

import random

import pytest
import trio

from fluxkit.engine import PermanentSourceError, RestartPolicy, SourceConnected, VideoEngine
from fluxkit.gb28181 import Gb28181Source
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.sdp import parse_sdp

from .conftest import DEVICE_ID, PLATFORM_ID, FakeDevice, clip, device_on, engine_and_platform

CHANNEL = "34020000001310000001"
FAST_RETRY = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=5)


async def first_frames(engine: VideoEngine, stream_id: str, count: int) -> list[MediaFrame]:
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


def expected(count: int, start: int = 0) -> list[bytes]:
    frames = clip()
    return [frames[(start + i) % len(frames)][0] for i in range(count)]


def sent_from_a_keyframe(frames: list[MediaFrame]) -> bool:
    """The frames are the clip's, in order, from one of its keyframes (earlier ones may have been dropped)."""
    starts = [i for i, (_, key) in enumerate(clip()) if key]
    return any([f.data for f in frames] == expected(len(frames), k) for k in starts)


async def live(transport: str, **device_kwargs: object) -> tuple[list[MediaFrame], FakeDevice, str]:
    async with (
        engine_and_platform(catalog_on_register=False, media_timeout=2.0) as (engine, platform),
        device_on(platform, **device_kwargs) as device,
    ):
        assert (await device.register()).status_code == 200  # type: ignore[union-attr]
        source = Gb28181Source.from_url(platform, f"gb28181://{DEVICE_ID}/{CHANNEL}?transport={transport}")
        engine.add_source("cam", source, restart=FAST_RETRY)
        frames = await first_frames(engine, "cam", 15)
        engine.remove_source("cam")
        with trio.fail_after(5):
            await device.wait_until(lambda: device.byes > 0)
        return frames, device, device.offers[0]


@pytest.mark.trio
@pytest.mark.parametrize("transport", ["udp", "tcp-passive", "tcp-active"])
async def test_live_stream_frames_equal_what_the_device_sent(transport: str) -> None:
    with trio.fail_after(15):
        frames, device, offer_text = await live(transport)
    assert [f.data for f in frames] == expected(15)
    assert all(f.codec == "h264" for f in frames)
    assert frames[0].keyframe
    assert device.byes == 1  # BYE when the stream was removed
    offer = parse_sdp(offer_text)
    assert offer.session_name == "Play"
    assert offer.origin.username == PLATFORM_ID
    ssrc = offer.ssrc
    assert ssrc is not None
    assert len(ssrc) == 10
    assert ssrc[0] == "0"  # live
    assert ssrc[1:6] == PLATFORM_ID[3:8]
    media = offer.media[0]
    assert media.is_tcp == (transport != "udp")
    if transport != "udp":
        assert media.setup == transport.removeprefix("tcp-")


@pytest.mark.trio
@pytest.mark.parametrize(("answer_ssrc", "rtp_ssrc"), [(None, 0), (1234567890, None), (None, 0x0BEBDFA1)])
async def test_devices_sending_another_ssrc_or_zero_are_followed(answer_ssrc: int | None, rtp_ssrc: int | None) -> None:
    with trio.fail_after(15):
        frames, _, _ = await live("udp", answer_ssrc=answer_ssrc, rtp_ssrc=rtp_ssrc)
    assert [f.data for f in frames] == expected(15)


@pytest.mark.trio
async def test_shared_media_port_demultiplexes_by_ssrc() -> None:
    second = "34020000001320000002"
    with trio.fail_after(15):
        async with engine_and_platform(catalog_on_register=False, shared_media_port=0) as (engine, platform):
            async with device_on(platform) as a, device_on(platform, device_id=second, rtp_ssrc=0) as b:
                assert (await a.register()).status_code == 200  # type: ignore[union-attr]
                assert (await b.register()).status_code == 200  # type: ignore[union-attr]
                engine.add_source("a", Gb28181Source(platform, DEVICE_ID, CHANNEL), restart=FAST_RETRY)
                engine.add_source("b", Gb28181Source(platform, second, second), restart=FAST_RETRY)
                async with trio.open_nursery() as nursery:
                    results: dict[str, list[MediaFrame]] = {}

                    async def collect(name: str) -> None:
                        results[name] = await first_frames(engine, name, 12)

                    nursery.start_soon(collect, "a")
                    nursery.start_soon(collect, "b")
                assert platform.shared_media is not None
                ports = {parse_sdp(d.offers[0]).media[0].port for d in (a, b)}
                assert ports == {platform.shared_media.port}
    assert sent_from_a_keyframe(results["a"])
    assert sent_from_a_keyframe(results["b"])


@pytest.mark.trio
async def test_device_restart_leads_to_a_new_invite() -> None:
    with trio.fail_after(15):
        async with engine_and_platform(catalog_on_register=False, media_timeout=2.0) as (engine, platform):
            events = engine.events()
            async with device_on(platform) as device:
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
                engine.add_source("cam", Gb28181Source(platform, DEVICE_ID, CHANNEL), restart=FAST_RETRY)
                await first_frames(engine, "cam", 3)
            async with device_on(platform) as rebooted:  # new port, new Call-ID: a reboot
                assert (await rebooted.register()).status_code == 200  # type: ignore[union-attr]
                connected = 0
                async for event in events:
                    if isinstance(event, SourceConnected):
                        connected += 1
                        if connected == 2:
                            break
                frames = await first_frames(engine, "cam", 5)
                assert sent_from_a_keyframe(frames)
                assert len(rebooted.offers) == 1


@pytest.mark.trio
async def test_rtp_flood_at_the_media_port_does_not_break_the_stream() -> None:
    rng = random.Random(5)
    with trio.fail_after(15):
        async with engine_and_platform(catalog_on_register=False) as (engine, platform):
            async with device_on(platform) as device:
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
                engine.add_source("cam", Gb28181Source(platform, DEVICE_ID, CHANNEL), restart=FAST_RETRY)
                await device.wait_until(lambda: device.offers)
                port = parse_sdp(device.offers[0]).media[0].port
                with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
                    # Garbage, truncated headers, and well-formed RTP of a foreign SSRC after the lock.
                    for _ in range(300):
                        size = rng.randrange(0, 1500)
                        await sock.sendto(bytes(rng.getrandbits(8) for _ in range(size)), ("127.0.0.1", port))
                    frames = await first_frames(engine, "cam", 15)
    assert [f.data for f in frames] == expected(15)


def test_from_url_rejects_malformed_urls() -> None:
    for url in (
        "rtsp://x/y",
        "gb28181://123/456",
        f"gb28181://{DEVICE_ID}/{CHANNEL}?transport=sctp",
    ):
        with pytest.raises(PermanentSourceError):
            Gb28181Source.from_url(None, url)  # type: ignore[arg-type]
    source = Gb28181Source.from_url(None, f"gb28181://{DEVICE_ID}")  # type: ignore[arg-type]
    assert source.channel_id == DEVICE_ID
    assert source.transport == "udp"
