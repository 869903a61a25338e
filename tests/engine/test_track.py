"""`Track.for_video`: the one place a video track's size, rate and parameter sets come from (RTSP, RTMP, WHIP,
GB28181 all build their tracks with it)."""

from __future__ import annotations

import pytest

from fluxkit.engine import Track
from fluxkit.protocols.nalu import split_annexb
from tests.mediagen import encode_annexb


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_size_rate_and_parameter_sets_from_an_access_unit(codec: str) -> None:
    nals = split_annexb(encode_annexb(codec, width=320, height=240, frames=2, gop=2))
    track = Track.for_video(codec, nals)
    assert (track.codec, track.width, track.height, track.fps) == (codec, 320, 240, 25.0)
    assert len(track.parameter_sets) == (2 if codec == "h264" else 3)  # slices and SEI are not kept


def test_unreadable_sps_leaves_the_size_unknown() -> None:
    track = Track.for_video("h264", [b"\x67\xff", b"\x68\xce\x38\x80"])
    assert (track.width, track.height, track.fps) == (None, None, None)
    assert track.parameter_sets == (b"\x67\xff", b"\x68\xce\x38\x80")
