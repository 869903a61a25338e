"""Recording benchmark: bytes written per byte received, and ingest-to-durable latency, for a ~4 Mbit/s stream.

Publishes a synthetic 1280x720 H.264 stream (re-encoded at ~4 Mbit/s, 25 fps) into a real engine at real time,
records it with fsync per part, and prints: bytes on disk / media bytes received (goal <= 1.05) and the p50/p99
of the time from a frame's receipt by the recorder to the fsync of the part that holds it. The reference run is
the same recording with `fsync_parts=False` (flush to the OS only), side by side.
"""

from __future__ import annotations

import io
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxkit.engine import Track, open_engine
from fluxkit.protocols import MediaFrame
from fluxkit.storage import LocalStorage, RecordingSettings, open_recorder
from tests.storage._feed import parameter_sets

SECONDS = 8
FPS = 25


def encode(seconds: int = SECONDS) -> list[tuple[bytes, bool]]:
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {
            "preset": "ultrafast",
            "x264-params": "keyint=50:scenecut=0:bitrate=4000:vbv-maxrate=4000:vbv-bufsize=4000",
        }
        rng = np.random.default_rng(1)
        noise = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
        for i in range(seconds * FPS):
            frame = av.VideoFrame.from_ndarray(np.roll(noise, 8 * i, axis=1), format="rgb24")
            frame.pts = i
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    with av.open(io.BytesIO(buf.getvalue()), format="h264") as c:
        return [(bytes(p), bool(p.is_keyframe)) for p in c.demux() if p.size]


async def run(aus: list[tuple[bytes, bool]], fsync_parts: bool) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = RecordingSettings(segment_duration=4.0, part_duration=1.0, fsync_parts=fsync_parts)
        async with open_engine() as engine, LocalStorage(tmp) as storage:
            async with open_recorder(engine, storage, settings) as recorder:
                track = Track(codec="h264", fps=FPS, parameter_sets=parameter_sets("h264", aus[0][0]))
                pub = engine.publish_stream("bench", [track])
                received = 0
                for i, (data, key) in enumerate(aus):
                    pub.send(MediaFrame(codec="h264", data=data, pts=i * 3600, dts=i * 3600, keyframe=key))
                    received += len(data)
                    await trio.sleep(1 / FPS)
                pub.close()
                await recorder.wait_idle()
                lat = sorted(recorder.latencies())
            written = sum(p.stat().st_size for p in Path(tmp).rglob("*.mp4"))
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return written / received, received * 8 / SECONDS / 1e6, p50, p99


def main() -> None:
    aus = encode()
    ratio, mbps, p50, p99 = trio.run(run, aus, True)
    ref_ratio, _mbps, ref_p50, ref_p99 = trio.run(run, aus, False)
    print(f"stream: {mbps:.2f} Mbit/s, {len(aus)} frames, part 1.0 s, segment 4 s")
    print(f"bytes written / bytes received: {ratio:.4f} (goal <= 1.05; reference without fsync {ref_ratio:.4f})")
    print(f"ingest-to-durable latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (fsync per part)")
    print(f"reference (flush to OS only): p50 {ref_p50 * 1000:.0f} ms, p99 {ref_p99 * 1000:.0f} ms")


if __name__ == "__main__":
    main()
