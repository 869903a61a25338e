"""Digest and Basic authentication: RFC vectors, header parsing variants, client nc, server verdicts from `now`."""

from __future__ import annotations

import contextlib
import hashlib
import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxkit.errors import LocalProtocolError, ParseError, ProtocolError, RemoteProtocolError
from fluxkit.protocols.digest import (
    BasicCredentials,
    Challenge,
    DigestClient,
    DigestCredentials,
    DigestServer,
    DigestVerdict,
    basic_authorization,
    compute_response,
    normalize_algorithm,
    parse_authorization,
    parse_challenge,
    parse_challenges,
)

# RFC 7616 §3.9.1
RFC7616 = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


def test_rfc7616_md5_vector() -> None:
    assert compute_response(algorithm="MD5", **RFC7616) == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc7616_sha256_vector() -> None:
    assert (
        compute_response(algorithm="SHA-256", **RFC7616)
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_rfc2617_vector() -> None:
    got = compute_response(
        algorithm=None,
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert got == "6629fae49393a05397450978507c4ef1"


def _md5(s: str) -> str:
    return hashlib.md5(s.encode()).hexdigest()


def test_rfc2069_form_and_sess() -> None:
    ha1 = _md5("u:r:p")
    ha2 = _md5("REGISTER:sip:x")
    assert compute_response(
        algorithm="md5", username="u", realm="r", password="p", method="REGISTER", uri="sip:x", nonce="n"
    ) == _md5(f"{ha1}:n:{ha2}")
    sess_ha1 = _md5(f"{ha1}:n:c")
    got = compute_response(
        algorithm="MD5-sess",
        username="u",
        realm="r",
        password="p",
        method="REGISTER",
        uri="sip:x",
        nonce="n",
        qop="auth",
        nc="00000002",
        cnonce="c",
    )
    assert got == _md5(f"{sess_ha1}:n:00000002:c:auth:{ha2}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qop": "auth-int", "nc": "00000001", "cnonce": "c"}, "auth-int"),
        ({"qop": "bogus", "nc": "00000001", "cnonce": "c"}, "unknown qop"),
        ({"qop": "auth"}, "needs nc"),
        ({"algorithm": "MD5-sess"}, "needs qop"),
    ],
)
def test_compute_rejects(kwargs: dict[str, str], message: str) -> None:
    base = {"algorithm": "MD5", "username": "u", "realm": "r", "password": "p", "method": "M", "uri": "u"}
    with pytest.raises(LocalProtocolError, match=message):
        compute_response(**{**base, "nonce": "n", **kwargs})  # type: ignore[arg-type]


def test_normalize_algorithm() -> None:
    assert normalize_algorithm(None) == "MD5"
    assert normalize_algorithm("md5") == "MD5"
    assert normalize_algorithm("sha-256-SESS") == "SHA-256-sess"
    with pytest.raises(ParseError):
        normalize_algorithm("SHA-512-256")


# --- header parsing --------------------------------------------------------------------------------------------


def test_parse_challenge_variants() -> None:
    ch = parse_challenge('digest REALM="3402000000", Nonce="abc",algorithm=md5,  qop="auth,auth-int", stale=TRUE')
    assert ch == Challenge(
        scheme="Digest", realm="3402000000", nonce="abc", algorithm="MD5", qop=("auth", "auth-int"), stale=True
    )
    assert parse_challenge(ch.serialize()) == ch


def test_parse_challenge_gb28181_platform() -> None:
    value = 'Digest realm="3402000000",nonce="44d5d4a1b9c5ad5e0b8ff19d8da0e3b8",algorithm=MD5'
    ch = parse_challenge(value)
    assert (ch.realm, ch.nonce, ch.algorithm, ch.qop, ch.stale) == (
        "3402000000",
        "44d5d4a1b9c5ad5e0b8ff19d8da0e3b8",
        "MD5",
        (),
        False,
    )


def test_parse_several_challenges() -> None:
    value = 'Digest realm="a", nonce="n", algorithm=SHA-256, Digest realm="a", nonce="m", Basic realm="b"'
    chs = parse_challenges(value)
    assert [(c.scheme, c.algorithm, c.nonce) for c in chs] == [
        ("Digest", "SHA-256", "n"),
        ("Digest", None, "m"),
        ("Basic", None, None),
    ]
    assert parse_challenges("Negotiate, Basic realm=x")[1].realm == "x"


