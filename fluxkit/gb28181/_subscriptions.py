"""Event subscriptions of the GB28181 platform to its devices (GB/T 28181-2016 9.11, RFC 6665).

Strategy: each device has a wanted set of subscriptions, event name -> (Expires asked, MobilePosition
interval, filters): `subscribe_events` of the settings when it first registers, then changed at run time by
`subscribe` / `unsubscribe` (the REST routes). The set lives in memory for the platform's lifetime and survives
the device's restarts. Every time a device comes online (a new generation: first registration, restart,
re-registration after being offline) one task per wanted event SUBSCRIBEs (Catalog with a Catalog query body,
Alarm with an Alarm query body, MobilePosition with its `<Interval>`) and
refreshes in the dialog at 3/4 of the granted Expires (RFC 6665 §4.1.2.2); it ends when the generation moves
(restart, offline), and the next registration starts fresh ones. A refresh the device refuses with 481 (it
forgot the dialog) starts a new subscription; 405/489/501 mean the device does not do the event (§8.3.1).

`subscribe` replaces a running task (keeping its dialog, so the new Expires goes out as an in-dialog refresh)
and waits for the device's answer to the first SUBSCRIBE; a refusal drops the event from the wanted set.
`unsubscribe` stops the task and ends the dialog with `Expires: 0` (§4.1.2.3). A NOTIFY with
`Subscription-State: terminated` from the device forgets the dialog.

Filters (`SubscriptionFilter`, validated by `subscription_filter`) narrow what the device notifies; they go in the
query body of every SUBSCRIBE of the subscription, refreshes included (A.2.4, 9.11.1):
* Alarm (A.2.4.6 alarm query): `<DeviceID>` the channel (default the device: all of its alarms),
  `<StartAlarmPriority>`/`<EndAlarmPriority>` (1 highest .. 4; default 1 and 4), `<AlarmMethod>` (digits 1-7,
  combined as "25" = device or video alarm; default "0", every method), `<AlarmType>`, and
  `<StartAlarmTime>`/`<EndAlarmTime>` (local time, zone-less, A.2.1) when given.
* Catalog (A.2.4.3 catalog query): `<DeviceID>` the one channel whose changes are wanted (default the device),
  `<StartTime>`/`<EndTime>` (the 2016 incremental window) when given.
"""

from __future__ import annotations

import datetime
import functools
import logging
from typing import TYPE_CHECKING

import attrs
import trio

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.manscdp import CatalogQuery, ManscdpMessage, UnknownMessage
from fluxkit.protocols.sip import Dialog, SipRequest, SipResponse, SipUserAgent

from ._queries import filter_text
from ._settings import Gb28181Error, SubscriptionRefusedError

if TYPE_CHECKING:
    from ._platform import Gb28181Platform
    from ._registry import DeviceRecord
    from ._transport import Addr

__all__ = ["SUBSCRIPTION_KINDS", "SubscriptionFilter", "SubscriptionInfo", "Subscriptions", "subscription_filter"]

logger = logging.getLogger("fluxkit.gb28181")

_MANSCDP = "Application/MANSCDP+xml"

#: The subscribable events: REST kind -> GB28181 event name (the `Event` header and the query's CmdType).
SUBSCRIPTION_KINDS: dict[str, str] = {"catalog": "Catalog", "alarm": "Alarm", "mobile_position": "MobilePosition"}
_KIND_OF = {event: kind for kind, event in SUBSCRIPTION_KINDS.items()}
_ALARM_METHODS = "1234567"  # A.2.4.6: phone, device, SMS, GPS, video, device fault, other (0: all)
_MAX_ALARM_TYPE = 32  # characters of an AlarmType filter


