"""Fuzz the AMF0 decoder (values or ParseError, nothing else), and check that what decodes re-encodes and decodes
to the same shape."""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.rtmp import decode_amf0, encode_amf0


def TestOneInput(data: bytes) -> None:
    try:
        values = decode_amf0(data)
    except ProtocolError:
        return
    again = decode_amf0(encode_amf0(*values))
    assert len(again) == len(values)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
