"""Fuzz the RTMP chunk reader, both connection roles and the FLV tag demuxer: bytes in, events or ProtocolError out.

The first byte picks the target so that the fuzzer gets past the 3 KB handshake: 0x03 feeds the input as it is
to a server (a real capture starts so: C0 = 3); otherwise byte % 3 selects a server after a synthetic handshake,
a client after one (with connect/createStream/play sent), or a bare `ChunkReader`. The rest is cut in two at a
point the second byte chooses. The server accepts every publish and play; media payloads go through an
`FlvDemuxer`.
"""

from __future__ import annotations

import random
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.flv import FlvDemuxer
from fluxkit.protocols.rtmp import (
    HANDSHAKE_SIZE,
    NEED_DATA,
    ChunkReader,
    MediaMessage,
    PlayRequested,
    PublishRequested,
    Role,
    RtmpConnection,
    StreamCreated,
)


def _chunks(data: bytes) -> list[bytes]:
    if not data:
        return [b""]
    cut = data[0] % (len(data) + 1)
    return [data[1 : 1 + cut], data[1 + cut :]]


def _drive(conn: RtmpConnection, chunks: list[bytes]) -> None:
    demuxer = FlvDemuxer()
    for chunk in chunks:
        if chunk:
            conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            if isinstance(event, PublishRequested):
                conn.accept_publish(event.stream_id)
            elif isinstance(event, PlayRequested):
                conn.accept_play(event.stream_id)
                conn.send_media(event.stream_id, "video", 0, b"\x17\x01\x00\x00\x00")
            elif isinstance(event, StreamCreated):
                conn.play(event.stream_id, "x")
            elif isinstance(event, MediaMessage):
                try:
                    if event.kind == "video":
                        demuxer.video(event.timestamp, event.payload)
                    else:
                        demuxer.audio(event.timestamp, event.payload)
                except ProtocolError:
                    pass
        conn.data_to_send()
    conn.receive_data(b"")
    while conn.next_event() is not NEED_DATA:
        pass


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    try:
        if data[0] == 3:
            _drive(RtmpConnection(Role.SERVER, rng=random.Random(0)), [data])
            return
        mode = data[0] % 3
        body = _chunks(data[1:])
        if mode == 0:
            conn = RtmpConnection(Role.SERVER, rng=random.Random(0))
            _drive(conn, [b"\x03" + bytes(2 * HANDSHAKE_SIZE), *body])
        elif mode == 1:
            conn = RtmpConnection(Role.CLIENT, rng=random.Random(0))
            conn.connect("live", "rtmp://127.0.0.1/live")
            conn.create_stream()
            _drive(conn, [b"\x03" + bytes(2 * HANDSHAKE_SIZE), *body])
        else:
            reader = ChunkReader(max_message_size=1 << 16)
            for chunk in body:
                reader.feed(chunk)
    except ProtocolError:
        pass


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
