"""Benchmark: LiveFmp4Muxer (our boxes, per frame) against PyAV's MP4 muxer fed the same frames, per frame.

Run: `.venv/bin/python bench/bench_playback.py`. Prints frames/s of each and the ratio.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxkit.playback import LiveFmp4Muxer
from tests.storage._feed import build

ROUNDS = 5


def ours(track, frames) -> int:
    muxer = LiveFmp4Muxer(track)
    total = len(muxer.init_segment())
    for frame in frames:
        total += len(muxer.fragment([frame]))
    return total


def pyav(track, frames) -> int:
    # The reference: PyAV's mp4 muxer emitting a fragment per frame (frag_every_frame), Annex-B converted by FFmpeg.
    sink = io.BytesIO()
    out = av.open(sink, "w", format="mp4", options={"movflags": "frag_every_frame+empty_moov+default_base_moof"})
    prefix = b"".join(b"\x00\x00\x00\x01" + p for p in track.parameter_sets)
    with av.open(io.BytesIO(prefix + frames[0].data), format="h264") as probe:
        stream = out.add_stream_from_template(probe.streams.video[0])
    from fractions import Fraction

    stream.time_base = Fraction(1, 90000)
    base = frames[0].dts
    for frame in frames:
        packet = av.Packet(frame.data)
        packet.stream = stream
        packet.time_base = stream.time_base
        packet.pts = packet.dts = (frame.dts - base) & 0xFFFFFFFF
        packet.is_keyframe = frame.keyframe
        out.mux(packet)
    out.close()
    return len(sink.getvalue())


def timed(fn, *args) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    tracks, frames = build("h264", frames=300, gop=25)
    n = len(frames)
    a = timed(ours, tracks[0], frames)
    b = timed(pyav, tracks[0], frames)
    print(f"LiveFmp4Muxer : {n / a:>10.0f} frames/s ({a / n * 1e6:.1f} us/frame)")
    print(f"PyAV muxer    : {n / b:>10.0f} frames/s ({b / n * 1e6:.1f} us/frame)")
    print(f"ratio (PyAV time / ours): {b / a:.1f}x")


if __name__ == "__main__":
    main()
