"""Fuzz the RTSP stream parser and both machines: bytes in, events or ProtocolError out, nothing else.

The input is split in two at its first byte's value (so the fuzzer controls chunking), fed to a `MessageReader`,
to a client that has a request in flight and a session playing, and to a server whose driver accepts every
request; the header-value parsers get each header of every message parsed.
"""

from __future__ import annotations

import random
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.rtsp import (
    NEED_DATA,
    DescribeRequest,
    MessageReader,
    PauseRequest,
    PlayRequest,
    RtspClientConnection,
    RtspRequest,
    RtspResponse,
    RtspServerConnection,
    SetupRequest,
    TeardownRequest,
    parse_range,
    parse_rtp_info,
    parse_session,
    parse_transport,
)

_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=f\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n"


def _chunks(data: bytes) -> list[bytes]:
    cut = data[0] % (len(data) + 1) if data else 0
    return [data[:cut], data[cut:]]


def _headers(message: RtspRequest | RtspResponse) -> None:
    for name, value in message.headers:
        lname = name.lower()
        try:
            if lname == "transport":
                parse_transport(value)
            elif lname == "session":
                parse_session(value)
            elif lname == "range":
                parse_range(value)
            elif lname == "rtp-info":
                parse_rtp_info(value)
        except ProtocolError:
            pass


def _reader(data: bytes) -> None:
    reader = MessageReader(max_message_size=4096)
    try:
        for chunk in _chunks(data):
            if chunk:
                reader.feed(chunk)
            while (item := reader.next()) is not None:
                if isinstance(item, RtspRequest | RtspResponse):
                    _headers(item)
                    item.serialize()
        reader.feed(b"")
        reader.check_eof()
    except ProtocolError:
        pass


def _client(data: bytes) -> None:
    client = RtspClientConnection("rtsp://u:p@127.0.0.1/x", rng=random.Random(0))
    try:
        client.describe(now=0.0)
        client.setup("rtsp://127.0.0.1/x/trackID=0", now=0.0)
        for chunk in _chunks(data):
            if chunk:
                client.receive_data(chunk)
            while client.next_event() is not NEED_DATA:
                pass
            client.handle_timer(100.0)
        client.receive_data(b"")
        while client.next_event() is not NEED_DATA:
            pass
    except ProtocolError:
        pass


def _server(data: bytes) -> None:
    server = RtspServerConnection(rng=random.Random(0))
    try:
        for chunk in _chunks(data):
            if chunk:
                server.receive_data(chunk, now=1.0)
            while (event := server.next_event()) is not NEED_DATA:
                if isinstance(event, DescribeRequest):
                    server.respond_describe(event, _SDP)
                elif isinstance(event, SetupRequest):
                    server.accept_setup(event, server_port=None if event.transport.is_tcp else (6000, 6001))
                elif isinstance(event, PlayRequest):
                    server.accept_play(event)
                elif isinstance(event, PauseRequest | TeardownRequest):
                    server.accept(event)
            server.data_to_send()
        server.handle_timer(1000.0)
        server.receive_data(b"")
        while server.next_event() is not NEED_DATA:
            pass
    except ProtocolError:
        pass


def TestOneInput(data: bytes) -> None:
    _reader(data)
    _client(data)
    _server(data)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
