"""MPEG-PS: codec records, PsMuxer, PsDemuxer (golden vectors, chunking, damage, camera quirks, Hypothesis).

Synthetic H.264/H.265 access units are built by hand (parameter sets + slices whose bodies contain no zero byte,
so no accidental start codes): the demuxer's AU splitting is then checked against exactly known units.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.ps import (
    MediaFrame,
    PackHeader,
    PesPacket,
    ProgramStreamMap,
    PsDemuxer,
    PsmEntry,
    PsMuxer,
    SystemHeader,
    SystemHeaderStream,
    crc32_mpeg2,
    parse_pack_header,
    parse_pes,
    parse_psm,
    parse_system_header,
)


def _body(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(1, 256) for _ in range(n))


def h264_au(rng: random.Random, size: int, *, idr: bool = False, aud: bool = False) -> bytes:
    """An H.264 AU: [AUD] [SPS PPS] slice (first_mb_in_slice 0: the slice header's first bit is 1)."""
    out = b"\x00\x00\x00\x01\x09\xf0" if aud else b""
    if idr:
        out += b"\x00\x00\x00\x01\x67\x42\xc0\x1e" + _body(rng, 8) + b"\x00\x00\x00\x01\x68\xce\x3c\x80"
        out += b"\x00\x00\x01\x65\x88" + _body(rng, size)
    else:
        out += b"\x00\x00\x01\x41\x9a" + _body(rng, size)
    return out


def hevc_au(rng: random.Random, size: int, *, idr: bool = False) -> bytes:
    """An H.265 AU: [VPS SPS PPS] slice with first_slice_segment_in_pic_flag set."""
    out = b""
    if idr:
        for t in (32, 33, 34):
            out += b"\x00\x00\x00\x01" + bytes((t << 1, 1)) + _body(rng, 6)
        out += b"\x00\x00\x01\x26\x01\xaf" + _body(rng, size)  # IDR_W_RADL
    else:
        out += b"\x00\x00\x01\x02\x01\xd0" + _body(rng, size)  # TRAIL_R
    return out


def adts(payload: bytes) -> bytes:
    """Wrap a raw AAC frame in a 7-byte ADTS header (AAC LC, 8 kHz, mono)."""
    n = len(payload) + 7
    return bytes((0xFF, 0xF1, 0x6C, 0x40 | (n >> 11), (n >> 3) & 0xFF, ((n & 7) << 5) | 0x1F, 0xFC)) + payload


def video_stream(codec: str = "h264", frames: int = 30, *, seed: int = 1, big: bool = False) -> list[MediaFrame]:
    rng = random.Random(seed)
    out = []
    for i in range(frames):
        key = i % 10 == 0
        size = rng.randrange(70_000, 140_000) if big and key else rng.randrange(10, 3000)
        data = h264_au(rng, size, idr=key, aud=bool(i % 2)) if codec == "h264" else hevc_au(rng, size, idr=key)
        out.append(MediaFrame(codec=codec, data=data, pts=1000 + 3600 * i, dts=1000 + 3600 * i, keyframe=key))
    return out


def demux_all(ps: bytes, chunks: list[int] | None = None) -> tuple[list[MediaFrame], PsDemuxer]:
    d = PsDemuxer()
    out: list[MediaFrame] = []
    if chunks is None:
        out += d.feed(ps)
    else:
        pos = 0
        for n in chunks:
            out += d.feed(ps[pos : pos + n])
            pos += n
        out += d.feed(ps[pos:])
    out += d.flush()
    return out, d


def mux_all(frames: list[MediaFrame], video: str | None = "h264", audio: str | None = None) -> bytes:
    m = PsMuxer(video, audio)
    return b"".join(m.mux(f) for f in frames)


# ------------------------------------------------------------------------------------------------ golden vectors


def test_crc32_mpeg2_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogue check value of CRC-32/MPEG-2


def test_golden_pack_header() -> None:
    # SCR base 90000 (1 s): '01' 000 1 | 000000000000010 1 | 101111110010000 1 | ext 000000000 1, then
    # mux_rate 25000 '11', reserved 11111, stuffing length 000 (13818-1 Table 2-38).
    header = PackHeader(scr_base=90000, mux_rate=25000)
    raw = bytes.fromhex("000001ba 440016fc8401 0186a3 f8".replace(" ", ""))
    assert header.serialize() == raw
    assert parse_pack_header(raw) == (header, 14)
    assert parse_pack_header(raw + b"junk") == (header, 14)
    mpeg1 = PackHeader(scr_base=90000, mux_rate=25000, mpeg1=True)
    raw1 = bytes.fromhex("000001ba 21 0005 bf21 80c351".replace(" ", ""))
    assert mpeg1.serialize() == raw1
    assert parse_pack_header(raw1) == (mpeg1, 12)
    stuffed = PackHeader(scr_base=5, scr_ext=299, mux_rate=1, stuffing_length=3)
    assert parse_pack_header(stuffed.serialize()) == (stuffed, 17)


def test_golden_pes() -> None:
    # PTS 90000 encodes as 21 00 05 BF 21 (13818-1 §2.4.3.7).
    raw = bytes.fromhex("000001e0 000a 8480 05 210005bf21 abcd".replace(" ", ""))
    packet = PesPacket(stream_id=0xE0, payload=b"\xab\xcd", pts=90000, data_alignment=True)
    assert packet.serialize() == raw
    assert parse_pes(raw) == (packet, len(raw))
    both = PesPacket(stream_id=0xE0, payload=b"x", pts=93600, dts=90000)
    assert both.serialize()[6:9] == b"\x80\xc0\x0a"
    assert both.serialize()[9] >> 4 == 3
    assert both.serialize()[14] >> 4 == 1
    assert parse_pes(both.serialize())[0] == both
    # MPEG-1 PES: two stuffing bytes, STD buffer fields, PTS.
    raw1 = bytes.fromhex("000001c0 000b ffff 4020 210005bf21 0102".replace(" ", ""))
    assert parse_pes(raw1)[0] == PesPacket(stream_id=0xC0, payload=b"\x01\x02", pts=90000, mpeg1=True)


def test_golden_psm() -> None:
    psm = ProgramStreamMap(
        entries=(PsmEntry(stream_type=0x1B, stream_id=0xE0), PsmEntry(stream_type=0x90, stream_id=0xC0))
    )
    raw = psm.serialize()
    assert raw[:12] == bytes.fromhex("000001bc 0012 e0ff 0000 0008".replace(" ", ""))
    assert raw[12:20] == bytes.fromhex("1be00000 90c00000")
    assert crc32_mpeg2(raw) == 0  # a CRC over data plus its own CRC is 0
    parsed, size = parse_psm(raw)
    assert parsed == psm
    assert parsed.crc_ok
    assert size == len(raw)


def test_system_header_round_trip() -> None:
    sh = SystemHeader(
        rate_bound=50000,
        audio_bound=1,
        video_bound=1,
        streams=(
            SystemHeaderStream(stream_id=0xE0, buffer_bound_scale=1, buffer_size_bound=400),
            SystemHeaderStream(stream_id=0xC0, buffer_bound_scale=0, buffer_size_bound=32),
        ),
    )
    raw = sh.serialize()
    assert parse_system_header(raw) == (sh, len(raw))


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00\x00\x01", b"\x00\x00\x01\xbc\x00", b"\x00\x00\x01\xbc\x00\x40\xe0", b"\x00\x00\x01\xba\x44"],
)
def test_codec_parsers_reject_truncated(bad: bytes) -> None:
    for parse in (parse_pack_header, parse_psm, parse_pes, parse_system_header):
        with pytest.raises(ParseError):
            parse(bad)


