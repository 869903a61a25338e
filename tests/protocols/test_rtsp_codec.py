"""RTSP message codec and header values: golden camera replies, stream feeding, limits, round trips, garbage.

The golden replies are written in the shapes real cameras send (Hikvision, Dahua, Axis, GStreamer's server,
a budget camera with LF-only line ends): every one is parsed, checked, re-serialized and parsed again. The reader
is fed each stream whole, byte by byte, in random chunks and with trailing data, with interleaved `$` frames mixed
between the messages.
"""

from __future__ import annotations

import contextlib
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.rtsp import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Headers,
    InterleavedData,
    MessageReader,
    RtpInfo,
    RtspRange,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    Transport,
    parse_message,
    parse_public,
    parse_range,
    parse_rtp_info,
    parse_session,
    parse_transport,
    serialize_rtp_info,
)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


HIK_SDP = crlf(
    "v=0\n"
    "o=- 1704709269385014 1704709269385014 IN IP4 192.168.1.64\n"
    "s=Media Presentation\n"
    "e=NONE\n"
    "b=AS:5100\n"
    "t=0 0\n"
    "a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\n"
    "m=video 0 RTP/AVP 96\n"
    "c=IN IP4 0.0.0.0\n"
    "b=AS:5000\n"
    "a=recvonly\n"
    "a=x-dimensions:1920,1080\n"
    "a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1\n"
    "a=rtpmap:96 H264/90000\n"
    "a=fmtp:96 profile-level-id=420029; packetization-mode=1; "
    "sprop-parameter-sets=Z01AKI2NQDwBE/LgLcBAQFAAAD6AAAw1CEAA,aO44gA==\n"
    "m=application 0 RTP/AVP 107\n"
    "c=IN IP4 0.0.0.0\n"
    "b=AS:50\n"
    "a=recvonly\n"
    "a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=3\n"
    "a=rtpmap:107 isapi.metadata/90000\n"
)

HIK_401 = crlf(
    "RTSP/1.0 401 Unauthorized\n"
    "CSeq: 2\n"
    'WWW-Authenticate: Digest realm="IP Camera(C6498)", nonce="6b9a455aec675b8db81a9ceb802e4eb8", stale="FALSE"\n'
    'WWW-Authenticate: Basic realm="IP Camera(C6498)"\n'
    "Date:  Mon, Jan 08 2024 10:21:09 GMT\n"
    "\n"
)
HIK_DESCRIBE = (
    crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 3\n"
        "Content-Type: application/sdp\n"
        "Content-Base: rtsp://192.168.1.64:554/Streaming/Channels/101/\n"
        f"Content-Length: {len(HIK_SDP)}\n"
        "\n"
    )
    + HIK_SDP
)
HIK_SETUP = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 4\n"
    "Session:       1273222592;timeout=60\n"
    'Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1d4d8a5c;mode="play"\n'
    "Date:  Mon, Jan 08 2024 10:21:09 GMT\n"
    "\n"
)
HIK_PLAY = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 5\n"
    "Session:       1273222592\n"
    "RTP-Info: url=rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1;seq=50412;rtptime=2905187862\n"
    "Date:  Mon, Jan 08 2024 10:21:09 GMT\n"
    "\n"
)

