"""SIP transactions (RFC 3261 §17; RFC 6026 for INVITE 2xx): retransmissions, timers A-M, matching keys.

Strategy: each transaction is a small object around one table of `_state.py`. Inputs (a response, a request
retransmission, our own response, a timer) go through `_step`, which looks the arrow up in the table and then
runs the action the RFC attaches to it. Messages to transmit are queued as `SipMessage` objects
(`messages_to_send()`); timers are absolute deadlines in a dict, `get_timer()` is their minimum and
`handle_timer(now)` fires every due one in deadline order. Retransmission timers are armed only on unreliable
transports (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1); wait timers that are zero on reliable transports are applied
at once. The transaction never reads a clock: `now` comes with every call.
"""

from __future__ import annotations

import attrs

from fluxkit.errors import LocalProtocolError

from ._headers import Headers
from ._message import SipMessage, SipRequest, SipResponse
from ._state import (
    CLIENT_INVITE,
    CLIENT_NON_INVITE,
    SERVER_INVITE,
    SERVER_NON_INVITE,
    ClientInput,
    ServerInput,
    TransactionState,
    transition,
)

__all__ = [
    "ClientTransaction",
    "ServerTransaction",
    "TimerConfig",
    "client_key",
    "server_key",
]

MAGIC_COOKIE = "z9hG4bK"


