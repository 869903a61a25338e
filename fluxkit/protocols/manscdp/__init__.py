"""GB28181 signalling bodies (GB/T 28181-2016), sans-IO.

* MANSCDP (`Application/MANSCDP+xml`): `parse_manscdp(data, charset=None)` returns a typed record (`Keepalive`,
  `CatalogQuery`/`CatalogResponse`/`CatalogNotify`, `DeviceInfo*`, `DeviceStatus*`, `RecordInfoQuery`/
  `RecordInfoResponse`, `DeviceControl`, `ResultResponse`, `Alarm`, `MediaStatus`, `MobilePosition`, `Broadcast`,
  else `UnknownMessage`); every record has `.encode(charset="GB2312") -> bytes`. Decoding is GB18030 unless the
  body is UTF-8, tolerant of Hikvision's bare `&` and `<` in `<Address>`, and refuses DTDs/entities and
  oversize or over-deep XML.
* `ResponseAssembler`: multi-part Catalog/RecordInfo responses keyed by (CmdType, device, SN), complete at SumNum,
  with a deadline from `now`.
* `PtzCommand`: the 8-byte PTZCmd of Appendix A.3 (`PtzCommand.decode(hex)`, `.encode() -> str`).
* MANSRTSP (`Application/MANSRTSP`, Appendix B): `parse_mansrtsp`, `MansrtspRequest`, `MansrtspResponse`.
"""

from __future__ import annotations

from ._assembler import DEFAULT_ASSEMBLY_DEADLINE as DEFAULT_ASSEMBLY_DEADLINE
from ._assembler import DEFAULT_MAX_ITEMS as DEFAULT_MAX_ITEMS
from ._assembler import DEFAULT_MAX_PENDING as DEFAULT_MAX_PENDING
from ._assembler import AssembledResponse as AssembledResponse
from ._assembler import ResponseAssembler as ResponseAssembler
from ._mansrtsp import DEFAULT_MAX_MANSRTSP_SIZE as DEFAULT_MAX_MANSRTSP_SIZE
from ._mansrtsp import MansrtspRequest as MansrtspRequest
from ._mansrtsp import MansrtspResponse as MansrtspResponse
from ._mansrtsp import parse_mansrtsp as parse_mansrtsp
from ._messages import Alarm as Alarm
from ._messages import Broadcast as Broadcast
from ._messages import CatalogItem as CatalogItem
from ._messages import CatalogNotify as CatalogNotify
from ._messages import CatalogQuery as CatalogQuery
from ._messages import CatalogResponse as CatalogResponse
from ._messages import DeviceControl as DeviceControl
from ._messages import DeviceInfoQuery as DeviceInfoQuery
from ._messages import DeviceInfoResponse as DeviceInfoResponse
from ._messages import DeviceStatusQuery as DeviceStatusQuery
from ._messages import DeviceStatusResponse as DeviceStatusResponse
from ._messages import Keepalive as Keepalive
from ._messages import ManscdpMessage as ManscdpMessage
from ._messages import MediaStatus as MediaStatus
from ._messages import MobilePosition as MobilePosition
from ._messages import RecordInfoQuery as RecordInfoQuery
from ._messages import RecordInfoResponse as RecordInfoResponse
from ._messages import RecordItem as RecordItem
from ._messages import ResultResponse as ResultResponse
from ._messages import UnknownMessage as UnknownMessage
from ._messages import parse_manscdp as parse_manscdp
from ._ptz import PtzAction as PtzAction
from ._ptz import PtzCommand as PtzCommand
from ._xml import DEFAULT_MAX_BODY_SIZE as DEFAULT_MAX_BODY_SIZE
from ._xml import DEFAULT_MAX_DEPTH as DEFAULT_MAX_DEPTH

__all__ = [
    "DEFAULT_ASSEMBLY_DEADLINE",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_MANSRTSP_SIZE",
    "DEFAULT_MAX_PENDING",
    "Alarm",
    "AssembledResponse",
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
    "MansrtspRequest",
    "MansrtspResponse",
    "MediaStatus",
    "MobilePosition",
    "PtzAction",
    "PtzCommand",
    "RecordInfoQuery",
    "RecordInfoResponse",
    "RecordItem",
    "ResponseAssembler",
    "ResultResponse",
    "UnknownMessage",
    "parse_manscdp",
    "parse_mansrtsp",
]
