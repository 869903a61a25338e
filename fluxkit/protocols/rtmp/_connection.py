"""`RtmpConnection`: one RTMP connection (server or client role) as a sans-IO state machine.

Strategy: `receive_data` only queues bytes; `next_event` runs them through the handshake (§5.2) and then the
`ChunkReader`, and turns messages into events. Protocol control messages (§5.4: Set Chunk Size, Abort,
Acknowledgement, Window Acknowledgement Size, Set Peer Bandwidth) and User Control pings (§6.2, §7.1.7) are
handled inside and answered through `data_to_send()`; so are the NetConnection chores a publisher expects answered
(connect, createStream, releaseStream, FCPublish, FCUnpublish, §7.2). Only the decisions stay with the
application: a `PublishRequested` or `PlayRequested` is answered with `accept_*` / `refuse_*`, which send the
NetStream `onStatus` codes players and encoders look for.

Handshake (§5.2 and the digest scheme of `_handshake`): the server answers C0+C1 with S0+S1+S2 at once. When C1
carries a valid player digest (either scheme), S1 gets the server version and its own digest in the client's
scheme and S2 is random bytes signed from the client's digest, which Flash Player, librtmp/OBS and ffmpeg check
(ffmpeg, when playing, validates S1 whenever S1's first version byte is >= 3, then S2's signature). A C1 without
a digest gets the simple answer: S1 with a zero version field and S2 echoing C1. C2 is read and not checked (a
publishing ffmpeg echoes S1 instead of signing). The client sends a signed C1 (`digest_handshake`); when S1
carries a valid server digest it checks S2's signature (a mismatch is a `ParseError`) and signs C2, otherwise it
echoes S1 as the simple handshake does. `handshake_digest` tells which way it went. Encrypted RTMPE (C0 = 6) is
refused.

Flow control (§5.4.3-5.4.5): once the peer set a window (Window Acknowledgement Size), an Acknowledgement carrying
the total bytes received goes out each time that many more bytes arrived. The server announces a window of
`window_ack_size`, the peer bandwidth and its chunk size right after connect, as nginx-rtmp and FMS do. The other
direction is counted for a sender that wants to throttle: `bytes_sent`, the peer's last Acknowledgement
(`peer_acknowledged`) and so `unacknowledged`; a Set Peer Bandwidth from the peer sets `peer_bandwidth` by its
limit type (hard: taken; soft: taken when smaller; dynamic: taken only after a hard one) and is answered with a
Window Acknowledgement Size of that size when it differs from the last one sent (§5.4.5). Deciding what to do
with a peer that stops acknowledging (drop, disconnect) is the application's business.

AMF3 (§7.1.1, §7.1.2): command and data messages of types 17 and 15 start with a format byte 0 (skipped; a body
without it is read as it is), then AMF0 values in which the AVM+ marker switches to AMF3. A client whose connect
asks for objectEncoding 3 gets it echoed in the `_result`, and once a peer sends commands as type 17 our commands
to it go the same way (format byte 0, then AMF0).

After a `RemoteProtocolError` the connection is in `ERROR` and raises again on use.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from typing import TYPE_CHECKING

from fluxkit.errors import LocalProtocolError, ParseError, RemoteProtocolError

from ._amf0 import UNDEFINED, AmfValue, EcmaArray, decode_amf0, encode_amf0
from ._chunk import (
    DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MAX_CHUNK_STREAMS,
    DEFAULT_MAX_MESSAGE_SIZE,
    ChunkReader,
    ChunkWriter,
    RtmpMessage,
)
from ._events import (
    NEED_DATA,
    CommandReceived,
    Connected,
    ConnectionClosed,
    Event,
    MediaMessage,
    MetaData,
    NeedData,
    PlayRequested,
    PublishRequested,
    StatusReceived,
    StreamCreated,
    StreamDeleted,
)
from ._handshake import (
    CLIENT_VERSION,
    DIGEST_SIZE,
    PLAYER_KEY,
    PLAYER_KEY_PART,
    SERVER_KEY,
    SERVER_KEY_PART,
    SERVER_VERSION,
    find_digest,
    imprint_digest,
    response_signature,
)

if TYPE_CHECKING:
    import random

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_OUT_CHUNK_SIZE",
    "DEFAULT_WINDOW_ACK_SIZE",
    "HANDSHAKE_SIZE",
    "ConnectionState",
    "Role",
    "RtmpConnection",
]

#: Bytes of C1/S1/C2/S2 (§5.2.3).
HANDSHAKE_SIZE = 1536
#: The chunk size this side sends with (announced by Set Chunk Size): large chunks mean fewer headers.
DEFAULT_OUT_CHUNK_SIZE = 4096
#: The acknowledgement window this side asks of the peer.
DEFAULT_WINDOW_ACK_SIZE = 2_500_000
#: Message streams one connection may create.
DEFAULT_MAX_STREAMS = 16

# Message type ids (§5.4, §7.1).
MSG_SET_CHUNK_SIZE = 1
MSG_ABORT = 2
MSG_ACK = 3
MSG_USER_CONTROL = 4
MSG_WINDOW_ACK_SIZE = 5
MSG_SET_PEER_BANDWIDTH = 6
MSG_AUDIO = 8
MSG_VIDEO = 9
MSG_DATA_AMF3 = 15
MSG_COMMAND_AMF3 = 17
MSG_DATA_AMF0 = 18
MSG_COMMAND_AMF0 = 20
MSG_AGGREGATE = 22

# User control event types (§7.1.7).
UC_STREAM_BEGIN = 0
UC_STREAM_EOF = 1
UC_SET_BUFFER_LENGTH = 3
UC_PING_REQUEST = 6
UC_PING_RESPONSE = 7

# Chunk streams this side uses (any 2..65599 is legal; these match common practice).
CSID_CONTROL = 2
CSID_COMMAND = 3
CSID_AUDIO = 4
CSID_DATA = 5
CSID_VIDEO = 6

_U32 = struct.Struct(">I")
_UC = struct.Struct(">HI")
_FLV_TAG = struct.Struct(">B3s3sB3s")  # type, size, timestamp low 24, timestamp high 8, stream id


class Role(enum.Enum):
    """Which end of the connection this machine plays."""

    SERVER = "server"
    CLIENT = "client"


class ConnectionState(enum.Enum):
    """Where the connection stands."""

    #: Waiting for C0+C1 (server) or S0+S1+S2 (client).
    HANDSHAKE = "handshake"
    #: Server: waiting for C2.
    HANDSHAKE_ACK = "handshake-ack"
    #: The chunk stream is up.
    OPEN = "open"
    #: The peer closed.
    CLOSED = "closed"
    #: A protocol error happened; the connection is unusable.
    ERROR = "error"


def _status(level: str, code: str, description: str) -> dict[str, AmfValue]:
    return {"level": level, "code": code, "description": description}


class RtmpConnection:
    """An RTMP connection; see the module docstring.

    Contract: `receive_data(data)` (b"" = the peer closed), `next_event()` -> an event or `NEED_DATA`,
    `data_to_send()` -> bytes to write; methods below queue commands and media.

    Args:
        role: `Role.SERVER` or `Role.CLIENT`.
        rng: source of the handshake random bytes.
        chunk_size: the chunk size this side sends with.
        window_ack_size: the acknowledgement window announced to the peer (server role).
        max_message_size: bound on one received message.
        max_chunk_streams: bound on chunk streams with a message in progress.
        max_chunk_size: largest chunk size the peer may set.
        max_streams: message streams a client may create on this server.
        digest_handshake: client role: sign C1 with the digest scheme; server role: answer a signed C1 in kind
            (False: always the simple handshake).
    """

    def __init__(
        self,
        role: Role,
        *,
        rng: random.Random,
        chunk_size: int = DEFAULT_OUT_CHUNK_SIZE,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_streams: int = DEFAULT_MAX_CHUNK_STREAMS,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_streams: int = DEFAULT_MAX_STREAMS,
        digest_handshake: bool = True,
    ) -> None:
        if not 1 <= chunk_size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"chunk size {chunk_size} out of range")
        self.role = role
        self.state = ConnectionState.HANDSHAKE
        self._rng = rng
        self._reader = ChunkReader(
            max_message_size=max_message_size, max_chunk_streams=max_chunk_streams, max_chunk_size=max_chunk_size
        )
        self._writer = ChunkWriter()
        self._out_chunk_size = chunk_size
        self._window_ack_size = window_ack_size
        self._peer_amf3 = False
        #: objectEncoding agreed in connect (0 = AMF0, 3 = AMF3).
        self.object_encoding = 0
        self._max_streams = max_streams
        self._inbox = bytearray()
        self._eof = False
        self._events: deque[Event] = deque()
        self._out: list[bytes] = []
        self._pending: list[RtmpMessage] = []  # client messages queued until the handshake completes
        self._c1 = b""
        self._c1_digest = b""
        self._digest_handshake = digest_handshake
        #: Whether the handshake used the digest scheme (known once the handshake is done).
        self.handshake_digest = False
        self._hs_buf = b""
        self._sent_window = -1
        self._received = 0
        self._peer_window = 0
        self._last_ack = 0
        self._next_stream = 1
        self._streams: set[int] = set()
        self._transactions: dict[int, str] = {}
        self._next_transaction = 1
        #: Application name (from connect).
        self.app = ""
        #: tcUrl (from connect).
        self.tc_url = ""
        #: The peer's last acknowledged byte count (§5.4.3, 32 bits, wraps), for a sender that wants to throttle.
        self.peer_acknowledged = 0
        #: Acknowledgements received from the peer.
        self.acknowledgements = 0
        #: Bytes handed out by `data_to_send` (the handshake included, as the peer counts it).
        self.bytes_sent = 0
        #: The output window the peer set with Set Peer Bandwidth (§5.4.5), 0 while it set none.
        self.peer_bandwidth = 0
        self._peer_bandwidth_hard = False
        if role is Role.CLIENT:
            if digest_handshake:
                c1 = imprint_digest(
                    b"\x00" * 4 + CLIENT_VERSION + self._rng.randbytes(HANDSHAKE_SIZE - 8), PLAYER_KEY_PART
                )
                found = find_digest(c1, PLAYER_KEY_PART)
                assert found is not None
                self._c1_digest = c1[found[1] : found[1] + DIGEST_SIZE]
            else:
                c1 = self._handshake_random()
            self._c1 = c1
            self._out.append(b"\x03" + c1)

    # --- bytes in, events out -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Queue bytes from the peer; b"" means the peer closed the connection."""
        if self.state is ConnectionState.ERROR:
            raise LocalProtocolError("connection is in ERROR after a protocol error")
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data received after end of stream")
        self._inbox += data

    def next_event(self) -> Event | NeedData:
        """The next event, or `NEED_DATA`.

        Raises:
            RemoteProtocolError: the peer broke the protocol (the connection is then in ERROR).
        """
        if self.state is ConnectionState.ERROR:
            raise LocalProtocolError("connection is in ERROR after a protocol error")
        if not self._events and self._inbox:
            data = bytes(self._inbox)
            self._inbox.clear()
            try:
                self._process(data)
            except RemoteProtocolError:
                self.state = ConnectionState.ERROR
                raise
        if self._events:
            return self._events.popleft()
        if self._eof and self.state is not ConnectionState.CLOSED:
            self.state = ConnectionState.CLOSED
            return ConnectionClosed()
        return NEED_DATA

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer (and forget)."""
        out = b"".join(self._out)
        self._out.clear()
        self.bytes_sent += len(out)
        return out

    @property
    def unacknowledged(self) -> int:
        """Bytes sent that the peer has not acknowledged yet (§5.4.3; 32-bit counters compared modulo 2**32).

        A peer that counts a little more than we sent (some count differently around the handshake) gives 0.
        """
        gap = (self.bytes_sent - self.peer_acknowledged) & 0xFFFFFFFF
        return 0 if gap >= 0x80000000 else gap

    @property
    def buffered(self) -> int:
        """Received bytes not yet turned into messages (bounded by one chunk plus what the caller queued)."""
        return len(self._inbox) + self._reader.buffered

    # --- the handshake --------------------------------------------------------------------------------------

    def _handshake_random(self) -> bytes:
        # time (4 bytes) and zero/version (4 bytes) then 1528 random bytes (§5.2.3); version 0 = simple handshake.
        return b"\x00" * 8 + self._rng.randbytes(HANDSHAKE_SIZE - 8)

    def _process(self, data: bytes) -> None:
        self._received += len(data)
        if self.state is ConnectionState.HANDSHAKE or self.state is ConnectionState.HANDSHAKE_ACK:
            data = self._handshake(data)
            if not data:
                return
        if self.state is not ConnectionState.OPEN:
            return
        for message in self._reader.feed(data):
            self._on_message(message)
        if self._peer_window and self._received - self._last_ack >= self._peer_window:
            self._last_ack = self._received
            self._control(MSG_ACK, _U32.pack(self._received & 0xFFFFFFFF))

    def _handshake(self, data: bytes) -> bytes:
        buf = self._hs_buf = self._hs_buf + data
        if self.role is Role.SERVER:
            if self.state is ConnectionState.HANDSHAKE:
                if buf and buf[0] != 3:
                    raise ParseError(f"RTMP version {buf[0]} in C0 (only 3, plain RTMP, is supported)", offset=0)
                if len(buf) < 1 + HANDSHAKE_SIZE:
                    return b""
                self._out.append(b"\x03" + self._server_answer(buf[1 : 1 + HANDSHAKE_SIZE]))
                buf = buf[1 + HANDSHAKE_SIZE :]
                self.state = ConnectionState.HANDSHAKE_ACK
            if len(buf) < HANDSHAKE_SIZE:
                self._hs_buf = buf
                return b""
            rest = buf[HANDSHAKE_SIZE:]
        else:
            if buf and buf[0] != 3:
                raise ParseError(f"RTMP version {buf[0]} in S0 (expected 3)", offset=0)
            if len(buf) < 1 + 2 * HANDSHAKE_SIZE:
                return b""
            self._out.append(
                self._client_answer(buf[1 : 1 + HANDSHAKE_SIZE], buf[1 + HANDSHAKE_SIZE : 1 + 2 * HANDSHAKE_SIZE])
            )
            rest = buf[1 + 2 * HANDSHAKE_SIZE :]
        self._hs_buf = b""
        self.state = ConnectionState.OPEN
        pending, self._pending = self._pending, []
        for message in pending:
            self._out.append(self._writer.write(message))
        return rest

    def _server_answer(self, c1: bytes) -> bytes:
        # S1 + S2 for a C1: in the digest scheme when C1 carries a player digest, else the simple echo (§5.2.4).
        found = find_digest(c1, PLAYER_KEY_PART) if self._digest_handshake else None
        if found is None:
            return self._handshake_random() + c1
        base, pos = found
        self.handshake_digest = True
        s1 = imprint_digest(
            b"\x00" * 4 + SERVER_VERSION + self._rng.randbytes(HANDSHAKE_SIZE - 8), SERVER_KEY_PART, base
        )
        s2 = self._rng.randbytes(HANDSHAKE_SIZE - DIGEST_SIZE)
        return s1 + s2 + response_signature(s2, c1[pos : pos + DIGEST_SIZE], SERVER_KEY)

    def _client_answer(self, s1: bytes, s2: bytes) -> bytes:
        # C2 for S1+S2: signed when the server answered our digest C1 with its own, else S1 echoed (§5.2.4).
        found = find_digest(s1, SERVER_KEY_PART) if self._c1_digest else None
        if found is None:
            return s1
        if response_signature(s2, self._c1_digest, SERVER_KEY) != s2[-DIGEST_SIZE:]:
            raise ParseError(
                "S2 signature does not match our C1 digest (digest handshake)",
                offset=1 + 2 * HANDSHAKE_SIZE - DIGEST_SIZE,
            )
        self.handshake_digest = True
        pos = found[1]
        c2 = self._rng.randbytes(HANDSHAKE_SIZE - DIGEST_SIZE)
        return c2 + response_signature(c2, s1[pos : pos + DIGEST_SIZE], PLAYER_KEY)

    # --- messages in ----------------------------------------------------------------------------------------

    def _on_message(self, message: RtmpMessage) -> None:
        type_id = message.type_id
        payload = message.payload
        if type_id in (MSG_VIDEO, MSG_AUDIO):
            self._events.append(
                MediaMessage(
                    kind="video" if type_id == MSG_VIDEO else "audio",
                    stream_id=message.stream_id,
                    timestamp=message.timestamp,
                    payload=payload,
                )
            )
        elif type_id in (MSG_COMMAND_AMF0, MSG_COMMAND_AMF3):
            # An AMF3 command message starts with one format byte 0, then AMF0 values that may switch to AMF3
            # (§7.1.1); librtmp and SRS skip that byte, and a body starting with a value marker is taken whole.
            if type_id == MSG_COMMAND_AMF3:
                self._peer_amf3 = True
                if payload[:1] == b"\x00":
                    payload = payload[1:]
            self._on_command(message.stream_id, decode_amf0(payload))
        elif type_id in (MSG_DATA_AMF0, MSG_DATA_AMF3):
            if type_id == MSG_DATA_AMF3 and payload[:1] == b"\x00":
                payload = payload[1:]
            self._on_data(message.stream_id, decode_amf0(payload))
        elif type_id == MSG_AGGREGATE:
            self._on_aggregate(message)
        elif type_id == MSG_WINDOW_ACK_SIZE:
            self._peer_window = self._u32(payload, "Window Acknowledgement Size")
        elif type_id == MSG_SET_PEER_BANDWIDTH:
            self._on_peer_bandwidth(self._u32(payload, "Set Peer Bandwidth"), payload[4] if len(payload) > 4 else 2)
        elif type_id == MSG_ACK:
            self.peer_acknowledged = self._u32(payload, "Acknowledgement")
            self.acknowledgements += 1
        elif type_id == MSG_USER_CONTROL and len(payload) >= 6:
            event_type, value = _UC.unpack_from(payload)
            if event_type == UC_PING_REQUEST:
                self._control(MSG_USER_CONTROL, _UC.pack(UC_PING_RESPONSE, value))
        # Set Chunk Size and Abort already acted in the reader; other types (shared objects, 19/16) are ignored.

    def _on_peer_bandwidth(self, size: int, limit_type: int) -> None:
        # §5.4.5 limit types: 0 hard (take it), 1 soft (take it if smaller), 2 dynamic (hard if the last was hard,
        # else ignored). Unknown types are treated as dynamic.
        if limit_type == 0:
            self._peer_bandwidth_hard = True
        elif limit_type == 1:
            if self.peer_bandwidth and size >= self.peer_bandwidth:
                return
            self._peer_bandwidth_hard = False
        elif not self._peer_bandwidth_hard:
            return
        self.peer_bandwidth = size
        # Answer with our Window Acknowledgement Size when it differs from the one last sent.
        if size != self._sent_window:
            self._sent_window = size
            self._control(MSG_WINDOW_ACK_SIZE, _U32.pack(size))

    @staticmethod
    def _u32(payload: bytes, what: str) -> int:
        if len(payload) < 4:
            raise ParseError(f"{what} message shorter than 4 bytes", offset=0)
        value: int = _U32.unpack_from(payload)[0]
        return value

    def _on_aggregate(self, message: RtmpMessage) -> None:
        # An aggregate message (§7.1.6) is a run of FLV tags (11-byte header, body, 4-byte back pointer); their
        # timestamps are made relative to the first one and rebased on the aggregate's own.
        data = message.payload
        pos = 0
        base: int | None = None
        while pos + 11 <= len(data):
            tag_type, size_b, ts_b, ts_hi, _ = _FLV_TAG.unpack_from(data, pos)
            size = int.from_bytes(size_b, "big")
            ts = int.from_bytes(ts_b, "big") | (ts_hi << 24)
            body = data[pos + 11 : pos + 11 + size]
            if len(body) < size:
                raise ParseError("aggregate message: truncated FLV tag", offset=pos)
            if base is None:
                base = ts
            stamp = (message.timestamp + ts - base) & 0xFFFFFFFF
            if tag_type in (MSG_AUDIO, MSG_VIDEO):
                self._on_message(
                    RtmpMessage(
                        type_id=tag_type,
                        stream_id=message.stream_id,
                        timestamp=stamp,
                        payload=body,
                        chunk_stream_id=message.chunk_stream_id,
                    )
                )
            elif tag_type == MSG_DATA_AMF0:
                self._on_data(message.stream_id, decode_amf0(body))
            pos += 11 + size + 4

    def _on_data(self, stream_id: int, values: list[AmfValue]) -> None:
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if not values or not isinstance(values[0], str):
            return
        name = values[0]
        info: dict[str, AmfValue] = {}
        for value in values[1:]:
            if isinstance(value, dict):
                info = value
                break
        self._events.append(MetaData(stream_id=stream_id, name=name, values=info))

    def _on_command(self, stream_id: int, values: list[AmfValue]) -> None:
        if len(values) < 2 or not isinstance(values[0], str) or not isinstance(values[1], float):
            raise ParseError("command message without a name and a transaction id", offset=0)
        name = values[0]
        tid = values[1]
        args = values[2:]
        if self.role is Role.SERVER:
            self._server_command(stream_id, name, tid, args)
        else:
            self._client_command(stream_id, name, tid, args)

    def _server_command(self, stream_id: int, name: str, tid: float, args: list[AmfValue]) -> None:
        if name == "connect":
            obj = args[0] if args and isinstance(args[0], dict) else {}
            app = obj.get("app")
            tc_url = obj.get("tcUrl")
            self.app = app if isinstance(app, str) else ""
            self.tc_url = tc_url if isinstance(tc_url, str) else ""
            self.object_encoding = 3 if obj.get("objectEncoding") == 3 else 0
            self._sent_window = self._window_ack_size
            self._control(MSG_WINDOW_ACK_SIZE, _U32.pack(self._window_ack_size))
            self._control(MSG_SET_PEER_BANDWIDTH, _U32.pack(self._window_ack_size) + b"\x02")
            if self._out_chunk_size != self._writer.chunk_size:
                self._control(MSG_SET_CHUNK_SIZE, _U32.pack(self._out_chunk_size))
                self._writer.chunk_size = self._out_chunk_size
            self._command(
                0,
                "_result",
                tid,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    **_status("status", "NetConnection.Connect.Success", "Connection succeeded."),
                    "objectEncoding": float(self.object_encoding),
                },
            )
            self._events.append(Connected(app=self.app, tc_url=self.tc_url, properties=dict(obj)))
        elif name == "createStream":
            if len(self._streams) >= self._max_streams:
                self._command(0, "_error", tid, None, _status("error", "NetConnection.Call.Failed", "Too many streams"))
                return
            sid = self._next_stream
            self._next_stream += 1
            self._streams.add(sid)
            self._command(0, "_result", tid, None, float(sid))
        elif name in ("releaseStream", "FCPublish", "FCUnpublish", "getStreamLength", "FCSubscribe"):
            if tid:
                self._command(0, "_result", tid, None, UNDEFINED)
            if name == "FCUnpublish":
                key = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
                self._events.append(CommandReceived(stream_id=stream_id, name=name, transaction_id=tid, values=(key,)))
        elif name == "publish":
            key = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            kind = args[2] if len(args) > 2 and isinstance(args[2], str) else "live"
            self._events.append(PublishRequested(stream_id=stream_id, stream_key=key, app=self.app, publish_type=kind))
        elif name == "play":
            key = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            self._events.append(PlayRequested(stream_id=stream_id, stream_name=key, app=self.app))
        elif name == "deleteStream":
            sid_value = args[1] if len(args) > 1 else None
            sid = int(sid_value) if isinstance(sid_value, float) and 0 <= sid_value < 2**32 else stream_id
            self._streams.discard(sid)
            self._events.append(StreamDeleted(stream_id=sid, command=name))
        elif name == "closeStream":
            self._events.append(StreamDeleted(stream_id=stream_id, command=name))
        else:
            self._events.append(CommandReceived(stream_id=stream_id, name=name, transaction_id=tid, values=tuple(args)))

    def _client_command(self, stream_id: int, name: str, tid: float, args: list[AmfValue]) -> None:
        request = self._transactions.pop(int(tid), None) if name in ("_result", "_error") and tid.is_integer() else None
        info = next((a for a in reversed(args) if isinstance(a, dict)), {})
        if request == "connect":
            if name == "_result":
                self._events.append(Connected(app=self.app, tc_url=self.tc_url, properties=dict(info)))
            else:
                self._events.append(self._status_event(0, info, "NetConnection.Connect.Rejected"))
        elif request == "createStream":
            sid = args[1] if len(args) > 1 else None
            if name == "_result" and isinstance(sid, float) and 0 < sid < 2**32:
                self._events.append(StreamCreated(stream_id=int(sid), transaction_id=int(tid)))
            else:
                self._events.append(self._status_event(0, info, "NetConnection.Call.Failed"))
        elif name == "onStatus":
            self._events.append(self._status_event(stream_id, info, ""))
        elif request is None:
            self._events.append(CommandReceived(stream_id=stream_id, name=name, transaction_id=tid, values=tuple(args)))

    @staticmethod
    def _status_event(stream_id: int, info: dict[str, AmfValue], default_code: str) -> StatusReceived:
        level = info.get("level")
        code = info.get("code")
        description = info.get("description")
        return StatusReceived(
            stream_id=stream_id,
            level=level if isinstance(level, str) else "error",
            code=code if isinstance(code, str) else default_code,
            description=description if isinstance(description, str) else "",
        )

    # --- messages out ---------------------------------------------------------------------------------------

    def _send(self, message: RtmpMessage) -> None:
        if self.state is ConnectionState.ERROR or self.state is ConnectionState.CLOSED:
            raise LocalProtocolError(f"cannot send on a connection in state {self.state.name}")
        if self.state is ConnectionState.OPEN:
            self._out.append(self._writer.write(message))
        else:
            self._pending.append(message)

    def _control(self, type_id: int, payload: bytes) -> None:
        self._send(RtmpMessage(type_id=type_id, stream_id=0, timestamp=0, payload=payload, chunk_stream_id=2))

    def _command(self, stream_id: int, name: str, tid: float, *values: AmfValue) -> None:
        payload = encode_amf0(name, float(tid), *values)
        # To a peer that speaks AMF3 command messages, answer in kind: format byte 0, then the AMF0 values.
        self._send(
            RtmpMessage(
                type_id=MSG_COMMAND_AMF3 if self._peer_amf3 else MSG_COMMAND_AMF0,
                stream_id=stream_id,
                timestamp=0,
                payload=b"\x00" + payload if self._peer_amf3 else payload,
                chunk_stream_id=CSID_COMMAND,
            )
        )

    def send_status(self, stream_id: int, level: str, code: str, description: str = "") -> None:
        """Send an `onStatus` on a message stream (NetStream status, §7.2.2)."""
        self._command(stream_id, "onStatus", 0, None, _status(level, code, description))

    def _stream_begin(self, stream_id: int) -> None:
        self._control(MSG_USER_CONTROL, _UC.pack(UC_STREAM_BEGIN, stream_id))

    def accept_publish(self, stream_id: int, stream_key: str = "") -> None:
        """Server role: accept a publish (StreamBegin, then `onStatus NetStream.Publish.Start`)."""
        self._stream_begin(stream_id)
        self.send_status(stream_id, "status", "NetStream.Publish.Start", f"{stream_key} is now published.")

    def refuse_publish(
        self, stream_id: int, code: str = "NetStream.Publish.BadName", description: str = "Stream already publishing."
    ) -> None:
        """Server role: refuse a publish with an error `onStatus` (BadName for a key in use or not allowed)."""
        self.send_status(stream_id, "error", code, description)

    def accept_play(self, stream_id: int, stream_name: str = "") -> None:
        """Server role: accept a play (StreamBegin, Play.Reset, Play.Start, |RtmpSampleAccess); media may follow."""
        self._stream_begin(stream_id)
        self.send_status(stream_id, "status", "NetStream.Play.Reset", f"Playing and resetting {stream_name}.")
        self.send_status(stream_id, "status", "NetStream.Play.Start", f"Started playing {stream_name}.")
        self._send(
            RtmpMessage(
                type_id=MSG_DATA_AMF0,
                stream_id=stream_id,
                timestamp=0,
                payload=encode_amf0("|RtmpSampleAccess", True, True),
                chunk_stream_id=CSID_DATA,
            )
        )

    def refuse_play(
        self, stream_id: int, code: str = "NetStream.Play.StreamNotFound", description: str = "No such stream."
    ) -> None:
        """Server role: refuse a play with an error `onStatus`."""
        self.send_status(stream_id, "error", code, description)

    def end_play(self, stream_id: int) -> None:
        """Server role: the played stream ended (StreamEOF, `onStatus NetStream.Play.Stop`)."""
        self._control(MSG_USER_CONTROL, _UC.pack(UC_STREAM_EOF, stream_id))
        self.send_status(stream_id, "status", "NetStream.Play.Stop", "Stopped playing.")

    def send_media(self, stream_id: int, kind: str, timestamp: int, payload: bytes) -> None:
        """Send one audio or video message (an FLV tag body) on a message stream."""
        video = kind == "video"
        if not video and kind != "audio":
            raise LocalProtocolError(f"media kind must be 'audio' or 'video', not {kind!r}")
        self._send(
            RtmpMessage(
                type_id=MSG_VIDEO if video else MSG_AUDIO,
                stream_id=stream_id,
                timestamp=timestamp,
                payload=payload,
                chunk_stream_id=CSID_VIDEO if video else CSID_AUDIO,
            )
        )

    def send_metadata(self, stream_id: int, values: dict[str, AmfValue], *, set_data_frame: bool = False) -> None:
        """Send `onMetaData` (with the `@setDataFrame` prefix a publisher uses when `set_data_frame`)."""
        head: tuple[AmfValue, ...] = ("@setDataFrame",) if set_data_frame else ()
        self._send(
            RtmpMessage(
                type_id=MSG_DATA_AMF0,
                stream_id=stream_id,
                timestamp=0,
                payload=encode_amf0(*head, "onMetaData", EcmaArray(values)),
                chunk_stream_id=CSID_DATA,
            )
        )

    # --- client commands ------------------------------------------------------------------------------------

    def _transaction(self, name: str) -> int:
        if self.role is not Role.CLIENT:
            raise LocalProtocolError(f"{name} is a client command")
        if len(self._transactions) >= 64:
            raise LocalProtocolError("too many commands waiting for an answer")
        tid = self._next_transaction
        self._next_transaction += 1
        self._transactions[tid] = name
        return tid

    def connect(self, app: str, tc_url: str, *, flash_ver: str = "LNX 9,0,124,2") -> int:
        """Client role: send `connect` (§7.2.1.1); a `Connected` or error `StatusReceived` answers it."""
        tid = self._transaction("connect")
        self.app = app
        self.tc_url = tc_url
        if self._out_chunk_size != self._writer.chunk_size:
            self._control(MSG_SET_CHUNK_SIZE, _U32.pack(self._out_chunk_size))
            self._writer.chunk_size = self._out_chunk_size
        self._command(
            0,
            "connect",
            tid,
            {
                "app": app,
                "flashVer": flash_ver,
                "tcUrl": tc_url,
                "fpad": False,
                "capabilities": 15.0,
                "audioCodecs": 4071.0,
                "videoCodecs": 252.0,
                "videoFunction": 1.0,
                "objectEncoding": 0.0,
            },
        )
        return tid

    def create_stream(self) -> int:
        """Client role: send `createStream`; a `StreamCreated` answers it. Returns the transaction id."""
        tid = self._transaction("createStream")
        self._command(0, "createStream", tid, None)
        return tid

    def play(self, stream_id: int, stream_name: str) -> None:
        """Client role: play `stream_name` on a created stream (Set Buffer Length first, as players do)."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("play is a client command")
        self._command(stream_id, "play", 0, None, stream_name, -2.0)
        self._control(MSG_USER_CONTROL, struct.pack(">HII", UC_SET_BUFFER_LENGTH, stream_id, 3000))

    def publish(self, stream_id: int, stream_key: str, publish_type: str = "live") -> None:
        """Client role: publish on a created stream; an `onStatus` answers it."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("publish is a client command")
        self._command(stream_id, "publish", 0, None, stream_key, publish_type)

    def delete_stream(self, stream_id: int) -> None:
        """Client role: delete a created stream."""
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("deleteStream is a client command")
        self._command(0, "deleteStream", 0, None, float(stream_id))