@attrs.frozen(kw_only=True, slots=True)
class TimerConfig:
    """RFC 3261 §17.1.1.1 timer base values, seconds (T1 RTT estimate, T2 cap, T4 network lifetime)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


def client_key(message: SipMessage) -> tuple[str, str]:
    """Client transaction key: top Via branch and CSeq method (RFC 3261 §17.1.3)."""
    return (message.via.branch or "", message.cseq.method)


def server_key(request: SipRequest) -> tuple[str, str, str]:
    """Server transaction key (RFC 3261 §17.2.3): branch, sent-by and method, ACK matching its INVITE.

    Requests whose branch lacks the RFC 3261 magic cookie (RFC 2543 peers) are keyed by Call-ID, CSeq number,
    From tag and top Via instead (a simplification of §17.2.3's RFC 2543 rules).
    """
    via = request.via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        return (branch, via.sent_by, method)
    legacy = f"{request.call_id}|{request.cseq.seq}|{request.from_.tag}|{via.serialize()}"
    return (legacy, "", method)


def _classify(status: int) -> ClientInput:
    if status < 200:
        return ClientInput.RESPONSE_1XX
    if status < 300:
        return ClientInput.RESPONSE_2XX
    return ClientInput.RESPONSE_300_699


def _classify_send(status: int) -> ServerInput:
    if status < 200:
        return ServerInput.SEND_1XX
    if status < 300:
        return ServerInput.SEND_2XX
    return ServerInput.SEND_300_699


class _Timers:
    __slots__ = ("_deadlines",)

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}

    def arm(self, name: str, at: float) -> None:
        self._deadlines[name] = at

    def disarm(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def clear(self) -> None:
        self._deadlines.clear()

    def next(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def pop_due(self, now: float) -> str | None:
        due = [(at, name) for name, at in self._deadlines.items() if at <= now]
        if not due:
            return None
        _, name = min(due)
        del self._deadlines[name]
        return name


class _Base:
    state: TransactionState

    def __init__(self, *, reliable: bool, config: TimerConfig) -> None:
        self.reliable = reliable
        self.config = config
        self._timers = _Timers()
        self._outbox: list[SipMessage] = []

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over (the owner then drops it)."""
        return self.state is TransactionState.TERMINATED

    def get_timer(self) -> float | None:
        """The earliest deadline at which `handle_timer` must be called, or None."""
        return self._timers.next()

    def messages_to_send(self) -> list[SipMessage]:
        """Messages queued for transmission since the last call, oldest first."""
        out, self._outbox = self._outbox, []
        return out


class ClientTransaction(_Base):
    """An INVITE or non-INVITE client transaction; created with the request, which it queues at once.

    Args:
        request: the request (its top Via carries the branch).
        now: the current time.
        reliable: True over TCP/TLS (no retransmissions, zero wait timers).
        config: T1/T2/T4.
    """

    def __init__(
        self, request: SipRequest, *, now: float, reliable: bool = False, config: TimerConfig | None = None
    ) -> None:
        super().__init__(reliable=reliable, config=config or TimerConfig())
        if request.method == "ACK":
            raise LocalProtocolError("ACK has no client transaction (RFC 3261 §17)")
        self.request = request
        self.is_invite = request.method == "INVITE"
        self.key = client_key(request)
        self.timed_out = False
        self.last_response: SipResponse | None = None
        self._table = CLIENT_INVITE if self.is_invite else CLIENT_NON_INVITE
        t1 = self.config.t1
        self._interval = t1
        if self.is_invite:
            self.state = TransactionState.CALLING
            if not reliable:
                self._timers.arm("A", now + t1)
        else:
            self.state = TransactionState.TRYING
            if not reliable:
                self._timers.arm("E", now + t1)
        self._timers.arm("B" if self.is_invite else "F", now + 64 * t1)
        self._outbox.append(request)

    def _step(self, event: ClientInput) -> TransactionState:
        old = self.state
        self.state = transition(self._table, old, event)
        if self.state is TransactionState.TERMINATED:
            self._timers.clear()
        return old

    def receive_response(self, response: SipResponse, now: float) -> bool:
        """Feed a response matched to this transaction; True if the TU must see it (not a retransmission)."""
        event = _classify(response.status_code)
        old = self._step(event)
        state = self.state
        c = self.config
        if state is TransactionState.PROCEEDING:
            if self.is_invite:
                self._timers.disarm("A", "B")  # §17.1.1.2: no more retransmissions, and B is Calling-only
            elif old is TransactionState.TRYING and not self.reliable:
                self._interval = c.t2
                self._timers.arm("E", now + c.t2)  # §17.1.2.2: retransmit every T2; Timer F keeps running
            self.last_response = response
            return True
        if state is TransactionState.COMPLETED:
            if self.is_invite:
                if event is not ClientInput.RESPONSE_300_699:
                    return False  # a 1xx/2xx after a non-2xx final: absorbed
                self._outbox.append(self._ack_for(response))  # §17.1.1.3, also for retransmissions
                if old is TransactionState.COMPLETED:
                    return False
                self._timers.disarm("A", "B")
                self._enter_wait("D", max(64 * c.t1, 32.0), now)
            else:
                if old is TransactionState.COMPLETED:
                    return False
                self._timers.disarm("E", "F")
                self._enter_wait("K", c.t4, now)
            self.last_response = response
            return True
        if state is TransactionState.ACCEPTED:
            if event is not ClientInput.RESPONSE_2XX:
                return False
            if old is not TransactionState.ACCEPTED:
                self._timers.disarm("A", "B")
                self._timers.arm("M", now + 64 * c.t1)
            self.last_response = response
            return True  # every 2xx goes up: the TU (re-)sends the ACK for it (RFC 6026 §8.4)
        return False

    def _enter_wait(self, name: str, delay: float, now: float) -> None:
        if self.reliable:
            self._step(ClientInput[f"TIMER_{name}"])  # zero on reliable transports
        else:
            self._timers.arm(name, now + delay)

    def _ack_for(self, response: SipResponse) -> SipRequest:
        """The ACK for a non-2xx final response: same branch, hop by hop (RFC 3261 §17.1.1.3)."""
        req = self.request
        fields: list[tuple[str, str]] = [("Via", req.headers.get_list("Via")[0])]
        fields.extend(("Route", r) for r in req.headers.get_all("Route"))
        fields.append(("Max-Forwards", "70"))
        fields.append(("From", req.headers["From"]))
        fields.append(("To", response.headers.get("To") or req.headers["To"]))
        fields.append(("Call-ID", req.headers["Call-ID"]))
        fields.append(("CSeq", f"{req.cseq.seq} ACK"))
        return SipRequest(method="ACK", uri=req.uri, headers=Headers(fields))

    def handle_timer(self, now: float) -> bool:
        """Fire every due timer; True if the transaction timed out (Timer B or F: report 408 to the TU)."""
        c = self.config
        timed_out = False
        while (name := self._timers.pop_due(now)) is not None:
            self._step(ClientInput[f"TIMER_{name}"])
            if name == "A":
                self._interval *= 2
                self._timers.arm("A", now + self._interval)
                self._outbox.append(self.request)
            elif name == "E":
                if self.state is TransactionState.PROCEEDING:
                    self._interval = c.t2
                else:
                    self._interval = min(2 * self._interval, c.t2)
                self._timers.arm("E", now + self._interval)
                self._outbox.append(self.request)
            elif name in ("B", "F"):
                timed_out = self.timed_out = True
        return timed_out

    def transport_error(self) -> None:
        """The transport failed to deliver (RFC 3261 §17.1.4): the transaction ends; tell the TU."""
        self._step(ClientInput.TRANSPORT_ERROR)


class ServerTransaction(_Base):
    """An INVITE or non-INVITE server transaction, created for a received request (not ACK).

    For INVITE, the user agent sends 100 Trying at once through `send_response` (RFC 3261 §17.2.1).
    """

    def __init__(
        self, request: SipRequest, *, now: float, reliable: bool = False, config: TimerConfig | None = None
    ) -> None:
        super().__init__(reliable=reliable, config=config or TimerConfig())
        if request.method == "ACK":
            raise LocalProtocolError("ACK has no server transaction of its own")
        self.request = request
        self.is_invite = request.method == "INVITE"
        self.key = server_key(request)
        self.timed_out = False
        self.acked = False
        self.last_response: SipResponse | None = None
        self._table = SERVER_INVITE if self.is_invite else SERVER_NON_INVITE
        self.state = TransactionState.PROCEEDING if self.is_invite else TransactionState.TRYING
        self._interval = self.config.t1

    def _step(self, event: ServerInput) -> TransactionState:
        old = self.state
        self.state = transition(self._table, old, event)
        if self.state is TransactionState.TERMINATED:
            self._timers.clear()
        return old

    def receive_request(self, request: SipRequest, now: float) -> bool:
        """Feed a retransmission or an ACK matched to this transaction; True if the TU must see it.

        Only the ACK for an INVITE 2xx goes up (it confirms the dialog); everything else is absorbed, with the
        last response re-sent where the RFC says so.
        """
        is_ack = request.method == "ACK"
        old = self._step(ServerInput.ACK if is_ack else ServerInput.REQUEST)
        if not is_ack:
            if self.last_response is not None and old in (TransactionState.PROCEEDING, TransactionState.COMPLETED):
                self._outbox.append(self.last_response)
            return False
        if old is TransactionState.COMPLETED:  # ACK for our non-2xx
            self._timers.disarm("G", "H")
            self.acked = True
            self._enter_wait("I", self.config.t4, now)
            return False
        if old is TransactionState.ACCEPTED and not self.acked:
            self.acked = True
            self._timers.disarm("G")
            return True
        return False

    def send_response(self, response: SipResponse, now: float) -> None:
        """Queue our response; LocalProtocolError if this state does not allow it (e.g. after a final one)."""
        old = self._step(_classify_send(response.status_code))
        self.last_response = response
        self._outbox.append(response)
        c = self.config
        state = self.state
        if state is TransactionState.COMPLETED and old is not TransactionState.COMPLETED:
            if self.is_invite:
                if not self.reliable:
                    self._interval = c.t1
                    self._timers.arm("G", now + c.t1)
                self._timers.arm("H", now + 64 * c.t1)
            else:
                self._enter_wait("J", 64 * c.t1, now)
        elif state is TransactionState.ACCEPTED and old is not TransactionState.ACCEPTED:
            if not self.reliable:  # RFC 3261 §13.3.1.4: retransmit the 2xx until the ACK
                self._interval = c.t1
                self._timers.arm("G", now + c.t1)
            self._timers.arm("L", now + 64 * c.t1)

    def _enter_wait(self, name: str, delay: float, now: float) -> None:
        if self.reliable:
            self._step(ServerInput[f"TIMER_{name}"])
        else:
            self._timers.arm(name, now + delay)

    def handle_timer(self, now: float) -> bool:
        """Fire every due timer; True if the ACK never came (Timer H, or Timer L before any 2xx ACK)."""
        failed = False
        while (name := self._timers.pop_due(now)) is not None:
            self._step(ServerInput[f"TIMER_{name}"])
            if name == "G":
                self._interval = min(2 * self._interval, self.config.t2)
                self._timers.arm("G", now + self._interval)
                assert self.last_response is not None
                self._outbox.append(self.last_response)
            elif name == "H" or (name == "L" and not self.acked):
                failed = self.timed_out = True
        return failed

    def transport_error(self) -> None:
        """The transport failed to deliver our response (RFC 3261 §17.2.4)."""
        self._step(ServerInput.TRANSPORT_ERROR)