def _local_time(value: object, name: str) -> datetime.datetime:
    """A filter time as a zone-less local datetime (GB28181 times are local, A.2.1); an aware one is converted."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise LocalProtocolError(f"{name} {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime.datetime):
        raise LocalProtocolError(f"{name} must be an ISO 8601 time or a datetime")
    if value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return value.replace(microsecond=0)


def _priority(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise LocalProtocolError(f"{name} must be an integer 1 (highest) .. 4")
    return value


@attrs.frozen(kw_only=True, slots=True)
class SubscriptionFilter:
    """What a subscription asks the device for (see the module docstring); None everywhere asks for everything.
    Build it with `subscription_filter`, which validates.

    Attributes:
        channel_id: Alarm and Catalog: the one channel asked about (None: the device and all its channels).
        start_alarm_priority, end_alarm_priority: Alarm: the priority range, 1 (highest) .. 4.
        alarm_method: Alarm: the methods, digits 1-7 ("25": device or video alarms; "0" or None: all).
        alarm_type: Alarm: the `AlarmType` asked for.
        start_time, end_time: Alarm: when the alarm happened; Catalog: when a change is notified. Local ISO 8601
            without a zone ("2024-03-01T10:00:00").
    """

    channel_id: str | None = None
    start_alarm_priority: int | None = None
    end_alarm_priority: int | None = None
    alarm_method: str | None = None
    alarm_type: str | None = None
    start_time: str | None = None
    end_time: str | None = None

    def to_json(self) -> dict[str, object]:
        """The REST fields; times in RFC 3339 with this host's offset."""
        return {
            "channel_id": self.channel_id,
            "start_alarm_priority": self.start_alarm_priority,
            "end_alarm_priority": self.end_alarm_priority,
            "alarm_method": self.alarm_method,
            "alarm_type": self.alarm_type,
            "start_time": None if self.start_time is None else _rfc3339(self.start_time),
            "end_time": None if self.end_time is None else _rfc3339(self.end_time),
        }


def _rfc3339(local: str) -> str:
    return datetime.datetime.fromisoformat(local).astimezone().isoformat()


#: The filter fields each event takes (others are refused).
FILTER_FIELDS: dict[str, frozenset[str]] = {
    "Alarm": frozenset(attrs.fields_dict(SubscriptionFilter)),
    "Catalog": frozenset({"channel_id", "start_time", "end_time"}),
}


def subscription_filter(
    event: str,
    *,
    channel_id: str | None = None,
    start_alarm_priority: int | None = None,
    end_alarm_priority: int | None = None,
    alarm_method: str | int | None = None,
    alarm_type: str | int | None = None,
    start_time: str | datetime.datetime | None = None,
    end_time: str | datetime.datetime | None = None,
) -> SubscriptionFilter:
    """Validate the filters of a subscription to `event` (see `SubscriptionFilter` for what each means).

    Alarm takes them all; Catalog takes `channel_id`, `start_time` and `end_time`; other events none. Times are
    ISO 8601 strings or datetimes, local when zone-less (one with a zone is converted to this host's local time).

    Raises:
        LocalProtocolError: a field the event does not take, or a bad value (the message says which and why).
    """
    given = {
        "channel_id": channel_id,
        "start_alarm_priority": start_alarm_priority,
        "end_alarm_priority": end_alarm_priority,
        "alarm_method": alarm_method,
        "alarm_type": alarm_type,
        "start_time": start_time,
        "end_time": end_time,
    }
    allowed = FILTER_FIELDS.get(event, frozenset())
    for name, value in given.items():
        if value is not None and name not in allowed:
            kinds = [_KIND_OF.get(e, e) for e, fields in FILTER_FIELDS.items() if name in fields]
            raise LocalProtocolError(f"{name} applies to {' and '.join(kinds)} subscriptions only")
    if channel_id is not None and not (
        isinstance(channel_id, str) and len(channel_id) == 20 and channel_id.isascii() and channel_id.isdigit()
    ):
        raise LocalProtocolError("channel_id must be a 20-digit GB28181 ID")
    low = None if start_alarm_priority is None else _priority(start_alarm_priority, "start_alarm_priority")
    high = None if end_alarm_priority is None else _priority(end_alarm_priority, "end_alarm_priority")
    if low is not None and high is not None and low > high:
        raise LocalProtocolError("start_alarm_priority must not be after end_alarm_priority (1 highest .. 4)")
    method = None
    if alarm_method is not None:
        if isinstance(alarm_method, int) and not isinstance(alarm_method, bool) and alarm_method >= 0:
            alarm_method = str(alarm_method)
        method = alarm_method.strip() if isinstance(alarm_method, str) else ""
        combined = method != "" and set(method) <= set(_ALARM_METHODS) and len(set(method)) == len(method)
        if method != "0" and not combined:
            raise LocalProtocolError(
                "alarm_method must be 0 (all) or distinct digits 1-7 (1 phone, 2 device, 3 SMS, 4 GPS, 5 video, "
                "6 device fault, 7 other), such as 25"
            )
    kind = None
    if alarm_type is not None:
        if isinstance(alarm_type, int) and not isinstance(alarm_type, bool) and alarm_type >= 0:
            alarm_type = str(alarm_type)
        kind = filter_text(alarm_type, "alarm_type", _MAX_ALARM_TYPE)
    start = None if start_time is None else _local_time(start_time, "start_time")
    end = None if end_time is None else _local_time(end_time, "end_time")
    if start is not None and end is not None and end <= start:
        raise LocalProtocolError("end_time must be after start_time")
    return SubscriptionFilter(
        channel_id=channel_id,
        start_alarm_priority=low,
        end_alarm_priority=high,
        alarm_method=None if method == "0" else method,  # 0: every method, as when none is given
        alarm_type=kind,
        start_time=None if start is None else start.isoformat(),
        end_time=None if end is None else end.isoformat(),
    )


