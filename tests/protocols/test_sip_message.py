"""SIP message parsing and serialization: GB28181 golden flows, RFC 4475 torture categories, limits, properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.sip import (
    CSeq,
    Headers,
    NameAddress,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    parse_message,
    split_comma_list,
)


def crlf(text: str) -> bytes:
    """Golden messages are written with \\n; the wire has CRLF."""
    return text.replace("\n", "\r\n").encode("utf-8")


GB_REGISTER = crlf(
    """REGISTER sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1371463273
From: <sip:34020000001320000001@3402000000>;tag=2043466181
To: <sip:34020000001320000001@3402000000>
Call-ID: 1011047669
CSeq: 1 REGISTER
Contact: <sip:34020000001320000001@192.168.1.64:5060>
Max-Forwards: 70
User-Agent: IP Camera
Expires: 3600
Content-Length: 0

"""
)

GB_REGISTER_AUTH = crlf(
    """REGISTER sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK2020371513
From: <sip:34020000001320000001@3402000000>;tag=2043466181
To: <sip:34020000001320000001@3402000000>
Call-ID: 1011047669
CSeq: 2 REGISTER
Contact: <sip:34020000001320000001@192.168.1.64:5060>
Authorization: Digest username="34020000001320000001", realm="3402000000", nonce="44d5d4a1b9c5ad5e", \
uri="sip:34020000002000000001@3402000000", response="ba5d1e4d1ae0e7cc12a3b6a2e4bcbd9b", algorithm=MD5
Max-Forwards: 70
User-Agent: IP Camera
Expires: 3600
Content-Length: 0

"""
)

GB_401 = crlf(
    """SIP/2.0 401 Unauthorized
Via: SIP/2.0/UDP 192.168.1.64:5060;rport=5060;branch=z9hG4bK1371463273;received=192.168.1.64
From: <sip:34020000001320000001@3402000000>;tag=2043466181
To: <sip:34020000001320000001@3402000000>;tag=a1b2c3d4
Call-ID: 1011047669
CSeq: 1 REGISTER
WWW-Authenticate: Digest realm="3402000000",nonce="44d5d4a1b9c5ad5e",algorithm=MD5
Content-Length: 0

"""
)

KEEPALIVE_BODY = (
    '<?xml version="1.0" encoding="GB2312"?>\r\n<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n'
    "<DeviceID>34020000001320000001</DeviceID>\r\n<Status>OK</Status>\r\n<Name>前门</Name>\r\n</Notify>\r\n"
).encode("gb18030")

GB_MESSAGE = (
    crlf(
        """MESSAGE sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.64:5060;rport;branch=z9hG4bK1893450710
From: <sip:34020000001320000001@3402000000>;tag=1210442813
To: <sip:34020000002000000001@3402000000>
Call-ID: 2080318093
CSeq: 20 MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
User-Agent: IP Camera
"""
    )
    + f"Content-Length: {len(KEEPALIVE_BODY)}\r\n\r\n".encode()
    + KEEPALIVE_BODY
)

INVITE_SDP = crlf(
    """v=0
o=34020000002000000001 0 0 IN IP4 192.168.1.10
s=Play
c=IN IP4 192.168.1.10
t=0 0
m=video 30000 RTP/AVP 96 98 97
a=recvonly
a=rtpmap:96 PS/90000
a=rtpmap:98 H264/90000
a=rtpmap:97 MPEG4/90000
y=0100000001
"""
)

GB_INVITE = (
    crlf(
        """INVITE sip:34020000001320000001@3402000000 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;rport;branch=z9hG4bK573950612
