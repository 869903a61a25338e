"""`RtmpConnection`: two machines (client and server) wired in memory, and the server fed hostile bytes.

Approach: `_pump` moves `data_to_send()` between the two machines until both are quiet, collecting events, so a
test reads as a dialogue: connect, createStream, publish, media, play, deleteStream. Feeding is also checked byte
by byte (the handshake and chunk reader must accept any split).
"""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.rtmp import (
    HANDSHAKE_SIZE,
    NEED_DATA,
    ChunkWriter,
    CommandReceived,
    Connected,
    ConnectionClosed,
    ConnectionState,
    Event,
    MediaMessage,
    MetaData,
    PlayRequested,
    PublishRequested,
    Role,
    RtmpConnection,
    RtmpMessage,
    StatusReceived,
    StreamCreated,
    StreamDeleted,
    encode_amf0,
)


def _drain(conn: RtmpConnection) -> list[Event]:
    out: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        assert isinstance(event, Event)
        out.append(event)


def _pump(client: RtmpConnection, server: RtmpConnection, *, bytewise: bool = False) -> tuple[list[Event], list[Event]]:
    client_events: list[Event] = []
    server_events: list[Event] = []
    for _ in range(50):
        moved = False
        for src, dst, sink in ((client, server, server_events), (server, client, client_events)):
            data = src.data_to_send()
            if data:
                moved = True
                if bytewise:
                    for i in range(len(data)):
                        dst.receive_data(data[i : i + 1])
                        sink.extend(_drain(dst))
                else:
                    dst.receive_data(data)
            sink.extend(_drain(dst))
        if not moved:
            return client_events, server_events
    raise AssertionError("connections never went quiet")


def _pair() -> tuple[RtmpConnection, RtmpConnection]:
    return RtmpConnection(Role.CLIENT, rng=random.Random(1)), RtmpConnection(Role.SERVER, rng=random.Random(2))


def _connected(bytewise: bool = False) -> tuple[RtmpConnection, RtmpConnection, int]:
    client, server = _pair()
    client.connect("live", "rtmp://127.0.0.1:1935/live")
    client.create_stream()
    c_events, s_events = _pump(client, server, bytewise=bytewise)
    assert s_events == [Connected(app="live", tc_url="rtmp://127.0.0.1:1935/live", properties=s_events[0].properties)]
    assert isinstance(c_events[0], Connected)
    assert c_events[0].properties["code"] == "NetConnection.Connect.Success"
    assert c_events[1] == StreamCreated(stream_id=1, transaction_id=2)
    assert client.state is ConnectionState.OPEN
    assert server.state is ConnectionState.OPEN
    return client, server, 1


@pytest.mark.parametrize("bytewise", [False, True])
def test_publish_media_and_delete(bytewise: bool) -> None:
    client, server, sid = _connected(bytewise)
    client.publish(sid, "cam1?token=abc")
    _, s_events = _pump(client, server, bytewise=bytewise)
    assert s_events == [PublishRequested(stream_id=sid, stream_key="cam1?token=abc", app="live")]
    server.accept_publish(sid, "cam1")
    c_events, _ = _pump(client, server, bytewise=bytewise)
    assert c_events == [
        StatusReceived(
            stream_id=sid, level="status", code="NetStream.Publish.Start", description="cam1 is now published."
        )
    ]
    client.send_metadata(sid, {"width": 320.0}, set_data_frame=True)
    big = bytes(range(256)) * 100  # 25.6 kB: many chunks
    client.send_media(sid, "video", 0, b"\x17\x00\x00\x00\x00" + big)
    client.send_media(sid, "audio", 23, b"\xaf\x01abc")
    client.send_media(sid, "video", 40, b"\x27\x01\x00\x00\x00xyz")
    client.send_media(sid, "video", 0x1234567, b"\x27\x01\x00\x00\x00big-ts")  # extended timestamp
    client.send_media(sid, "video", 0x1234567 + 40, b"\x27\x01\x00\x00\x00next")
    client.delete_stream(sid)
    _, s_events = _pump(client, server, bytewise=bytewise)
    assert s_events == [
        MetaData(stream_id=sid, name="onMetaData", values={"width": 320.0}),
        MediaMessage(kind="video", stream_id=sid, timestamp=0, payload=b"\x17\x00\x00\x00\x00" + big),
        MediaMessage(kind="audio", stream_id=sid, timestamp=23, payload=b"\xaf\x01abc"),
        MediaMessage(kind="video", stream_id=sid, timestamp=40, payload=b"\x27\x01\x00\x00\x00xyz"),
        MediaMessage(kind="video", stream_id=sid, timestamp=0x1234567, payload=b"\x27\x01\x00\x00\x00big-ts"),
        MediaMessage(kind="video", stream_id=sid, timestamp=0x1234567 + 40, payload=b"\x27\x01\x00\x00\x00next"),
        StreamDeleted(stream_id=sid, command="deleteStream"),
    ]


def test_refused_publish_and_play() -> None:
    client, server, sid = _connected()
    client.publish(sid, "taken")
    _pump(client, server)
    server.refuse_publish(sid)
    c_events, _ = _pump(client, server)
    assert c_events == [
        StatusReceived(
            stream_id=sid, level="error", code="NetStream.Publish.BadName", description="Stream already publishing."
        )
    ]
    client.play(sid, "missing")
    _, s_events = _pump(client, server)
    assert s_events == [PlayRequested(stream_id=sid, stream_name="missing", app="live")]
    server.refuse_play(sid)
    c_events, _ = _pump(client, server)
    assert [e.code for e in c_events if isinstance(e, StatusReceived)] == ["NetStream.Play.StreamNotFound"]