def test_serialize_rejects_out_of_range() -> None:
    with pytest.raises(LocalProtocolError):
        PackHeader(scr_base=1 << 33).serialize()
    with pytest.raises(LocalProtocolError):
        PesPacket(stream_id=0xE0, payload=b"", dts=5).serialize()
    with pytest.raises(LocalProtocolError):
        PesPacket(stream_id=0xE0, payload=bytes(70000)).serialize()
    with pytest.raises(LocalProtocolError):
        ProgramStreamMap(entries=(), version=32).serialize()


# ----------------------------------------------------------------------------------------------------- muxer


def test_muxer_layout_gb28181() -> None:
    m = PsMuxer("h264", "pcm_alaw")
    key = m.mux_video(b"\x00\x00\x00\x01\x65\x88", pts=3600, keyframe=True)
    # pack header, system header, PSM, PES (C.1: every keyframe pack carries BA -> BB -> BC -> E0).
    assert key[:4] == b"\x00\x00\x01\xba"
    assert key[14:18] == b"\x00\x00\x01\xbb"
    i = key.index(b"\x00\x00\x01\xbc")
    psm, size = parse_psm(key, i)
    assert psm.crc_ok
    assert [(e.stream_type, e.stream_id) for e in psm.entries] == [(0x1B, 0xE0), (0x90, 0xC0)]
    assert key[i + size : i + size + 4] == b"\x00\x00\x01\xe0"
    delta = m.mux_video(b"\x00\x00\x00\x01\x41\x9a", pts=7200, keyframe=False)
    assert b"\x00\x00\x01\xbc" not in delta
    assert delta[14:18] == b"\x00\x00\x01\xe0"
    audio = m.mux_audio(b"\xd5" * 160, pts=3600)
    assert audio[14:18] == b"\x00\x00\x01\xc0"


