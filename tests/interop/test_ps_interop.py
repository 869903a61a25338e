"""MPEG-PS against real peers: PyAV (libavformat's mpegps demuxer) reads PsMuxer output; PsDemuxer reads what
GStreamer's mpegpsmux and ffmpeg's `-f mpeg` write, and must give the frames PyAV gives.

Normalisation: none was needed for video. PyAV's H.264/H.265 parser and PsDemuxer cut access units at the same
bytes (both keep a 4-byte start code's zero byte with the AU it opens), and both give a PES's PTS/DTS to the first
AU starting in it and None to the others. Audio differs only in framing: PyAV's mp2 parser splits PES payloads
into MPEG audio frames while PsDemuxer returns one frame per PES, so audio is compared as concatenated bytes.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import pytest

from fluxkit.protocols.ps import MediaFrame, PsDemuxer, PsMuxer
from tests.conftest import require_tool
from tests.mediagen import encode_annexb, encode_audio

pytestmark = pytest.mark.interop


def pyav_packets(ps: bytes) -> list[tuple[str, bytes, int | None, int | None, bool]]:
    with av.open(io.BytesIO(ps), format="mpeg") as c:
        return [(p.stream.type, bytes(p), p.pts, p.dts, p.is_keyframe) for p in c.demux() if p.size]


def split_aus(annexb: bytes, fmt: str) -> list[tuple[bytes, bool]]:
    """Access units of an elementary stream, cut by PyAV's parser."""
    with av.open(io.BytesIO(annexb), format=fmt) as c:
        return [(bytes(p), p.is_keyframe) for p in c.demux() if p.size]


def adts(raw: bytes, rate_index: int = 11) -> bytes:
    """A raw AAC-LC mono frame with a 7-byte ADTS header (rate_index 11 = 8 kHz)."""
    n = len(raw) + 7
    head = (0xFF, 0xF1, 0x40 | (rate_index << 2), 0x40 | (n >> 11), (n >> 3) & 0xFF, ((n & 7) << 5) | 0x1F, 0xFC)
    return bytes(head) + raw