def test_quoted_string_escapes_round_trip() -> None:
    ch = parse_challenge(r'Digest realm="a \"q\" \\ b", nonce="x,y", opaque="", domain="sip:a sip:b", foo="bar"')
    assert ch.realm == 'a "q" \\ b'
    assert ch.nonce == "x,y"
    assert ch.opaque == ""
    assert ch.domain == "sip:a sip:b"
    assert ch.extra == (("foo", "bar"),)
    assert parse_challenge(ch.serialize()) == ch


@pytest.mark.parametrize(
    "value",
    [
        "",
        " , ",
        'Digest realm="unterminated',
        "Digest realm",
        'Digest realm="a" nonce="b"',
        'Digest realm="a", realm="b"',
        "=x",
        "Digest" + "x" * 9000,
        'Digest"realm"',
    ],
)
def test_parse_challenge_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_challenges(value)


def test_parse_authorization_digest() -> None:
    value = (
        'Digest username="34020000001320000001", realm="3402000000", nonce="9bd055", '
        'uri="sip:34020000002000000001@3402000000", response="AbC", algorithm=md5, '
        'cnonce="0a4f113b", qop=auth, nc=0000000A, opaque="op"'
    )
    creds = parse_authorization(value)
    assert isinstance(creds, DigestCredentials)
    assert creds.username == "34020000001320000001"
    assert creds.algorithm == "MD5"
    assert creds.nonce_count == 10
    assert creds.qop == "auth"
    assert parse_authorization(creds.serialize()) == creds


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="u", realm="r", nonce="n", uri="x"',  # no response
        'Digest username="u", realm="r", nonce="n", uri="x", response="r", qop=auth',  # no nc/cnonce
        'Digest username="u", realm="r", nonce="n", uri="x", response="r", qop=auth, nc=xyz, cnonce="c"',
        'Digest username="u", realm="r", nonce="n", uri="x", response="r" trailing',
        'Bearer abc="d"',
        "Basic !!!",
        "Basic Zm9v",  # no ':'
        "Basic /w==",  # not UTF-8
        "",
    ],
)
def test_parse_authorization_malformed(value: str) -> None:
    with pytest.raises(ParseError):
        parse_authorization(value)


def test_basic() -> None:
    value = basic_authorization("Aladdin", "open sesame")
    assert value == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="  # RFC 7617 §2
    assert parse_authorization(value) == BasicCredentials(username="Aladdin", password="open sesame")
    assert BasicCredentials(username="a", password="b:c").serialize() == basic_authorization("a", "b:c")
    with pytest.raises(LocalProtocolError):
        basic_authorization("a:b", "c")


def test_serialize_refuses_non_token() -> None:
    with pytest.raises(LocalProtocolError):
        Challenge(realm="r", nonce="n", algorithm="MD 5").serialize()


# --- client ----------------------------------------------------------------------------------------------------


def test_client_counts_nc_and_resets_on_new_nonce() -> None:
    client = DigestClient("alice", "secret", random.Random(0))
    assert client.authorization("REGISTER", "sip:r") is None
    first = parse_authorization(client.respond('Digest realm="r", nonce="n1", qop="auth"', "REGISTER", "sip:r"))
    second = parse_authorization(client.authorization("REGISTER", "sip:r") or "")
    assert isinstance(first, DigestCredentials)
    assert isinstance(second, DigestCredentials)
    assert (first.nc, second.nc) == ("00000001", "00000002")
    assert first.cnonce != second.cnonce
    client.challenge('Digest realm="r", nonce="n2", qop="auth", stale=true')
    third = parse_authorization(client.authorization("REGISTER", "sip:r") or "")
    assert isinstance(third, DigestCredentials)
    assert (third.nonce, third.nc) == ("n2", "00000001")
    client.reset()
    assert client.current_challenge is None


