"""MANSCDP between the platform and its devices: the queries it sends and the messages devices send it.

Strategy: a query is a MESSAGE whose SIP 200 only says "received"; the answer comes later as MESSAGEs of its own
(GB/T 28181-2016 9.5). So a query waits twice: for the SIP final response of its MESSAGE (through the transport)
and for the MANSCDP answer on a `_Waiter` keyed by (CmdType, SN), under one deadline (`request_timeout` plus
`assembly_deadline`). Multi-part Catalog and RecordInfo answers (Appendix N) go through `ResponseAssembler`: any
order, duplicates, and a deadline after which a partial answer is returned (its timer is part of the platform's).

Incoming MESSAGE and NOTIFY bodies (both may carry any Notify: a NOTIFY in a subscription dialog or a plain
MESSAGE) are answered 200 first, so that the next part of a multi-part answer can come, then dispatched:
Keepalive updates liveness; Catalog answers and notifies update the registry per item `<Event>` and emit
`CatalogUpdated`; Alarm, MobilePosition and MediaStatus emit their events. An Alarm that came as a MESSAGE gets
the response MESSAGE of A.2.6 (`<Response><CmdType>Alarm</CmdType>` with its SN, DeviceID and `<Result>OK`),
sent after the 200; an Alarm NOTIFY is acknowledged by its 200 alone (RFC 6665 §4.1.3).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
import trio

from fluxkit.errors import LocalProtocolError, ProtocolError
from fluxkit.protocols.manscdp import (
    Alarm,
    AssembledResponse,
    CatalogItem,
    CatalogNotify,
    CatalogQuery,
    CatalogResponse,
    DeviceControl,
    DeviceInfoQuery,
    DeviceInfoResponse,
    DeviceStatusQuery,
    DeviceStatusResponse,
    Keepalive,
    ManscdpMessage,
    MediaStatus,
    MobilePosition,
    PtzCommand,
    RecordInfoQuery,
    RecordInfoResponse,
    RecordItem,
    ResponseAssembler,
    ResultResponse,
    parse_manscdp,
)
from fluxkit.protocols.sip import RequestReceived, SipResponse, SipUserAgent

from ._events import AlarmReceived, CatalogUpdated, MediaStatusReceived, MobilePositionReceived
from ._registration import user_of
from ._registry import ChannelRecord, DeviceRecord
from ._settings import Gb28181Error

if TYPE_CHECKING:
    from ._platform import Gb28181Platform

__all__ = ["RECORD_TYPES", "Queries", "catalog_records", "filter_text", "record_fields"]

logger = logging.getLogger("fluxkit.gb28181")

_SN_LIMIT = 1 << 31


class _Waiter:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None


#: RecordInfo `Type` values (A.2.4.7): every recording, scheduled, alarm-triggered, manual.
RECORD_TYPES = ("all", "time", "alarm", "manual")
#: Longest FilePath / Address accepted in a RecordInfo query, and longest RecorderID (characters).
MAX_RECORD_TEXT = 256
MAX_RECORDER_ID = 64

#: The optional RecordInfoQuery fields, as keyword arguments of `RecordInfoQuery`.
RecordFields = dict[str, str]


def filter_text(value: object, name: str, limit: int) -> str:
    """A text filter value: a string, stripped, 1..`limit` characters, no control characters.

    Raises:
        LocalProtocolError: anything else (the message names `name`).
    """
    if not isinstance(value, str) or not value.strip():
        raise LocalProtocolError(f"{name} must be a non-empty string")
    text = value.strip()
    if len(text) > limit:
        raise LocalProtocolError(f"{name} is longer than {limit} characters")
    if not text.isprintable():
        raise LocalProtocolError(f"{name} must not contain control characters")
    return text


def record_fields(
    *,
    record_type: str | None = None,
    secrecy: int | None = None,
    file_path: str | None = None,
    address: str | None = None,
    recorder_id: str | None = None,
) -> RecordFields:
    """The optional RecordInfo query fields (A.2.4.7), validated; None leaves a field at its default.

    Args:
        record_type: `Type`: "all" (default, sent even when None: some devices need it), "time", "alarm" or
            "manual" (case-insensitive).
        secrecy: `Secrecy`: 0 (default, sent even when None: the standard's default) or 1 (secret recordings).
        file_path: `FilePath`: one file's path on the device.
        address: `Address`: the recording's place (devices may match a part of it).
        recorder_id: `RecorderID`: who triggered the recording (a user or device ID).

    Raises:
        LocalProtocolError: a bad value (the message says which and why).
    """
    fields: RecordFields = {}
    if record_type is not None:
        kind = record_type.strip().lower() if isinstance(record_type, str) else None
        if kind not in RECORD_TYPES:
            raise LocalProtocolError(f"record type must be one of {list(RECORD_TYPES)}, not {record_type!r}")
        fields["type"] = kind
    if secrecy is not None:
        if isinstance(secrecy, bool) or secrecy not in (0, 1):
            raise LocalProtocolError(f"secrecy must be 0 or 1, not {secrecy!r}")
        fields["secrecy"] = str(secrecy)
    if file_path is not None:
        fields["file_path"] = filter_text(file_path, "file_path", MAX_RECORD_TEXT)
    if address is not None:
        fields["address"] = filter_text(address, "address", MAX_RECORD_TEXT)
    if recorder_id is not None:
        fields["recorder_id"] = filter_text(recorder_id, "recorder_id", MAX_RECORDER_ID)
    return fields


def catalog_records(items: tuple[CatalogItem | RecordItem, ...]) -> tuple[ChannelRecord, ...]:
    """The registry's channels for Catalog items (other items are skipped)."""
    return tuple(
        ChannelRecord(
            channel_id=item.device_id,
            name=item.name,
            status=item.status,
            manufacturer=item.manufacturer,
            model=item.model,
            parent_id=item.parent_id,
            ptz_type=item.ptz_type,
        )
        for item in items
        if isinstance(item, CatalogItem)
    )


class Queries:
    """Outgoing queries and control, incoming MANSCDP (see the module docstring)."""

    def __init__(self, platform: Gb28181Platform) -> None:
        self._platform = platform
        self._assembler = ResponseAssembler(deadline=platform.settings.assembly_deadline)
        self._answers: dict[tuple[str, int], _Waiter] = {}
        self._sn = platform.rng.randrange(1, 1 << 16)
        self.malformed = 0
        self.alarm_replies_sent = 0

    def next_sn(self) -> int:
        """A fresh SN for a query or command."""
        self._sn = self._sn % (_SN_LIMIT - 1) + 1
        return self._sn

    # ---- timers --------------------------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """The multi-part assembler's next deadline."""
        return self._assembler.get_timer()

    def handle_timer(self, now: float) -> None:
        """Hand out the partial answers whose deadline passed."""
        if (t := self._assembler.get_timer()) is not None and t <= now:
            for result in self._assembler.handle_timer(now):
                self._on_assembled(result, now)

    # ---- outgoing ------------------------------------------------------------------------------------------------

    async def message(self, device: DeviceRecord, target_id: str, body: bytes) -> SipResponse | None:
        """A MESSAGE to `target_id` (a channel or the device) and its final response (None: none in time)."""
        platform = self._platform
        event = await platform._request(
            device,
            lambda ua, now, addr: ua.message(platform._target(target_id, device), addr, now, body),
            platform.settings.request_timeout,
        )
        return None if event is None else event.response

    async def query(
        self, device: DeviceRecord, target_id: str, query: ManscdpMessage, cmd_type: str | None = None
    ) -> Any:
        """Send a query and wait for its (assembled) answer.

        Raises:
            Gb28181Error: refused, or no answer before the deadline.
        """
        s = self._platform.settings
        key = (cmd_type or query.command_type, query.sn)
        waiter = self._answers[key] = _Waiter()
        try:
            with trio.move_on_after(s.request_timeout + s.assembly_deadline):
                response = await self.message(device, target_id, query.encode(self._platform._charset(device)))
                if response is None or not 200 <= response.status_code < 300:
                    status = "no answer" if response is None else response.status_code
                    raise Gb28181Error(f"{key[0]} query to {device.device_id} refused: {status}")
                await waiter.event.wait()
        finally:
            del self._answers[key]
        if waiter.value is None:
            raise Gb28181Error(f"{key[0]} query to {device.device_id}: no answer")
        return waiter.value

    async def catalog(self, device: DeviceRecord) -> tuple[ChannelRecord, ...]:
        """Catalog query (A.2.4.3), all parts assembled."""
        query = CatalogQuery(sn=self.next_sn(), device_id=device.device_id)
        result = await self.query(device, device.device_id, query, "Catalog")
        assert isinstance(result, AssembledResponse)
        return catalog_records(result.items)

    async def device_info(self, device: DeviceRecord) -> DeviceInfoResponse:
        """DeviceInfo query (A.2.4.5)."""
        query = DeviceInfoQuery(sn=self.next_sn(), device_id=device.device_id)
        answer = await self.query(device, device.device_id, query)
        assert isinstance(answer, DeviceInfoResponse)
        return answer

    async def device_status(self, device: DeviceRecord) -> DeviceStatusResponse:
        """DeviceStatus query (A.2.4.6)."""
        query = DeviceStatusQuery(sn=self.next_sn(), device_id=device.device_id)
        answer = await self.query(device, device.device_id, query)
        assert isinstance(answer, DeviceStatusResponse)
        return answer

    async def records(
        self, device: DeviceRecord, channel_id: str, start_time: str, end_time: str, fields: RecordFields
    ) -> tuple[RecordItem, ...]:
        """RecordInfo query (A.2.4.7) with the optional `fields` of `record_fields`, all parts assembled."""
        optional: dict[str, Any] = dict(fields)
        query = RecordInfoQuery(
            sn=self.next_sn(), device_id=channel_id, start_time=start_time, end_time=end_time, **optional
        )
        result = await self.query(device, channel_id, query, "RecordInfo")
        assert isinstance(result, AssembledResponse)
        return tuple(item for item in result.items if isinstance(item, RecordItem))

    async def ptz(self, device: DeviceRecord, channel_id: str, command: PtzCommand) -> int:
        """DeviceControl/PTZCmd (A.3) to a channel; the SIP status (408: no answer). PTZ gets no MANSCDP
        response, only the SIP 200 (9.3.1)."""
        control = DeviceControl.ptz(sn=self.next_sn(), device_id=channel_id, command=command)
        response = await self.message(device, channel_id, control.encode(self._platform._charset(device)))
        return 408 if response is None else response.status_code

    # ---- incoming ------------------------------------------------------------------------------------------------

    def on_message(self, ua: SipUserAgent, event: RequestReceived, now: float) -> None:
        """A MESSAGE or NOTIFY from a device."""
        platform = self._platform
        request = event.request
        device_id = user_of(request.from_.uri)
        device = platform.registry.get(device_id)
        if device is None:
            ua.respond(request, 404, now, reason="Device Not Registered")
            return
        if not platform._registrar.is_registered(device_id):
            ua.respond(request, 403, now, reason="Not Registered")  # makes a device that lost its registration REGISTER
            return
        try:
            message = parse_manscdp(request.body, charset=platform.settings.charsets.get(device_id))
        except ProtocolError:
            self.malformed += 1
            ua.respond(request, 400, now)
            return
        ua.respond(request, 200, now)  # first, so that the next part of a multi-part answer can come (Appendix N)
        platform._registrar.touch(device_id, now)
        changes: dict[str, Any] = {}
        if event.addr != device.address:
            changes["address"] = event.addr  # NAT rebinding or a new TCP connection: its requests come from here
        if message.charset and message.charset != device.charset and device_id not in platform.settings.charsets:
            changes["charset"] = message.charset
        if isinstance(message, Keepalive):
            changes["last_keepalive"] = time.time()
        if changes:
            # Keepalive times alone are kept in memory; they reach the disk with the next real change.
            platform.registry.put(attrs.evolve(device, **changes), persist=set(changes) != {"last_keepalive"})
        self._dispatch(device_id, message, now)
        if isinstance(message, Alarm) and request.method == "MESSAGE":
            platform._spawn(self._reply_alarm, device_id, message)

    async def _reply_alarm(self, device_id: str, alarm: Alarm) -> None:
        # A.2.6 alarm notification response: same SN, the alarm's DeviceID, Result OK.
        platform = self._platform
        device = platform.registry.get(device_id)
        if device is None or not device.online:
            return
        target = alarm.device_id or device_id
        reply = ResultResponse(sn=alarm.sn, device_id=target, cmd_type="Alarm", result="OK")
        response = await self.message(device, target, reply.encode(platform._charset(device)))
        self.alarm_replies_sent += 1
        if response is None or response.status_code >= 300:
            status = "no answer" if response is None else response.status_code
            logger.info("gb28181 device %s: alarm response not taken: %s", device_id, status)

    def _dispatch(self, device_id: str, message: ManscdpMessage, now: float) -> None:
        platform = self._platform
        if isinstance(message, CatalogNotify):
            self._apply_notify(device_id, message, now)
        elif isinstance(message, CatalogResponse | RecordInfoResponse):
            try:
                result = self._assembler.feed(message, now)
            except ProtocolError:
                self.malformed += 1
                return
            platform._wake_timer()
            if result is not None:
                self._on_assembled(result, now)
        elif isinstance(message, DeviceInfoResponse | DeviceStatusResponse):
            waiter = self._answers.get((message.command_type, message.sn))
            if waiter is not None and not waiter.event.is_set():
                waiter.value = message
                waiter.event.set()
        elif isinstance(message, Alarm):
            platform._emit(AlarmReceived(device_id=device_id, time=now, alarm=message))
        elif isinstance(message, MobilePosition):
            platform._emit(MobilePositionReceived(device_id=device_id, time=now, position=message))
        elif isinstance(message, MediaStatus):
            platform._sessions.on_media_status(device_id, message)
            platform._emit(MediaStatusReceived(device_id=device_id, time=now, status=message))

    def _on_assembled(self, result: AssembledResponse, now: float) -> None:
        platform = self._platform
        waiter = self._answers.get((result.cmd_type, result.sn))
        if result.cmd_type == "Catalog":
            device_id = result.device_id
            channels = catalog_records(result.items)
            if platform.registry.get(device_id) is not None:
                platform.registry.set_channels(device_id, channels)
                updated = CatalogUpdated(device_id=device_id, time=now, channels=channels, complete=result.complete)
                platform._emit(updated)
        if waiter is not None and not waiter.event.is_set():
            waiter.value = result
            waiter.event.set()

    def _apply_notify(self, device_id: str, notify: CatalogNotify, now: float) -> None:
        platform = self._platform
        device = platform.registry.get(device_id)
        if device is None:
            return
        channels = {c.channel_id: c for c in device.channels}
        for item in notify.items:
            event = (item.event or "").upper()
            if event == "DEL":
                channels.pop(item.device_id, None)
            elif event in ("ON", "OFF") and item.device_id in channels:
                channels[item.device_id] = attrs.evolve(channels[item.device_id], status=item.event)
            else:
                channels[item.device_id] = catalog_records((item,))[0]
        records = tuple(channels.values())
        platform.registry.set_channels(device_id, records)
        platform._emit(CatalogUpdated(device_id=device_id, time=now, channels=records))