DAHUA_SDP = crlf(
    "v=0\n"
    "o=- 2229913043 2229913043 IN IP4 0.0.0.0\n"
    "s=Media Server\n"
    "c=IN IP4 0.0.0.0\n"
    "t=0 0\n"
    "a=control:*\n"
    "a=packetization-supported:DH\n"
    "a=rtppayload-supported:DH\n"
    "a=range:npt=now-\n"
    "m=video 0 RTP/AVP 96\n"
    "a=control:trackID=0\n"
    "a=framerate:25.000000\n"
    "a=rtpmap:96 H265/90000\n"
    "a=fmtp:96 profile-id=1;sprop-sps=QgEBAWAAAAMAsAAAAwAAAwB4oAPAgBDlja5JMvTcBAQEAg==;sprop-pps=RAHA8vA8kA==;"
    "sprop-vps=QAEMAf//AWAAAAMAsAAAAwAAAwB4rAk=\n"
    "a=recvonly\n"
    "m=audio 0 RTP/AVP 8\n"
    "a=control:trackID=1\n"
    "a=rtpmap:8 PCMA/8000\n"
    "a=recvonly\n"
)
DAHUA_OPTIONS = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 2\n"
    "Server: Rtsp Server/3.0\n"
    "Public: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER, REDIRECT, "
    "RECORD\n"
    "\n"
)
DAHUA_DESCRIBE = (
    crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 4\n"
        "x-Accept-Dynamic-Rate: 1\n"
        "Content-Base: rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/\n"
        "Cache-Control: must-revalidate\n"
        f"Content-Length: {len(DAHUA_SDP)}\n"
        "Content-Type: application/sdp\n"
        "\n"
    )
    + DAHUA_SDP
)
DAHUA_SETUP = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 5\n"
    "Session: 1185432685;timeout=60\n"
    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=6B8B4567;\n"
    "x-Dynamic-Rate: 1\n"
    "\n"
)
# Dahua answers PLAY with relative URLs in RTP-Info and an empty rtptime on the audio track.
DAHUA_PLAY = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 7\n"
    "Session: 1185432685\n"
    "Range: npt=0.000000-\n"
    "RTP-Info: url=trackID=0;seq=43123;rtptime=1924145170,url=trackID=1;seq=11264;rtptime=\n"
    "\n"
)

AXIS_SDP = crlf(
    "v=0\n"
    "o=- 1234 1 IN IP4 192.168.0.90\n"
    "s=Session streamed with GStreamer\n"
    "i=rtsp-server\n"
    "t=0 0\n"
    "a=tool:GStreamer\n"
    "a=type:broadcast\n"
    "a=range:npt=now-\n"
    "a=control:rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264\n"
    "m=video 0 RTP/AVP 96\n"
    "c=IN IP4 0.0.0.0\n"
    "b=AS:50000\n"
    "a=rtpmap:96 H264/90000\n"
    "a=fmtp:96 packetization-mode=1;profile-level-id=4d0029;"
    "sprop-parameter-sets=Z00AKeKQDwBE/LgLcBAQFAAAD6AAAw1CEAA=,aO48gA==\n"
    "a=ts-refclk:local\n"
    "a=mediaclk:sender\n"
    "a=recvonly\n"
    "a=control:rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264\n"
    "a=framerate:30.000000\n"
)
AXIS_DESCRIBE = (
    crlf(
        "RTSP/1.0 200 OK\n"
        "CSeq: 3\n"
        "Content-Type: application/sdp\n"
        "Content-Base: rtsp://192.168.0.90/axis-media/media.amp/\n"
        "Server: GStreamer RTSP server\n"
        "Date: Mon, 08 Jan 2024 10:21:09 GMT\n"
        f"Content-Length: {len(AXIS_SDP)}\n"
        "\n"
    )
    + AXIS_SDP
)
# Axis firmware sends a 64-bit-looking rtptime on some models: read as "absent", not an error.
AXIS_PLAY = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 5\n"
    "Session: 0F2A8C61;timeout=60\n"
    "Range: npt=now-\n"
    "RTP-Info: url=rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264;seq=13086;rtptime=18446744071562067968\n"
    "Server: GStreamer RTSP server\n"
    "\n"
)
# A budget camera: LF-only line ends, no Content-Type, a vendor header, Transport parameters out of order.
CHEAP_SDP = (
    b"v=0\no=- 0 0 IN IP4 10.0.0.2\ns=cam\nt=0 0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\na=control:track1\n"
)
CHEAP_DESCRIBE = (
    b"RTSP/1.0 200 OK\nCSeq: 3\nX-Vendor-Id: ACME-42\nContent-Length: "
    + str(len(CHEAP_SDP)).encode()
    + b"\n\n"
    + CHEAP_SDP
)
CHEAP_SETUP = b"RTSP/1.0 200 OK\nCSeq: 4\nTransport: mode=PLAY;interleaved=0-1;unicast;RTP/AVP/TCP\nSession: 77\n\n"
# GStreamer's own replies, as captured in the interop run.
GST_SETUP = crlf(
    "RTSP/1.0 200 OK\n"
    "CSeq: 4\n"
    'Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=A0FF363C;mode="PLAY"\n'
    "Server: GStreamer RTSP server\n"
    "Session: .L4zWCxO5nrRRkW8\n"
    "Date: Fri, 27 Nov 2026 22:10:28 GMT\n"
    "\n"
)
FFMPEG_SETUP_REQUEST = crlf(
    "SETUP rtsp://127.0.0.1:8554/test/stream=0 RTSP/1.0\n"
    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\n"
    "CSeq: 3\n"
    "User-Agent: Lavf59.27.100\n"
    "\n"
)

