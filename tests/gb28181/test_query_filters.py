"""Filtered RecordInfo queries and filtered subscriptions, end to end: fluxkit's platform (Python API and REST)
against the simulator, which answers and notifies only what a query or subscription asks for (`_filters.py`).

RecordInfo: Type, Secrecy, FilePath, Address and RecorderID (A.2.4.7), validated before anything is sent.
Subscriptions: an Alarm subscription's priority range, methods, AlarmType, time window and channel, and a Catalog
subscription's channel (A.2.4, 9.11) go in the SUBSCRIBE body (refreshes and renewals after a reboot included);
the simulator withholds what they leave out. Platform events also reach the engine's event feed.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio
from starlette.applications import Starlette

from fluxkit.api._events import event_json
from fluxkit.engine import VideoEngine
from fluxkit.errors import LocalProtocolError
from fluxkit.gb28181 import (
    AlarmReceived,
    CatalogUpdated,
    Gb28181Event,
    Gb28181Platform,
    SubscriptionFilter,
    gb28181_routes,
    record_fields,
    subscription_filter,
)
from fluxkit.gb28181._routes import OPENAPI_PATHS
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.gb28181.device._filters import records_matching
from fluxkit.protocols.manscdp import CatalogQuery, RecordInfoQuery, UnknownMessage

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, engine_and_platform
from .test_device_filters import CHANNEL, OTHER, RECORDS

NVR = "34020000001180000007"
RECORDS_URL = f"/api/video/gb28181/devices/{NVR}/records"
SUBSCRIPTIONS_URL = f"/api/video/gb28181/devices/{NVR}/subscriptions"
WINDOW = ("2024-03-01T10:00:00", "2024-03-01T12:00:00")


@attrs.frozen
class Setup:
    engine: VideoEngine
    platform: Gb28181Platform
    device: SimulatedDevice
    client: httpx.AsyncClient


@asynccontextmanager
async def nvr_setup() -> AsyncIterator[Setup]:
    """An engine, a platform, the simulated NVR (channels CHANNEL and OTHER, `RECORDS`) online with its catalog,
    and a client of the platform's REST routes."""
    async with (
        engine_and_platform(subscribe_events=()) as (engine, platform),
        trio.open_nursery() as nursery,
    ):
        settings = DeviceSettings(
            server_host="127.0.0.1",
            server_port=platform.sip_port,
            server_id=PLATFORM_ID,
            domain=DOMAIN,
            device_id=NVR,
            password=PASSWORD,
            kind="nvr",
            channels=2,
            channel_ids=(CHANNEL, OTHER),
            records=RECORDS,
            catalog_page_size=2,
        )
        device = SimulatedDevice(settings, rng=random.Random(8), report=lambda _line: None)
        await nursery.start(device.run)
        await device.wait_registered()
        await wait_until(lambda: (record := platform.device(NVR)) is not None and len(record.channels) == 2)
        app = Starlette(routes=gb28181_routes(platform))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Setup(engine=engine, platform=platform, device=device, client=client)
        nursery.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition that has no event of its own (under the caller's fail_after)."""
    while not predicate():  # noqa: ASYNC110 - platform and simulator state without an event
        await trio.sleep(0.01)


async def next_event(events: Any, match: Callable[[Any], bool]) -> Any:
    async for event in events:
        if match(event):
            return event
    raise AssertionError("the event channel closed")


def names(items: Any) -> list[str | None]:
    return sorted(str(item.name) for item in items)


def sent_record_queries(device: SimulatedDevice) -> list[RecordInfoQuery]:
    return [m for m in device.received if isinstance(m, RecordInfoQuery)]


def subscription_query(device: SimulatedDevice, event: str) -> Any:
    """The body of the device's live subscription to `event` (what it filters with)."""
    boot = device._boot
    assert boot is not None
    return boot.subscriptions[event].query


# ---- RecordInfo ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ["inside", "inside-manual", "straddles-end", "straddles-start"]),
        ({"record_type": "alarm"}, ["inside", "straddles-end"]),
        ({"record_type": "MANUAL"}, ["inside-manual"]),
        ({"secrecy": 1}, ["secret"]),
        ({"file_path": "/rec/inside.mp4"}, ["inside"]),
        ({"address": "Gate"}, ["inside-manual", "straddles-start"]),
        ({"recorder_id": CHANNEL}, ["inside"]),
        ({"record_type": "time", "address": "Gate 1"}, ["straddles-start"]),
    ],
)
def test_record_fields_are_the_query_fields(fields: dict[str, Any], expected: list[str]) -> None:
    optional: dict[str, Any] = dict(record_fields(**fields))
    query = RecordInfoQuery(sn=1, device_id=CHANNEL, start_time=WINDOW[0], end_time=WINDOW[1], **optional)
    assert names(records_matching(RECORDS, query, CHANNEL)) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"record_type": "motion"},
        {"record_type": ""},
        {"secrecy": 2},
        {"secrecy": True},
        {"secrecy": "1"},
        {"file_path": ""},
        {"file_path": "   "},
        {"address": "Gate\n1"},
        {"address": "x" * 257},
        {"recorder_id": "x" * 65},
        {"recorder_id": 34020000001310000001},
    ],
)
def test_bad_record_fields_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        record_fields(**fields)


