"""Subscriptions managed through the REST API, and the platform's responses to alarms (A.2.6), end to end with
the simulator (`SimulatedDevice`) on loopback."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest
import trio
from starlette.applications import Starlette

from fluxkit.gb28181 import (
    AlarmReceived,
    Gb28181Event,
    Gb28181Platform,
    SubscriptionRefusedError,
    gb28181_routes,
)
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.protocols.manscdp import UnknownMessage, parse_manscdp

from .conftest import DEVICE_ID, DOMAIN, PASSWORD, PLATFORM_ID, device_on, running_platform

NVR_ID = "34020000001180000004"
BASE = f"/api/video/gb28181/devices/{NVR_ID}/subscriptions"


def simulator(platform: Gb28181Platform) -> SimulatedDevice:
    settings = DeviceSettings(
        server_host="127.0.0.1",
        server_port=platform.sip_port,
        server_id=PLATFORM_ID,
        domain=DOMAIN,
        device_id=NVR_ID,
        password=PASSWORD,
        kind="nvr",
        channels=2,
    )
    return SimulatedDevice(settings, rng=random.Random(21), report=lambda _line: None)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition the platform offers no event for (under the caller's fail_after)."""
    while not predicate():  # noqa: ASYNC110 - platform state without an event of its own
        await trio.sleep(0.01)


async def next_event(
    events: trio.MemoryReceiveChannel[Gb28181Event], match: Callable[[Gb28181Event], bool]
) -> Gb28181Event:
    async for event in events:
        if match(event):
            return event
    raise AssertionError("the event channel closed")


def client_for(platform: Gb28181Platform) -> httpx.AsyncClient:
    app = Starlette(routes=gb28181_routes(platform))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.trio
async def test_subscriptions_listed_created_and_cancelled_over_rest() -> None:
    with trio.fail_after(60):
        async with (
            running_platform(subscribe_events=(), catalog_on_register=False) as platform,
            trio.open_nursery() as nursery,
            client_for(platform) as client,
        ):
            events = platform.events()
            device = await nursery.start(simulator(platform).run)
            await device.wait_registered()
            listed = await client.get(BASE)
            assert listed.status_code == 200
            assert listed.json() == {"device_id": NVR_ID, "subscriptions": []}

            created = await client.post(BASE, json={"kind": "alarm", "expires": 600})
            assert created.status_code == 201, created.text
            body = created.json()
            assert (body["device_id"], body["kind"], body["event"]) == (NVR_ID, "alarm", "Alarm")
            assert (body["active"], body["wanted"], body["expires"]) == (True, True, 600)
            assert 0 < body["expires_in"] <= 600
            assert "Alarm" in device.subscribed()
            assert device.subscribe_log == [("Alarm", False)]

            # The alarm now comes as a NOTIFY in that dialog, and still becomes an event.
            sent = device.notifies_sent
            assert await device.raise_alarm(device.channel_ids[0], priority=3) == 200
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert isinstance(event, AlarmReceived)
            assert event.alarm.alarm_priority == "3"
            assert device.notifies_sent == sent + 1

            created = await client.post(BASE, json={"kind": "mobile_position", "interval": 5})
            assert created.status_code == 201, created.text
            assert (created.json()["interval"], created.json()["active"]) == (5, True)
            query = [m for m in device.received if isinstance(m, UnknownMessage) and m.cmd_type == "MobilePosition"]
            assert query == []  # the query body came with the SUBSCRIBE, not as a MESSAGE
            listed = (await client.get(BASE)).json()["subscriptions"]
            assert [(s["kind"], s["active"]) for s in listed] == [("alarm", True), ("mobile_position", True)]

            # A re-registration with a new Call-ID (a reboot) renews what is wanted.
            before = len(device.subscribe_log)
            device.restart()
            await device.wait_state(
                lambda d: {("Alarm", False), ("MobilePosition", False)} <= set(d.subscribe_log[before:])
            )

            await wait_until(lambda: {"Alarm", "MobilePosition"} <= set(platform.subscriptions(NVR_ID)))
            before = len(device.subscribe_log)
            deleted = await client.delete(BASE + "/alarm")
            assert deleted.status_code == 204
            # Expires: 0 in the dialog: the device forgets it (and says so with a final NOTIFY).
            await device.wait_state(lambda d: "Alarm" not in d.subscribed())
            assert device.subscribe_log[before:] == [("Alarm", True)]
            assert [s["kind"] for s in (await client.get(BASE)).json()["subscriptions"]] == ["mobile_position"]
            assert (await client.delete(BASE + "/alarm")).status_code == 404
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_bad_subscription_requests_are_4xx_with_a_message() -> None:
    with trio.fail_after(60):
        async with (
            running_platform(subscribe_events=(), catalog_on_register=False) as platform,
            client_for(platform) as client,
        ):
            async with trio.open_nursery() as nursery:
                device = await nursery.start(simulator(platform).run)
                await device.wait_registered()
                bad_bodies = [
                    {"kind": "weather"},
                    {},
                    {"kind": "alarm", "expires": 5},
                    {"kind": "alarm", "expires": "600"},
                    {"kind": "alarm", "interval": 5},
                    {"kind": "mobile_position", "interval": 0},
                    {"kind": "catalog", "colour": "blue"},
                    ["catalog"],
                ]
                for body in bad_bodies:
                    response = await client.post(BASE, json=body)
                    assert response.status_code == 400, body
                    assert response.text  # the message (the API app renders it as {"error", "status"})
                assert (await client.post(BASE, content=b"{not json")).status_code == 400
                unknown = "/api/video/gb28181/devices/34020000001189999999/subscriptions"
                assert (await client.get(unknown)).status_code == 404
                assert (await client.post(unknown, json={"kind": "alarm"})).status_code == 404
                assert (await client.delete(unknown + "/alarm")).status_code == 404
                assert (await client.delete(BASE + "/weather")).status_code == 404
                assert (await client.delete(BASE + "/catalog")).status_code == 404  # never subscribed
                assert device.subscribe_log == []

                # An event the device does not do: refused (489 Bad Event) and not kept.
                with pytest.raises(SubscriptionRefusedError) as refused:
                    await platform.subscribe(NVR_ID, "Weather")
                assert refused.value.status == 489
                assert platform.subscription_info(NVR_ID) == []

                nursery.cancel_scope.cancel()
            async with device_on(platform) as fake:  # registers, then unregisters: offline
                assert (await fake.register()).status_code == 200  # type: ignore[union-attr]
                assert (await fake.register(expires=0)).status_code == 200  # type: ignore[union-attr]
            response = await client.post(
                f"/api/video/gb28181/devices/{DEVICE_ID}/subscriptions", json={"kind": "alarm"}
            )
            assert response.status_code == 409
            assert "offline" in response.text


