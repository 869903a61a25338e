"""The simulator answers and notifies only what a query or subscription asks for (GB/T 28181-2016 A.2.4, 9.11).

RecordInfo: time window (overlap, items not clipped), Type, Secrecy, FilePath, Address, RecorderID, multi-part.
Alarm subscriptions and queries: priority range, methods, AlarmType, time window, channel. Catalog subscriptions:
one channel, and a time window for changes. The window and multi-part answers go through fluxkit's own platform;
the fields the platform's API does not set go through the in-test `MiniPlatform` of `test_device.py`.
"""

from __future__ import annotations

import datetime
import random

import pytest
import trio

from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.gb28181.device._filters import AlarmFilter, CatalogFilter, records_matching
from fluxkit.protocols.manscdp import (
    Alarm,
    CatalogItem,
    CatalogNotify,
    CatalogQuery,
    RecordInfoQuery,
    RecordInfoResponse,
    RecordItem,
    UnknownMessage,
)

from .conftest import DOMAIN, PASSWORD, PLATFORM_ID, running_platform
from .test_device import DEVICE_ID, MiniPlatform, _boot

CHANNEL = "34020000001310000001"
OTHER = "34020000001310000002"


def record(name: str, start: str, end: str, **fields: str) -> RecordItem:
    fields.setdefault("device_id", CHANNEL)
    return RecordItem(name=name, start_time=f"2024-03-01T{start}", end_time=f"2024-03-01T{end}", **fields)


RECORDS = (
    record("before", "08:00:00", "09:00:00", type="time"),
    record("touching", "09:00:00", "10:00:00", type="time"),  # ends when the window starts: not listed
    record("straddles-start", "09:30:00", "10:30:00", type="time", address="Gate 1 North"),
    record("inside", "11:00:00", "11:10:00", type="alarm", file_path="/rec/inside.mp4", recorder_id=CHANNEL),
    record("inside-manual", "11:20:00", "11:30:00", type="manual", address="Gate 2"),
    record("secret", "11:40:00", "11:50:00", type="time", secrecy="1"),
    record("straddles-end", "11:55:00", "12:30:00", type="alarm"),
    record("after", "12:00:00", "13:00:00", type="time"),  # starts when the window ends: not listed
    record("other-channel", "11:00:00", "11:05:00", device_id=OTHER),
    record("every-channel", "23:00:00", "23:30:00", device_id=""),  # no DeviceID: any channel's
)


def query(**fields: str) -> RecordInfoQuery:
    base = {"start_time": "2024-03-01T10:00:00", "end_time": "2024-03-01T12:00:00"}
    base.update(fields)
    return RecordInfoQuery(sn=1, device_id=CHANNEL, **base)  # type: ignore[arg-type]


def names(items: list[RecordItem]) -> list[str | None]:
    return [i.name for i in items]


# ---- the filters, directly --------------------------------------------------------------------------------------


def test_records_overlap_the_window_and_stay_whole() -> None:
    found = records_matching(RECORDS, query(), CHANNEL)
    assert names(found) == ["straddles-start", "inside", "inside-manual", "straddles-end"]  # Secrecy 0 by default
    assert (found[0].start_time, found[0].end_time) == ("2024-03-01T09:30:00", "2024-03-01T10:30:00")  # not clipped
    assert {i.device_id for i in found} == {CHANNEL}
    everything = records_matching(RECORDS, query(start_time="", end_time="", secrecy=""), CHANNEL)
    assert len(everything) == len(RECORDS) - 1  # no window, no secrecy: all of this channel's
    assert (everything[-1].name, everything[-1].device_id) == ("every-channel", CHANNEL)
    assert names(records_matching(RECORDS, query(start_time="garbage"), CHANNEL))[0] == "before"  # unread: open


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "all"}, ["straddles-start", "inside", "inside-manual", "straddles-end"]),
        ({"type": "alarm"}, ["inside", "straddles-end"]),
        ({"type": "TIME"}, ["straddles-start"]),
        ({"type": "manual"}, ["inside-manual"]),
        ({"type": "motion"}, []),
        ({"secrecy": "1"}, ["secret"]),
        ({"file_path": "/rec/inside.mp4"}, ["inside"]),
        ({"address": "Gate"}, ["straddles-start", "inside-manual"]),  # an incomplete address matches
        ({"address": "Gate 2"}, ["inside-manual"]),
        ({"recorder_id": CHANNEL}, ["inside"]),
    ],
)
def test_records_honour_type_secrecy_path_address_recorder(fields: dict[str, str], expected: list[str]) -> None:
    assert names(records_matching(RECORDS, query(**fields), CHANNEL)) == expected