@pytest.mark.trio
async def test_record_filters_reach_the_simulator_and_narrow_the_answer() -> None:
    with trio.fail_after(30):
        async with nvr_setup() as s:
            found = await s.platform.query_records(NVR, CHANNEL, *WINDOW, record_type="alarm")
            assert names(found) == ["inside", "straddles-end"]
            query = sent_record_queries(s.device)[-1]
            assert (query.type, query.secrecy, query.device_id) == ("alarm", "0", CHANNEL)  # Secrecy 0 by default
            found = await s.platform.query_records(
                NVR, CHANNEL, *WINDOW, record_type="time", secrecy=1, file_path=None, address=None
            )
            assert names(found) == ["secret"]
            found = await s.platform.query_records(NVR, CHANNEL, *WINDOW, address="Gate", recorder_id=None)
            assert names(found) == ["inside-manual", "straddles-start"]  # devices match part of an address
            found = await s.platform.query_records(
                NVR, CHANNEL, *WINDOW, file_path="/rec/inside.mp4", recorder_id=CHANNEL
            )
            assert names(found) == ["inside"]
            query = sent_record_queries(s.device)[-1]
            assert (query.file_path, query.recorder_id, query.address, query.type) == (
                "/rec/inside.mp4",
                CHANNEL,
                None,
                "all",
            )
            assert await s.platform.query_records(NVR, CHANNEL, *WINDOW, recorder_id="nobody") == ()

            # A bad filter is refused before anything is sent.
            before = len(sent_record_queries(s.device))
            with pytest.raises(LocalProtocolError, match="record type"):
                await s.platform.query_records(NVR, CHANNEL, *WINDOW, record_type="motion")
            with pytest.raises(LocalProtocolError, match="secrecy"):
                await s.platform.query_records(NVR, CHANNEL, *WINDOW, secrecy=3)
            assert len(sent_record_queries(s.device)) == before


@pytest.mark.trio
async def test_record_filters_over_rest() -> None:
    with trio.fail_after(30):
        async with nvr_setup() as s:
            window = {
                "channel_id": CHANNEL,
                "start": datetime.datetime.fromisoformat(WINDOW[0]).astimezone().isoformat(),
                "end": datetime.datetime.fromisoformat(WINDOW[1]).astimezone().isoformat(),
            }

            async def listed(**params: str) -> list[str]:
                response = await s.client.get(RECORDS_URL, params={**window, **params})
                assert response.status_code == 200, response.text
                return sorted(r["name"] for r in response.json()["records"])

            assert await listed(type="alarm") == ["inside", "straddles-end"]
            assert await listed(type="manual", secrecy="0") == ["inside-manual"]
            assert await listed(secrecy="1") == ["secret"]
            assert await listed(file_path="/rec/inside.mp4") == ["inside"]
            assert await listed(address="Gate 2") == ["inside-manual"]
            assert await listed(recorder_id=CHANNEL) == ["inside"]
            by_file = await s.client.get(RECORDS_URL, params={**window, "file_path": "/rec/inside.mp4"})
            assert by_file.json()["records"][0]["recorder_id"] == CHANNEL

            before = len(sent_record_queries(s.device))
            for bad in (
                {"type": "motion"},
                {"secrecy": "2"},
                {"secrecy": "yes"},
                {"file_path": ""},
                {"address": "x" * 300},
                {"recorder_id": "a\tb"},
            ):
                response = await s.client.get(RECORDS_URL, params={**window, **bad})
                assert response.status_code == 400, bad
                assert next(iter(bad)) in response.text.replace("record type", "type")
            assert len(sent_record_queries(s.device)) == before


