"""MANSCDP message records and their XML encode/decode (GB/T 28181-2016 Appendix A, 9.x).

Strategy: each body is `<Root><CmdType/><SN/><DeviceID/>...</Root>` with Root one of Query, Response, Notify,
Control. A record class declares its root and CmdType and a table of (XML tag, attribute) pairs for its text
fields; one generic decoder walks the children once and one generic encoder writes them back in table order, so a
new message type is a table, not code. Values stay text (devices send "0", "0.0", "", "ON", "OK" ...), except SN
and SumNum, which drive multi-part assembly. Nested data that has no attribute of its own is kept flattened as
(path, text) pairs: `info` for the `<Info>` block, `extra` for elements fluxkit does not model, so nothing is
lost and a re-encode reproduces it. Bodies of unknown CmdType become `UnknownMessage`.

The raw body bytes and the charset used to decode them ride on every parsed record (`raw`, `charset`; not part of
equality), so a caller can re-decode with a per-device override when a device mislabels its charset.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any, ClassVar

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

from ._ptz import PtzCommand
from ._xml import DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_DEPTH, decode_xml, escape_text, flatten

__all__ = [
    "Alarm",
    "Broadcast",
    "CatalogItem",
    "CatalogNotify",
    "CatalogQuery",
    "CatalogResponse",
    "DeviceControl",
    "DeviceInfoQuery",
    "DeviceInfoResponse",
    "DeviceStatusQuery",
    "DeviceStatusResponse",
    "Keepalive",
    "ManscdpMessage",
    "MediaStatus",
    "MobilePosition",
    "RecordInfoQuery",
    "RecordInfoResponse",
    "RecordItem",
    "ResultResponse",
    "UnknownMessage",
    "parse_manscdp",
]

Pairs = tuple[tuple[str, str], ...]
_ROOTS = frozenset({"Query", "Response", "Notify", "Control"})
_SN_LIMIT = 1 << 63


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _int(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ParseError(f"MANSCDP {what} {text!r} is not a non-negative integer")
    return int(text)


def _emit_pairs(out: list[str], pairs: Pairs) -> None:
    """Write flattened (path, text) pairs back as nested elements, sharing parents between neighbours."""
    open_path: list[str] = []
    for path, text in pairs:
        parts = path.split("/")
        if not all(parts):
            raise LocalProtocolError(f"MANSCDP element path {path!r} has an empty name")
        parents = parts[:-1]
        common = 0
        while common < min(len(open_path), len(parents)) and open_path[common] == parents[common]:
            common += 1
        while len(open_path) > common:
            out.append(f"</{open_path.pop()}>")
        for name in parents[common:]:
            out.append(f"<{name}>")
            open_path.append(name)
        out.append(f"<{parts[-1]}>{escape_text(text)}</{parts[-1]}>")
    while open_path:
        out.append(f"</{open_path.pop()}>")


def _pairs_get(pairs: Pairs, path: str) -> str | None:
    for key, value in pairs:
        if key == path:
            return value
    return None


# -- list items -------------------------------------------------------------------------------------------------------


class _Item:
    """Shared decode/encode of a list `<Item>`: a field table plus `info` and `extra`."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    _FIELD_MAP: ClassVar[dict[str, str]]

    @classmethod
    def _decode(cls, element: ET.Element) -> Any:
        kwargs: dict[str, Any] = {}
        fmap = cls._FIELD_MAP
        extra: list[tuple[str, str]] = []
        info: list[tuple[str, str]] = []
        for child in element:  # the per-item hot loop of a big Catalog: no helper calls on the common path
            tag = child.tag
            attr = fmap.get(tag)
            if attr is not None and not len(child):
                text = child.text
                kwargs[attr] = text.strip() if text else ""
            elif tag == "Info":
                for grandchild in child:
                    info += flatten(grandchild)
            else:
                extra += flatten(child)
        if info:
            kwargs["info"] = tuple(info)
        if extra:
            kwargs["extra"] = tuple(extra)
        return cls(**kwargs)

    def _encode(self, out: list[str]) -> None:
        out.append("<Item>")
        for tag, attr in self._FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out.append(f"<{tag}>{escape_text(value)}</{tag}>")
        info: Pairs = getattr(self, "info")  # noqa: B009 - declared by every subclass
        if info:
            out.append("<Info>")
            _emit_pairs(out, info)
            out.append("</Info>")
        _emit_pairs(out, getattr(self, "extra"))  # noqa: B009
        out.append("</Item>")