GOLDEN = [
    HIK_401,
    HIK_DESCRIBE,
    HIK_SETUP,
    HIK_PLAY,
    DAHUA_OPTIONS,
    DAHUA_DESCRIBE,
    DAHUA_SETUP,
    DAHUA_PLAY,
    AXIS_DESCRIBE,
    AXIS_PLAY,
    CHEAP_DESCRIBE,
    CHEAP_SETUP,
    GST_SETUP,
    FFMPEG_SETUP_REQUEST,
]


# -- golden messages --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", GOLDEN)
def test_golden_parse_serialize_parse(data: bytes) -> None:
    message = parse_message(data)
    again = parse_message(message.serialize())
    assert again == message
    if data.count(b"\r\n") >= data.count(b"\n"):
        # CRLF inputs re-serialize byte for byte, but for the white space after each header colon.
        head, sep, body = data.partition(b"\r\n\r\n")
        assert message.serialize() == re.sub(rb"^([^:\r\n]+): +", rb"\1: ", head, flags=re.M) + sep + body


def test_golden_hikvision_details() -> None:
    challenge = parse_message(HIK_401)
    assert isinstance(challenge, RtspResponse)
    assert (challenge.status_code, challenge.reason, challenge.cseq) == (401, "Unauthorized", 2)
    assert len(challenge.headers.get_all("www-authenticate")) == 2
    describe = parse_message(HIK_DESCRIBE)
    assert describe.body == HIK_SDP
    assert describe.headers.get("content-base") == "rtsp://192.168.1.64:554/Streaming/Channels/101/"
    setup = parse_message(HIK_SETUP)
    session = parse_session(setup.headers.get("Session") or "")
    assert session == SessionHeader(session_id="1273222592", timeout=60)
    (transport,) = parse_transport(setup.headers.get("Transport") or "")
    assert transport.is_tcp
    assert transport.interleaved == (0, 1)
    assert transport.ssrc == 0x1D4D8A5C
    assert transport.mode == "play"
    play = parse_message(HIK_PLAY)
    (info,) = parse_rtp_info(play.headers.get("RTP-Info") or "")
    assert info == RtpInfo(
        url="rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1", seq=50412, rtptime=2905187862
    )


def test_golden_dahua_details() -> None:
    options = parse_message(DAHUA_OPTIONS)
    assert "GET_PARAMETER" in parse_public(options.headers.get("Public") or "")
    setup = parse_message(DAHUA_SETUP)
    (transport,) = parse_transport(setup.headers.get("Transport") or "")  # trailing ';' tolerated
    assert transport.ssrc == 0x6B8B4567
    play = parse_message(DAHUA_PLAY)
    infos = parse_rtp_info(play.headers.get("RTP-Info") or "")
    assert infos == [
        RtpInfo(url="trackID=0", seq=43123, rtptime=1924145170),
        RtpInfo(url="trackID=1", seq=11264, rtptime=None),
    ]
    assert parse_range(play.headers.get("Range") or "").start_seconds == 0.0


def test_golden_axis_and_cheap_camera() -> None:
    play = parse_message(AXIS_PLAY)
    (info,) = parse_rtp_info(play.headers.get("RTP-Info") or "")
    assert info.url.endswith("stream=0?videocodec=h264")
    assert (info.seq, info.rtptime) == (13086, None)
    rng = parse_range(play.headers.get("Range") or "")
    assert (rng.start, rng.start_seconds, rng.end) == ("now", None, "")
    cheap = parse_message(CHEAP_DESCRIBE)
    assert cheap.body == CHEAP_SDP
    assert cheap.headers.get("x-vendor-id") == "ACME-42"
    assert "Content-Type" not in cheap.headers
    (transport,) = parse_transport(parse_message(CHEAP_SETUP).headers.get("Transport") or "")
    assert transport == Transport(protocol="RTP/AVP/TCP", unicast=True, interleaved=(0, 1), mode="PLAY")


