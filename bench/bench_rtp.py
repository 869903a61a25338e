"""RTP receive chain benchmark: parse_rtp -> ReorderBuffer.push -> H264Depacketizer.feed, CPU per packet.

Packets come from H264Packetizer (MTU 1200) over ~10 s of video: ../shared/media/avatar.h264 when present,
else a 640x360 stream made with tests/mediagen.py. They are serialized to datagrams first, so parsing is timed
too. Each stage is timed alone (over the output of the previous one) and the whole chain in one loop; a naive
depacketizer (bytes concatenated per fragment, one method call per NAL type) runs side by side for the ratio.
Figures are the best of several runs (wall-clock, one core; absolute values drift on shared machines, compare
the ratio).

Run: .venv/bin/python bench/bench_rtp.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxkit.protocols import MediaFrame  # noqa: E402
from fluxkit.protocols.rtp import RtpPacket, parse_rtp  # noqa: E402
from fluxkit.protocols.rtp.payload import H264Depacketizer, H264Packetizer  # noqa: E402

try:
    from fluxkit.protocols.rtp import ReorderBuffer
except ImportError:  # pragma: no cover - the reorder buffer is written separately
    ReorderBuffer = None  # type: ignore[assignment,misc]

REPEATS = 7
CLIP = ROOT.parent / "shared" / "media" / "avatar.h264"


def load_stream() -> tuple[str, bytes]:
    if CLIP.exists():
        return "avatar.h264 (768x320, 308 frames)", CLIP.read_bytes()
    from tests.mediagen import encode_annexb

    return "mediagen 640x360 (250 frames)", encode_annexb("h264", width=640, height=360, frames=250, gop=50)


def access_units(data: bytes) -> list[bytes]:
    ctx = av.CodecContext.create("h264", "r")
    return [bytes(p) for p in ctx.parse(data) + ctx.parse(None)]


class NaiveH264Depacketizer:
    """The straightforward way, same output: a bytes buffer grown with += per fragment, a method per packet type,
    loss dropping the frame, `MediaFrame` built by its constructor."""

    def __init__(self) -> None:
        self.frame = b""
        self.fu = b""
        self.ts: int | None = None
        self.next_seq: int | None = None
        self.broken = False
        self.key = False

    def feed(self, packet: RtpPacket) -> list[MediaFrame]:
        out: list[MediaFrame] = []
        if self.next_seq is not None and packet.sequence_number != self.next_seq:
            self.broken = True
        self.next_seq = (packet.sequence_number + 1) % 65536
        if self.ts is not None and packet.timestamp != self.ts and self.frame:
            self.emit(out)
        self.ts = packet.timestamp
        kind = packet.payload[0] & 0x1F
        if kind == 28:
            self.handle_fu_a(packet.payload)
        elif kind == 24:
            self.handle_stap_a(packet.payload)
        else:
            self.handle_single(packet.payload)
        if packet.marker:
            self.emit(out)
        return out

    def emit(self, out: list[MediaFrame]) -> None:
        if not self.broken:
            out.append(MediaFrame(codec="h264", data=self.frame, pts=self.ts, dts=None, keyframe=self.key))
        self.frame = b""
        self.broken = self.key = False

    def handle_single(self, payload: bytes) -> None:
        if payload[0] & 0x1F == 5:
            self.key = True
        self.frame = self.frame + b"\x00\x00\x00\x01" + payload

    def handle_stap_a(self, payload: bytes) -> None:
        pos = 1
        while pos + 2 <= len(payload):
            size = int.from_bytes(payload[pos : pos + 2], "big")
            self.handle_single(payload[pos + 2 : pos + 2 + size])
            pos += 2 + size

    def handle_fu_a(self, payload: bytes) -> None:
        indicator, header = payload[0], payload[1]
        if header & 0x80:
            self.fu = bytes([(indicator & 0xE0) | (header & 0x1F)])
        self.fu = self.fu + payload[2:]
        if header & 0x40:
            self.handle_single(self.fu)
            self.fu = b""


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def synthetic_units(seconds: int = 10) -> list[bytes]:
    """A 4 Mbit/s-like camera stream (25 fps, 150 KB IDR every 2 s, 18 KB P-frames): SPS/PPS/IDR and P NAL
    units with filler bodies; the depacketizer never looks inside them."""
    body = bytes(range(1, 256)) * 600
    sps = b"\x67\x64\x00\x1f" + body[:20]
    pps = b"\x68\xee\x3c\x80"
    units = []
    for i in range(25 * seconds):
        if i % 50 == 0:
            units.append(b"".join(b"\x00\x00\x00\x01" + n for n in (sps, pps, b"\x65\x88" + body[:150_000])))
        else:
            units.append(b"\x00\x00\x00\x01\x41\x9a" + body[:18_000])
    return units


def main() -> None:
    name, stream = load_stream()
    run_scenario(name, access_units(stream))
    run_scenario("synthetic 4 Mbit/s (25 fps, 150 KB IDR / 2 s, 18 KB P)", synthetic_units())


def run_scenario(name: str, units: list[bytes]) -> None:
    packetizer = H264Packetizer(ssrc=0x12345678, initial_sequence=65000)
    packets: list[RtpPacket] = []
    for i, au in enumerate(units):
        packets += packetizer.packetize(au, 90000 + i * 3600)
    datagrams = [p.serialize() for p in packets]
    n = len(datagrams)
    print(f"\nstream: {name}, {len(units)} access units, {n} RTP packets, {sum(map(len, datagrams)) / n:.0f} B avg")

    parsed = [parse_rtp(d) for d in datagrams]
    t_parse = best(lambda: [parse_rtp(d) for d in datagrams])

    def reorder() -> list[RtpPacket]:
        if ReorderBuffer is None:
            return parsed
        buf = ReorderBuffer()
        push = buf.push
        out: list[RtpPacket] = []
        for p in parsed:
            out += push(p, 0.0)  # type: ignore[arg-type]
        return out

    ordered = reorder()
    t_reorder = best(reorder) if ReorderBuffer is not None else 0.0

    def depacketize() -> int:
        feed = H264Depacketizer().feed
        count = 0
        for p in ordered:
            count += len(feed(p))
        return count

    def depacketize_naive() -> int:
        feed = NaiveH264Depacketizer().feed
        count = 0
        for p in ordered:
            count += len(feed(p))
        return count

    frames = depacketize()
    assert frames == len(units), (frames, len(units))
    assert depacketize_naive() == len(units)
    t_depack = best(depacketize)
    t_naive = best(depacketize_naive)

    def chain(depacketizer_cls: Callable[[], H264Depacketizer | NaiveH264Depacketizer]) -> Callable[[], int]:
        def run() -> int:
            feed = depacketizer_cls().feed
            count = 0
            if ReorderBuffer is None:
                for d in datagrams:
                    count += len(feed(parse_rtp(d)))
                return count
            push = ReorderBuffer().push
            for d in datagrams:
                for item in push(parse_rtp(d), 0.0):
                    count += len(feed(item))  # type: ignore[arg-type]
            return count

        return run

    t_chain = best(chain(H264Depacketizer))
    t_chain_naive = best(chain(NaiveH264Depacketizer))

    us = 1e6 / n
    print(f"{'stage':<34}{'us/packet':>10}")
    print(f"{'parse_rtp':<34}{t_parse * us:>10.3f}")
    if ReorderBuffer is None:
        print(f"{'ReorderBuffer.push':<34}{'(absent)':>10}")
    else:
        print(f"{'ReorderBuffer.push':<34}{t_reorder * us:>10.3f}")
    print(f"{'H264Depacketizer.feed':<34}{t_depack * us:>10.3f}")
    print(f"{'naive depacketizer feed':<34}{t_naive * us:>10.3f}")
    print(f"{'whole chain, fluxkit':<34}{t_chain * us:>10.3f}")
    print(f"{'whole chain, naive depacketizer':<34}{t_chain_naive * us:>10.3f}")
    print(f"ratio naive/fluxkit: depacketizer {t_naive / t_depack:.2f}x, chain {t_chain_naive / t_chain:.2f}x")
    print(f"goal: chain under 3 us/packet -> {'met' if t_chain * us < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
