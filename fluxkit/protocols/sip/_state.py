"""Transaction state machines as tables (RFC 3261 §17, with the RFC 6026 Accepted state for INVITE).

Theory (h11's two rules, applied to transactions):

1. The table is the whole truth. A transaction moves only along an entry `{(State, Input): State}`; the code
   around it performs the actions the RFC attaches to that arrow (send, retransmit, arm a timer, report to the
   TU) and never changes state otherwise.
2. A pair missing from the table is a bug, not a message. Every input the network can produce (a response, a
   retransmitted request, an ACK) has an entry in every live state, absorbing ones included, so a peer can never
   drive a transaction into an error. What remains missing are inputs only our side produces: sending a response
   in a state that forbids it, or a timer that is not armed in that state. `transition()` raises
   LocalProtocolError for those, and tests/protocols/test_sip_state.py walks every (state, input) pair.

Timers fire as inputs (TIMER_A ... TIMER_M). On reliable transports the retransmission timers (A, E, G) are never
armed and the wait timers (D, I, J, K) are zero, which the machines apply at once.
"""

from __future__ import annotations

import enum
from typing import TypeVar

from fluxkit.errors import LocalProtocolError

__all__ = [
    "CLIENT_INVITE",
    "CLIENT_NON_INVITE",
    "SERVER_INVITE",
    "SERVER_NON_INVITE",
    "ClientInput",
    "ServerInput",
    "TransactionState",
    "transition",
]


class TransactionState(enum.Enum):
    """States of all four machines (each uses a subset, RFC 3261 figures 5-8, RFC 6026 figures 3-5)."""

    #: INVITE client: request sent, no response yet.
    CALLING = "calling"
    #: Non-INVITE client: request sent, no response yet; non-INVITE server: request received, not yet answered.
    TRYING = "trying"
    #: A provisional response was received (client) or sent (server).
    PROCEEDING = "proceeding"
    #: A final response (non-2xx for INVITE) was received or sent; absorbing retransmissions.
    COMPLETED = "completed"
    #: INVITE server: the ACK for a non-2xx arrived.
    CONFIRMED = "confirmed"
    #: INVITE: a 2xx was received or sent (RFC 6026), 2xx retransmissions handled.
    ACCEPTED = "accepted"
    #: Done; the transaction is removed.
    TERMINATED = "terminated"


class ClientInput(enum.Enum):
    """What can happen to a client transaction."""

    RESPONSE_1XX = "1xx"
    RESPONSE_2XX = "2xx"
    RESPONSE_300_699 = "300-699"
    TIMER_A = "A"  # INVITE request retransmission
    TIMER_B = "B"  # INVITE timeout
    TIMER_D = "D"  # wait for response retransmissions after a non-2xx
    TIMER_E = "E"  # non-INVITE request retransmission
    TIMER_F = "F"  # non-INVITE timeout
    TIMER_K = "K"  # wait for response retransmissions (non-INVITE)
    TIMER_M = "M"  # RFC 6026: wait for 2xx retransmissions
    TRANSPORT_ERROR = "transport_error"


class ServerInput(enum.Enum):
    """What can happen to a server transaction."""

    REQUEST = "request"  # a retransmission of the request
    ACK = "ack"
    SEND_1XX = "send_1xx"
    SEND_2XX = "send_2xx"
    SEND_300_699 = "send_300_699"
    TIMER_G = "G"  # INVITE response retransmission (also the 2xx, see SERVER_INVITE)
    TIMER_H = "H"  # wait for ACK
    TIMER_I = "I"  # absorb ACK retransmissions
    TIMER_J = "J"  # absorb request retransmissions (non-INVITE)
    TIMER_L = "L"  # RFC 6026: absorb INVITE retransmissions after a 2xx
    TRANSPORT_ERROR = "transport_error"


S = TransactionState
C = ClientInput
V = ServerInput

