"""GPU check for keyframe thumbnails: hardware (cuda) decoding forced on, compared with software decoding.

Run on a machine with an NVIDIA GPU, from the repository root, with the project venv:

    .venv/bin/python scripts/gpu_check.py

For H.264 and H.265 it generates a 1280x720 clip (libx264 / libx265, GOP 25), extracts every keyframe with
`KeyframeExtractor` (no decoding), then decodes each keyframe with a `ThumbnailDecoder` forced to cuda and with
one in software: the cuda decoder must really be on the GPU (probe succeeded, codec context is hwaccel), each
decoded picture must match the software one (luma PSNR >= 40 dB) and each JPEG must decode to a picture close to
the software JPEG (PSNR >= 35 dB). Prints timings per keyframe. Exits 0 when every check passes, 1 otherwise
(including when no cuda decoder works: the probe's reasons are printed).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxkit.keyframes import KeyframeExtractor, ThumbnailDecoder, probe_hwaccel
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from tests.mediagen import encode_annexb

WIDTH, HEIGHT, FRAMES, GOP = 1280, 720, 150, 25
MIN_PSNR_PICTURE = 40.0
MIN_PSNR_JPEG = 35.0


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _luma(frame: av.VideoFrame) -> np.ndarray:
    return frame.reformat(format="gray").to_ndarray()


def _jpeg_luma(jpeg: bytes) -> np.ndarray:
    ctx = av.CodecContext.create("mjpeg", "r")
    frames = list(ctx.decode(av.Packet(jpeg))) + list(ctx.decode(None))
    if len(frames) != 1 or not isinstance(frames[0], av.VideoFrame):
        raise AssertionError("JPEG does not decode to one picture")
    return _luma(frames[0])


def check(codec: str) -> list[str]:
    failures: list[str] = []
    data = encode_annexb(codec, width=WIDTH, height=HEIGHT, frames=FRAMES, gop=GOP)
    assembler = AccessUnitAssembler(codec, insert_parameter_sets=False)
    units = [u for n in split_annexb(data) for u in assembler.feed(n)] + assembler.flush()
    extractor = KeyframeExtractor(0)
    keyframes = [
        k
        for i, u in enumerate(units)
        if (k := extractor.feed(MediaFrame(codec=codec, data=u.annexb, pts=i, dts=None, keyframe=False), i / 25))
    ]
    print(f"[{codec}] {len(units)} access units, {len(keyframes)} keyframes")
    if len(keyframes) != FRAMES // GOP:
        failures.append(f"{codec}: expected {FRAMES // GOP} keyframes, got {len(keyframes)}")

    probe = probe_hwaccel(codec, ("cuda",))
    if probe.device != "cuda":
        return [*failures, f"{codec}: cuda decoder unusable: {probe.describe()}"]
    hw = ThumbnailDecoder(codec, width=320, hwaccel="cuda")
    sw = ThumbnailDecoder(codec, width=320, hwaccel=None)
    hw.decode(keyframes[0])  # opens the device: set-up is timed separately below
    sw.decode(keyframes[0])
    ctx = hw._ctx
    if hw.hwaccel_device != "cuda" or ctx is None or not ctx.is_hwaccel:
        failures.append(f"{codec}: decoder is not on the GPU (device={hw.hwaccel_device})")

    timings = {"cuda": 0.0, "software": 0.0}
    for k in keyframes:
        t0 = time.perf_counter()
        hw_frame = hw.decode(k)
        t1 = time.perf_counter()
        sw_frame = sw.decode(k)
        t2 = time.perf_counter()
        timings["cuda"] += t1 - t0
        timings["software"] += t2 - t1
        if (hw_frame.width, hw_frame.height) != (WIDTH, HEIGHT):
            failures.append(f"{codec} #{k.sequence}: cuda picture is {hw_frame.width}x{hw_frame.height}")
            continue
        p = _psnr(_luma(hw_frame), _luma(sw_frame))
        j = _psnr(_jpeg_luma(hw.encode(hw_frame)), _jpeg_luma(sw.encode(sw_frame)))
        print(
            f"[{codec}] keyframe {k.sequence}: picture PSNR {p:.1f} dB, JPEG PSNR {j:.1f} dB ({hw_frame.format.name})"
        )
        if p < MIN_PSNR_PICTURE:
            failures.append(f"{codec} #{k.sequence}: picture PSNR {p:.1f} dB < {MIN_PSNR_PICTURE}")
        if j < MIN_PSNR_JPEG:
            failures.append(f"{codec} #{k.sequence}: JPEG PSNR {j:.1f} dB < {MIN_PSNR_JPEG}")
    if hw.hwaccel_device != "cuda":
        failures.append(f"{codec}: the cuda decoder fell back to software during the run")
    for name, total in timings.items():
        print(f"[{codec}] {name:8} decode: {total / len(keyframes) * 1e3:.2f} ms per {WIDTH}x{HEIGHT} keyframe")
    t0 = time.perf_counter()
    for k in keyframes:
        hw.render(k)
    per_thumb = (time.perf_counter() - t0) / len(keyframes)
    print(f"[{codec}] cuda thumbnail (decode + scale + JPEG): {per_thumb * 1e3:.2f} ms per keyframe")
    return failures


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    print(
        f"PyAV {av.__version__}, FFmpeg {av.library_versions['libavcodec']}, devices: "
        f"{av.codec.hwaccel.hwdevices_available()}"
    )
    failures: list[str] = []
    for codec in ("h264", "hevc"):
        try:
            failures += check(codec)
        except Exception as exc:  # report every failure, exit non-zero
            failures.append(f"{codec}: {type(exc).__name__}: {exc}")
    for failure in failures:
        print(f"FAIL {failure}")
    print("OK" if not failures else f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
