"""The RTSP client machine (RFC 2326 as cameras speak it): OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN.

Strategy: each command (`describe(now=...)`, `setup(track, now=...)`...) checks the state table, writes one
request into the output buffer and records it by CSeq with a reply deadline. Incoming bytes go through the shared
`MessageReader`; `next_event()` returns interleaved frames straight away (the hot path: no lookup, no copy beyond
the slice) and turns each response into events by the CSeq of the request it answers (a response without CSeq
answers the oldest request, as some cameras forget it; one with an unknown CSeq is dropped and counted).

Authentication (RFC 2617, RFC 7616): a 401 is answered once with the credentials (Digest or Basic, via
`fluxkit.protocols.digest.DigestClient`, which then signs every later request); a second 401 for the same request
(or one with no usable credentials) gives `AuthenticationFailed` and no retry, unless the server flagged the nonce
`stale`, which earns one more try. A 3xx with Location gives `Redirect` and closes the machine.

Timers (`get_timer` / `handle_timer(now)`): the earliest reply deadline (a missing reply gives `ReplyTimeout` and
ERROR: never a hang) and, while a session exists and nothing is in flight, the keepalive, due half the session
timeout after the last request sent (RFC 2326 §12.37: any request with the Session header refreshes it). The
keepalive is GET_PARAMETER when the server's Public header lists it, OPTIONS otherwise (and from then on if
GET_PARAMETER is refused). Calls without `now` (auth retries sent from `next_event`) use the latest `now` seen.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit, urlunsplit

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.digest import DigestClient
from fluxkit.protocols.rtp import frame_interleaved
from fluxkit.protocols.sdp import SessionDescription, parse_sdp

from ._codec import DEFAULT_MAX_MESSAGE_SIZE, InterleavedData, MessageReader, RtspRequest, RtspResponse
from ._events import (
    NEED_DATA,
    AuthenticationFailed,
    ConnectionClosed,
    Described,
    Event,
    NeedData,
    OptionsReplied,
    Paused,
    Playing,
    Redirect,
    ReplyTimeout,
    RequestFailed,
    ServerRequest,
    SetUp,
    TornDown,
    Track,
)
from ._headers import RtspRange, Transport, parse_public, parse_range, parse_rtp_info, parse_session, parse_transport
from ._state import CLIENT_TRANSITIONS, ClientInput, ClientState

if TYPE_CHECKING:
    import random

__all__ = [
    "DEFAULT_REPLY_TIMEOUT",
    "DEFAULT_SESSION_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "RtspClientConnection",
]

#: Seconds to wait for a reply before giving up with `ReplyTimeout`.
DEFAULT_REPLY_TIMEOUT = 10.0
#: Session timeout assumed when the server's Session header names none (RFC 2326 §12.37).
DEFAULT_SESSION_TIMEOUT = 60
#: The User-Agent header sent with every request.
DEFAULT_USER_AGENT = "fluxkit"

_SEND = {
    "OPTIONS": ClientInput.SEND_OPTIONS,
    "DESCRIBE": ClientInput.SEND_DESCRIBE,
    "SETUP": ClientInput.SEND_SETUP,
    "PLAY": ClientInput.SEND_PLAY,
    "PAUSE": ClientInput.SEND_PAUSE,
    "TEARDOWN": ClientInput.SEND_TEARDOWN,
    "GET_PARAMETER": ClientInput.SEND_GET_PARAMETER,
}
# Static payload types (RFC 3551 Table 4/5) for m= lines without an rtpmap.
_STATIC_PT: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    14: ("MPA", 90000, None),
    26: ("JPEG", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
}
_SCALE_RE = re.compile(r"-?\d+(?:\.\d+)?\Z")


class _Pending:
    """A request waiting for its reply."""

    __slots__ = ("attempt", "deadline", "extra", "internal", "method", "stale_retry", "track", "uri")

    def __init__(
        self,
        *,
        method: str,
        uri: str,
        extra: list[tuple[str, str]],
        deadline: float,
        track: Track | None,
        internal: bool,
        attempt: int,
        stale_retry: bool,
    ) -> None:
        self.method = method
        self.uri = uri
        self.extra = extra
        self.deadline = deadline
        self.track = track
        self.internal = internal  # a keepalive: its success makes no event
        self.attempt = attempt  # 0, then 1 after an auth retry
        self.stale_retry = stale_retry


def _strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise LocalProtocolError(f"bad RTSP URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps", "rtspu") or not host:
        raise LocalProtocolError(f"not an rtsp:// URL with a host: {url!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return clean, user, password


def resolve_control(base: str, control: str) -> str:
    """The URL of an SDP `a=control` value (RFC 2326 §C.1.1), the way cameras expect it.

    `*` or an empty control is the base itself; an absolute URL stands as is; a path starting with `/` replaces
    the base's path; anything else is appended to the base after one `/` (so `trackID=1` under
    `rtsp://cam/Streaming/Channels/101` gives `.../101/trackID=1`, as ffmpeg and VLC do, even where the base lacks
    its trailing slash and a strict RFC 3986 join would drop the last segment).
    """
    if not control or control == "*":
        return base
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", control):
        return control
    if control.startswith("/"):
        return urljoin(base, control)
    return base + control if base.endswith("/") else f"{base}/{control}"


def tracks_from_sdp(sdp: SessionDescription, base: str) -> tuple[Track, ...]:
    """One `Track` per `m=` section of a parsed SDP, control URLs resolved against `base`."""
    out = []
    for index, media in enumerate(sdp.media):
        control = media.attribute("control") or ""
        pt = int(media.formats[0]) if media.formats and media.formats[0].isdigit() else None
        encoding = clock_rate = channels = None
        fmtp: tuple[tuple[str, str], ...] = ()
        if pt is not None:
            rtpmap = media.rtpmaps.get(pt)
            if rtpmap is not None:
                encoding, clock_rate, channels = rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels
            elif pt in _STATIC_PT:
                encoding, clock_rate, channels = _STATIC_PT[pt]
            params = media.fmtps.get(pt)
            if params is not None:
                fmtp = tuple(params.parameters.items())
        out.append(
            Track(
                index=index,
                url=resolve_control(base, control),
                control=control,
                media=media.media,
                payload_type=pt,
                encoding=encoding,
                clock_rate=clock_rate,
                channels=channels,
                fmtp=fmtp,
            )
        )
    return tuple(out)


class RtspClientConnection:
    """Sans-IO RTSP client for one TCP connection to a camera or server.

    Args:
        url: the presentation URL (`rtsp://[user:pass@]host[:port]/path`); credentials in it are used when
            `username`/`password` are not given, and never sent in the Request-URI.
        username: user name for Basic/Digest authentication.
        password: password.
        rng: random source (Digest cnonces).
        user_agent: the User-Agent header value.
        reply_timeout: seconds to wait for each reply.
        max_message_size: bound on one incoming RTSP message (413-style error above it).

    Contract: `receive_data(data)` (b"" = the peer closed), `next_event()` -> an event or `NEED_DATA`,
    `data_to_send()`, `get_timer()` / `handle_timer(now)`. Commands return the CSeq of the request sent.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        rng: random.Random,
        user_agent: str = DEFAULT_USER_AGENT,
        reply_timeout: float = DEFAULT_REPLY_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.url, url_user, url_password = _strip_userinfo(url)
        username = username if username is not None else url_user
        password = password if password is not None else url_password
        self._auth = DigestClient(username, password or "", rng) if username is not None else None
        self.user_agent = user_agent
        self.reply_timeout = reply_timeout
        self._reader = MessageReader(max_message_size=max_message_size)
        self._state = ClientState.INIT
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._pending: dict[int, _Pending] = {}
        self._cseq = 1
        self._now = 0.0
        self._last_request = 0.0
        self._closed_reported = False
        self._broken = False  # ERROR came from a protocol error (raised again on each next_event)
        self._public: tuple[str, ...] | None = None
        self._keepalive_method: str | None = None
        self.session_id: str | None = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self.base_url = self.url
        self.aggregate_url = self.url
        self.tracks: tuple[Track, ...] = ()
        self.sdp: SessionDescription | None = None
        self._next_channel = 0
        self._channels: dict[int, Track] = {}
        self.unmatched_responses = 0

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """The current `ClientState`."""
        return self._state

    @property
    def public(self) -> tuple[str, ...] | None:
        """The methods of the server's Public header, once an OPTIONS reply told them."""
        return self._public

    @property
    def channels(self) -> dict[int, Track]:
        """Interleaved channel -> track, from the SETUP replies (the RTCP channel maps to its track too)."""
        return dict(self._channels)

    def _transition(self, event: ClientInput) -> None:
        new = CLIENT_TRANSITIONS.get((self._state, event))
        if new is None:
            old = self._state
            if event.name.startswith("SEND_"):
                raise LocalProtocolError(f"cannot send {event.name.removeprefix('SEND_')} in state {old.name}")
            self._state = ClientState.ERROR
            raise RemoteProtocolError(f"unexpected {event.name} in state {old.name}")
        self._state = new

    # -- commands ---------------------------------------------------------------------------------------------

    def options(self, *, now: float) -> int:
        """Send OPTIONS (server-wide `*` is avoided: many cameras refuse it; the presentation URL is used)."""
        return self._request("OPTIONS", self.url, now=now)

    def describe(self, *, now: float) -> int:
        """Send DESCRIBE with `Accept: application/sdp`; the answer gives `Described`."""
        return self._request("DESCRIBE", self.url, now=now, extra=[("Accept", "application/sdp")])

    def setup(
        self,
        track: Track | str,
        *,
        now: float,
        transport: str | Transport = "tcp",
        client_ports: tuple[int, int] | None = None,
        interleaved: tuple[int, int] | None = None,
    ) -> int:
        """Send SETUP for a track (or a control URL).

        Args:
            track: a `Track` from `Described`, or a URL.
            now: the current time.
            transport: "tcp" (interleaved, the next free channel pair unless `interleaved` is given), "udp"
                (unicast, `client_ports` required), or a ready `Transport`.
            client_ports: the local RTP/RTCP ports for UDP.
            interleaved: the channel pair for TCP.
        """
        if isinstance(track, str):
            track = Track(index=-1, url=track)
        if isinstance(transport, Transport):
            spec = transport
        elif transport == "tcp":
            channels = interleaved if interleaved is not None else (self._next_channel, self._next_channel + 1)
            spec = Transport(protocol="RTP/AVP/TCP", unicast=True, interleaved=channels)
        elif transport == "udp":
            if client_ports is None:
                raise LocalProtocolError("a UDP SETUP needs client_ports")
            spec = Transport(protocol="RTP/AVP", unicast=True, client_port=client_ports)
        else:
            raise LocalProtocolError(f"transport must be 'tcp', 'udp' or a Transport, not {transport!r}")
        cseq = self._request("SETUP", track.url, now=now, extra=[("Transport", spec.serialize())], track=track)
        if spec.interleaved is not None:
            self._next_channel = max(self._next_channel, spec.interleaved[1] + 1)
            self._next_channel += self._next_channel & 1
        return cseq

    def play(self, *, now: float, range: RtspRange | str | None = None, scale: float | None = None) -> int:  # noqa: A002
        """Send PLAY on the aggregate URL; `range` defaults to `npt=0.000-` on the first PLAY (cameras want one)."""
        extra: list[tuple[str, str]] = []
        spec = RtspRange.npt(0.0) if range is None and self._state is ClientState.READY else range
        if spec is not None:
            extra.append(("Range", spec if isinstance(spec, str) else spec.serialize()))
        if scale is not None:
            extra.append(("Scale", f"{scale:g}"))
        return self._request("PLAY", self.aggregate_url, now=now, extra=extra)

    def pause(self, *, now: float) -> int:
        """Send PAUSE on the aggregate URL."""
        return self._request("PAUSE", self.aggregate_url, now=now)

    def teardown(self, *, now: float) -> int:
        """Send TEARDOWN on the aggregate URL; `TornDown` follows (whatever the status)."""
        return self._request("TEARDOWN", self.aggregate_url, now=now)

    def get_parameter(self, *, now: float) -> int:
        """Send an empty GET_PARAMETER (a keepalive the caller wants now); its success makes no event."""
        return self._request("GET_PARAMETER", self.aggregate_url, now=now, internal=True)

    def send_interleaved(self, channel: int, data: bytes) -> None:
        """Queue an interleaved frame (an RTCP receiver report on the odd channel, usually)."""
        if self._state in (ClientState.CLOSED, ClientState.ERROR):
            raise LocalProtocolError(f"cannot send in state {self._state.name}")
        self._out.append(frame_interleaved(channel, data))

    def _request(
        self,
        method: str,
        uri: str,
        *,
        now: float,
        extra: list[tuple[str, str]] | None = None,
        track: Track | None = None,
        internal: bool = False,
        attempt: int = 0,
        stale_retry: bool = False,
    ) -> int:
        if self._state in (ClientState.CLOSED, ClientState.ERROR):
            raise LocalProtocolError(f"cannot send {method} in state {self._state.name}")
        self._transition(_SEND[method])
        self._now = max(self._now, now)
        cseq = self._cseq
        self._cseq += 1
        extra = extra or []
        headers = [("CSeq", str(cseq)), ("User-Agent", self.user_agent), *extra]
        if self.session_id is not None and method != "DESCRIBE":
            headers.append(("Session", self.session_id))
        if self._auth is not None:
            value = self._auth.authorization(method, uri)
            if value is not None:
                headers.append(("Authorization", value))
        self._out.append(RtspRequest(method=method, uri=uri, headers=headers).serialize())
        self._pending[cseq] = _Pending(
            method=method,
            uri=uri,
            extra=extra,
            deadline=now + self.reply_timeout,
            track=track,
            internal=internal,
            attempt=attempt,
            stale_retry=stale_retry,
        )
        self._last_request = now
        return cseq

    # -- I/O --------------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the stream; b"" means the server closed it."""
        self._reader.feed(data)

    def data_to_send(self) -> bytes:
        """The bytes to write to the stream (and forget)."""
        if not self._out:
            return b""
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | InterleavedData | NeedData:
        """The next event, or `NEED_DATA`.

        Raises:
            RemoteProtocolError: the server sent bytes that break RTSP, or a reply impossible in the state; the
                machine is then in ERROR (and stays there: every later call raises). After a `ReplyTimeout` the
                machine is in ERROR too, but later calls return `NEED_DATA`.
        """
        if self._events:
            return self._events.popleft()
        if self._state is ClientState.ERROR:
            if self._broken:
                raise RemoteProtocolError("the RTSP client is in ERROR after a protocol error")
            return NEED_DATA  # ERROR after a reply timeout: the ReplyTimeout event said it all
        reader = self._reader
        while True:
            try:
                item = reader.next()
                if item is None:
                    if reader.eof and not self._closed_reported:
                        reader.check_eof()
                        self._closed_reported = True
                        if self._state is not ClientState.CLOSED:
                            self._transition(ClientInput.PEER_CLOSED)
                        return ConnectionClosed()
                    return NEED_DATA
                if type(item) is InterleavedData:
                    return item
                if isinstance(item, RtspResponse):
                    self._on_response(item)
                elif isinstance(item, RtspRequest):
                    self._on_request(item)
            except ProtocolError as exc:
                self._state = ClientState.ERROR
                self._broken = True
                if isinstance(exc, RemoteProtocolError):
                    raise
                raise RemoteProtocolError(str(exc)) from exc
            if self._events:
                return self._events.popleft()

    # -- timers -----------------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When `handle_timer` must next run (a reply deadline or the keepalive), or None."""
        if self._state not in (ClientState.INIT, ClientState.READY, ClientState.PLAYING):
            return None
        if self._pending:
            return min(p.deadline for p in self._pending.values())
        if self.session_id is not None and self._state is not ClientState.INIT:
            return self._last_request + self.session_timeout / 2
        return None

    def handle_timer(self, now: float) -> None:
        """Act on timers due at `now`: a reply overdue gives `ReplyTimeout` (ERROR); a keepalive is sent."""
        self._now = max(self._now, now)
        if self._state not in (ClientState.INIT, ClientState.READY, ClientState.PLAYING):
            return
        overdue = [(cseq, p) for cseq, p in self._pending.items() if p.deadline <= now]
        if overdue:
            cseq, pending = min(overdue, key=lambda item: item[1].deadline)
            self._pending.clear()
            self._transition(ClientInput.FAILED)
            self._events.append(ReplyTimeout(method=pending.method, cseq=cseq))
            return
        if (
            not self._pending
            and self.session_id is not None
            and self._state is not ClientState.INIT
            and now >= self._last_request + self.session_timeout / 2
        ):
            method = self._keepalive_method
            if method is None:
                method = "GET_PARAMETER" if self._public is not None and "GET_PARAMETER" in self._public else "OPTIONS"
            self._request(method, self.aggregate_url if method != "OPTIONS" else self.url, now=now, internal=True)

    # -- replies ----------------------------------------------------------------------------------------------

    def _on_request(self, request: RtspRequest) -> None:
        """A request from the server (RFC 2326 §10: GET_PARAMETER, SET_PARAMETER, OPTIONS, ANNOUNCE, REDIRECT)."""
        method = request.method
        status = 200 if method in ("OPTIONS", "GET_PARAMETER", "SET_PARAMETER", "REDIRECT") else 501
        headers = [("CSeq", request.headers.get("CSeq", "0") or "0")]
        self._out.append(RtspResponse(status_code=status, headers=headers).serialize())
        if method == "REDIRECT":
            location = request.headers.get("Location")
            if location:
                self._pending.clear()
                self._transition(ClientInput.REDIRECTED)
                self._events.append(Redirect(url=location, status_code=None, message=request))
                return
        self._events.append(ServerRequest(request=request))

    def _on_response(self, response: RtspResponse) -> None:
        cseq = response.cseq
        if cseq is None:
            if not self._pending:
                self.unmatched_responses += 1
                return
            cseq = next(iter(self._pending))  # the oldest: dicts keep insertion order
        pending = self._pending.pop(cseq, None)
        if pending is None:
            self.unmatched_responses += 1
            return
        status = response.status_code
        method = pending.method
        if status == 401 or (status == 403 and pending.attempt):
            self._on_unauthorized(pending, response)
            return
        if 300 <= status < 400 and status != 304:
            location = response.headers.get("Location")
            if location:
                self._pending.clear()
                self._transition(ClientInput.REDIRECTED)
                self._events.append(Redirect(url=location, status_code=status, message=response))
                return
        if method == "TEARDOWN":
            self._transition(ClientInput.TEARDOWN_DONE)
            self._reset_session()
            self._events.append(TornDown(response=response))
            return
        if not response.ok:
            if method == "GET_PARAMETER" and pending.internal and status in (405, 451, 501, 551):
                self._keepalive_method = "OPTIONS"  # the server does not do GET_PARAMETER: keep alive with OPTIONS
                return
            self._events.append(
                RequestFailed(method=method, status_code=status, reason=response.reason, response=response)
            )
            return
        if method == "OPTIONS":
            public = response.headers.get("Public")
            if public is not None:
                self._public = parse_public(public)
            if not pending.internal:
                self._events.append(OptionsReplied(public=self._public or (), response=response))
        elif method == "DESCRIBE":
            self._on_described(response)
        elif method == "SETUP":
            self._on_setup(pending, response)
        elif method == "PLAY":
            self._transition(ClientInput.PLAY_OK)
            rtp_info = response.headers.get("RTP-Info")
            range_value = response.headers.get("Range")
            scale = (response.headers.get("Scale") or "").strip()
            try:
                rng = parse_range(range_value) if range_value else None
            except ProtocolError:
                rng = None  # a Range we cannot read changes nothing for a live stream
            self._events.append(
                Playing(
                    rtp_info=tuple(parse_rtp_info(rtp_info)) if rtp_info else (),
                    range=rng,
                    scale=float(scale) if _SCALE_RE.match(scale) else None,
                    response=response,
                )
            )
        elif method == "PAUSE":
            self._transition(ClientInput.PAUSE_OK)
            self._events.append(Paused(response=response))
        # GET_PARAMETER keepalives: nothing to report.

    def _on_unauthorized(self, pending: _Pending, response: RtspResponse) -> None:
        challenges = response.headers.get_all("WWW-Authenticate")
        retry = False
        stale_retry = pending.stale_retry
        if self._auth is not None and challenges and response.status_code == 401:
            try:
                chosen = self._auth.challenge(challenges)
            except ProtocolError:
                chosen = None
            if chosen is not None:
                if pending.attempt == 0:
                    retry = True
                elif chosen.stale and not pending.stale_retry:
                    retry = stale_retry = True
        if not retry:
            if self._auth is not None:
                self._auth.reset()
            self._events.append(
                AuthenticationFailed(
                    method=pending.method, status_code=response.status_code, reason=response.reason, response=response
                )
            )
            return
        # Re-send the same request with credentials (a new CSeq, RFC 2326 §12.17).
        self._request(
            pending.method,
            pending.uri,
            now=self._now,
            extra=pending.extra,
            track=pending.track,
            internal=pending.internal,
            attempt=pending.attempt + 1,
            stale_retry=stale_retry,
        )

    def _on_described(self, response: RtspResponse) -> None:
        headers = response.headers
        base = headers.get("Content-Base") or headers.get("Content-Location")
        base = urljoin(self.url, base.strip()) if base else self.url
        body = response.body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("latin-1")
        sdp = parse_sdp(text)
        session_control = sdp.attribute("control") or ""
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", session_control):
            aggregate = session_control
        else:
            aggregate = base
        self.base_url = base
        self.aggregate_url = aggregate
        self.sdp = sdp
        self.tracks = tracks_from_sdp(sdp, base)
        self._events.append(
            Described(sdp=sdp, tracks=self.tracks, base_url=base, aggregate_url=aggregate, response=response)
        )

    def _on_setup(self, pending: _Pending, response: RtspResponse) -> None:
        session_value = response.headers.get("Session")
        if session_value is None and self.session_id is None:
            raise RemoteProtocolError("SETUP reply without a Session header")
        if session_value is not None:
            session = parse_session(session_value)
            self.session_id = session.session_id
            self.session_timeout = session.timeout or DEFAULT_SESSION_TIMEOUT
        transport_value = response.headers.get("Transport")
        requested = [v for k, v in pending.extra if k == "Transport"]
        if transport_value is None:
            if not requested:
                raise RemoteProtocolError("SETUP reply without a Transport header")
            transport_value = requested[0]  # some cameras omit it: what we asked for stands
        transport = parse_transport(transport_value)[0]
        track = pending.track or Track(index=-1, url=pending.uri)
        if transport.interleaved is not None:
            self._channels[transport.interleaved[0]] = track
            self._channels[transport.interleaved[1]] = track
        self._transition(ClientInput.SETUP_OK)
        assert self.session_id is not None
        self._events.append(
            SetUp(
                track=track,
                transport=transport,
                session_id=self.session_id,
                timeout=self.session_timeout,
                response=response,
            )
        )

    def _reset_session(self) -> None:
        self.session_id = None
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self._channels.clear()
        self._next_channel = 0
