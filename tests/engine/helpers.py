"""Frame factories and task-tree helpers shared by the engine tests."""

from __future__ import annotations

import trio

from fluxkit.engine import Track
from fluxkit.protocols import MediaFrame

H264 = Track(codec="h264", width=640, height=360, fps=25.0, parameter_sets=(b"\x67\x42", b"\x68\xce"))
AAC = Track(codec="aac", clock_rate=48000, sample_rate=48000, channels=2, extradata=b"\x11\x90")
FRAME_TICKS = 3600  # 25 fps at 90 kHz


def video_frames(count: int, *, gop: int = 10, start: int = 0, size: int = 1000, base: int = 0) -> list[MediaFrame]:
    """`count` H.264 frames, a keyframe every `gop`, 25 fps timestamps (wrapping at 32 bits like RTP)."""
    return [
        MediaFrame(
            codec="h264",
            data=bytes([i % 256]) * size,
            pts=(base + (start + i) * FRAME_TICKS) % (1 << 32),
            dts=None,
            keyframe=(start + i) % gop == 0,
        )
        for i in range(count)
    ]


def audio_frame(index: int) -> MediaFrame:
    return MediaFrame(codec="aac", data=b"\xff\xf1" + bytes(100), pts=index * 1024, dts=None, keyframe=True)


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task of this Trio run, found by walking the task tree from the root."""
    found: set[trio.lowlevel.Task] = set()
    pending = [trio.lowlevel.current_root_task()]
    while pending:
        task = pending.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            pending.extend(nursery.child_tasks)
    return found
