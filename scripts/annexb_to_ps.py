"""Wrap an Annex-B H.264/H.265 stream in GB28181-shaped MPEG-PS with fluxkit's own muxer (used by scripts/run).

Usage: annexb_to_ps.py IN.h264|IN.h265 OUT.ps [fps]
Raw Annex-B carries no timestamps: each access unit gets 90000/fps ticks (25 fps unless given).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from fluxkit.protocols.nalu import AccessUnit, AccessUnitAssembler, AnnexBSplitter
from fluxkit.protocols.ps import PsMuxer


def access_units(path: Path, codec: str) -> Iterator[AccessUnit]:
    splitter, assembler = AnnexBSplitter(), AccessUnitAssembler(codec)
    with path.open("rb") as inp:
        for chunk in iter(lambda: inp.read(1 << 16), b""):
            for nal in splitter.feed(chunk):
                yield from assembler.feed(nal)
    for nal in splitter.flush():
        yield from assembler.feed(nal)
    yield from assembler.flush()


def main(argv: list[str]) -> int:
    src, dst = Path(argv[1]), Path(argv[2])
    ticks = 90000 // int(argv[3]) if len(argv) > 3 else 3600
    codec = "hevc" if src.suffix in (".h265", ".265", ".hevc") else "h264"
    muxer = PsMuxer(video_codec=codec)
    count = 0
    with dst.open("wb") as out:
        for count, au in enumerate(access_units(src, codec), start=1):
            out.write(muxer.mux_video(au.annexb, pts=(count - 1) * ticks, keyframe=au.keyframe))
    print(f"{dst.name}: {count} frames of {codec} in GB28181-style MPEG-PS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
