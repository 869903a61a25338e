"""SDP (RFC 8866) with the GB28181 additions: golden offers/answers as GB28181 peers send them, exact round trips,
the field quirks of gb28181.md (missing final CRLF, LF-only, f= empty slots, y= leading zeros, RTP/AVP/TCP, vendor
stream attributes), errors, the offer/answer builders, Hypothesis round trips and garbage."""

from __future__ import annotations

import contextlib

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError
from fluxkit.protocols.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    MediaDescription,
    MediaFormat,
    Origin,
    SessionDescription,
    Timing,
    build_gb28181_answer,
    build_gb28181_offer,
    format_ssrc,
    parse_sdp,
)


def crlf(*lines: str) -> str:
    return "".join(f"{line}\r\n" for line in lines)


# The Appendix F example shape: a Download offer over TCP (passive), as in gb28181.md.
DOWNLOAD_OFFER = crlf(
    "v=0",
    "o=34020000002000000001 0 0 IN IP4 192.168.1.10",
    "s=Download",
    "u=34020000001320000001:0",
    "c=IN IP4 192.168.1.10",
    "t=1704067200 1704070800",
    "m=video 30000 TCP/RTP/AVP 96 98 97",
    "a=recvonly",
    "a=rtpmap:96 PS/90000",
    "a=rtpmap:98 H264/90000",
    "a=rtpmap:97 MPEG4/90000",
    "a=setup:passive",
    "a=connection:new",
    "a=downloadspeed:4",
    "y=1200007585",
    "f=v/2/6/25/1/4000a///",
)

# A live-view answer as a Hikvision IPC sends it (UDP, PS only, empty f=).
PLAY_ANSWER = crlf(
    "v=0",
    "o=34020000001320000001 0 0 IN IP4 192.168.1.64",
    "s=Play",
    "c=IN IP4 192.168.1.64",
    "t=0 0",
    "m=video 15060 RTP/AVP 96",
    "a=sendonly",
    "a=rtpmap:96 PS/90000",
    "a=filesize:0",
    "y=0200007585",
    "f=",
)

# A generic RTSP-camera SDP with session-level attributes, bandwidth, fmtp and audio with channels.
RTSP_DESCRIBE = crlf(
    "v=0",
    "o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.20",
    "s=Media Presentation",
    "i=Camera",
    "e=NONE",
    "c=IN IP4 0.0.0.0",
    "b=AS:5100",
    "t=0 0",
    "a=control:*",
    "a=range:npt=0-",
    "m=video 0 RTP/AVP 96",
    "i=Video",
    "c=IN IP4 0.0.0.0",
    "b=AS:5000",
    "a=recvonly",
    "a=control:trackID=1",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA",
    "m=audio 0 RTP/AVP 8 97",
    "a=rtpmap:8 PCMA/8000/1",
    "a=rtpmap:97 MPEG4-GENERIC/16000/2",
    "a=control:trackID=2",
)


@pytest.mark.parametrize("text", [DOWNLOAD_OFFER, PLAY_ANSWER, RTSP_DESCRIBE])
def test_golden_round_trip_exact(text: str) -> None:
    assert parse_sdp(text).serialize() == text


def test_download_offer_fields() -> None:
    sdp = parse_sdp(DOWNLOAD_OFFER)
    assert sdp.origin == Origin(username="34020000002000000001", address="192.168.1.10")
    assert sdp.session_name == "Download"
    assert sdp.uri == "34020000001320000001:0"
    assert sdp.channel_id == "34020000001320000001"
    assert sdp.uri_type == 0
    assert sdp.timing == Timing(start=1704067200, stop=1704070800)
    assert sdp.connection == Connection(address="192.168.1.10")
    (video,) = sdp.media
    assert (video.media, video.port, video.proto, video.formats) == ("video", 30000, "TCP/RTP/AVP", ("96", "98", "97"))
    assert video.is_tcp
    assert video.setup == "passive"
    assert video.connection_mode == "new"
    assert video.download_speed == 4
    assert video.direction == "recvonly"
    assert {pt: (m.encoding, m.clock_rate) for pt, m in video.rtpmaps.items()} == {
        96: ("PS", 90000),
        98: ("H264", 90000),
        97: ("MPEG4", 90000),
    }
    assert sdp.connection_for(video) == sdp.connection
    assert sdp.ssrc == "1200007585"
    assert sdp.ssrc_int == 1200007585
    fmt = sdp.media_format
    assert fmt == MediaFormat(video=("2", "6", "25", "1", "4000"), audio=("", "", ""))
    assert (fmt.video_codec, fmt.resolution, fmt.frame_rate, fmt.bitrate_type, fmt.video_kbps) == (2, 6, 25, 1, 4000)
    assert (fmt.audio_codec, fmt.audio_bitrate, fmt.sample_rate) == (None, None, None)