def test_record_filters_are_documented() -> None:
    operation = OPENAPI_PATHS["/api/video/gb28181/devices/{device_id}/records"]["get"]
    query = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert set(query) == {"channel_id", "start", "end", "type", "secrecy", "file_path", "address", "recorder_id"}
    assert query["type"]["schema"]["enum"] == ["all", "time", "alarm", "manual"]
    assert query["secrecy"]["schema"]["enum"] == [0, 1]
    assert not any(query[name]["required"] for name in ("type", "secrecy", "file_path", "address", "recorder_id"))


# ---- subscriptions ------------------------------------------------------------------------------------------------


def test_subscription_filter_validates_and_normalises() -> None:
    assert subscription_filter("Alarm") == SubscriptionFilter()
    assert subscription_filter("MobilePosition") == SubscriptionFilter()
    f = subscription_filter(
        "Alarm",
        channel_id=CHANNEL,
        start_alarm_priority=1,
        end_alarm_priority=3,
        alarm_method=25,
        alarm_type=2,
        start_time="2024-03-01T10:00:00.250",
        end_time=datetime.datetime(2024, 3, 1, 11),
    )
    assert attrs.asdict(f) == {
        "channel_id": CHANNEL,
        "start_alarm_priority": 1,
        "end_alarm_priority": 3,
        "alarm_method": "25",
        "alarm_type": "2",
        "start_time": "2024-03-01T10:00:00",
        "end_time": "2024-03-01T11:00:00",
    }
    assert subscription_filter("Alarm", alarm_method="0").alarm_method is None  # 0: every method
    aware = datetime.datetime(2024, 3, 1, 2, tzinfo=datetime.UTC)
    assert (
        subscription_filter("Catalog", start_time=aware).start_time
        == aware.astimezone().replace(tzinfo=None).isoformat()
    )
    json = f.to_json()
    assert json["start_time"] == datetime.datetime(2024, 3, 1, 10).astimezone().isoformat()
    assert json["alarm_method"] == "25"


