"""Fan-out benchmark: one stream to 1, 10 and 100 subscribers, CPU per delivered frame and memory.

The stream is synthetic and camera-like: 25 fps, a keyframe every 50 frames, keyframes of 100 KB and other
frames of 15 KB (about 3.7 Mbit/s); payload contents do not matter to a fan-out. Two implementations run side
by side in the same process:

* fluxkit: `VideoEngine.publish_stream` + `subscribe_stream`; every subscriber gets the publisher's own frame.
* naive: one bounded `trio.open_memory_channel` per subscriber and a copy of the payload per subscriber
  (`bytes(memoryview(data))`), the straightforward way to keep subscribers independent.

CPU: the publisher task sends a frame and yields once (`trio.sleep(0)`), so every subscriber task wakes, takes the
frame and goes back to waiting: the figure includes Trio's task switches, which dominate at 100 subscribers.
It is `time.process_time()` for the whole run divided by the frames delivered (best of several runs).

Memory: one GOP (50 frames, about 0.8 MB of payload) is published in a burst before any subscriber runs, so
every queue holds the whole GOP; `tracemalloc` reports the memory allocated by the burst. With sharing it stays
near one GOP whatever the subscriber count; with copies it grows by one GOP per subscriber. The delivered
payloads are also checked by identity: fluxkit must hand out exactly the source's bytes objects.

Run: .venv/bin/python bench/bench_fanout.py
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
import tracemalloc
from pathlib import Path

import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxkit.engine import Track, open_engine  # noqa: E402
from fluxkit.protocols import MediaFrame  # noqa: E402

FRAMES = 1000
GOP = 50
KEY_SIZE = 100_000
DELTA_SIZE = 15_000
REPEATS = 3
COUNTS = (1, 10, 100)


def make_frames(count: int) -> list[MediaFrame]:
    key = bytes(range(256)) * (KEY_SIZE // 256)
    frames = []
    for i in range(count):
        size = KEY_SIZE if i % GOP == 0 else DELTA_SIZE
        # A distinct bytes object per frame, as a depacketizer makes.
        data = bytes([i % 256]) + key[: size - 1]
        frames.append(MediaFrame(codec="h264", data=data, pts=i * 3600, dts=None, keyframe=i % GOP == 0))
    return frames


# -- fluxkit -------------------------------------------------------------------------------------------------------


async def fluxkit_run(frames: list[MediaFrame], subscribers: int, *, burst: bool) -> tuple[int, set[int]]:
    """Publish `frames` to `subscribers`; returns frames delivered and the ids of the payloads delivered."""
    delivered = 0
    payload_ids: set[int] = set()
    async with open_engine() as engine:
        publisher = engine.publish_stream("cam", [Track(codec="h264")])
        subs = [engine.subscribe_stream("cam", queue_size=len(frames) + 1) for _ in range(subscribers)]

        async def consume(sub: object) -> None:
            nonlocal delivered
            async for frame in sub:  # type: ignore[attr-defined]
                delivered += 1
                payload_ids.add(id(frame.data))

        async with trio.open_nursery() as nursery:
            for sub in subs:
                nursery.start_soon(consume, sub)
            await trio.testing.wait_all_tasks_blocked()
            if burst:
                publisher.send_all(frames)
                if tracemalloc.is_tracing():
                    burst_memory[0] = tracemalloc.get_traced_memory()[0]
            else:
                for frame in frames:
                    publisher.send(frame)
                    await trio.lowlevel.checkpoint()
            publisher.close()
    return delivered, payload_ids


# -- naive ---------------------------------------------------------------------------------------------------------


async def naive_run(frames: list[MediaFrame], subscribers: int, *, burst: bool) -> tuple[int, set[int]]:
    delivered = 0
    payload_ids: set[int] = set()
    channels = [trio.open_memory_channel[MediaFrame](len(frames) + 1) for _ in range(subscribers)]

    async def consume(receive: trio.MemoryReceiveChannel[MediaFrame]) -> None:
        nonlocal delivered
        async for frame in receive:
            delivered += 1
            payload_ids.add(id(frame.data))

    def send(frame: MediaFrame) -> None:
        for send_channel, _ in channels:
            copy = MediaFrame(
                codec=frame.codec,
                data=bytes(memoryview(frame.data)),
                pts=frame.pts,
                dts=frame.dts,
                keyframe=frame.keyframe,
            )
            with contextlib.suppress(trio.WouldBlock):
                send_channel.send_nowait(copy)

    async with trio.open_nursery() as nursery:
        for _, receive in channels:
            nursery.start_soon(consume, receive)
        await trio.testing.wait_all_tasks_blocked()
        if burst:
            for frame in frames:
                send(frame)
            if tracemalloc.is_tracing():
                burst_memory[0] = tracemalloc.get_traced_memory()[0]
        else:
            for frame in frames:
                send(frame)
                await trio.lowlevel.checkpoint()
        for send_channel, _ in channels:
            send_channel.close()
    return delivered, payload_ids


burst_memory = [0]


def cpu_per_frame(impl: object, frames: list[MediaFrame], subscribers: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        delivered, _ = trio.run(functools.partial(impl, burst=False), frames, subscribers)  # type: ignore[arg-type]
        elapsed = time.process_time() - start
        assert delivered == len(frames) * subscribers, (delivered, len(frames) * subscribers)
        best = min(best, elapsed / delivered)
    return best


def burst_memory_bytes(impl: object, frames: list[MediaFrame], subscribers: int) -> tuple[int, set[int]]:
    """Bytes allocated by publishing one GOP into every queue, and the ids of the payloads delivered."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        delivered, payload_ids = trio.run(functools.partial(impl, burst=True), frames, subscribers)  # type: ignore[arg-type]
    finally:
        tracemalloc.stop()
    assert delivered == len(frames) * subscribers
    return burst_memory[0] - before, payload_ids