From: <sip:34020000002000000001@3402000000>;tag=519835212
To: <sip:34020000001320000001@3402000000>
Call-ID: 608153745
CSeq: 20 INVITE
Contact: <sip:34020000002000000001@192.168.1.10:5060>
Content-Type: APPLICATION/SDP
Max-Forwards: 70
Subject: 34020000001320000001:0100000001,34020000002000000001:0
"""
    )
    + f"Content-Length: {len(INVITE_SDP)}\r\n\r\n".encode()
    + INVITE_SDP
)

GOLDEN = [GB_REGISTER, GB_REGISTER_AUTH, GB_401, GB_MESSAGE, GB_INVITE]


@pytest.mark.parametrize("data", GOLDEN)
def test_golden_round_trip_exact(data: bytes) -> None:
    message = parse_message(data)
    assert message.serialize() == data
    assert parse_message(message.serialize()) == message


def test_gb_register_fields() -> None:
    msg = parse_message(GB_REGISTER)
    assert isinstance(msg, SipRequest)
    assert msg.method == "REGISTER"
    assert msg.uri == "sip:34020000002000000001@3402000000"
    assert msg.via == Via(
        transport="UDP", host="192.168.1.64", port=5060, params=(("rport", None), ("branch", "z9hG4bK1371463273"))
    )
    assert msg.via.branch == "z9hG4bK1371463273"
    assert msg.via.has_rport
    assert msg.via.rport is None
    assert msg.from_.tag == "2043466181"
    assert msg.from_.uri == "sip:34020000001320000001@3402000000"
    assert msg.to.tag is None
    assert msg.call_id == "1011047669"
    assert msg.cseq == CSeq(seq=1, method="REGISTER")
    assert msg.contact == NameAddress(uri="sip:34020000001320000001@192.168.1.64:5060")
    assert msg.expires == 3600
    assert msg.max_forwards == 70
    assert msg.content_length == 0
    assert msg.body == b""
    assert msg.headers["user-agent"] == "IP Camera"
    assert "EXPIRES" in msg.headers


def test_gb_401_fields() -> None:
    msg = parse_message(GB_401)
    assert isinstance(msg, SipResponse)
    assert (msg.status_code, msg.reason) == (401, "Unauthorized")
    assert msg.via.rport == 5060
    assert msg.via.received == "192.168.1.64"
    assert msg.to.tag == "a1b2c3d4"
    assert msg.headers["www-authenticate"].startswith("Digest realm")


def test_gb_message_body_bytes_kept() -> None:
    msg = parse_message(GB_MESSAGE)
    assert msg.body == KEEPALIVE_BODY
    assert msg.content_type == "Application/MANSCDP+xml"
    assert "前门".encode("gb18030") in msg.body


def test_gb_invite_fields() -> None:
    msg = parse_message(GB_INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.body == INVITE_SDP
    assert msg.body.endswith(b"\r\n")
    assert msg.headers["Subject"].startswith("34020000001320000001:0100000001")


# --- RFC 4475 torture-test categories -------------------------------------------------------------------------


def test_compact_forms_expanded() -> None:
    data = crlf(
        """MESSAGE sip:kumiko@example.org SIP/2.0
v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcompact
f: <sip:a@example.org>;tag=1
t: <sip:kumiko@example.org>
i: compact-1@192.0.2.1
CSeq: 8 MESSAGE
m: <sip:a@192.0.2.1>
c: text/plain
s: hi
k: timer
o: presence
u: dialog
l: 5

