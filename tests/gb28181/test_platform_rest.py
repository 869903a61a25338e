"""The GB28181 REST endpoints end to end: the REST app, a real platform and fluxkit's device simulator.

Records are listed from the simulator's `records` (RFC 3339 in and out), a playback at 2x streams into the engine
with timestamps on the receiving clock and stops at MediaStatus 121, live streams start and stop, PTZ cruise,
scan and auxiliary commands arrive at the simulator byte-exact, and bad requests get the API's JSON errors.
"""

from __future__ import annotations

import datetime
import itertools
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import httpx
import pytest
import trio

from fluxkit.api import ApiServices, serve_api
from fluxkit.engine import StreamStopped, VideoEngine, open_engine
from fluxkit.gb28181 import CatalogUpdated, Gb28181Platform, gb28181_routes
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.manscdp import RecordItem

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, running_platform

DEVICE = "34020000001320000001"
OTHER = "34020000001320000099"
TOKEN = "gb-rest-token"
BASE = "/api/video/gb28181"
RECORDS = (
    RecordItem(name="rec-a", file_path="/a.mp4", start_time="2024-03-01T10:00:00", end_time="2024-03-01T10:30:00"),
    RecordItem(name="rec-b", file_path="/b.mp4", start_time="2024-03-01T11:00:00", end_time="2024-03-01T11:30:00"),
    RecordItem(name="rec-c", file_path="/c.mp4", start_time="2024-03-02T08:00:00", end_time="2024-03-02T08:30:00"),
)


def local(text: str) -> str:
    """A zone-less local time as RFC 3339 with this host's offset."""
    return datetime.datetime.fromisoformat(text).astimezone().isoformat()


@attrs.frozen
class Setup:
    engine: VideoEngine
    platform: Gb28181Platform
    device: SimulatedDevice
    client: httpx.AsyncClient


async def catalog_of(platform: Gb28181Platform) -> None:
    """Until the device is online with its catalog."""
    events = platform.events()
    while (record := platform.device(DEVICE)) is None or not record.online or not record.channels:
        with trio.move_on_after(0.2):
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break


@asynccontextmanager
async def rest_setup() -> AsyncIterator[Setup]:
    async with (
        open_engine(rng=random.Random(3)) as engine,
        running_platform(engine=engine, media_timeout=3.0) as platform,
        trio.open_nursery() as nursery,
    ):
        settings = DeviceSettings(
            server_host="127.0.0.1",
            server_port=platform.sip_port,
            server_id=PLATFORM_ID,
            domain=DOMAIN,
            device_id=DEVICE,
            password=PASSWORD,
            records=RECORDS,
        )
        device = await nursery.start(SimulatedDevice(settings, rng=random.Random(4), report=lambda _l: None).run)
        await catalog_of(platform)
        services = ApiServices(engine=engine, token=TOKEN, extra_routes=tuple(gb28181_routes(platform)))
        port = await nursery.start(serve_api, services, "127.0.0.1", 0)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
            yield Setup(engine=engine, platform=platform, device=device, client=client)
        nursery.cancel_scope.cancel()


async def collect_until_stopped(engine: VideoEngine, stream_id: str) -> tuple[list[MediaFrame], str]:
    """Every frame of a stream from its start, and the reason it stopped."""
    frames: list[MediaFrame] = []
    events = engine.events()
    reason = ""
    async with trio.open_nursery() as nursery:

        async def take() -> None:
            async with engine.subscribe_stream(stream_id, queue_size=4096) as subscription:
                async for frame in subscription:
                    frames.append(frame)

        nursery.start_soon(take)
        async for event in events:
            if isinstance(event, StreamStopped) and event.stream_id == stream_id:
                reason = event.reason
                break
        await trio.sleep(0.05)  # let the subscriber take the last frames
        nursery.cancel_scope.cancel()
    return frames, reason


