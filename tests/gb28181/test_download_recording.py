"""Device downloads and playbacks recorded end to end: the platform, fluxkit's device simulator, a real
`LocalStorage` and recorder, the files read back with PyAV.

* A download (`s=Download`, sent N times faster) is recorded at the recording's original times: the index lists
  it from the range's start, with the device's own timestamps (3600 ticks per frame at 25 fps) and the clip's
  bytes, however fast it arrived.
* A playback at 2x or 4x is a live stream on the receiving clock: recorded with frames 1800 or 900 ticks apart,
  half or a quarter of the recording's duration.
* `POST /api/video/gb28181/devices/{device_id}/download` starts one (validated), recorded the same way.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import av
import httpx
import pytest
import trio

from fluxkit.api import ApiServices, serve_api
from fluxkit.engine import RestartPolicy, StreamFailed, StreamStopped, VideoEngine
from fluxkit.gb28181 import Gb28181Platform, Gb28181Source, gb28181_routes
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols.nalu import split_annexb
from fluxkit.storage import LocalStorage, Recorder, RecordingSettings, SegmentRecord, open_recorder

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform
from .test_platform_rest import DEVICE, catalog_of, local

ONCE = RestartPolicy(initial_delay=0.05, max_delay=0.1, jitter=0.0, max_attempts=1)
START = 1_700_000_000  # 2023-11-14 22:13:20 UTC
SETTINGS = RecordingSettings(segment_duration=2.0, part_duration=0.5)
TOKEN = "gb-download-token"
BASE = "/api/video/gb28181"


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@attrs.frozen
class Rig:
    engine: VideoEngine
    platform: Gb28181Platform
    device: SimulatedDevice
    storage: LocalStorage
    recorder: Recorder


@asynccontextmanager
async def rig(root: Path, **device: object) -> AsyncIterator[Rig]:
    """A platform with an engine recorded into `root`, and a simulated device registered with its catalog."""
    async with (
        engine_and_platform(media_timeout=3.0) as (engine, platform),
        LocalStorage(root) as storage,
        open_recorder(engine, storage, SETTINGS) as recorder,
        trio.open_nursery() as nursery,
    ):
        settings = DeviceSettings(
            server_host="127.0.0.1",
            server_port=platform.sip_port,
            server_id=PLATFORM_ID,
            domain=DOMAIN,
            device_id=DEVICE,
            password=PASSWORD,
            **device,  # type: ignore[arg-type]
        )
        simulator = await nursery.start(SimulatedDevice(settings, rng=random.Random(4), report=lambda _l: None).run)
        await catalog_of(platform)
        yield Rig(engine=engine, platform=platform, device=simulator, storage=storage, recorder=recorder)
        nursery.cancel_scope.cancel()


async def until_stopped(engine: VideoEngine, stream_id: str) -> str:
    """Wait for the stream to stop; returns why."""
    async with engine.events() as events:
        if stream_id not in {i.stream_id for i in engine.list_streams()}:
            return "already stopped"
        async for event in events:
            if isinstance(event, StreamStopped) and event.stream_id == stream_id:
                return event.reason
    raise AssertionError("the event feed ended")


async def recorded(r: Rig, stream_id: str) -> list[SegmentRecord]:
    """The stream's segments once the recorder has finished them (after the stream stopped)."""
    while True:  # the recorder may not have taken the stream's events yet: wait for its segments
        await r.recorder.wait_idle()
        segments = (await r.storage.query_segments(stream_id, 0, 4e9)).segments
        if segments:
            return list(segments)
        await trio.sleep(0.02)


