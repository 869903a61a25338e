"""RTSP client and server machines: scripted camera exchanges, a client/server pair in memory, timers, states.

The client is scripted against the golden camera replies of test_rtsp_codec (CSeq renumbered to match), and wired
to the server machine through `Pair`, which moves bytes both ways and lets the server-side "driver" answer with an
SDP, transports and RTP-Info. Time is a plain float passed as `now`. The exhaustive tests walk every
(state, input) pair of both tables.
"""

from __future__ import annotations

import contextlib
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.digest import DigestServer
from fluxkit.protocols.rtsp import (
    CLIENT_TRANSITIONS,
    NEED_DATA,
    SERVER_TRANSITIONS,
    AuthenticationFailed,
    ClientInput,
    ClientState,
    ConnectionClosed,
    Described,
    DescribeRequest,
    Event,
    GetParameterRequest,
    InterleavedData,
    OptionsReplied,
    OptionsRequest,
    Paused,
    PauseRequest,
    Playing,
    PlayRequest,
    Redirect,
    ReplyTimeout,
    RequestFailed,
    RtpInfo,
    RtspClientConnection,
    RtspRange,
    RtspRequest,
    RtspResponse,
    RtspServerConnection,
    ServerRequest,
    ServerState,
    SessionExpired,
    SetUp,
    SetupRequest,
    TeardownRequest,
    TornDown,
    Track,
    Transport,
    parse_message,
    resolve_control,
)
from tests.protocols import test_rtsp_codec as golden

URL = "rtsp://192.168.1.64:554/Streaming/Channels/101"