def test_play_gets_media() -> None:
    client, server, sid = _connected()
    client.play(sid, "cam1")
    _, s_events = _pump(client, server)
    assert s_events == [PlayRequested(stream_id=sid, stream_name="cam1", app="live")]
    server.accept_play(sid, "cam1")
    server.send_metadata(sid, {"duration": 0.0})
    server.send_media(sid, "video", 0, b"\x17\x00\x00\x00\x00cfg")
    server.send_media(sid, "audio", 0, b"\xaf\x00\x12\x10")
    server.end_play(sid)
    c_events, _ = _pump(client, server)
    codes = [e.code for e in c_events if isinstance(e, StatusReceived)]
    assert codes == ["NetStream.Play.Reset", "NetStream.Play.Start", "NetStream.Play.Stop"]
    assert MetaData(stream_id=sid, name="|RtmpSampleAccess", values={}) in c_events
    assert MetaData(stream_id=sid, name="onMetaData", values={"duration": 0.0}) in c_events
    media = [e for e in c_events if isinstance(e, MediaMessage)]
    assert [m.payload for m in media] == [b"\x17\x00\x00\x00\x00cfg", b"\xaf\x00\x12\x10"]


def test_acknowledgements_and_ping() -> None:
    client, server, sid = _connected()
    # The server announced a 2.5 MB window: after that many bytes the client acknowledges.
    for i in range(700):
        client.send_media(sid, "video", i * 40, b"\x27\x01\x00\x00\x00" + bytes(4000))
    _pump(client, server)
    assert server.peer_acknowledged == 0  # the client acks what it receives; the server received the media
    server.send_media(sid, "video", 0, bytes(1000))
    _pump(client, server)
    # Ping: the server's PingRequest is answered by a PingResponse (both are user control on csid 2).
    writer = ChunkWriter()
    server._out.append(
        writer.write(RtmpMessage(type_id=4, stream_id=0, timestamp=0, payload=b"\x00\x06\x00\x00\x00\x07"))
    )
    _pump(client, server)


def test_server_acks_after_window() -> None:
    client, server, sid = _connected()
    client._control(5, (1000).to_bytes(4, "big"))  # the client asks for acks every 1000 bytes
    _pump(client, server)
    client.send_media(sid, "video", 0, bytes(3000))
    _pump(client, server)
    assert client.peer_acknowledged > 1000


def test_unknown_command_and_closed() -> None:
    client, server, _ = _connected()
    client._command(0, "customCall", 7, None, "x")
    _, s_events = _pump(client, server)
    assert s_events == [CommandReceived(stream_id=0, name="customCall", transaction_id=7.0, values=(None, "x"))]
    server.receive_data(b"")
    assert server.next_event() == ConnectionClosed()
    assert server.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        server.send_media(1, "video", 0, b"x")


def test_bad_c0_and_error_state() -> None:
    server = RtmpConnection(Role.SERVER, rng=random.Random(0))
    server.receive_data(b"\x06" + bytes(HANDSHAKE_SIZE))
    with pytest.raises(RemoteProtocolError, match="RTMP version 6"):
        server.next_event()
    assert server.state is ConnectionState.ERROR
    with pytest.raises(LocalProtocolError):
        server.next_event()
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"x")


def test_handshake_golden() -> None:
    # The server answers C0+C1 with S0 (0x03), S1 (time 0, zero version, 1528 random) and S2 = C1 echoed.
    server = RtmpConnection(Role.SERVER, rng=random.Random(0))
    c1 = bytes(range(256)) * 6
    server.receive_data(b"\x03" + c1)
    assert server.next_event() is NEED_DATA
    out = server.data_to_send()
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE
    assert out[0] == 3
    assert out[1:9] == bytes(8)
    assert out[1 + HANDSHAKE_SIZE :] == c1
    assert server.state is ConnectionState.HANDSHAKE_ACK
    server.receive_data(bytes(HANDSHAKE_SIZE))
    assert server.next_event() is NEED_DATA
    assert server.state is ConnectionState.OPEN
    # The client: C0+C1 at once; C2 echoes S1.
    client = RtmpConnection(Role.CLIENT, rng=random.Random(0))
    first = client.data_to_send()
    assert len(first) == 1 + HANDSHAKE_SIZE
    assert first[0] == 3
    s1 = bytes(reversed(range(256))) * 6
    client.receive_data(b"\x03" + s1 + first[1:])
    assert client.next_event() is NEED_DATA
    assert client.data_to_send() == s1


def test_malformed_command_is_error() -> None:
    _client, server, _ = _connected()
    server_bytes = ChunkWriter().write(
        RtmpMessage(type_id=20, stream_id=0, timestamp=0, payload=encode_amf0(1.0, "x"), chunk_stream_id=9)
    )
    server.receive_data(server_bytes)
    with pytest.raises(ParseError):
        server.next_event()


def test_oversized_chunk_size_refused() -> None:
    _, server, _ = _connected()
    data = ChunkWriter().write(RtmpMessage(type_id=1, stream_id=0, timestamp=0, payload=(1 << 30).to_bytes(4, "big")))
    server.receive_data(data)
    with pytest.raises(ParseError, match="chunk size"):
        server.next_event()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_garbage_after_handshake(data: bytes) -> None:
    client, server = _pair()
    client.connect("live", "rtmp://h/live")
    _pump(client, server)
    server.receive_data(data)
    with contextlib.suppress(ProtocolError):
        _drain(server)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_garbage_from_start(data: bytes) -> None:
    for role in (Role.SERVER, Role.CLIENT):
        conn = RtmpConnection(role, rng=random.Random(0))
        conn.receive_data(data)
        with contextlib.suppress(ProtocolError):
            _drain(conn)
