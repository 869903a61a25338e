"""Events the RTSP machines emit (frozen records, one class per fact), and the NEED_DATA sentinel.

Every event subclasses `Event`. `InterleavedData` (from `_codec`) and `ConnectionClosed` come out of both
machines; the others belong to one side. Each reply-driven client event carries the `RtspResponse` it was made
from, and each server request event the `RtspRequest`, so the driver can read any vendor header.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from ._codec import RtspRequest, RtspResponse
from ._headers import RtpInfo, RtspRange, Transport

if TYPE_CHECKING:
    from fluxkit.protocols.sdp import SessionDescription

__all__ = [
    "NEED_DATA",
    "AuthenticationFailed",
    "ConnectionClosed",
    "DescribeRequest",
    "Described",
    "Event",
    "GetParameterRequest",
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
    "ServerRequest",
    "SessionExpired",
    "SetUp",
    "SetupRequest",
    "TeardownRequest",
    "TornDown",
    "Track",
]


class NeedData(enum.Enum):
    """Type of the `NEED_DATA` sentinel: `next_event()` has nothing until more bytes (or a timer) arrive."""

    NEED_DATA = "NEED_DATA"


#: Returned by `next_event()` when no event is ready.
NEED_DATA = NeedData.NEED_DATA


@attrs.frozen(kw_only=True, slots=True)
class Event:
    """Base class of the RTSP events."""


@attrs.frozen(kw_only=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed the stream (emitted once)."""


@attrs.frozen(kw_only=True, slots=True)
class Track:
    """One media stream of a DESCRIBE answer (an SDP `m=` section) with its resolved control URL.

    Attributes:
        index: position of the `m=` line (0-based).
        url: the control URL to SETUP (a=control resolved against Content-Base/Content-Location/request URL).
        control: the `a=control` value as written ("" if absent).
        media: `video`, `audio`, `application`...
        payload_type: the first payload type of the `m=` line, or None.
        encoding: the rtpmap encoding name as written (`H264`, `H265`, `PCMA`, `MPEG4-GENERIC`...), or None.
        clock_rate: the rtpmap clock rate, or None (static payload types 0 and 8 imply 8000).
        channels: the rtpmap channel count, or None.
        fmtp: the `a=fmtp` parameters of that payload type as (name, value) pairs.
    """

    index: int
    url: str
    control: str = ""
    media: str = ""
    payload_type: int | None = None
    encoding: str | None = None
    clock_rate: int | None = None
    channels: int | None = None
    fmtp: tuple[tuple[str, str], ...] = ()

    def fmtp_param(self, name: str) -> str | None:
        """The value of fmtp parameter `name` (case-insensitive), or None."""
        lname = name.lower()
        for k, v in self.fmtp:
            if k.lower() == lname:
                return v
        return None


# -- client events --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=True)
class OptionsReplied(Event):
    """An OPTIONS the caller sent succeeded; `public` lists the methods of the `Public` header (upper case)."""

    public: tuple[str, ...]
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class Described(Event):
    """DESCRIBE succeeded.

    Attributes:
        sdp: the parsed session description (`fluxkit.protocols.sdp.SessionDescription`).
        tracks: one `Track` per `m=` section, in order.
        base_url: the URL relative controls were resolved against.
        aggregate_url: the URL for aggregate PLAY/PAUSE/TEARDOWN (session-level a=control, else `base_url`).
        response: the reply; its body holds the SDP bytes.
    """

    sdp: SessionDescription
    tracks: tuple[Track, ...]
    base_url: str
    aggregate_url: str
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class SetUp(Event):
    """SETUP of `track` succeeded with the server's `transport`; the session id and timeout (seconds) in force."""

    track: Track
    transport: Transport
    session_id: str
    timeout: int
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class Playing(Event):
    """PLAY succeeded: the RTP-Info streams (first seq/rtptime per track), the Range and Scale the server gave."""

    rtp_info: tuple[RtpInfo, ...]
    range: RtspRange | None
    scale: float | None
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class Paused(Event):
    """PAUSE succeeded."""

    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class TornDown(Event):
    """TEARDOWN completed (whatever its status: the session is gone either way); back to INIT."""

    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class Redirect(Event):
    """The server redirected us (3xx with Location, or a REDIRECT request): reconnect to `url`."""

    url: str
    status_code: int | None
    message: RtspResponse | RtspRequest


@attrs.frozen(kw_only=True, slots=True)
class AuthenticationFailed(Event):
    """The server refused our credentials (a second 401, or a 401/403 with no usable credentials). Not retried."""

    method: str
    status_code: int
    reason: str
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class RequestFailed(Event):
    """A request got a non-2xx reply other than auth and redirects (404, 454, 461...); the state is unchanged."""

    method: str
    status_code: int
    reason: str
    response: RtspResponse


@attrs.frozen(kw_only=True, slots=True)
class ReplyTimeout(Event):
    """No reply to the request with `cseq` came within the reply timeout; the machine is in ERROR."""

    method: str
    cseq: int


@attrs.frozen(kw_only=True, slots=True)
class ServerRequest(Event):
    """The server sent us a request (GET_PARAMETER, SET_PARAMETER, ANNOUNCE, OPTIONS); it was already answered."""

    request: RtspRequest


# -- server events --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, slots=True)
class OptionsRequest(Event):
    """The client sent OPTIONS; already answered with the Public list."""

    request: RtspRequest


@attrs.frozen(kw_only=True, slots=True)
class DescribeRequest(Event):
    """The client asks for the description of `url` (`path` is its path); answer with `respond_describe`."""

    request: RtspRequest
    url: str
    path: str


@attrs.frozen(kw_only=True, slots=True)
class SetupRequest(Event):
    """The client asks to set up `url`; answer with `accept_setup` or `reject`.

    Attributes:
        url: the Request-URI; `path` its path and `track` its last path segment (`trackID=1`, `stream=0`).
        transport: the first of the client's transports this server supports (TCP interleaved with channels
            filled in when the client gave none, or unicast UDP with client ports).
        transports: every transport the client offered, in its preference order.
        session_id: the session id the client sent (a later SETUP of the same session), or None.
    """

    request: RtspRequest
    url: str
    path: str
    track: str
    transport: Transport
    transports: tuple[Transport, ...]
    session_id: str | None


@attrs.frozen(kw_only=True, slots=True)
class PlayRequest(Event):
    """The client asks to play (or seek: `range`, change speed: `scale`); answer with `accept_play` or `reject`."""

    request: RtspRequest
    url: str
    path: str
    session_id: str
    range: RtspRange | None
    scale: float | None


@attrs.frozen(kw_only=True, slots=True)
class PauseRequest(Event):
    """The client asks to pause; answer with `accept` or `reject`."""

    request: RtspRequest
    url: str
    path: str
    session_id: str


@attrs.frozen(kw_only=True, slots=True)
class TeardownRequest(Event):
    """The client ends the session; answer with `accept` (then stop sending its media)."""

    request: RtspRequest
    url: str
    path: str
    session_id: str


@attrs.frozen(kw_only=True, slots=True)
class GetParameterRequest(Event):
    """A GET_PARAMETER (usually a keepalive); already answered 200, and it refreshed the session."""

    request: RtspRequest
    session_id: str | None


@attrs.frozen(kw_only=True, slots=True)
class SessionExpired(Event):
    """No request or RTCP from the client within the session timeout: the session is gone (stop its media)."""

    session_id: str