@pytest.mark.trio
async def test_alarm_message_gets_the_platform_response_with_the_same_sn() -> None:
    with trio.fail_after(60):
        async with (
            running_platform(subscribe_events=(), catalog_on_register=False) as platform,
            trio.open_nursery() as nursery,
        ):
            events = platform.events()
            device = await nursery.start(simulator(platform).run)
            await device.wait_registered()
            channel = device.channel_ids[1]
            assert await device.raise_alarm(channel, priority=1, alarm_type="2") == 200  # a MESSAGE: none subscribed
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert isinstance(event, AlarmReceived)
            await device.wait_state(lambda d: len(d.alarm_replies) >= 1)
            reply = device.alarm_replies[0]
            assert (reply.cmd_type, reply.sn, reply.device_id, reply.result) == ("Alarm", event.alarm.sn, channel, "OK")
            # Byte-level shape of A.2.6: <Response><CmdType>Alarm</CmdType><SN/><DeviceID/><Result>OK</Result>.
            again = parse_manscdp(reply.encode("GB2312"))
            assert again == reply
            body = reply.encode("GB2312")
            assert b"<Response>" in body
            assert b"<CmdType>Alarm</CmdType>" in body
            assert f"<SN>{event.alarm.sn}</SN>".encode() in body
            assert b"<Result>OK</Result>" in body

            # Subscribed: the alarm comes as a NOTIFY, answered by its 200 alone; the next MESSAGE alarm gets the
            # next response (the platform handles requests in order, so a response to the NOTIFY would be first).
            await platform.subscribe(NVR_ID, "Alarm")
            assert await device.raise_alarm(channel, priority=2) == 200
            await next_event(events, lambda e: isinstance(e, AlarmReceived))
            await platform.unsubscribe(NVR_ID, "Alarm")
            await device.wait_state(lambda d: "Alarm" not in d.subscribed())
            assert await device.raise_alarm(channel, priority=4) == 200
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            await device.wait_state(lambda d: len(d.alarm_replies) >= 2)
            assert [r.sn for r in device.alarm_replies] == [reply.sn, event.alarm.sn]  # type: ignore[attr-defined]
            nursery.cancel_scope.cancel()
