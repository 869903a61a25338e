"""What a platform's query or subscription asks the simulated device for (GB/T 28181-2016 A.2.4, 9.11).

Strategy: each query body is read once into a small frozen filter (or, for RecordInfo, applied at once), so the
device answers and notifies exactly what was asked, as a device under conformance test must. Values stay text
like the MANSCDP records; times are local ISO 8601 without a zone (A.2.1) and compared as naive datetimes
(a zone some peer adds anyway is dropped, never converted). A bound that cannot be read restricts nothing.

* RecordInfo (A.2.4, file search): records of the queried channel that overlap [StartTime, EndTime), half-open
  so a file that ends when the window starts is not listed; `Type` all (default), time, alarm or manual;
  `Secrecy`, `FilePath`, `RecorderID` compared exactly when present; `Address` matched as a substring (the
  standard allows an incomplete address). Items are returned whole, not clipped to the window: a record item
  describes one file (its FilePath and FileSize belong to the whole file), and a platform playing back the overlap
  asks for its own `t=` range anyway; clipping would also give two different "files" for one file to two
  overlapping queries.
* Alarm query or subscription: priority between StartAlarmPriority and EndAlarmPriority (1 highest .. 4; 0 on
  either side = no bound), AlarmMethod a set of method digits ("0" or absent = all; "12" = phone or device),
  AlarmType compared exactly ("all" or absent = all), AlarmTime within [StartAlarmTime, EndAlarmTime] (also read
  as StartTime/EndTime, as some platforms write), and a DeviceID naming one of our channels narrows to that
  channel's alarms (the device's own ID means all).
* Catalog subscription: a DeviceID naming one of our channels narrows every NOTIFY to that channel's items (the
  device's ID, or an ID that is not ours, means the whole catalog); StartTime/EndTime bound when a change is
  notified (the 2016 incremental window). The first NOTIFY, the catalog itself, ignores the time window.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence

import attrs

from fluxkit.protocols.manscdp import Alarm, CatalogNotify, CatalogQuery, ManscdpMessage, RecordInfoQuery, RecordItem

__all__ = ["AlarmFilter", "CatalogFilter", "local_when", "records_matching"]

_RECORD_TYPES = frozenset({"time", "alarm", "manual"})  # and "all" (A.2.4: 录像产生类型)
_ALL = frozenset({"", "all"})


def local_when(text: str | None) -> datetime.datetime | None:
    """A MANSCDP time (local ISO 8601, A.2.1) as a naive datetime; None when absent or unreadable."""
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.strip()).replace(tzinfo=None)
    except ValueError:
        return None


def _value(message: ManscdpMessage, *names: str) -> str:
    """The first of `names` among the message's unmodelled elements (`extra`), stripped; "" when absent."""
    for key, text in message.extra:
        if key in names:
            return text.strip()
    return ""


def records_matching(records: Iterable[RecordItem], query: RecordInfoQuery, channel: str) -> list[RecordItem]:
    """The configured `records` a RecordInfo query for `channel` asks for (see the module docstring).

    An item with an empty `device_id` belongs to every channel and is returned with `channel` filled in.
    """
    start, end = local_when(query.start_time), local_when(query.end_time)
    kind = (query.type or "all").strip().lower()
    secrecy = (query.secrecy or "").strip()
    file_path = (query.file_path or "").strip()
    address = (query.address or "").strip()
    recorder = (query.recorder_id or "").strip()
    out = []
    for item in records:
        if item.device_id and item.device_id != channel:
            continue
        item_start, item_end = local_when(item.start_time), local_when(item.end_time)
        if start is not None and item_end is not None and item_end <= start:
            continue
        if end is not None and item_start is not None and item_start >= end:
            continue
        if kind != "all" and (item.type or "").strip().lower() != kind:
            continue  # an unknown Type (neither all nor one of _RECORD_TYPES) matches no record
        if secrecy and (item.secrecy or "0").strip() != secrecy:
            continue
        if file_path and (item.file_path or "").strip() != file_path:
            continue
        if address and address not in (item.address or ""):
            continue
        if recorder and (item.recorder_id or "").strip() != recorder:
            continue
        out.append(item if item.device_id else attrs.evolve(item, device_id=channel))
    return out


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        return 0
    return value if 1 <= value <= 4 else 0