def alarm(priority: str = "1", method: str = "5", alarm_type: str | None = "2", **fields: str) -> Alarm:
    return Alarm(
        sn=1,
        device_id=fields.get("device_id", CHANNEL),
        alarm_priority=priority,
        alarm_method=method,
        alarm_time=fields.get("time", "2024-03-01T10:00:00"),
        info=() if alarm_type is None else (("AlarmType", alarm_type),),
    )


def alarm_query(device_id: str = DEVICE_ID, **fields: str) -> UnknownMessage:
    return UnknownMessage(root="Query", cmd_type="Alarm", sn=9, device_id=device_id, extra=tuple(fields.items()))


def test_alarm_filter() -> None:
    channels = (CHANNEL, OTHER)
    everything = AlarmFilter.from_query(
        alarm_query(StartAlarmPriority="0", EndAlarmPriority="0", AlarmMethod="0", AlarmType="all"), channels=channels
    )
    assert everything == AlarmFilter()
    assert everything.matches(alarm(priority="", method="", alarm_type=None))
    wanted = AlarmFilter.from_query(
        alarm_query(
            CHANNEL,
            StartAlarmPriority="2",
            EndAlarmPriority="1",  # reversed: still 1..2
            AlarmMethod="25",  # device or video alarms
            AlarmType="2",
            StartAlarmTime="2024-03-01T09:00:00",
            EndAlarmTime="2024-03-01T11:00:00",
        ),
        channels=channels,
    )
    assert (wanted.lowest, wanted.highest, wanted.methods, wanted.channel) == (1, 2, frozenset("25"), CHANNEL)
    assert wanted.matches(alarm())
    assert wanted.matches(alarm(priority="2", method="2"))
    assert not wanted.matches(alarm(priority="3"))
    assert not wanted.matches(alarm(priority="x"))
    assert not wanted.matches(alarm(method="1"))
    assert not wanted.matches(alarm(alarm_type="3"))
    assert not wanted.matches(alarm(alarm_type=None))
    assert not wanted.matches(alarm(device_id=OTHER))
    assert wanted.matches(alarm(time="2024-03-01T11:00:00"))  # the window is inclusive
    assert not wanted.matches(alarm(time="2024-03-01T11:00:01"))
    assert not wanted.matches(alarm(time="yesterday"))
    also_start_time = AlarmFilter.from_query(alarm_query(StartTime="2024-03-01T12:00:00"), channels=channels)
    assert not also_start_time.matches(alarm())
    assert AlarmFilter.from_query(alarm_query(), channels=channels).channel is None  # the device itself: all


