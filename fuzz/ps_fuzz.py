"""Fuzz the MPEG-PS demuxer and the PS unit parsers: only fluxkit's ProtocolError family may escape.

The input is fed whole and then again in uneven chunks (the first byte picks the chunk size), so the buffering
paths between `feed` calls are exercised too; the unit parsers get the same bytes at offset 0.
"""

from __future__ import annotations

import contextlib
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.ps import PsDemuxer, parse_pack_header, parse_pes, parse_psm, parse_system_header


def TestOneInput(data: bytes) -> None:
    try:
        d = PsDemuxer(max_frame_size=1 << 20)
        d.feed(data)
        d.flush()
        d.statistics()
        step = (data[0] if data else 1) or 1
        d = PsDemuxer()
        for i in range(0, len(data), step):
            d.feed(data[i : i + step])
        d.flush()
    except ProtocolError:
        pass
    for parse in (parse_pack_header, parse_pes, parse_psm, parse_system_header):
        with contextlib.suppress(ProtocolError):
            parse(data)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
