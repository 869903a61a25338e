"""KeyframeExtractor: self-contained keyframes found from NAL headers, at most one per interval, never decoding."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fluxkit.errors import LocalProtocolError
from fluxkit.keyframes import Keyframe, KeyframeExtractor
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import nal_types

from .helpers import PS_TYPES, clip_frames, clip_parameter_sets, decode_alone

CODECS = ["h264", "hevc"]
EXTRACTOR_SOURCE = Path(__file__).resolve().parents[2] / "fluxkit" / "keyframes" / "_extractor.py"


def _run(extractor: KeyframeExtractor, frames: tuple[MediaFrame, ...], fps: float = 25.0) -> list[Keyframe]:
    out = []
    for i, frame in enumerate(frames):
        keyframe = extractor.feed(frame, 1000.0 + i / fps)
        if keyframe is not None:
            out.append(keyframe)
    return out


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("in_band", [True, False])
def test_every_keyframe_decodes_alone(codec: str, in_band: bool) -> None:
    frames = clip_frames(codec, in_band=in_band)
    ps = () if in_band else clip_parameter_sets(codec)
    extractor = KeyframeExtractor(0, parameter_sets=ps, codec=None if in_band else codec)
    keyframes = _run(extractor, frames)
    expected = [i for i, f in enumerate(frames) if f.keyframe]
    assert len(expected) == 6
    assert [k.pts for k in keyframes] == [i * 3600 for i in expected]
    assert [k.sequence for k in keyframes] == list(range(6))
    assert extractor.keyframes_seen == extractor.emitted == 6
    for k in keyframes:
        assert k.codec == codec
        assert (k.width, k.height) == (320, 240)
        assert k.size == len(k.data)
        assert PS_TYPES[codec] <= set(nal_types(codec, k.data))
        picture = decode_alone(codec, k.data)
        assert (picture.width, picture.height) == (320, 240)
    assert extractor.latest == keyframes[-1]


@pytest.mark.parametrize("codec", CODECS)
def test_in_band_keyframe_is_not_copied(codec: str) -> None:
    frames = clip_frames(codec)
    keyframe = KeyframeExtractor(0).feed(frames[0], 0.0)
    assert keyframe is not None
    assert keyframe.data is frames[0].data


def test_parameter_sets_learned_in_band_serve_later_keyframes() -> None:
    # Only the first keyframe carries SPS/PPS; later ones lack them and get the stored ones put in front.
    stripped = clip_frames("h264", in_band=False)
    frames = (clip_frames("h264")[0], *stripped[1:])
    keyframes = _run(KeyframeExtractor(0), frames)
    assert len(keyframes) == 6
    for k in keyframes:
        decode_alone("h264", k.data)


@pytest.mark.parametrize("codec", CODECS)
def test_keyframe_without_known_parameter_sets_is_skipped(codec: str) -> None:
    extractor = KeyframeExtractor(0)
    assert _run(extractor, clip_frames(codec, in_band=False)) == []
    assert extractor.incomplete == 6
    assert extractor.latest is None


def test_aud_stays_first() -> None:
    frame = clip_frames("h264", in_band=False)[0]
    with_aud = MediaFrame(codec="h264", data=b"\x00\x00\x00\x01\x09\xf0" + frame.data, pts=0, dts=None, keyframe=True)
    keyframe = KeyframeExtractor(0, codec="h264", parameter_sets=clip_parameter_sets("h264")).feed(with_aud, 0.0)
    assert keyframe is not None
    assert nal_types("h264", keyframe.data)[:3] == [9, 7, 8]
    decode_alone("h264", keyframe.data)


@pytest.mark.parametrize("codec", CODECS)
def test_interval_is_honoured(codec: str) -> None:
    # Keyframes every 10 frames at 25 fps (0.4 s apart); a 1 s interval keeps those at 0, 1.2, 2.4 s... of 60
    # frames (2.4 s): keyframes at 0.0, 0.4, 0.8, 1.2, 1.6, 2.0 -> emitted 0.0, 1.2 (the first >= 1 s after).
    extractor = KeyframeExtractor(1.0)
    keyframes = _run(extractor, clip_frames(codec))
    assert [k.wall_time - 1000.0 for k in keyframes] == pytest.approx([0.0, 1.2])
    assert extractor.keyframes_seen == 6
    assert extractor.emitted == 2
    # `latest` follows every keyframe whatever the interval.
    assert extractor.latest is not None
    assert extractor.latest.sequence == 5


def test_clock_stepping_back_does_not_silence_the_stream() -> None:
    frames = [f for f in clip_frames("h264") if f.keyframe]
    extractor = KeyframeExtractor(10.0)
    assert extractor.feed(frames[0], 100.0) is not None
    assert extractor.feed(frames[1], 105.0) is None
    assert extractor.feed(frames[2], 50.0) is not None  # wall clock set back: emit and restart the interval
    assert extractor.feed(frames[3], 55.0) is None
    assert extractor.feed(frames[4], 60.0) is not None


def test_audio_and_other_codecs_are_ignored() -> None:
    extractor = KeyframeExtractor(0)
    assert extractor.feed(MediaFrame(codec="aac", data=b"\xff\xf1", pts=0, dts=None, keyframe=True), 0.0) is None
    assert extractor.codec is None
    assert extractor.keyframes_seen == 0


def test_keyframe_flag_is_not_trusted() -> None:
    # The NAL headers decide: a P-frame flagged as keyframe is not one, an IDR flagged as not is one.
    frames = clip_frames("h264")
    lying = [MediaFrame(codec="h264", data=f.data, pts=f.pts, dts=None, keyframe=not f.keyframe) for f in frames]
    assert [k.pts for k in _run(KeyframeExtractor(0), tuple(lying))] == [f.pts for f in frames if f.keyframe]


def test_oversized_keyframes_are_dropped_and_counted() -> None:
    extractor = KeyframeExtractor(0, max_keyframe_size=100)
    assert _run(extractor, clip_frames("h264")) == []
    assert extractor.oversized == 6


def test_bad_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        KeyframeExtractor(-1)
    with pytest.raises(LocalProtocolError):
        KeyframeExtractor(0, codec="vp8")
    with pytest.raises(LocalProtocolError):
        KeyframeExtractor(0, parameter_sets=[b"\x67"])  # no codec to read them with


def test_extractor_module_imports_nothing_that_decodes() -> None:
    tree = ast.parse(EXTRACTOR_SOURCE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "absolute imports only, so the module loads on its own"
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "collections", "attrs", "fluxkit"}


PROBE = r"""
import importlib.util, json, sys
sys.modules["av"] = None  # any `import av` now raises ImportError
spec = importlib.util.spec_from_file_location("standalone_extractor", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
data = open(sys.argv[2], "rb").read()
assembler = AccessUnitAssembler("hevc", insert_parameter_sets=False)
units = [u for n in split_annexb(data) for u in assembler.feed(n)] + assembler.flush()
extractor = module.KeyframeExtractor(0)
emitted = sum(
    extractor.feed(MediaFrame(codec="hevc", data=u.annexb, pts=i, dts=None, keyframe=False), i / 25) is not None
    for i, u in enumerate(units)
)
loaded = sorted(m for m in sys.modules if m == "av" or m.startswith("av.") or m.startswith("fluxkit.keyframes"))
print(json.dumps({"emitted": emitted, "units": len(units), "loaded": loaded}))
"""


def test_extraction_runs_with_pyav_blocked(tmp_path: Path) -> None:
    from tests.mediagen import encode_annexb

    clip = tmp_path / "clip.hevc"
    clip.write_bytes(encode_annexb("hevc", frames=60, gop=10))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(EXTRACTOR_SOURCE), str(clip)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    result = json.loads(out.stdout)
    assert result == {"emitted": 6, "units": 60, "loaded": ["av"]}  # "av" is only the None blocker
