"""Keyframe lists of segment files: known while recording, and read back from a file alone (salvage, adoption)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av

from fluxkit.engine import Track
from fluxkit.storage._mux import SegmentMuxer, describe_file
from tests.mediagen import encode_annexb


def test_file_keyframes_equal_recorded_keyframes_when_parts_split_gops(tmp_path: Path) -> None:
    # 0.5 s parts and a 2 s GOP: most fragments start with a non-keyframe and must not be listed.
    annexb = encode_annexb(codec="h264", width=160, height=96, frames=150, gop=50, fps=25, bframes=0)
    parser: Any = av.CodecContext.create("h264", "r")
    units = [bytes(p) for p in parser.parse(annexb)] + [bytes(p) for p in parser.parse(b"")]
    assert len(units) == 150
    muxer = SegmentMuxer(
        stream_id="s",
        partial_path=tmp_path / ".s.partial",
        final_path=tmp_path / "s.mp4",
        start_us=0,
        run_id=0,
        video=Track.for_video("h264", []),
        audio=None,
        first_keyframe=units[0],
        part_duration=0.5,
        fsync_parts=False,
        comment="{}",
    )
    muxer.write([(True, unit, i * 3600, i * 3600, i % 50 == 0, 0.0) for i, unit in enumerate(units)])
    finished, _ = muxer.finish(None, 6_000_000)
    assert [round(t, 3) for t, _ in finished.keyframes] == [0.0, 2.0, 4.0]

    size, digest, keyframes = describe_file(tmp_path / ".s.partial")
    assert (size, digest) == (finished.size, finished.sha256)
    assert keyframes == finished.keyframes
