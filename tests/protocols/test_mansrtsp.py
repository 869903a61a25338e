"""MANSRTSP playback control (GB/T 28181-2016 Appendix B): the bodies of the reference table as golden vectors,
the device's response, Scale/Range validation both ways, tolerance (LF, case, extra headers), round trips and
garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.manscdp import MansrtspRequest, MansrtspResponse, parse_mansrtsp

GOLDEN = [
    (b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: npt=now-\r\n", MansrtspRequest.play(1)),  # resume
    (b"PAUSE RTSP/1.0\r\nCSeq: 2\r\nPauseTime: now\r\n", MansrtspRequest.pause(2)),
    (b"PLAY RTSP/1.0\r\nCSeq: 3\r\nScale: 2.0\r\n", MansrtspRequest.play(3, scale=2.0)),  # speed, no Range
    (b"PLAY RTSP/1.0\r\nCSeq: 4\r\nScale: -0.5\r\n", MansrtspRequest.play(4, scale=-0.5)),  # reverse
    (b"PLAY RTSP/1.0\r\nCSeq: 5\r\nRange: npt=100-\r\n", MansrtspRequest.play(5, seek=100)),  # seek, no Scale
    (
        b"PLAY RTSP/1.0\r\nCSeq: 6\r\nRange: npt=12.5-60\r\n",
        MansrtspRequest(method="PLAY", cseq=6, npt_start=12.5, npt_end=60),
    ),
    (b"TEARDOWN RTSP/1.0\r\nCSeq: 7\r\n", MansrtspRequest.teardown(7)),
    (
        b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nRTP-Info: seq=1234;rtptime=5678\r\n",
        MansrtspResponse(status_code=200, reason="OK", cseq=3, rtp_info="seq=1234;rtptime=5678"),
    ),
    (b"RTSP/1.0 400 Bad Request\r\nCSeq: 8\r\n", MansrtspResponse(status_code=400, reason="Bad Request", cseq=8)),
]


@pytest.mark.parametrize(("data", "message"), GOLDEN)
def test_golden(data: bytes, message: MansrtspRequest | MansrtspResponse) -> None:
    assert parse_mansrtsp(data) == message
    assert parse_mansrtsp(data.decode()) == message
    assert message.serialize() == data


@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0, 2.0, 4.0, -0.25, -1.0, -4.0])
def test_required_scales(scale: float) -> None:
    request = MansrtspRequest.play(1, scale=scale)
    assert parse_mansrtsp(request.serialize()) == request


@pytest.mark.parametrize("scale", [0.0, 0.2, 8.0, -5.0, float("nan"), float("inf")])
def test_out_of_range_scale(scale: float) -> None:
    with pytest.raises(LocalProtocolError):
        MansrtspRequest.play(1, scale=scale).serialize()
    with pytest.raises(ParseError):
        parse_mansrtsp(f"PLAY RTSP/1.0\r\nCSeq: 1\r\nScale: {scale}\r\n".encode())


def test_tolerant_parsing() -> None:
    data = b"\r\nplay RTSP/1.0\ncseq:  9 \nscale: 2\nX-Vendor: 1\n\n"
    request = parse_mansrtsp(data)
    assert request == MansrtspRequest(method="PLAY", cseq=9, scale=2.0, headers=(("X-Vendor", "1"),))
    assert request.serialize() == b"PLAY RTSP/1.0\r\nCSeq: 9\r\nScale: 2.0\r\nX-Vendor: 1\r\n"
    # Some platforms put a URI or MANSRTSP/1.0 in the start line.
    assert parse_mansrtsp(b"PLAY rtsp://x MANSRTSP/1.0\r\nCSeq: 1\r\n").version == "MANSRTSP/1.0"  # type: ignore[union-attr]
    response = parse_mansrtsp(b"RTSP/1.0 200\r\nCSeq: 1\r\nSession: 1\r\n")
    assert response == MansrtspResponse(status_code=200, reason="", cseq=1, headers=(("Session", "1"),))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"GET RTSP/1.0\r\nCSeq: 1\r\n",
        b"PLAY HTTP/1.1\r\nCSeq: 1\r\n",
        b"PLAY RTSP/1.0\r\n",  # no CSeq
        b"PLAY RTSP/1.0\r\nCSeq: x\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nno colon\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\n: empty name\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nScale: fast\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: clock=20240101T000000Z-\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: npt=100\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: npt=-5-\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: npt=5--1\r\n",
        b"PLAY RTSP/1.0\r\nCSeq: 1\r\nRange: npt=inf-\r\n",
        b"RTSP/1.0 2000 OK\r\n",
        b"RTSP/1.0 OK\r\n",
        b"RTSP/1.0 200 OK\r\nCSeq: -1\r\n",
        "PLAY RTSP/1.0\r\nCSeq: 1\r\nX: é\r\n".encode(),
    ],
)
def test_parse_errors(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_mansrtsp(data)


def test_size_limit() -> None:
    with pytest.raises(ParseError):
        parse_mansrtsp(b"PLAY RTSP/1.0\r\nCSeq: 1\r\n" + b"X: y\r\n" * 1000)
    with pytest.raises(ParseError):
        parse_mansrtsp("PLAY RTSP/1.0\r\nCSeq: 1\r\nX: é\r\n")


@pytest.mark.parametrize(
    "request_",
    [
        MansrtspRequest(method="PLAY", cseq=-1),
        MansrtspRequest(method="GET", cseq=1),  # type: ignore[arg-type]
        MansrtspRequest(method="PLAY", cseq=1, npt_start=-1.0),
        MansrtspRequest(method="PLAY", cseq=1, npt_start=1.0, npt_end=float("nan")),
        MansrtspRequest(method="PLAY", cseq=1, npt_end=5.0),
        MansrtspRequest(method="PLAY", cseq=1, headers=(("X", "é"),)),
    ],
)
def test_serialize_errors(request_: MansrtspRequest) -> None:
    with pytest.raises(LocalProtocolError):
        request_.serialize()


def test_builder_errors() -> None:
    with pytest.raises(LocalProtocolError):
        MansrtspRequest.play(1, scale=2.0, seek=10)
    with pytest.raises(LocalProtocolError):
        MansrtspResponse(status_code=20, reason="x").serialize()
    with pytest.raises(LocalProtocolError):
        MansrtspResponse(status_code=200, reason="é").serialize()


header = st.tuples(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=8).filter(
        lambda n: n.lower() not in ("cseq", "scale", "range", "pausetime", "rtp-info")
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=;.", max_size=12),
)
requests = st.builds(
    MansrtspRequest,
    method=st.sampled_from(["PLAY", "PAUSE", "TEARDOWN"]),
    cseq=st.integers(0, 2**32 - 1),
    scale=st.none() | st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]).flatmap(lambda s: st.sampled_from([s, -s])),
    npt_start=st.none() | st.just("now") | st.integers(0, 10**6).map(float) | st.sampled_from([0.5, 12.25]),
    pause_time=st.none() | st.just("now"),
    headers=st.lists(header, max_size=3).map(tuple),
)
responses = st.builds(
    MansrtspResponse,
    status_code=st.integers(100, 999),
    reason=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ ", max_size=12).map(str.strip),
    cseq=st.none() | st.integers(0, 2**32 - 1),
    rtp_info=st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=;", min_size=1, max_size=20),
    headers=st.lists(header, max_size=3).map(tuple),
)


@given(requests | responses)
def test_round_trip(message: MansrtspRequest | MansrtspResponse) -> None:
    assert parse_mansrtsp(message.serialize()) == message


@given(st.binary(max_size=200))
def test_garbage(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_mansrtsp(data)