def test_ssrc_leading_zeros_and_int() -> None:
    sdp = parse_sdp(PLAY_ANSWER)
    # gb28181.md: y=0200007585 -> SSRC 0x0BEBDFA1, the pair in SRS's INVITE test and captured packet.
    assert sdp.ssrc == "0200007585"
    assert sdp.ssrc_int == 0x0BEBDFA1
    assert sdp.media[0].ssrc == "0200007585"
    assert sdp.media[0].ssrc_int == 0x0BEBDFA1
    assert sdp.media[0].file_size == 0
    assert sdp.media_format == MediaFormat()
    assert "y=0200007585\r\n" in sdp.serialize()


def test_rtsp_describe_helpers() -> None:
    sdp = parse_sdp(RTSP_DESCRIBE)
    assert sdp.attribute("control") == "*"
    assert sdp.bandwidths == (Bandwidth(type="AS", value=5100),)
    assert sdp.emails == ("NONE",)
    assert sdp.ssrc is None
    assert sdp.ssrc_int is None
    assert sdp.media_format is None
    video, audio = sdp.media
    assert video.information == "Video"
    assert video.connection == Connection(address="0.0.0.0")
    assert video.fmtps[96].parameters["packetization-mode"] == "1"
    assert video.fmtps[96].parameters["sprop-parameter-sets"] == "Z01AKI2NQDwBE/LCAAAOEAACvyAI,aO44gA"
    assert audio.rtpmaps[8].channels == 1
    assert audio.rtpmaps[97].encoding == "MPEG4-GENERIC"
    assert audio.attribute_values("rtpmap") == ["8 PCMA/8000/1", "97 MPEG4-GENERIC/16000/2"]
    assert audio.attribute("nothing") is None
    assert audio.direction is None
    assert not audio.is_tcp


def test_missing_final_crlf_and_lf_only_are_accepted() -> None:
    lf_only = DOWNLOAD_OFFER.replace("\r\n", "\n").rstrip("\n")
    sdp = parse_sdp(lf_only)
    assert sdp == parse_sdp(DOWNLOAD_OFFER)
    out = sdp.serialize()
    assert out == DOWNLOAD_OFFER
    assert out.endswith("\r\n")  # Hikvision answers 415 without it


def test_serialize_always_ends_with_crlf() -> None:
    assert parse_sdp("v=0").serialize() == "v=0\r\n"
    assert parse_sdp(PLAY_ANSWER.rstrip()).serialize().endswith("f=\r\n")


@pytest.mark.parametrize(
    ("value", "video", "audio"),
    [
        ("", None, None),
        ("v/////a/1/8/1", ("", "", "", "", ""), ("1", "8", "1")),  # audio-only G.711 64 kbps 8 kHz
        ("v/2/5/25/2/2048a///", ("2", "5", "25", "2", "2048"), ("", "", "")),
        ("v/2/6/25/1/4000", ("2", "6", "25", "1", "4000"), None),
        ("a/1/8/1", None, ("1", "8", "1")),
        ("v/2/1920x1080/25/1/4000a/1/8/1", ("2", "1920x1080", "25", "1", "4000"), ("1", "8", "1")),
    ],
)
def test_f_line_slots_kept(value: str, video: tuple[str, ...] | None, audio: tuple[str, ...] | None) -> None:
    text = PLAY_ANSWER.replace("f=\r\n", f"f={value}\r\n")
    sdp = parse_sdp(text)
    assert sdp.media_format == MediaFormat(video=video, audio=audio)
    assert sdp.serialize() == text


def test_media_format_build() -> None:
    fmt = MediaFormat.build(video_codec=2, resolution=6, frame_rate=25, bitrate_type=1, video_kbps=4000)
    assert fmt.serialize() == "v/2/6/25/1/4000a///"
    assert MediaFormat.build(audio_codec=1, audio_bitrate=8, sample_rate=1).serialize() == "v/////a/1/8/1"


def test_odd_f_line_is_kept_verbatim() -> None:
    text = PLAY_ANSWER.replace("f=\r\n", "f=garbage\r\n")
    sdp = parse_sdp(text)
    assert sdp.media_format is None
    assert sdp.media[0].other_lines == ("f=garbage",)
    assert "f=garbage\r\n" in sdp.serialize()
    assert parse_sdp(sdp.serialize()) == sdp