def read_back(segments: list[SegmentRecord]) -> list[list[tuple[int, list[bytes]]]]:
    """Per segment: (dts in 90 kHz ticks, NAL units) of each video packet, demuxed with PyAV."""
    out = []
    for segment in segments:
        with av.open(segment.path) as container:
            stream = container.streams.video[0]
            packets = []
            for packet in container.demux(stream):
                if packet.dts is None or not packet.size:
                    continue
                data = bytes(packet)
                nals, at = [], 0
                while at < len(data):  # MP4 samples: 4-byte length-prefixed NAL units (avcC)
                    size = int.from_bytes(data[at : at + 4], "big")
                    nals.append(data[at + 4 : at + 4 + size])
                    at += 4 + size
                packets.append((round(packet.dts * packet.time_base * 90000), nals))
            out.append(packets)
    return out


def steps(packets: list[tuple[int, list[bytes]]]) -> set[int]:
    return {b[0] - a[0] for a, b in itertools.pairwise(packets)}


@pytest.mark.trio
async def test_a_download_at_4x_is_recorded_at_its_original_times(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with rig(tmp_path) as r:
            channel = r.device.channel_ids[0]
            source = Gb28181Source(r.platform, DEVICE, channel, playback=(START, START + 4), download_speed=4)
            r.engine.add_source("dl", source, restart=ONCE)
            assert await until_stopped(r.engine, "dl") == "source finished"
            segments = await recorded(r, "dl")
            assert source.finished  # ended by MediaStatus 121
            assert r.device.finished_sessions[-1].kind == "Download"
            clip = r.device._clip
            assert clip is not None
    # Indexed from the range's start (not from when it arrived), 4 s long, in one run of contiguous segments.
    assert segments[0].start == utc(START)
    assert abs((segments[-1].end - utc(START + 4)).total_seconds()) <= 0.04
    assert len(segments) >= 2  # cut at the 2-s keyframe
    for a, b in itertools.pairwise(segments):
        assert a.end == b.start
    # The device's own timestamps (3600 ticks per frame) and the clip's frames, byte for byte.
    packets = read_back(segments)
    assert all(steps(p) == {3600} for p in packets)
    got = [nals for p in packets for _, nals in p]
    expected = [split_annexb(f[0]) for f in itertools.islice(itertools.cycle(clip.frames), 100)]
    assert len(got) == 100
    assert got == expected


@pytest.mark.trio
async def test_a_download_interrupted_after_frames_is_not_retried(tmp_path: Path) -> None:
    # The device reboots half a second into the transfer: a retry would start over at the range's start and
    # record it twice, so the stream fails for good and keeps what it received.
    with trio.fail_after(40):
        async with rig(tmp_path, quirks=frozenset({"restart"}), restart_after=0.5) as r:
            channel = r.device.channel_ids[0]
            source = Gb28181Source(r.platform, DEVICE, channel, playback=(START, START + 60), download_speed=4)
            async with r.engine.events() as events:
                r.engine.add_source("cut", source, restart=RestartPolicy(initial_delay=0.05, jitter=0.0))
                async for event in events:
                    if isinstance(event, StreamFailed) and event.stream_id == "cut":
                        break
            segments = await recorded(r, "cut")
            assert not source.finished
    assert event.permanent
    assert "download interrupted" in event.error
    assert segments[0].start == utc(START)
    assert segments[-1].end < utc(START + 60)


@pytest.mark.trio
@pytest.mark.parametrize("speed", [2.0, 4.0])
async def test_a_playback_at_speed_is_recorded_on_the_receiving_clock(tmp_path: Path, speed: float) -> None:
    with trio.fail_after(40):
        async with rig(tmp_path) as r:
            channel = r.device.channel_ids[0]
            source = Gb28181Source(r.platform, DEVICE, channel, playback=(START, START + 4), speed=speed)
            r.engine.add_source("replay", source, restart=ONCE)
            assert await until_stopped(r.engine, "replay") == "source finished"
            segments = await recorded(r, "replay")
            assert source.finished
    packets = read_back(segments)
    step = round(3600 / speed)
    assert all(steps(p) == {step} for p in packets if len(p) > 1)  # 1800 at 2x, 900 at 4x
    frames = sum(map(len, packets))
    assert 50 <= frames <= 100  # 4 s of recording at 25 fps, from the first keyframe the recorder saw
    # The recording lasts what the transfer lasted: 4 s / speed (2 s, 1 s) for the whole clip.
    duration = sum(s.duration for s in segments)
    assert duration == pytest.approx(frames * step / 90000, abs=0.041)
    assert duration <= 4 / speed + 0.041
    span = (segments[-1].end - segments[0].start).total_seconds()
    assert span == pytest.approx(duration, abs=0.041)


@asynccontextmanager
async def rest_client(r: Rig) -> AsyncIterator[httpx.AsyncClient]:
    services = ApiServices(engine=r.engine, token=TOKEN, extra_routes=tuple(gb28181_routes(r.platform)))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_api, services, "127.0.0.1", 0)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
            yield client
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_the_download_route_records_the_range_at_its_original_times(tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with rig(tmp_path) as r, rest_client(r) as client:
            channel = r.device.channel_ids[0]
            url = f"{BASE}/devices/{DEVICE}/download"
            start = local("2024-03-01T10:00:00")
            body = {"channel_id": channel, "start_time": start, "end_time": local("2024-03-01T10:00:02")}
            response = await client.post(url, json={**body, "download_speed": 8})
            assert response.status_code == 201, response.text
            epoch = int(dt.datetime.fromisoformat(start).timestamp())
            assert response.json() == {
                "stream_id": f"{channel}-download-{epoch}",
                "device_id": DEVICE,
                "channel_id": channel,
                "start_time": start,
                "end_time": local("2024-03-01T10:00:02"),
                "download_speed": 8,
                "transport": "udp",
            }
            stream_id = response.json()["stream_id"]
            assert await until_stopped(r.engine, stream_id) == "source finished"
            segments = await recorded(r, stream_id)
            session = r.device.finished_sessions[-1]
            assert (session.kind, session.control.scale) == ("Download", 8.0)
            # The device's local 10:00:00 (this host's zone), stored in UTC.
            assert segments[0].start == dt.datetime.fromisoformat(start).astimezone(dt.UTC)
            assert abs((segments[-1].end - segments[0].start).total_seconds() - 2.0) <= 0.04
            assert all(steps(p) == {3600} for p in read_back(segments))

            # A running download's stream id is taken (409) until it ends or is stopped; the default speed is 4.
            long = {**body, "end_time": local("2024-03-01T11:00:00"), "stream_id": "long-dl"}
            first = await client.post(url, json=long)
            assert first.status_code == 201, first.text
            assert first.json()["download_speed"] == 4
            again = await client.post(url, json=long)
            assert again.status_code == 409
            assert (await client.delete(f"{BASE}/streams/long-dl")).status_code == 204

            # Bad bodies: 4xx with the API's JSON errors.
            for bad in (
                {**body, "download_speed": 0},
                {**body, "download_speed": 17},
                {**body, "download_speed": 2.5},
                {**body, "download_speed": "4"},
                {**body, "download_speed": True},
                {**body, "speed": 2},  # a playback field: unknown here
                {**body, "end_time": body["start_time"]},
                {**body, "start_time": "noon"},
                {"channel_id": channel, "start_time": start},
                {**body, "transport": "sctp"},
                {**body, "channel_id": "123"},
                {**body, "stream_id": "a/b"},
                {**body, "stream_id": "keyframes"},
                {**body, "stream_id": ""},
            ):
                response = await client.post(url, json=bad)
                assert response.status_code == 400, (bad, response.text)
                assert set(response.json()) == {"error", "status"}
            assert (await client.post(url, content=b"[1, 2]")).status_code == 400
            assert (await client.post(f"{BASE}/devices/34020000001320000099/download", json=body)).status_code == 404
            assert (await client.post(url, json=body, headers={"Authorization": ""})).status_code == 401
