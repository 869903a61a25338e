"""WHIP ingest CPU per stream, N = 1..5 concurrent publishers, against aiortc's stock receive path.

The server (engine + WHIP service + REST app on 127.0.0.1) runs in this process; the publishers run in a child
process (plain asyncio aiortc peers sending a pre-encoded 1280x720 H.264 clip as `av.Packet`s at 30 fps and, unless
`--no-audio`, pre-encoded 48 kHz Opus packets every 20 ms, so the child encodes nothing). For each N the server's
CPU (getrusage, all threads) is measured over a window once every stream is flowing, with one engine subscriber
per stream counting video and audio frames (the Opus frames are passed through, as the recorder gets them).

Reference, in the same process: the same service with the encoded-frame tap disabled, i.e. aiortc's stock
`RTCRtpReceiver` path that decodes every frame (video and audio) in its decoder threads (frames drained from the
remote tracks).

    .venv/bin/python bench/bench_whip.py [--seconds 5] [--max-n 5] [--no-audio]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio
import trio_asyncio

from fluxkit.api import ApiServices, serve_api
from fluxkit.engine import open_engine
from fluxkit.net import _webrtc
from fluxkit.net.whip import WhipSettings, open_whip_service, whip_routes

FPS = 30


# -- child: publishers ---------------------------------------------------------------------------------------


def _clip() -> list[bytes]:
    import av

    from tests.mediagen import encode_annexb

    data = encode_annexb(codec="h264", width=1280, height=720, frames=150, gop=60, fps=FPS, bframes=0)
    parser = av.CodecContext.create("h264", "r")
    return [bytes(p) for p in parser.parse(data)] + [bytes(p) for p in parser.parse(b"")]


def _opus(seconds: float = 5.0) -> list[bytes]:
    """Opus packets (20 ms, 48 kHz stereo, libopus at its default ~96 kbit/s) of a tone with some noise."""
    import av
    import numpy as np

    ctx: Any = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.layout = "stereo"
    ctx.format = "s16"
    ctx.time_base = fractions.Fraction(1, 48000)
    ctx.open()
    rng = np.random.default_rng(1)
    packets: list[bytes] = []
    for i in range(int(seconds * 50)):
        t = (np.arange(960) + i * 960) / 48000
        mono = 6000 * np.sin(2 * np.pi * 440 * t) + rng.normal(0, 800, 960)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono.astype(np.int16), 2)[None, :], format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        packets += [bytes(p) for p in ctx.encode(frame)]
    return packets


async def _publish(base: str, stream_id: str, units: list[bytes], opus: list[bytes]) -> Any:
    import av
    import httpx
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    class ClipTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0
            self.start = time.monotonic()

        async def recv(self) -> av.Packet:
            due = self.start + self.n / FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            packet = av.Packet(units[self.n % len(units)])
            packet.pts = self.n * (90000 // FPS)
            packet.time_base = fractions.Fraction(1, 90000)
            self.n += 1
            return packet

    class OpusTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0
            self.start = time.monotonic()

        async def recv(self) -> av.Packet:
            due = self.start + self.n * 0.02
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            packet = av.Packet(opus[self.n % len(opus)])
            packet.pts = self.n * 960
            packet.time_base = fractions.Fraction(1, 48000)
            self.n += 1
            return packet

    _webrtc.HOST_ADDRESSES.set(("127.0.0.1",))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(ClipTrack(), direction="sendonly")
    capabilities = RTCRtpSender.getCapabilities("video")
    assert capabilities is not None
    transceiver.setCodecPreferences([c for c in capabilities.codecs if c.mimeType == "video/H264"])
    if opus:
        audio = pc.addTransceiver(OpusTrack(), direction="sendonly")
        audio_capabilities = RTCRtpSender.getCapabilities("audio")
        assert audio_capabilities is not None
        audio.setCodecPreferences([c for c in audio_capabilities.codecs if c.mimeType == "audio/opus"])
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{base}/api/video/whip/{stream_id}",
            content=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        )
    r.raise_for_status()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return pc


async def _child(base: str, prefix: str, n: int, audio: bool) -> None:
    _webrtc.install_host_address_hook()
    units = _clip()
    opus = _opus() if audio else []
    peers = [await _publish(base, f"{prefix}-{i}", units, opus) for i in range(n)]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for pc in peers:
        await pc.close()


# -- parent: server ------------------------------------------------------------------------------------------


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stock_receivers() -> Any:
    """Make the tap a no-op that drains aiortc's decoded frames instead (the reference path)."""
    original = _webrtc.EncodedFrameTap.install
    keep: set[Any] = set()

    async def drain(track: Any, counter: list[int]) -> None:
        try:
            while True:
                await track.recv()
                counter[0] += 1
        except Exception:
            return

    def install(receiver: Any, on_frame: Any, on_stop: Any) -> None:
        counter = [0]
        task = asyncio.ensure_future(drain(receiver.track, counter))
        keep.add(task)
        if receiver.track.kind == "video":
            _stock_counts.append(counter)

    _webrtc.EncodedFrameTap.install = install  # type: ignore[method-assign,assignment]
    return original, keep


