"""Helpers: record test clips through a real engine and recorder, and read MP4 files back with PyAV and ffprobe."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import av
import trio

from fluxkit.engine import open_engine
from fluxkit.protocols import MediaFrame
from fluxkit.storage import LocalStorage, RecordingQuery, RecordingSettings, open_recorder
from tests.conftest import require_tool

SETTINGS = RecordingSettings(segment_duration=2.0, part_duration=0.5, fsync_parts=False)


async def record(root: Path, frames: list[MediaFrame], tracks: Any, **kwargs: Any) -> RecordingQuery:
    """Push `frames` through a real engine into a recorder writing under `root`; the resulting index entries."""
    async with open_engine() as engine, LocalStorage(root) as storage:
        async with open_recorder(engine, storage, SETTINGS, **kwargs) as recorder:
            publisher = engine.publish_stream("cam1", tracks)
            await trio.lowlevel.checkpoint()
            for i, frame in enumerate(frames):
                publisher.send(frame)
                if i % 4 == 0:
                    await trio.sleep(0.001)
            publisher.close()
            await trio.lowlevel.checkpoint()
            await recorder.wait_idle()
        return await storage.query_segments("cam1", 0, 4e9)


def read_back(data: bytes) -> dict[str, Any]:
    """Video packets of an MP4 read with PyAV: dts/pts seconds, keyframe flags, payloads; then decode it all."""
    out: dict[str, Any] = {"dts": [], "pts": [], "keys": [], "data": [], "durations": [], "audio": 0}
    with av.open(io.BytesIO(data)) as container:
        for packet in container.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "audio":
                out["audio"] += 1
                continue
            out["dts"].append(round(float(packet.dts * packet.time_base), 6))
            out["pts"].append(round(float(packet.pts * packet.time_base), 6))
            out["keys"].append(bool(packet.is_keyframe))
            out["data"].append(bytes(packet))
            out["durations"].append(round(float(packet.duration * packet.time_base), 6))
    with av.open(io.BytesIO(data)) as container:
        out["decoded"] = sum(1 for _ in container.decode(video=0))  # raises on a decoding error
    return out


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's view of the video stream: decoded frame count and packet pts/flags."""
    tool = require_tool("ffprobe")
    result = subprocess.run(
        [tool, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames,codec_name:packet=pts_time,flags", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert result.stderr == "", result.stderr
    info = json.loads(result.stdout)
    return {
        "frames": int(info["streams"][0]["nb_read_frames"]),
        "codec": info["streams"][0]["codec_name"],
        "pts": [round(float(p["pts_time"]), 6) for p in info["packets"]],
        "keys": [p["flags"].startswith("K") for p in info["packets"]],
    }
