"""The RTSP server machine: one client connection, one session, TCP interleaved or UDP delivery.

Strategy: requests come out of the shared `MessageReader`; checks that need no application knowledge are answered
by the machine itself, in RFC 2326 order: a missing CSeq (400), a version other than 1.x (505), authentication
(401 with a fresh Digest challenge, `stale=true` for an expired nonce; OPTIONS stays open so players can probe),
the Session header (454 Session Not Found), the state table (455), the Transport header (461 Unsupported
Transport when none of the offers is unicast UDP with client ports or TCP), unknown methods (501). OPTIONS and
GET_PARAMETER are answered at once (their events are informational). DESCRIBE, SETUP, PLAY, PAUSE and TEARDOWN
become events the driver answers with `respond_describe`, `accept_setup`, `accept_play`, `accept` or `reject`; the
state moves when the driver accepts (table in `_state`).

The session times out `session_timeout` seconds after the last request carrying it or the last interleaved frame
from the client (RTCP receiver reports; RFC 7826 §18.49 counts them as liveness): `get_timer()` says when, and
`handle_timer(now)` emits `SessionExpired`. `receive_data(data, now=...)` passes the time for nonces and liveness.

Media out: `send_interleaved(channel, packet)` queues a 4-byte header and the packet itself (no concatenation per
packet); `data_to_send()` joins everything once.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import attrs

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.digest import DigestServer, DigestVerdict

from ._codec import DEFAULT_MAX_MESSAGE_SIZE, InterleavedData, MessageReader, RtspRequest, RtspResponse
from ._events import (
    NEED_DATA,
    ConnectionClosed,
    DescribeRequest,
    Event,
    GetParameterRequest,
    NeedData,
    OptionsRequest,
    PauseRequest,
    PlayRequest,
    SessionExpired,
    SetupRequest,
    TeardownRequest,
)
from ._headers import RtpInfo, RtspRange, SessionHeader, Transport, parse_range, parse_session, parse_transport
from ._headers import serialize_rtp_info as _rtp_info_value
from ._state import SERVER_TRANSITIONS, ServerInput, ServerState

if TYPE_CHECKING:
    import random

__all__ = ["DEFAULT_PUBLIC", "DEFAULT_SERVER_NAME", "DEFAULT_SERVER_SESSION_TIMEOUT", "RtspServerConnection"]

#: Session timeout announced in `Session: id;timeout=N`, seconds.
DEFAULT_SERVER_SESSION_TIMEOUT = 60
#: The Server header value.
DEFAULT_SERVER_NAME = "fluxkit"
#: Methods listed in the Public header of OPTIONS replies.
DEFAULT_PUBLIC = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER")

_FRAME_HEADER = struct.Struct(">BBH")
_SESSION_METHODS = frozenset({"PLAY", "PAUSE", "TEARDOWN"})
_ANSWERED_BY_DRIVER = (DescribeRequest, SetupRequest, PlayRequest, PauseRequest, TeardownRequest)
_RequestEvent = DescribeRequest | SetupRequest | PlayRequest | PauseRequest | TeardownRequest


def _url_path(uri: str) -> str:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


class RtspServerConnection:
    """Sans-IO RTSP server for one client connection.

    Args:
        rng: random source (session ids; Digest nonces come from `auth`'s own rng).
        auth: a `DigestServer` to require Digest authentication (shared by connections, so nonces survive a
            reconnect), or None for none.
        lookup: user name -> password (None for unknown), required with `auth`.
        session_timeout: seconds of silence after which the session expires (announced to the client).
        server_name: the Server header value.
        max_message_size: bound on one incoming RTSP message (RemoteProtocolError, status_hint 413).
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        auth: DigestServer | None = None,
        lookup: Callable[[str], str | None] | None = None,
        session_timeout: int = DEFAULT_SERVER_SESSION_TIMEOUT,
        server_name: str = DEFAULT_SERVER_NAME,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        if auth is not None and lookup is None:
            raise LocalProtocolError("auth needs a lookup(username) -> password")
        if session_timeout <= 0:
            raise LocalProtocolError("session_timeout must be positive")
        self._rng = rng
        self._auth = auth
        self._lookup = lookup
        self.session_timeout = session_timeout
        self.server_name = server_name
        self._reader = MessageReader(max_message_size=max_message_size)
        self._state = ServerState.INIT
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._waiting: dict[int, RtspRequest] = {}  # CSeq -> request the driver must answer
        self._now = 0.0
        self._activity = 0.0
        self._closed_reported = False
        self.session_id: str | None = None
        self._channels: dict[int, str] = {}
        self.public = DEFAULT_PUBLIC

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        """The current `ServerState`."""
        return self._state

    @property
    def channels(self) -> dict[int, str]:
        """Interleaved channel -> the path set up on it (RTP and RTCP channels both)."""
        return dict(self._channels)

    def _transition(self, event: ServerInput) -> None:
        new = SERVER_TRANSITIONS.get((self._state, event))
        if new is None:
            raise LocalProtocolError(f"{event.name} is not valid in state {self._state.name}")
        self._state = new

    # -- I/O --------------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes, *, now: float | None = None) -> None:
        """Feed bytes from the stream (b"" = the client closed it); `now` dates them (auth, session liveness)."""
        if now is not None:
            self._now = max(self._now, now)
        self._reader.feed(data)

    def data_to_send(self) -> bytes:
        """The bytes to write to the stream (and forget)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def next_event(self) -> Event | InterleavedData | NeedData:
        """The next event, or `NEED_DATA`.

        Raises:
            RemoteProtocolError: the client sent bytes that break RTSP (413 for an oversized message, 400 else);
                `event_hint` holds the response to send before closing. The machine is then in ERROR.
        """
        if self._events:
            return self._events.popleft()
        if self._state is ServerState.ERROR:
            raise RemoteProtocolError("the RTSP server connection is in ERROR")
        reader = self._reader
        while True:
            try:
                item = reader.next()
                if item is None:
                    if reader.eof and not self._closed_reported:
                        reader.check_eof()
                        self._closed_reported = True
                        if self._state is not ServerState.CLOSED:
                            self._transition(ServerInput.PEER_CLOSED)
                        return ConnectionClosed()
                    return NEED_DATA
            except RemoteProtocolError as exc:
                self._state = ServerState.ERROR
                if exc.event_hint is None:
                    exc.event_hint = RtspResponse(
                        status_code=exc.status_hint or 400, headers=[("CSeq", "0"), ("Server", self.server_name)]
                    )
                raise
            if type(item) is InterleavedData:
                if self.session_id is not None:
                    self._activity = self._now
                return item
            if isinstance(item, RtspRequest):
                self._on_request(item)
            # A response from the client (to a request we never send) is ignored.
            if self._events:
                return self._events.popleft()

    # -- timers -----------------------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the session expires, or None without a session."""
        if self.session_id is None or self._state not in (ServerState.READY, ServerState.PLAYING):
            return None
        return self._activity + self.session_timeout

    def handle_timer(self, now: float) -> None:
        """Expire the session if it has been silent for `session_timeout` seconds (emits `SessionExpired`)."""
        self._now = max(self._now, now)
        deadline = self.get_timer()
        if deadline is not None and now >= deadline:
            session_id = self.session_id
            assert session_id is not None
            self._transition(ServerInput.SESSION_EXPIRED)
            self._drop_session()
            self._events.append(SessionExpired(session_id=session_id))

    def _drop_session(self) -> None:
        self.session_id = None
        self._channels.clear()

    # -- answering --------------------------------------------------------------------------------------------

    def _respond(
        self,
        request: RtspRequest,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        *,
        session: str | None = None,
    ) -> None:
        out = [("CSeq", request.headers.get("CSeq", "0") or "0"), ("Server", self.server_name)]
        if session is not None:
            out.append(("Session", session))
        out.extend(headers)
        self._out.append(RtspResponse(status_code=status, headers=out, body=body).serialize())

    def _take(self, event: _RequestEvent, kind: type[_RequestEvent] | tuple[type[_RequestEvent], ...]) -> None:
        if not isinstance(event, kind):
            raise LocalProtocolError(f"{type(event).__name__} cannot be answered this way")
        cseq = event.request.cseq
        if cseq is None or self._waiting.get(cseq) is not event.request:
            raise LocalProtocolError("this request was already answered (or is not from this connection)")
        del self._waiting[cseq]

    def reject(
        self, event: _RequestEvent, status_code: int, *, reason: str = "", headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Answer a driver-handled request with an error status (404, 461, 457...)."""
        if not 300 <= status_code <= 999:
            raise LocalProtocolError(f"reject needs an error status, not {status_code}")
        self._take(event, _ANSWERED_BY_DRIVER)
        out = [("CSeq", event.request.headers.get("CSeq", "0") or "0"), ("Server", self.server_name), *headers]
        self._out.append(RtspResponse(status_code=status_code, reason=reason, headers=out).serialize())

    def respond_describe(
        self,
        event: DescribeRequest,
        sdp: str | bytes,
        *,
        content_base: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Answer DESCRIBE with an SDP (`Content-Base` defaults to the request URL with a trailing slash)."""
        self._take(event, DescribeRequest)
        body = sdp.encode("utf-8") if isinstance(sdp, str) else sdp
        base = content_base if content_base is not None else event.url.rstrip("/") + "/"
        extra = [("Content-Type", "application/sdp"), ("Content-Base", base), *headers]
        self._respond(event.request, 200, extra, body)

    def accept_setup(
        self,
        event: SetupRequest,
        *,
        transport: Transport | None = None,
        server_port: tuple[int, int] | None = None,
        ssrc: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Transport:
        """Accept SETUP: create the session if needed and answer with the transport; returns that transport.

        Args:
            event: the SetupRequest.
            transport: the transport to answer (default: `event.transport`).
            server_port: the server's RTP/RTCP ports, required for UDP.
            ssrc: the SSRC this track will be sent with, announced in the Transport header.
            headers: extra response headers.
        """
        chosen = transport if transport is not None else event.transport
        if server_port is not None or ssrc is not None:
            chosen = attrs.evolve(
                chosen,
                server_port=server_port if server_port is not None else chosen.server_port,
                ssrc=ssrc if ssrc is not None else chosen.ssrc,
            )
        if not chosen.is_tcp and chosen.server_port is None:
            raise LocalProtocolError("a UDP transport needs server_port")
        if chosen.is_tcp and chosen.interleaved is None:
            raise LocalProtocolError("a TCP transport needs interleaved channels")
        value = chosen.serialize()  # validates before anything changes
        self._take(event, SetupRequest)
        self._transition(ServerInput.SETUP)
        if self.session_id is None:
            self.session_id = f"{self._rng.getrandbits(64):016X}"
        self._activity = self._now
        if chosen.interleaved is not None:
            for channel in chosen.interleaved:
                self._channels[channel] = event.path
        session = SessionHeader(session_id=self.session_id, timeout=self.session_timeout).serialize()
        self._respond(event.request, 200, [("Transport", value), *headers], session=session)
        return chosen

    def accept_play(
        self,
        event: PlayRequest,
        *,
        rtp_info: Iterable[RtpInfo] = (),
        range: RtspRange | None = None,  # noqa: A002
        scale: float | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Accept PLAY (state PLAYING), answering RTP-Info (first seq/rtptime per track), Range and Scale."""
        infos = tuple(rtp_info)
        extra: list[tuple[str, str]] = []
        if range is not None:
            extra.append(("Range", range.serialize()))
        if scale is not None:
            extra.append(("Scale", f"{scale:g}"))
        if infos:
            extra.append(("RTP-Info", _rtp_info_value(infos)))
        extra.extend(headers)
        self._take(event, PlayRequest)
        self._transition(ServerInput.PLAY)
        self._respond(event.request, 200, extra, session=self.session_id)

    def accept(self, event: PauseRequest | TeardownRequest, *, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Accept PAUSE (state READY) or TEARDOWN (the session ends; stop sending its media)."""
        self._take(event, (PauseRequest, TeardownRequest))
        if isinstance(event, PauseRequest):
            self._transition(ServerInput.PAUSE)
            self._respond(event.request, 200, headers, session=self.session_id)
        else:
            self._transition(ServerInput.TEARDOWN)
            self._respond(event.request, 200, headers)
            self._drop_session()

    def send_interleaved(self, channel: int, data: bytes) -> None:
        """Queue one RTP/RTCP packet on an interleaved channel (RFC 2326 §10.12)."""
        n = len(data)
        if n > 0xFFFF or not 0 <= channel <= 0xFF:
            raise LocalProtocolError(f"interleaved frame: channel {channel} / {n} bytes out of range")
        if self._state is ServerState.ERROR or self._state is ServerState.CLOSED:
            raise LocalProtocolError(f"cannot send in state {self._state.name}")
        out = self._out
        out.append(_FRAME_HEADER.pack(0x24, channel, n))
        out.append(data)

    def send_interleaved_many(self, channel: int, packets: Iterable[bytes]) -> None:
        """Queue several packets on one channel (`send_interleaved` in a loop, without the per-call checks)."""
        if not 0 <= channel <= 0xFF:
            raise LocalProtocolError(f"interleaved channel {channel} out of 0..255")
        if self._state is ServerState.ERROR or self._state is ServerState.CLOSED:
            raise LocalProtocolError(f"cannot send in state {self._state.name}")
        pack = _FRAME_HEADER.pack
        append = self._out.append
        for data in packets:
            n = len(data)
            if n > 0xFFFF:
                raise LocalProtocolError(f"interleaved frame of {n} bytes exceeds 65535")
            append(pack(0x24, channel, n))
            append(data)

    # -- requests ---------------------------------------------------------------------------------------------

    def _on_request(self, request: RtspRequest) -> None:
        method = request.method
        headers = request.headers
        if request.cseq is None:
            self._respond(request, 400)  # RFC 2326 §12.17: CSeq MUST be present
            return
        if not request.version.startswith("RTSP/1."):
            self._respond(request, 505)
            return
        if self._auth is not None and method != "OPTIONS" and not self._authorized(request):
            return
        session_id: str | None = None
        session_value = headers.get("Session")
        if session_value is not None:
            try:
                session_id = parse_session(session_value).session_id
            except ProtocolError:
                self._respond(request, 454)
                return
            if session_id != self.session_id:
                self._respond(request, 454)
                return
            self._activity = self._now
        if method == "OPTIONS":
            self._respond(request, 200, [("Public", ", ".join(self.public))], session=session_id)
            self._events.append(OptionsRequest(request=request))
            return
        if method == "GET_PARAMETER":
            self._respond(request, 200, session=session_id)
            self._events.append(GetParameterRequest(request=request, session_id=session_id))
            return
        url = request.uri
        path = _url_path(url)
        if method == "DESCRIBE":
            self._waiting[request.cseq] = request
            self._events.append(DescribeRequest(request=request, url=url, path=path))
            return
        if method not in ("SETUP", "PLAY", "PAUSE", "TEARDOWN"):
            self._respond(request, 501, [("Public", ", ".join(self.public))])
            return
        if method in _SESSION_METHODS and session_id is None:
            self._respond(request, 454)
            return
        if (self._state, ServerInput[method]) not in SERVER_TRANSITIONS:
            self._respond(request, 455, [("Allow", ", ".join(self._allowed()))], session=session_id)
            return
        if method == "SETUP":
            self._on_setup(request, url, path, session_id)
            return
        assert session_id is not None
        if method == "PLAY":
            range_value = headers.get("Range")
            scale_value = headers.get("Scale")
            try:
                rng = parse_range(range_value) if range_value else None
            except ProtocolError:
                self._respond(request, 457, session=session_id)  # RFC 2326 §11.3.9 Invalid Range
                return
            try:
                scale = float(scale_value) if scale_value else None
            except ValueError:
                self._respond(request, 400, session=session_id)
                return
            event: Event = PlayRequest(
                request=request, url=url, path=path, session_id=session_id, range=rng, scale=scale
            )
        elif method == "PAUSE":
            event = PauseRequest(request=request, url=url, path=path, session_id=session_id)
        else:
            event = TeardownRequest(request=request, url=url, path=path, session_id=session_id)
        self._waiting[request.cseq] = request
        self._events.append(event)

    def _allowed(self) -> list[str]:
        return [m for m in self.public if (self._state, ServerInput[m]) in SERVER_TRANSITIONS]

    def _authorized(self, request: RtspRequest) -> bool:
        auth = self._auth
        lookup = self._lookup
        assert auth is not None
        assert lookup is not None
        verdict = auth.verify(request.headers.get("Authorization"), method=request.method, now=self._now, lookup=lookup)
        if verdict is DigestVerdict.OK:
            return True
        challenge = auth.challenge(self._now, stale=verdict is DigestVerdict.STALE)
        self._respond(request, 401, [("WWW-Authenticate", challenge)])
        return False

    def _on_setup(self, request: RtspRequest, url: str, path: str, session_id: str | None) -> None:
        value = request.headers.get("Transport")
        if value is None:
            self._respond(request, 461, session=session_id)
            return
        try:
            offers = parse_transport(value)
        except ProtocolError:
            self._respond(request, 461, session=session_id)
            return
        chosen = self._choose_transport(offers)
        if chosen is None:
            self._respond(request, 461, session=session_id)
            return
        track = path.rstrip("/").rsplit("/", 1)[-1]
        self._waiting[request.cseq] = request  # type: ignore[index]
        self._events.append(
            SetupRequest(
                request=request,
                url=url,
                path=path,
                track=track,
                transport=chosen,
                transports=tuple(offers),
                session_id=session_id,
            )
        )

    def _choose_transport(self, offers: list[Transport]) -> Transport | None:
        """The first offer we can serve: RTP over TCP interleaved, or unicast RTP over UDP with client ports."""
        for offer in offers:
            protocol = offer.protocol.upper()
            if offer.unicast is False or not protocol.startswith("RTP/AVP"):
                continue
            if offer.is_tcp:
                channels = offer.interleaved
                if channels is None or channels[0] in self._channels or channels[1] in self._channels:
                    channels = self._free_channels()
                    if channels is None:
                        continue
                return attrs.evolve(offer, unicast=True, interleaved=channels)
            if protocol in ("RTP/AVP", "RTP/AVP/UDP") and offer.client_port is not None:
                return attrs.evolve(offer, unicast=True)
        return None

    def _free_channels(self) -> tuple[int, int] | None:
        for first in range(0, 255, 2):
            if first not in self._channels and first + 1 not in self._channels:
                return first, first + 1
        return None