def test_muxer_splits_big_frames_at_pes_limit() -> None:
    rng = random.Random(3)
    au = h264_au(rng, 200_000, idr=True)
    ps = PsMuxer("h264").mux_video(au, pts=1, dts=0, keyframe=True)
    pes = []
    pos = ps.index(b"\x00\x00\x01\xe0")
    while pos < len(ps):
        packet, size = parse_pes(ps, pos)
        pes.append(packet)
        pos += size
    assert len(pes) == 4
    assert (pes[0].pts, pes[0].dts) == (1, 0)
    assert all(p.pts is None for p in pes[1:])
    assert b"".join(p.payload for p in pes) == au
    assert all(len(p.serialize()) <= 65541 for p in pes)


def test_muxer_rejects_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        PsMuxer("vp8")
    with pytest.raises(LocalProtocolError):
        PsMuxer(None, None)
    m = PsMuxer("h264", "aac")
    with pytest.raises(LocalProtocolError):
        m.mux_audio(b"\x01\x02\x03", pts=0)  # AAC must be ADTS
    with pytest.raises(LocalProtocolError):
        m.mux_video(b"x", pts=None, dts=5)
    with pytest.raises(LocalProtocolError):
        m.mux_video(b"x", pts=-1)
    with pytest.raises(LocalProtocolError):
        m.mux(MediaFrame(codec="hevc", data=b"x", pts=0, dts=0, keyframe=True))
    with pytest.raises(LocalProtocolError):
        PsMuxer(None, "pcm_alaw").mux_video(b"x", pts=0)


# -------------------------------------------------------------------------------------------------- demuxer


