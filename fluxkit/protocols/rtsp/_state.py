"""The RTSP client and server state machines as explicit tables (RFC 2326 Appendix A, RFC 7826 Appendix B).

Theory (after h11): a machine's state changes only through the transitions listed here, and

* Rule 1: every input a machine acts on is a key `(state, input)` of its table. An input whose pair is missing is
  refused: a local call (a client command) raises `LocalProtocolError` and changes nothing; a reply that cannot
  happen in the state (a PLAY success while no session exists) moves the client to `ERROR`. For the server, a
  request that is not valid in the session's state is answered (455 Method Not Valid in This State, or 454
  Session Not Found when no session exists; RFC 2326 §11.3.5, §11.3.6) and the state is unchanged: a peer's
  mistake is answered, not fatal.
* Rule 2: the state moves when the outcome is known: the client on a 2xx reply (sending only checks that the
  command is allowed: the pair maps a state to itself), the server when the driver accepts the request. A failed
  request changes nothing.

`CLOSED` (peer closed, redirect, teardown of a connection) and `ERROR` (protocol violation, reply timeout) are
terminal: no pair leaves them.
"""

from __future__ import annotations

import enum

__all__ = [
    "CLIENT_TRANSITIONS",
    "SERVER_TRANSITIONS",
    "ClientInput",
    "ClientState",
    "ServerInput",
    "ServerState",
]


class ClientState(enum.Enum):
    """States of `RtspClientConnection` (RFC 2326 Appendix A.1)."""

    #: No session: OPTIONS, DESCRIBE and SETUP may be sent.
    INIT = "INIT"
    #: A session exists and at least one track is set up; not playing.
    READY = "READY"
    #: PLAY succeeded.
    PLAYING = "PLAYING"
    #: The peer closed the stream or redirected us: reconnect to go on.
    CLOSED = "CLOSED"
    #: A protocol error or reply timeout: close the stream.
    ERROR = "ERROR"


class ClientInput(enum.Enum):
    """What drives the client: a command the caller issues (SEND_*) or the outcome of a reply."""

    SEND_OPTIONS = "SEND_OPTIONS"
    SEND_DESCRIBE = "SEND_DESCRIBE"
    SEND_SETUP = "SEND_SETUP"
    SEND_PLAY = "SEND_PLAY"
    SEND_PAUSE = "SEND_PAUSE"
    SEND_TEARDOWN = "SEND_TEARDOWN"
    SEND_GET_PARAMETER = "SEND_GET_PARAMETER"
    SETUP_OK = "SETUP_OK"
    PLAY_OK = "PLAY_OK"
    PAUSE_OK = "PAUSE_OK"
    TEARDOWN_DONE = "TEARDOWN_DONE"
    REDIRECTED = "REDIRECTED"
    PEER_CLOSED = "PEER_CLOSED"
    FAILED = "FAILED"


_C = ClientState
_CI = ClientInput

