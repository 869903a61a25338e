"""Platform-initiated SIP/TCP connections (RFC 3261 §18.1.1): a device registered over TCP whose connection has
gone is reached over a new connection the platform opens to its Contact, which is then reused and read both ways.

The device is the real simulator (`SimulatedDevice`, which listens on its SIP port over TCP) or, for the
unreachable case, the in-test `FakeDevice` (which does not listen). Everything runs on loopback.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import trio

from fluxkit.gb28181 import CatalogUpdated, Gb28181Error, Gb28181Platform
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice

from .conftest import DEVICE_ID, DOMAIN, PASSWORD, PLATFORM_ID, device_on, running_platform

NVR_ID = "34020000001180000003"


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition the platform offers no event for (under the caller's fail_after)."""
    while not predicate():  # noqa: ASYNC110 - platform state without an event of its own
        await trio.sleep(0.01)


def tcp_simulator(platform: Gb28181Platform) -> SimulatedDevice:
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=platform.sip_port,
        server_id=PLATFORM_ID,
        domain=DOMAIN,
        device_id=NVR_ID,
        password=PASSWORD,
        kind="nvr",
        channels=3,
        transport="tcp",
    )
    return SimulatedDevice(settings, rng=random.Random(11), report=lambda _line: None)


@pytest.mark.trio
async def test_query_and_ptz_reach_a_tcp_device_whose_connection_closed() -> None:
    with trio.fail_after(60):
        async with running_platform(subscribe_events=()) as platform, trio.open_nursery() as nursery:
            events = platform.events()
            device = await nursery.start(tcp_simulator(platform).run)
            await device.wait_registered()
            async for event in events:
                if isinstance(event, CatalogUpdated):
                    break
            record = platform.device(NVR_ID)
            assert record is not None
            assert record.transport == "TCP"
            assert record.contact == device.local_address  # the port it listens on
            first_address = record.address

            await device.drop_connection()
            await wait_until(lambda: not platform._transport.has_connection(first_address))
            assert platform.tcp_connections_opened == 0

            channel = device.channel_ids[1]
            assert await platform.ptz(NVR_ID, channel, "left", speed=0x80) == 200
            assert [(e.channel_id, e.hex) for e in device.ptz_log] == [(channel, "A50F010280000037")]
            assert platform.tcp_connections_opened == 1
            assert device.connections_accepted == 1
            assert platform.device(NVR_ID).address == device.local_address  # type: ignore[union-attr]

            # The Catalog answer comes as the device's own MESSAGEs, on the connection the platform opened.
            channels = await platform.query_catalog(NVR_ID)
            assert [c.channel_id for c in channels] == list(device.channel_ids)
            info = await platform.query_device_info(NVR_ID)
            assert info.manufacturer == "fluxkit"
            assert platform.tcp_connections_opened == 1  # reused
            assert device.connections_accepted == 1
            assert device.state == "registered"
            assert device.restarts == 0
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_subscription_refresh_goes_over_a_new_connection() -> None:
    with trio.fail_after(60):
        async with (
            running_platform(subscribe_events=("Alarm",), subscription_expires=1, catalog_on_register=False) as p,
            trio.open_nursery() as nursery,
        ):
            device = await nursery.start(tcp_simulator(p).run)
            await device.wait_state(lambda d: ("Alarm", False) in d.subscribe_log)
            await wait_until(lambda: "Alarm" in p.subscriptions(NVR_ID))  # the 200 reached the platform
            await device.drop_connection()
            before = len(device.subscribe_log)
            # The refresh (in the dialog, at 3/4 of the granted second) needs the platform's own connection.
            await device.wait_state(lambda d: ("Alarm", True) in d.subscribe_log[before:])
            assert device.connections_accepted >= 1
            assert p.tcp_connections_opened >= 1
            assert device.restarts == 0
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_unreachable_tcp_device_fails_fast() -> None:
    with trio.fail_after(60):
        async with running_platform(catalog_on_register=False, subscribe_events=(), tcp_connect_timeout=5.0) as p:
            async with device_on(p, transport="TCP") as device:
                assert (await device.register()).status_code == 200  # type: ignore[union-attr]
                record = p.device(DEVICE_ID)
                assert record is not None
                assert record.contact == ("127.0.0.1", device.ua.port)
            # The fake device is gone and nothing listens at its Contact: the connection attempt is refused.
            await wait_until(lambda: not p._transport.has_connection(record.address))
            assert await p.ptz(DEVICE_ID, DEVICE_ID, "up") == 408
            with pytest.raises(Gb28181Error):
                await p.query_device_info(DEVICE_ID)
            assert p.tcp_connections_opened == 0
