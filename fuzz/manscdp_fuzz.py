"""Fuzz harness for fluxkit.protocols.manscdp: parse_manscdp, re-encoding what parses, and parse_mansrtsp.

The first byte picks the target so one corpus covers both bodies carried by GB28181 SIP messages.
"""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.manscdp import parse_manscdp, parse_mansrtsp


def TestOneInput(data: bytes) -> None:
    try:
        if data[:1] == b"P" or data[:4] == b"RTSP" or data[:1] == b"T":
            parse_mansrtsp(data)
            return
        message = parse_manscdp(data)
        try:
            encoded = message.encode("UTF-8")
        except ProtocolError:
            return  # e.g. text XML cannot carry after a lenient decode
        assert parse_manscdp(encoded) == message
    except ProtocolError:
        pass


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
