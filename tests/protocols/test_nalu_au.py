"""Access-unit assembly and the parameter-set store.

Hand-built NAL sequences check each splitting rule of H.264 7.4.1.2.3 / H.265 7.4.2.4.4 and the parameter-set
insertion; generated streams check that assembly agrees with `find_au_start` and with `split_annexb`, and
Hypothesis feeds garbage NAL units.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.nalu import (
    DEFAULT_MAX_AU_SIZE,
    AccessUnit,
    AccessUnitAssembler,
    ParameterSets,
    find_au_start,
    split_annexb,
)
from tests.mediagen import encode_annexb

# H.264
SPS = bytes.fromhex("67640020acd940c029b011000003000100000300320f183196")  # avatar.h264, id 0
SPS1 = bytes.fromhex("6742c00dda0507e840000003004000000c83c50aa8")  # id 0 too (a newer one)
PPS = bytes.fromhex("68ebecb22c")  # id 0
PPS1 = b"\x68\x5e\x3c\x80"  # ue '010' -> pic_parameter_set_id 1
AUD = b"\x09\xf0"
SEI = b"\x06\x05\x01\x11\x80"
IDR = b"\x65\x88\x84\x00\x33"  # first_mb_in_slice 0
IDR_2 = b"\x65\x20\x84\x00\x33"  # second slice of the same picture (first_mb_in_slice 1)
P = b"\x41\x9a\x21\x6c"
P_2 = b"\x41\x20\x11\x22"
EOS = b"\x0a"

# H.265
VPS = bytes.fromhex("40010c01ffff01600000030090000003000003003f959809")
HSPS = bytes.fromhex("42010101600000030090000003000003003fa00602014165959a4932bc05a708000003000800000300c840")
HPPS = bytes.fromhex("4401c172b46240")
PREFIX_SEI = b"\x4e\x01\x05\x01\x11\x80"
SUFFIX_SEI = b"\x50\x01\x05\x01\x11\x80"
HAUD = b"\x46\x01\x50"
IRAP = b"\x26\x01\xaf\x11"  # IDR_W_RADL, first_slice_segment_in_pic_flag 1
IRAP_2 = b"\x26\x01\x2f\x11"  # a later slice segment of the same picture
TRAIL = b"\x02\x01\xd0\x11"
TRAIL_2 = b"\x02\x01\x50\x11"
TRAIL_N = b"\x00\x01\xd0\x11"


def _assemble(codec: str, nals: list[bytes], **kwargs: bool) -> list[AccessUnit]:
    asm = AccessUnitAssembler(codec, **kwargs)  # type: ignore[arg-type]
    out: list[AccessUnit] = []
    for nal in nals:
        out += asm.feed(nal)
    return out + asm.flush()


def test_h264_rules() -> None:
    aus = _assemble("h264", [SPS, PPS, SEI, IDR, IDR_2, P, P_2, SEI, P, AUD, P, EOS, IDR])
    assert [au.nals for au in aus] == [
        (SPS, PPS, SEI, IDR, IDR_2),
        (P, P_2),
        (SEI, P),  # an SEI after a VCL unit opens the next access unit
        (AUD, P, EOS),  # end of sequence closes, never opens
        (SPS, PPS, IDR),  # parameter sets put in front of the IDR that lacked them
    ]
    assert [au.keyframe for au in aus] == [True, False, False, False, True]
    assert aus[0].nal_types == (7, 8, 6, 5, 5)
    assert aus[0].annexb == b"".join(b"\x00\x00\x00\x01" + n for n in aus[0].nals)
    assert aus[0].size == len(aus[0].annexb)
    assert aus[0].codec == "h264"


def test_h265_rules() -> None:
    aus = _assemble(
        "hevc",
        [VPS, HSPS, HPPS, PREFIX_SEI, IRAP, IRAP_2, SUFFIX_SEI, TRAIL, TRAIL_2, TRAIL_N, HAUD, TRAIL, PREFIX_SEI, IRAP],
    )
    assert [au.nals for au in aus] == [
        (VPS, HSPS, HPPS, PREFIX_SEI, IRAP, IRAP_2, SUFFIX_SEI),
        (TRAIL, TRAIL_2),
        (TRAIL_N,),
        (HAUD, TRAIL),
        (VPS, HSPS, HPPS, PREFIX_SEI, IRAP),
    ]
    assert [au.keyframe for au in aus] == [True, False, False, False, True]
    assert aus[2].nal_types == (0,)
    assert aus[0].codec == aus[0].codec == "hevc"
    assert _assemble("h265", [IRAP])[0].codec == "hevc"


def test_h265_other_layers_do_not_split() -> None:
    layer1_sps = b"\x42\x09" + HSPS[2:]  # nuh_layer_id 1
    layer1_slice = b"\x02\x09\xd0\x11"
    aus = _assemble("hevc", [TRAIL, layer1_sps, layer1_slice, TRAIL])
    assert [au.nals for au in aus] == [(TRAIL, layer1_sps, layer1_slice), (TRAIL,)]


def test_insert_parameter_sets_after_aud_and_keep_own() -> None:
    aus = _assemble("h264", [SPS, PPS, PPS1, IDR, P, AUD, SEI, IDR, AUD, SPS1, IDR])
    assert aus[1].nals == (P,)
    assert aus[2].nals == (AUD, SPS, PPS, PPS1, SEI, IDR)  # the AUD stays first
    assert aus[3].nals == (AUD, SPS1, PPS, PPS1, IDR)  # its own (newer) SPS wins; the PPS come from the store
    aus = _assemble("h264", [SPS, PPS, IDR, IDR], insert_parameter_sets=False)
    assert aus[1].nals == (IDR,)
    # A non-key picture never gets parameter sets.
    assert _assemble("h264", [SPS, PPS, P, P])[1].nals == (P,)
    # Nothing stored yet: the IDR goes out as it came.
    assert _assemble("hevc", [IRAP])[0].nals == (IRAP,)


def test_timestamps_are_the_first_given() -> None:
    asm = AccessUnitAssembler("h264")
    assert asm.feed(SPS) == []
    assert asm.feed(PPS, pts=100, dts=90) == []
    assert asm.feed(IDR, pts=200, dts=190) == []
    (au,) = asm.feed(P, pts=3600)
    assert (au.pts, au.dts) == (100, 90)
    (au,) = asm.flush()
    assert (au.pts, au.dts) == (3600, None)


def test_non_vcl_without_picture_is_dropped() -> None:
    asm = AccessUnitAssembler("h264")
    assert asm.feed(SEI) == []
    assert asm.feed(AUD) == []  # the AUD must come first: the stray SEI is dropped
    assert asm.dropped_nals == 1
    assert asm.feed(P) == []
    assert asm.feed(SPS) == [AccessUnit(codec="h264", nals=(AUD, P), keyframe=False)]
    assert asm.flush() == []
    assert asm.dropped_nals == 2
    assert asm.feed(b"") == []


def test_max_au_size() -> None:
    asm = AccessUnitAssembler("h264", max_au_size=20)
    asm.feed(IDR)
    with pytest.raises(RemoteProtocolError):
        asm.feed(IDR_2 + b"\x55" * 20)
    assert asm.dropped_nals == 2
    # It recovers with the next access unit.
    assert asm.feed(P) == []
    assert len(asm.flush()) == 1
    assert DEFAULT_MAX_AU_SIZE >= 1 << 20


def test_unknown_codec() -> None:
    with pytest.raises(LocalProtocolError):
        AccessUnitAssembler("vp8")
    with pytest.raises(LocalProtocolError):
        ParameterSets("av1")


def test_parameter_sets_store() -> None:
    ps = ParameterSets("h264")
    assert not ps.complete
    assert ps.sps_info() is None
    assert ps.update(SPS)
    assert ps.update(PPS1)
    assert ps.update(PPS)
    assert not ps.update(IDR)
    assert not ps.update(b"")
    assert ps.complete
    assert ps.nals() == [SPS, PPS, PPS1]
    assert dict(ps.pps) == {0: PPS, 1: PPS1}
    assert ps.vps == {}
    info = ps.sps_info()
    assert info is not None
    assert (info.width, info.height) == (768, 320)
    assert ps.update(SPS1)  # same id: replaces
    assert ps.nals() == [SPS1, PPS, PPS1]
    assert ps.update(b"\x67\x64")  # truncated: counted, not stored
    assert ps.rejected == 1
    ps.clear()
    assert ps.nals() == []

    hps = ParameterSets("hevc")
    for nal in (HPPS, HSPS, VPS):
        assert hps.update(nal)
    assert hps.complete
    assert hps.nals() == [VPS, HSPS, HPPS]
    assert not hps.update(IRAP)
    hps.update(b"\x42\x01\x01\x60")  # garbage SPS: rejected, still "a parameter set"
    assert hps.rejected == 1
    hps._sps[0] = b"\x42\x01"  # an unparseable stored SPS gives no info
    assert hps.sps_info() is None


def _au_starts(codec: str, data: bytes) -> list[int]:
    """Offsets of the access units by find_au_start, merging a run of openers that precede one picture."""
    starts: list[int] = []
    i = find_au_start(codec, data)
    seen_vcl = True
    while i >= 0:
        p = data.find(b"\x00\x00\x01", i) + 3
        t = data[p] & 0x1F if codec == "h264" else (data[p] >> 1) & 0x3F
        if seen_vcl:
            starts.append(i)
        seen_vcl = 1 <= t <= 5 if codec == "h264" else t < 32
        i = find_au_start(codec, data, p)
    return starts


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("bframes", [0, 3])
def test_generated_streams_agree_with_find_au_start(codec: str, bframes: int) -> None:
    data = encode_annexb(codec, width=192, height=108, frames=30, gop=10, bframes=bframes)
    aus = _assemble(codec, split_annexb(data), insert_parameter_sets=False)
    assert len(aus) == 30
    assert sum(au.keyframe for au in aus) == 3
    starts = _au_starts(codec, data)
    pieces = [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]
    assert [split_annexb(p) for p in pieces] == [list(au.nals) for au in aus]
    assert b"".join(au.annexb for au in aus) == b"".join(b"\x00\x00\x00\x01" + n for n in split_annexb(data))


def test_find_au_start_in_a_pes_like_payload() -> None:
    """A payload holding the tail of one frame and the start of the next, as a PS demuxer sees it."""
    data = encode_annexb("h264", width=192, height=108, frames=10, gop=5)
    aus = _assemble("h264", split_annexb(data), insert_parameter_sets=False)
    first, second = aus[3].annexb, aus[4].annexb  # a P frame, then the IDR with its parameter sets
    tail = first[len(first) // 2 :]
    payload = tail + second
    cut = find_au_start("h264", payload)
    assert payload[cut:] == second
    # The same with 3-byte start codes and a zero_byte-less join.
    second3 = b"".join(b"\x00\x00\x01" + n for n in aus[4].nals)
    assert find_au_start("h264", tail + second3) == len(tail)


@given(st.lists(st.binary(max_size=12), max_size=30), st.sampled_from(["h264", "hevc"]))
def test_garbage_nals(nals: list[bytes], codec: str) -> None:
    asm = AccessUnitAssembler(codec, max_au_size=100)
    total = 0
    for nal in nals:
        with contextlib.suppress(ProtocolError):
            total += len(asm.feed(nal))
    total += len(asm.flush())
    assert total <= len(nals)


@given(
    st.lists(
        st.sampled_from([SPS, SPS1, PPS, PPS1, AUD, SEI, IDR, IDR_2, P, P_2, EOS]),
        max_size=30,
    )
)
def test_assembly_preserves_nals(nals: list[bytes]) -> None:
    """Without insertion every NAL unit comes out once, in order (minus dropped picture-less units)."""
    asm = AccessUnitAssembler("h264", insert_parameter_sets=False)
    out: list[bytes] = []
    for nal in nals:
        for au in asm.feed(nal):
            out += au.nals
    for au in asm.flush():
        out += au.nals
    assert len(out) + asm.dropped_nals == len(nals)