def main() -> None:
    frames = make_frames(FRAMES)
    gop = frames[:GOP]
    payload = sum(len(f.data) for f in frames)
    gop_payload = sum(len(f.data) for f in gop)
    print(
        f"stream: {FRAMES} frames, GOP {GOP}, {payload / FRAMES / 1000:.1f} KB/frame average "
        f"({payload * 8 * 25 / FRAMES / 1e6:.1f} Mbit/s at 25 fps); one GOP = {gop_payload / 1e6:.2f} MB"
    )
    print()
    print("CPU per delivered frame (us), best of", REPEATS)
    print(f"{'subscribers':>11} {'fluxkit':>9} {'naive':>9} {'naive/fluxkit':>14} {'fluxkit frames/s':>17}")
    for count in COUNTS:
        ours = cpu_per_frame(fluxkit_run, frames, count)
        theirs = cpu_per_frame(naive_run, frames, count)
        print(f"{count:>11} {ours * 1e6:>9.2f} {theirs * 1e6:>9.2f} {theirs / ours:>14.2f} {1 / ours:>17,.0f}")
    print()
    print("memory allocated by a one-GOP burst into every queue (tracemalloc)")
    print(f"{'subscribers':>11} {'fluxkit MB':>11} {'naive MB':>9} {'naive/fluxkit':>14} {'fluxkit copies':>15}")
    source_ids = {id(f.data) for f in gop}
    for count in COUNTS:
        ours, ours_ids = burst_memory_bytes(fluxkit_run, gop, count)
        theirs, _ = burst_memory_bytes(naive_run, gop, count)
        # Every payload delivered to every subscriber is one of the source's own bytes objects.
        copies = len(ours_ids - source_ids)
        assert copies == 0, "fluxkit delivered a payload that is not the source's object"
        print(f"{count:>11} {ours / 1e6:>11.3f} {theirs / 1e6:>9.3f} {theirs / max(ours, 1):>14.1f} {copies:>15}")
    print()
    print(f"(the GOP's payload itself is {gop_payload / 1e6:.3f} MB and was allocated before the burst)")


if __name__ == "__main__":
    main()