def test_catalog_filter() -> None:
    items = (CatalogItem(device_id=CHANNEL, status="ON"), CatalogItem(device_id=OTHER, status="OFF"))
    notify = CatalogNotify(sn=3, device_id=DEVICE_ID, sum_num=2, items=items)
    assert CatalogFilter.from_query(None).narrow(notify) is notify
    assert CatalogFilter.from_query(CatalogQuery(sn=1, device_id=DEVICE_ID), channels=(CHANNEL, OTHER)) == (
        CatalogFilter()
    )
    one = CatalogFilter.from_query(CatalogQuery(sn=1, device_id=OTHER), channels=(CHANNEL, OTHER))
    narrowed = one.narrow(notify)
    assert narrowed is not None
    assert (narrowed.sum_num, narrowed.items) == (1, items[1:])
    assert one.narrow(CatalogNotify(sn=3, device_id=DEVICE_ID, sum_num=1, items=items[:1])) is None
    window = CatalogFilter.from_query(
        CatalogQuery(sn=1, device_id=DEVICE_ID, start_time="2024-03-01T00:00:00", end_time="2024-03-02T00:00:00")
    )
    assert window.narrow(notify, datetime.datetime(2024, 3, 1, 12)) is notify
    assert window.narrow(notify, datetime.datetime(2024, 3, 2, 0, 0, 1)) is None
    assert window.narrow(notify) is notify  # the first NOTIFY (no change time) is not windowed


# ---- RecordInfo through fluxkit's own platform ------------------------------------------------------------------


@pytest.mark.trio
async def test_record_window_through_the_platform_in_parts() -> None:
    with trio.fail_after(20):
        async with running_platform() as platform, trio.open_nursery() as nursery:
            settings = DeviceSettings(
                server_host="127.0.0.1",
                server_port=platform.sip_port,
                server_id=PLATFORM_ID,
                domain=DOMAIN,
                device_id=DEVICE_ID,
                password=PASSWORD,
                channel_ids=(CHANNEL, OTHER),
                channels=2,
                kind="nvr",
                records=RECORDS,
                catalog_page_size=2,  # four records in the window: two parts
            )
            device = SimulatedDevice(settings, rng=random.Random(3), report=lambda _line: None)
            await nursery.start(device.run)
            await device.wait_registered()
            found = await platform.query_records(DEVICE_ID, CHANNEL, "2024-03-01T10:00:00", "2024-03-01T12:00:00")
            by_name = {item.name: item for item in found}
            assert set(by_name) == {"straddles-start", "inside", "inside-manual", "straddles-end"}
            assert by_name["straddles-end"].end_time == "2024-03-01T12:30:00"  # whole, not clipped
            assert {item.device_id for item in found} == {CHANNEL}
            none = await platform.query_records(DEVICE_ID, CHANNEL, "2024-03-02T00:00:00", "2024-03-03T00:00:00")
            assert none == ()  # SumNum 0, no list
            other = await platform.query_records(DEVICE_ID, OTHER, "2024-03-01T10:00:00", "2024-03-01T23:59:59")
            assert [(item.name, item.device_id) for item in other] == [
                ("other-channel", OTHER),
                ("every-channel", OTHER),
            ]
            nursery.cancel_scope.cancel()


# ---- through the in-test platform: the query fields fluxkit's platform does not send ---------------------------


async def _nvr(nursery: trio.Nursery, platform: MiniPlatform) -> SimulatedDevice:
    device = await _boot(
        nursery,
        platform,
        channel_ids=(CHANNEL, OTHER),
        channels=2,
        kind="nvr",
        records=RECORDS,
        catalog_page_size=1,
    )
    await device.wait_registered()
    return device


