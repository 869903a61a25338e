"""Recording a real camera: GStreamer's RTSP server ingested by RtspSource, recorded, read back by ffprobe and PyAV."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
import trio

from fluxkit.engine import open_engine
from fluxkit.net.rtsp_source import RtspSource
from fluxkit.storage import LocalStorage, RecordingSettings, check, open_recorder
from tests.conftest import require_tool
from tests.peers import GstRtspServer, require_gst_rtsp_server

pytestmark = pytest.mark.interop


@pytest.fixture
def camera() -> Iterator[GstRtspServer]:
    require_gst_rtsp_server()
    server = GstRtspServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _ffprobe_frames(path: str) -> int:
    result = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return int(result.stdout.strip())


@pytest.mark.trio
@pytest.mark.parametrize(("path", "codec"), [("/test", "h264"), ("/h265", "hevc")])
async def test_a_gstreamer_camera_is_recorded_in_playable_segments(
    camera: GstRtspServer, tmp_path: Path, path: str, codec: str
) -> None:
    settings = RecordingSettings(segment_duration=1.0, part_duration=0.5)
    with trio.fail_after(60):
        async with open_engine() as engine, LocalStorage(tmp_path) as storage:
            async with open_recorder(engine, storage, settings):
                engine.add_source("gate", RtspSource(camera.url(path)))
                while True:
                    await trio.sleep(0.5)
                    result = await storage.query_segments("gate", 0, 4e9)
                    if len(result.segments) >= 3:
                        break
    segments = result.segments
    for seg in segments:
        assert _ffprobe_frames(seg.path) == seg.frames
        with av.open(seg.path) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == codec
            assert (stream.codec_context.width, stream.codec_context.height) == (640, 480)
            packets = [p for p in container.demux(stream) if p.size]
            assert packets[0].is_keyframe  # segments are cut on keyframes
            decoded = sum(1 for p in packets for _ in p.decode())
        assert decoded == seg.frames
    # GStreamer's camera sends 25 fps: consecutive segments of one run join without a gap.
    for before, after in itertools.pairwise(segments):
        assert abs((after.start - before.end).total_seconds()) < 0.05
    report = check(tmp_path)
    assert report.ok, report.lines()
