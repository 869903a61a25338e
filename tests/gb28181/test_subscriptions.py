"""Catalog, Alarm and MobilePosition subscriptions (9.11, RFC 6665) between the platform and the simulator.

The platform SUBSCRIBEs after a device registers and refreshes in the dialog; the simulator answers with the
catalog as a NOTIFY, and sends alarms, channel status changes and positions as NOTIFYs in those dialogs (or as
MESSAGEs when nothing is subscribed). Everything runs on loopback.

Every step waits for what it checks (a platform event, a simulator state change, or platform state polled),
under a generous `fail_after`: nothing depends on how fast a loaded machine is.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import trio

from fluxkit.errors import FluxkitError
from fluxkit.gb28181 import (
    AlarmReceived,
    CatalogUpdated,
    Gb28181Event,
    Gb28181Platform,
    MobilePositionReceived,
)
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, running_platform

NVR_ID = "34020000001180000002"


def simulator(platform: Gb28181Platform, **kwargs: object) -> SimulatedDevice:
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=platform.sip_port,
        server_id=PLATFORM_ID,
        domain=DOMAIN,
        device_id=NVR_ID,
        password=PASSWORD,
        kind="nvr",
        **kwargs,  # type: ignore[arg-type]
    )
    return SimulatedDevice(settings, rng=random.Random(5), report=lambda _line: None)


async def next_event(
    events: trio.MemoryReceiveChannel[Gb28181Event], match: Callable[[Gb28181Event], bool]
) -> Gb28181Event:
    async for event in events:
        if match(event):
            return event
    raise AssertionError("the event channel closed")


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll platform state that has no event of its own (under the test's fail_after)."""
    while not predicate():  # noqa: ASYNC110 - platform state without an event of its own
        await trio.sleep(0.01)


def statuses(platform: Gb28181Platform) -> dict[str, str | None]:
    record = platform.device(NVR_ID)
    return {} if record is None else {c.channel_id: c.status for c in record.channels}


