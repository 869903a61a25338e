"""Transaction tables, exhaustively, and the transactions' timers under a fake `now` (RFC 3261 §17, RFC 6026).

Approach (after h2's test_state_machines): every real transaction object is driven into every state it can
reach, then handed every input; the state it lands in must be the table's, and a pair missing from the table
must raise LocalProtocolError. Network inputs (responses, retransmitted requests, ACKs) must have an entry in
every live state: a peer can never make a transaction raise. The armed timers in each state must all be in the
table too, so `handle_timer` cannot raise either.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.protocols.sip import (
    CLIENT_INVITE,
    CLIENT_NON_INVITE,
    SERVER_INVITE,
    SERVER_NON_INVITE,
    ClientInput,
    ClientTransaction,
    Headers,
    ServerInput,
    ServerTransaction,
    SipRequest,
    SipResponse,
    TimerConfig,
    TransactionState,
    make_response,
)
from fluxkit.protocols.sip._state import transition

S = TransactionState


def _request(method: str) -> SipRequest:
    return SipRequest(
        method=method,
        uri="sip:34020000001320000001@3402000000",
        headers=Headers(
            [
                ("Via", "SIP/2.0/UDP 10.0.0.1:5060;rport;branch=z9hG4bKtest1"),
                ("From", "<sip:34020000002000000001@3402000000>;tag=f1"),
                ("To", "<sip:34020000001320000001@3402000000>"),
                ("Call-ID", "call-1"),
                ("CSeq", f"1 {method}"),
                ("Route", "<sip:proxy;lr>"),
            ]
        ),
    )


def _response(request: SipRequest, status: int) -> SipResponse:
    return make_response(request, status, to_tag="t1")


def _ack(request: SipRequest) -> SipRequest:
    return SipRequest(method="ACK", uri=request.uri, headers=request.headers.with_replaced("CSeq", "1 ACK"))


# ---- drivers: reach each state with a real transaction ----------------------------------------------------------

CLIENT_PATHS: dict[str, dict[TransactionState, list[int]]] = {
    "INVITE": {S.CALLING: [], S.PROCEEDING: [180], S.COMPLETED: [486], S.ACCEPTED: [200]},
    "MESSAGE": {S.TRYING: [], S.PROCEEDING: [100], S.COMPLETED: [200]},
}


def _client_in(method: str, state: TransactionState) -> ClientTransaction:
    req = _request(method)
    tx = ClientTransaction(req, now=0.0)
    for status in CLIENT_PATHS[method][state]:
        tx.receive_response(_response(req, status), 0.0)
    assert tx.state is state
    return tx


SERVER_PATHS: dict[str, dict[TransactionState, list[int | str]]] = {
    "INVITE": {
        S.PROCEEDING: [100],
        S.COMPLETED: [100, 486],
        S.CONFIRMED: [100, 486, "ACK"],
        S.ACCEPTED: [100, 200],
    },
    "MESSAGE": {S.TRYING: [], S.PROCEEDING: [100], S.COMPLETED: [200]},
}


def _server_in(method: str, state: TransactionState) -> ServerTransaction:
    req = _request(method)
    tx = ServerTransaction(req, now=0.0)
    for step in SERVER_PATHS[method][state]:
        if step == "ACK":
            tx.receive_request(_ack(req), 0.0)
        else:
            assert isinstance(step, int)
            tx.send_response(_response(req, step), 0.0)
    assert tx.state is state
    return tx


_STATUS = {ClientInput.RESPONSE_1XX: 180, ClientInput.RESPONSE_2XX: 200, ClientInput.RESPONSE_300_699: 486}
_SEND = {ServerInput.SEND_1XX: 180, ServerInput.SEND_2XX: 200, ServerInput.SEND_300_699: 486}
_CLIENT_NETWORK = set(_STATUS)
_SERVER_NETWORK = {ServerInput.REQUEST, ServerInput.ACK}


def _apply_client(tx: ClientTransaction, event: ClientInput) -> None:
    if event in _STATUS:
        tx.receive_response(_response(tx.request, _STATUS[event]), 1.0)
    elif event is ClientInput.TRANSPORT_ERROR:
        tx.transport_error()
    else:
        tx._step(event)  # a timer input, whether armed or not


def _apply_server(tx: ServerTransaction, event: ServerInput) -> None:
    if event in _SEND:
        tx.send_response(_response(tx.request, _SEND[event]), 1.0)
    elif event is ServerInput.REQUEST:
        tx.receive_request(tx.request, 1.0)
    elif event is ServerInput.ACK:
        tx.receive_request(_ack(tx.request), 1.0)
    elif event is ServerInput.TRANSPORT_ERROR:
        tx.transport_error()
    else:
        tx._step(event)


_CASES: list[tuple[str, bool, dict[tuple[TransactionState, object], TransactionState]]] = [
    ("INVITE", True, CLIENT_INVITE),  # type: ignore[list-item]
    ("MESSAGE", True, CLIENT_NON_INVITE),  # type: ignore[list-item]
    ("INVITE", False, SERVER_INVITE),  # type: ignore[list-item]
    ("MESSAGE", False, SERVER_NON_INVITE),  # type: ignore[list-item]
]


def _all_pairs() -> list[tuple[str, bool, TransactionState, object]]:
    pairs = []
    for method, client, _ in _CASES:
        states = (CLIENT_PATHS if client else SERVER_PATHS)[method]
        inputs: list[object] = list(ClientInput) if client else list(ServerInput)
        pairs.extend((method, client, state, event) for state in states for event in inputs)
    return pairs


@pytest.mark.parametrize(("method", "client", "state", "event"), _all_pairs())
def test_every_state_input_pair(method: str, client: bool, state: TransactionState, event: object) -> None:
    table = next(t for m, c, t in _CASES if m == method and c == client)
    expected = table.get((state, event))
    tx: ClientTransaction | ServerTransaction
    if client:
        tx = _client_in(method, state)
        apply: Callable[[], None] = lambda: _apply_client(tx, event)  # type: ignore[arg-type,union-attr]  # noqa: E731
    else:
        tx = _server_in(method, state)
        apply = lambda: _apply_server(tx, event)  # type: ignore[arg-type,union-attr]  # noqa: E731
    network = event in (_CLIENT_NETWORK if client else _SERVER_NETWORK)
    if expected is None:
        assert not network, f"a peer could make {method} {state.name} raise with {event}"
        with pytest.raises(LocalProtocolError):
            apply()
    else:
        apply()
        assert tx.state is expected


@pytest.mark.parametrize(
    ("method", "client"), [("INVITE", True), ("MESSAGE", True), ("INVITE", False), ("MESSAGE", False)]
)
def test_armed_timers_are_in_the_table(method: str, client: bool) -> None:
    table = next(t for m, c, t in _CASES if m == method and c == client)
    states = (CLIENT_PATHS if client else SERVER_PATHS)[method]
    for state in states:
        tx = _client_in(method, state) if client else _server_in(method, state)
        enum = ClientInput if client else ServerInput
        for name in tx._timers._deadlines:
            assert (state, enum[f"TIMER_{name}"]) in table, (method, state, name)


def test_transition_helper_raises() -> None:
    with pytest.raises(LocalProtocolError, match="SEND_2XX in state CONFIRMED"):
        transition(SERVER_INVITE, S.CONFIRMED, ServerInput.SEND_2XX)


# ---- timers under a fake clock ---------------------------------------------------------------------------------


def _run(tx: ClientTransaction | ServerTransaction, until: float) -> list[tuple[float, str]]:
    """Advance a fake clock from timer to timer, logging what was sent (start line) and when."""
    log: list[tuple[float, str]] = []
    for m in tx.messages_to_send():
        log.append((0.0, m.serialize().split(b"\r\n", 1)[0].decode()))
    while (t := tx.get_timer()) is not None and t <= until:
        tx.handle_timer(t)
        for m in tx.messages_to_send():
            log.append((t, m.serialize().split(b"\r\n", 1)[0].decode()))
    return log


def test_invite_client_timer_a_doubles_and_b_times_out() -> None:
    tx = ClientTransaction(_request("INVITE"), now=0.0)
    log = _run(tx, 100.0)
    assert [t for t, _ in log] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A: T1, 2T1, 4T1... (no cap)
    assert tx.terminated
    assert tx.timed_out


def test_invite_client_custom_t1_and_provisional_stops_retransmission() -> None:
    tx = ClientTransaction(_request("INVITE"), now=10.0, config=TimerConfig(t1=0.1, t2=1.0, t4=2.0))
    assert tx.get_timer() == pytest.approx(10.1)
    tx.receive_response(_response(tx.request, 100), 10.05)
    assert tx.get_timer() is None  # Proceeding: no A, no B
    assert tx.receive_response(_response(tx.request, 180), 11.0)


def test_invite_client_non_2xx_sends_ack_then_d() -> None:
    req = _request("INVITE")
    tx = ClientTransaction(req, now=0.0)
    tx.messages_to_send()
    assert tx.receive_response(_response(req, 486), 1.0)
    (ack,) = tx.messages_to_send()
    assert isinstance(ack, SipRequest)
    assert ack.method == "ACK"
    assert ack.via.branch == req.via.branch  # same transaction (RFC 3261 §17.1.1.3)
    assert ack.to.tag == "t1"
    assert ack.cseq.method == "ACK"
    assert ack.routes == ["<sip:proxy;lr>"]
    assert not tx.receive_response(_response(req, 486), 2.0)  # retransmission: ACK again, not to the TU
    assert [m.method for m in tx.messages_to_send()] == ["ACK"]  # type: ignore[union-attr]
    assert tx.get_timer() == 33.0  # Timer D = 32 s
    tx.handle_timer(33.0)
    assert tx.terminated
    assert not tx.timed_out


def test_invite_client_2xx_accepted_then_m() -> None:
    req = _request("INVITE")
    tx = ClientTransaction(req, now=0.0)
    assert tx.receive_response(_response(req, 200), 1.0)
    assert tx.receive_response(_response(req, 200), 1.5)  # 2xx retransmission goes up (TU re-ACKs)
    assert not tx.receive_response(_response(req, 180), 1.6)
    assert tx.get_timer() == 33.0  # Timer M = 64 T1
    tx.handle_timer(33.0)
    assert tx.terminated


def test_non_invite_client_timer_e_caps_at_t2_then_f() -> None:
    tx = ClientTransaction(_request("MESSAGE"), now=0.0)
    log = _run(tx, 100.0)
    assert [t for t, _ in log] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.terminated
    assert tx.timed_out


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    req = _request("MESSAGE")
    tx = ClientTransaction(req, now=0.0)
    tx.receive_response(_response(req, 100), 0.2)
    log = _run(tx, 13.0)
    assert [t for t, _ in log] == [0.0, 4.2, 8.2, 12.2]
    assert tx.receive_response(_response(req, 200), 13.0)
    assert tx.get_timer() == 18.0  # Timer K = T4
    assert not tx.receive_response(_response(req, 200), 14.0)
    tx.handle_timer(18.0)
    assert tx.terminated


def test_reliable_client_no_retransmissions_zero_wait() -> None:
    req = _request("MESSAGE")
    tx = ClientTransaction(req, now=0.0, reliable=True)
    assert tx.get_timer() == 32.0  # only F
    assert tx.receive_response(_response(req, 200), 1.0)
    assert tx.terminated  # K = 0
    inv = ClientTransaction(_request("INVITE"), now=0.0, reliable=True)
    inv.receive_response(_response(inv.request, 486), 1.0)
    assert inv.terminated  # D = 0
    assert [m.method for m in inv.messages_to_send()] == ["INVITE", "ACK"]  # type: ignore[union-attr]


def test_ack_has_no_transaction() -> None:
    with pytest.raises(LocalProtocolError):
        ClientTransaction(_ack(_request("INVITE")), now=0.0)
    with pytest.raises(LocalProtocolError):
        ServerTransaction(_ack(_request("INVITE")), now=0.0)


def test_invite_server_g_h_for_non_2xx() -> None:
    req = _request("INVITE")
    tx = ServerTransaction(req, now=0.0)
    tx.send_response(_response(req, 100), 0.0)
    assert not tx.receive_request(req, 0.1)  # retransmitted INVITE: resend the 100
    assert [m.status_code for m in tx.messages_to_send()] == [100, 100]  # type: ignore[union-attr]
    tx.send_response(_response(req, 486), 1.0)
    log = _run(tx, 100.0)
    assert [t for t, _ in log] == [0.0, 1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert tx.terminated
    assert tx.timed_out  # H: the ACK never came


def test_invite_server_ack_confirms_then_i() -> None:
    req = _request("INVITE")
    tx = ServerTransaction(req, now=0.0)
    tx.send_response(_response(req, 486), 0.0)
    assert not tx.receive_request(_ack(req), 0.7)
    assert tx.state is S.CONFIRMED
    assert tx.get_timer() == 5.7  # Timer I = T4
    assert not tx.receive_request(_ack(req), 1.0)
    tx.handle_timer(5.7)
    assert tx.terminated
    assert not tx.timed_out
    with pytest.raises(LocalProtocolError):
        tx.send_response(_response(req, 200), 6.0)


def test_invite_server_2xx_retransmitted_until_ack() -> None:
    req = _request("INVITE")
    tx = ServerTransaction(req, now=0.0)
    tx.send_response(_response(req, 200), 0.0)
    tx.messages_to_send()
    tx.handle_timer(0.5)
    tx.handle_timer(1.5)
    assert len(tx.messages_to_send()) == 2
    assert tx.receive_request(_ack(req), 2.0)  # the 2xx ACK goes up once
    assert not tx.receive_request(_ack(req), 2.1)
    assert tx.get_timer() == 32.0  # only L left
    tx.handle_timer(32.0)
    assert tx.terminated
    assert not tx.timed_out


def test_invite_server_2xx_never_acked() -> None:
    req = _request("INVITE")
    tx = ServerTransaction(req, now=0.0, reliable=True)
    tx.send_response(_response(req, 200), 0.0)
    assert tx.get_timer() == 32.0  # reliable: no G
    assert tx.handle_timer(32.0)
    assert tx.timed_out


def test_non_invite_server_j() -> None:
    req = _request("MESSAGE")
    tx = ServerTransaction(req, now=0.0)
    assert not tx.receive_request(req, 0.1)
    assert tx.messages_to_send() == []  # Trying: nothing to resend
    tx.send_response(_response(req, 200), 0.2)
    assert not tx.receive_request(req, 0.5)
    assert [m.status_code for m in tx.messages_to_send()] == [200, 200]  # type: ignore[union-attr]
    assert tx.get_timer() == pytest.approx(32.2)
    tx.handle_timer(32.2)
    assert tx.terminated
    reliable = ServerTransaction(req, now=0.0, reliable=True)
    reliable.send_response(_response(req, 200), 0.0)
    assert reliable.terminated  # J = 0