# RFC 3261 §17.1.1 (figure 5) with RFC 6026 §8.4 (Accepted, Timer M).
CLIENT_INVITE: dict[tuple[TransactionState, ClientInput], TransactionState] = {
    (S.CALLING, C.TIMER_A): S.CALLING,  # retransmit, double A
    (S.CALLING, C.TIMER_B): S.TERMINATED,  # timeout reported to the TU
    (S.CALLING, C.RESPONSE_1XX): S.PROCEEDING,
    (S.CALLING, C.RESPONSE_2XX): S.ACCEPTED,
    (S.CALLING, C.RESPONSE_300_699): S.COMPLETED,  # send ACK
    (S.CALLING, C.TRANSPORT_ERROR): S.TERMINATED,
    (S.PROCEEDING, C.RESPONSE_1XX): S.PROCEEDING,
    (S.PROCEEDING, C.RESPONSE_2XX): S.ACCEPTED,
    (S.PROCEEDING, C.RESPONSE_300_699): S.COMPLETED,
    (S.PROCEEDING, C.TRANSPORT_ERROR): S.TERMINATED,
    (S.COMPLETED, C.RESPONSE_1XX): S.COMPLETED,  # absorbed
    (S.COMPLETED, C.RESPONSE_2XX): S.COMPLETED,  # absorbed (a UAS bug)
    (S.COMPLETED, C.RESPONSE_300_699): S.COMPLETED,  # retransmitted final: resend the ACK
    (S.COMPLETED, C.TIMER_D): S.TERMINATED,
    (S.COMPLETED, C.TRANSPORT_ERROR): S.TERMINATED,
    (S.ACCEPTED, C.RESPONSE_1XX): S.ACCEPTED,  # absorbed
    (S.ACCEPTED, C.RESPONSE_2XX): S.ACCEPTED,  # passed to the TU, which re-sends its ACK
    (S.ACCEPTED, C.RESPONSE_300_699): S.ACCEPTED,  # absorbed
    (S.ACCEPTED, C.TIMER_M): S.TERMINATED,
}

# RFC 3261 §17.1.2 (figure 6).
CLIENT_NON_INVITE: dict[tuple[TransactionState, ClientInput], TransactionState] = {
    (S.TRYING, C.TIMER_E): S.TRYING,  # retransmit, E = min(2E, T2)
    (S.TRYING, C.TIMER_F): S.TERMINATED,  # timeout reported to the TU
    (S.TRYING, C.RESPONSE_1XX): S.PROCEEDING,
    (S.TRYING, C.RESPONSE_2XX): S.COMPLETED,
    (S.TRYING, C.RESPONSE_300_699): S.COMPLETED,
    (S.TRYING, C.TRANSPORT_ERROR): S.TERMINATED,
    (S.PROCEEDING, C.TIMER_E): S.PROCEEDING,  # retransmit every T2
    (S.PROCEEDING, C.TIMER_F): S.TERMINATED,
    (S.PROCEEDING, C.RESPONSE_1XX): S.PROCEEDING,
    (S.PROCEEDING, C.RESPONSE_2XX): S.COMPLETED,
    (S.PROCEEDING, C.RESPONSE_300_699): S.COMPLETED,
    (S.PROCEEDING, C.TRANSPORT_ERROR): S.TERMINATED,
    (S.COMPLETED, C.RESPONSE_1XX): S.COMPLETED,  # absorbed
    (S.COMPLETED, C.RESPONSE_2XX): S.COMPLETED,  # absorbed
    (S.COMPLETED, C.RESPONSE_300_699): S.COMPLETED,  # absorbed
    (S.COMPLETED, C.TIMER_K): S.TERMINATED,
    (S.COMPLETED, C.TRANSPORT_ERROR): S.COMPLETED,  # nothing left to send
}