@pytest.mark.trio
async def test_catalog_comes_by_notify_and_changes_alarms_follow_in_the_dialogs() -> None:
    with trio.fail_after(120):
        async with running_platform(catalog_on_register=False) as platform, trio.open_nursery() as nursery:
            events = platform.events()
            device = await nursery.start(simulator(platform, channels=3, catalog_page_size=2).run)
            # No Catalog query: the three channels arrive by the subscription's first NOTIFY (two pages).
            await next_event(events, lambda e: isinstance(e, CatalogUpdated) and len(statuses(platform)) == 3)
            assert statuses(platform) == dict.fromkeys(device.channel_ids, "ON")
            await device.wait_state(lambda d: {"Catalog", "Alarm"} <= set(d.subscribed()))
            assert sorted(device.subscribe_log) == [("Alarm", False), ("Catalog", False)]
            # The device logs a SUBSCRIBE as it answers it; the platform has it once the 200 arrived.
            await wait_until(lambda: set(platform.subscriptions(NVR_ID)) == {"Catalog", "Alarm"})
            names = {c.channel_id: c.name for c in platform.device(NVR_ID).channels}  # type: ignore[union-attr]

            sent = device.notifies_sent
            channel = device.channel_ids[1]
            assert await device.set_channel_status(channel, "OFF") == 200
            await next_event(events, lambda e: isinstance(e, CatalogUpdated) and statuses(platform)[channel] == "OFF")
            assert statuses(platform) == {**dict.fromkeys(device.channel_ids, "ON"), channel: "OFF"}
            assert {c.channel_id: c.name for c in platform.device(NVR_ID).channels} == names  # type: ignore[union-attr]
            assert device.notifies_sent == sent + 1  # a NOTIFY in the Catalog dialog, not a MESSAGE

            assert (
                await device.raise_alarm(device.channel_ids[0], priority=2, alarm_type="2", description="motion") == 200
            )
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert isinstance(event, AlarmReceived)
            assert event.device_id == NVR_ID
            alarm = event.alarm
            assert (alarm.device_id, alarm.alarm_priority, alarm.alarm_method) == (device.channel_ids[0], "2", "5")
            assert (alarm.alarm_type, alarm.alarm_description) == ("2", "motion")
            assert alarm.alarm_time
            assert device.notifies_sent == sent + 2

            # Nothing subscribed to MobilePosition here: it goes as a MESSAGE and is reported all the same.
            assert await device.report_position(longitude=116.397128, latitude=39.916527, speed=12.5) == 200
            event = await next_event(events, lambda e: isinstance(e, MobilePositionReceived))
            assert isinstance(event, MobilePositionReceived)
            position = event.position
            assert (position.longitude, position.latitude, position.speed) == ("116.397128", "39.916527", "12.5")
            assert device.notifies_sent == sent + 2
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_subscriptions_are_refreshed_in_their_dialogs_and_renewed_after_a_restart() -> None:
    with trio.fail_after(120):
        async with running_platform(subscription_expires=1) as platform, trio.open_nursery() as nursery:
            device = await nursery.start(simulator(platform, channels=2).run)
            # Refreshed at 3/4 of the granted second, inside the dialog the first SUBSCRIBE created.
            await device.wait_state(lambda d: {("Catalog", True), ("Alarm", True)} <= set(d.subscribe_log))
            assert device.subscribe_log[:2] in (
                [("Catalog", False), ("Alarm", False)],
                [("Alarm", False), ("Catalog", False)],
            )
            before = len(device.subscribe_log)
            device.restart()  # the device forgets its dialogs; the platform subscribes afresh on the new registration
            await device.wait_state(lambda d: {("Catalog", False), ("Alarm", False)} <= set(d.subscribe_log[before:]))
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_position_by_notify_when_subscribed_and_no_subscription_when_disabled() -> None:
    with trio.fail_after(120):
        async with (
            running_platform(subscribe_events=("MobilePosition",)) as platform,
            trio.open_nursery() as nursery,
        ):
            events = platform.events()
            device = await nursery.start(simulator(platform, channels=1).run)
            await next_event(events, lambda e: isinstance(e, CatalogUpdated) and len(statuses(platform)) == 1)
            await device.wait_state(lambda d: "MobilePosition" in d.subscribed())
            assert device.subscribe_log == [("MobilePosition", False)]
            sent = device.notifies_sent
            assert await device.report_position(longitude=1.5, latitude=2.25, direction=90) == 200
            event = await next_event(events, lambda e: isinstance(e, MobilePositionReceived))
            assert isinstance(event, MobilePositionReceived)
            assert (event.position.longitude, event.position.direction) == ("1.500000", "90")
            assert device.notifies_sent == sent + 1
            # Without a Catalog subscription a channel change goes as a MESSAGE and still updates the registry.
            assert await device.set_channel_status(device.channel_ids[0], "OFF") == 200
            await next_event(events, lambda e: isinstance(e, CatalogUpdated) and "OFF" in statuses(platform).values())
            assert device.notifies_sent == sent + 1
            with pytest.raises(FluxkitError):
                await device.set_channel_status("34020000001310009999", "OFF")
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_no_subscribe_when_disabled() -> None:
    with trio.fail_after(120):
        async with running_platform(subscribe_events=()) as platform, trio.open_nursery() as nursery:
            events = platform.events()
            device = await nursery.start(simulator(platform, channels=1).run)
            await next_event(events, lambda e: isinstance(e, CatalogUpdated))  # by the Catalog query
            assert await device.raise_alarm() == 200  # as a MESSAGE
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert isinstance(event, AlarmReceived)
            assert event.alarm.device_id == NVR_ID
            assert device.subscribe_log == []
            assert platform.subscriptions(NVR_ID) == {}
            nursery.cancel_scope.cancel()
