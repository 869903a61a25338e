"""A sans-IO SIP user agent: transactions, dialogs and digest authentication behind one object.

Strategy: `SipUserAgent` owns the transactions (keyed as RFC 3261 §17.1.3/§17.2.3 say), the dialogs (keyed by
Call-ID and tags) and an event queue. Bytes come in through `receive_datagram` (UDP: one message per datagram) or
`receive_data` (a stream per peer address, Content-Length framed); every outgoing message lands in one outbox of
`(bytes, addr)` that `datagrams_to_send` (alias `messages_to_send`) drains, so the driver needs no knowledge of
SIP. Time enters only as `now`: `get_timer()` is the earliest transaction deadline and `handle_timer(now)` fires
them. Tags, branches, Call-IDs and cnonces come from the injected `random.Random`.

What the user agent does on its own, and nothing more:
* absorbs retransmissions and re-sends responses/requests (the transactions);
* answers 100 Trying to an INVITE, 481 to an in-dialog request for an unknown dialog, 500 to an out-of-order
  in-dialog CSeq (RFC 3261 §12.2.2), and a 400 (or the parser's status hint) to an unparsable request;
* as a UAC: sends the ACK for a 2xx (§13.2.2.4; again for each 2xx retransmission) and retries a request once
  with credentials after a 401/407 (again if the server says `stale=true`);
* as a UAS with `authenticator` set: checks the Digest credentials of requests in `auth_methods` (REGISTER by
  default) and answers 401 (a new challenge; `stale=true` for an expired nonce) or 403 (wrong password or unknown
  user, GB/T 28181-2016 §9.1.2) itself; only authenticated requests reach the TU.
Everything else (answering requests, sending BYE...) is the caller's decision, through events and methods.
Responses go back to the address the request came from (RFC 3581 symmetric response), with `received`/`rport`
filled into the top Via.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.digest import DigestClient, DigestServer, DigestVerdict, parse_authorization

from ._dialog import Addr, Dialog, DialogState
from ._headers import Headers, split_comma_list
from ._message import (
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_MESSAGE_SIZE,
    SipMessage,
    SipRequest,
    SipResponse,
    _build,
    _find_head_end,
    _parse_head,
    make_response,
    parse_message,
)
from ._state import TransactionState
from ._stream import NEED_DATA, ConnectionClosed, SipStreamParser
from ._transaction import MAGIC_COOKIE, ClientTransaction, ServerTransaction, TimerConfig, server_key

if TYPE_CHECKING:
    import random

__all__ = [
    "DEFAULT_MAX_DIALOGS",
    "DEFAULT_MAX_TRANSACTIONS",
    "AckReceived",
    "RequestReceived",
    "ResponseReceived",
    "SipEvent",
    "SipUserAgent",
    "TransactionTimedOut",
    "UserAgentStatistics",
]

#: Live transactions kept at once; requests beyond it are dropped and counted.
DEFAULT_MAX_TRANSACTIONS = 4096
#: Dialogs kept at once; a dialog-creating request beyond it is answered 503.
DEFAULT_MAX_DIALOGS = 4096

_RELIABLE = frozenset({"TCP", "TLS", "WS", "WSS"})
_TARGET_REFRESH = frozenset({"INVITE", "SUBSCRIBE", "NOTIFY", "UPDATE"})


class SipEvent:
    """Base class of the user agent's events."""

    __slots__ = ()


@attrs.frozen(kw_only=True, slots=True)
class RequestReceived(SipEvent):
    """A new request for the TU: answer it with `SipUserAgent.respond(request, status, now)`.

    Attributes:
        request: the request.
        addr: where it came from (and where the response goes).
        dialog: the dialog it belongs to, if any.
        username: the Digest user name it authenticated as (only with an `authenticator`).
    """

    request: SipRequest
    addr: Addr
    dialog: Dialog | None = None
    username: str | None = None


