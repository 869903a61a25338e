"""The GB28181 platform end to end over loopback: registration, registry, keepalive, catalog, queries, PTZ.

Each test runs a real platform on free ports (SIP port 0) against the in-test `FakeDevice` (conftest.py) on the
real clock with short intervals, under `trio.fail_after`; nothing asserts on timings.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio
from starlette.applications import Starlette

from fluxkit.gb28181 import (
    CatalogUpdated,
    DeviceOffline,
    DeviceOfflineError,
    DeviceOnline,
    gb28181_routes,
)
from fluxkit.protocols.digest import parse_authorization
from fluxkit.protocols.manscdp import DeviceControl, PtzCommand
from fluxkit.protocols.sip import parse_message

from .conftest import DEVICE_ID, device_on, running_platform

CHANNELS = tuple((f"3402000000131000{i:04d}", f"通道{i} 东门") for i in range(1, 6))


@pytest.mark.trio
async def test_register_with_digest_gets_200_with_date_and_device_online() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform) as device:
            response = await device.register()
            assert response is not None
            assert response.status_code == 200
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", response.headers.get("Date") or "")
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert record.online
            assert record.address == ("127.0.0.1", device.ua.port)  # where the REGISTER came from
            assert record.transport == "UDP"
            # The REGISTER that got the 200 carried Digest credentials for our realm.
            sent = [parse_message(m) for m in device.sent_raw if m.startswith(b"REGISTER")]
            assert "Authorization" not in sent[0].headers
            creds = parse_authorization(sent[-1].headers.get("Authorization") or "")
            assert creds.username == DEVICE_ID  # type: ignore[union-attr]


@pytest.mark.trio
async def test_wrong_password_is_403() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform, password="wrong") as device:
            response = await device.register()
            assert response is not None
            assert response.status_code == 403
            assert platform.device(DEVICE_ID) is None


@pytest.mark.trio
async def test_per_device_password_beats_the_default() -> None:
    with trio.fail_after(10):
        async with running_platform(device_passwords={DEVICE_ID: "special"}) as platform:
            async with device_on(platform) as device:
                response = await device.register()
                assert response is not None
                assert response.status_code == 403
            async with device_on(platform, password="special") as device:
                response = await device.register()
                assert response is not None
                assert response.status_code == 200


@pytest.mark.trio
async def test_no_auth_device_and_no_password_register_without_digest() -> None:
    with trio.fail_after(10):
        async with (
            running_platform(no_auth_devices=frozenset({DEVICE_ID})) as platform,
            device_on(platform, password=None) as device,
        ):
            response = await device.register()
            assert response is not None
            assert response.status_code == 200
        async with running_platform(password=None) as platform, device_on(platform, password=None) as device:
            response = await device.register()
            assert response is not None
            assert response.status_code == 200
            assert platform.device(DEVICE_ID) is not None


@pytest.mark.trio
async def test_replayed_credentials_are_challenged_again() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform) as device:
            response = await device.register()
            assert response is not None
            assert response.status_code == 200
            authorized = next(m for m in reversed(device.sent_raw) if m.startswith(b"REGISTER"))
            # Same credentials (nonce, nc, cnonce) in a new transaction: a replay.
            replay = re.sub(rb"branch=[^;\r\n]+", b"branch=z9hG4bKreplay1", authorized)
            replay = re.sub(rb"CSeq: \d+", b"CSeq: 99", replay)
            assert replay != authorized
            before = len(platform.registry.all())
            # From a socket of its own (the reply goes where the request came from: rport), read here alone.
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
                await sock.bind(("127.0.0.1", 0))
                await sock.sendto(replay, ("127.0.0.1", platform.sip_port))
                while True:
                    data, _ = await sock.recvfrom(65535)
                    if b"CSeq: 99" in data:
                        break
            assert data.startswith(b"SIP/2.0 401")
            assert len(platform.registry.all()) == before


@pytest.mark.trio
async def test_unregister_marks_offline() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform) as device:
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            response = await device.register(expires=0)
            assert response is not None
            assert response.status_code == 200
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert not record.online
            kinds = []
            while True:
                event = await events.receive()
                kinds.append(type(event))
                if isinstance(event, DeviceOffline):
                    assert event.reason == "unregistered"
                    break
            assert DeviceOnline in kinds
            with pytest.raises(DeviceOfflineError):
                await platform.ptz(DEVICE_ID, DEVICE_ID, "up")


@pytest.mark.trio
async def test_keepalive_keeps_online_and_silence_goes_offline() -> None:
    with trio.fail_after(10):
        async with (
            running_platform(keepalive_interval=0.1, keepalive_count=3, catalog_on_register=False) as platform,
            device_on(platform) as device,
        ):
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            for sn in range(8):  # 0.4 s of keepalives, longer than the 0.3 s window
                assert (await device.keepalive(sn)).status_code == 200  # type: ignore[union-attr]
                await trio.sleep(0.05)
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert record.online
            assert record.last_keepalive is not None
            # Silence: offline after interval x count.
            async for event in events:
                if isinstance(event, DeviceOffline):
                    assert event.reason == "keepalive timeout"
                    break
            assert not platform.device(DEVICE_ID).online  # type: ignore[union-attr]
            # A keepalive from a device that is no longer registered is refused so that it registers again.
            assert (await device.keepalive(99)).status_code == 403  # type: ignore[union-attr]


@pytest.mark.trio
async def test_multipart_catalog_any_order_with_duplicates_and_gb2312_names() -> None:
    with trio.fail_after(10):
        async with (
            running_platform() as platform,
            device_on(platform, channels=CHANNELS, page=2, shuffle_parts=True) as device,
        ):
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break
            assert event.complete
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert {(c.channel_id, c.name) for c in record.channels} == set(CHANNELS)
            assert all(c.status == "ON" for c in record.channels)
            assert record.charset is not None
            assert record.charset.upper().replace("-", "") in ("GB2312", "GB18030")
            # On demand too.
            channels = await platform.query_catalog(DEVICE_ID)
            assert sorted(c.channel_id for c in channels) == sorted(c for c, _ in CHANNELS)


@pytest.mark.trio
async def test_registry_survives_a_platform_restart(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_platform(tmp_path) as platform, device_on(platform, channels=CHANNELS) as device:
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break
            info = await platform.query_device_info(DEVICE_ID)
            assert info.manufacturer == "Test"
        async with running_platform(tmp_path) as platform:
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert record.online  # given a keepalive window after the restart
            assert record.manufacturer == "Test"
            assert [(c.channel_id, c.name) for c in record.channels] == list(CHANNELS)
            listed = [d.to_json() for d in platform.devices()]
            assert listed[0]["device_id"] == DEVICE_ID
            assert listed[0]["channels"][0]["name"] == CHANNELS[0][1]  # type: ignore[index]


@pytest.mark.trio
async def test_device_changing_address_is_followed() -> None:
    with trio.fail_after(10):
        async with running_platform(catalog_on_register=False) as platform:
            events = platform.events()
            async with device_on(platform) as first:
                assert (await first.register()).status_code == 200  # type: ignore[union-attr]
            async with device_on(platform) as second:  # rebooted behind another port
                assert (await second.register()).status_code == 200  # type: ignore[union-attr]
                record = platform.device(DEVICE_ID)
                assert record is not None
                assert record.address == ("127.0.0.1", second.ua.port)
                status = await platform.ptz(DEVICE_ID, DEVICE_ID, "left")
                assert status == 200
                assert second.ptz == ["A50F010280000037"]
            online = [e for e in [events.receive_nowait() for _ in range(2)] if isinstance(e, DeviceOnline)]
            assert [e.restarted for e in online] == [False, True]


@pytest.mark.trio
async def test_sip_over_tcp() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform, transport="TCP", channels=CHANNELS) as device:
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            record = platform.device(DEVICE_ID)
            assert record is not None
            assert record.transport == "TCP"
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break
            assert len(platform.device(DEVICE_ID).channels) == len(CHANNELS)  # type: ignore[union-attr]
            assert await platform.ptz(DEVICE_ID, CHANNELS[0][0], "zoom_in", speed=16) == 200
            assert device.ptz == ["A50F0110000010D5"]


PTZ_CASES = [
    ("stop", {}, "A50F0100000000B5"),
    ("right", {"speed": 0x80}, "A50F010180000036"),
    ("up", {"speed": 0x80}, "A50F01080080003D"),
    ("down_right", {"speed": 0x80}, "A50F0105808000BA"),
    ("zoom_in", {"speed": 0x10}, "A50F0110000010D5"),
    ("zoom_out", {"speed": 0xF0}, "A50F01200000F0C5"),
    ("preset_set", {"preset": 1}, "A50F018100010037"),
    ("preset_call", {"preset": 1}, "A50F018200010038"),
    ("focus_far", {"speed": 0x80}, "A50F014180000076"),
    ("iris_open", {"speed": 0x80}, "A50F014400800079"),
]


@pytest.mark.trio
async def test_ptz_commands_arrive_byte_exact() -> None:
    with trio.fail_after(10):
        async with running_platform(catalog_on_register=False) as platform, device_on(platform) as device:
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            for name, kwargs, _ in PTZ_CASES:
                assert await platform.ptz(DEVICE_ID, "34020000001310000001", name, **kwargs) == 200  # type: ignore[arg-type]
            assert device.ptz == [hex_ for _, _, hex_ in PTZ_CASES]
            control = next(m for m in device.messages if isinstance(m, DeviceControl))
            assert control.device_id == "34020000001310000001"
            assert control.ptz_command == PtzCommand.stop()


@pytest.mark.trio
async def test_rest_routes() -> None:
    with trio.fail_after(10):
        async with running_platform() as platform, device_on(platform, channels=CHANNELS) as device:
            events = platform.events()
            assert (await device.register()).status_code == 200  # type: ignore[union-attr]
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break
            app = Starlette(routes=gb28181_routes(platform))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                listed = (await client.get("/api/video/gb28181/devices")).json()
                assert listed["devices"][0]["device_id"] == DEVICE_ID
                assert listed["devices"][0]["online"] is True
                assert listed["devices"][0]["channels"][1]["name"] == CHANNELS[1][1]
                channels = await client.get(f"/api/video/gb28181/devices/{DEVICE_ID}/channels")
                assert [c["channel_id"] for c in channels.json()["channels"]] == [c for c, _ in CHANNELS]
                url = f"/api/video/gb28181/devices/{DEVICE_ID}/ptz"
                ok = await client.post(url, json={"channel_id": CHANNELS[0][0], "command": "up", "speed": 128})
                assert ok.status_code == 200
                assert ok.json()["status"] == 200
                assert device.ptz == ["A50F01080080003D"]
                assert (await client.post(url, json={"command": "somersault"})).status_code == 400
                assert (await client.post(url, json={"command": "preset_call"})).status_code == 400
                unknown = "/api/video/gb28181/devices/34020000001329999999/ptz"
                assert (await client.post(unknown, json={"command": "up"})).status_code == 404
                assert (await client.get("/api/video/gb28181/devices/34020000001329999999/channels")).status_code == 404
                assert (await device.register(expires=0)).status_code == 200  # type: ignore[union-attr]
                assert (await client.post(url, json={"command": "up"})).status_code == 409


@pytest.mark.trio
async def test_malformed_sip_does_not_disturb_other_devices() -> None:
    garbage = [
        b"\x00\xff" * 100,
        b"REGISTER sip:x SIP/2.0\r\n\r\n",
        b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
        b"From: <sip:34020000001320000001@3402000000>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: 1\r\nCSeq: 1 MESSAGE\r\n"
        b"Content-Length: 10\r\n\r\n<<<<>>>>&&",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nContent-Length: 999999\r\n\r\n",
    ]
    with trio.fail_after(10):
        async with running_platform(catalog_on_register=False) as platform:
            async with device_on(platform) as attacker:
                for _ in range(50):
                    for data in garbage:
                        await attacker.send_raw(data)
            # TCP garbage: the connection is dropped, the server stays up.
            stream = await trio.open_tcp_stream("127.0.0.1", platform.sip_port)
            async with stream:
                await stream.send_all(b"\x16\x03\x01" + b"\xff" * 5000 + b"\r\n\r\n")
                with trio.move_on_after(2):
                    while await stream.receive_some(65536):
                        pass
            async with device_on(platform) as device:
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
                assert (await device.keepalive()).status_code == 200  # type: ignore[union-attr]
            async with device_on(platform, transport="TCP") as device:
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
