"""Fuzz the AMF3 decoder, alone and behind the AMF0 AVM+ switch (0x11): values or ParseError, nothing else.

What decodes must re-encode with `encode_amf3` (or refuse with LocalProtocolError: an empty member name, which
AMF3 sealed traits allow but fluxkit's encoder does not write) and decode again to the same number of values.
"""

from __future__ import annotations

import contextlib
import sys

from fluxkit.errors import LocalProtocolError, ProtocolError
from fluxkit.protocols.rtmp import decode_amf0, decode_amf3, encode_amf3


def TestOneInput(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_amf0(b"\x11" + data)
    try:
        values = decode_amf3(data, max_values=4096)
    except ProtocolError:
        return
    try:
        encoded = encode_amf3(*values)
    except LocalProtocolError:
        return
    again = decode_amf3(encoded)
    assert len(again) == len(values)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
