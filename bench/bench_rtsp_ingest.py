"""RTSP ingest: CPU per stream for N simulated H.264 cameras (a 4 Mbit/s CBR clip) over TCP.

The cameras are the Trio fake camera of tests/net/conftest.py, run in a child process (so their CPU is not
counted) and sending a pre-packetized clip at real time (25 fps, looping with continuous sequence numbers and
timestamps). The parent runs one engine with N `RtspSource`s and one subscriber per stream that counts frames,
and measures its own CPU with `resource.getrusage` over a fixed window after a warm-up. Reported per N: CPU share
of one core per stream, microseconds per RTP packet, frames received against frames sent at 25 fps, and the
engine's loss counters; the last line estimates how many streams fit in one core with no frame lost. The
reference figure printed beside it is SRS (C++) from ../shared/reference/performance.md, 0.48 % of a core per
580 kbit/s GB28181 stream, scaled by bitrate.

Usage: .venv/bin/python bench/bench_rtsp_ingest.py [--window SECONDS] [--counts 1,5,10,20]
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxkit.engine import open_engine
from fluxkit.net.rtsp_source import RtspSource

FPS = 25
BITRATE = 4_000_000
CLIP = Path("/tmp/fluxkit-bench-rtsp-4mbit-v2.h264")


def make_clip() -> bytes:
    """A 4 s, 1280x720 H.264 clip near 4 Mbit/s (CBR, GOP 50), cached in /tmp."""
    if CLIP.exists():
        return CLIP.read_bytes()
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.bit_rate = BITRATE
        stream.options = {
            "preset": "ultrafast",
            "x264-params": "keyint=50:min-keyint=50:scenecut=0:bframes=0:nal-hrd=cbr:vbv-maxrate=4000:vbv-bufsize=4000",
        }
        x = np.arange(1280)[None, :]
        y = np.arange(720)[:, None]
        for i in range(4 * FPS):
            # A moving gradient with light noise: a camera-like picture that keeps the CBR encoder at its 4 Mbit/s
            # (pure noise overflows the VBV and x264 settles far below the target).
            grey = np.clip(((x + y + 4 * i) % 256) + rng.integers(-8, 8, (720, 1280)), 0, 255).astype(np.uint8)
            image = np.ascontiguousarray(np.stack([grey, grey[::-1], grey[:, ::-1]], axis=2))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    CLIP.write_bytes(buf.getvalue())
    return buf.getvalue()


async def serve(count: int) -> None:
    """Child process: `count` fake cameras; prints their ports, then serves until killed."""
    from tests.net.conftest import FakeCamera, packetize_h264, sprop

    annexb = make_clip()
    frames = packetize_h264(annexb, fps=FPS)
    async with trio.open_nursery() as nursery:
        ports = []
        for _ in range(count):
            cam = FakeCamera(frames, sprop(annexb), fps=FPS)
            ports.append(await nursery.start(cam.serve))
        print(" ".join(map(str, ports)), flush=True)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(ports: list[int], window: float, packets_per_frame: float) -> dict[str, float]:
    counts = dict.fromkeys(range(len(ports)), 0)
    async with open_engine(rng=random.Random(0)) as engine:

        async def count(i: int) -> None:
            async with engine.subscribe_stream(f"cam{i}", queue_size=512) as frames:
                async for _ in frames:
                    counts[i] += 1

        for i, port in enumerate(ports):
            engine.add_source(f"cam{i}", RtspSource(f"rtsp://127.0.0.1:{port}/cam{i}", rng=random.Random(i)))
        async with trio.open_nursery() as nursery:
            for i in range(len(ports)):
                nursery.start_soon(count, i)
            await trio.sleep(2.5)  # connect and reach the first keyframe (GOP 2 s)
            start_counts = dict(counts)
            t0, c0 = trio.current_time(), cpu()
            await trio.sleep(window)
            t1, c1 = trio.current_time(), cpu()
            received = sum(counts.values()) - sum(start_counts.values())
            stats = [engine.stream_statistics(f"cam{i}") for i in range(len(ports))]
            nursery.cancel_scope.cancel()
    elapsed = t1 - t0
    expected = len(ports) * FPS * elapsed
    share = (c1 - c0) / elapsed
    return {
        "share": share,
        "per_stream": share / len(ports),
        "us_per_packet": (c1 - c0) / (expected * packets_per_frame) * 1e6,
        "received": received,
        "expected": expected,
        "losses": sum(s.losses for s in stats),
        "restarts": sum(s.restarts for s in stats),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--counts", default="1,5,10,20")
    args = parser.parse_args()
    if args.serve:
        trio.run(serve, args.serve)
        return
    from tests.net.conftest import packetize_h264

    annexb = make_clip()
    packets = packetize_h264(annexb, fps=FPS)
    mbit = len(annexb) * 8 / (len(packets) / FPS) / 1e6
    ppf = sum(len(p) for p in packets) / len(packets)
    print(f"clip: 1280x720 H.264, {mbit:.2f} Mbit/s, {ppf * FPS:.0f} RTP packets/s per stream, TCP interleaved")
    print(f"{'N':>3} {'core share':>10} {'per stream':>10} {'us/packet':>9} {'frames recv/sent':>17} {'losses':>6}")
    results = {}
    for n in (int(x) for x in args.counts.split(",")):
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(n)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        try:
            assert child.stdout is not None
            ports = [int(p) for p in child.stdout.readline().split()]
            r = trio.run(measure, ports, args.window, ppf)
        finally:
            child.kill()
            child.wait()
        results[n] = r
        print(
            f"{n:>3} {r['share'] * 100:>9.1f}% {r['per_stream'] * 100:>9.2f}% {r['us_per_packet']:>9.1f} "
            f"{r['received']:>8.0f}/{r['expected']:<8.0f} {r['losses']:>6.0f}"
        )
    # The largest N gives the marginal cost per stream (fixed costs of the engine and the loop amortized).
    worst = results[max(results)]["per_stream"]
    lossless = all(r["losses"] == 0 and r["received"] >= 0.98 * r["expected"] for r in results.values())
    srs = 0.0048 * mbit / 0.58
    print(
        f"streams per core at {mbit:.1f} Mbit/s: about {int(1 / worst)} "
        f"(per-stream share at N={max(results)}: {worst * 100:.2f}%)"
        f"{'' if lossless else ' -- frames were lost, see above'}"
    )
    print(f"reference: SRS (C++) ~{srs * 100:.2f}% per stream at this bitrate; fluxkit/SRS ratio {worst / srs:.1f}x")


if __name__ == "__main__":
    main()