# RFC 3261 §17.2.1 (figure 7) with RFC 6026 §8.7 (Accepted, Timer L). fluxkit keeps the 2xx retransmission of
# RFC 3261 §13.3.1.4 (a TU duty) in the transaction: Timer G re-sends the 2xx in ACCEPTED until the ACK, which
# the user agent routes here by Call-ID and CSeq, stops it.
SERVER_INVITE: dict[tuple[TransactionState, ServerInput], TransactionState] = {
    (S.PROCEEDING, V.REQUEST): S.PROCEEDING,  # resend the last provisional
    (S.PROCEEDING, V.SEND_1XX): S.PROCEEDING,
    (S.PROCEEDING, V.SEND_2XX): S.ACCEPTED,
    (S.PROCEEDING, V.SEND_300_699): S.COMPLETED,
    (S.PROCEEDING, V.ACK): S.PROCEEDING,  # stray ACK: absorbed
    (S.PROCEEDING, V.TRANSPORT_ERROR): S.TERMINATED,
    (S.COMPLETED, V.REQUEST): S.COMPLETED,  # resend the final response
    (S.COMPLETED, V.ACK): S.CONFIRMED,
    (S.COMPLETED, V.TIMER_G): S.COMPLETED,  # resend, G = min(2G, T2)
    (S.COMPLETED, V.TIMER_H): S.TERMINATED,  # the ACK never came: reported to the TU
    (S.COMPLETED, V.TRANSPORT_ERROR): S.TERMINATED,
    (S.CONFIRMED, V.REQUEST): S.CONFIRMED,  # absorbed
    (S.CONFIRMED, V.ACK): S.CONFIRMED,  # absorbed
    (S.CONFIRMED, V.TIMER_I): S.TERMINATED,
    (S.CONFIRMED, V.TRANSPORT_ERROR): S.CONFIRMED,
    (S.ACCEPTED, V.REQUEST): S.ACCEPTED,  # absorbed (RFC 6026 §8.7)
    (S.ACCEPTED, V.ACK): S.ACCEPTED,  # stops the 2xx retransmission; passed to the TU
    (S.ACCEPTED, V.SEND_2XX): S.ACCEPTED,  # the TU may send the 2xx again
    (S.ACCEPTED, V.TIMER_G): S.ACCEPTED,  # 2xx retransmission
    (S.ACCEPTED, V.TIMER_L): S.TERMINATED,
    (S.ACCEPTED, V.TRANSPORT_ERROR): S.ACCEPTED,
}

# RFC 3261 §17.2.2 (figure 8).
SERVER_NON_INVITE: dict[tuple[TransactionState, ServerInput], TransactionState] = {
    (S.TRYING, V.REQUEST): S.TRYING,  # absorbed: nothing to resend yet
    (S.TRYING, V.ACK): S.TRYING,  # cannot match a non-INVITE; absorbed
    (S.TRYING, V.SEND_1XX): S.PROCEEDING,
    (S.TRYING, V.SEND_2XX): S.COMPLETED,
    (S.TRYING, V.SEND_300_699): S.COMPLETED,
    (S.TRYING, V.TRANSPORT_ERROR): S.TERMINATED,
    (S.PROCEEDING, V.REQUEST): S.PROCEEDING,  # resend the last provisional
    (S.PROCEEDING, V.ACK): S.PROCEEDING,
    (S.PROCEEDING, V.SEND_1XX): S.PROCEEDING,
    (S.PROCEEDING, V.SEND_2XX): S.COMPLETED,
    (S.PROCEEDING, V.SEND_300_699): S.COMPLETED,
    (S.PROCEEDING, V.TRANSPORT_ERROR): S.TERMINATED,
    (S.COMPLETED, V.REQUEST): S.COMPLETED,  # resend the final response
    (S.COMPLETED, V.ACK): S.COMPLETED,
    (S.COMPLETED, V.TIMER_J): S.TERMINATED,
    (S.COMPLETED, V.TRANSPORT_ERROR): S.TERMINATED,
}


_I = TypeVar("_I", ClientInput, ServerInput)


def transition(
    table: dict[tuple[TransactionState, _I], TransactionState], state: TransactionState, event: _I
) -> TransactionState:
    """The next state, or LocalProtocolError for a pair the table does not allow (see rule 2 above)."""
    try:
        return table[state, event]
    except KeyError:
        raise LocalProtocolError(f"transaction cannot handle {event.name} in state {state.name}") from None
