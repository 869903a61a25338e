"""Live fMP4 for MSE: our boxes read back by PyAV and ffprobe, frame data and timestamps exact; live from an engine."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
import trio

from fluxkit.engine import Track, open_engine
from fluxkit.errors import LocalProtocolError
from fluxkit.playback import LiveFmp4Muxer, annexb_to_lengths, live_fmp4
from fluxkit.protocols.nalu import split_annexb
from tests.playback._util import ffprobe, read_back
from tests.storage._feed import build


def lengths_to_nals(sample: bytes) -> list[bytes]:
    """Length-prefixed MP4 sample -> NAL units (the reverse of `annexb_to_lengths`)."""
    nals = []
    pos = 0
    while pos < len(sample):
        (n,) = struct.unpack_from(">I", sample, pos)
        nals.append(sample[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert pos == len(sample)
    return nals


@pytest.mark.interop
@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("batch", [1, 7, 25])
def test_muxer_output_reads_back_exactly(codec: str, batch: int, tmp_path: Path) -> None:
    tracks, frames = build(codec, frames=75, gop=25)  # 90 kHz timestamps that wrap past 2**32 on the way
    muxer = LiveFmp4Muxer(tracks[0])
    assert muxer.mime_type.startswith('video/mp4; codecs="' + ("avc1." if codec == "h264" else "hvc1."))
    parts = [muxer.init_segment()]
    parts += [muxer.fragment(frames[i : i + batch]) for i in range(0, len(frames), batch)]
    data = b"".join(parts)
    info = read_back(data)
    assert info["decoded"] == len(frames)
    assert info["dts"] == pytest.approx([i * 0.04 for i in range(len(frames))], abs=1e-6)
    assert info["pts"] == info["dts"]
    assert info["keys"] == [f.keyframe for f in frames]
    for sample, frame in zip(info["data"], frames, strict=True):
        assert sample == annexb_to_lengths(frame.data)
        assert lengths_to_nals(sample) == split_annexb(frame.data)
    path = tmp_path / "live.mp4"
    path.write_bytes(data)
    probe = ffprobe(path)
    assert probe["codec"] == codec
    assert probe["frames"] == len(frames)
    assert probe["pts"] == pytest.approx(info["pts"], abs=1e-6)
    assert probe["keys"] == info["keys"]


def test_muxer_rules() -> None:
    tracks, frames = build("h264", frames=30, gop=25)
    muxer = LiveFmp4Muxer(tracks[0])
    with pytest.raises(LocalProtocolError):
        muxer.fragment(frames[1:3])  # must start at a keyframe
    assert muxer.fragment([]) == b""
    first = muxer.fragment(frames[:1])
    assert first[4:8] == b"moof"
    with pytest.raises(LocalProtocolError):
        LiveFmp4Muxer(Track(codec="h264"))  # no parameter sets at all
    with pytest.raises(LocalProtocolError):
        LiveFmp4Muxer(Track(codec="aac", clock_rate=8000))
    small = LiveFmp4Muxer(tracks[0], max_fragment_bytes=100)
    with pytest.raises(LocalProtocolError):
        small.fragment(frames[:1])
    # Parameter sets can come from the first keyframe when the track has none.
    from_key = LiveFmp4Muxer(Track(codec="h264"), parameter_sets=split_annexb(frames[0].data))
    assert from_key.init_segment() == muxer.init_segment()


def test_annexb_to_lengths() -> None:
    au = b"\x00\x00\x00\x01\x67\x42\x00\x1e\x00\x00\x01\x68\xce\x3c\x80\x00\x00\x01\x65\x88\x84"
    assert annexb_to_lengths(au) == (
        b"\x00\x00\x00\x04\x67\x42\x00\x1e\x00\x00\x00\x04\x68\xce\x3c\x80\x00\x00\x00\x03\x65\x88\x84"
    )
    assert annexb_to_lengths(b"") == b""


@pytest.mark.trio
@pytest.mark.parametrize(("codec", "with_sets"), [("h264", True), ("hevc", True), ("h264", False)])
async def test_live_fmp4_from_engine_starts_at_keyframe(codec: str, with_sets: bool) -> None:
    tracks, frames = build(codec, frames=100, gop=25)
    if not with_sets:
        tracks = [Track(codec=codec)]
    chunks: list[bytes] = []
    with trio.fail_after(30):
        async with open_engine() as engine, trio.open_nursery() as nursery:
            publisher = engine.publish_stream("cam1", tracks)

            async def consume() -> None:
                async with contextlib.aclosing(live_fmp4(engine, "cam1", frames_per_fragment=2)) as stream:
                    async for chunk in stream:
                        chunks.append(chunk)

            nursery.start_soon(consume)
            await trio.sleep(0.01)
            for frame in frames[10:]:  # joins mid-GOP: the live view waits for the keyframe at frame 25
                publisher.send(frame)
                await trio.lowlevel.checkpoint()
            publisher.close()
    assert chunks[0][4:8] == b"ftyp"
    assert all(c[4:8] == b"moof" for c in chunks[1:])
    info = read_back(b"".join(chunks))
    sent = frames[25:]
    assert info["keys"][0] is True
    assert info["decoded"] == len(sent)
    assert info["data"] == [annexb_to_lengths(f.data) for f in sent]
    assert info["dts"] == pytest.approx([i * 0.04 for i in range(len(sent))], abs=1e-6)


@pytest.mark.trio
async def test_live_fmp4_of_an_audio_only_stream_is_refused() -> None:
    from fluxkit.engine import Track, open_engine
    from fluxkit.errors import LocalProtocolError
    from fluxkit.playback import live_fmp4

    with trio.fail_after(5):
        async with open_engine() as engine:
            engine.publish_stream("mic", [Track(codec="pcm_alaw", clock_rate=8000, sample_rate=8000, channels=1)])
            with pytest.raises(LocalProtocolError, match="no video track"):
                await live_fmp4(engine, "mic").__anext__()