@attrs.frozen(kw_only=True, slots=True)
class SubscriptionInfo:
    """One subscription of a device, wanted or active.

    Attributes:
        device_id: the device.
        event: the GB28181 event name ("Catalog", "Alarm", "MobilePosition", or another from the settings).
        expires: the Expires asked for (seconds).
        interval: MobilePosition report interval asked for (seconds; None: the device's default).
        filters: what the subscription asks the device for (Alarm, Catalog).
        wanted: kept up by the platform (renewed after each re-registration).
        expires_at: `trio.current_time()` at which the device's grant runs out; None when not active now.
    """

    device_id: str
    event: str
    expires: int
    interval: int | None = None
    filters: SubscriptionFilter = SubscriptionFilter()
    wanted: bool = True
    expires_at: float | None = None

    @property
    def kind(self) -> str:
        """The REST name ("catalog", "alarm", "mobile_position"; else the event name in lower case)."""
        return _KIND_OF.get(self.event, self.event.lower())

    @property
    def active(self) -> bool:
        """The device granted it and the grant has not run out."""
        return self.expires_at is not None

    def to_json(self, now: float) -> dict[str, object]:
        """The REST representation; `expires_in` is seconds left of the grant (None: not active); the filters
        follow (`SubscriptionFilter.to_json`)."""
        return {
            "kind": self.kind,
            "event": self.event,
            "active": self.active,
            "wanted": self.wanted,
            "expires": self.expires,
            "interval": self.interval,
            "expires_in": None if self.expires_at is None else round(max(0.0, self.expires_at - now), 3),
            **self.filters.to_json(),
        }


@attrs.frozen(kw_only=True, slots=True)
class _Wanted:
    expires: int
    interval: int | None = None
    filters: SubscriptionFilter = SubscriptionFilter()


class _Outcome:
    __slots__ = ("done", "status")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.status: int | None = None


def _granted_expires(response: SipResponse, asked: int) -> int:
    text = response.headers.get("Expires")
    try:
        return max(0, int(text)) if text is not None else asked
    except ValueError:
        return asked


