"""Fuzz the AMF0 decoder (values or ParseError, nothing else), and check that what decodes re-encodes and decodes
to the same shape (values that only AMF3 can carry, reached through the 0x11 switch, may refuse to re-encode as
AMF0 with LocalProtocolError)."""

from __future__ import annotations

import sys

from fluxkit.errors import LocalProtocolError, ProtocolError
from fluxkit.protocols.rtmp import decode_amf0, encode_amf0


def TestOneInput(data: bytes) -> None:
    try:
        values = decode_amf0(data)
    except ProtocolError:
        return
    try:
        encoded = encode_amf0(*values)
    except LocalProtocolError:
        return
    again = decode_amf0(encoded)
    assert len(again) == len(values)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
