"""Fuzz the SIP parsers (fluxkit.protocols.sip): datagram parsing, typed header views, stream framing, the UA.

Each input is parsed as one datagram (and, when that succeeds, re-serialized and parsed again, and every typed
view read), fed to a `SipStreamParser` in two chunks, and handed to a `SipUserAgent` as a datagram; only
ProtocolError may escape the parsers and the user agent must swallow everything (it counts malformed input).
"""

from __future__ import annotations

import contextlib
import random
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.digest import DigestServer
from fluxkit.protocols.sip import NEED_DATA, ConnectionClosed, SipStreamParser, SipUserAgent, parse_message

_VIEWS = ("vias", "via", "from_", "to", "call_id", "cseq", "contacts", "contact", "expires", "max_forwards")


def _ua() -> SipUserAgent:
    return SipUserAgent(
        user="34020000002000000001",
        host="127.0.0.1",
        port=5060,
        rng=random.Random(0),
        domain="3402000000",
        authenticator=DigestServer("3402000000", random.Random(1)),
        lookup=lambda user: "12345678",
    )


def TestOneInput(data: bytes) -> None:
    try:
        message = parse_message(data)
        again = parse_message(message.serialize())
        for view in _VIEWS:
            with contextlib.suppress(ProtocolError):
                getattr(again, view)
    except ProtocolError:
        pass
    parser = SipStreamParser(max_message_size=4096)
    try:
        half = len(data) // 2
        for chunk in (data[:half], data[half:], b""):
            parser.receive_data(chunk)
            while (event := parser.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    break
    except ProtocolError:
        pass
    ua = _ua()
    ua.receive_datagram(data, ("127.0.0.1", 5070), 0.0)
    while ua.next_event() is not None:
        pass
    ua.datagrams_to_send(0.0)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