def _same(got: list[MediaFrame], want: list[MediaFrame]) -> None:
    assert [(f.codec, f.data, f.pts, f.dts, f.keyframe) for f in got] == [
        (f.codec, f.data, f.pts, f.dts, f.keyframe) for f in want
    ]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_round_trip_whole_bytewise_chunks(codec: str) -> None:
    frames = video_stream(codec, 40)
    ps = mux_all(frames, codec)
    _same(demux_all(ps)[0], frames)
    _same(demux_all(ps[:20_000], [1] * 20_000)[0] + [], demux_all(ps[:20_000])[0])
    rng = random.Random(7)
    for _ in range(5):
        chunks = [rng.randrange(1, 3000) for _ in range(len(ps) // 1000)]
        _same(demux_all(ps, chunks)[0], frames)


def test_bytewise_small_stream_exact() -> None:
    frames = video_stream("h264", 6)
    ps = mux_all(frames)
    _same(demux_all(ps, [1] * len(ps))[0], frames)


def test_big_frames_over_many_pes_and_b_frames() -> None:
    frames = video_stream("h264", 25, big=True)
    # Decode order with B-frames: DTS != PTS.
    frames = [
        MediaFrame(codec="h264", data=f.data, pts=f.pts + 7200 * (i % 3 == 1), dts=f.dts, keyframe=f.keyframe)
        for i, f in enumerate(frames)
    ]
    ps = mux_all(frames)
    got, d = demux_all(ps, [1400] * (len(ps) // 1400))
    _same(got, frames)
    assert d.statistics().pes_packets > len(frames)


def test_trailing_partial_unit_waits() -> None:
    frames = video_stream("h264", 10)
    ps = mux_all(frames)
    nxt = PsMuxer("h264").mux_video(h264_au(random.Random(2), 50), pts=99_999)
    d = PsDemuxer()
    got = d.feed(ps + nxt[:20])  # trailing data: the start of the next pack
    assert [f.data for f in got] == [f.data for f in frames[:-1]]  # the last AU is pending until the next starts
    got = d.feed(nxt[20:]) + d.flush()
    assert [f.data for f in got] == [frames[-1].data, nxt[nxt.index(b"\x00\x00\x01\x41") :]]


def test_trailing_garbage_costs_only_the_last_unit() -> None:
    frames = video_stream("h264", 10)
    got, d = demux_all(mux_all(frames) + b"\x17" * 50)
    _same(got, frames[:-1])
    s = d.statistics()
    assert s.damaged_units == 1
    assert s.resyncs == 1


def test_leading_garbage_resyncs() -> None:
    frames = video_stream("h264", 10)
    junk = bytes(random.Random(5).randrange(1, 256) for _ in range(777))
    got, d = demux_all(junk + mux_all(frames))
    _same(got, frames)
    s = d.statistics()
    assert s.resyncs == 1
    assert s.skipped_bytes == 777


def test_zero_stuffing_between_packs_is_not_a_resync() -> None:
    m = PsMuxer("h264")
    frames = video_stream("h264", 5)
    ps = b"".join(m.mux(f) + b"\x00" * 4 for f in frames)
    got, d = demux_all(ps)
    _same(got, frames)
    assert d.statistics().resyncs == 0


def test_loss_in_the_middle_resyncs_and_later_frames_are_intact() -> None:
    frames = video_stream("h264", 30, big=True)
    m = PsMuxer("h264")
    packs = [m.mux(f) for f in frames]
    for hit, cut in [(3, (500, 900)), (10, (30_000, 31_400)), (12, (2, 10)), (20, (0, 5))]:
        damaged = [*packs[:hit], packs[hit][: cut[0]] + packs[hit][cut[1] :], *packs[hit + 1 :]]
        got, d = demux_all(b"".join(damaged), [1400] * 2000)
        want = frames[: hit - 1] + frames[hit + 1 :]
        got_data = [f.data for f in got]
        # Every frame not hit is delivered intact; the hit one never comes out corrupt (the frame before the hit
        # may be held back only when the loss makes its end unknowable).
        assert all(f.data in got_data for f in want if f is not frames[hit - 1])
        assert all(g in [f.data for f in frames] for g in got_data)
        assert frames[hit].data not in got_data
        assert d.statistics().resyncs >= 1 or d.statistics().damaged_units >= 1


def test_start_code_split_across_pes_at_every_offset() -> None:
    rng = random.Random(11)
    aus = [h264_au(rng, 40, idr=True, aud=True), h264_au(rng, 30, aud=True), h264_au(rng, 25), h264_au(rng, 20)]
    es = b"".join(aus)
    boundaries = [len(b"".join(aus[:i])) for i in range(1, len(aus))]
    for b in boundaries:
        for cut in range(max(1, b - 8), min(len(es), b + 9)):
            ps = b"".join(
                PesPacket(stream_id=0xE0, payload=part, pts=None).serialize() for part in (es[:cut], es[cut:])
            )
            got, _ = demux_all(b"\x00\x00\x01\xba" + PackHeader(scr_base=0).serialize()[4:] + ps)
            assert [f.data for f in got] == aus, (b, cut)
            assert [f.keyframe for f in got] == [True, False, False, False]


def test_pes_carrying_tail_of_one_frame_and_head_of_next() -> None:
    rng = random.Random(4)
    aus = [h264_au(rng, rng.randrange(20, 900), idr=i == 0, aud=True) for i in range(12)]
    es = b"".join(aus)
    starts = [len(b"".join(aus[:i])) for i in range(len(aus))]
    ps = bytearray(PackHeader(scr_base=0).serialize())
    for off in range(0, len(es), 700):  # fixed-size PES like ffmpeg's packs
        first = next((i for i, s in enumerate(starts) if off <= s < off + 700), None)
        pts = None if first is None else 1000 + 3600 * first
        ps += PesPacket(stream_id=0xE2, payload=es[off : off + 700], pts=pts).serialize()
    got, _ = demux_all(bytes(ps))
    assert [f.data for f in got] == aus
    for i, f in enumerate(got):
        first_in_pes = any(starts[i] // 700 == off // 700 for off in [starts[i]]) and all(
            starts[j] // 700 != starts[i] // 700 for j in range(i)
        )
        assert f.pts == (1000 + 3600 * i if first_in_pes else None)


# --------------------------------------------------------------------------------------- camera quirks / PSM


def _pack() -> bytes:
    return PackHeader(scr_base=0, mux_rate=1).serialize()


def _pes(sid: int, payload: bytes, pts: int | None) -> bytes:
    return PesPacket(stream_id=sid, payload=payload, pts=pts).serialize()


def _psm_raw(entries: bytes, info: bytes = b"", *, crc: bool = True) -> bytes:
    body = b"\xe0\xff" + len(info).to_bytes(2, "big") + info + len(entries).to_bytes(2, "big") + entries
    head = b"\x00\x00\x01\xbc" + (len(body) + 4).to_bytes(2, "big") + body
    return head + (crc32_mpeg2(head).to_bytes(4, "big") if crc else b"\xde\xad\xbe\xef")


def _gb_stream(psm: bytes, vsid: int = 0xE0, codec: str = "h264", n: int = 6) -> tuple[bytes, list[MediaFrame]]:
    frames = video_stream(codec, n)
    out = b""
    for i, f in enumerate(frames):
        out += _pack() + (psm if i == 0 else b"") + _pes(vsid, f.data, f.pts)
        out += _pack() + _pes(0xC0, b"\xd5" * 160, f.pts)
    return out, frames


def test_hikvision_descriptors_and_private_stream() -> None:
    hk = b"\x40\x0e" + b"HK" + bytes(12)  # tag 0x40..0x43 descriptors, skipped by length
    entries = b"\x1b\xe0" + (len(hk) + 6).to_bytes(2, "big") + hk + b"\x0a\x04\x65\x6e\x67\x00"
    entries += b"\x90\xc0\x00\x06\x41\x04\x00\x00\x00\x01"
    psm = _psm_raw(entries, info=b"\x40\x0e" + b"HK" + bytes(12))
    ps, frames = _gb_stream(psm)
    ps = ps.replace(b"\x00\x00\x01\xc0", _pes(0xBD, b"\x11" * 30, None) + b"\x00\x00\x01\xc0", 2)
    got, d = demux_all(ps)
    video = [f for f in got if f.kind == "video"]
    audio = [f for f in got if f.kind == "audio"]
    _same(video, frames)
    assert len(audio) == 6
    assert {f.codec for f in audio} == {"pcm_alaw"}
    assert all(f.keyframe for f in audio)
    assert d.program_stream_map == {0xE0: 0x1B, 0xC0: 0x90}
    assert d.statistics().skipped_pes == 2
    assert d.statistics().guessed_audio == 0


def test_tiandy_inconsistent_es_info_length_and_bad_crc() -> None:
    # The last entry claims 0x20 descriptor bytes that are not there; the CRC is garbage (Dahua).
    entries = b"\x24\xe0\x00\x00" + b"\x91\xc0\x00\x20"
    ps, frames = _gb_stream(_psm_raw(entries, crc=False), codec="hevc")
    got, d = demux_all(ps)
    _same([f for f in got if f.kind == "video"], frames)
    assert {f.codec for f in got if f.kind == "audio"} == {"pcm_mulaw"}
    assert d.statistics().damaged_units == 0
    psm, _ = parse_psm(_psm_raw(entries, crc=False))
    assert not psm.crc_ok
    assert [e.stream_type for e in psm.entries] == [0x24, 0x91]


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_no_psm_codec_sniffed(codec: str) -> None:
    ps, frames = _gb_stream(b"", vsid=0xE2, codec=codec)
    got, d = demux_all(ps)
    _same([f for f in got if f.kind == "video"], frames)
    assert {f.codec for f in got if f.kind == "audio"} == {"pcm_alaw"}
    assert d.statistics().guessed_audio == 1


def test_no_psm_aac_sniffed() -> None:
    frames = [adts(bytes([i + 1]) * 50) for i in range(5)]
    ps = b"".join(_pack() + _pes(0xC0, f, 100 * i) for i, f in enumerate(frames))
    got, d = demux_all(ps)
    assert [(f.codec, f.data, f.pts) for f in got] == [("aac", f, 100 * i) for i, f in enumerate(frames)]
    assert d.statistics().guessed_audio == 0


def test_svac_and_mpeg4_framed_by_pts() -> None:
    psm = ProgramStreamMap(
        entries=(PsmEntry(stream_type=0x80, stream_id=0xE0), PsmEntry(stream_type=0x10, stream_id=0xE1))
    ).serialize()
    ps = (
        _pack()
        + psm
        + _pes(0xE0, b"svac-1a", 0)
        + _pes(0xE0, b"svac-1b", None)
        + _pes(0xE1, b"\x00\x00\x01\xb6\x10x", 0)
    )
    ps += _pack() + _pes(0xE0, b"svac-2", 3600) + _pes(0xE1, b"\x00\x00\x01\xb6\x50y", 3600)
    got, _ = demux_all(ps)
    assert sorted((f.codec, f.data, f.pts, f.keyframe) for f in got) == [
        ("mpeg4", b"\x00\x00\x01\xb6\x10x", 0, True),
        ("mpeg4", b"\x00\x00\x01\xb6\x50y", 3600, False),
        ("svac", b"svac-1asvac-1b", 0, True),
        ("svac", b"svac-2", 3600, False),
    ]


def test_unknown_stream_type_dropped_and_counted() -> None:
    psm = ProgramStreamMap(entries=(PsmEntry(stream_type=0x02, stream_id=0xE0),)).serialize()
    got, d = demux_all(_pack() + psm + _pes(0xE0, b"\x00\x00\x01\xb3xx", 0))
    assert got == []
    assert d.statistics().unknown_streams == 1


def test_mpeg1_packs_and_directory_and_end_code() -> None:
    frames = video_stream("h264", 5)
    ps = b""
    for f in frames:
        ps += PackHeader(scr_base=f.dts or 0, mux_rate=100, mpeg1=True).serialize()
        ps += PesPacket(stream_id=0xE0, payload=f.data, pts=f.pts, mpeg1=True).serialize()
        ps += PesPacket(stream_id=0xBE, payload=b"\xff" * 10, mpeg1=True).serialize()
    ps += b"\x00\x00\x01\xff\x00\x02ab" + b"\x00\x00\x01\xb9"
    got, d = demux_all(ps)
    _same(got, frames)
    s = d.statistics()
    assert s.skipped_bytes == 0
    assert s.skipped_pes == 6
    assert s.packs == 5


def test_timestamps_unwrap_across_33_bits() -> None:
    start = (1 << 33) - 3 * 3600
    frames = [
        MediaFrame(codec="h264", data=f.data, pts=start + 3600 * i, dts=start + 3600 * i, keyframe=f.keyframe)
        for i, f in enumerate(video_stream("h264", 8))
    ]
    got, _ = demux_all(mux_all(frames))
    assert [f.pts for f in got] == [start + 3600 * i for i in range(8)]  # unwrapped, still increasing


def test_interleaved_audio_aac_and_video() -> None:
    frames = video_stream("h264", 12)
    audio = [
        MediaFrame(codec="aac", data=adts(bytes([i + 1]) * 30), pts=900 * i, dts=900 * i, keyframe=True)
        for i in range(40)
    ]
    merged = sorted(frames + audio, key=lambda f: (f.dts or 0))
    got, _ = demux_all(mux_all(merged, "h264", "aac"), [999] * 200)
    _same([f for f in got if f.kind == "video"], frames)
    _same([f for f in got if f.kind == "audio"], audio)


def test_oversized_frame_dropped_and_counted() -> None:
    frames = video_stream("h264", 12, big=True)
    d = PsDemuxer(max_frame_size=50_000)
    got = d.feed(mux_all(frames)) + d.flush()
    assert all(len(f.data) <= 50_000 for f in got)
    assert d.statistics().oversized_frames >= 1
    assert [f.data for f in got] == [f.data for f in frames if len(f.data) <= 50_000]


def test_trusted_fast_path_detects_unaligned_stream() -> None:
    # 40 aligned frames make the track trusted; then PES start packing two AUs: the sampled full scan must notice.
    rng = random.Random(9)
    aus = [h264_au(rng, 200, idr=i % 30 == 0) for i in range(120)]
    ps = _pack()
    for i, au in enumerate(aus[:40]):
        ps += _pes(0xE0, au, 3600 * i)
    for i in range(40, 120, 2):
        ps += _pes(0xE0, aus[i] + aus[i + 1], 3600 * i)
    got, _ = demux_all(ps)
    data = [f.data for f in got]
    # Until the sample catches it, pairs may come out merged; from then on they are split exactly.
    assert data[-20:] == aus[-20:]


# ----------------------------------------------------------------------------------------------- Hypothesis


@given(st.binary(max_size=3000))
def test_garbage_gives_frames_or_protocol_error(data: bytes) -> None:
    d = PsDemuxer()
    try:
        for f in d.feed(data) + d.feed(data[::-1]) + d.flush():
            assert isinstance(f, MediaFrame)
    except ProtocolError:
        pass


@given(st.binary(max_size=2000), st.integers(0, 60))
def test_garbage_inside_valid_stream(junk: bytes, where: int) -> None:
    ps = mux_all(video_stream("h264", 6))
    cut = len(ps) * where // 60
    d = PsDemuxer()
    frames = d.feed(ps[:cut] + junk + ps[cut:]) + d.flush()
    assert all(isinstance(f, MediaFrame) for f in frames)


@given(
    st.lists(
        st.tuples(st.integers(1, 150_000), st.integers(0, 9000), st.booleans(), st.integers(0, 3000)),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, (1 << 33) - 1),
)
def test_mux_demux_round_trip(specs: list[tuple[int, int, bool, int]], t0: int) -> None:
    rng = random.Random(len(specs))
    frames = []
    dts = t0
    for size, step, key, reorder in specs:
        dts += step
        au = h264_au(rng, size, idr=key)
        frames.append(MediaFrame(codec="h264", data=au, pts=dts + reorder, dts=dts, keyframe=key))
    audio = MediaFrame(codec="pcm_mulaw", data=b"\x7f" * 80, pts=t0, dts=t0, keyframe=True)
    got, _ = demux_all(mux_all([audio, *frames], "h264", "pcm_mulaw"))
    _same(got, [audio, *frames])


@given(
    st.integers(0, (1 << 33) - 1),
    st.integers(0, 299),
    st.integers(0, (1 << 22) - 1),
    st.integers(0, 7),
    st.booleans(),
)
def test_pack_header_round_trip(base: int, ext: int, rate: int, stuffing: int, mpeg1: bool) -> None:
    h = PackHeader(
        scr_base=base, scr_ext=0 if mpeg1 else ext, mux_rate=rate, stuffing_length=0 if mpeg1 else stuffing, mpeg1=mpeg1
    )
    raw = h.serialize()
    assert parse_pack_header(raw) == (h, len(raw))


@given(
    st.integers(0xC0, 0xEF),
    st.binary(max_size=300),
    st.none() | st.integers(0, (1 << 33) - 1),
    st.none() | st.integers(0, (1 << 33) - 1),
    st.booleans(),
    st.booleans(),
)
def test_pes_round_trip(sid: int, payload: bytes, pts: int | None, dts: int | None, align: bool, mpeg1: bool) -> None:
    if pts is None or dts == pts:
        dts = None
    p = PesPacket(stream_id=sid, payload=payload, pts=pts, dts=dts, data_alignment=align and not mpeg1, mpeg1=mpeg1)
    raw = p.serialize()
    assert parse_pes(raw) == (p, len(raw))


@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(0xC0, 0xEF), st.binary(max_size=20)), max_size=8),
    st.integers(0, 31),
    st.binary(max_size=30),
)
def test_psm_round_trip(entries: list[tuple[int, int, bytes]], version: int, info: bytes) -> None:
    psm = ProgramStreamMap(
        entries=tuple(PsmEntry(stream_type=t, stream_id=s, descriptors=d) for t, s, d in entries),
        version=version,
        program_info=info,
    )
    raw = psm.serialize()
    assert parse_psm(raw) == (psm, len(raw))


def test_zero_length_and_header_only_pes() -> None:
    # A PES that ends right after its length field, at the very end of the data (found by the fuzzer), or mid-stream.
    empty = b"\x00\x00\x01\xe0\x00\x00"
    for ps in (_pack() + empty, _pack() + empty + _pack(), _pack() + b"\x00\x00\x01\xc0\x00\x03\x80\x00\x00"):
        for chunks in (None, [1] * len(ps)):
            got, _ = demux_all(ps, chunks)
            assert got == []
