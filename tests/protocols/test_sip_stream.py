"""SIP over TCP: Content-Length framing fed whole, byte by byte, in random chunks, with trailing data."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import ParseError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.sip import NEED_DATA, ConnectionClosed, SipStreamParser, parse_message
from tests.protocols.test_sip_message import GB_INVITE, GB_MESSAGE, GB_REGISTER, GOLDEN

STREAM = b"".join(GOLDEN)


def _drain(parser: SipStreamParser) -> list[object]:
    out: list[object] = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return out


def _expected() -> list[object]:
    return [parse_message(m) for m in GOLDEN]


def test_whole() -> None:
    parser = SipStreamParser()
    parser.receive_data(STREAM)
    assert _drain(parser) == _expected()
    parser.receive_data(b"")
    assert parser.next_event() == ConnectionClosed()


def test_byte_by_byte() -> None:
    parser = SipStreamParser()
    got: list[object] = []
    for i in range(len(STREAM)):
        parser.receive_data(STREAM[i : i + 1])
        got.extend(_drain(parser))
    assert got == _expected()
    assert parser.buffered == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    parser = SipStreamParser()
    got: list[object] = []
    pos = 0
    while pos < len(STREAM):
        n = rng.randint(1, 200)
        parser.receive_data(STREAM[pos : pos + n])
        pos += n
        got.extend(_drain(parser))
    assert got == _expected()


def test_trailing_partial_then_eof_is_an_error() -> None:
    parser = SipStreamParser()
    parser.receive_data(GB_REGISTER + GB_INVITE[:50])
    assert _drain(parser) == [parse_message(GB_REGISTER)]
    parser.receive_data(b"")
    with pytest.raises(ParseError):
        parser.next_event()
    with pytest.raises(ParseError):  # broken for good
        parser.next_event()
    with pytest.raises(ParseError):
        parser.receive_data(b"x")


def test_eof_inside_body() -> None:
    parser = SipStreamParser()
    parser.receive_data(GB_MESSAGE[:-10])
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    with pytest.raises(ParseError):
        parser.next_event()


def test_keepalive_crlf_skipped() -> None:
    parser = SipStreamParser()
    parser.receive_data(b"\r\n\r\n" + GB_REGISTER + b"\r\n\r\n\r\n" + GB_REGISTER)
    assert _drain(parser) == [parse_message(GB_REGISTER)] * 2
    assert parser.keepalives == 2


def test_content_length_mandatory() -> None:
    parser = SipStreamParser()
    parser.receive_data(GB_REGISTER.replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(ParseError, match="mandatory"):
        parser.next_event()


def test_limits() -> None:
    parser = SipStreamParser(max_message_size=200)
    parser.receive_data(b"A" * 300)
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.status_hint == 513
    parser = SipStreamParser(max_message_size=300)
    parser.receive_data(GB_REGISTER.replace(b"Content-Length: 0", b"Content-Length: 100000"))
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.status_hint == 513


def test_data_after_eof() -> None:
    parser = SipStreamParser()
    parser.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        parser.receive_data(b"x")


@given(st.binary(max_size=300), st.integers(1, 50))
def test_garbage(data: bytes, chunk: int) -> None:
    parser = SipStreamParser(max_message_size=1000)
    try:
        for i in range(0, len(data), chunk):
            parser.receive_data(data[i : i + chunk])
            _drain(parser)
        parser.receive_data(b"")
        _drain(parser)
    except ProtocolError:
        pass