def events(conn: RtspClientConnection | RtspServerConnection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def sent_requests(client: RtspClientConnection) -> list[RtspRequest]:
    reader_data = client.data_to_send()
    out = []
    for chunk in re.split(rb"(?<=\r\n\r\n)", reader_data):
        if chunk:
            message = parse_message(chunk)
            assert isinstance(message, RtspRequest)
            out.append(message)
    return out


def with_cseq(reply: bytes, cseq: int) -> bytes:
    return re.sub(rb"CSeq: \d+", b"CSeq: %d" % cseq, reply, count=1)


def answer(client: RtspClientConnection, reply: bytes, now: float = 0.0) -> list[object]:
    (request,) = sent_requests(client)
    assert request.cseq is not None
    client.receive_data(with_cseq(reply, request.cseq))
    return events(client)


# -- scripted camera exchanges ----------------------------------------------------------------------------------


def test_hikvision_digest_describe_setup_play_teardown() -> None:
    client = RtspClientConnection(f"rtsp://admin:pa55@{URL[7:]}", rng=random.Random(0))
    assert client.url == URL
    client.options(now=0.0)
    (options,) = answer(client, golden.DAHUA_OPTIONS)
    assert isinstance(options, OptionsReplied)
    assert "GET_PARAMETER" in options.public
    client.describe(now=0.0)
    (describe,) = sent_requests(client)
    assert describe.headers.get("Accept") == "application/sdp"
    assert "Authorization" not in describe.headers
    client.receive_data(with_cseq(golden.HIK_401, describe.cseq or 0))
    assert events(client) == []  # answered silently
    (retry,) = sent_requests(client)
    assert retry.method == "DESCRIBE"
    assert retry.cseq == (describe.cseq or 0) + 1
    authorization = retry.headers.get("Authorization") or ""
    assert authorization.startswith("Digest ")
    assert 'realm="IP Camera(C6498)"' in authorization
    assert f'uri="{URL}"' in authorization
    client.receive_data(with_cseq(golden.HIK_DESCRIBE, retry.cseq or 0))
    (described,) = events(client)
    assert isinstance(described, Described)
    assert [t.url for t in described.tracks] == [f"{URL}/trackID=1", f"{URL}/trackID=3"]
    video = described.tracks[0]
    assert (video.media, video.payload_type, video.encoding, video.clock_rate) == ("video", 96, "H264", 90000)
    assert video.fmtp_param("PACKETIZATION-MODE") == "1"
    assert video.fmtp_param("missing") is None
    assert described.aggregate_url == f"{URL}/"
    client.setup(video, now=1.0)
    (setup,) = sent_requests(client)
    assert setup.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=0-1"
    assert (setup.headers.get("Authorization") or "").startswith("Digest ")  # signed without another 401
    client.receive_data(with_cseq(golden.HIK_SETUP, setup.cseq or 0))
    (set_up,) = events(client)
    assert isinstance(set_up, SetUp)
    assert (set_up.session_id, set_up.timeout, set_up.transport.ssrc) == ("1273222592", 60, 0x1D4D8A5C)
    assert client.state is ClientState.READY
    assert client.channels == {0: video, 1: video}
    client.play(now=2.0)
    (play,) = sent_requests(client)
    assert play.uri == f"{URL}/"
    assert play.headers.get("Session") == "1273222592"
    assert play.headers.get("Range") == "npt=0.000-"
    frame = b"$\x00\x00\x05hello"
    client.receive_data(frame + with_cseq(golden.HIK_PLAY, play.cseq or 0) + frame)
    got = events(client)
    assert got[0] == InterleavedData(channel=0, data=b"hello")
    assert isinstance(got[1], Playing)
    assert got[1].rtp_info[0].seq == 50412
    assert got[2] == got[0]
    assert client.state is ClientState.PLAYING
    client.teardown(now=3.0)
    (teardown,) = answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 0\r\n\r\n")
    assert isinstance(teardown, TornDown)
    assert client.state is ClientState.INIT
    assert client.session_id is None
    client.receive_data(b"")
    assert events(client) == [ConnectionClosed()]
    assert client.state is ClientState.CLOSED


def test_dahua_urls_and_relative_rtp_info() -> None:
    client = RtspClientConnection("rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0", rng=random.Random(0))
    client.describe(now=0.0)
    (described,) = answer(client, golden.DAHUA_DESCRIBE)
    assert isinstance(described, Described)
    base = "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0/"
    assert described.base_url == described.aggregate_url == base
    assert [t.url for t in described.tracks] == [base + "trackID=0", base + "trackID=1"]
    audio = described.tracks[1]
    assert (audio.encoding, audio.clock_rate) == ("PCMA", 8000)
    assert described.tracks[0].encoding == "H265"
    client.setup(described.tracks[0], now=0.0)
    assert isinstance(answer(client, golden.DAHUA_SETUP)[0], SetUp)
    client.setup(audio, now=0.0)
    (second,) = sent_requests(client)
    assert second.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=2-3"
    assert second.headers.get("Session") == "1185432685"
    client.receive_data(with_cseq(golden.DAHUA_SETUP.replace(b"interleaved=0-1", b"interleaved=2-3"), second.cseq or 0))
    assert isinstance(events(client)[0], SetUp)
    client.play(now=0.0)
    (playing,) = answer(client, golden.DAHUA_PLAY)
    assert isinstance(playing, Playing)
    assert [i.rtptime for i in playing.rtp_info] == [1924145170, None]
    assert playing.range == RtspRange(unit="npt", start="0.000000", end="")


def test_axis_session_control_is_aggregate_and_cheap_camera_without_base() -> None:
    client = RtspClientConnection("rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264", rng=random.Random(0))
    client.describe(now=0.0)
    (described,) = answer(client, golden.AXIS_DESCRIBE)
    assert isinstance(described, Described)
    assert described.aggregate_url == "rtsp://192.168.0.90/axis-media/media.amp?videocodec=h264"
    assert described.tracks[0].url == "rtsp://192.168.0.90/axis-media/media.amp/stream=0?videocodec=h264"
    cheap = RtspClientConnection("rtsp://10.0.0.2/live", rng=random.Random(0))
    cheap.describe(now=0.0)
    (described,) = answer(cheap, golden.CHEAP_DESCRIBE)
    assert isinstance(described, Described)
    assert described.tracks[0].url == "rtsp://10.0.0.2/live/track1"
    cheap.setup(described.tracks[0], now=0.0)
    (set_up,) = answer(cheap, golden.CHEAP_SETUP)
    assert isinstance(set_up, SetUp)
    assert (set_up.session_id, set_up.timeout, set_up.transport.mode) == ("77", 60, "PLAY")


def test_resolve_control() -> None:
    assert resolve_control("rtsp://h/a", "*") == "rtsp://h/a"
    assert resolve_control("rtsp://h/a", "") == "rtsp://h/a"
    assert resolve_control("rtsp://h/a", "trackID=1") == "rtsp://h/a/trackID=1"
    assert resolve_control("rtsp://h/a/", "trackID=1") == "rtsp://h/a/trackID=1"
    assert resolve_control("rtsp://h/a/b", "/x/y") == "rtsp://h/x/y"
    assert resolve_control("rtsp://h/a", "RTSP://o/t") == "RTSP://o/t"


@pytest.mark.parametrize("bad", ["http://h/x", "rtsp:///nohost", "rtsp://h:99999/x"])
def test_client_refuses_bad_urls(bad: str) -> None:
    with pytest.raises(LocalProtocolError):
        RtspClientConnection(bad, rng=random.Random(0))


def test_ipv6_url_and_user_agent() -> None:
    client = RtspClientConnection("rtsp://u:p@[::1]:8554/s", rng=random.Random(0), user_agent="ua/1")
    assert client.url == "rtsp://[::1]:8554/s"
    client.options(now=0.0)
    (request,) = sent_requests(client)
    assert request.headers.get("User-Agent") == "ua/1"


# -- authentication ---------------------------------------------------------------------------------------------

CHALLENGE = b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm="r", nonce="n1"\r\n\r\n'


def test_wrong_password_fails_once_without_retry_storm() -> None:
    client = RtspClientConnection(URL, username="admin", password="bad", rng=random.Random(0))
    client.describe(now=0.0)
    assert answer(client, CHALLENGE) == []
    (failed,) = answer(client, CHALLENGE.replace(b"n1", b"n2"))
    assert isinstance(failed, AuthenticationFailed)
    assert (failed.method, failed.status_code) == ("DESCRIBE", 401)
    assert client.data_to_send() == b""  # no third attempt
    assert client.state is ClientState.INIT
    assert client.get_timer() is None


def test_no_credentials_fails_at_once_and_stale_earns_one_more_try() -> None:
    anonymous = RtspClientConnection(URL, rng=random.Random(0))
    anonymous.describe(now=0.0)
    assert isinstance(answer(anonymous, CHALLENGE)[0], AuthenticationFailed)
    client = RtspClientConnection(URL, username="admin", password="pw", rng=random.Random(0))
    client.describe(now=0.0)
    assert answer(client, CHALLENGE) == []
    stale = CHALLENGE.replace(b'nonce="n1"', b'nonce="n2", stale=true')
    assert answer(client, stale) == []
    assert isinstance(answer(client, stale.replace(b"n2", b"n3"))[0], AuthenticationFailed)


def test_unusable_challenge_and_403() -> None:
    client = RtspClientConnection(URL, username="admin", password="pw", rng=random.Random(0))
    client.describe(now=0.0)
    odd = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Negotiate abc\r\n\r\n"
    assert isinstance(answer(client, odd)[0], AuthenticationFailed)
    client.describe(now=0.0)
    assert answer(client, CHALLENGE) == []
    forbidden = answer(client, b"RTSP/1.0 403 Forbidden\r\nCSeq: 1\r\n\r\n")
    assert isinstance(forbidden[0], AuthenticationFailed)


def test_basic_auth() -> None:
    client = RtspClientConnection(URL, username="admin", password="12345", rng=random.Random(0))
    client.options(now=0.0)
    assert answer(client, b'RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm="cam"\r\n\r\n') == []
    (retry,) = sent_requests(client)
    assert retry.headers.get("Authorization") == "Basic YWRtaW46MTIzNDU="


# -- redirects, failures, malformed replies, server requests ----------------------------------------------------


def test_redirect_response_and_request() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.describe(now=0.0)
    (redirect,) = answer(client, b"RTSP/1.0 302 Moved Temporarily\r\nCSeq: 1\r\nLocation: rtsp://other/x\r\n\r\n")
    assert redirect == Redirect(url="rtsp://other/x", status_code=302, message=redirect.message)
    assert client.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.describe(now=0.0)
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.receive_data(b"REDIRECT rtsp://cam/ RTSP/1.0\r\nCSeq: 9\r\nLocation: rtsp://new/x\r\n\r\n")
    (redirect,) = events(client)
    assert isinstance(redirect, Redirect)
    assert redirect.url == "rtsp://new/x"
    assert client.data_to_send().startswith(b"RTSP/1.0 200 OK\r\nCSeq: 9\r\n")


def test_server_requests_are_answered() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.receive_data(
        b"GET_PARAMETER rtsp://cam/ RTSP/1.0\r\nCSeq: 1\r\n\r\nANNOUNCE rtsp://cam/ RTSP/1.0\r\nCSeq: 2\r\n\r\n"
    )
    got = events(client)
    assert [type(e) for e in got] == [ServerRequest, ServerRequest]
    out = client.data_to_send()
    assert b"RTSP/1.0 200 OK\r\nCSeq: 1" in out
    assert b"RTSP/1.0 501 Not Implemented\r\nCSeq: 2" in out


def test_error_reply_keeps_state_and_3xx_without_location() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.describe(now=0.0)
    (failed,) = answer(client, b"RTSP/1.0 404 Stream Not Found\r\nCSeq: 1\r\n\r\n")
    assert failed == RequestFailed(
        method="DESCRIBE", status_code=404, reason="Stream Not Found", response=failed.response
    )
    client.describe(now=0.0)
    assert isinstance(answer(client, b"RTSP/1.0 300 Multiple Choices\r\nCSeq: 1\r\n\r\n")[0], RequestFailed)
    assert client.state is ClientState.INIT


def test_malformed_reply_is_a_clear_error() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.describe(now=0.0)
    client.data_to_send()
    client.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="start line"):
        client.next_event()
    assert client.state is ClientState.ERROR
    with pytest.raises(RemoteProtocolError):
        client.next_event()
    assert client.get_timer() is None