_stock_counts: list[list[int]] = []


async def _measure(n: int, seconds: float, *, stock: bool, audio: bool) -> tuple[float, int, int]:
    """CPU seconds per second of the server for n publishers, and video and audio frames received in the window."""
    async with (
        open_engine() as engine,
        trio_asyncio.open_loop() as loop,
        open_whip_service(engine, WhipSettings(), loop=loop) as whip,
        trio.open_nursery() as nursery,
    ):
        port = await nursery.start(serve_api, ApiServices(engine=engine, extra_routes=tuple(whip_routes(whip))))
        prefix = f"{'stock' if stock else 'tap'}{n}"
        counts = [0] * n
        audio_counts = [0] * n

        async def count(i: int) -> None:
            while not any(s.stream_id == f"{prefix}-{i}" for s in engine.list_streams()):  # noqa: ASYNC110
                await trio.sleep(0.05)
            async with engine.subscribe_stream(f"{prefix}-{i}") as frames:
                async for frame in frames:
                    if frame.codec == "opus":
                        audio_counts[i] += 1
                    else:
                        counts[i] += 1

        if not stock:
            for i in range(n):
                nursery.start_soon(count, i)
        _stock_counts.clear()
        child = await trio.lowlevel.open_process(
            [sys.executable, __file__, "--child", f"http://127.0.0.1:{port}", prefix, str(n), str(int(audio))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stdin is not None
        with trio.fail_after(120):
            line = b""
            while not line.endswith(b"ready\n"):
                chunk = await child.stdout.receive_some(64)
                if not chunk:
                    raise RuntimeError("publisher process died")
                line += chunk
            await trio.sleep(2.0)  # warm up: ICE, DTLS, first keyframe
        got = lambda: sum(counts) if not stock else sum(c[0] for c in _stock_counts)  # noqa: E731
        frames0, audio0, cpu0, t0 = got(), sum(audio_counts), _cpu(), time.monotonic()
        await trio.sleep(seconds)
        cpu, elapsed, frames = _cpu() - cpu0, time.monotonic() - t0, got() - frames0
        audio_frames = sum(audio_counts) - audio0
        await child.stdin.send_all(b"bye")
        await child.stdin.aclose()
        with trio.move_on_after(10):
            await child.wait()
        if child.returncode is None:
            child.kill()
            await child.wait()
        nursery.cancel_scope.cancel()
    return cpu / elapsed, frames, audio_frames


async def _main(seconds: float, max_n: int, audio: bool) -> None:
    _webrtc.install_host_address_hook()
    units = _clip()
    kbps = sum(map(len, units)) * 8 * FPS / len(units) / 1000
    opus = _opus() if audio else []
    audio_kbps = sum(map(len, opus)) * 8 * 50 / len(opus) / 1000 if opus else 0.0
    print(
        f"WHIP ingest, 1280x720 H.264 at {FPS} fps, {kbps:.0f} kbit/s per publisher"
        + (f", plus Opus 48 kHz stereo 20 ms at {audio_kbps:.0f} kbit/s (passed through)" if audio else ", no audio")
    )
    print(f"server CPU in % of one core ({os.cpu_count()} cores); reference: aiortc's stock receiver (decodes)")
    header = ("N", "fluxkit tap", "per stream", "fps/stream", "opus/s/str", "aiortc decode", "per stream", "ratio")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (2, 12, 11, 11, 11, 14, 11, 6), strict=True)))
    for n in range(1, max_n + 1):
        tap_cpu, tap_frames, tap_audio = await _measure(n, seconds, stock=False, audio=audio)
        original, _keep = _stock_receivers()
        try:
            ref_cpu, _ref_frames, _ = await _measure(n, seconds, stock=True, audio=audio)
        finally:
            _webrtc.EncodedFrameTap.install = original  # type: ignore[method-assign]
        print(
            f"{n:>2} {tap_cpu * 100:>11.1f}% {tap_cpu * 100 / n:>10.1f}% {tap_frames / seconds / n:>11.1f} "
            f"{tap_audio / seconds / n:>11.1f} {ref_cpu * 100:>13.1f}% {ref_cpu * 100 / n:>10.1f}% "
            f"{tap_cpu / ref_cpu:>6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        asyncio.run(_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--seconds", type=float, default=5.0)
        parser.add_argument("--max-n", type=int, default=5)
        parser.add_argument("--no-audio", action="store_true", help="video only (the figures before Opus)")
        args = parser.parse_args()
        trio.run(_main, args.seconds, args.max_n, not args.no_audio)