def test_rtp_avp_tcp_variant() -> None:
    text = PLAY_ANSWER.replace("RTP/AVP 96", "RTP/AVP/TCP 96")
    sdp = parse_sdp(text)
    assert sdp.media[0].proto == "RTP/AVP/TCP"
    assert sdp.media[0].is_tcp
    assert sdp.serialize() == text


def test_vendor_stream_selection_attributes_kept() -> None:
    text = PLAY_ANSWER.replace(
        "a=filesize:0\r\n", "a=stream:1\r\na=streamprofile:1\r\na=streamnumber:1\r\na=streamMode:SUB\r\n"
    )
    sdp = parse_sdp(text)
    media = sdp.media[0]
    assert media.attribute("stream") == "1"
    assert media.attribute("streamprofile") == "1"
    assert media.attribute("streamnumber") == "1"
    assert media.attribute("streamMode") == "SUB"
    assert media.has_attribute("streamnumber")
    assert sdp.serialize() == text


@pytest.mark.parametrize("kind", ["Play", "Playback", "Download", "Talk"])
def test_session_names(kind: str) -> None:
    assert parse_sdp(PLAY_ANSWER.replace("s=Play", f"s={kind}")).session_name == kind


def test_unknown_lines_kept() -> None:
    text = crlf("v=0", "o=- 0 0 IN IP4 1.2.3.4", "s=Play", "x=vendor", "t=0 0", "m=video 1 RTP/AVP 96", "w=odd", "y=1")
    sdp = parse_sdp(text)
    assert sdp.other_lines == ("x=vendor",)
    assert sdp.media[0].other_lines == ("w=odd",)
    assert sdp.ssrc == "1"
    # Canonical output puts unknown lines last in their section.
    assert parse_sdp(sdp.serialize()) == sdp


def test_session_level_y_and_f() -> None:
    text = crlf("v=0", "o=- 0 0 IN IP4 1.2.3.4", "s=Play", "t=0 0", "y=0000000001", "f=v/2////a///")
    sdp = parse_sdp(text)
    assert sdp.y == "0000000001"
    assert sdp.ssrc_int == 1
    assert sdp.media_format is not None
    assert sdp.serialize() == text


def test_repeat_zone_key_phone() -> None:
    text = crlf(
        "v=0",
        "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
        "s=SDP Seminar",
        "u=http://www.example.com/seminars/sdp.pdf",
        "e=j.doe@example.com (Jane Doe)",
        "p=+1 617 555-6011",
        "c=IN IP4 224.2.17.12/127",
        "t=2873397496 2873404696",
        "r=604800 3600 0 90000",
        "z=2882844526 -1h 2898848070 0",
        "k=clear:secret",
        "a=recvonly",
        "m=audio 49170/2 RTP/AVP 0",
        "k=prompt",
        "m=video 51372 RTP/AVP 99",
        "a=rtpmap:99 h263-1998/90000",
    )
    sdp = parse_sdp(text)
    assert sdp.times[0].repeats == ("604800 3600 0 90000",)
    assert sdp.zone == "2882844526 -1h 2898848070 0"
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].key == "prompt"
    assert sdp.connection == Connection(address="224.2.17.12/127")
    assert sdp.serialize() == text


def test_ssrc_int_out_of_range_or_not_digits() -> None:
    assert parse_sdp(crlf("v=0", "y=9999999999")).ssrc_int is None
    assert parse_sdp(crlf("v=0", "y=abc")).ssrc_int is None
    assert parse_sdp(crlf("v=0", "y=4294967295")).ssrc_int == 0xFFFFFFFF


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\r\n\r\n",
        "o=- 0 0 IN IP4 1.2.3.4\r\nv=0\r\n",  # v= not first
        "v=x\r\n",
        "v=0\r\nm=video\r\n",  # bad m= line
        "v=0\r\nm=video abc RTP/AVP 96\r\n",
        "v=0\r\nm=video 70000 RTP/AVP 96\r\n",
        "v=0\r\nm=video 1/x RTP/AVP 96\r\n",
        "v=0\r\no=- 0 0 IN IP4\r\n",
        "v=0\r\nc=IN IP4\r\n",
        "v=0\r\nt=0\r\n",
        "v=0\r\nt=a b\r\n",
        "v=0\r\nb=AS\r\n",
        "v=0\r\nb=AS:x\r\n",
        "v=0\r\nm=video 1 RTP/AVP 96\r\nc=IN\r\n",
    ],
)
def test_structural_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse_sdp(text)


def test_size_limit_and_type() -> None:
    with pytest.raises(ParseError):
        parse_sdp("v=0\r\n" + "a=x\r\n" * 10, max_size=20)
    with pytest.raises(ParseError):
        parse_sdp(b"v=0\r\n")  # type: ignore[arg-type]


