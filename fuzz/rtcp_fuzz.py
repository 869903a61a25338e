"""Fuzz harness: compound RTCP packets. Only fluxkit's ProtocolError may escape, and whatever parses must
re-serialize to something that parses to the same packets."""

from __future__ import annotations

import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.rtp import GenericNack, parse_rtcp, serialize_rtcp


def TestOneInput(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except ProtocolError:
        return
    assert parse_rtcp(serialize_rtcp(packets)) == packets
    for packet in packets:
        if isinstance(packet, GenericNack):
            packet.lost_sequence_numbers()


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
