"""RTSP (RFC 2326 as cameras speak it, RFC 7826 where it helps), sans-IO: codec, client and server machines.

* Codec: `RtspRequest` / `RtspResponse` with `serialize()`, `Headers` (ordered, case-insensitive, original case
  kept), `parse_message(data)`, and `MessageReader`, the incremental parser of the mixed TCP stream of messages and
  `$`-framed `InterleavedData` (bounded by `DEFAULT_MAX_MESSAGE_SIZE`; overflow is a RemoteProtocolError with
  status_hint 413).
* Header values: `Transport` / `parse_transport`, `SessionHeader` / `parse_session`, `RtpInfo` /
  `parse_rtp_info` / `serialize_rtp_info`, `RtspRange` / `parse_range`, `parse_public`.
* `RtspClientConnection`: OPTIONS, DESCRIBE (SDP -> `Track`s with resolved control URLs), SETUP over TCP
  interleaved or UDP, PLAY, PAUSE, TEARDOWN; Basic and Digest auth; redirects; keepalive and reply timeouts via
  `get_timer()` / `handle_timer(now)`.
* `RtspServerConnection`: answers OPTIONS and GET_PARAMETER itself, turns DESCRIBE/SETUP/PLAY/PAUSE/TEARDOWN into
  events for the driver, checks Digest auth, sessions (454), states (455), transports (461); session timeout;
  `send_interleaved`.
* States and their tables: `ClientState`, `ServerState`, `CLIENT_TRANSITIONS`, `SERVER_TRANSITIONS`.

Both machines follow the stream contract: `receive_data(data)` (b"" = EOF), `next_event()` -> event or
`NEED_DATA`, `data_to_send()`.
"""

from __future__ import annotations

from ._client import DEFAULT_REPLY_TIMEOUT as DEFAULT_REPLY_TIMEOUT
from ._client import DEFAULT_SESSION_TIMEOUT as DEFAULT_SESSION_TIMEOUT
from ._client import DEFAULT_USER_AGENT as DEFAULT_USER_AGENT
from ._client import RtspClientConnection as RtspClientConnection
from ._client import resolve_control as resolve_control
from ._client import tracks_from_sdp as tracks_from_sdp
from ._codec import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from ._codec import REASONS as REASONS
from ._codec import Headers as Headers
from ._codec import InterleavedData as InterleavedData
from ._codec import MessageReader as MessageReader
from ._codec import RtspRequest as RtspRequest
from ._codec import RtspResponse as RtspResponse
from ._codec import parse_message as parse_message
from ._events import NEED_DATA as NEED_DATA
from ._events import AuthenticationFailed as AuthenticationFailed
from ._events import ConnectionClosed as ConnectionClosed
from ._events import Described as Described
from ._events import DescribeRequest as DescribeRequest
from ._events import Event as Event
from ._events import GetParameterRequest as GetParameterRequest
from ._events import NeedData as NeedData
from ._events import OptionsReplied as OptionsReplied
from ._events import OptionsRequest as OptionsRequest
from ._events import Paused as Paused
from ._events import PauseRequest as PauseRequest
from ._events import Playing as Playing
from ._events import PlayRequest as PlayRequest
from ._events import Redirect as Redirect
from ._events import ReplyTimeout as ReplyTimeout
from ._events import RequestFailed as RequestFailed
from ._events import ServerRequest as ServerRequest
from ._events import SessionExpired as SessionExpired
from ._events import SetUp as SetUp
from ._events import SetupRequest as SetupRequest
from ._events import TeardownRequest as TeardownRequest
from ._events import TornDown as TornDown
from ._events import Track as Track
from ._headers import RtpInfo as RtpInfo
from ._headers import RtspRange as RtspRange
from ._headers import SessionHeader as SessionHeader
from ._headers import Transport as Transport
from ._headers import parse_public as parse_public
from ._headers import parse_range as parse_range
from ._headers import parse_rtp_info as parse_rtp_info
from ._headers import parse_session as parse_session
from ._headers import parse_transport as parse_transport
from ._headers import serialize_rtp_info as serialize_rtp_info
from ._server import DEFAULT_PUBLIC as DEFAULT_PUBLIC
from ._server import DEFAULT_SERVER_NAME as DEFAULT_SERVER_NAME
from ._server import DEFAULT_SERVER_SESSION_TIMEOUT as DEFAULT_SERVER_SESSION_TIMEOUT
from ._server import RtspServerConnection as RtspServerConnection
from ._state import CLIENT_TRANSITIONS as CLIENT_TRANSITIONS
from ._state import SERVER_TRANSITIONS as SERVER_TRANSITIONS
from ._state import ClientInput as ClientInput
from ._state import ClientState as ClientState
from ._state import ServerInput as ServerInput
from ._state import ServerState as ServerState

__all__ = [
    "CLIENT_TRANSITIONS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PUBLIC",
    "DEFAULT_REPLY_TIMEOUT",
    "DEFAULT_SERVER_NAME",
    "DEFAULT_SERVER_SESSION_TIMEOUT",
    "DEFAULT_SESSION_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "NEED_DATA",
    "REASONS",
    "SERVER_TRANSITIONS",
    "AuthenticationFailed",
    "ClientInput",
    "ClientState",
    "ConnectionClosed",
    "DescribeRequest",
    "Described",
    "Event",
    "GetParameterRequest",
    "Headers",
    "InterleavedData",
    "MessageReader",
    "NeedData",
    "OptionsReplied",
    "OptionsRequest",
    "PauseRequest",
    "Paused",
    "PlayRequest",
    "Playing",
    "Redirect",
    "ReplyTimeout",
    "RequestFailed",
    "RtpInfo",
    "RtspClientConnection",
    "RtspRange",
    "RtspRequest",
    "RtspResponse",
    "RtspServerConnection",
    "ServerInput",
    "ServerRequest",
    "ServerState",
    "SessionExpired",
    "SessionHeader",
    "SetUp",
    "SetupRequest",
    "TeardownRequest",
    "TornDown",
    "Track",
    "Transport",
    "parse_message",
    "parse_public",
    "parse_range",
    "parse_rtp_info",
    "parse_session",
    "parse_transport",
    "resolve_control",
    "serialize_rtp_info",
    "tracks_from_sdp",
]