def test_serialize_rejects_line_breaks() -> None:
    sdp = SessionDescription(session_name="Play\r\nx=injected")
    with pytest.raises(LocalProtocolError):
        sdp.serialize()


def test_encode_bytes() -> None:
    assert parse_sdp(PLAY_ANSWER).encode() == PLAY_ANSWER.encode()


def test_trailing_data_after_sdp() -> None:
    # SIP hands the parser exactly Content-Length bytes; trailing blank lines and NUL-free junk lines are tolerated.
    sdp = parse_sdp(PLAY_ANSWER + "\r\n\r\n")
    assert sdp == parse_sdp(PLAY_ANSWER)


def test_bom_is_ignored() -> None:
    assert parse_sdp("\ufeff" + PLAY_ANSWER) == parse_sdp(PLAY_ANSWER)


# -- builders ---------------------------------------------------------------------------------------------------------


def test_build_live_offer_udp() -> None:
    offer = build_gb28181_offer(
        kind="Play", origin_id="34020000002000000001", address="10.0.0.1", port=30000, ssrc=200007585
    )
    assert offer.serialize() == crlf(
        "v=0",
        "o=34020000002000000001 0 0 IN IP4 10.0.0.1",
        "s=Play",
        "c=IN IP4 10.0.0.1",
        "t=0 0",
        "m=video 30000 RTP/AVP 96 98 97",
        "a=recvonly",
        "a=rtpmap:96 PS/90000",
        "a=rtpmap:98 H264/90000",
        "a=rtpmap:97 MPEG4/90000",
        "y=0200007585",
        "f=",
    )


def test_build_download_offer_matches_golden() -> None:
    offer = build_gb28181_offer(
        kind="Download",
        origin_id="34020000002000000001",
        address="192.168.1.10",
        port=30000,
        ssrc="1200007585",
        transport="tcp-passive",
        channel_id="34020000001320000001",
        start=1704067200,
        end=1704070800,
        download_speed=4,
        media_format=MediaFormat.build(video_codec=2, resolution=6, frame_rate=25, bitrate_type=1, video_kbps=4000),
    )
    assert offer.serialize() == DOWNLOAD_OFFER


def test_build_answer_tcp_and_ssrc_override() -> None:
    offer = parse_sdp(DOWNLOAD_OFFER)
    answer = build_gb28181_answer(
        offer, origin_id="34020000001320000001", address="192.168.1.64", port=15060, file_size=123456
    )
    text = answer.serialize()
    assert "m=video 15060 TCP/RTP/AVP 96\r\n" in text
    assert "a=sendonly\r\na=rtpmap:96 PS/90000\r\na=setup:active\r\na=connection:new\r\na=filesize:123456\r\n" in text
    assert answer.ssrc == "1200007585"
    assert answer.timing == Timing(start=1704067200, stop=1704070800)
    # Appendix F note 4: a device in another domain picks its own SSRC; Dahua may answer 0.
    other = build_gb28181_answer(offer, origin_id="x", address="1.1.1.1", port=1, ssrc=0, payload_type=98)
    assert other.ssrc == "0000000000"
    assert other.media[0].formats == ("98",)
    assert parse_sdp(other.serialize()) == other


def test_build_answer_active_offer_and_talk() -> None:
    offer = build_gb28181_offer(
        kind="Talk",
        origin_id="a",
        address="1.1.1.1",
        port=2,
        ssrc=1,
        transport="tcp-active",
        rtpmaps=((8, "PCMA/8000"),),
        media="audio",
    )
    assert offer.media[0].setup == "active"
    assert offer.media[0].direction == "sendrecv"
    answer = build_gb28181_answer(offer, origin_id="b", address="2.2.2.2", port=3)
    assert answer.media[0].setup == "passive"
    assert answer.media[0].direction == "sendrecv"
    assert answer.media[0].media == "audio"


def test_builder_errors() -> None:
    with pytest.raises(LocalProtocolError):
        build_gb28181_offer(kind="Playback", origin_id="a", address="1.1.1.1", port=1, ssrc=1)
    with pytest.raises(LocalProtocolError):
        build_gb28181_offer(kind="Play", origin_id="a", address="1.1.1.1", port=70000, ssrc=1)
    with pytest.raises(LocalProtocolError):
        build_gb28181_offer(kind="Play", origin_id="a", address="1.1.1.1", port=1, ssrc=1, transport="sctp")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        build_gb28181_answer(SessionDescription(), origin_id="a", address="1.1.1.1", port=1)
    for bad in (1 << 32, "12345678901", "12a", -1):
        with pytest.raises(LocalProtocolError):
            format_ssrc(bad)
    assert format_ssrc("0200007585") == "0200007585"
    assert format_ssrc(7585) == "0000007585"