hello"""
    )
    msg = parse_message(data)
    names = [n for n, _ in msg.headers.fields]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Type",
        "Subject",
        "Supported",
        "Event",
        "Allow-Events",
        "Content-Length",
    ]
    assert msg.call_id == "compact-1@192.0.2.1"
    assert msg.headers.get("i") == msg.headers.get("call-id") == "compact-1@192.0.2.1"
    assert msg.body == b"hello"
    assert b"Call-ID: compact-1" in msg.serialize()


def test_unusual_whitespace_and_folding() -> None:
    # After RFC 4475 §3.1.1.1 (wsinv): whitespace before colons, tabs, folded lines, odd spacing in params.
    data = (
        b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
        b"TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
        b'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
        b"MaX-fOrWaRdS: 0068\r\n"
        b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
        b"Content-Length   : 0\r\n"
        b"cseq: 0009\r\n  INVITE\r\n"
        b"Via  : SIP  /   2.0\r\n  /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
        b"s :\r\n"
        b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
        b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
        b"v:  SIP/2.0/TCP     192.168.255.111   ; branch=\r\n z9hG4bK1b\r\n\r\n"
    )
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.to.uri == "sip:vivekg@chair-dnrc.example.com"
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.cseq == CSeq(seq=9, method="INVITE")
    vias = msg.vias
    assert [(v.transport, v.host, v.port) for v in vias] == [
        ("UDP", "192.0.2.2", None),
        ("TCP", "192.168.255.111", None),
    ]
    assert vias[1].branch == "z9hG4bK1b"
    assert msg.headers["NewFangledHeader"] == "newfangled value continued newfangled value"
    assert msg.headers["Subject"] == ""
    assert parse_message(msg.serialize()) == msg


def test_escaped_characters_kept() -> None:
    # RFC 4475 §3.1.1.2 (intmeth) / §3.1.1.3 (esc01): escapes in URIs and unusual method tokens survive.
    data = crlf(
        """!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*\
:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="\xd1\x80\xd0\xb0\
\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~: \xef\xbb\xbf\xe5\xa4\xa7\xe5\x81\x9c\xe9\x9b\xbb
Content-Length: 0

"""
    )
    msg = parse_message(data)
    assert isinstance(msg, SipRequest)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.serialize() == data


def test_escaped_uri_and_multiple_via_forms() -> None:
    data = crlf(
        """INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw, SIP/2.0/UDP 192.0.2.1;received=198.51.100.7;rport=5070
Via: SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bK-v6
To: <sip:%61lice@example.com>
From: "Bob \\"the\\" Builder, Jr." <sip:bob@example.net>;tag=x
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
CSeq: 1 INVITE
Contact: <sip:a@h1>;q=0.5, "x,y" <sip:b@h2>, sip:c@h3
Content-Length: 0

