"""Fuzz the authentication header parsers and the server's verify (fluxkit.protocols.digest).

The input is decoded as UTF-8 (with replacement: header values reach these parsers as str) and fed to
`parse_challenges`, `parse_authorization` and `DigestServer.verify`; only ProtocolError may escape the parsers,
and verify must always return a verdict.
"""

from __future__ import annotations

import contextlib
import random
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.digest import DigestServer, DigestVerdict, parse_authorization, parse_challenges

_SERVER = DigestServer("3402000000", random.Random(0))


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        for challenge in parse_challenges(text):
            parse_challenges(challenge.serialize())
    except ProtocolError:
        pass
    with contextlib.suppress(ProtocolError):
        parse_authorization(parse_authorization(text).serialize())
    verdict = _SERVER.verify(text, method="REGISTER", now=0.0, lookup=lambda user: "12345678")
    assert isinstance(verdict, DigestVerdict)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