def test_transport_any_order_when_protocol_first() -> None:
    (t,) = parse_transport("RTP/AVP/TCP;mode=PLAY;ssrc=12;Interleaved=2-3;unicast")
    assert t == Transport(protocol="RTP/AVP/TCP", unicast=True, interleaved=(2, 3), ssrc=0x12, mode="PLAY")
    assert t.serialize() == "RTP/AVP/TCP;unicast;interleaved=2-3;ssrc=00000012;mode=PLAY"


def test_request_golden_ffmpeg() -> None:
    request = parse_message(FFMPEG_SETUP_REQUEST)
    assert isinstance(request, RtspRequest)
    assert (request.method, request.uri, request.cseq) == ("SETUP", "rtsp://127.0.0.1:8554/test/stream=0", 3)


# -- the stream reader ------------------------------------------------------------------------------------------

FRAME_A = InterleavedData(channel=0, data=bytes(range(200)))
FRAME_B = InterleavedData(channel=1, data=b"\x81\xc9\x00\x01abcd")
FRAME_EMPTY = InterleavedData(channel=3, data=b"")


def frame(item: InterleavedData) -> bytes:
    return b"$" + bytes([item.channel]) + len(item.data).to_bytes(2, "big") + item.data


STREAM_ITEMS: list[bytes] = [
    HIK_SETUP,
    frame(FRAME_A),
    frame(FRAME_B),
    HIK_PLAY,
    frame(FRAME_EMPTY),
    b"\r\n",  # a stray keepalive CRLF between items
    frame(FRAME_A),
    CHEAP_DESCRIBE,
    DAHUA_DESCRIBE,
    frame(FRAME_B),
]
STREAM = b"".join(STREAM_ITEMS)


def expected_items() -> list[object]:
    out: list[object] = []
    for chunk in STREAM_ITEMS:
        if chunk == b"\r\n":
            continue
        if chunk.startswith(b"$"):
            out.append(InterleavedData(channel=chunk[1], data=chunk[4:]))
        else:
            out.append(parse_message(chunk))
    return out


def feed_all(chunks: list[bytes]) -> list[object]:
    reader = MessageReader()
    out: list[object] = []
    for chunk in chunks:
        reader.feed(chunk)
        while (item := reader.next()) is not None:
            out.append(item)
    return out


def test_reader_whole() -> None:
    assert feed_all([STREAM]) == expected_items()


def test_reader_byte_by_byte() -> None:
    assert feed_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == expected_items()


@pytest.mark.parametrize("seed", range(5))
def test_reader_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    chunks = []
    pos = 0
    while pos < len(STREAM):
        n = rng.randint(1, 300)
        chunks.append(STREAM[pos : pos + n])
        pos += n
    assert feed_all(chunks) == expected_items()


def test_reader_trailing_partial() -> None:
    reader = MessageReader()
    reader.feed(HIK_SETUP + HIK_PLAY[:20])
    assert reader.next() == parse_message(HIK_SETUP)
    assert reader.next() is None
    assert reader.pending == 20
    reader.feed(HIK_PLAY[20:] + frame(FRAME_A)[:3])
    assert reader.next() == parse_message(HIK_PLAY)
    assert reader.next() is None
    reader.feed(b"")
    with pytest.raises(RemoteProtocolError, match="closed inside"):
        reader.check_eof()


def test_reader_clean_eof() -> None:
    reader = MessageReader()
    reader.feed(HIK_SETUP + b"\r\n")
    reader.feed(b"")
    assert reader.next() is not None
    assert reader.next() is None
    reader.check_eof()
    assert reader.eof


def test_reader_size_limit_header_and_body() -> None:
    reader = MessageReader(max_message_size=256)
    reader.feed(b"RTSP/1.0 200 OK\r\nX: " + b"a" * 300)
    with pytest.raises(ParseError) as info:
        reader.next()
    assert info.value.status_hint == 413
    reader = MessageReader(max_message_size=256)
    reader.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
    with pytest.raises(ParseError) as info:
        reader.next()
    assert info.value.status_hint == 413
    assert DEFAULT_MAX_MESSAGE_SIZE == 65536


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01garbage",
        b"HELLO\r\n\r\n",
        b"RTSP/1.0 2000 OK\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nno colon here\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"RTSP/1.0 200 OK\r\n continuation first\r\n\r\n",
    ],
)
def test_reader_malformed(data: bytes) -> None:
    reader = MessageReader()
    reader.feed(data)
    with pytest.raises(ParseError) as info:
        reader.next()
    assert info.value.status_hint == 400