"""
    )
    msg = parse_message(data)
    assert msg.uri == "sip:sips%3Auser%40example.com@example.net"  # type: ignore[union-attr]
    assert len(msg.headers.get_all("Via")) == 2
    vias = msg.vias
    assert [v.host for v in vias] == ["host5.example.net", "192.0.2.1", "[2001:db8::9:1]"]
    assert vias[1].received == "198.51.100.7"
    assert vias[1].rport == 5070
    assert vias[2].port == 5061
    assert msg.from_.display_name == 'Bob "the" Builder, Jr.'
    assert [c.uri for c in msg.contacts] == ["sip:a@h1", "sip:b@h2", "sip:c@h3"]
    assert msg.contacts[0].param("q") == "0.5"
    assert msg.serialize() == data


def test_leading_crlf_bare_lf_and_extra_body_bytes() -> None:
    bare = GB_REGISTER.replace(b"\r\n", b"\n")
    assert parse_message(b"\r\n\r\n" + GB_REGISTER) == parse_message(GB_REGISTER)
    assert parse_message(bare) == parse_message(GB_REGISTER)
    # Content-Length 0 and extra bytes on a datagram: dropped (RFC 3261 §18.3).
    assert parse_message(GB_REGISTER + b"junk").body == b""
    # No Content-Length on a datagram: the rest is the body.
    no_length = GB_REGISTER.replace(b"Content-Length: 0\r\n", b"")
    assert parse_message(no_length + b"xyz").body == b"xyz"
    assert parse_message(b"SIP/2.0 200\r\nCSeq: 1 A\r\n\r\n").reason == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (GB_REGISTER[:-2], 400),  # no blank line
        (GB_REGISTER.replace(b"Content-Length: 0", b"Content-Length: 50"), 400),  # body shorter than CL
        (GB_REGISTER.replace(b"Content-Length: 0", b"Content-Length: -1"), 400),
        (GB_REGISTER.replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1), 505),  # RFC 4475 §3.1.2.16 badvers
        (GB_401.replace(b"SIP/2.0 401", b"SIP/2.0 4x1"), 400),
        (GB_401.replace(b"SIP/2.0 401", b"SIP/2.0 999"), 400),
        (b"INVITE sip:a SIP/2.0 extra\r\n\r\n", 400),
        (b"INV@TE sip:a SIP/2.0\r\n\r\n", 400),
        (b"INVITE\r\n\r\n", 400),
        (b"REGISTER sip:a SIP/2.0\r\nno colon here\r\n\r\n", 400),
        (b"REGISTER sip:a SIP/2.0\r\nBad Name: x\r\n\r\n", 400),
        (b"\r\n", 400),
        (b"", 400),
    ],
)
def test_malformed(data: bytes, status: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert info.value.status_hint == status


def test_size_limits_513() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(GB_REGISTER, max_size=100)
    assert info.value.status_hint == 513
    many = GB_REGISTER.replace(b"Content-Length: 0\r\n", b"X-A: 1\r\n" * 300 + b"Content-Length: 0\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(many)
    assert info.value.status_hint == 513


@pytest.mark.parametrize(
    ("accessor", "header", "value"),
    [
        ("cseq", "CSeq", "x REGISTER"),
        ("cseq", "CSeq", "99999999999 REGISTER"),
        ("expires", "Expires", "soon"),
        ("via", "Via", "HTTP/1.1 host"),
        ("via", "Via", "SIP/2.0/UDP host:99999"),
        ("via", "Via", "SIP/2.0/UDP [::1"),
        ("from_", "From", "<sip:a@b"),
        ("from_", "From", '"unterminated <sip:a@b>'),
        ("from_", "From", "<sip:a@b> junk"),
        ("from_", "From", "no-scheme"),
        ("call_id", "Call-ID", None),
    ],
)
def test_typed_accessor_errors(accessor: str, header: str, value: str | None) -> None:
    msg = parse_message(GB_REGISTER)
    headers = msg.headers.without(header) if value is None else msg.headers.with_replaced(header, value)
    broken = SipRequest(method="REGISTER", uri="sip:x", headers=headers)
    with pytest.raises(ParseError):
        getattr(broken, accessor)


def test_headers_api() -> None:
    h = Headers([("v", "SIP/2.0/UDP a"), ("X-Custom", "1"), ("via", "SIP/2.0/UDP b, SIP/2.0/UDP c")])
    assert h.fields[0] == ("Via", "SIP/2.0/UDP a")
    assert h.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b, SIP/2.0/UDP c"]
    assert h.get_list("v") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert h.get("x-custom") == "1"
    assert h.get("missing", "d") == "d"
    assert len(h) == 3
    assert list(h) == list(h.fields)
    assert h.with_added("X-Custom", "2").get_all("X-CUSTOM") == ["1", "2"]
    assert h.with_prepended("Route", "<sip:p>").fields[0] == ("Route", "<sip:p>")
    assert "Via" not in h.without("Via")
    assert h.with_replaced("Via", "SIP/2.0/TCP z").get_all("Via") == ["SIP/2.0/TCP z"]
    assert h.with_replaced("New", "n").get("New") == "n"
    assert h == Headers(h.fields)
    assert hash(h) == hash(Headers(h.fields))
    assert "Headers(" in repr(h)
    with pytest.raises(KeyError):
        h["nope"]
    for bad in [("Bad Name", "x"), ("X", "a\r\nInjected: 1"), ("", "x")]:
        with pytest.raises(LocalProtocolError):
            Headers([bad])
    assert split_comma_list('"a,b" <sip:x,y>, c') == ['"a,b" <sip:x,y>', "c"]
    assert split_comma_list('"a\\",b", c') == ['"a\\",b"', "c"]


def test_serialize_rejects_bad_fields() -> None:
    with pytest.raises(LocalProtocolError):
        SipRequest(method="BAD METHOD", uri="sip:a").serialize()
    with pytest.raises(LocalProtocolError):
        SipResponse(status_code=99).serialize()
    with pytest.raises(LocalProtocolError):
        SipResponse(status_code=200, reason="a\r\nb").serialize()


def test_serialize_fixes_content_length() -> None:
    msg = parse_message(GB_REGISTER)
    import attrs

    grown = attrs.evolve(msg, body=b"12345")
    assert parse_message(grown.serialize()).content_length == 5
    bare = SipRequest(method="OPTIONS", uri="sip:a", headers=Headers([("CSeq", "1 OPTIONS")]))
    assert bare.serialize().endswith(b"Content-Length: 0\r\n\r\n")


def test_make_response() -> None:
    req = parse_message(GB_INVITE)
    assert isinstance(req, SipRequest)
    req = SipRequest(
        method=req.method,
        uri=req.uri,
        headers=req.headers.with_added("Record-Route", "<sip:p1;lr>").with_added("Timestamp", "54"),
        body=req.body,
    )
    trying = make_response(req, 100, to_tag="t1")
    assert trying.reason == "Trying"
    assert trying.to.tag is None  # never on a 100
    assert trying.headers["Timestamp"] == "54"
    ok = make_response(req, 200, to_tag="t1", body=b"v=0\r\n", content_type="application/sdp")
    assert ok.to.tag == "t1"
    assert ok.record_routes == ["<sip:p1;lr>"]
    assert ok.headers.get_all("Via") == req.headers.get_all("Via")
    assert ok.cseq == req.cseq
    assert make_response(req, 486).record_routes == []
    assert make_response(req, 299).reason == ""


def test_name_address_serialize() -> None:
    addr = NameAddress(display_name='a "b"', uri="sip:x@y", params=(("tag", "1"), ("lr", None)))
    assert addr.serialize() == '"a \\"b\\"" <sip:x@y>;tag=1;lr'
    assert NameAddress.parse(addr.serialize()) == addr
    assert addr.with_tag("2").tag == "2"
    assert NameAddress.parse("*").serialize() == "*"
    assert NameAddress.parse("sip:a@b;tag=9") == NameAddress(uri="sip:a@b", params=(("tag", "9"),))


# --- properties ------------------------------------------------------------------------------------------------

_name = st.sampled_from(["Via", "From", "To", "Call-ID", "CSeq", "Subject", "X-Custom", "User-Agent", "Date"])
_value = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30).map(str.strip)
_method = st.from_regex(r"[A-Z]{3,12}", fullmatch=True)
_uri = st.from_regex(r"sips?:[a-z0-9]{1,12}@[a-z0-9.]{1,20}(:[0-9]{1,5})?", fullmatch=True)


@st.composite
def messages(draw: st.DrawFn) -> SipRequest | SipResponse:
    fields = draw(st.lists(st.tuples(_name, _value), max_size=8))
    body = draw(st.binary(max_size=64))
    headers = Headers([*fields, ("Content-Length", str(len(body)))])
    if draw(st.booleans()):
        return SipRequest(method=draw(_method), uri=draw(_uri), headers=headers, body=body)
    reason = draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20))
    return SipResponse(status_code=draw(st.integers(100, 699)), reason=reason, headers=headers, body=body)


@given(messages())
def test_round_trip(message: SipRequest | SipResponse) -> None:
    assert parse_message(message.serialize()) == message


@given(st.binary(max_size=400))
def test_garbage_parses_or_raises_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        msg = parse_message(data)
        for accessor in ("vias", "from_", "to", "cseq", "call_id", "contacts", "expires", "content_length"):
            with contextlib.suppress(ProtocolError):
                getattr(msg, accessor)


@given(st.binary(max_size=200))
def test_garbage_after_valid_head(tail: bytes) -> None:
    head = GB_REGISTER.split(b"Content-Length")[0]
    with contextlib.suppress(ProtocolError):
        parse_message(head + tail)
