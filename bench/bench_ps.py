"""MPEG-PS demux throughput: fluxkit's PsDemuxer against PyAV (libavformat) on the same bytes, same process.

Input: avatar.h264 from ../shared/media (or, where that is absent, a mediagen H.264 stream) cut into access units,
repeated to about 10 MB and muxed once by PsMuxer with 25 fps timestamps (GB28181 shape: one pack per frame).
fluxkit feeds it in 64 KiB chunks and flushes; PyAV opens it from BytesIO with format "mpeg" and touches every
packet's bytes. Best of several runs each, interleaved. A second, cheaper run does the same on a PS written by
ffmpeg's `-f mpeg` muxer (2048-byte packs, AUs straddling PES) when ffmpeg is installed.

Usage: .venv/bin/python bench/bench_ps.py [--repeats N] [--mb SIZE]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxkit.protocols.ps import PsDemuxer, PsMuxer

MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media" / "avatar.h264"
CHUNK = 64 * 1024


def access_units(annexb: bytes) -> list[tuple[bytes, bool]]:
    with av.open(io.BytesIO(annexb), format="h264") as c:
        return [(bytes(p), p.is_keyframe) for p in c.demux() if p.size]


def source() -> tuple[str, bytes]:
    if MEDIA.exists():
        return "avatar.h264", MEDIA.read_bytes()
    from tests.mediagen import encode_annexb

    return "mediagen h264 640x360", encode_annexb("h264", width=640, height=360, frames=300, gop=25)


def fluxkit_demux(ps: bytes) -> int:
    d = PsDemuxer()
    n = 0
    for i in range(0, len(ps), CHUNK):
        n += len(d.feed(ps[i : i + CHUNK]))
    return n + len(d.flush())


def pyav_demux(ps: bytes) -> int:
    n = 0
    with av.open(io.BytesIO(ps), format="mpeg") as c:
        for packet in c.demux():
            if packet.size:
                bytes(packet)
                n += 1
    return n


def race(ps: bytes, repeats: int) -> dict[str, tuple[float, int]]:
    best: dict[str, tuple[float, int]] = {}
    runners: dict[str, Callable[[bytes], int]] = {"fluxkit": fluxkit_demux, "pyav": pyav_demux}
    for _ in range(repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            frames = fn(ps)
            dt = time.perf_counter() - t
            if name not in best or dt < best[name][0]:
                best[name] = (dt, frames)
    return best


def report(title: str, ps: bytes, best: dict[str, tuple[float, int]], *, required: bool = False) -> None:
    mb = len(ps) / 1e6
    print(f"\n{title}: {mb:.1f} MB")
    for name, (dt, frames) in best.items():
        print(
            f"  {name:8s} {mb / dt:8.1f} MB/s  {dt * 1e3:7.1f} ms  {frames} frames  {dt / frames * 1e6:5.2f} us/frame"
        )
    ratio = best["pyav"][0] / best["fluxkit"][0]
    print(f"  ratio fluxkit/PyAV: {ratio:.2f}" + (" (issue 2 requires >= 1.0)" if required else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mb", type=float, default=10.0)
    args = parser.parse_args()

    name, annexb = source()
    aus = access_units(annexb)
    copies = max(1, round(args.mb * 1e6 / len(annexb)))
    muxer = PsMuxer("h264")
    ps = b"".join(muxer.mux_video(data, pts=3600 * i, keyframe=key) for i, (data, key) in enumerate(aus * copies))
    report(f"PsMuxer PS of {name} x{copies}", ps, race(ps, args.repeats), required=True)

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("\nffmpeg not installed: ffmpeg -f mpeg run skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        es = Path(tmp) / "in.h264"
        es.write_bytes(annexb * copies)
        out = Path(tmp) / "ff.mpg"
        subprocess.run(
            [ffmpeg, "-loglevel", "error", "-y", "-r", "25", "-f", "h264", "-i", str(es), "-c", "copy", "-f", "mpeg",
             str(out)],
            check=True,
        )  # fmt: skip
        ff = out.read_bytes()
    report("ffmpeg -f mpeg PS (2048-byte packs, no PSM)", ff, race(ff, max(2, args.repeats // 2)))


if __name__ == "__main__":
    main()