def test_client_prefers_sha256_and_skips_auth_int() -> None:
    client = DigestClient("u", "p", random.Random(1))
    chosen = client.challenge(
        [
            'Basic realm="r"',
            'Digest realm="r", nonce="a", algorithm=MD5',
            'Digest realm="r", nonce="b", algorithm=SHA-256, qop="auth-int"',
            'Digest realm="r", nonce="c", algorithm=SHA-256',
        ]
    )
    assert chosen.nonce == "c"
    with pytest.raises(RemoteProtocolError, match="no supported"):
        client.challenge('Digest realm="r", nonce="b", qop="auth-int"')
    with pytest.raises(RemoteProtocolError):
        client.challenge('Digest realm="r", nonce="b", algorithm=MD5-sess')  # -sess without qop
    with pytest.raises(RemoteProtocolError):
        client.challenge('Digest realm="r", nonce="b", algorithm=SHA-512')
    assert client.challenge(Challenge(scheme="Basic", realm="x")).scheme == "Basic"
    assert client.authorization("GET", "/") == basic_authorization("u", "p")


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
@pytest.mark.parametrize("qop", ["auth", None])
def test_client_server_agree(algorithm: str, qop: str | None) -> None:
    if qop is None and algorithm.endswith("-sess"):
        with pytest.raises(LocalProtocolError):
            DigestServer("r", random.Random(0), algorithm=algorithm, qop=qop)
        return
    server = DigestServer("r", random.Random(0), algorithm=algorithm, qop=qop)
    client = DigestClient("alice", "secret", random.Random(1))
    value = client.respond(server.challenge(0.0), "INVITE", "sip:bob@x")
    lookup = {"alice": "secret"}.get
    assert server.verify(value, method="INVITE", now=1.0, lookup=lookup) is DigestVerdict.OK
    # The same credentials again: a replay.
    assert server.verify(value, method="INVITE", now=1.0, lookup=lookup) is DigestVerdict.REPLAY
    again = client.authorization("INVITE", "sip:bob@x")
    expected = DigestVerdict.OK if qop else DigestVerdict.REPLAY  # without qop a nonce is good once
    assert server.verify(again, method="INVITE", now=2.0, lookup=lookup) is expected


def test_server_may_let_rtsp_players_reuse_a_nonce_without_qop() -> None:
    # ffmpeg and VLC answer an RTSP challenge without qop and repeat the nonce on every request of the session.
    server = DigestServer("r", random.Random(0), qop=None, nonce_ttl=60.0, reuse_without_qop=True)
    client = DigestClient("alice", "secret", random.Random(1))
    lookup = {"alice": "secret"}.get
    value = client.respond(server.challenge(0.0), "DESCRIBE", "rtsp://h/s")
    for now in (1.0, 2.0, 59.0):
        assert server.verify(value, method="DESCRIBE", now=now, lookup=lookup) is DigestVerdict.OK
    assert server.verify(value, method="DESCRIBE", now=60.0, lookup=lookup) is DigestVerdict.STALE
    wrong = DigestClient("alice", "guess", random.Random(2)).respond(server.challenge(61.0), "DESCRIBE", "rtsp://h/s")
    assert server.verify(wrong, method="DESCRIBE", now=62.0, lookup=lookup) is DigestVerdict.BAD_PASSWORD


# --- server ----------------------------------------------------------------------------------------------------


def _server(**kwargs: object) -> DigestServer:
    return DigestServer("3402000000", random.Random(7), **kwargs)  # type: ignore[arg-type]


LOOKUP = {"34020000001320000001": "12345678"}.get


def test_server_verdicts() -> None:
    server = _server(nonce_ttl=10.0)
    challenge = server.new_challenge(100.0)
    assert challenge.realm == "3402000000"
    assert challenge.qop == ("auth",)
    assert len(challenge.nonce or "") == 32
    good = DigestClient("34020000001320000001", "12345678", random.Random(2))
    bad = DigestClient("34020000001320000001", "wrong", random.Random(2))
    nobody = DigestClient("nobody", "12345678", random.Random(2))

    def verify(value: str | None, now: float = 101.0) -> DigestVerdict:
        return server.verify(value, method="REGISTER", now=now, lookup=LOOKUP)

    assert verify(bad.respond(challenge, "REGISTER", "sip:3402000000")) is DigestVerdict.BAD_PASSWORD
    assert verify(nobody.respond(challenge, "REGISTER", "sip:3402000000")) is DigestVerdict.UNKNOWN_USER
    assert verify(None) is DigestVerdict.MALFORMED
    assert verify("Digest garbage") is DigestVerdict.MALFORMED
    assert verify(basic_authorization("a", "b")) is DigestVerdict.MALFORMED
    value = good.respond(challenge, "REGISTER", "sip:3402000000")
    # Expired: right password, so STALE (answer stale=true), even though the nonce is known.
    assert verify(value, now=110.0) is DigestVerdict.STALE
    assert verify(value, now=109.9) is DigestVerdict.OK
    # An unknown nonce with the right password is also STALE (e.g. the platform restarted).
    other = DigestClient("34020000001320000001", "12345678", random.Random(3))
    forged = other.respond('Digest realm="3402000000", nonce="feed", qop="auth"', "REGISTER", "sip:3402000000")
    assert verify(forged) is DigestVerdict.STALE
    # An unknown nonce with a wrong password is still BAD_PASSWORD (GB28181: 403).
    wrong = DigestClient("34020000001320000001", "x", random.Random(3))
    assert verify(wrong.respond('Digest realm="3402000000", nonce="feed"', "REGISTER", "s")) is (
        DigestVerdict.BAD_PASSWORD
    )


