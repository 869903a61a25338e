"""Benchmark: N simulated GB28181 cameras (4 Mbit/s PS over RTP over UDP, 25 fps) ingested into the engine.

Run: `.venv/bin/python bench/bench_gb28181.py [--seconds 4] [--counts 25,50,100,200,300] [--shared]`

A child process (the sender) pre-packetizes one GOP of synthetic H.264 access units (PsMuxer + PsRtpPacketizer,
about 20 KB a frame, 15 RTP packets) per camera and sends every camera's next frame each 40 ms, each camera to its
own UDP port (or all to one shared port, `--shared`, demultiplexed by SSRC). The parent runs fluxkit's receive
path for each camera exactly as `Gb28181Source` does after the INVITE (`DatagramReceiver` batches -> `parse_rtp`
-> `ReorderBuffer` -> `PsOverRtpReceiver` -> engine publisher, via `_MediaSink`), with one engine subscriber per
stream counting frames. It reports, per N: the receiver's CPU per RTP packet (process time / packets), the
frames lost (sent minus published), and beside it the reference: the same datagrams only drained from the
sockets (no parsing), in the same process, so the ratio shows what the GB28181 pipeline costs on top of
receiving. The largest N with zero frames lost is printed last.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxkit.engine import Track, open_engine
from fluxkit.gb28181._media import SharedMediaPort, _MediaSink
from fluxkit.net._udp import DatagramReceiver, bind_udp

FPS = 25
FRAME_BYTES = 20_000  # 4 Mbit/s at 25 fps
GOP = 50

SENDER = r"""
import socket, struct, sys, time, random
sys.path.insert(0, sys.argv[1])
from fluxkit.protocols.ps import PsMuxer
ports = [int(p) for p in sys.argv[2].split(",")]
seconds = float(sys.argv[3]); fps = int(sys.argv[4]); size = int(sys.argv[5]); gop = int(sys.argv[6])
rng = random.Random(1)
def au(key):
    # An AUD, then (keyframe) SPS/PPS/IDR or a P slice; no zero bytes in the payload, first_mb_in_slice = 0.
    body = b"\x88" + bytes(rng.randrange(1, 256) for _ in range(256)) * (size // 256)
    aud = b"\0\0\0\1\x09\xf0"
    if key:
        return aud + b"\0\0\0\1\x67" + body[:20] + b"\0\0\0\1\x68" + body[:4] + b"\0\0\0\1\x65" + body
    return aud + b"\0\0\0\1\x41" + body
# The PS of every frame is muxed once and cut into 1388-byte payloads; each camera only adds its RTP headers.
total = int(seconds * fps)
mux = PsMuxer("h264")
payloads = []
for i in range(total):
    ps = mux.mux_video(au(i % gop == 0), pts=3600 * (i + 1), keyframe=i % gop == 0)
    payloads.append([ps[k:k + 1388] for k in range(0, len(ps), 1388)])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
sock.setblocking(False)
seqs = [0] * len(ports)
pack = struct.Struct("!BBHII").pack
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter(); sent = 0
for i in range(total):
    chunks = payloads[i]; last = len(chunks) - 1; ts = 3600 * (i + 1)
    for n, port in enumerate(ports):
        addr = ("127.0.0.1", port); seq = seqs[n]; ssrc = 0x10000 + n
        for k, chunk in enumerate(chunks):
            data = pack(0x80, 96 | (0x80 if k == last else 0), (seq + k) & 0xFFFF, ts, ssrc) + chunk
            while True:
                try:
                    sock.sendto(data, addr); sent += 1; break
                except BlockingIOError:
                    time.sleep(0.0002)
        seqs[n] = seq + len(chunks)
    delay = start + (i + 1) / fps - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print("sent", sent, total, flush=True)
"""


class _Session:
    """A stand-in for the engine's SourceSession: the stream is published up front, so that a subscriber is
    there from the first frame on."""

    def __init__(self, publisher: object) -> None:
        self._publisher = publisher

    def publish(self, tracks: object) -> object:
        return self._publisher


async def run_once(count: int, seconds: float, shared: bool, reference: bool) -> dict[str, float]:
    root = str(Path(__file__).resolve().parent.parent)
    sockets = []
    shared_port: SharedMediaPort | None = None
    if shared and not reference:
        shared_port = SharedMediaPort(bind_udp("127.0.0.1", 0, receive_buffer=1 << 24))
        ports = [shared_port.port] * count
    else:
        sockets = [bind_udp("127.0.0.1", 0, receive_buffer=1 << 22) for _ in range(count)]
        ports = [s.getsockname()[1] for s in sockets]
    # Set-up, before the measured part: blocking here is harmless.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [
            sys.executable,
            "-c",
            SENDER,
            root,
            ",".join(map(str, ports)),
            str(seconds),
            str(FPS),
            str(FRAME_BYTES),
            str(GOP),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    received = [0] * count
    packets = [0]
    async with open_engine() as engine, trio.open_nursery() as nursery:
        sinks: list[_MediaSink] = []
        for n in range(count):
            publisher = engine.publish_stream(f"cam{n}", [Track(codec="h264")])
            sink = _MediaSink(_Session(publisher), reorder=True)  # type: ignore[arg-type]
            sink.expected = 0x10000 + n
            sinks.append(sink)

        async def count_frames(n: int) -> None:
            async with engine.subscribe_stream(f"cam{n}", queue_size=10_000) as frames:
                async for _ in frames:
                    received[n] += 1

        async def receive(sock: object, sink: _MediaSink) -> None:
            receiver = DatagramReceiver(sock)  # type: ignore[arg-type]
            while True:
                batch = await receiver.receive_batch()
                packets[0] += len(batch)
                if not reference:
                    sink.feed(batch, trio.current_time())

        if shared_port is not None:
            for sink in sinks:
                shared_port.attach(sink, sink.expected, "127.0.0.1")
            nursery.start_soon(shared_port.run)
        else:
            for sock, sink in zip(sockets, sinks, strict=True):
                nursery.start_soon(receive, sock, sink)
        if not reference:
            for n in range(count):
                nursery.start_soon(count_frames, n)
        await trio.sleep(0.2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        await trio.to_thread.run_sync(proc.wait)
        await trio.sleep(0.3)  # drain what is queued
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        sent_line = proc.stdout.read().split()
        if shared_port is not None:
            packets[0] = sum(s.packets for s in sinks)
        nursery.cancel_scope.cancel()
    for sock in sockets:
        sock.close()
    if shared_port is not None:
        shared_port.close()
    sent_packets, frames_per_stream = int(sent_line[1]), int(sent_line[2])
    # The last frame of each stream stays in the demuxer until the next one starts: not a loss.
    lost = 0 if reference else sum(max(0, frames_per_stream - 1 - r) for r in received)
    return {
        "count": count,
        "sent": sent_packets,
        "received": packets[0],
        "cpu_us_per_packet": cpu / max(1, packets[0]) * 1e6,
        "cpu_share": cpu / wall,
        "frames_lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--counts", default="25,50,100,150,200,300")
    parser.add_argument("--shared", action="store_true", help="one shared UDP port demultiplexed by SSRC")
    args = parser.parse_args()
    random.seed(0)
    print(f"cpus={os.cpu_count()} fps={FPS} frame={FRAME_BYTES} B ({FRAME_BYTES * 8 * FPS / 1e6:.1f} Mbit/s)")
    print(f"{'N':>5} {'pkts':>8} {'recv':>8} {'us/pkt':>7} {'ref us/pkt':>10} {'ratio':>6} {'cpu':>5} {'lost':>6}")
    best = 0
    for count in (int(c) for c in args.counts.split(",")):
        ref = trio.run(run_once, count, args.seconds, False, True)
        res = trio.run(run_once, count, args.seconds, args.shared, False)
        ratio = res["cpu_us_per_packet"] / max(ref["cpu_us_per_packet"], 1e-9)
        print(
            f"{count:>5} {res['sent']:>8} {res['received']:>8} {res['cpu_us_per_packet']:>7.1f}"
            f" {ref['cpu_us_per_packet']:>10.1f} {ratio:>6.2f} {res['cpu_share']:>5.2f} {res['frames_lost']:>6}",
            flush=True,
        )
        if res["frames_lost"] == 0 and res["received"] == res["sent"]:
            best = count
        else:
            break
    print(f"largest N with zero frames lost: {best}")


if __name__ == "__main__":
    main()