def split_adts(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos + 7 <= len(data) and data[pos] == 0xFF:
        n = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        out.append(data[pos : pos + n])
        pos += n
    return out


def demux(ps: bytes, chunk: int = 1400) -> list[MediaFrame]:
    d = PsDemuxer()
    out: list[MediaFrame] = []
    for i in range(0, len(ps), chunk):
        out += d.feed(ps[i : i + chunk])
    return out + d.flush()


def interleave(video: list[MediaFrame], audio: list[MediaFrame]) -> list[MediaFrame]:
    return sorted(video + audio, key=lambda f: (f.dts if f.dts is not None else 0, f.kind == "video"))


# ---------------------------------------------------------------------------------- (a) PsMuxer -> PyAV


@pytest.mark.parametrize(("codec", "fmt"), [("h264", "h264"), ("hevc", "hevc")])
@pytest.mark.parametrize("audio_codec", ["pcm_alaw", "pcm_mulaw", "aac"])
def test_pyav_reads_psmuxer_output(codec: str, fmt: str, audio_codec: str) -> None:
    aus = split_aus(encode_annexb(codec, frames=50, gop=25, bframes=2), fmt)
    # Raw Annex-B has no timestamps: decode order at 25 fps, presentation two frames later (B-frames: PTS != DTS).
    video = [
        MediaFrame(codec=codec, data=d, pts=3600 * i + 7200, dts=3600 * i, keyframe=k) for i, (d, k) in enumerate(aus)
    ]
    if audio_codec == "aac":
        packets = [adts(p) for p in encode_audio("aac", seconds=2.0, rate=8000)]
        step = 1024 * 90000 // 8000
    else:
        packets = list(encode_audio(audio_codec, seconds=2.0, rate=8000))
        step = 320 * 90000 // 8000
    audio = [
        MediaFrame(codec=audio_codec, data=p, pts=step * i, dts=step * i, keyframe=True) for i, p in enumerate(packets)
    ]
    muxer = PsMuxer(codec, audio_codec)
    ps = b"".join(muxer.mux(f) for f in interleave(video, audio))

    got = pyav_packets(ps)
    got_video = [g for g in got if g[0] == "video"]
    got_audio = [g for g in got if g[0] == "audio"]
    assert [(d, p, t, k) for _, d, p, t, k in got_video] == [(f.data, f.pts, f.dts, f.keyframe) for f in video]
    if audio_codec != "pcm_mulaw":
        # FFmpeg (8.1) maps only stream_type 0x90 to G.711 (A-law) and reads 0x91, the implementers' mu-law value
        # (gb28181.md, PSM table), as mp2; so PyAV is no oracle for mu-law audio.
        assert [(d, p) for _, d, p, _, _ in got_audio] == [(f.data, f.pts) for f in audio]
    # And PsDemuxer reads it back to the same frames.
    back = demux(ps)
    assert [(f.data, f.pts, f.dts, f.keyframe) for f in back if f.kind == "video"] == [
        (f.data, f.pts, f.dts, f.keyframe) for f in video
    ]
    assert [(f.codec, f.data, f.pts) for f in back if f.kind == "audio"] == [(f.codec, f.data, f.pts) for f in audio]


# ---------------------------------------------------------------------- (b) third-party PS -> PsDemuxer


def compare_with_pyav(ps: bytes) -> tuple[int, int]:
    want = pyav_packets(ps)
    for chunk in (len(ps), 1400, 188):
        got = demux(ps, chunk)
        video = [(f.data, f.pts, f.dts, f.keyframe) for f in got if f.kind == "video"]
        assert video == [(d, p, t, k) for kind, d, p, t, k in want if kind == "video"]
        audio = b"".join(f.data for f in got if f.kind == "audio")
        assert audio == b"".join(d for kind, d, *_ in want if kind == "audio")
    return len(video), len(audio)


def test_gstreamer_mpegpsmux(tmp_path: Path) -> None:
    gst = require_tool("gst-launch-1.0")
    out = tmp_path / "gst.mpg"
    subprocess.run(
        [gst, "-q", "videotestsrc", "num-buffers=60", "!", "video/x-raw,width=320,height=240,framerate=25/1", "!",
         "x264enc", "key-int-max=25", "bframes=2", "!", "h264parse", "!", "mpegpsmux", "!", "filesink",
         f"location={out}"],
        check=True,
        timeout=60,
    )  # fmt: skip
    ps = out.read_bytes()
    assert b"\x00\x00\x01\xbc" in ps  # mpegpsmux writes a PSM
    frames, _ = compare_with_pyav(ps)
    assert frames == 60


@pytest.mark.parametrize(
    "args",
    [
        ["-s", "640x480", "-g", "25", "-bf", "2"],
        ["-s", "160x120", "-g", "50", "-bf", "3", "-b:v", "30k"],  # several AUs per 2048-byte pack
    ],
)
def test_ffmpeg_mpeg_muxer(tmp_path: Path, args: list[str]) -> None:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path / "ff.mpg"
    size = args[1]
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=1000:sample_rate=48000", "-t", "3", "-c:v", "libx264", "-preset", "veryfast",
         *args[2:], "-pix_fmt", "yuv420p", "-c:a", "mp2", "-f", "mpeg", str(out)],
        check=True,
        timeout=60,
    )  # fmt: skip
    ps = out.read_bytes()
    assert b"\x00\x00\x01\xbc" not in ps  # no PSM: codecs are sniffed
    frames, audio_bytes = compare_with_pyav(ps)
    assert frames == 75
    assert audio_bytes > 0


# ----------------------------------------------------------------------- (c) the real clips, round trip


@pytest.mark.media
@pytest.mark.parametrize(("name", "codec", "fmt"), [("avatar.h264", "h264", "h264"), ("avatar.h265", "hevc", "hevc")])
@pytest.mark.parametrize("audio_codec", ["aac", "pcm_alaw"])
def test_real_clips_round_trip(shared_media: Path, name: str, codec: str, fmt: str, audio_codec: str) -> None:
    aus = split_aus((shared_media / name).read_bytes(), fmt)
    video = [MediaFrame(codec=codec, data=d, pts=3600 * i, dts=3600 * i, keyframe=k) for i, (d, k) in enumerate(aus)]
    if audio_codec == "aac":
        packets = split_adts((shared_media / "avatar.aac").read_bytes())
        rates = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
        rate = rates[(packets[0][2] >> 2) & 0xF]
        step = 1024 * 90000 // rate
    else:
        packets = list(encode_audio("pcm_alaw", seconds=10.0, rate=8000))
        step = 3600
    audio = [
        MediaFrame(codec=audio_codec, data=p, pts=step * i, dts=step * i, keyframe=True) for i, p in enumerate(packets)
    ]
    muxer = PsMuxer(codec, audio_codec)
    ps = b"".join(muxer.mux(f) for f in interleave(video, audio))
    for chunk in (len(ps), 1400, 7):
        got = demux(ps, chunk)
        assert [(f.data, f.pts, f.dts, f.keyframe) for f in got if f.kind == "video"] == [
            (f.data, f.pts, f.dts, f.keyframe) for f in video
        ]
        assert [(f.data, f.pts) for f in got if f.kind == "audio"] == [(f.data, f.pts) for f in audio]
    assert sum(f.keyframe for f in video) == (13 if codec == "h264" else 8)