@attrs.frozen(kw_only=True, slots=True)
class ResponseReceived(SipEvent):
    """A response to one of our requests (provisional ones too; not retransmissions, not the 401 we retried).

    `dialog` is the dialog a 2xx to INVITE/SUBSCRIBE created (or the one the request was sent in).
    """

    response: SipResponse
    request: SipRequest
    addr: Addr
    dialog: Dialog | None = None


@attrs.frozen(kw_only=True, slots=True)
class AckReceived(SipEvent):
    """The ACK for our 2xx to an INVITE: the session is up (RFC 3261 §13.3.1.4)."""

    request: SipRequest
    dialog: Dialog | None


@attrs.frozen(kw_only=True, slots=True)
class TransactionTimedOut(SipEvent):
    """No final response came (Timer B/F: treat as 408), or no ACK for our final response (Timer H/L)."""

    request: SipRequest
    client: bool


@attrs.frozen(kw_only=True, slots=True)
class UserAgentStatistics:
    """Counters of `SipUserAgent.statistics()`."""

    transactions: int
    dialogs: int
    malformed: int
    dropped: int
    stray_responses: int


class SipUserAgent:
    """A SIP user agent core, client and server at once.

    Args:
        user: our user part (GB28181: the 20-digit device or platform ID).
        host, port: our transport address, written in Via and Contact.
        rng: source of tags, branches, Call-IDs and cnonces.
        domain: the domain in our From/To URIs (GB28181: the 10-digit domain ID); defaults to host:port.
        transport: "UDP" (retransmissions on) or "TCP"/"TLS" (reliable: none).
        password: our password, to answer 401/407 challenges (None: challenges go to the TU as responses).
        authenticator: with `lookup`, check incoming requests' Digest credentials (see module docstring).
        lookup: username -> password (None for unknown users).
        auth_methods: which incoming methods `authenticator` guards.
        timers: T1/T2/T4.
        user_agent: the User-Agent / Server header value ("" to omit).
        max_message_size, max_transactions, max_dialogs: bounds.
    """

    def __init__(
        self,
        *,
        user: str,
        host: str,
        port: int,
        rng: random.Random,
        domain: str | None = None,
        transport: str = "UDP",
        password: str | None = None,
        authenticator: DigestServer | None = None,
        lookup: Callable[[str], str | None] | None = None,
        auth_methods: frozenset[str] = frozenset({"REGISTER"}),
        timers: TimerConfig | None = None,
        user_agent: str = "fluxkit",
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_transactions: int = DEFAULT_MAX_TRANSACTIONS,
        max_dialogs: int = DEFAULT_MAX_DIALOGS,
    ) -> None:
        if (authenticator is None) != (lookup is None):
            raise LocalProtocolError("authenticator and lookup go together")
        self.user = user
        self.host = host
        self.port = port
        self.domain = domain or f"{host}:{port}"
        self.transport = transport.upper()
        self.reliable = self.transport in _RELIABLE
        self.timers = timers or TimerConfig()
        self.user_agent = user_agent
        self.authenticator = authenticator
        self.lookup = lookup
        self.auth_methods = auth_methods
        self.max_message_size = max_message_size
        self.max_transactions = max_transactions
        self.max_dialogs = max_dialogs
        self._rng = rng
        self._digest = DigestClient(user, password, rng) if password is not None else None
        self._clients: dict[tuple[str, str], tuple[ClientTransaction, Addr, Dialog | None, int]] = {}
        self._servers: dict[tuple[str, str, str], tuple[ServerTransaction, Addr, str]] = {}
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        self._acks: dict[tuple[str, str, str], SipRequest] = {}  # dialog id -> ACK to re-send on 2xx retransmit
        self._cseq: dict[str, int] = {}  # out-of-dialog Call-ID -> last CSeq (REGISTER refreshes reuse both)
        self._streams: dict[Addr, SipStreamParser] = {}
        self._events: deque[SipEvent] = deque()
        self._out: list[tuple[bytes, Addr]] = []
        self._malformed = 0
        self._dropped = 0
        self._stray = 0

    # ---- identifiers -------------------------------------------------------------------------------------------

    def new_branch(self) -> str:
        """A fresh RFC 3261 branch: the magic cookie and 64 random bits."""
        return f"{MAGIC_COOKIE}{self._rng.getrandbits(64):016x}"

    def new_tag(self) -> str:
        """A fresh From/To tag (32 random bits)."""
        return f"{self._rng.getrandbits(32):08x}"

    def new_call_id(self) -> str:
        """A fresh Call-ID: 96 random bits at our host."""
        return f"{self._rng.getrandbits(96):024x}@{self.host}"

    @property
    def local_uri(self) -> str:
        """Our address-of-record, `sip:user@domain`."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        """Our Contact value."""
        transport = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return f"<sip:{self.user}@{self.host}:{self.port}{transport}>"

    def _via(self) -> str:
        return f"SIP/2.0/{self.transport} {self.host}:{self.port};rport;branch={self.new_branch()}"

    # ---- I/O ---------------------------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Feed one received datagram (a whole message; bare CRLF keepalives are ignored)."""
        if not data.strip(b"\r\n"):
            return
        try:
            message = parse_message(data, max_size=self.max_message_size)
        except ProtocolError as exc:
            self._malformed += 1
            self._answer_malformed(data, exc, addr)
            return
        self._dispatch(message, addr, now)

    def receive_data(self, data: bytes, addr: Addr, now: float) -> None:
        """Feed bytes of the stream connected to `addr` (`b""` at EOF).

        Raises:
            RemoteProtocolError: the stream is broken (the driver closes it); `connection_lost` is implied.
        """
        parser = self._streams.get(addr)
        if parser is None:
            parser = self._streams[addr] = SipStreamParser(max_message_size=self.max_message_size)
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    return
                if isinstance(event, ConnectionClosed):
                    self.connection_lost(addr)
                    return
                assert isinstance(event, SipRequest | SipResponse)
                self._dispatch(event, addr, now)
        except RemoteProtocolError:
            self._malformed += 1
            self.connection_lost(addr)
            raise

    def connection_lost(self, addr: Addr) -> None:
        """The stream to `addr` is gone: forget its parser, fail the transactions that needed it."""
        self._streams.pop(addr, None)
        for key, (tx, tx_addr, _, _) in list(self._clients.items()):
            if tx_addr == addr:
                tx.transport_error()
                if tx.state is TransactionState.TERMINATED:
                    del self._clients[key]
                    self._events.append(TransactionTimedOut(request=tx.request, client=True))
        for skey, (stx, stx_addr, _) in list(self._servers.items()):
            if stx_addr == addr:
                stx.transport_error()
                if stx.terminated:
                    del self._servers[skey]

    def datagrams_to_send(self, now: float | None = None) -> list[tuple[bytes, Addr]]:
        """Every message queued since the last call, serialized, with its destination (streams too)."""
        out, self._out = self._out, []
        return out

    messages_to_send = datagrams_to_send

    def next_event(self) -> SipEvent | None:
        """The next event for the TU, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest time `handle_timer` must run, or None."""
        deadlines = [t for t in (tx.get_timer() for tx, *_ in self._clients.values()) if t is not None]
        deadlines += [t for t in (tx.get_timer() for tx, *_ in self._servers.values()) if t is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Fire every due timer: retransmissions, timeouts (`TransactionTimedOut`), clean-up."""
        for key, (tx, addr, _, _) in list(self._clients.items()):
            t = tx.get_timer()
            if t is not None and t <= now:
                if tx.handle_timer(now):
                    self._events.append(TransactionTimedOut(request=tx.request, client=True))
                self._pump(tx, addr)
                if tx.terminated:
                    del self._clients[key]
        for skey, (stx, saddr, _) in list(self._servers.items()):
            t = stx.get_timer()
            if t is not None and t <= now:
                if stx.handle_timer(now):
                    self._events.append(TransactionTimedOut(request=stx.request, client=False))
                self._pump(stx, saddr)
                if stx.terminated:
                    del self._servers[skey]

    def statistics(self) -> UserAgentStatistics:
        """Counters: live transactions and dialogs, malformed messages, dropped requests, stray responses."""
        return UserAgentStatistics(
            transactions=len(self._clients) + len(self._servers),
            dialogs=len(self._dialogs),
            malformed=self._malformed,
            dropped=self._dropped,
            stray_responses=self._stray,
        )

    @property
    def dialogs(self) -> list[Dialog]:
        """Live dialogs."""
        return list(self._dialogs.values())

    def _send(self, message: SipMessage, addr: Addr) -> None:
        self._out.append((message.serialize(), addr))

    def _pump(self, tx: ClientTransaction | ServerTransaction, addr: Addr) -> None:
        for message in tx.messages_to_send():
            self._send(message, addr)

    def _answer_malformed(self, data: bytes, exc: ProtocolError, addr: Addr) -> None:
        # Answer only when the request's transaction headers can be read (RFC 3261 §8.2; never answer a
        # response or a request we cannot address a response to).
        if data.startswith(b"SIP/") or exc.status_hint is None:
            return
        try:
            start = len(data) - len(data.lstrip(b"\r\n"))
            head_end, _ = _find_head_end(data, start)
            if head_end < 0 or head_end > self.max_message_size:
                return
            request = _build(*_parse_head(data[start:head_end], DEFAULT_MAX_HEADERS), b"")
        except ProtocolError:
            return
        if not isinstance(request, SipRequest) or request.method == "ACK":
            return
        try:
            request.via, request.cseq, request.from_, request.to, request.call_id  # noqa: B018 - validation
        except ProtocolError:
            return
        response = make_response(request, exc.status_hint, reason=None)
        self._send(response, addr)

    # ---- dispatch ----------------------------------------------------------------------------------------------

    def _dispatch(self, message: SipMessage, addr: Addr, now: float) -> None:
        try:
            if isinstance(message, SipResponse):
                self._on_response(message, addr, now)
            else:
                self._on_request(message, addr, now)
        except ProtocolError as exc:  # headers the transaction layer needs are unreadable
            self._malformed += 1
            if isinstance(message, SipRequest):
                try:
                    data = message.serialize()
                except ProtocolError:
                    return
                self._answer_malformed(data, exc, addr)

    def _on_response(self, response: SipResponse, addr: Addr, now: float) -> None:
        cseq = response.cseq
        key = (response.via.branch or "", cseq.method)
        entry = self._clients.get(key)
        if entry is None:
            self._stray_response(response, addr)
            return
        tx, tx_addr, dialog, attempts = entry
        passed = tx.receive_response(response, now)
        self._pump(tx, tx_addr)
        if tx.terminated:
            del self._clients[key]
        if not passed:
            return
        request = tx.request
        status = response.status_code
        if status in (401, 407) and self._retry_with_auth(request, response, tx_addr, dialog, attempts, now):
            return
        if 200 <= status < 300 and request.method in ("INVITE", "SUBSCRIBE") and dialog is None:
            dialog = self._uac_dialog(request, response, addr)
        elif 200 <= status < 300 and request.method == "INVITE" and dialog is not None:
            self._send_ack(dialog, request, response)  # re-INVITE
        self._events.append(ResponseReceived(response=response, request=request, addr=addr, dialog=dialog))

    def _stray_response(self, response: SipResponse, addr: Addr) -> None:
        # A 2xx retransmission for an INVITE whose transaction is gone: re-send the ACK (RFC 3261 §13.2.2.4).
        if 200 <= response.status_code < 300 and response.cseq.method == "INVITE":
            did = (response.call_id, response.from_.tag or "", response.to.tag or "")
            ack = self._acks.get(did)
            dialog = self._dialogs.get(did)
            if ack is not None and dialog is not None:
                self._send(ack, dialog.remote_addr)
                return
        self._stray += 1

    def _uac_dialog(self, request: SipRequest, response: SipResponse, addr: Addr) -> Dialog:
        did = (response.call_id, response.from_.tag or "", response.to.tag or "")
        dialog = self._dialogs.get(did)
        if dialog is None:
            dialog = Dialog.from_uac(request, response, addr)
            if len(self._dialogs) < self.max_dialogs:
                self._dialogs[dialog.id] = dialog
        if request.method == "INVITE":
            self._send_ack(dialog, request, response)
        return dialog

    def _send_ack(self, dialog: Dialog, request: SipRequest, response: SipResponse) -> None:
        # RFC 3261 §13.2.2.4: ACK for a 2xx is built by the dialog, new branch, CSeq number of the INVITE.
        dialog.invite_seq = request.cseq.seq
        ack = dialog.build_request(
            "ACK", via=self._via(), contact=None, cseq=request.cseq.seq, headers=self._auth_copy(request)
        )
        self._acks[dialog.id] = ack
        self._send(ack, dialog.remote_addr)

    @staticmethod
    def _auth_copy(request: SipRequest) -> list[tuple[str, str]]:
        return [(n, v) for n, v in request.headers.fields if n in ("Authorization", "Proxy-Authorization")]

    def _retry_with_auth(
        self,
        request: SipRequest,
        response: SipResponse,
        addr: Addr,
        dialog: Dialog | None,
        attempts: int,
        now: float,
    ) -> bool:
        if self._digest is None or attempts >= 3:
            return False
        header = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
        values = response.headers.get_all(header)
        if not values:
            return False
        try:
            challenge = self._digest.challenge(values)
        except ProtocolError:
            return False
        if attempts > 0 and not challenge.stale:
            return False  # we already answered a challenge: the password is wrong
        seq = self._next_cseq(request.call_id, dialog)
        credentials = self._digest.authorization(request.method, request.uri)
        assert credentials is not None
        auth_name = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        fields: list[tuple[str, str]] = [("Via", self._via())]  # a new transaction: a new branch
        for name, value in request.headers.fields:
            if name == "Via":
                continue
            if name == "CSeq":
                fields.append(("CSeq", f"{seq} {request.method}"))
            elif name not in ("Authorization", "Proxy-Authorization"):
                fields.append((name, value))
        fields.append((auth_name, credentials))
        retry = attrs.evolve(request, headers=Headers(fields))
        self._start_client(retry, addr, dialog, now, attempts + 1)
        return True

    def _next_cseq(self, call_id: str, dialog: Dialog | None) -> int:
        if dialog is not None:
            return dialog.next_seq(self._rng.randrange(1, 1 << 16))
        seq = self._cseq.pop(call_id, 0) + 1
        self._cseq[call_id] = seq  # re-inserted last: the dict is ordered by use
        if len(self._cseq) > self.max_transactions:
            del self._cseq[next(iter(self._cseq))]  # bounded: forget the least recently used Call-ID
        return seq

    def _on_request(self, request: SipRequest, addr: Addr, now: float) -> None:
        request = self._stamp_via(request, addr)
        key = server_key(request)
        entry = self._servers.get(key)
        if entry is not None:
            tx, tx_addr, _ = entry
            passed = tx.receive_request(request, now)
            self._pump(tx, tx_addr)
            if passed:
                self._events.append(AckReceived(request=request, dialog=self._find_dialog(request)))
            return
        if request.method == "ACK":
            self._on_ack(request, now)
            return
        if len(self._servers) >= self.max_transactions:
            self._dropped += 1
            return
        request.cseq, request.from_, request.to, request.call_id  # noqa: B018 - raises ProtocolError if malformed
        tx = ServerTransaction(request, now=now, reliable=self.reliable, config=self.timers)
        to_tag = request.to.tag
        self._servers[key] = (tx, addr, to_tag or self.new_tag())
        if request.method == "INVITE":
            tx.send_response(make_response(request, 100), now)
            self._pump(tx, addr)
        dialog = None
        if to_tag is not None:
            dialog = self._find_dialog(request)
            if dialog is None:
                if not (request.method == "NOTIFY" and (dialog := self._early_notify(request, addr)) is not None):
                    self.respond(request, 481, now)
                    return
            elif dialog.remote_seq is not None and request.cseq.seq <= dialog.remote_seq:
                self.respond(request, 500, now, reason="CSeq Out of Order")
                return
            dialog.remote_seq = request.cseq.seq
            if request.method in _TARGET_REFRESH and (contact := request.contact) is not None:
                dialog.remote_target = contact.uri  # target refresh (RFC 3261 §12.2.2)
            dialog.remote_addr = addr
        username = None
        if self.authenticator is not None and request.method in self.auth_methods:
            username = self._authenticate(request, now)
            if username is None:
                return
        self._events.append(RequestReceived(request=request, addr=addr, dialog=dialog, username=username))

    def _early_notify(self, request: SipRequest, addr: Addr) -> Dialog | None:
        # RFC 6665 §4.1.2.4: a NOTIFY may arrive before the 2xx to our SUBSCRIBE; it creates the dialog.
        for tx, _, dialog, _ in self._clients.values():
            sub = tx.request
            if (
                dialog is None
                and sub.method == "SUBSCRIBE"
                and sub.call_id == request.call_id
                and sub.from_.tag == request.to.tag
            ):
                new = Dialog.from_uas(request, request.to.tag or "", addr)
                new.is_uac, new.method, new.local_seq = True, "SUBSCRIBE", sub.cseq.seq
                if len(self._dialogs) < self.max_dialogs:
                    self._dialogs[new.id] = new
                return new
        return None

    def _stamp_via(self, request: SipRequest, addr: Addr) -> SipRequest:
        # RFC 3261 §18.2.1 received, RFC 3581 rport: where the request really came from.
        vias = request.headers.get_all("Via")
        if not vias:
            return request
        top = request.via
        params = list(top.params)
        changed = False
        if top.host != addr[0]:
            params = [(k, v) for k, v in params if k != "received"] + [("received", addr[0])]
            changed = True
        if top.has_rport:
            params = [(k, str(addr[1]) if k == "rport" else v) for k, v in params]
            changed = True
        if not changed:
            return request
        new_top = attrs.evolve(top, params=tuple(params)).serialize()
        new_first = ", ".join([new_top, *split_comma_list(vias[0])[1:]])  # the first line may hold several
        fields = []
        done = False
        for name, value in request.headers.fields:
            if name == "Via" and not done:
                fields.append((name, new_first))
                done = True
            else:
                fields.append((name, value))
        return attrs.evolve(request, headers=Headers._trusted(tuple(fields)))

    def _authenticate(self, request: SipRequest, now: float) -> str | None:
        assert self.authenticator is not None
        assert self.lookup is not None
        value = request.headers.get("Authorization")
        if value is None:
            self._challenge(request, now, stale=False)
            return None
        verdict = self.authenticator.verify(value, method=request.method, now=now, lookup=self.lookup)
        if verdict is DigestVerdict.OK:
            creds = parse_authorization(value)
            return creds.username
        if verdict in (DigestVerdict.BAD_PASSWORD, DigestVerdict.UNKNOWN_USER):
            self.respond(request, 403, now)  # GB/T 28181-2016 §9.1.2.1: wrong password -> 403
        else:
            self._challenge(request, now, stale=verdict is DigestVerdict.STALE)
        return None

    def _challenge(self, request: SipRequest, now: float, *, stale: bool) -> None:
        assert self.authenticator is not None
        challenge = self.authenticator.challenge(now, stale=stale)
        self.respond(request, 401, now, headers=[("WWW-Authenticate", challenge)])

    def _on_ack(self, request: SipRequest, now: float) -> None:
        # ACK for a 2xx: its own branch, matched to the INVITE transaction by dialog and CSeq (RFC 3261 §17.2.3).
        dialog = self._find_dialog(request)
        if dialog is None:
            self._stray += 1
            return
        for stx, _, _ in self._servers.values():
            inv = stx.request
            if stx.is_invite and inv.call_id == request.call_id and inv.cseq.seq == request.cseq.seq:
                if stx.receive_request(request, now):
                    self._events.append(AckReceived(request=request, dialog=dialog))
                return
        self._events.append(AckReceived(request=request, dialog=dialog))

    def _find_dialog(self, request: SipRequest) -> Dialog | None:
        return self._dialogs.get((request.call_id, request.to.tag or "", request.from_.tag or ""))

    # ---- server role -------------------------------------------------------------------------------------------

    def respond(
        self,
        request: SipRequest,
        status_code: int,
        now: float,
        *,
        reason: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        """Answer a received request (from a `RequestReceived`) and return the response sent.

        The To tag is added (one per transaction); a 2xx to INVITE/SUBSCRIBE creates the dialog (and carries our
        Contact); a 2xx to BYE ends the dialog.

        Raises:
            LocalProtocolError: no such transaction, or it does not allow this response (e.g. already answered).
        """
        entry = self._servers.get(server_key(request))
        if entry is None:
            raise LocalProtocolError(f"no server transaction for {request.method} {request.call_id}")
        tx, addr, to_tag = entry
        extra = list(headers)
        method = request.method
        creates = 200 <= status_code < 300 and method in ("INVITE", "SUBSCRIBE") and request.to.tag is None
        if (creates or (200 <= status_code < 300 and method in _TARGET_REFRESH)) and not any(
            n.lower() in ("contact", "m") for n, _ in extra
        ):
            extra.append(("Contact", self.contact))
        if self.user_agent and not any(n.lower() == "server" for n, _ in extra):
            extra.append(("Server", self.user_agent))
        response = make_response(
            tx.request,
            status_code,
            reason,
            to_tag=to_tag,
            headers=extra,
            body=body,
            content_type=content_type,
        )
        tx.send_response(response, now)
        self._pump(tx, addr)
        if creates:
            new = Dialog.from_uas(tx.request, to_tag, addr)
            if len(self._dialogs) < self.max_dialogs:
                self._dialogs[new.id] = new
            if method == "INVITE":
                new.invite_seq = request.cseq.seq
        elif method == "BYE" and 200 <= status_code < 300:
            ended = self._find_dialog(request)
            if ended is not None:
                self._end_dialog(ended)
        if tx.terminated:
            self._servers.pop(tx.key, None)
        return response

    def _end_dialog(self, dialog: Dialog) -> None:
        dialog.state = DialogState.TERMINATED
        self._dialogs.pop(dialog.id, None)
        self._acks.pop(dialog.id, None)

    # ---- client role -------------------------------------------------------------------------------------------

    def _start_client(
        self, request: SipRequest, addr: Addr, dialog: Dialog | None, now: float, attempts: int = 0
    ) -> SipRequest:
        if len(self._clients) >= self.max_transactions:
            raise LocalProtocolError("too many transactions in progress")
        tx = ClientTransaction(request, now=now, reliable=self.reliable, config=self.timers)
        self._clients[tx.key] = (tx, addr, dialog, attempts)
        self._pump(tx, addr)
        return request

    def request(
        self,
        method: str,
        target: str,
        addr: Addr,
        now: float,
        *,
        to: str | None = None,
        call_id: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """Send an out-of-dialog request to `target` (Request-URI) at transport address `addr`.

        Args:
            to: the To name-addr (default `<target>`).
            call_id: reuse a Call-ID (REGISTER refreshes; the CSeq then counts up), else a new one.
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is sent by the transaction layer, not as a new request")
        call_id = call_id or self.new_call_id()
        seq = self._next_cseq(call_id, None)
        fields: list[tuple[str, str]] = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", f"<{self.local_uri}>;tag={self.new_tag()}"),
            ("To", to or f"<{target}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        if method in ("REGISTER", "INVITE", "SUBSCRIBE", "NOTIFY", "REFER", "UPDATE"):
            fields.append(("Contact", self.contact))
        if self.user_agent:
            fields.append(("User-Agent", self.user_agent))
        fields.extend(headers)
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        request = SipRequest(method=method, uri=target, headers=Headers(fields), body=body)
        return self._start_client(request, addr, None, now)

    def register(
        self,
        registrar: str,
        addr: Addr,
        now: float,
        *,
        expires: int = 3600,
        call_id: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        """Send a REGISTER for our address-of-record to `registrar` (e.g. `sip:34020000002000000001@3402000000`).

        A 401/407 is answered with credentials automatically when a password was given. Pass the previous
        request's `call_id` to refresh (RFC 3261 §10.2.4); `expires=0` unregisters.
        """
        return self.request(
            "REGISTER",
            registrar,
            addr,
            now,
            to=f"<{self.local_uri}>",
            call_id=call_id,
            headers=[("Expires", str(expires)), *headers],
        )

    def message(
        self,
        target: str,
        addr: Addr,
        now: float,
        body: bytes,
        *,
        content_type: str = "Application/MANSCDP+xml",
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        """Send a MESSAGE (RFC 3428), by default with a GB28181 MANSCDP body."""
        return self.request("MESSAGE", target, addr, now, body=body, content_type=content_type, headers=headers)

    def invite(
        self,
        target: str,
        addr: Addr,
        now: float,
        *,
        body: bytes = b"",
        content_type: str | None = "application/sdp",
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        """Send an INVITE; the 2xx creates a dialog (in the `ResponseReceived`) and is ACKed automatically."""
        return self.request(
            "INVITE", target, addr, now, body=body, content_type=content_type if body else None, headers=headers
        )

    def subscribe(
        self,
        target: str,
        addr: Addr,
        now: float,
        *,
        event: str,
        expires: int = 3600,
        body: bytes = b"",
        content_type: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
    ) -> SipRequest:
        """Send a SUBSCRIBE (RFC 6665); its 2xx (or an earlier NOTIFY) creates the dialog."""
        return self.request(
            "SUBSCRIBE",
            target,
            addr,
            now,
            body=body,
            content_type=content_type,
            headers=[("Event", event), ("Expires", str(expires)), *headers],
        )

    def send_in_dialog(
        self,
        dialog: Dialog,
        method: str,
        now: float,
        *,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """Send a request inside `dialog` (BYE, INFO, NOTIFY, MESSAGE, re-INVITE...). BYE ends the dialog."""
        if method == "ACK":
            raise LocalProtocolError("the ACK for a 2xx is sent automatically")
        seq = dialog.next_seq(self._rng.randrange(1, 1 << 16))
        request = dialog.build_request(
            method,
            via=self._via(),
            contact=self.contact,
            cseq=seq,
            headers=[*headers, *((("User-Agent", self.user_agent),) if self.user_agent else ())],
            body=body,
            content_type=content_type,
        )
        self._start_client(request, dialog.remote_addr, dialog, now)
        if method == "BYE":
            self._end_dialog(dialog)  # RFC 3261 §15.1.1: the session ends when the BYE is sent
        return request

    def bye(self, dialog: Dialog, now: float) -> SipRequest:
        """End the session (RFC 3261 §15.1.1)."""
        return self.send_in_dialog(dialog, "BYE", now)

    def info(
        self, dialog: Dialog, now: float, body: bytes, *, content_type: str = "Application/MANSRTSP"
    ) -> SipRequest:
        """Send an INFO in the dialog (GB28181 playback control by default, Appendix B)."""
        return self.send_in_dialog(dialog, "INFO", now, body=body, content_type=content_type)

    def notify(
        self,
        dialog: Dialog,
        now: float,
        *,
        event: str,
        state: str = "active",
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """Send a NOTIFY in a subscription dialog (RFC 6665 §4.2.2); `state` fills Subscription-State."""
        return self.send_in_dialog(
            dialog,
            "NOTIFY",
            now,
            headers=[("Event", event), ("Subscription-State", state)],
            body=body,
            content_type=content_type,
        )

    def find_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> Dialog | None:
        """Look a live dialog up by its ID."""
        return self._dialogs.get((call_id, local_tag, remote_tag))