#: Every allowed (state, input) pair of the client and the state it leads to.
CLIENT_TRANSITIONS: dict[tuple[ClientState, ClientInput], ClientState] = {
    # INIT: no session yet (RFC 2326 A.1: SETUP -> Ready).
    (_C.INIT, _CI.SEND_OPTIONS): _C.INIT,
    (_C.INIT, _CI.SEND_DESCRIBE): _C.INIT,
    (_C.INIT, _CI.SEND_SETUP): _C.INIT,
    (_C.INIT, _CI.SEND_GET_PARAMETER): _C.INIT,
    (_C.INIT, _CI.SETUP_OK): _C.READY,
    # READY: PLAY -> Playing, SETUP stays, TEARDOWN -> Init.
    (_C.READY, _CI.SEND_OPTIONS): _C.READY,
    (_C.READY, _CI.SEND_DESCRIBE): _C.READY,
    (_C.READY, _CI.SEND_SETUP): _C.READY,
    (_C.READY, _CI.SEND_PLAY): _C.READY,
    (_C.READY, _CI.SEND_TEARDOWN): _C.READY,
    (_C.READY, _CI.SEND_GET_PARAMETER): _C.READY,
    (_C.READY, _CI.SETUP_OK): _C.READY,
    (_C.READY, _CI.PLAY_OK): _C.PLAYING,
    (_C.READY, _CI.TEARDOWN_DONE): _C.INIT,
    # PLAYING: PAUSE -> Ready, PLAY stays (seek, scale), TEARDOWN -> Init.
    (_C.PLAYING, _CI.SEND_OPTIONS): _C.PLAYING,
    (_C.PLAYING, _CI.SEND_SETUP): _C.PLAYING,
    (_C.PLAYING, _CI.SEND_PLAY): _C.PLAYING,
    (_C.PLAYING, _CI.SEND_PAUSE): _C.PLAYING,
    (_C.PLAYING, _CI.SEND_TEARDOWN): _C.PLAYING,
    (_C.PLAYING, _CI.SEND_GET_PARAMETER): _C.PLAYING,
    (_C.PLAYING, _CI.SETUP_OK): _C.PLAYING,
    (_C.PLAYING, _CI.PLAY_OK): _C.PLAYING,
    (_C.PLAYING, _CI.PAUSE_OK): _C.READY,
    (_C.PLAYING, _CI.TEARDOWN_DONE): _C.INIT,
    # Anywhere alive: the peer may close, redirect, or the exchange may fail for good.
    **{(s, _CI.PEER_CLOSED): _C.CLOSED for s in (_C.INIT, _C.READY, _C.PLAYING)},
    **{(s, _CI.REDIRECTED): _C.CLOSED for s in (_C.INIT, _C.READY, _C.PLAYING)},
    **{(s, _CI.FAILED): _C.ERROR for s in (_C.INIT, _C.READY, _C.PLAYING)},
}


class ServerState(enum.Enum):
    """States of `RtspServerConnection`'s session (RFC 2326 Appendix A.2)."""

    #: No session on this connection.
    INIT = "INIT"
    #: A session with at least one track set up.
    READY = "READY"
    #: The session is playing.
    PLAYING = "PLAYING"
    #: The client closed the stream.
    CLOSED = "CLOSED"
    #: A protocol error: close the stream.
    ERROR = "ERROR"


class ServerInput(enum.Enum):
    """What drives the server: a request accepted by the driver, a session expiry, the stream's end."""

    OPTIONS = "OPTIONS"
    DESCRIBE = "DESCRIBE"
    SETUP = "SETUP"
    PLAY = "PLAY"
    PAUSE = "PAUSE"
    TEARDOWN = "TEARDOWN"
    GET_PARAMETER = "GET_PARAMETER"
    SESSION_EXPIRED = "SESSION_EXPIRED"
    PEER_CLOSED = "PEER_CLOSED"
    FAILED = "FAILED"


_S = ServerState
_SI = ServerInput

#: Every allowed (state, input) pair of the server and the state it leads to.
SERVER_TRANSITIONS: dict[tuple[ServerState, ServerInput], ServerState] = {
    # Stateless requests are valid in every live state (RFC 2326 A.2: "OPTIONS ... in any state").
    **{(s, i): s for s in (_S.INIT, _S.READY, _S.PLAYING) for i in (_SI.OPTIONS, _SI.DESCRIBE, _SI.GET_PARAMETER)},
    (_S.INIT, _SI.SETUP): _S.READY,
    (_S.READY, _SI.SETUP): _S.READY,
    (_S.READY, _SI.PLAY): _S.PLAYING,
    (_S.READY, _SI.TEARDOWN): _S.INIT,
    (_S.READY, _SI.SESSION_EXPIRED): _S.INIT,
    (_S.PLAYING, _SI.SETUP): _S.PLAYING,
    (_S.PLAYING, _SI.PLAY): _S.PLAYING,
    (_S.PLAYING, _SI.PAUSE): _S.READY,
    (_S.PLAYING, _SI.TEARDOWN): _S.INIT,
    (_S.PLAYING, _SI.SESSION_EXPIRED): _S.INIT,
    **{(s, _SI.PEER_CLOSED): _S.CLOSED for s in (_S.INIT, _S.READY, _S.PLAYING)},
    **{(s, _SI.FAILED): _S.ERROR for s in (_S.INIT, _S.READY, _S.PLAYING)},
}