# -- Hypothesis -------------------------------------------------------------------------------------------------------

token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._+", min_size=1, max_size=12)
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\r\n\x85"),
    max_size=20,
).map(str.strip)
digits = st.text(alphabet="0123456789", min_size=1, max_size=10)
uint = st.integers(0, 2**40)
slot = st.text(alphabet="0123456789x", max_size=5)

origins = st.builds(Origin, username=token, session_id=digits, session_version=digits, address=token)
connections = st.builds(Connection, address=token, nettype=token, addrtype=token)
attributes = st.builds(
    Attribute,
    name=token,
    value=st.none()
    | st.text(
        alphabet=st.characters(blacklist_characters="\r\n\x85", blacklist_categories=("Cs", "Zl", "Zp")), max_size=20
    ),
)
bandwidths = st.builds(Bandwidth, type=token, value=uint)
media_formats = st.builds(
    MediaFormat,
    video=st.none() | st.lists(slot, min_size=1, max_size=6).map(tuple),
    audio=st.none() | st.lists(st.text(alphabet="0123456789", max_size=3), min_size=1, max_size=4).map(tuple),
)
medias = st.builds(
    MediaDescription,
    media=token,
    port=st.integers(0, 65535),
    port_count=st.none() | st.integers(1, 65535),
    proto=st.sampled_from(["RTP/AVP", "TCP/RTP/AVP", "RTP/AVP/TCP", "RTP/SAVPF"]),
    formats=st.lists(token, max_size=4).map(tuple),
    information=st.none() | free_text,
    connections=st.lists(connections, max_size=2).map(tuple),
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    attributes=st.lists(attributes, max_size=5).map(tuple),
    y=st.none() | digits,
    f=st.none() | media_formats,
)
sessions = st.builds(
    SessionDescription,
    version=st.integers(0, 9),
    origin=st.none() | origins,
    session_name=st.none() | st.sampled_from(["Play", "Playback", "Download", "Talk", "-"]),
    information=st.none() | free_text,
    uri=st.none() | st.builds(lambda c, t: f"{c}:{t}", digits, st.integers(0, 3)),
    emails=st.lists(token, max_size=2).map(tuple),
    connection=st.none() | connections,
    bandwidths=st.lists(bandwidths, max_size=2).map(tuple),
    times=st.lists(
        st.builds(Timing, start=uint, stop=uint, repeats=st.lists(token, max_size=2).map(tuple)), max_size=2
    ).map(tuple),
    attributes=st.lists(attributes, max_size=4).map(tuple),
    y=st.none() | digits,
    f=st.none() | media_formats,
    media=st.lists(medias, max_size=3).map(tuple),
)


@given(sessions)
def test_round_trip(sdp: SessionDescription) -> None:
    text = sdp.serialize()
    assert text.endswith("\r\n")
    parsed = parse_sdp(text)
    assert parsed == sdp
    assert parsed.serialize() == text


@given(st.text(max_size=300))
def test_garbage_text(text: str) -> None:
    try:
        sdp = parse_sdp(text)
    except ProtocolError:
        return
    # Whatever parses can be written back (unless a kept line holds a stray CR).
    with contextlib.suppress(LocalProtocolError):
        sdp.serialize()


@given(
    st.lists(st.sampled_from(DOWNLOAD_OFFER.split("\r\n") + RTSP_DESCRIBE.split("\r\n") + ["y=", "f=v", "m=", "b=:"]))
)
def test_shuffled_known_lines(lines: list[str]) -> None:
    try:
        sdp = parse_sdp("v=0\r\n" + "\r\n".join(lines))
    except ProtocolError:
        return
    assert parse_sdp(sdp.serialize()).serialize() == sdp.serialize()


def test_evolve_keeps_records_frozen() -> None:
    sdp = parse_sdp(PLAY_ANSWER)
    changed = attrs.evolve(sdp, session_name="Playback")
    assert changed.session_name == "Playback"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sdp.session_name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "v=0\r\nr=1 2 3\r\nt=0 0\r\na=x\r\n",  # r= before its t= (fuzz find): attached to the first t=
        "v=0\r\nr=1 2 3\r\na=x\r\n",  # r= with no t= at all: kept verbatim
        "v=0\r\ny=1\r\ny=2\r\nv=0\r\n",  # repeated single lines: first is the field, the rest kept
    ],
)
def test_reparse_is_stable(text: str) -> None:
    once = parse_sdp(text).serialize()
    assert parse_sdp(once).serialize() == once
