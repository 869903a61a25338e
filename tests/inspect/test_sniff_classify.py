"""File-type sniffing and RTP payload classification."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import ParseError
from fluxkit.inspect import sniff
from fluxkit.inspect._classify import classify_payloads, strong_evidence
from fluxkit.inspect._streams import _Unwrapper
from tests.inspect import capgen, media
from tests.mediagen import encode_annexb


def test_capture_magics() -> None:
    assert sniff(capgen.pcap_file([], 1)) == "pcap"
    assert sniff(capgen.pcap_file([], 1, order=">", nano=True)) == "pcap"
    assert sniff(capgen.shb(order=">")) == "pcapng"


def test_program_stream() -> None:
    ps = media.ps_file(frames=5, gop=5)
    assert sniff(ps) == "mpeg-ps"
    assert sniff(b"junk before the first pack" + ps) == "mpeg-ps"


def test_rfc4571_dump_even_when_it_carries_ps() -> None:
    packets, _ = media.ps_rtp(frames=5, gop=5)
    assert sniff(media.rfc4571(packets)) == "rtp"
    assert sniff(media.rfc4571(media.video_rtp(frames=5, gop=5))) == "rtp"
    assert sniff(media.rfc4571(media.video_rtp(frames=1, gop=1)[:1])) == "rtp"  # a single whole frame


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_annexb_by_content(codec: str) -> None:
    stream = encode_annexb(codec, frames=3, gop=3)
    assert sniff(stream, "camera.bin") == codec
    assert sniff(b"\x00\x00" + stream, "x") == codec  # leading_zero_8bits


@pytest.mark.parametrize(
    ("name", "codec"), [("a.h264", "h264"), ("a.264", "h264"), ("A.H265", "hevc"), ("a.hevc", "hevc")]
)
def test_annexb_extension_decides(name: str, codec: str) -> None:
    assert sniff(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x41\x9a", name) == codec


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x00" * 100_000,
        b"hello world\n" * 100,
        random.Random(2).randbytes(65536),
        b"garbage\x00\x00\x01\x67\x42",  # bytes other than zeros before the start code
        b"\x00\x00\x01\xff\xff\x00\x00\x01\x80\x80",  # forbidden bits set: neither codec
    ],
)
def test_not_media(head: bytes) -> None:
    with pytest.raises(ParseError, match="not a recognised media file"):
        sniff(head, "file.dat")


@given(st.binary(max_size=3000), st.sampled_from(["x.h264", "x.bin", "x.pcap", ""]))
def test_sniff_garbage_only_parse_error(data: bytes, name: str) -> None:
    with contextlib.suppress(ParseError):
        assert sniff(data, name) in {"pcap", "pcapng", "mpeg-ps", "rtp", "h264", "hevc"}


@pytest.mark.parametrize("codec", ["h264", "hevc"])
@pytest.mark.parametrize("pt", [96, 98, 99])
def test_classify_video(codec: str, pt: int) -> None:
    packets = media.video_rtp(codec, pt=pt, mtu=300)
    payloads = [p.payload for p in packets]
    assert strong_evidence(payloads[0]) == codec  # parameter sets first
    # Without the parameter-set packets, the per-packet header checks still decide.
    rest = [p for p in payloads if strong_evidence(p) is None]
    assert classify_payloads(pt, rest[5:40]) == codec


def test_classify_ps_mid_stream() -> None:
    packets, groups = media.ps_rtp(frames=10, gop=5)
    assert strong_evidence(packets[0].payload) == "ps"
    assert classify_payloads(96, [packets[g[0]].payload for g in groups]) == "ps"


def test_classify_ties_and_unknown() -> None:
    both = [b"\x28\x01" + bytes([i]) * 20 for i in range(30)]  # H.264 PPS (NRI 1), and H.265 IDR_N_LP TID 1
    assert classify_payloads(99, both) == "hevc"
    assert classify_payloads(98, both) == "h264"
    rnd = random.Random(5)
    assert classify_payloads(96, [rnd.randbytes(200) for _ in range(30)]) == "unknown"
    assert classify_payloads(96, []) == "unknown"


def test_unwrapper() -> None:
    u = _Unwrapper(32)
    assert [u(t) for t in (0xFFFFFF00, 0x10, 0xFFFFFFF0, 0x20)] == [0xFFFFFF00, 0x100000010, 0xFFFFFFF0, 0x100000020]
    u = _Unwrapper(33)
    assert u(5) == 5
    assert u((1 << 33) - 5) == -5
