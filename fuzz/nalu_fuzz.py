"""Fuzz the NALU layer: streaming splitter, scanners, SPS/VPS parsers and access-unit assembler.

The first byte picks the codec (even: H.264, odd: H.265) and the chunk size the splitter is fed with; the rest
is an Annex-B stream. Every NAL unit the splitter returns goes to the assembler, parameter-set units also to the
SPS/VPS parsers, and the whole input to the one-shot scanners, which must agree with the splitter. Only
fluxkit's ProtocolError may escape a parser.

Run: .venv/bin/python fuzz/nalu_fuzz.py -max_total_time=60 <corpus copy>
"""

from __future__ import annotations

import contextlib
import sys

from fluxkit.errors import ProtocolError
from fluxkit.protocols.nalu import (
    AccessUnitAssembler,
    AnnexBSplitter,
    escape_rbsp,
    find_au_start,
    is_keyframe_au,
    nal_types,
    parse_h264_sps,
    parse_h265_sps,
    parse_h265_vps_fps,
    split_annexb,
    unescape_rbsp,
)


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    codec = "hevc" if data[0] & 1 else "h264"
    chunk = 1 + (data[0] >> 1) * 8
    stream = data[1:]

    splitter = AnnexBSplitter(max_nal_size=1 << 16)
    assembler = AccessUnitAssembler(codec, max_au_size=1 << 16)
    nals: list[bytes] = []
    try:
        for pos in range(0, len(stream), chunk):
            nals += splitter.feed(stream[pos : pos + chunk])
        nals += splitter.flush()
    except ProtocolError:
        nals = []
    else:
        if nals != split_annexb(stream):
            raise AssertionError("AnnexBSplitter disagrees with split_annexb")
    if len(nal_types(codec, stream)) != len(split_annexb(stream)):
        raise AssertionError("nal_types disagrees with split_annexb")
    find_au_start(codec, stream)
    is_keyframe_au(codec, stream)

    for nal in nals:
        with contextlib.suppress(ProtocolError):
            assembler.feed(nal, pts=len(nal))
        t = nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F
        with contextlib.suppress(ProtocolError):
            if codec == "h264" and t == 7:
                parse_h264_sps(nal)
            elif codec == "hevc" and t == 33:
                parse_h265_sps(nal)
            elif codec == "hevc" and t == 32:
                parse_h265_vps_fps(nal)
    assembler.flush()
    assembler.parameter_sets.sps_info()

    # The parsers must also cope with input that is not behind a start code at all.
    for parse in (parse_h264_sps, parse_h265_sps, parse_h265_vps_fps):
        with contextlib.suppress(ProtocolError):
            parse(stream)
    if unescape_rbsp(escape_rbsp(stream)) != stream:
        raise AssertionError("escape/unescape round trip failed")


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