def test_reader_rejects_garbage_start_line_early() -> None:
    # The bad start line is refused once its line ends, long before the size limit.
    reader = MessageReader()
    reader.feed(b"GARBAGE GARBAGE\n")
    with pytest.raises(ParseError):
        reader.next()


def test_folded_header_joined() -> None:
    message = parse_message(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX-Long: a\r\n  b\r\n\r\n")
    assert message.headers.get("X-Long") == "a b"


def test_latin1_header_fallback() -> None:
    message = parse_message(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Cam\xe9ra\r\n\r\n")
    assert message.headers.get("server") == "Caméra"


def test_parse_message_errors() -> None:
    with pytest.raises(ParseError, match="incomplete"):
        parse_message(HIK_SETUP[:-2])
    with pytest.raises(ParseError, match="after"):
        parse_message(HIK_SETUP + b"X")
    with pytest.raises(ParseError, match="interleaved"):
        parse_message(frame(FRAME_A))


# -- building and serializing -----------------------------------------------------------------------------------


def test_serialize_adds_content_length_and_reason() -> None:
    data = RtspResponse(status_code=454, headers=[("CSeq", "9")], body=b"x").serialize()
    assert data == b"RTSP/1.0 454 Session Not Found\r\nCSeq: 9\r\nContent-Length: 1\r\n\r\nx"
    request = RtspRequest(method="OPTIONS", uri="*", headers=[("CSeq", "1")])
    assert request.serialize() == b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"


@pytest.mark.parametrize(
    "message",
    [
        RtspRequest(method="BAD METHOD", uri="rtsp://x/"),
        RtspRequest(method="PLAY", uri="rtsp://x/ y"),
        RtspRequest(method="PLAY", uri="rtsp://x/", headers=[("X", "a\r\nInjected: 1")]),
        RtspRequest(method="PLAY", uri="rtsp://x/", headers=[("Bad Name", "1")]),
        RtspRequest(method="PLAY", uri="rtsp://x/", headers=[("Content-Length", "3")], body=b"x"),
        RtspRequest(method="PLAY", uri="rtsp://x/", version="HTTP/1.1"),
        RtspResponse(status_code=42),
        RtspResponse(status_code=200, reason="O\nK"),
    ],
)
def test_serialize_refuses_bad_messages(message: RtspRequest | RtspResponse) -> None:
    with pytest.raises(LocalProtocolError):
        message.serialize()


def test_headers_mapping_behaviour() -> None:
    headers = Headers([("CSeq", "1"), ("X-A", "1"), ("x-a", "2")])
    assert headers.get("cseq") == "1"
    assert headers.get("missing", "d") == "d"
    assert headers.get_all("X-A") == ["1", "2"]
    assert "x-A" in headers
    assert 3 not in headers
    assert headers.with_header("x-a", "3").items() == (("CSeq", "1"), ("X-A", "3"))
    assert headers.with_header("New", "v").get("new") == "v"
    assert headers.without("X-A").items() == (("CSeq", "1"),)
    assert len(headers) == 3
    assert next(iter(headers)) == ("CSeq", "1")
    assert headers == Headers(headers.items())
    assert hash(headers) == hash(Headers(headers.items()))
    assert headers != [("CSeq", "1")]
    assert "CSeq" in repr(headers)


# -- header values ----------------------------------------------------------------------------------------------


def test_transport_single_ports_and_multiple_specs() -> None:
    specs = parse_transport("RTP/AVP;multicast;ttl=16;destination=224.2.0.1, RTP/AVP;unicast;client_port=5000")
    assert specs[0].unicast is False
    assert specs[0].ttl == 16
    assert specs[0].destination == "224.2.0.1"
    assert specs[1].client_port == (5000, 5001)
    assert not specs[1].is_tcp


@pytest.mark.parametrize(
    "value",
    ["", " , ", "RTP/AVP;client_port=abc", "RTP/AVP;interleaved=300-301", "RTP/AVP;client_port=70000-70001", "@;x"],
)
def test_transport_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_transport(value)


def test_transport_tolerates_odd_values() -> None:
    (t,) = parse_transport('RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=xyz;mode="PLAY";ttl=999;source=;flag')
    assert (t.ssrc, t.mode, t.ttl, t.source) == (None, "PLAY", None, None)
    assert t.extra == (("flag", None),)


@pytest.mark.parametrize(
    "transport",
    [
        Transport(interleaved=(0, 256)),
        Transport(client_port=(1, 70000)),
        Transport(ssrc=1 << 32),
        Transport(mode="a b"),
        Transport(ttl=300),
        Transport(protocol="RTP AVP"),
        Transport(destination="a;b"),
        Transport(extra=(("interleaved", "0-1"),)),
    ],
)
def test_transport_serialize_refuses(transport: Transport) -> None:
    with pytest.raises(LocalProtocolError):
        transport.serialize()


def test_session_header() -> None:
    assert parse_session("abc; timeout = 30") == SessionHeader(session_id="abc", timeout=30)
    assert parse_session("abc;timeout=x").timeout is None
    assert SessionHeader(session_id="abc", timeout=5).serialize() == "abc;timeout=5"
    assert SessionHeader(session_id="abc").serialize() == "abc"
    with pytest.raises(ParseError):
        parse_session(" ;timeout=3")
    for bad in (SessionHeader(session_id=""), SessionHeader(session_id="a", timeout=-1)):
        with pytest.raises(LocalProtocolError):
            bad.serialize()


def test_rtp_info_serialize_and_limits() -> None:
    infos = [RtpInfo(url="rtsp://h/a/trackID=0", seq=1, rtptime=2), RtpInfo(url="rtsp://h/a/trackID=1")]
    value = serialize_rtp_info(infos)
    assert value == "url=rtsp://h/a/trackID=0;seq=1;rtptime=2,url=rtsp://h/a/trackID=1"
    assert parse_rtp_info(value) == infos
    assert parse_rtp_info("seq=1;rtptime=2") == []
    for bad in (RtpInfo(url="a b"), RtpInfo(url="u", seq=70000), RtpInfo(url="u", rtptime=-1)):
        with pytest.raises(LocalProtocolError):
            bad.serialize()


def test_range_forms() -> None:
    assert parse_range("npt=1:02:03.5-") == RtspRange(unit="npt", start="1:02:03.5", end="")
    assert parse_range("npt=1:02:03.5-").start_seconds == 3723.5
    assert parse_range("npt=10-20.25").end_seconds == 20.25
    assert parse_range("clock=19961108T142300Z-19961108T143520Z;time=19970123T143720Z").start == "19961108T142300Z"
    assert parse_range("clock=19961108T142300Z-").start_seconds is None
    assert RtspRange.npt(None).serialize() == "npt=now-"
    assert RtspRange.npt(1.5, 3).serialize() == "npt=1.500-3.000"
    for bad in ("npt", "npt=5", "=1-2"):
        with pytest.raises(ParseError):
            parse_range(bad)
    for rng in (RtspRange(unit="a b"), RtspRange(start="1 2"), RtspRange(start="1-2")):
        with pytest.raises(LocalProtocolError):
            rng.serialize()


# -- Hypothesis: round trips and garbage ------------------------------------------------------------------------

tokens = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!", min_size=1, max_size=12)
values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\r\n\x00"),
    max_size=30,
).map(str.strip)
header_lists = st.lists(st.tuples(tokens.filter(lambda t: t.lower() != "content-length"), values), max_size=6).map(
    lambda pairs: [("CSeq", "1"), *pairs]
)
bodies = st.binary(max_size=100)


@st.composite
def requests(draw: st.DrawFn) -> RtspRequest:
    body = draw(bodies)
    headers = draw(header_lists)
    if body:
        headers.append(("Content-Length", str(len(body))))
    uri = draw(st.sampled_from(["*", "rtsp://127.0.0.1:554/a/b?x=1", "rtsp://[::1]/s/trackID=1"]))
    method = draw(st.sampled_from(["OPTIONS", "X-VENDOR", "GET_PARAMETER"]) | tokens.map(lambda t: "M" + t))
    return RtspRequest(method=method, uri=uri, headers=headers, body=body)


@st.composite
def responses(draw: st.DrawFn) -> RtspResponse:
    body = draw(bodies)
    headers = draw(header_lists)
    if body:
        headers.append(("Content-Length", str(len(body))))
    reason = draw(st.sampled_from(["OK", "Not Found", "Something Odd Here"]))
    return RtspResponse(status_code=draw(st.integers(100, 999)), reason=reason, headers=headers, body=body)


@given(st.one_of(requests(), responses()))
def test_message_round_trip(message: RtspRequest | RtspResponse) -> None:
    assert parse_message(message.serialize()) == message


@given(
    st.lists(
        st.one_of(requests(), responses(), st.builds(InterleavedData, channel=st.integers(0, 255), data=bodies)),
        max_size=5,
    ),
    st.randoms(),
)
def test_stream_round_trip_chunked(items: list[object], rnd: random.Random) -> None:
    stream = b"".join(frame(i) if isinstance(i, InterleavedData) else i.serialize() for i in items)  # type: ignore[attr-defined]
    chunks = []
    pos = 0
    while pos < len(stream):
        n = rnd.randint(1, 64)
        chunks.append(stream[pos : pos + n])
        pos += n
    assert feed_all(chunks) == items


ports = st.tuples(st.integers(0, 65535), st.integers(0, 65535))
transports = st.builds(
    Transport,
    protocol=st.sampled_from(["RTP/AVP", "RTP/AVP/TCP", "RTP/AVP/UDP"]),
    unicast=st.sampled_from([True, False, None]),
    destination=st.none() | st.sampled_from(["10.0.0.1", "224.2.0.1"]),
    source=st.none() | st.just("10.0.0.2"),
    interleaved=st.none() | st.tuples(st.integers(0, 255), st.integers(0, 255)),
    client_port=st.none() | ports,
    server_port=st.none() | ports,
    ssrc=st.none() | st.integers(0, 0xFFFFFFFF),
    mode=st.none() | st.sampled_from(["PLAY", "RECORD", "play"]),
    ttl=st.none() | st.integers(0, 255),
    extra=st.lists(st.tuples(st.sampled_from(["x-foo", "append", "layers"]), st.none() | st.just("3"))).map(tuple),
)


@given(st.lists(transports, min_size=1, max_size=3))
def test_transport_round_trip(specs: list[Transport]) -> None:
    assert parse_transport(",".join(t.serialize() for t in specs)) == specs


@given(
    st.lists(
        st.builds(
            RtpInfo,
            url=st.sampled_from(["rtsp://h/a/trackID=0", "rtsp://h:554/x?y=1/stream=1", "trackID=2"]),
            seq=st.none() | st.integers(0, 0xFFFF),
            rtptime=st.none() | st.integers(0, 0xFFFFFFFF),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_rtp_info_round_trip(infos: list[RtpInfo]) -> None:
    assert parse_rtp_info(serialize_rtp_info(infos)) == infos


@given(
    st.builds(
        RtspRange,
        unit=st.sampled_from(["npt", "clock", "smpte"]),
        start=st.sampled_from(["", "now", "0.000", "12:01:02.5", "19961108T142300Z"]),
        end=st.sampled_from(["", "10", "19961108T143520Z"]),
    ),
    st.builds(
        SessionHeader,
        session_id=st.sampled_from(["1", "ABCDEF12", ".L4zWCxO5nrRRkW8"]),
        timeout=st.none() | st.integers(0, 10**6),
    ),
)
def test_range_and_session_round_trip(rng: RtspRange, session: SessionHeader) -> None:
    assert parse_range(rng.serialize()) == rng
    assert parse_session(session.serialize()) == session


@given(st.binary(max_size=400))
def test_reader_garbage(data: bytes) -> None:
    reader = MessageReader(max_message_size=256)
    try:
        reader.feed(data)
        while reader.next() is not None:
            pass
        reader.feed(b"")
        reader.check_eof()
    except ProtocolError:
        pass


@given(st.text(max_size=80))
def test_header_value_parsers_garbage(text: str) -> None:
    for parser in (parse_transport, parse_session, parse_range):
        with contextlib.suppress(ProtocolError):
            parser(text)
    parse_rtp_info(text)
    parse_public(text)
