"""SIP (RFC 3261) for GB28181, sans-IO: messages, stream framing, transactions, dialogs, a user agent.

* Messages: `parse_message(data) -> SipRequest | SipResponse` (one datagram), `.serialize() -> bytes`;
  `Headers` (case-insensitive, ordered, compact forms expanded); typed views `Via`, `NameAddress`, `CSeq`;
  `make_response(request, status, ...)`; limits `DEFAULT_MAX_MESSAGE_SIZE`, `DEFAULT_MAX_HEADERS` (513 beyond).
* Streams (TCP): `SipStreamParser` with `receive_data` / `next_event` -> message, `NEED_DATA` or
  `ConnectionClosed`.
* Transactions (RFC 3261 §17, RFC 6026): `ClientTransaction`, `ServerTransaction`, `TimerConfig`; tables in
  `_state.py` (`TransactionState`, `ClientInput`, `ServerInput`, `CLIENT_INVITE`...).
* Dialogs (§12): `Dialog`, `DialogState`.
* `SipUserAgent`: `receive_datagram` / `receive_data` / `datagrams_to_send` / `next_event` / `get_timer` /
  `handle_timer`; `register`, `message`, `invite`, `subscribe`, `request`, `send_in_dialog`, `bye`, `info`,
  `notify`, `respond`; events `RequestReceived`, `ResponseReceived`, `AckReceived`, `TransactionTimedOut`.
Digest authentication lives in `fluxkit.protocols.digest` (shared with RTSP and HTTP).
"""

from __future__ import annotations

from ._dialog import Dialog as Dialog
from ._dialog import DialogState as DialogState
from ._headers import COMPACT_FORMS as COMPACT_FORMS
from ._headers import Headers as Headers
from ._headers import canonical_name as canonical_name
from ._headers import split_comma_list as split_comma_list
from ._message import DEFAULT_MAX_HEADERS as DEFAULT_MAX_HEADERS
from ._message import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from ._message import CSeq as CSeq
from ._message import NameAddress as NameAddress
from ._message import SipMessage as SipMessage
from ._message import SipRequest as SipRequest
from ._message import SipResponse as SipResponse
from ._message import Via as Via
from ._message import make_response as make_response
from ._message import parse_message as parse_message
from ._message import reason_phrase as reason_phrase
from ._state import CLIENT_INVITE as CLIENT_INVITE
from ._state import CLIENT_NON_INVITE as CLIENT_NON_INVITE
from ._state import SERVER_INVITE as SERVER_INVITE
from ._state import SERVER_NON_INVITE as SERVER_NON_INVITE
from ._state import ClientInput as ClientInput
from ._state import ServerInput as ServerInput
from ._state import TransactionState as TransactionState
from ._stream import NEED_DATA as NEED_DATA
from ._stream import ConnectionClosed as ConnectionClosed
from ._stream import NeedData as NeedData
from ._stream import SipStreamParser as SipStreamParser
from ._transaction import ClientTransaction as ClientTransaction
from ._transaction import ServerTransaction as ServerTransaction
from ._transaction import TimerConfig as TimerConfig
from ._ua import DEFAULT_MAX_DIALOGS as DEFAULT_MAX_DIALOGS
from ._ua import DEFAULT_MAX_TRANSACTIONS as DEFAULT_MAX_TRANSACTIONS
from ._ua import AckReceived as AckReceived
from ._ua import RequestReceived as RequestReceived
from ._ua import ResponseReceived as ResponseReceived
from ._ua import SipEvent as SipEvent
from ._ua import SipUserAgent as SipUserAgent
from ._ua import TransactionTimedOut as TransactionTimedOut
from ._ua import UserAgentStatistics as UserAgentStatistics

__all__ = [
    "CLIENT_INVITE",
    "CLIENT_NON_INVITE",
    "COMPACT_FORMS",
    "DEFAULT_MAX_DIALOGS",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_TRANSACTIONS",
    "NEED_DATA",
    "SERVER_INVITE",
    "SERVER_NON_INVITE",
    "AckReceived",
    "CSeq",
    "ClientInput",
    "ClientTransaction",
    "ConnectionClosed",
    "Dialog",
    "DialogState",
    "Headers",
    "NameAddress",
    "NeedData",
    "RequestReceived",
    "ResponseReceived",
    "ServerInput",
    "ServerTransaction",
    "SipEvent",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "SipStreamParser",
    "SipUserAgent",
    "TimerConfig",
    "TransactionState",
    "TransactionTimedOut",
    "UserAgentStatistics",
    "Via",
    "canonical_name",
    "make_response",
    "parse_message",
    "reason_phrase",
    "split_comma_list",
]
