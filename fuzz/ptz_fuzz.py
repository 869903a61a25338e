"""Fuzz harness for fluxkit.protocols.manscdp.PtzCommand (hex text and raw bytes)."""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.manscdp import PtzCommand


def TestOneInput(data: bytes) -> None:
    try:
        command = PtzCommand.from_bytes(data)
        assert PtzCommand.decode(command.encode()) == command
    except ProtocolError:
        pass
    try:
        command = PtzCommand.decode(data.decode("utf-8", errors="replace"))
        assert PtzCommand.decode(command.encode()) == command
    except ProtocolError:
        pass


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