class Subscriptions:
    """The wanted and active subscriptions of every device (see the module docstring)."""

    def __init__(self, platform: Gb28181Platform) -> None:
        self._platform = platform
        self._wanted: dict[str, dict[str, _Wanted]] = {}
        self._active: dict[tuple[str, str], tuple[Dialog, float]] = {}  # (device, event) -> dialog, expiry
        self._tasks: dict[tuple[str, str], trio.CancelScope] = {}

    # ---- state ---------------------------------------------------------------------------------------------------

    def _wanted_of(self, device_id: str) -> dict[str, _Wanted]:
        wanted = self._wanted.get(device_id)
        if wanted is None:
            s = self._platform.settings
            wanted = {name: _Wanted(expires=s.subscription_expires) for name in s.subscribe_events}
            self._wanted[device_id] = wanted
        return wanted

    def active(self, device_id: str) -> dict[str, float]:
        """The device's active subscriptions: event name -> `trio.current_time()` at which it expires."""
        return {name: until for (dev, name), (_, until) in self._active.items() if dev == device_id}

    def infos(self, device_id: str) -> list[SubscriptionInfo]:
        """Every wanted or active subscription of the device, wanted ones first in their order."""
        wanted = self._wanted.get(device_id, {})
        now = trio.current_time()
        out = []
        for name in [*wanted, *(n for (d, n) in self._active if d == device_id and n not in wanted)]:
            params = wanted.get(name)
            active = self._active.get((device_id, name))
            expires_at = active[1] if active is not None and active[1] > now else None
            out.append(
                SubscriptionInfo(
                    device_id=device_id,
                    event=name,
                    expires=params.expires if params is not None else self._platform.settings.subscription_expires,
                    interval=params.interval if params is not None else None,
                    filters=params.filters if params is not None else SubscriptionFilter(),
                    wanted=params is not None,
                    expires_at=expires_at,
                )
            )
        return out

    # ---- lifecycle -----------------------------------------------------------------------------------------------

    def on_online(self, device_id: str) -> None:
        """The device (re)registered with a new generation: subscribe afresh to each wanted event."""
        self.stop(device_id)
        for name, params in self._wanted_of(device_id).items():
            self._start(device_id, name, params, None)

    def stop(self, device_id: str) -> None:
        """Stop the device's subscription tasks and forget its dialogs (it restarted or went offline)."""
        for key in [k for k in self._tasks if k[0] == device_id]:
            self._tasks.pop(key).cancel()
        for key in [k for k in self._active if k[0] == device_id]:
            del self._active[key]

    def on_terminated(self, dialog: Dialog) -> None:
        """The device ended a subscription (NOTIFY with `Subscription-State: terminated`)."""
        for key, (known, _) in list(self._active.items()):
            if known.id == dialog.id:
                del self._active[key]

    def _start(self, device_id: str, name: str, params: _Wanted, outcome: _Outcome | None) -> None:
        key = (device_id, name)
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        scope = self._tasks[key] = trio.CancelScope()
        self._platform._spawn(self._run, device_id, name, params, scope, outcome)

    # ---- run-time changes ----------------------------------------------------------------------------------------

    async def subscribe(
        self,
        device_id: str,
        name: str,
        *,
        expires: int | None = None,
        interval: int | None = None,
        filters: SubscriptionFilter | None = None,
    ) -> SubscriptionInfo:
        """Add (or change) a wanted subscription and wait for the device's answer to its SUBSCRIBE.

        Raises:
            DeviceNotFoundError, DeviceOfflineError: the device cannot be reached.
            SubscriptionRefusedError: the device answered with an error (the event is not kept).
            Gb28181Error: no answer (the platform keeps trying, as for the settings' subscriptions).
        """
        platform = self._platform
        platform._online_device(device_id)
        params = _Wanted(
            expires=expires or platform.settings.subscription_expires,
            interval=interval,
            filters=filters or SubscriptionFilter(),
        )
        self._wanted_of(device_id)[name] = params
        outcome = _Outcome()
        self._start(device_id, name, params, outcome)
        await outcome.done.wait()
        if outcome.status is None:
            raise Gb28181Error(f"{name} SUBSCRIBE to {device_id}: no answer")
        if not 200 <= outcome.status < 300:
            raise SubscriptionRefusedError(f"{name} SUBSCRIBE to {device_id} refused: {outcome.status}", outcome.status)
        return next(i for i in self.infos(device_id) if i.event == name)

    async def unsubscribe(self, device_id: str, name: str) -> bool:
        """Drop a subscription: stop refreshing and end its dialog (`Expires: 0`). False when there was none."""
        platform = self._platform
        key = (device_id, name)
        had = self._wanted.get(device_id, {}).pop(name, None) is not None
        scope = self._tasks.pop(key, None)
        if scope is not None:
            scope.cancel()
        active = self._active.pop(key, None)
        if active is None:
            return had
        device = platform.registry.get(device_id)
        if device is not None and device.online:
            dialog = active[0]
            try:
                ua = platform._transport.ua_for(device.transport)
            except Gb28181Error:
                return True
            if dialog in ua.dialogs:
                build = functools.partial(self._build, device=device, name=name, dialog=dialog, body=b"", expires=0)
                event = await platform._request(device, build, platform.settings.request_timeout, dialog=dialog)
                if event is None or event.response.status_code >= 300:
                    status = "no answer" if event is None else event.response.status_code
                    logger.info("gb28181 device %s: %s unsubscribe: %s", device_id, name, status)
        return True

    # ---- the SUBSCRIBE loop --------------------------------------------------------------------------------------

    def _body(self, device: DeviceRecord, name: str, params: _Wanted) -> bytes:
        platform = self._platform
        sn = platform._queries.next_sn()
        query: ManscdpMessage
        extra: tuple[tuple[str, str], ...]
        f = params.filters
        target = f.channel_id or device.device_id
        if name == "Catalog":
            query = CatalogQuery(sn=sn, device_id=target, start_time=f.start_time, end_time=f.end_time)
        elif name == "Alarm":
            # A.2.4.6, in its element order; without filters every priority (1 highest .. 4) and method (0 = all).
            extra = (
                ("StartAlarmPriority", str(f.start_alarm_priority or 1)),
                ("EndAlarmPriority", str(f.end_alarm_priority or 4)),
                ("AlarmMethod", f.alarm_method or "0"),
            )
            optional = (("AlarmType", f.alarm_type), ("StartAlarmTime", f.start_time), ("EndAlarmTime", f.end_time))
            extra += tuple((tag, text) for tag, text in optional if text is not None)
            query = UnknownMessage(root="Query", cmd_type="Alarm", sn=sn, device_id=target, extra=extra)
        else:
            extra = () if params.interval is None else (("Interval", str(params.interval)),)
            query = UnknownMessage(root="Query", cmd_type=name, sn=sn, device_id=device.device_id, extra=extra)
        return query.encode(platform._charset(device))

    def _build(
        self,
        ua: SipUserAgent,
        now: float,
        addr: Addr,
        *,
        device: DeviceRecord,
        name: str,
        dialog: Dialog | None,
        body: bytes,
        expires: int,
    ) -> SipRequest:
        if dialog is None:
            target = self._platform._target(device.device_id, device)
            return ua.subscribe(target, addr, now, event=name, expires=expires, body=body, content_type=_MANSCDP)
        headers = [("Event", name), ("Expires", str(expires))]  # in the dialog (RFC 6665 §4.1.2.2)
        return ua.send_in_dialog(
            dialog, "SUBSCRIBE", now, headers=headers, body=body, content_type=_MANSCDP if body else None
        )

    async def _run(
        self, device_id: str, name: str, params: _Wanted, scope: trio.CancelScope, outcome: _Outcome | None
    ) -> None:
        """Subscribe to `name` and refresh until the device's generation moves (restart, offline)."""
        platform = self._platform
        key = (device_id, name)
        generation = platform.generation(device_id)
        try:
            with scope:
                while platform.generation(device_id) == generation:
                    device = platform.registry.get(device_id)
                    if device is None or not device.online:
                        return
                    current = self._active.get(key)
                    ua = platform._transport.ua_for(device.transport)
                    dialog = current[0] if current is not None and current[0] in ua.dialogs else None
                    body = self._body(device, name, params)
                    build = functools.partial(
                        self._build, device=device, name=name, dialog=dialog, body=body, expires=params.expires
                    )
                    event = await platform._request(device, build, platform.settings.request_timeout, dialog=dialog)
                    if platform.generation(device_id) != generation:
                        return
                    status = None if event is None else event.response.status_code
                    if event is None or not 200 <= event.response.status_code < 300:
                        logger.info(
                            "gb28181 device %s: %s subscription refused: %s", device_id, name, status or "no answer"
                        )
                        self._active.pop(key, None)  # 481 and friends: start a new subscription next time
                        if outcome is not None:
                            outcome.status = status
                            outcome.done.set()
                            if status is not None:  # refused on request: not wanted any more
                                self._wanted.get(device_id, {}).pop(name, None)
                                return
                            outcome = None
                        if status in (405, 489, 501):
                            return  # the device does not do this event (RFC 6665 §8.3.1 489 Bad Event)
                        await trio.sleep(platform.settings.request_timeout)
                        continue
                    assert event is not None
                    granted = _granted_expires(event.response, params.expires)
                    dialog = event.dialog if event.dialog is not None else dialog
                    if dialog is None or granted <= 0:
                        self._active.pop(key, None)
                        if outcome is not None:
                            outcome.status = status
                            outcome.done.set()
                            outcome = None
                        logger.info("gb28181 device %s: %s subscription not kept (Expires 0)", device_id, name)
                        return
                    self._active[key] = (dialog, trio.current_time() + granted)
                    if outcome is not None:
                        outcome.status = status
                        outcome.done.set()
                        outcome = None
                    await trio.sleep(granted * 0.75)  # refresh well before expiry (RFC 6665 §4.1.2.2)
        except Gb28181Error as exc:
            logger.info("gb28181 device %s: %s subscription stopped: %s", device_id, name, exc)
        finally:
            if outcome is not None:
                outcome.done.set()  # cancelled or stopped before an answer: "no answer"
            if self._tasks.get(key) is scope:
                del self._tasks[key]