@pytest.mark.trio
async def test_record_type_and_address_in_parts() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            await _nvr(nursery, platform)
            await platform.query(query(type="alarm"), target=CHANNEL)
            await platform.query(RecordInfoQuery(sn=2, device_id=CHANNEL, address="Gate", secrecy=None, type=None))

            def parts(sn: int) -> list[RecordInfoResponse]:
                return [m for m in platform.messages if isinstance(m, RecordInfoResponse) and m.sn == sn]

            await platform.wait_for(lambda: len(parts(1)) == 2 and len(parts(2)) == 2)
            assert {p.sum_num for p in parts(1)} == {2}
            assert sorted(str(i.name) for p in parts(1) for i in p.items) == ["inside", "straddles-end"]
            assert sorted(str(i.name) for p in parts(2) for i in p.items) == ["inside-manual", "straddles-start"]
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_alarm_subscription_notifies_only_what_it_asked_for() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _nvr(nursery, platform)
            wanted = alarm_query(CHANNEL, StartAlarmPriority="1", EndAlarmPriority="2", AlarmMethod="25", AlarmType="2")
            response, dialog = await platform.subscribe("Alarm", wanted)
            assert response.status_code == 200
            assert dialog is not None
            assert "Alarm" in device.subscribed()
            assert await device.raise_alarm(CHANNEL, priority=2, method=5, alarm_type="2") == 200
            assert await device.raise_alarm(CHANNEL, priority=3, method=5, alarm_type="2") is None  # priority
            assert await device.raise_alarm(CHANNEL, priority=1, method=1, alarm_type="2") is None  # method
            assert await device.raise_alarm(CHANNEL, priority=1, method=2, alarm_type="3") is None  # type
            assert await device.raise_alarm(OTHER, priority=1, method=2, alarm_type="2") is None  # channel
            assert await device.raise_alarm(CHANNEL, priority=1, method=2, alarm_type="2") == 200
            sent = [m for m in platform.notifies() if isinstance(m, Alarm)]
            assert [(a.alarm_priority, a.alarm_method) for a in sent] == [("2", "5"), ("1", "2")]
            assert len(device.withheld) == 4
            assert not any(isinstance(m, Alarm) for m in platform.messages)  # withheld, not sent as MESSAGEs
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_alarm_query_answers_the_matching_alarms_with_its_sn() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _nvr(nursery, platform)
            for priority, method in ((1, 5), (2, 2), (3, 5), (4, 6)):  # no subscription: each goes as a MESSAGE
                assert await device.raise_alarm(CHANNEL, priority=priority, method=method) == 200
            assert len(device.alarm_log) == 4
            now = datetime.datetime.now()
            window = {
                "StartAlarmTime": (now - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "EndAlarmTime": (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            }
            await platform.query(  # a window long past: nothing to answer
                UnknownMessage(
                    root="Query",
                    cmd_type="Alarm",
                    sn=10,
                    device_id=DEVICE_ID,
                    extra=(("StartAlarmTime", "2000-01-01T00:00:00"), ("EndAlarmTime", "2000-01-02T00:00:00")),
                )
            )
            await platform.query(
                alarm_query(StartAlarmPriority="2", EndAlarmPriority="4", AlarmMethod="56", **window), target=CHANNEL
            )

            def answers(sn: int) -> list[Alarm]:
                return [m for m in platform.messages if isinstance(m, Alarm) and m.sn == sn]

            await platform.wait_for(lambda: len(answers(9)) == 2)
            assert [(a.alarm_priority, a.alarm_method) for a in answers(9)] == [("3", "5"), ("4", "6")]
            assert answers(10) == []  # asked (and handled) before the other one
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_catalog_subscription_for_one_channel() -> None:
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            platform = MiniPlatform()
            device = await _nvr(nursery, platform)
            response, _ = await platform.subscribe("Catalog", CatalogQuery(sn=7, device_id=OTHER))
            assert response.status_code == 200

            def catalog_notifies() -> list[CatalogNotify]:
                return [m for m in platform.notifies() if isinstance(m, CatalogNotify)]

            await platform.wait_for(lambda: len(catalog_notifies()) == 1)
            first = catalog_notifies()[0]
            assert (first.sn, first.sum_num, [i.device_id for i in first.items]) == (7, 1, [OTHER])
            assert await device.set_channel_status(CHANNEL, "OFF") is None  # not asked for: withheld
            assert await device.set_channel_status(OTHER, "OFF") == 200
            notifies = catalog_notifies()
            assert len(notifies) == 2
            assert [(i.device_id, i.event) for i in notifies[1].items] == [(OTHER, "OFF")]
            assert not any(isinstance(m, CatalogNotify) for m in platform.messages)
            nursery.cancel_scope.cancel()
