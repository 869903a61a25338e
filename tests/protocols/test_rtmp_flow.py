"""RTMP flow control in `RtmpConnection` (§5.4.3-5.4.5): acknowledgements per window, Set Peer Bandwidth limit
types, and the count of bytes a peer has not acknowledged (with 32-bit wrap).

Approach: a server after a synthetic handshake is fed chunks written by a `ChunkWriter`, and what it sends back
is read with a `ChunkReader`.
"""

from __future__ import annotations

import itertools
import random
import struct

from fluxkit.protocols.rtmp import (
    HANDSHAKE_SIZE,
    NEED_DATA,
    ChunkReader,
    ChunkWriter,
    Role,
    RtmpConnection,
    RtmpMessage,
)


def _server(**kwargs: int) -> tuple[RtmpConnection, ChunkWriter, ChunkReader]:
    server = RtmpConnection(Role.SERVER, rng=random.Random(0), **kwargs)  # type: ignore[arg-type]
    server.receive_data(b"\x03" + bytes(2 * HANDSHAKE_SIZE))
    assert server.next_event() is NEED_DATA
    server.data_to_send()
    return server, ChunkWriter(), ChunkReader(max_chunk_size=1 << 20)


def _send(server: RtmpConnection, writer: ChunkWriter, type_id: int, payload: bytes, stream_id: int = 0) -> int:
    data = writer.write(RtmpMessage(type_id=type_id, stream_id=stream_id, timestamp=0, payload=payload))
    server.receive_data(data)
    while server.next_event() is not NEED_DATA:
        pass
    return len(data)


def _control(reader: ChunkReader, server: RtmpConnection, type_id: int) -> list[int]:
    return [struct.unpack(">I", m.payload[:4])[0] for m in reader.feed(server.data_to_send()) if m.type_id == type_id]


def test_publisher_acknowledged_per_window() -> None:
    server, writer, reader = _server()
    received = 1 + 2 * HANDSHAKE_SIZE
    received += _send(server, writer, 5, struct.pack(">I", 5000))  # the publisher's window
    acks: list[int] = []
    for _ in range(40):
        received += _send(server, writer, 9, b"\x27\x01\x00\x00\x00" + bytes(900), stream_id=1)
        got = _control(reader, server, 3)
        assert all(value == received for value in got)  # the sequence number is all bytes received so far
        acks += got
    assert len(acks) >= 7
    assert all(b - a >= 5000 for a, b in itertools.pairwise(acks))
    assert received - acks[-1] < 5000 + 1000


def test_no_acknowledgement_without_window() -> None:
    server, writer, reader = _server()
    for _ in range(10):
        _send(server, writer, 9, bytes(1000), stream_id=1)
    assert _control(reader, server, 3) == []


def test_set_peer_bandwidth_limit_types() -> None:
    server, writer, reader = _server(window_ack_size=50_000)
    _send(server, writer, 20, b"\x02\x00\x07connect\x00?\xf0\x00\x00\x00\x00\x00\x00\x03\x00\x00\x09")
    assert _control(reader, server, 5) == [50_000]  # announced at connect
    assert server.peer_bandwidth == 0
    _send(server, writer, 6, struct.pack(">IB", 40_000, 2))  # dynamic with no hard limit before: ignored
    assert server.peer_bandwidth == 0
    assert _control(reader, server, 5) == []
    _send(server, writer, 6, struct.pack(">IB", 40_000, 0))  # hard: taken, answered with our window
    assert server.peer_bandwidth == 40_000
    assert _control(reader, server, 5) == [40_000]
    _send(server, writer, 6, struct.pack(">IB", 60_000, 2))  # dynamic after hard: hard
    assert server.peer_bandwidth == 60_000
    assert _control(reader, server, 5) == [60_000]
    _send(server, writer, 6, struct.pack(">IB", 80_000, 1))  # soft and larger: ignored
    assert server.peer_bandwidth == 60_000
    _send(server, writer, 6, struct.pack(">IB", 30_000, 1))  # soft and smaller: taken
    assert server.peer_bandwidth == 30_000
    assert _control(reader, server, 5) == [30_000]
    _send(server, writer, 6, struct.pack(">IB", 90_000, 2))  # dynamic after soft: ignored
    assert server.peer_bandwidth == 30_000
    _send(server, writer, 6, struct.pack(">IB", 30_000, 0))  # same size as last answered: no new answer
    assert _control(reader, server, 5) == []


def test_unacknowledged_bytes() -> None:
    server, writer, _ = _server()
    assert server.bytes_sent == 1 + 2 * HANDSHAKE_SIZE  # the handshake counts, as the peer counts it
    server.send_media(1, "video", 0, bytes(10_000))
    server.data_to_send()
    sent = server.bytes_sent
    assert server.unacknowledged == sent
    _send(server, writer, 3, struct.pack(">I", sent - 4000))
    assert server.unacknowledged == 4000
    assert server.acknowledgements == 1
    _send(server, writer, 3, struct.pack(">I", sent + 10))  # a peer counting a little more: nothing pending
    assert server.unacknowledged == 0
    # 32-bit wrap: 4 GiB + 100 sent, the peer's counter wrapped at 50
    server.bytes_sent = (1 << 32) + 100
    _send(server, writer, 3, struct.pack(">I", 50))
    assert server.unacknowledged == 50
