"""Streaming Annex-B splitting and emulation prevention.

The streaming splitter must agree with the one-shot `split_annexb` however the bytes are chunked: whole, byte by
byte, in random chunks, and with trailing data; garbage before the first start code is skipped and counted.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import RemoteProtocolError
from fluxkit.protocols.nalu import (
    DEFAULT_MAX_NAL_SIZE,
    AnnexBSplitter,
    escape_rbsp,
    split_annexb,
    unescape_rbsp,
)
from tests.mediagen import encode_annexb

SC3 = b"\x00\x00\x01"
SC4 = b"\x00\x00\x00\x01"
NALS = [b"\x67\x42\xc0\x1e\xda", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00\x00\x03\x01\x33", b"\x41\x9a\x02"]


def _feed_chunks(data: bytes, sizes: list[int]) -> tuple[list[bytes], AnnexBSplitter]:
    splitter = AnnexBSplitter()
    out: list[bytes] = []
    pos = 0
    for size in sizes:
        out += splitter.feed(data[pos : pos + size])
        pos += size
    out += splitter.feed(data[pos:])
    out += splitter.flush()
    return out, splitter


@pytest.mark.parametrize(
    ("rbsp", "nal_payload"),
    [
        (b"", b""),
        (b"\x00\x00\x00", b"\x00\x00\x03\x00"),
        (b"\x00\x00\x01", b"\x00\x00\x03\x01"),
        (b"\x00\x00\x02", b"\x00\x00\x03\x02"),
        (b"\x00\x00\x03", b"\x00\x00\x03\x03"),
        (b"\x00\x00\x04", b"\x00\x00\x04"),
        (b"\x00\x00", b"\x00\x00\x03"),  # an RBSP ending in 00 00 (cabac_zero_word) gets a final 03
        (b"\x00\x00\x00\x00", b"\x00\x00\x03\x00\x00\x03"),
        (b"\x11\x00\x00\x00\x00\x01", b"\x11\x00\x00\x03\x00\x00\x03\x01"),
        (b"\x00\x00\x0a\x00\x00\x01", b"\x00\x00\x0a\x00\x00\x03\x01"),
        (b"\x00\x00\n", b"\x00\x00\n"),  # `\Z`, not `$`: a trailing newline byte is not the end
    ],
)
def test_rbsp_golden(rbsp: bytes, nal_payload: bytes) -> None:
    assert escape_rbsp(rbsp) == nal_payload
    assert unescape_rbsp(nal_payload) == rbsp


def test_unescape_keeps_byte_after_epb() -> None:
    # The byte after an emulation-prevention byte restarts the zero count: 00 00 03 03 -> 00 00 03.
    assert unescape_rbsp(b"\x00\x00\x03\x03\x00\x00\x03\x00") == b"\x00\x00\x03\x00\x00\x00"
    assert unescape_rbsp(memoryview(b"\x00\x00\x03\x01")) == b"\x00\x00\x01"  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_rbsp_roundtrip(rbsp: bytes) -> None:
    escaped = escape_rbsp(rbsp)
    assert unescape_rbsp(escaped) == rbsp
    # An escaped payload never contains a start code or 00 00 00 (so it can be framed).
    assert b"\x00\x00\x01" not in escaped
    assert b"\x00\x00\x00" not in escaped
    assert b"\x00\x00\x02" not in escaped


@given(st.binary(max_size=200))
def test_unescape_garbage(data: bytes) -> None:
    assert len(unescape_rbsp(data)) <= len(data)


STREAM = SC4 + NALS[0] + SC4 + NALS[1] + b"\x00" + SC3 + NALS[2] + b"\x00\x00" + SC4 + NALS[3]


def test_splitter_whole() -> None:
    splitter = AnnexBSplitter()
    assert splitter.feed(STREAM) == NALS[:3]
    assert splitter.flush() == NALS[3:]
    assert splitter.skipped_bytes == 0
    assert splitter.flush() == []


def test_splitter_bytewise() -> None:
    out, splitter = _feed_chunks(STREAM, [1] * len(STREAM))
    assert out == NALS
    assert splitter.skipped_bytes == 0


def test_splitter_emits_on_next_start_code() -> None:
    splitter = AnnexBSplitter()
    assert splitter.feed(SC4 + NALS[0]) == []
    assert splitter.feed(b"\x00\x00") == []
    assert splitter.feed(b"\x00") == []
    assert splitter.feed(b"\x01") == [NALS[0]]  # the 4-byte start code arrived split in three chunks
    assert splitter.feed(NALS[1]) == []
    assert splitter.flush() == [NALS[1]]


@pytest.mark.parametrize(
    ("garbage", "skipped"),
    [(b"", 0), (b"\x00\x00\x00", 0), (b"\xff\x12\x34", 3), (b"\xff\x00\x00\x00", 1), (b"\x00\xff\x00", 2)],
)
def test_splitter_leading_garbage(garbage: bytes, skipped: int) -> None:
    for chunk in (len(garbage) + len(STREAM), 1, 2, 3):
        out, splitter = _feed_chunks(garbage + STREAM, [chunk] * ((len(garbage) + len(STREAM)) // chunk))
        assert out == NALS
        assert splitter.skipped_bytes == skipped


def test_splitter_no_start_code() -> None:
    splitter = AnnexBSplitter()
    assert splitter.feed(b"\x12" * 1000) == []
    assert len(splitter._buf) <= 2  # bounded while hunting for the first start code
    assert splitter.flush() == []
    assert splitter.skipped_bytes == 1000


def test_splitter_trailing_data() -> None:
    # Trailing bytes after the last start code are a NAL unit (the last one only ends at flush).
    out, _ = _feed_chunks(STREAM + SC3 + b"\x06\x05\x11", [7] * 5)
    assert out == [*NALS, b"\x06\x05\x11"]
    # Trailing zeros are framing.
    out, _ = _feed_chunks(STREAM + b"\x00\x00\x00\x00", [5] * 6)
    assert out == NALS


def test_splitter_max_nal_size() -> None:
    splitter = AnnexBSplitter(max_nal_size=10)
    assert splitter.feed(SC4 + b"\x65" + b"\x11" * 9 + SC4) == [b"\x65" + b"\x11" * 9]
    splitter.feed(b"\x65" + b"\x11" * 5)
    with pytest.raises(RemoteProtocolError):
        splitter.feed(b"\x22" * 10)
    # It resynchronises on the next start code.
    assert splitter.feed(b"\x33\x33" + SC3 + b"\x41\x9a" + SC3) == [b"\x41\x9a"]
    # A NAL unit completed within one chunk is checked too.
    with pytest.raises(RemoteProtocolError):
        AnnexBSplitter(max_nal_size=4).feed(SC3 + b"\x65\x01\x02\x03\x04\x05" + SC3)
    assert DEFAULT_MAX_NAL_SIZE >= 1 << 20


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_splitter_real_stream_random_chunks(codec: str) -> None:
    data = encode_annexb(codec, width=160, height=96, frames=20, gop=10)
    expected = split_annexb(data)
    rng = random.Random(7)
    for _ in range(5):
        sizes = [rng.choice([1, 2, 3, 5, 100, 1500, 4096]) for _ in range(len(data) // 50)]
        out, splitter = _feed_chunks(data, sizes)
        assert out == expected
        assert splitter.skipped_bytes == 0


@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=40))
def test_splitter_matches_split_annexb(data: bytes, sizes: list[int]) -> None:
    out, _ = _feed_chunks(data, sizes)
    assert out == split_annexb(data)


@given(st.lists(st.sampled_from(NALS), max_size=10), st.lists(st.sampled_from([SC3, SC4, b"\x00" + SC4]), min_size=10))
def test_splitter_roundtrip(nals: list[bytes], codes: list[bytes]) -> None:
    stream = b"".join(code + nal for code, nal in zip(codes, nals, strict=False))
    out, _ = _feed_chunks(stream, [3] * (len(stream) // 3))
    assert out == nals