@pytest.mark.parametrize(
    ("event", "fields", "message"),
    [
        ("Alarm", {"start_alarm_priority": 0}, "start_alarm_priority"),
        ("Alarm", {"end_alarm_priority": 5}, "end_alarm_priority"),
        ("Alarm", {"start_alarm_priority": True}, "start_alarm_priority"),
        ("Alarm", {"start_alarm_priority": 3, "end_alarm_priority": 2}, "start_alarm_priority"),
        ("Alarm", {"alarm_method": "8"}, "alarm_method"),
        ("Alarm", {"alarm_method": "11"}, "alarm_method"),
        ("Alarm", {"alarm_method": "05"}, "alarm_method"),
        ("Alarm", {"alarm_method": ""}, "alarm_method"),
        ("Alarm", {"alarm_type": ""}, "alarm_type"),
        ("Alarm", {"alarm_type": "x" * 33}, "alarm_type"),
        ("Alarm", {"start_time": "yesterday"}, "start_time"),
        ("Alarm", {"start_time": "2024-03-01T10:00:00", "end_time": "2024-03-01T10:00:00"}, "end_time"),
        ("Alarm", {"channel_id": "1234"}, "channel_id"),
        ("Catalog", {"alarm_method": "5"}, "alarm subscriptions only"),
        ("Catalog", {"start_alarm_priority": 1}, "alarm subscriptions only"),
        ("MobilePosition", {"channel_id": CHANNEL}, "alarm and catalog subscriptions only"),
        ("MobilePosition", {"start_time": "2024-03-01T10:00:00"}, "alarm and catalog subscriptions only"),
    ],
)
def test_bad_subscription_filters_are_refused(event: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        subscription_filter(event, **fields)


def rfc3339(when: datetime.datetime) -> str:
    return when.astimezone().isoformat(timespec="seconds")


@pytest.mark.trio
async def test_alarm_subscription_with_filters_end_to_end() -> None:
    with trio.fail_after(40):
        async with nvr_setup() as s:
            events = s.platform.events()
            feed = s.engine.events()
            now = datetime.datetime.now().replace(microsecond=0)
            body = {
                "kind": "alarm",
                "channel_id": CHANNEL,
                "start_alarm_priority": 1,
                "end_alarm_priority": 2,
                "alarm_method": "25",
                "alarm_type": 2,
                "start_time": rfc3339(now - datetime.timedelta(hours=1)),
                "end_time": rfc3339(now + datetime.timedelta(hours=1)),
            }
            created = await s.client.post(SUBSCRIPTIONS_URL, json=body)
            assert created.status_code == 201, created.text
            answer = created.json()
            assert (answer["kind"], answer["active"], answer["channel_id"]) == ("alarm", True, CHANNEL)
            assert (answer["start_alarm_priority"], answer["end_alarm_priority"]) == (1, 2)
            assert (answer["alarm_method"], answer["alarm_type"]) == ("25", "2")
            assert (answer["start_time"], answer["end_time"]) == (body["start_time"], body["end_time"])
            listed = (await s.client.get(SUBSCRIPTIONS_URL)).json()["subscriptions"]
            assert [(x["kind"], x["alarm_method"], x["channel_id"]) for x in listed] == [("alarm", "25", CHANNEL)]

            # The SUBSCRIBE body (A.2.4.6), in the standard's element order.
            expected_extra = (
                ("StartAlarmPriority", "1"),
                ("EndAlarmPriority", "2"),
                ("AlarmMethod", "25"),
                ("AlarmType", "2"),
                ("StartAlarmTime", (now - datetime.timedelta(hours=1)).isoformat()),
                ("EndAlarmTime", (now + datetime.timedelta(hours=1)).isoformat()),
            )
            query = subscription_query(s.device, "Alarm")
            assert isinstance(query, UnknownMessage)
            assert (query.root_tag, query.command_type, query.device_id) == ("Query", "Alarm", CHANNEL)
            assert query.extra == expected_extra

            # Only what was asked for is notified; the rest is withheld by the device.
            assert await s.device.raise_alarm(CHANNEL, priority=2, method=5, alarm_type="2") == 200
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert (event.alarm.alarm_priority, event.alarm.alarm_method) == ("2", "5")
            assert await s.device.raise_alarm(CHANNEL, priority=3, method=5, alarm_type="2") is None
            assert await s.device.raise_alarm(CHANNEL, priority=1, method=1, alarm_type="2") is None
            assert await s.device.raise_alarm(CHANNEL, priority=1, method=2, alarm_type="3") is None
            assert await s.device.raise_alarm(OTHER, priority=1, method=2, alarm_type="2") is None
            assert len(s.device.withheld) == 4
            assert await s.device.raise_alarm(CHANNEL, priority=1, method=2, alarm_type="2") == 200
            event = await next_event(events, lambda e: isinstance(e, AlarmReceived))
            assert (event.alarm.alarm_priority, event.alarm.alarm_method) == ("1", "2")  # none withheld came

            # Platform events are on the engine's feed too, about no stream.
            on_feed = await next_event(feed, lambda e: isinstance(e, AlarmReceived))
            assert isinstance(on_feed, Gb28181Event)
            assert (on_feed.stream_id, on_feed.device_id, on_feed.alarm.alarm_priority) == ("", NVR, "2")
            assert event_json(on_feed, 1_700_000_000.0)["alarm"]["alarm_priority"] == "2"

            # A reboot: the renewed subscription asks for the same.
            before = len(s.device.subscribe_log)
            s.device.restart()
            await s.device.wait_state(
                lambda d: ("Alarm", False) in d.subscribe_log[before:] and "Alarm" in d.subscribed()
            )
            assert subscription_query(s.device, "Alarm").extra == expected_extra
            withheld = len(s.device.withheld)
            assert await s.device.raise_alarm(CHANNEL, priority=4, method=5, alarm_type="2") is None
            assert len(s.device.withheld) == withheld + 1

            # Subscribing again replaces the filters (an in-dialog refresh with the new body).
            info = await s.platform.subscribe(NVR, "Alarm", start_alarm_priority=3)
            assert info.filters == SubscriptionFilter(start_alarm_priority=3)
            query = subscription_query(s.device, "Alarm")
            assert (query.device_id, query.extra) == (
                NVR,
                (("StartAlarmPriority", "3"), ("EndAlarmPriority", "4"), ("AlarmMethod", "0")),
            )
            assert await s.device.raise_alarm(OTHER, priority=4, method=1) == 200


@pytest.mark.trio
async def test_catalog_subscription_for_one_channel_end_to_end() -> None:
    with trio.fail_after(30):
        async with nvr_setup() as s:
            events = s.platform.events()
            created = await s.client.post(SUBSCRIPTIONS_URL, json={"kind": "catalog", "channel_id": OTHER})
            assert created.status_code == 201, created.text
            assert created.json()["channel_id"] == OTHER
            query = subscription_query(s.device, "Catalog")
            assert isinstance(query, CatalogQuery)
            assert query.device_id == OTHER
            await next_event(events, lambda e: isinstance(e, CatalogUpdated))  # the first NOTIFY: OTHER only
            assert await s.device.set_channel_status(CHANNEL, "OFF") is None  # not asked for: withheld
            assert await s.device.set_channel_status(OTHER, "OFF") == 200
            event = await next_event(events, lambda e: isinstance(e, CatalogUpdated))
            status = {c.channel_id: c.status for c in event.channels}
            assert status == {CHANNEL: "ON", OTHER: "OFF"}
            assert len(s.device.withheld) == 1


@pytest.mark.trio
async def test_bad_subscription_filters_over_rest_are_400_with_a_message() -> None:
    with trio.fail_after(30):
        async with nvr_setup() as s:
            bad_bodies: list[tuple[dict[str, Any], str]] = [
                ({"kind": "alarm", "start_alarm_priority": 5}, "start_alarm_priority"),
                ({"kind": "alarm", "end_alarm_priority": "2"}, "end_alarm_priority"),
                ({"kind": "alarm", "start_alarm_priority": 4, "end_alarm_priority": 1}, "start_alarm_priority"),
                ({"kind": "alarm", "alarm_method": "9"}, "alarm_method"),
                ({"kind": "alarm", "alarm_method": ["2"]}, "alarm_method"),
                ({"kind": "alarm", "alarm_type": ""}, "alarm_type"),
                ({"kind": "alarm", "start_time": "yesterday"}, "start_time"),
                ({"kind": "alarm", "start_time": "2024-03-02T00:00:00Z", "end_time": "2024-03-01T00:00:00Z"}, "end"),
                ({"kind": "alarm", "channel_id": "12"}, "channel_id"),
                ({"kind": "catalog", "alarm_type": "2"}, "alarm subscriptions only"),
                ({"kind": "mobile_position", "channel_id": OTHER}, "alarm and catalog subscriptions only"),
                ({"kind": "alarm", "priority": 1}, "unknown fields"),
            ]
            for body, message in bad_bodies:
                response = await s.client.post(SUBSCRIPTIONS_URL, json=body)
                assert response.status_code == 400, body
                assert message in response.text, (body, response.text)
            unknown_channel = {"kind": "alarm", "channel_id": "34020000001310000099"}
            assert (await s.client.post(SUBSCRIPTIONS_URL, json=unknown_channel)).status_code == 404
            assert s.device.subscribe_log == []
            with pytest.raises(LocalProtocolError):
                await s.platform.subscribe(NVR, "Alarm", alarm_method="abc")
            assert s.device.subscribe_log == []


def test_subscription_filters_are_documented() -> None:
    post = OPENAPI_PATHS["/api/video/gb28181/devices/{device_id}/subscriptions"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    filters = set(attrs.fields_dict(SubscriptionFilter))
    assert set(body) == {"kind", "expires", "interval", *filters}
    answer = post["responses"]["201"]["content"]["application/json"]["schema"]["properties"]
    assert filters <= set(answer)
