"""The demo clip: a camera-like H.264 stream that fluxkit makes itself with PyAV's libx264, cached per user.

Strategy: each picture is drawn straight into YUV 4:2:0 planes with numpy (a moving diagonal gradient, a bouncing
box and a seven-segment timecode `HH:MM:SS:FF` from the frame number), so no font or image library is needed and
a frame costs well under a millisecond. The encoder runs like a camera: constant 25 fps, a closed GOP of 50
(a keyframe every 2 s, scene-cut off), no B-frames, SPS/PPS repeated before every IDR (the raw `h264` muxer has
no global header, so libx264 repeats them). The file is written to a temporary name and renamed, so a half-made
clip is never served; later calls reuse it.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "DEMO_CLIP_NAME",
    "DEMO_FPS",
    "DEMO_FRAMES",
    "DEMO_GOP",
    "DEMO_HEIGHT",
    "DEMO_WIDTH",
    "default_cache_dir",
    "generate_demo_clip",
]

DEMO_WIDTH = 640
DEMO_HEIGHT = 360
DEMO_FPS = 25
DEMO_GOP = 50
#: 12 s: six GOPs.
DEMO_FRAMES = 300
#: File name of the cached clip; its stem is the path the simulator serves it at (`rtsp://HOST:PORT/demo`).
DEMO_CLIP_NAME = "demo.h264"
# Bump when the picture or the encoder settings change, so that old caches are not reused.
_CACHE_VERSION = "sim-v1"

# Seven-segment digits on a 5 x 9 grid: segment -> (rows, columns) it covers.
_SEGMENTS = {
    "a": (slice(0, 1), slice(0, 5)),
    "b": (slice(0, 5), slice(4, 5)),
    "c": (slice(4, 9), slice(4, 5)),
    "d": (slice(8, 9), slice(0, 5)),
    "e": (slice(4, 9), slice(0, 1)),
    "f": (slice(0, 5), slice(0, 1)),
    "g": (slice(4, 5), slice(0, 5)),
}
_DIGITS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")
_SCALE = 4  # pixels per grid cell: digits are 20 x 36 pixels


def _glyphs() -> dict[str, np.ndarray]:
    glyphs: dict[str, np.ndarray] = {}
    for digit, segments in enumerate(_DIGITS):
        cell = np.zeros((9, 5), dtype=bool)
        for name in segments:
            cell[_SEGMENTS[name]] = True
        glyphs[str(digit)] = np.kron(cell, np.ones((_SCALE, _SCALE), dtype=bool))
    colon = np.zeros((9, 5), dtype=bool)
    colon[2, 2] = colon[6, 2] = True
    glyphs[":"] = np.kron(colon, np.ones((_SCALE, _SCALE), dtype=bool))
    return glyphs


def _timecode(index: int, fps: int) -> str:
    seconds, frame = divmod(index, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours % 100:02d}:{minutes:02d}:{seconds:02d}:{frame:02d}"


def _picture(index: int, width: int, height: int, fps: int, glyphs: dict[str, np.ndarray]) -> np.ndarray:
    """One frame as the (height * 3 / 2, width) array of a yuv420p picture."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    luma = (16 + ((x + y + 4 * index) % 220)).astype(np.uint8)
    cw, ch = width // 2, height // 2
    u = np.full((ch, cw), 128, dtype=np.uint8)
    v = np.full((ch, cw), 128, dtype=np.uint8)
    u[:, :] = (64 + (np.arange(cw, dtype=np.int32)[None, :] + 2 * index) % 128).astype(np.uint8)
    v[:, :] = (64 + (np.arange(ch, dtype=np.int32)[:, None] + index) % 128).astype(np.uint8)
    # A box bouncing left and right.
    span = width - 64
    bx = (6 * index) % (2 * span)
    bx = bx if bx < span else 2 * span - bx
    by = height // 2 - 32
    luma[by : by + 64, bx : bx + 64] = 235
    u[by // 2 : by // 2 + 32, bx // 2 : bx // 2 + 32] = 90
    v[by // 2 : by // 2 + 32, bx // 2 : bx // 2 + 32] = 240
    # The timecode on a black band, top left.
    text = _timecode(index, fps)
    top, left = 12, 12
    step = 6 * _SCALE
    band_w = step * len(text) + 8
    band_h = 9 * _SCALE + 8
    luma[top - 4 : top - 4 + band_h, left - 4 : left - 4 + band_w] = 16
    u[(top - 4) // 2 : (top - 4 + band_h) // 2, (left - 4) // 2 : (left - 4 + band_w) // 2] = 128
    v[(top - 4) // 2 : (top - 4 + band_h) // 2, (left - 4) // 2 : (left - 4 + band_w) // 2] = 128
    for n, char in enumerate(text):
        glyph = glyphs[char]
        area = luma[top : top + glyph.shape[0], left + n * step : left + n * step + glyph.shape[1]]
        area[glyph] = 235
    return np.concatenate([luma, u.reshape(-1, width), v.reshape(-1, width)])


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/fluxkit` or `~/.cache/fluxkit`."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "fluxkit"


def _encode(path: Path, *, frames: int, width: int, height: int, fps: int, gop: int) -> None:
    glyphs = _glyphs()
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {
            "preset": "veryfast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0:log-level=error",
        }
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(_picture(i, width, height, fps, glyphs), format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def generate_demo_clip(path: str | os.PathLike[str] | None = None, *, frames: int = DEMO_FRAMES) -> Path:
    """The demo clip (H.264 Annex-B, 640x360, 25 fps, GOP 50, 12 s), made on first use and cached.

    Args:
        path: where the clip lives; default `<user cache>/fluxkit/sim-v1/demo.h264` (see `default_cache_dir`).
            An existing non-empty file there is reused as is.
        frames: pictures to encode when making it.

    Returns:
        The path of the clip.
    """
    target = Path(path) if path is not None else default_cache_dir() / _CACHE_VERSION / DEMO_CLIP_NAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".demo-", suffix=".h264", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _encode(tmp, frames=frames, width=DEMO_WIDTH, height=DEMO_HEIGHT, fps=DEMO_FPS, gop=DEMO_GOP)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
