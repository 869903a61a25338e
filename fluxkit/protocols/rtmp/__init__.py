"""RTMP (Adobe RTMP 1.0), sans-IO: handshake (simple and digest), chunk stream, AMF0/AMF3, NetConnection/NetStream.

`RtmpConnection(Role.SERVER | Role.CLIENT, rng=...)` is the state machine (`receive_data`, `next_event`,
`data_to_send` and command/media methods); `ChunkReader`/`ChunkWriter` and `encode_amf0`/`decode_amf0` are the
codecs under it (`encode_amf3`/`decode_amf3` for the AMF3 values that AMF3 command and data messages carry).
Audio/video message payloads are FLV tag bodies: see `fluxkit.protocols.flv`.
"""

from __future__ import annotations

from ._amf0 import DEFAULT_MAX_DEPTH as DEFAULT_MAX_DEPTH
from ._amf0 import DEFAULT_MAX_VALUES as DEFAULT_MAX_VALUES
from ._amf0 import UNDEFINED as UNDEFINED
from ._amf0 import AmfDate as AmfDate
from ._amf0 import AmfValue as AmfValue
from ._amf0 import EcmaArray as EcmaArray
from ._amf0 import Undefined as Undefined
from ._amf0 import decode_amf0 as decode_amf0
from ._amf0 import encode_amf0 as encode_amf0
from ._amf3 import decode_amf3 as decode_amf3
from ._amf3 import encode_amf3 as encode_amf3
from ._chunk import DEFAULT_CHUNK_SIZE as DEFAULT_CHUNK_SIZE
from ._chunk import DEFAULT_MAX_CHUNK_SIZE as DEFAULT_MAX_CHUNK_SIZE
from ._chunk import DEFAULT_MAX_CHUNK_STREAMS as DEFAULT_MAX_CHUNK_STREAMS
from ._chunk import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from ._chunk import ChunkReader as ChunkReader
from ._chunk import ChunkWriter as ChunkWriter
from ._chunk import RtmpMessage as RtmpMessage
from ._chunk import encode_basic_header as encode_basic_header
from ._connection import DEFAULT_MAX_STREAMS as DEFAULT_MAX_STREAMS
from ._connection import DEFAULT_OUT_CHUNK_SIZE as DEFAULT_OUT_CHUNK_SIZE
from ._connection import DEFAULT_WINDOW_ACK_SIZE as DEFAULT_WINDOW_ACK_SIZE
from ._connection import HANDSHAKE_SIZE as HANDSHAKE_SIZE
from ._connection import ConnectionState as ConnectionState
from ._connection import Role as Role
from ._connection import RtmpConnection as RtmpConnection
from ._events import NEED_DATA as NEED_DATA
from ._events import CommandReceived as CommandReceived
from ._events import Connected as Connected
from ._events import ConnectionClosed as ConnectionClosed
from ._events import Event as Event
from ._events import MediaMessage as MediaMessage
from ._events import MetaData as MetaData
from ._events import NeedData as NeedData
from ._events import PlayRequested as PlayRequested
from ._events import PublishRequested as PublishRequested
from ._events import StatusReceived as StatusReceived
from ._events import StreamCreated as StreamCreated
from ._events import StreamDeleted as StreamDeleted

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_CHUNK_SIZE",
    "DEFAULT_MAX_CHUNK_STREAMS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_MAX_VALUES",
    "DEFAULT_OUT_CHUNK_SIZE",
    "DEFAULT_WINDOW_ACK_SIZE",
    "HANDSHAKE_SIZE",
    "NEED_DATA",
    "UNDEFINED",
    "AmfDate",
    "AmfValue",
    "ChunkReader",
    "ChunkWriter",
    "CommandReceived",
    "Connected",
    "ConnectionClosed",
    "ConnectionState",
    "EcmaArray",
    "Event",
    "MediaMessage",
    "MetaData",
    "NeedData",
    "PlayRequested",
    "PublishRequested",
    "Role",
    "RtmpConnection",
    "RtmpMessage",
    "StatusReceived",
    "StreamCreated",
    "StreamDeleted",
    "Undefined",
    "decode_amf0",
    "decode_amf3",
    "encode_amf0",
    "encode_amf3",
    "encode_basic_header",
]