@pytest.mark.trio
async def test_records_are_listed_with_rfc3339_times() -> None:
    with trio.fail_after(20):
        async with rest_setup() as s:
            channel = s.device.channel_ids[0]
            params = {
                "channel_id": channel,
                "start": local("2024-03-01T00:00:00"),
                "end": datetime.datetime(2024, 3, 1, 23).astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
            }
            response = await s.client.get(f"{BASE}/devices/{DEVICE}/records", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["device_id"] == DEVICE
            assert body["channel_id"] == channel
            assert [r["name"] for r in body["records"]] == ["rec-a", "rec-b"]
            first = body["records"][0]
            assert first["channel_id"] == channel
            assert first["file_path"] == "/a.mp4"
            assert first["start_time"] == local("2024-03-01T10:00:00")
            assert first["end_time"] == local("2024-03-01T10:30:00")

            # Errors: bad times, unknown device or channel, no token.
            bad = await s.client.get(f"{BASE}/devices/{DEVICE}/records", params={**params, "start": "yesterday"})
            assert bad.status_code == 400
            assert bad.json()["status"] == 400
            assert "start" in bad.json()["error"]
            reversed_range = {**params, "start": params["end"], "end": params["start"]}
            assert (await s.client.get(f"{BASE}/devices/{DEVICE}/records", params=reversed_range)).status_code == 400
            assert (await s.client.get(f"{BASE}/devices/{OTHER}/records", params=params)).status_code == 404
            no_channel = {**params, "channel_id": OTHER}
            assert (await s.client.get(f"{BASE}/devices/{DEVICE}/records", params=no_channel)).status_code == 404
            anonymous = await s.client.get(
                f"{BASE}/devices/{DEVICE}/records", params=params, headers={"Authorization": ""}
            )
            assert anonymous.status_code == 401


@pytest.mark.trio
async def test_playback_at_2x_streams_into_the_engine_and_stops_at_the_end() -> None:
    with trio.fail_after(20):
        async with rest_setup() as s:
            channel = s.device.channel_ids[0]
            body = {
                "channel_id": channel,
                "start_time": local("2024-03-01T10:00:00"),
                "end_time": local("2024-03-01T10:00:02"),
                "speed": 2,
            }
            response = await s.client.post(f"{BASE}/devices/{DEVICE}/playback", json=body)
            assert response.status_code == 201, response.text
            stream_id = response.json()["stream_id"]
            assert response.json()["speed"] == 2.0
            assert stream_id in {info.stream_id for info in s.engine.list_streams()}
            frames, reason = await collect_until_stopped(s.engine, stream_id)
            assert reason == "source finished"  # MediaStatus 121 ended it, not an error
            assert stream_id not in {info.stream_id for info in s.engine.list_streams()}
            # 2 s of a 25 fps recording at 2x: up to 50 frames, 20 ms apart on the receiving clock (1800 ticks).
            video = [f for f in frames if f.codec == "h264"]
            assert 25 <= len(video) <= 50
            assert video[0].keyframe
            assert {b.dts - a.dts for a, b in itertools.pairwise(video)} == {1800}  # type: ignore[operator]
            # Once ended, DELETE says so.
            assert (await s.client.delete(f"{BASE}/streams/{stream_id}")).status_code == 404


@pytest.mark.trio
async def test_playback_requests_are_validated() -> None:
    with trio.fail_after(20):
        async with rest_setup() as s:
            url = f"{BASE}/devices/{DEVICE}/playback"
            good = {"start_time": local("2024-03-01T10:00:00"), "end_time": local("2024-03-01T10:00:02")}
            for bad in (
                {**good, "speed": 8},
                {**good, "speed": "fast"},
                {**good, "end_time": good["start_time"]},
                {**good, "start_time": "noon"},
                {**good, "transport": "sctp"},
                {**good, "channel_id": "123"},
            ):
                response = await s.client.post(url, json=bad)
                assert response.status_code == 400, bad
                assert set(response.json()) == {"error", "status"}
            assert (await s.client.post(url, content=b"{not json")).status_code == 400
            assert (await s.client.post(f"{BASE}/devices/{OTHER}/playback", json=good)).status_code == 404


@pytest.mark.trio
async def test_live_start_and_stop() -> None:
    with trio.fail_after(20):
        async with rest_setup() as s:
            channel = s.device.channel_ids[0]
            url = f"{BASE}/devices/{DEVICE}/live"
            response = await s.client.post(url, json={"channel_id": channel, "transport": "tcp-passive"})
            assert response.status_code == 201, response.text
            assert response.json() == {
                "stream_id": channel,
                "device_id": DEVICE,
                "channel_id": channel,
                "transport": "tcp-passive",
            }
            again = await s.client.post(url, json={"channel_id": channel})
            assert again.status_code == 409
            assert again.json()["status"] == 409
            named = await s.client.post(url, json={"channel_id": channel, "stream_id": "gate"})
            assert named.status_code == 201
            for stream_id in (channel, "gate"):
                async with s.engine.subscribe_stream(stream_id) as subscription:
                    got = []
                    async for frame in subscription:
                        got.append(frame)
                        if len(got) == 5:
                            break
                assert got[0].keyframe
                assert all(f.codec == "h264" for f in got)
            assert (await s.client.delete(f"{BASE}/streams/{channel}")).status_code == 204
            assert (await s.client.delete(f"{BASE}/streams/gate")).status_code == 204
            assert channel not in {info.stream_id for info in s.engine.list_streams()}
            assert (await s.client.delete(f"{BASE}/streams/{channel}")).status_code == 404


@pytest.mark.trio
async def test_ptz_cruise_scan_and_aux_arrive_byte_exact() -> None:
    with trio.fail_after(20):
        async with rest_setup() as s:
            channel = s.device.channel_ids[0]
            url = f"{BASE}/devices/{DEVICE}/ptz"
            sent = [
                ({"command": "cruise_add", "group": 1, "preset": 3}, "A50F01840103003D"),
                ({"command": "cruise_speed", "group": 1, "value": 0x123}, "A50F01860123106F"),
                ({"command": "cruise_dwell", "group": 1, "value": 10}, "A50F0187010A0047"),
                ({"command": "cruise_start", "group": 1}, "A50F01880100003E"),
                ({"command": "scan_start"}, "A50F01890100003F"),
                ({"command": "scan_left", "group": 2}, "A50F018902010041"),
                ({"command": "scan_speed", "group": 2, "value": 300}, "A50F018A022C107D"),
                ({"command": "aux_on", "switch": 1}, "A50F018C01000042"),
                ({"command": "aux_off", "switch": 1}, "A50F018D01000043"),
                ({"command": "stop"}, "A50F0100000000B5"),
            ]
            for body, _ in sent:
                response = await s.client.post(url, json={"channel_id": channel, **body})
                assert response.status_code == 200, (body, response.text)
            assert [(e.channel_id, e.hex) for e in s.device.ptz_log] == [(channel, hex_) for _, hex_ in sent]
            for bad in (
                {"command": "cruise_start"},  # no group
                {"command": "aux_on"},  # no switch
                {"command": "cruise_speed", "group": 1},  # no value
                {"command": "cruise_speed", "group": 1, "value": 5000},
                {"command": "aux_on", "switch": "1"},
            ):
                response = await s.client.post(url, json={"channel_id": channel, **bad})
                assert response.status_code == 400, bad
                assert set(response.json()) == {"error", "status"}
            assert len(s.device.ptz_log) == len(sent)