def test_bad_sdp_and_setup_without_session_are_errors() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.describe(now=0.0)
    client.data_to_send()
    client.receive_data(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nhello")
    with pytest.raises(RemoteProtocolError):
        client.next_event()
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.setup(f"{URL}/trackID=1", now=0.0)
    client.data_to_send()
    client.receive_data(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="Session"):
        client.next_event()


def test_cseq_matching() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.options(now=0.0)
    client.describe(now=0.0)
    client.data_to_send()
    client.receive_data(b"RTSP/1.0 200 OK\r\nCSeq: 77\r\n\r\n")  # unknown: dropped
    assert events(client) == []
    assert client.unmatched_responses == 1
    client.receive_data(b"RTSP/1.0 200 OK\r\nPublic: OPTIONS\r\n\r\n")  # no CSeq: the oldest (OPTIONS)
    (options,) = events(client)
    assert isinstance(options, OptionsReplied)
    assert options.public == ("OPTIONS",)


def test_setup_without_transport_in_reply_and_udp() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    with pytest.raises(LocalProtocolError):
        client.setup(f"{URL}/t", now=0.0, transport="udp")
    with pytest.raises(LocalProtocolError):
        client.setup(f"{URL}/t", now=0.0, transport="sctp")
    client.setup(f"{URL}/t", now=0.0, transport="udp", client_ports=(5000, 5001))
    (set_up,) = answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 5\r\n\r\n")
    assert isinstance(set_up, SetUp)
    assert set_up.transport.client_port == (5000, 5001)
    assert set_up.track == Track(index=-1, url=f"{URL}/t")
    client.setup(f"{URL}/u", now=0.0, transport=Transport(protocol="RTP/AVP/TCP", interleaved=(6, 7)))
    assert isinstance(
        answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=6-7\r\n\r\n")[0], SetUp
    )
    assert sorted(client.channels) == [6, 7]


def test_play_scale_range_pause() -> None:
    client = playing_client()
    client.play(now=5.0, range=RtspRange.npt(30.0), scale=2.0)
    (request,) = sent_requests(client)
    assert (request.headers.get("Range"), request.headers.get("Scale")) == ("npt=30.000-", "2")
    client.receive_data(with_cseq(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nScale: 2.0\r\nRange: bad\r\n\r\n", request.cseq or 0))
    (playing,) = events(client)
    assert isinstance(playing, Playing)
    assert (playing.scale, playing.range) == (2.0, None)
    client.pause(now=6.0)
    (paused,) = answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
    assert isinstance(paused, Paused)
    assert client.state is ClientState.READY
    client.play(now=6.0, range="npt=now-")
    (request,) = sent_requests(client)
    assert request.headers.get("Range") == "npt=now-"


def test_client_sends_interleaved() -> None:
    client = playing_client()
    client.send_interleaved(1, b"rr")
    assert client.data_to_send() == b"$\x01\x00\x02rr"
    client.receive_data(b"")
    events(client)
    with pytest.raises(LocalProtocolError):
        client.send_interleaved(1, b"rr")


def test_eof_inside_message_is_an_error() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.receive_data(b"RTSP/1.0 200")
    client.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed inside"):
        client.next_event()


# -- timers ---------------------------------------------------------------------------------------------------


def playing_client(public: str = "OPTIONS, GET_PARAMETER", timeout: int = 30) -> RtspClientConnection:
    client = RtspClientConnection(URL, rng=random.Random(0))
    client.options(now=0.0)
    answer(client, f"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: {public}\r\n\r\n".encode())
    client.setup(f"{URL}/trackID=1", now=1.0)
    answer(
        client,
        f"RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: S1;timeout={timeout}\r\n"
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n".encode(),
    )
    client.play(now=2.0)
    answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
    assert client.state is ClientState.PLAYING
    return client


def test_reply_timeout() -> None:
    client = RtspClientConnection(URL, rng=random.Random(0), reply_timeout=5.0)
    assert client.get_timer() is None
    cseq = client.describe(now=100.0)
    assert client.get_timer() == 105.0
    client.handle_timer(104.9)
    assert events(client) == []
    client.handle_timer(105.0)
    assert events(client) == [ReplyTimeout(method="DESCRIBE", cseq=cseq)]
    assert client.state is ClientState.ERROR
    assert client.get_timer() is None
    client.handle_timer(200.0)  # nothing more


def test_keepalive_get_parameter_then_options_fallback() -> None:
    client = playing_client()
    assert client.get_timer() == 2.0 + 15.0
    client.handle_timer(16.0)
    assert client.data_to_send() == b""
    client.handle_timer(17.0)
    (keepalive,) = sent_requests(client)
    assert keepalive.method == "GET_PARAMETER"
    assert keepalive.headers.get("Session") == "S1"
    assert client.get_timer() == 17.0 + 10.0  # the reply deadline while it is in flight
    client.receive_data(with_cseq(b"RTSP/1.0 405 Method Not Allowed\r\nCSeq: 1\r\n\r\n", keepalive.cseq or 0))
    assert events(client) == []  # silently switches to OPTIONS
    assert client.get_timer() == 32.0
    client.handle_timer(32.0)
    (keepalive,) = sent_requests(client)
    assert keepalive.method == "OPTIONS"
    client.receive_data(with_cseq(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", keepalive.cseq or 0))
    assert events(client) == []
    client.get_parameter(now=40.0)
    assert sent_requests(client)[0].method == "GET_PARAMETER"


def test_keepalive_options_without_public_and_lost_session() -> None:
    client = playing_client(public="OPTIONS", timeout=60)
    client.handle_timer(32.0)
    (keepalive,) = sent_requests(client)
    assert keepalive.method == "OPTIONS"
    client.receive_data(with_cseq(b"RTSP/1.0 454 Session Not Found\r\nCSeq: 1\r\n\r\n", keepalive.cseq or 0))
    (failed,) = events(client)
    assert isinstance(failed, RequestFailed)
    assert failed.status_code == 454


# -- exhaustive (state, input) ----------------------------------------------------------------------------------


def client_in(state: ClientState) -> RtspClientConnection:
    if state is ClientState.INIT:
        return RtspClientConnection(URL, rng=random.Random(0))
    if state is ClientState.READY:
        client = playing_client()
        client.pause(now=3.0)
        answer(client, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")
        return client
    if state is ClientState.PLAYING:
        return playing_client()
    client = playing_client()
    if state is ClientState.CLOSED:
        client.receive_data(b"")
        events(client)
    else:
        client.receive_data(b"\x00garbage")
        with pytest.raises(RemoteProtocolError):
            client.next_event()
    return client


COMMANDS = {
    ClientInput.SEND_OPTIONS: lambda c: c.options(now=5.0),
    ClientInput.SEND_DESCRIBE: lambda c: c.describe(now=5.0),
    ClientInput.SEND_SETUP: lambda c: c.setup(f"{URL}/trackID=9", now=5.0),
    ClientInput.SEND_PLAY: lambda c: c.play(now=5.0),
    ClientInput.SEND_PAUSE: lambda c: c.pause(now=5.0),
    ClientInput.SEND_TEARDOWN: lambda c: c.teardown(now=5.0),
    ClientInput.SEND_GET_PARAMETER: lambda c: c.get_parameter(now=5.0),
}


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_client_every_command_in_every_state(state: ClientState, command: ClientInput) -> None:
    client = client_in(state)
    assert client.state is state
    if (state, command) in CLIENT_TRANSITIONS:
        COMMANDS[command](client)
        assert client.state is CLIENT_TRANSITIONS[(state, command)]
        assert sent_requests(client)[-1].method == command.name.removeprefix("SEND_")
    else:
        with pytest.raises(LocalProtocolError):
            COMMANDS[command](client)
        assert client.state is state


@pytest.mark.parametrize("state", list(ClientState))
@pytest.mark.parametrize("reply", [i for i in ClientInput if not i.name.startswith("SEND_")])
def test_client_table_every_reply_input(state: ClientState, reply: ClientInput) -> None:
    client = client_in(state)
    expected = CLIENT_TRANSITIONS.get((state, reply))
    if expected is None:
        with pytest.raises(RemoteProtocolError):
            client._transition(reply)
        assert client.state is ClientState.ERROR
    else:
        client._transition(reply)
        assert client.state is expected


def test_client_play_ok_in_init_is_a_protocol_error() -> None:
    # A reply that the table forbids in the current state (a PLAY success once the session is gone).
    client = playing_client()
    client.play(now=3.0)
    client.teardown(now=3.0)
    play, teardown = sent_requests(client)
    client.receive_data(with_cseq(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", teardown.cseq or 0))
    assert isinstance(events(client)[0], TornDown)
    client.receive_data(with_cseq(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", play.cseq or 0))
    with pytest.raises(RemoteProtocolError, match="PLAY_OK"):
        client.next_event()


# -- the server machine -----------------------------------------------------------------------------------------

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=fluxkit\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"
    "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=control:trackID=1\r\n"
)


class Pair:
    """A client and a server machine wired in memory, with a minimal server driver."""

    def __init__(self, *, auth: bool = True, password: str = "secret", session_timeout: int = 60) -> None:
        self.client = RtspClientConnection(
            "rtsp://127.0.0.1:8554/live", username="admin", password=password, rng=random.Random(1)
        )
        digest = DigestServer("fluxkit", random.Random(2), nonce_ttl=30.0) if auth else None
        self.server = RtspServerConnection(
            rng=random.Random(3), auth=digest, lookup={"admin": "secret"}.get, session_timeout=session_timeout
        )
        self.server_events: list[object] = []
        self.now = 0.0

    def pump(self) -> list[object]:
        out: list[object] = []
        while True:
            data = self.client.data_to_send()
            if data:
                self.server.receive_data(data, now=self.now)
            for event in events(self.server):
                self.server_events.append(event)
                self.drive(event)
            reply = self.server.data_to_send()
            if reply:
                self.client.receive_data(reply)
            out.extend(events(self.client))
            if not reply and not data:
                return out

    def drive(self, event: object) -> None:
        server = self.server
        if isinstance(event, DescribeRequest):
            server.respond_describe(event, SDP)
        elif isinstance(event, SetupRequest):
            udp = not event.transport.is_tcp
            server.accept_setup(event, server_port=(7000, 7001) if udp else None, ssrc=0xABC)
        elif isinstance(event, PlayRequest):
            server.accept_play(
                event,
                rtp_info=[RtpInfo(url=f"{event.url}trackID=0", seq=100, rtptime=9000)],
                range=RtspRange.npt(0.0),
                scale=event.scale,
            )
        elif isinstance(event, PauseRequest | TeardownRequest):
            server.accept(event)


def test_pair_digest_describe_setup_tcp_udp_play_data_teardown() -> None:
    pair = Pair()
    client, server = pair.client, pair.server
    client.options(now=0.0)
    assert isinstance(pair.pump()[0], OptionsReplied)  # OPTIONS stays open without credentials
    client.describe(now=0.0)
    (described,) = pair.pump()
    assert isinstance(described, Described)
    video, audio = described.tracks
    assert video.url == "rtsp://127.0.0.1:8554/live/trackID=0"
    client.setup(video, now=1.0)
    (tcp,) = pair.pump()
    assert isinstance(tcp, SetUp)
    assert (tcp.transport.interleaved, tcp.transport.ssrc, tcp.timeout) == ((0, 1), 0xABC, 60)
    client.setup(audio, now=1.0, transport="udp", client_ports=(5000, 5001))
    (udp,) = pair.pump()
    assert isinstance(udp, SetUp)
    assert (udp.transport.client_port, udp.transport.server_port) == ((5000, 5001), (7000, 7001))
    assert udp.session_id == tcp.session_id == server.session_id
    assert server.state is ServerState.READY
    assert server.channels == {0: "/live/trackID=0", 1: "/live/trackID=0"}
    client.play(now=2.0, scale=1.0)
    (playing,) = pair.pump()
    assert isinstance(playing, Playing)
    assert playing.rtp_info == (RtpInfo(url="rtsp://127.0.0.1:8554/live/trackID=0", seq=100, rtptime=9000),)
    assert server.state is ServerState.PLAYING
    server.send_interleaved(0, b"rtp-1")
    server.send_interleaved_many(1, [b"rtcp-a", b"rtcp-b"])
    assert pair.pump() == [
        InterleavedData(channel=0, data=b"rtp-1"),
        InterleavedData(channel=1, data=b"rtcp-a"),
        InterleavedData(channel=1, data=b"rtcp-b"),
    ]
    pair.now = 50.0
    client.send_interleaved(1, b"receiver-report")
    pair.pump()
    assert pair.server_events[-1] == InterleavedData(channel=1, data=b"receiver-report")
    assert server.get_timer() == 110.0  # RTCP from the client refreshed the session
    client.teardown(now=60.0)
    pair.now = 60.0
    (torn,) = pair.pump()
    assert isinstance(torn, TornDown)
    assert (client.state, server.state, server.session_id, server.get_timer()) == (
        ClientState.INIT,
        ServerState.INIT,
        None,
        None,
    )
    kinds = [type(e).__name__ for e in pair.server_events]
    assert kinds.count("SetupRequest") == 2
    assert "TeardownRequest" in kinds


def test_pair_wrong_password() -> None:
    pair = Pair(password="nope")
    pair.client.describe(now=0.0)
    (failed,) = pair.pump()
    assert isinstance(failed, AuthenticationFailed)
    assert not any(isinstance(e, DescribeRequest) for e in pair.server_events)


def test_pair_stale_nonce_is_retried() -> None:
    pair = Pair()
    pair.client.describe(now=0.0)
    assert isinstance(pair.pump()[0], Described)
    pair.now = 100.0  # past nonce_ttl: the server answers stale=true, the client retries once more
    pair.client.options(now=100.0)
    pair.client.setup("rtsp://127.0.0.1:8554/live/trackID=0", now=100.0)
    got = pair.pump()
    assert isinstance(got[-1], SetUp)


def test_pair_keepalive_and_session_expiry() -> None:
    pair = Pair(auth=False, session_timeout=20)
    client, server = pair.client, pair.server
    client.setup("rtsp://127.0.0.1:8554/live/trackID=0", now=0.0)
    set_up = pair.pump()[0]
    assert isinstance(set_up, SetUp)
    assert set_up.timeout == 20
    assert client.get_timer() == 10.0
    assert server.get_timer() == 20.0
    pair.now = 10.0
    client.handle_timer(10.0)  # no Public known: OPTIONS keepalive
    assert pair.pump() == []
    assert isinstance(pair.server_events[-1], OptionsRequest)
    assert server.get_timer() == 30.0
    client.get_parameter(now=12.0)
    pair.now = 12.0
    pair.pump()
    assert isinstance(pair.server_events[-1], GetParameterRequest)
    assert server.get_timer() == 32.0
    server.handle_timer(31.9)
    assert events(server) == []
    server.handle_timer(32.0)
    assert events(server) == [SessionExpired(session_id=set_up.session_id)]
    assert (server.state, server.session_id) == (ServerState.INIT, None)
    client.play(now=40.0)
    (failed,) = pair.pump()
    assert isinstance(failed, RequestFailed)
    assert failed.status_code == 454


def server_request(server: RtspServerConnection, text: str, now: float = 0.0) -> list[object]:
    server.receive_data(text.replace("\n", "\r\n").encode(), now=now)
    return events(server)


def server_status(server: RtspServerConnection) -> int:
    message = parse_message(server.data_to_send())
    assert isinstance(message, RtspResponse)
    return message.status_code


@pytest.mark.parametrize(
    ("request_text", "status"),
    [
        ("OPTIONS * RTSP/1.0\n\n", 400),  # no CSeq
        ("OPTIONS * RTSP/2.0\nCSeq: 1\n\n", 505),
        ("RECORD rtsp://h/a RTSP/1.0\nCSeq: 1\n\n", 501),
        ("PLAY rtsp://h/a RTSP/1.0\nCSeq: 1\n\n", 454),
        ("PLAY rtsp://h/a RTSP/1.0\nCSeq: 1\nSession: nope\n\n", 454),
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\nSession: ;\n\n", 454),
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\n\n", 461),
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;multicast\n\n", 461),
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;unicast\n\n", 461),  # no client_port
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\nTransport: RAW/RAW/UDP;unicast;client_port=3-4\n\n", 461),
        ("SETUP rtsp://h/a RTSP/1.0\nCSeq: 1\nTransport: ???\n\n", 461),
    ],
)
def test_server_answers_errors_itself(request_text: str, status: int) -> None:
    server = RtspServerConnection(rng=random.Random(0))
    assert server_request(server, request_text) == []
    assert server_status(server) == status


def test_server_455_and_457_and_bad_scale() -> None:
    server = RtspServerConnection(rng=random.Random(0))
    (setup,) = server_request(server, "SETUP rtsp://h/a/t0 RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP\n\n")
    assert isinstance(setup, SetupRequest)
    assert setup.transport.interleaved == (0, 1)  # the server picks channels when the client names none
    server.accept_setup(setup)
    sid = server.session_id
    server.data_to_send()
    assert server_request(server, f"PAUSE rtsp://h/a RTSP/1.0\nCSeq: 2\nSession: {sid}\n\n") == []
    response = parse_message(server.data_to_send())
    assert isinstance(response, RtspResponse)
    assert response.status_code == 455
    assert "PLAY" in (response.headers.get("Allow") or "")
    assert server_request(server, f"PLAY rtsp://h/a RTSP/1.0\nCSeq: 3\nSession: {sid}\nRange: bogus\n\n") == []
    assert server_status(server) == 457
    assert server_request(server, f"PLAY rtsp://h/a RTSP/1.0\nCSeq: 4\nSession: {sid}\nScale: fast\n\n") == []
    assert server_status(server) == 400


def test_server_channel_clash_and_reject_and_misuse() -> None:
    server = RtspServerConnection(rng=random.Random(0))
    text = "SETUP rtsp://h/a/t{n} RTSP/1.0\nCSeq: {n}\nTransport: RTP/AVP/TCP;interleaved=0-1\n{s}\n"
    (first,) = server_request(server, text.format(n=1, s=""))
    server.accept_setup(first)
    server.data_to_send()
    (second,) = server_request(server, text.format(n=2, s=f"Session: {server.session_id}\n"))
    assert isinstance(second, SetupRequest)
    assert second.transport.interleaved == (2, 3)
    assert second.track == "t2"
    server.reject(second, 404)
    assert server_status(server) == 404
    with pytest.raises(LocalProtocolError, match="already answered"):
        server.reject(second, 404)
    with pytest.raises(LocalProtocolError):
        server.reject(first, 200)
    (describe,) = server_request(server, "DESCRIBE rtsp://h/a RTSP/1.0\nCSeq: 5\n\n")
    with pytest.raises(LocalProtocolError):
        server.accept(describe)  # type: ignore[arg-type]
    (again,) = server_request(server, text.format(n=6, s=""))
    with pytest.raises(LocalProtocolError):
        server.accept_setup(again, transport=Transport(protocol="RTP/AVP", client_port=(1, 2)))
    with pytest.raises(LocalProtocolError):
        server.accept_setup(again, transport=Transport(protocol="RTP/AVP/TCP"))
    with pytest.raises(LocalProtocolError):
        server.send_interleaved(300, b"x")
    with pytest.raises(LocalProtocolError):
        server.send_interleaved_many(300, [b"x"])
    with pytest.raises(LocalProtocolError):
        server.send_interleaved_many(0, [bytes(70000)])
    with pytest.raises(LocalProtocolError):
        RtspServerConnection(rng=random.Random(0), auth=DigestServer("r", random.Random(0)))
    with pytest.raises(LocalProtocolError):
        RtspServerConnection(rng=random.Random(0), session_timeout=0)


def test_server_oversized_message_hint_and_eof() -> None:
    server = RtspServerConnection(rng=random.Random(0), max_message_size=128)
    server.receive_data(b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 200)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.status_hint == 413
    hint = info.value.event_hint
    assert isinstance(hint, RtspResponse)
    assert hint.status_code == 413
    assert server.state is ServerState.ERROR
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    with pytest.raises(LocalProtocolError):
        server.send_interleaved(0, b"x")
    server = RtspServerConnection(rng=random.Random(0))
    server.receive_data(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")  # a stray response: ignored
    server.receive_data(b"")
    assert events(server) == [ConnectionClosed()]
    assert server.state is ServerState.CLOSED


def server_in(state: ServerState) -> RtspServerConnection:
    server = RtspServerConnection(rng=random.Random(0))
    if state is ServerState.INIT:
        return server
    if state in (ServerState.READY, ServerState.PLAYING):
        (setup,) = server_request(server, "SETUP rtsp://h/a/t RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP/TCP\n\n")
        server.accept_setup(setup)
        if state is ServerState.PLAYING:
            (play,) = server_request(server, f"PLAY rtsp://h/a RTSP/1.0\nCSeq: 2\nSession: {server.session_id}\n\n")
            server.accept_play(play)
        server.data_to_send()
        return server
    if state is ServerState.CLOSED:
        server.receive_data(b"")
        events(server)
    else:
        server.receive_data(b"\x00")
        with pytest.raises(RemoteProtocolError):
            server.next_event()
    return server


REQUEST_INPUTS = ["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER"]
EVENT_OF = {
    "OPTIONS": OptionsRequest,
    "DESCRIBE": DescribeRequest,
    "SETUP": SetupRequest,
    "PLAY": PlayRequest,
    "PAUSE": PauseRequest,
    "TEARDOWN": TeardownRequest,
    "GET_PARAMETER": GetParameterRequest,
}


@pytest.mark.parametrize("state", [ServerState.INIT, ServerState.READY, ServerState.PLAYING])
@pytest.mark.parametrize("method", REQUEST_INPUTS)
def test_server_every_request_in_every_live_state(state: ServerState, method: str) -> None:
    from fluxkit.protocols.rtsp import ServerInput

    server = server_in(state)
    session = f"Session: {server.session_id}\n" if server.session_id else ""
    transport = "Transport: RTP/AVP/TCP\n" if method == "SETUP" else ""
    got = server_request(server, f"{method} rtsp://h/a/t RTSP/1.0\nCSeq: 9\n{session}{transport}\n")
    allowed = (state, ServerInput[method]) in SERVER_TRANSITIONS
    needs_session = method in ("PLAY", "PAUSE", "TEARDOWN")
    if allowed:
        assert [type(e) for e in got] == [EVENT_OF[method]]
        event = got[0]
        if isinstance(event, SetupRequest):
            server.accept_setup(event)
        elif isinstance(event, PlayRequest):
            server.accept_play(event)
        elif isinstance(event, PauseRequest | TeardownRequest):
            server.accept(event)
        elif isinstance(event, DescribeRequest):
            server.respond_describe(event, SDP)
        assert server.state is SERVER_TRANSITIONS[(state, ServerInput[method])]
        assert server_status(server) == 200
    else:
        assert got == []
        assert server_status(server) == (454 if needs_session and server.session_id is None else 455)
        assert server.state is state


@pytest.mark.parametrize("state", [ServerState.CLOSED, ServerState.ERROR])
def test_server_terminal_states(state: ServerState) -> None:
    server = server_in(state)
    for event in list(__import__("fluxkit.protocols.rtsp", fromlist=["ServerInput"]).ServerInput):
        assert (state, event) not in SERVER_TRANSITIONS
        with pytest.raises(LocalProtocolError):
            server._transition(event)
    if state is ServerState.CLOSED:
        assert server.next_event() is NEED_DATA
    else:
        with pytest.raises(RemoteProtocolError):
            server.next_event()


# -- garbage ------------------------------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_client_garbage(data: bytes) -> None:
    client = playing_client()
    with contextlib.suppress(ProtocolError):
        client.receive_data(data)
        client.receive_data(b"")
        while client.next_event() is not NEED_DATA:
            pass


@given(
    st.lists(
        st.sampled_from(
            [
                b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
                b"SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n",
                b"PLAY rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\nSession: x\r\n\r\n",
                b"$\x01\x00\x02ab",
                b"\r\n",
            ]
        )
        | st.binary(max_size=40),
        max_size=8,
    )
)
def test_server_garbage(chunks: list[bytes]) -> None:
    server = RtspServerConnection(rng=random.Random(0))
    with contextlib.suppress(ProtocolError):
        for chunk in chunks:
            server.receive_data(chunk, now=1.0)
            while (event := server.next_event()) is not NEED_DATA:
                if isinstance(event, SetupRequest):
                    server.accept_setup(event)
        server.receive_data(b"")
        while server.next_event() is not NEED_DATA:
            pass


def test_event_base_class() -> None:
    assert isinstance(ConnectionClosed(), Event)
