"""Fuzz harness for fluxkit.protocols.sdp.parse_sdp (and re-serialization of whatever parses)."""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.sdp import parse_sdp


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        sdp = parse_sdp(text)
        out = sdp.serialize()
        assert out.endswith("\r\n")
        assert parse_sdp(out).serialize() == out
    except ProtocolError:
        pass


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
