"""FLV tag bodies, avcC/hvcC/AudioSpecificConfig records, NAL framing, and the FlvDemuxer/FlvMuxer bridge.

Round trips go through real streams made with tests/mediagen.py (H.264 and H.265 from PyAV's x264/x265): frames
-> FlvMuxer -> tag bodies -> FlvDemuxer -> frames must give the same access units (parameter sets re-inserted
before keyframes), timestamps and keyframe flags.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.flv import (
    PACKET_END,
    PACKET_FRAME,
    PACKET_METADATA,
    PACKET_SEQUENCE_HEADER,
    AudioTag,
    FlvDemuxer,
    FlvMuxer,
    VideoTag,
    annexb_to_length_prefixed,
    build_audio_tag,
    build_avcc,
    build_hvcc,
    build_video_tag,
    flv_header,
    flv_tag,
    length_prefixed_to_annexb,
    parse_aac_config,
    parse_audio_tag,
    parse_avcc,
    parse_hvcc,
    parse_video_tag,
)
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from tests.mediagen import encode_annexb


def test_video_tag_golden() -> None:
    assert parse_video_tag(b"\x17\x00\x00\x00\x00cfg") == VideoTag(
        codec="h264", packet_type=PACKET_SEQUENCE_HEADER, keyframe=True, composition_time=0, data=b"cfg"
    )
    assert parse_video_tag(b"\x27\x01\xff\xff\xd8nal") == VideoTag(
        codec="h264", packet_type=PACKET_FRAME, keyframe=False, composition_time=-40, data=b"nal"
    )
    assert parse_video_tag(b"\x1c\x01\x00\x00\x50x").codec == "hevc"  # legacy codec id 12
    assert parse_video_tag(b"\x17\x02\x00\x00\x00").packet_type == PACKET_END
    # Enhanced RTMP: SequenceStart, CodedFrames (with cts), CodedFramesX, SequenceEnd, Metadata.
    assert parse_video_tag(b"\x90hvc1cfg") == VideoTag(
        codec="hevc", packet_type=PACKET_SEQUENCE_HEADER, keyframe=True, composition_time=0, data=b"cfg", enhanced=True
    )
    assert parse_video_tag(b"\xa1hvc1\x00\x00\x28x").composition_time == 40
    assert parse_video_tag(b"\xa3hvc1x") == VideoTag(
        codec="hevc", packet_type=PACKET_FRAME, keyframe=False, composition_time=0, data=b"x", enhanced=True
    )
    assert parse_video_tag(b"\x92hvc1").packet_type == PACKET_END
    assert parse_video_tag(b"\x94hvc1meta").packet_type == PACKET_METADATA
    assert parse_video_tag(b"\x52\x00").packet_type == PACKET_METADATA  # video info/command frame
    assert parse_video_tag(b"\x22abc").codec == "flv_video_2"
    for bad in (b"", b"\x17\x00", b"\x90hv", b"\x91hvc1\x00", b"\x96hvc1", b"\x17\x05\x00\x00\x00"):
        with pytest.raises(ParseError):
            parse_video_tag(bad)
    assert (
        build_video_tag("h264", PACKET_FRAME, b"nal", keyframe=False, composition_time=-40)
        == b"\x27\x01\xff\xff\xd8nal"
    )
    assert build_video_tag("hevc", PACKET_SEQUENCE_HEADER, b"cfg") == b"\x90hvc1cfg"
    assert build_video_tag("hevc", PACKET_FRAME, b"x", keyframe=True) == b"\x93hvc1x"
    assert build_video_tag("hevc", PACKET_FRAME, b"x", composition_time=40) == b"\xa1hvc1\x00\x00\x28x"
    assert build_video_tag("hevc", PACKET_FRAME, b"x", enhanced=False) == b"\x2c\x01\x00\x00\x00x"
    with pytest.raises(LocalProtocolError):
        build_video_tag("vp8", PACKET_FRAME, b"")
    with pytest.raises(LocalProtocolError):
        build_video_tag("h264", 7, b"")
    with pytest.raises(LocalProtocolError):
        build_video_tag("h264", PACKET_FRAME, b"", composition_time=1 << 23)
    with pytest.raises(LocalProtocolError):
        build_video_tag("mpeg4", PACKET_FRAME, b"", enhanced=True)


def test_audio_tag_golden() -> None:
    assert parse_audio_tag(b"\xaf\x00\x12\x10") == AudioTag(
        codec="aac", packet_type=PACKET_SEQUENCE_HEADER, sound_rate=3, stereo=True, data=b"\x12\x10"
    )
    assert parse_audio_tag(b"\x72abc").codec == "pcm_alaw"
    assert parse_audio_tag(b"\x82abc").codec == "pcm_mulaw"
    assert parse_audio_tag(b"\x2fabc").codec == "mp3"
    for bad in (b"", b"\xaf", b"\xaf\x02"):
        with pytest.raises(ParseError):
            parse_audio_tag(bad)
    assert build_audio_tag("aac", b"\x12\x10", packet_type=PACKET_SEQUENCE_HEADER) == b"\xaf\x00\x12\x10"
    assert build_audio_tag("aac", b"x", stereo=False) == b"\xae\x01x"
    assert build_audio_tag("pcm_alaw", b"x") == b"\x72x"
    assert build_audio_tag("pcm_mulaw", b"x") == b"\x82x"
    with pytest.raises(LocalProtocolError):
        build_audio_tag("opus", b"")
    with pytest.raises(LocalProtocolError):
        build_audio_tag("aac", b"", packet_type=2)


def test_flv_framing_golden() -> None:
    assert flv_header(audio=True, video=True) == b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    assert flv_tag(9, 0x01020304, b"ab") == b"\x09\x00\x00\x02\x02\x03\x04\x01\x00\x00\x00ab\x00\x00\x00\x0d"
    with pytest.raises(LocalProtocolError):
        flv_tag(7, 0, b"")


def test_aac_config() -> None:
    config = parse_aac_config(b"\x12\x10")  # AAC LC, 44.1 kHz, stereo
    assert (config.object_type, config.sample_rate, config.channels) == (2, 44100, 2)
    assert parse_aac_config(b"\x11\x90").sample_rate == 48000
    assert parse_aac_config(b"\x17\x80\x0f\xa0\x08").sample_rate == 8000  # explicit frequency (index 15)
    assert parse_aac_config(b"\xf8\x01\x10").object_type == 32  # escape to 6 more bits
    for bad in (b"\x12", b"\x16\x80", b"\x17\x80\x00\x00\x00"):
        with pytest.raises(ParseError):
            parse_aac_config(bad)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_records_and_framing(codec: str) -> None:
    stream = encode_annexb(codec, width=160, height=96, frames=4, gop=4)
    nals = split_annexb(stream)
    hevc = codec == "hevc"
    wanted = {32, 33, 34} if hevc else {7, 8}
    sets = tuple(n for n in nals if ((n[0] >> 1) & 0x3F if hevc else n[0] & 0x1F) in wanted)
    record = build_hvcc(sets) if hevc else build_avcc(sets)
    parsed = parse_hvcc(record) if hevc else parse_avcc(record)
    assert parsed.length_size == 4
    assert parsed.parameter_sets == sets
    lp = annexb_to_length_prefixed(stream)
    assert length_prefixed_to_annexb(lp) == b"".join(b"\x00\x00\x00\x01" + n for n in nals)
    assert length_prefixed_to_annexb(b"") == b""
    with pytest.raises(ParseError):
        length_prefixed_to_annexb(lp[:-1])
    with pytest.raises(ParseError):
        length_prefixed_to_annexb(b"\x00\x00")
    for cut in (1, 6, 10, 24, len(record) - 1):
        with pytest.raises(ParseError):
            (parse_hvcc if hevc else parse_avcc)(record[:cut])
    with pytest.raises(ParseError):
        (parse_hvcc if hevc else parse_avcc)(b"\x02" + record[1:])
    with pytest.raises(LocalProtocolError):
        (build_hvcc if hevc else build_avcc)(())


@pytest.mark.parametrize(("codec", "enhanced"), [("h264", True), ("hevc", True), ("hevc", False)])
def test_muxer_demuxer_roundtrip(codec: str, enhanced: bool) -> None:
    stream = encode_annexb(codec, width=160, height=96, frames=12, gop=6, bframes=2)
    assembler = AccessUnitAssembler(codec)
    units = [u for nal in split_annexb(stream) for u in assembler.feed(nal)] + assembler.flush()
    frames = [
        MediaFrame(
            codec=codec,
            data=b"".join(b"\x00\x00\x00\x01" + n for n in u.nals),
            pts=3600 * i + 7200,
            dts=3600 * i,
            keyframe=u.keyframe,
        )
        for i, u in enumerate(units)
    ]
    audio = [MediaFrame(codec="aac", data=b"\x21\x00", pts=1800 * i, dts=1800 * i, keyframe=True) for i in range(6)]
    muxer = FlvMuxer(video_codec=codec, audio_codec="aac", audio_extradata=b"\x12\x10", enhanced_hevc=enhanced)
    assert muxer.push(audio[0]) == []  # nothing before the first video keyframe
    tags = [t for f in frames[:2] for t in muxer.push(f)] + [t for a in audio[1:] for t in muxer.push(a)]
    tags += [t for f in frames[2:] for t in muxer.push(f)]
    assert tags[0][0] == "video"
    assert tags[1] == ("audio", 0, b"\xaf\x00\x12\x10")
    demuxer = FlvDemuxer()
    out = [
        f
        for kind, ms, body in tags
        if (f := (demuxer.video(ms, body) if kind == "video" else demuxer.audio(ms, body))) is not None
    ]
    video = [f for f in out if f.codec == codec]
    assert [f.keyframe for f in video] == [f.keyframe for f in frames]
    assert [f.dts for f in video] == [f.dts for f in frames]
    assert [f.pts for f in video] == [f.pts for f in frames]
    skip = {32, 33, 34, 35} if codec == "hevc" else {7, 8, 9}

    def body(data: bytes) -> list[bytes]:
        return [n for n in split_annexb(data) if ((n[0] >> 1) & 0x3F if codec == "hevc" else n[0] & 0x1F) not in skip]

    assert [body(f.data) for f in video] == [body(f.data) for f in frames]
    # keyframes carry their parameter sets in band again (the muxer took them out of the frames)
    sps = 33 if codec == "hevc" else 7
    for f in video:
        types = [(n[0] >> 1) & 0x3F if codec == "hevc" else n[0] & 0x1F for n in split_annexb(f.data)]
        assert (sps in types) == f.keyframe
    assert demuxer.audio_config is not None
    assert demuxer.audio_config.sample_rate == 44100
    assert [f.data for f in out if f.codec == "aac"] == [b"\x21\x00"] * 5


def test_demuxer_edges() -> None:
    demuxer = FlvDemuxer()
    with pytest.raises(ParseError, match="before its sequence header"):
        demuxer.video(0, b"\x17\x01\x00\x00\x00\x00\x00\x00\x01\x65")
    with pytest.raises(ParseError, match="before its AudioSpecificConfig"):
        demuxer.audio(0, b"\xaf\x01x")
    assert demuxer.audio(0, b"\x72abc") == MediaFrame(codec="pcm_alaw", data=b"abc", pts=0, dts=0, keyframe=True)
    assert demuxer.audio(0, b"\x2fabc") is None  # mp3 is not passed on
    assert demuxer.video(0, b"\x22abc") is None
    # 32-bit millisecond wrap keeps the 90 kHz clock growing
    assert demuxer.audio(0xFFFFFFF0, b"\x72a") is not None
    frame = demuxer.audio(0x10, b"\x72a")
    assert frame is not None
    assert frame.pts == (0x100000000 + 0x10) * 90
    with pytest.raises(LocalProtocolError):
        FlvMuxer(video_codec="vp8")
    with pytest.raises(LocalProtocolError):
        FlvMuxer(video_codec=None, audio_codec="opus")
    g711 = FlvMuxer(video_codec=None, audio_codec="pcm_mulaw")
    assert g711.push(MediaFrame(codec="pcm_mulaw", data=b"x", pts=900, dts=900, keyframe=True)) == [
        ("audio", 0, b"\x82x")
    ]


@settings(max_examples=300)
@given(st.binary(max_size=300), st.booleans())
def test_garbage(data: bytes, video: bool) -> None:
    demuxer = FlvDemuxer()
    try:
        if video:
            demuxer.video(0, b"\x17\x00\x00\x00\x00" + data)
            demuxer.video(0, data)
        else:
            demuxer.audio(0, b"\xaf\x00" + data)
            demuxer.audio(0, data)
    except ParseError:
        pass