def test_server_realm_case_and_mismatches() -> None:
    server = _server(opaque="op")
    ch = server.new_challenge(0.0)
    client = DigestClient("34020000001320000001", "12345678", random.Random(5))
    value = client.respond(
        Challenge(realm="3402000000".upper(), nonce=ch.nonce, opaque="op", qop=("auth",)), "REGISTER", "sip:a"
    )
    assert server.verify(value, method="REGISTER", now=1.0, lookup=LOOKUP, uri="sip:a") is DigestVerdict.OK
    creds = parse_authorization(client.authorization("REGISTER", "sip:a") or "")
    assert isinstance(creds, DigestCredentials)

    for change in (
        {"realm": "other"},
        {"algorithm": "SHA-256"},
        {"opaque": "nope"},
        {"qop": "auth-int"},
        {"uri": "sip:b"},
    ):
        modified = attrs.evolve(creds, **change)
        got = server.verify(modified, method="REGISTER", now=1.0, lookup=LOOKUP, uri="sip:a")
        assert got is DigestVerdict.MALFORMED, change
    # Lower nc than already seen: replay.
    old = attrs.evolve(creds, nc="00000001")
    assert server.verify(old, method="REGISTER", now=1.0, lookup=LOOKUP) is not DigestVerdict.OK


def test_server_bounded_nonce_store() -> None:
    server = _server(max_nonces=3, nonce_ttl=100.0)
    nonces = [server.new_challenge(float(i)).nonce for i in range(5)]
    assert len(server) == 3
    client = DigestClient("34020000001320000001", "12345678", random.Random(4))
    oldest = client.respond(Challenge(realm="3402000000", nonce=nonces[0], qop=("auth",)), "REGISTER", "s")
    assert server.verify(oldest, method="REGISTER", now=5.0, lookup=LOOKUP) is DigestVerdict.STALE
    newest = client.respond(Challenge(realm="3402000000", nonce=nonces[4], qop=("auth",)), "REGISTER", "s")
    assert server.verify(newest, method="REGISTER", now=5.0, lookup=LOOKUP) is DigestVerdict.OK
    server.new_challenge(1000.0)  # everything expired is purged
    assert len(server) == 1


@pytest.mark.parametrize(
    "kwargs", [{"qop": "auth-int"}, {"algorithm": "SHA-1"}, {"max_nonces": 0}, {"algorithm": "MD5-sess", "qop": None}]
)
def test_server_rejects_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        _server(**kwargs)


# --- properties ------------------------------------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20)
_token = st.from_regex(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,12}", fullmatch=True)


@given(
    realm=_text,
    nonce=_text,
    opaque=st.none() | _text,
    algorithm=st.none() | st.sampled_from(["MD5", "SHA-256", "MD5-sess"]),
    qop=st.lists(st.sampled_from(["auth", "auth-int"]), max_size=2, unique=True).map(tuple),
    stale=st.booleans(),
)
def test_challenge_round_trip(
    realm: str, nonce: str, opaque: str | None, algorithm: str | None, qop: tuple[str, ...], stale: bool
) -> None:
    ch = Challenge(realm=realm, nonce=nonce, opaque=opaque, algorithm=algorithm, qop=qop, stale=stale)
    assert parse_challenge(ch.serialize()) == ch


@given(username=_text, uri=_text, response=_text, nc=st.none() | st.integers(1, 0xFFFFFFFF), token=_token)
def test_credentials_round_trip(username: str, uri: str, response: str, nc: int | None, token: str) -> None:
    creds = DigestCredentials(
        username=username,
        realm="r",
        nonce=token,
        uri=uri,
        response=response,
        algorithm="MD5",
        qop=None if nc is None else "auth",
        nc=None if nc is None else f"{nc:08x}",
        cnonce=None if nc is None else token,
    )
    assert parse_authorization(creds.serialize()) == creds


@given(st.text(max_size=200))
def test_garbage_parses_or_raises_protocol_error(value: str) -> None:
    for parse in (parse_challenges, parse_authorization):
        with contextlib.suppress(ProtocolError):
            parse(value)  # type: ignore[operator]


@given(st.text(max_size=200))
def test_garbage_verify_gives_a_verdict(value: str) -> None:
    server = _server()
    assert isinstance(server.verify(value, method="REGISTER", now=0.0, lookup=LOOKUP), DigestVerdict)