def _field_map(fields: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return dict(fields)


@attrs.frozen(kw_only=True, slots=True)
class CatalogItem(_Item):
    """One `<Item>` of a Catalog response or notify (A.2.6): a device, channel, organisation or business group.

    Every field is the element's text, or None when the element is absent. `event` is the per-item
    ON/OFF/VLOST/DEFECT/ADD/DEL/UPDATE of a Catalog NOTIFY. `info` holds the `<Info>` block (PTZType, ...).
    """

    device_id: str = ""
    event: str | None = None
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    owner: str | None = None
    civil_code: str | None = None
    block: str | None = None
    address: str | None = None
    parental: str | None = None
    parent_id: str | None = None
    safety_way: str | None = None
    register_way: str | None = None
    cert_num: str | None = None
    certifiable: str | None = None
    err_code: str | None = None
    end_time: str | None = None
    secrecy: str | None = None
    ip_address: str | None = None
    port: str | None = None
    password: str | None = None
    status: str | None = None
    longitude: str | None = None
    latitude: str | None = None
    business_group_id: str | None = None
    info: Pairs = ()
    extra: Pairs = ()

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("DeviceID", "device_id"),
        ("Event", "event"),
        ("Name", "name"),
        ("Manufacturer", "manufacturer"),
        ("Model", "model"),
        ("Owner", "owner"),
        ("CivilCode", "civil_code"),
        ("Block", "block"),
        ("Address", "address"),
        ("Parental", "parental"),
        ("ParentID", "parent_id"),
        ("SafetyWay", "safety_way"),
        ("RegisterWay", "register_way"),
        ("CertNum", "cert_num"),
        ("Certifiable", "certifiable"),
        ("ErrCode", "err_code"),
        ("EndTime", "end_time"),
        ("Secrecy", "secrecy"),
        ("IPAddress", "ip_address"),
        ("Port", "port"),
        ("Password", "password"),
        ("Status", "status"),
        ("Longitude", "longitude"),
        ("Latitude", "latitude"),
        ("BusinessGroupID", "business_group_id"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    @property
    def ptz_type(self) -> int | None:
        """`<Info><PTZType>`: 1 dome, 2 half-dome, 3 fixed gun, 4 remote-controlled gun; None when absent."""
        value = _pairs_get(self.info, "PTZType")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None

    @property
    def online(self) -> bool | None:
        """Status ON/OK -> True, OFF -> False, else None (devices vary: "ON", "OK", "ONLINE", "OFF", "OFFLINE")."""
        if self.status is None:
            return None
        status = self.status.upper()
        if status in ("ON", "OK", "ONLINE"):
            return True
        return False if status in ("OFF", "OFFLINE") else None


@attrs.frozen(kw_only=True, slots=True)
class RecordItem(_Item):
    """One `<Item>` of a RecordInfo response (A.2.6.6): a recording with its time range and type."""

    device_id: str = ""
    name: str | None = None
    file_path: str | None = None
    address: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    secrecy: str | None = None
    type: str | None = None
    recorder_id: str | None = None
    file_size: str | None = None
    info: Pairs = ()
    extra: Pairs = ()

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("DeviceID", "device_id"),
        ("Name", "name"),
        ("FilePath", "file_path"),
        ("Address", "address"),
        ("StartTime", "start_time"),
        ("EndTime", "end_time"),
        ("Secrecy", "secrecy"),
        ("Type", "type"),
        ("RecorderID", "recorder_id"),
        ("FileSize", "file_size"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    @property
    def identity(self) -> tuple[str, str | None, str | None, str | None, str | None, str | None]:
        """What makes two items the same recording (for de-duplicating multi-part responses)."""
        return (self.device_id, self.start_time, self.end_time, self.file_path, self.type, self.recorder_id)


# -- messages ---------------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=True)
class ManscdpMessage:
    """Fields every MANSCDP body has, and the generic codec.

    Attributes:
        sn: the command sequence number; a response carries its query's SN.
        device_id: the `<DeviceID>` (the target channel for queries and control); None when absent (Broadcast).
        info: the `<Info>` block flattened to (path, text) pairs, e.g. (("ControlPriority", "5"),).
        extra: elements fluxkit does not model, flattened the same way, written back after the known ones.
        raw: the body bytes this record was parsed from (b"" for one built in code); not compared.
        charset: the charset the body was decoded with (None for one built in code); not compared.
    """

    ROOT: ClassVar[str] = ""
    CMD_TYPE: ClassVar[str] = ""
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()
    _FIELD_MAP: ClassVar[dict[str, str]] = {}
    _LIST: ClassVar[tuple[str, type[_Item]] | None] = None

    sn: int
    device_id: str | None = None
    info: Pairs = ()
    extra: Pairs = ()
    raw: bytes = attrs.field(default=b"", eq=False, repr=False)
    charset: str | None = attrs.field(default=None, eq=False)

    @property
    def root_tag(self) -> str:
        """Query, Response, Notify or Control."""
        return self.ROOT

    @property
    def command_type(self) -> str:
        """The `<CmdType>`."""
        return self.CMD_TYPE

    def _list_items(self) -> tuple[_Item, ...]:
        return ()

    def _sum_num(self) -> int | None:
        return None

    def encode(self, charset: str = "GB2312") -> bytes:
        """The body bytes with the `<?xml version="1.0" encoding="...">` declaration, encoded in `charset`.

        Raises:
            LocalProtocolError: SN out of range, a character the charset or XML cannot carry, unknown charset.
        """
        if not 0 <= self.sn < _SN_LIMIT:
            raise LocalProtocolError(f"MANSCDP SN {self.sn} is out of range")
        root = self.root_tag
        if root not in _ROOTS:
            raise LocalProtocolError(f"MANSCDP root {root!r} is not Query/Response/Notify/Control")
        out = [
            f'<?xml version="1.0" encoding="{charset}"?>',
            f"<{root}>",
            f"<CmdType>{escape_text(self.command_type)}</CmdType>",
            f"<SN>{self.sn}</SN>",
        ]
        if self.device_id is not None:
            out.append(f"<DeviceID>{escape_text(self.device_id)}</DeviceID>")
        for tag, attr in self._FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out.append(f"<{tag}>{escape_text(value)}</{tag}>")
        sum_num = self._sum_num()
        if sum_num is not None:
            if not 0 <= sum_num < _SN_LIMIT:
                raise LocalProtocolError(f"MANSCDP SumNum {sum_num} is out of range")
            out.append(f"<SumNum>{sum_num}</SumNum>")
        items = self._list_items()
        if items and self._LIST is not None:
            list_tag = self._LIST[0]
            out.append(f'<{list_tag} Num="{len(items)}">')
            for item in items:
                item._encode(out)
            out.append(f"</{list_tag}>")
        if self.info:
            out.append("<Info>")
            _emit_pairs(out, self.info)
            out.append("</Info>")
        _emit_pairs(out, self.extra)
        out.append(f"</{root}>")
        text = "\r\n".join(out) + "\r\n"
        try:
            # Strict: a GB2312 label gets GB2312 bytes; a rare character (萳) needs charset="GB18030".
            return text.encode(charset)
        except LookupError:
            raise LocalProtocolError(f"unknown charset {charset!r}") from None
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(
                f"{exc.object[exc.start : exc.end]!r} cannot be encoded in {charset} (use GB18030 or UTF-8)"
            ) from None


def _decode_message(cls: type[ManscdpMessage], root: ET.Element, extra_kwargs: dict[str, Any]) -> ManscdpMessage:
    kwargs: dict[str, Any] = dict(extra_kwargs)
    fmap = cls._FIELD_MAP
    list_spec = cls._LIST
    info: list[tuple[str, str]] = []
    extra: list[tuple[str, str]] = []
    items: list[Any] | None = None
    sn: int | None = None
    for child in root:
        tag = child.tag
        attr = fmap.get(tag)
        if attr is not None and not len(child):
            kwargs[attr] = _text(child)
        elif tag == "SN":
            sn = _int(_text(child), "SN")
        elif tag == "DeviceID" and not len(child):
            kwargs["device_id"] = _text(child)
        elif tag == "CmdType":
            continue
        elif tag == "SumNum" and list_spec is not None:
            kwargs["sum_num"] = _int(_text(child), "SumNum")
        elif list_spec is not None and tag == list_spec[0]:
            item_cls = list_spec[1]
            decode = item_cls._decode
            items = (items or []) + [decode(item) for item in child if item.tag == "Item"]
        elif tag == "Info":
            for grandchild in child:
                info += flatten(grandchild)
        else:
            extra += flatten(child)
    for _, attr in cls._FIELDS:
        kwargs.setdefault(attr, None)  # absent is None, not the builder's default (Keepalive status "OK", ...)
    if sn is None:
        raise ParseError(f"MANSCDP {root.tag}/{kwargs.get('cmd_type') or cls.CMD_TYPE} has no <SN>")
    if items is not None:
        kwargs["items"] = tuple(items)
    if list_spec is not None and "sum_num" not in kwargs:
        kwargs["sum_num"] = len(items or ())
    return cls(sn=sn, info=tuple(info), extra=tuple(extra), **kwargs)


@attrs.frozen(kw_only=True, slots=True)
class Keepalive(ManscdpMessage):
    """Device heartbeat (9.6; default every 60 s, offline after 3 missed). `info` may list faulty sub-devices."""

    ROOT: ClassVar[str] = "Notify"
    CMD_TYPE: ClassVar[str] = "Keepalive"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("Status", "status"),)
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    status: str | None = "OK"

    @property
    def faulty_device_ids(self) -> list[str]:
        """The `<Info><DeviceID>` entries: sub-devices the device reports as faulty."""
        return [value for key, value in self.info if key == "DeviceID"]


@attrs.frozen(kw_only=True, slots=True)
class CatalogQuery(ManscdpMessage):
    """Catalog query (A.2.4.3). StartTime/EndTime are the 2016 incremental-query bounds (optional)."""

    ROOT: ClassVar[str] = "Query"
    CMD_TYPE: ClassVar[str] = "Catalog"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("StartTime", "start_time"), ("EndTime", "end_time"))
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    start_time: str | None = None
    end_time: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class CatalogResponse(ManscdpMessage):
    """One part of a Catalog response (A.2.6.4; Appendix N): `sum_num` is the total over all parts."""

    ROOT: ClassVar[str] = "Response"
    CMD_TYPE: ClassVar[str] = "Catalog"
    _LIST: ClassVar[tuple[str, type[_Item]] | None] = ("DeviceList", CatalogItem)

    sum_num: int = 0
    items: tuple[CatalogItem, ...] = ()

    def _list_items(self) -> tuple[_Item, ...]:
        return self.items

    def _sum_num(self) -> int | None:
        return self.sum_num


@attrs.frozen(kw_only=True, slots=True)
class CatalogNotify(CatalogResponse):
    """A Catalog NOTIFY of a subscription (9.11): the same shape, with `CatalogItem.event` per item."""

    ROOT: ClassVar[str] = "Notify"


@attrs.frozen(kw_only=True, slots=True)
class DeviceInfoQuery(ManscdpMessage):
    """DeviceInfo query (A.2.4.5)."""

    ROOT: ClassVar[str] = "Query"
    CMD_TYPE: ClassVar[str] = "DeviceInfo"


@attrs.frozen(kw_only=True, slots=True)
class DeviceInfoResponse(ManscdpMessage):
    """DeviceInfo response (A.2.6.5)."""

    ROOT: ClassVar[str] = "Response"
    CMD_TYPE: ClassVar[str] = "DeviceInfo"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("DeviceName", "device_name"),
        ("Result", "result"),
        ("Manufacturer", "manufacturer"),
        ("Model", "model"),
        ("Firmware", "firmware"),
        ("Channel", "channel"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    device_name: str | None = None
    result: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    channel: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class DeviceStatusQuery(ManscdpMessage):
    """DeviceStatus query (A.2.4.4)."""

    ROOT: ClassVar[str] = "Query"
    CMD_TYPE: ClassVar[str] = "DeviceStatus"


@attrs.frozen(kw_only=True, slots=True)
class DeviceStatusResponse(ManscdpMessage):
    """DeviceStatus response (A.2.6.3). The per-alarm `<Alarmstatus>` list, when sent, lands in `extra`."""

    ROOT: ClassVar[str] = "Response"
    CMD_TYPE: ClassVar[str] = "DeviceStatus"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Result", "result"),
        ("Online", "online"),
        ("Status", "status"),
        ("Reason", "reason"),
        ("Encode", "encode_status"),
        ("Record", "record"),
        ("DeviceTime", "device_time"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    result: str | None = None
    online: str | None = None
    status: str | None = None
    reason: str | None = None
    encode_status: str | None = None
    record: str | None = None
    device_time: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class RecordInfoQuery(ManscdpMessage):
    """RecordInfo query (A.2.4.6). Times are local ISO-8601 without a zone; send `type="all"` (Dahua needs it)."""

    ROOT: ClassVar[str] = "Query"
    CMD_TYPE: ClassVar[str] = "RecordInfo"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("StartTime", "start_time"),
        ("EndTime", "end_time"),
        ("FilePath", "file_path"),
        ("Address", "address"),
        ("Secrecy", "secrecy"),
        ("Type", "type"),
        ("RecorderID", "recorder_id"),
        ("IndistinctQuery", "indistinct_query"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    start_time: str | None = None
    end_time: str | None = None
    file_path: str | None = None
    address: str | None = None
    secrecy: str | None = "0"
    type: str | None = "all"
    recorder_id: str | None = None
    indistinct_query: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class RecordInfoResponse(ManscdpMessage):
    """One part of a RecordInfo response (A.2.6.6; Appendix N)."""

    ROOT: ClassVar[str] = "Response"
    CMD_TYPE: ClassVar[str] = "RecordInfo"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("Name", "name"),)
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)
    _LIST: ClassVar[tuple[str, type[_Item]] | None] = ("RecordList", RecordItem)

    name: str | None = None
    sum_num: int = 0
    items: tuple[RecordItem, ...] = ()

    def _list_items(self) -> tuple[_Item, ...]:
        return self.items

    def _sum_num(self) -> int | None:
        return self.sum_num


@attrs.frozen(kw_only=True, slots=True)
class DeviceControl(ManscdpMessage):
    """DeviceControl (A.2.3.1). PTZ, TeleBoot and IFrame get only a SIP 200; the others get a `ResultResponse`.

    `info` carries `<ControlPriority>`; DragZoomIn/Out and HomePosition, when sent, land in `extra`.
    """

    ROOT: ClassVar[str] = "Control"
    CMD_TYPE: ClassVar[str] = "DeviceControl"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("PTZCmd", "ptz_cmd"),
        ("TeleBoot", "tele_boot"),
        ("RecordCmd", "record_cmd"),
        ("GuardCmd", "guard_cmd"),
        ("AlarmCmd", "alarm_cmd"),
        ("IFrameCmd", "iframe_cmd"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    ptz_cmd: str | None = None
    tele_boot: str | None = None
    record_cmd: str | None = None
    guard_cmd: str | None = None
    alarm_cmd: str | None = None
    iframe_cmd: str | None = None

    @classmethod
    def ptz(cls, *, sn: int, device_id: str, command: PtzCommand, priority: int | None = 5) -> DeviceControl:
        """A PTZ control with `<Info><ControlPriority>` (omitted when `priority` is None)."""
        info: Pairs = () if priority is None else (("ControlPriority", str(priority)),)
        return cls(sn=sn, device_id=device_id, ptz_cmd=command.encode(), info=info)

    @property
    def ptz_command(self) -> PtzCommand | None:
        """The decoded `<PTZCmd>`, None when absent; ParseError when it is malformed or its checksum is wrong."""
        return None if self.ptz_cmd is None else PtzCommand.decode(self.ptz_cmd)

    @property
    def control_priority(self) -> int | None:
        value = _pairs_get(self.info, "ControlPriority")
        return int(value) if value is not None and value.isascii() and value.isdigit() else None


@attrs.frozen(kw_only=True, slots=True)
class ResultResponse(ManscdpMessage):
    """The `<Response>` with `<Result>OK|ERROR</Result>` to DeviceControl (record, guard, alarm reset), Alarm,
    Broadcast and DeviceConfig (9.3.2)."""

    ROOT: ClassVar[str] = "Response"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("Result", "result"),)
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    cmd_type: str
    result: str | None = "OK"

    @property
    def command_type(self) -> str:
        return self.cmd_type


@attrs.frozen(kw_only=True, slots=True)
class Alarm(ManscdpMessage):
    """Alarm notify (A.2.5.3). `info` carries `<AlarmType>` and, in 2016, `<AlarmTypeParam><EventType>`."""

    ROOT: ClassVar[str] = "Notify"
    CMD_TYPE: ClassVar[str] = "Alarm"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("AlarmPriority", "alarm_priority"),
        ("AlarmMethod", "alarm_method"),
        ("AlarmTime", "alarm_time"),
        ("AlarmDescription", "alarm_description"),
        ("Longitude", "longitude"),
        ("Latitude", "latitude"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    alarm_priority: str | None = None
    alarm_method: str | None = None
    alarm_time: str | None = None
    alarm_description: str | None = None
    longitude: str | None = None
    latitude: str | None = None

    @property
    def alarm_type(self) -> str | None:
        return _pairs_get(self.info, "AlarmType")


@attrs.frozen(kw_only=True, slots=True)
class MediaStatus(ManscdpMessage):
    """MediaStatus notify (A.2.5.4): NotifyType 121 = playback or download reached the end of the file."""

    ROOT: ClassVar[str] = "Notify"
    CMD_TYPE: ClassVar[str] = "MediaStatus"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("NotifyType", "notify_type"),)
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    notify_type: str | None = "121"

    @property
    def end_of_file(self) -> bool:
        return self.notify_type == "121"


@attrs.frozen(kw_only=True, slots=True)
class MobilePosition(ManscdpMessage):
    """MobilePosition notify (A.2.5.5)."""

    ROOT: ClassVar[str] = "Notify"
    CMD_TYPE: ClassVar[str] = "MobilePosition"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Time", "time"),
        ("Longitude", "longitude"),
        ("Latitude", "latitude"),
        ("Speed", "speed"),
        ("Direction", "direction"),
        ("Altitude", "altitude"),
    )
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    time: str | None = None
    longitude: str | None = None
    latitude: str | None = None
    speed: str | None = None
    direction: str | None = None
    altitude: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class Broadcast(ManscdpMessage):
    """Voice broadcast notify (A.2.5.6, 9.12): SourceID (the platform) and TargetID (the device's audio output)."""

    ROOT: ClassVar[str] = "Notify"
    CMD_TYPE: ClassVar[str] = "Broadcast"
    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (("SourceID", "source_id"), ("TargetID", "target_id"))
    _FIELD_MAP: ClassVar[dict[str, str]] = _field_map(_FIELDS)

    source_id: str | None = None
    target_id: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class UnknownMessage(ManscdpMessage):
    """A body whose (root, CmdType) fluxkit does not model; every element is kept in `extra`."""

    root: str
    cmd_type: str

    @property
    def root_tag(self) -> str:
        return self.root

    @property
    def command_type(self) -> str:
        return self.cmd_type


_DISPATCH: dict[tuple[str, str], type[ManscdpMessage]] = {
    (cls.ROOT, cls.CMD_TYPE): cls
    for cls in (
        Keepalive,
        CatalogQuery,
        CatalogResponse,
        CatalogNotify,
        DeviceInfoQuery,
        DeviceInfoResponse,
        DeviceStatusQuery,
        DeviceStatusResponse,
        RecordInfoQuery,
        RecordInfoResponse,
        DeviceControl,
        Alarm,
        MediaStatus,
        MobilePosition,
        Broadcast,
    )
}
_RESULT_RESPONSES = frozenset({"DeviceControl", "Alarm", "Broadcast", "DeviceConfig"})


def parse_manscdp(
    data: bytes,
    *,
    charset: str | None = None,
    max_size: int = DEFAULT_MAX_BODY_SIZE,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ManscdpMessage:
    """Parse a MANSCDP body (the MESSAGE/NOTIFY payload, `Application/MANSCDP+xml`).

    Args:
        data: the body bytes.
        charset: a per-device charset override (e.g. "UTF-8" for a device that mislabels its bodies).
        max_size, max_depth: the safety bounds of `decode_xml`.

    Returns:
        The typed record for known (root, CmdType) pairs, `ResultResponse` for Result-only responses, else
        `UnknownMessage`. The record keeps `raw` (the bytes) and `charset` (how they were decoded).

    Raises:
        ParseError: unsafe or malformed XML, an unknown root element, a missing CmdType or SN.
    """
    root, used = decode_xml(bytes(data), charset=charset, max_size=max_size, max_depth=max_depth)
    if root.tag not in _ROOTS:
        raise ParseError(f"MANSCDP root element <{root.tag}> is not Query/Response/Notify/Control")
    cmd_element = root.find("CmdType")
    if cmd_element is None or not _text(cmd_element):
        raise ParseError(f"MANSCDP <{root.tag}> has no <CmdType>")
    cmd_type = _text(cmd_element)
    cls = _DISPATCH.get((root.tag, cmd_type))
    extra_kwargs: dict[str, Any] = {"raw": bytes(data), "charset": used}
    if cls is None:
        if root.tag == "Response" and cmd_type in _RESULT_RESPONSES:
            cls = ResultResponse
            extra_kwargs["cmd_type"] = cmd_type
        else:
            cls = UnknownMessage
            extra_kwargs["cmd_type"] = cmd_type
            extra_kwargs["root"] = root.tag
    return _decode_message(cls, root, extra_kwargs)
