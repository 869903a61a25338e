"""RTMP ingest: CPU per stream for N concurrent 4 Mbit/s H.264 pushes into `serve_rtmp`.

The pushers run in a child process (so their CPU is not counted): each opens a connection, publishes with
fluxkit's sans-IO client, and sends a pre-built 4 Mbit/s clip as FLV tags (RTMP chunks of 4096 bytes) at real
time, 25 fps, looping with growing timestamps. The parent runs one engine, `serve_rtmp`, and one subscriber per
stream that counts frames, and measures its own CPU with `resource.getrusage` over a fixed window after a
warm-up. Reported per N: CPU share of one core per stream, microseconds per frame, frames received against frames
sent. The reference beside it is SRS (C++), 0.48 % of a core per 580 kbit/s stream
(../shared/reference/performance.md), scaled by bitrate.

Usage: .venv/bin/python bench/bench_rtmp.py [--window SECONDS] [--counts 1,5,10]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rtsp_ingest import BITRATE, FPS, make_clip  # the same 720p 4 Mbit/s clip

from fluxkit.engine import open_engine
from fluxkit.net.rtmp_server import serve_rtmp
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.flv import FlvMuxer
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from fluxkit.protocols.rtmp import NEED_DATA, Role, RtmpConnection, StatusReceived, StreamCreated


def build_tags() -> list[tuple[str, int, bytes]]:
    """The clip as FLV tag bodies (sequence header first)."""
    assembler = AccessUnitAssembler("h264")
    units = [u for nal in split_annexb(make_clip()) for u in assembler.feed(nal)] + assembler.flush()
    muxer = FlvMuxer(video_codec="h264")
    tags: list[tuple[str, int, bytes]] = []
    for i, unit in enumerate(units):
        data = b"".join(b"\x00\x00\x00\x01" + n for n in unit.nals)
        tags += muxer.push(MediaFrame(codec="h264", data=data, pts=i * 3600, dts=i * 3600, keyframe=unit.keyframe))
    return tags


async def push(port: int, key: str, tags: list[tuple[str, int, bytes]]) -> None:
    """One publisher: connect, publish `key`, then send the clip in a loop at 25 fps."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    conn = RtmpConnection(Role.CLIENT, rng=random.Random(0))
    conn.connect("live", f"rtmp://127.0.0.1:{port}/live")
    sid = -1
    while sid < 0:
        await stream.send_all(conn.data_to_send())
        conn.receive_data(await stream.receive_some(65536))
        while (event := conn.next_event()) is not NEED_DATA:
            if type(event).__name__ == "Connected":
                conn.create_stream()
            elif isinstance(event, StreamCreated):
                conn.publish(event.stream_id, key)
            elif isinstance(event, StatusReceived) and event.code == "NetStream.Publish.Start":
                sid = event.stream_id

    async def drain() -> None:
        while await stream.receive_some(65536):
            conn.receive_data(b"")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        header, frames = tags[0], tags[1:]
        conn.send_media(sid, *header)
        start = trio.current_time()
        n = 0
        while True:
            kind, _, body = frames[n % len(frames)]
            conn.send_media(sid, kind, n * 40, body)
            await stream.send_all(conn.data_to_send())
            n += 1
            await trio.sleep_until(start + n / FPS)


def child(port: int, count: int) -> None:
    tags = build_tags()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(push, port, f"cam{i}", tags)

    trio.run(main)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(count: int, window: float, warmup: float) -> dict[str, float]:
    async with open_engine() as engine, trio.open_nursery() as nursery:
        listeners = await nursery.start(serve_rtmp, engine, "127.0.0.1", 0)
        port = listeners[0].socket.getsockname()[1]
        proc = await trio.lowlevel.open_process([sys.executable, __file__, "--child", str(port), str(count)])
        frames = [0] * count

        async def counter(i: int) -> None:
            while not any(s.stream_id == f"cam{i}" for s in engine.list_streams()):  # noqa: ASYNC110 - a poll
                await trio.sleep(0.05)
            async with engine.subscribe_stream(f"cam{i}", queue_size=2000) as sub:
                async for _ in sub:
                    frames[i] += 1

        for i in range(count):
            nursery.start_soon(counter, i)
        await trio.sleep(warmup)
        before, got_before = cpu(), sum(frames)
        await trio.sleep(window)
        used, got = cpu() - before, sum(frames) - got_before
        proc.kill()
        await proc.wait()
        nursery.cancel_scope.cancel()
    expected = count * FPS * window
    return {"cpu_per_stream": used / window / count, "us_per_frame": used / max(got, 1) * 1e6, "ratio": got / expected}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--counts", default="1,5,10")
    args = parser.parse_args()
    tags = build_tags()  # build (and cache) the clip before timing anything
    mbit = sum(len(body) for _, _, body in tags[1:]) * 8 * FPS / (len(tags) - 1) / 1e6
    print(f"clip: {len(tags) - 1} frames, {mbit:.2f} Mbit/s of FLV video tags (target {BITRATE / 1e6:.0f})")
    srs = 0.0048 * mbit / 0.58
    print(f"RTMP ingest, {mbit:.0f} Mbit/s H.264 720p at {FPS} fps per stream, window {args.window:.0f} s")
    print(f"{'streams':>7} {'CPU/stream':>11} {'us/frame':>9} {'frames recv/sent':>17} {'vs SRS':>7}")
    for count in (int(c) for c in args.counts.split(",")):
        r = trio.run(run, count, args.window, args.warmup)
        print(
            f"{count:>7} {r['cpu_per_stream'] * 100:>10.2f}% {r['us_per_frame']:>9.0f} {r['ratio']:>17.3f}"
            f" {r['cpu_per_stream'] / srs:>6.1f}x"
        )
    print(f"reference: SRS (C++) ~{srs * 100:.2f}% of a core per stream at this bitrate")


if __name__ == "__main__":
    main()