@attrs.frozen(kw_only=True, slots=True)
class AlarmFilter:
    """The alarms an Alarm query or subscription asks for (see the module docstring).

    Attributes:
        lowest, highest: the priority range, inclusive (1 highest .. 4 lowest).
        methods: the AlarmMethod digits asked for (empty: every method).
        alarm_type: the `<Info><AlarmType>` asked for (None: every type).
        start, end: the AlarmTime window, inclusive (None: unbounded).
        channel: the one channel whose alarms are asked for (None: the device and all its channels).
    """

    lowest: int = 1
    highest: int = 4
    methods: frozenset[str] = frozenset()
    alarm_type: str | None = None
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None
    channel: str | None = None

    @classmethod
    def from_query(cls, query: ManscdpMessage | None, *, channels: Sequence[str] = ()) -> AlarmFilter:
        """Read a `<Query><CmdType>Alarm</CmdType>` body (an `UnknownMessage`); None asks for everything."""
        if query is None:
            return cls()
        low = _priority(_value(query, "StartAlarmPriority")) or 1
        high = _priority(_value(query, "EndAlarmPriority")) or 4
        method = _value(query, "AlarmMethod")
        methods = frozenset(c for c in method if c in "1234567")  # "0" (all) and separators fall away
        alarm_type = _value(query, "AlarmType")
        return cls(
            lowest=min(low, high),
            highest=max(low, high),
            methods=methods,
            alarm_type=None if alarm_type.lower() in _ALL else alarm_type,
            start=local_when(_value(query, "StartAlarmTime", "StartTime")),
            end=local_when(_value(query, "EndAlarmTime", "EndTime")),
            channel=query.device_id if query.device_id in channels else None,
        )

    def matches(self, alarm: Alarm) -> bool:
        """Whether `alarm` is asked for. A field the filter bounds but the alarm lacks (or garbles) fails."""
        if self.channel is not None and alarm.device_id != self.channel:
            return False
        if (self.lowest, self.highest) != (1, 4):
            priority = _priority((alarm.alarm_priority or "").strip())
            if not self.lowest <= priority <= self.highest:
                return False
        if self.methods and (alarm.alarm_method or "").strip() not in self.methods:
            return False
        if self.alarm_type is not None and (alarm.alarm_type or "").strip() != self.alarm_type:
            return False
        if self.start is not None or self.end is not None:
            when = local_when(alarm.alarm_time)
            if when is None:
                return False
            if (self.start is not None and when < self.start) or (self.end is not None and when > self.end):
                return False
        return True


@attrs.frozen(kw_only=True, slots=True)
class CatalogFilter:
    """The catalog changes a Catalog subscription asks for (see the module docstring).

    Attributes:
        channel: the one channel asked for (None: the whole catalog).
        start, end: when changes are notified, local time, inclusive (None: unbounded).
    """

    channel: str | None = None
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None

    @classmethod
    def from_query(cls, query: ManscdpMessage | None, *, channels: Sequence[str] = ()) -> CatalogFilter:
        """Read the SUBSCRIBE's `<Query><CmdType>Catalog</CmdType>` body; None (or another body) asks for all."""
        if not isinstance(query, CatalogQuery):
            return cls()
        return cls(
            channel=query.device_id if query.device_id in channels else None,
            start=local_when(query.start_time),
            end=local_when(query.end_time),
        )

    def narrow(self, notify: CatalogNotify, now: datetime.datetime | None = None) -> CatalogNotify | None:
        """`notify` with only the items asked for, or None when none is left (nothing to send).

        Args:
            notify: one NOTIFY body (`sum_num` is recounted when items are dropped).
            now: local time of a change, checked against the window; None for the first, whole-catalog NOTIFY.
        """
        if now is not None and (
            (self.start is not None and now < self.start) or (self.end is not None and now > self.end)
        ):
            return None
        if self.channel is None:
            return notify
        items = tuple(item for item in notify.items if item.device_id == self.channel)
        if not items:
            return None
        return attrs.evolve(notify, items=items, sum_num=len(items))
