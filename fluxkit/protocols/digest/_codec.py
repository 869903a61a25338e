"""HTTP authentication headers and the digest computation (RFC 7235, RFC 7616, RFC 7617, RFC 2617, RFC 3261 §22).

Strategy: one compiled regular expression matches an `auth-param` (token BWS "=" BWS (token / quoted-string)) at a
cursor; a small loop walks the header value with it, so a `WWW-Authenticate` value holding several comma-separated
challenges (`Digest realm=..., Basic realm=...`) splits where a bare token is not followed by "=". Parameter names
are compared case-insensitively (RFC 7235 §2.1), algorithm names too (RFC 7616 §3.3 lists them upper case; devices
send `md5`). Values are returned unquoted and unescaped; serialization quotes exactly the parameters RFC 7616 §3.3
and §3.4 say to quote and leaves `algorithm`, `stale`, `nc` and the response `qop` as tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

import attrs

from fluxkit.errors import LocalProtocolError, ParseError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_HEADER_LENGTH",
    "BasicCredentials",
    "Challenge",
    "DigestCredentials",
    "basic_authorization",
    "compute_ha1",
    "compute_response",
    "normalize_algorithm",
    "parse_authorization",
    "parse_challenge",
    "parse_challenges",
]

#: Longest header value the parsers accept; longer raises ParseError (a bounded input, as every fluxkit parser).
DEFAULT_MAX_HEADER_LENGTH = 8192

#: Canonical spellings of the supported algorithms (RFC 7616 §3.3), keyed by their upper-case form.
ALGORITHMS = {
    "MD5": "MD5",
    "MD5-SESS": "MD5-sess",
    "SHA-256": "SHA-256",
    "SHA-256-SESS": "SHA-256-sess",
}
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(rf'[ \t]*({_TOKEN})[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))[ \t]*')
_TOKEN_RE = re.compile(rf"[ \t]*({_TOKEN})")
_TOKEN68_RE = re.compile(r"[ \t]*([A-Za-z0-9\-._~+/]+=*)[ \t]*(?:,|$)")
_UNESCAPE_RE = re.compile(r"\\(.)")
_NEEDS_ESCAPE_RE = re.compile(r'["\\]')
_FULL_TOKEN_RE = re.compile(rf"{_TOKEN}\Z")
_SEP = " \t,"


def normalize_algorithm(name: str | None) -> str:
    """The canonical spelling of a digest algorithm name; a missing one means MD5 (RFC 7616 §3.3).

    Raises:
        ParseError: the algorithm is not one of MD5, MD5-sess, SHA-256, SHA-256-sess (any case).
    """
    if name is None:
        return "MD5"
    canonical = ALGORITHMS.get(name.upper())
    if canonical is None:
        raise ParseError(f"unsupported digest algorithm {name!r}", status_hint=400)
    return canonical


def _quote(value: str) -> str:
    if _NEEDS_ESCAPE_RE.search(value):
        value = _NEEDS_ESCAPE_RE.sub(lambda m: "\\" + m.group(0), value)
    return f'"{value}"'


def _join_params(scheme: str, params: list[tuple[str, str, bool]]) -> str:
    parts = []
    for name, value, quoted in params:
        if not quoted and not _FULL_TOKEN_RE.match(value):
            raise LocalProtocolError(f"{name}={value!r} must be a token")
        parts.append(f"{name}={_quote(value) if quoted else value}")
    return f"{scheme} {', '.join(parts)}" if parts else scheme


def _check_length(value: str) -> None:
    if len(value) > DEFAULT_MAX_HEADER_LENGTH:
        raise ParseError(f"authentication header longer than {DEFAULT_MAX_HEADER_LENGTH}", status_hint=400)


def _parse_params(value: str, pos: int) -> tuple[dict[str, str], int]:
    """Parse auth-params from `pos` until the end or the start of the next challenge (a bare scheme token)."""
    params: dict[str, str] = {}
    n = len(value)
    saw_comma = False
    while True:
        while pos < n and value[pos] in _SEP:
            saw_comma = saw_comma or value[pos] == ","
            pos += 1
        if pos >= n:
            return params, pos
        m = _PARAM_RE.match(value, pos)
        if m is None:
            if saw_comma and _TOKEN_RE.match(value, pos) is not None:
                return params, pos  # a bare token after a comma: the next challenge starts here
            raise ParseError("malformed authentication parameter", offset=pos, status_hint=400)
        name = m.group(1).lower()
        raw = m.group(2)
        if raw is None:
            raw = m.group(3)
        elif "\\" in raw:
            raw = _UNESCAPE_RE.sub(r"\1", raw)
        if name in params:
            raise ParseError(f"duplicate authentication parameter {name!r}", offset=pos, status_hint=400)
        params[name] = raw
        pos = m.end()
        if pos < n and value[pos] != ",":
            raise ParseError("expected ',' between authentication parameters", offset=pos, status_hint=400)


@attrs.frozen(kw_only=True, slots=True)
class Challenge:
    """One challenge of a `WWW-Authenticate` / `Proxy-Authenticate` header (RFC 7616 §3.3, RFC 7617 §2).

    Attributes:
        scheme: "Digest" or "Basic" (canonical case; other schemes keep their spelling).
        realm: the protection space; "" where absent.
        nonce: the server nonce (Digest), else None.
        opaque: echoed back unchanged by the client.
        algorithm: canonical algorithm (`normalize_algorithm`), None where absent (means MD5) or for Basic.
        qop: the offered qop options, lower case, in order; empty means the RFC 2069 form (no qop).
        stale: true when the previous nonce expired but the credentials were right.
        domain: the raw `domain` value, if any.
        extra: other parameters, lower-case names, in order (kept for round trips).
    """

    scheme: str = "Digest"
    realm: str = ""
    nonce: str | None = None
    opaque: str | None = None
    algorithm: str | None = None
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    def serialize(self) -> str:
        """The header value (without the header name)."""
        if self.scheme == "Basic":
            return _join_params("Basic", [("realm", self.realm, True), *((k, v, True) for k, v in self.extra)])
        params: list[tuple[str, str, bool]] = [("realm", self.realm, True)]
        if self.domain is not None:
            params.append(("domain", self.domain, True))
        if self.nonce is not None:
            params.append(("nonce", self.nonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.stale:
            params.append(("stale", "true", False))
        if self.algorithm is not None:
            params.append(("algorithm", self.algorithm, False))
        if self.qop:
            params.append(("qop", ",".join(self.qop), True))
        params.extend((k, v, True) for k, v in self.extra)
        return _join_params(self.scheme, params)


_CHALLENGE_KNOWN = frozenset({"realm", "nonce", "opaque", "algorithm", "qop", "stale", "domain"})


def _canonical_scheme(scheme: str) -> str:
    lower = scheme.lower()
    if lower == "digest":
        return "Digest"
    if lower == "basic":
        return "Basic"
    return scheme


def _make_challenge(scheme: str, params: dict[str, str]) -> Challenge:
    algorithm = params.get("algorithm")
    qop = params.get("qop")
    return Challenge(
        scheme=scheme,
        realm=params.get("realm", ""),
        nonce=params.get("nonce"),
        opaque=params.get("opaque"),
        algorithm=None if algorithm is None else ALGORITHMS.get(algorithm.upper(), algorithm),
        qop=() if qop is None else tuple(q.strip().lower() for q in qop.split(",") if q.strip()),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        extra=tuple((k, v) for k, v in params.items() if k not in _CHALLENGE_KNOWN),
    )


def parse_challenges(value: str) -> list[Challenge]:
    """Parse every challenge in one `WWW-Authenticate` header value (RFC 7235 §4.1 allows several).

    Unknown schemes are returned too (with their parameters in `extra`); an unknown algorithm is kept as sent
    so the caller can skip that challenge. Raises ParseError (status_hint 400) on malformed syntax.
    """
    _check_length(value)
    challenges: list[Challenge] = []
    pos = 0
    n = len(value)
    while True:
        while pos < n and value[pos] in _SEP:
            pos += 1
        if pos >= n:
            break
        m = _TOKEN_RE.match(value, pos)
        if m is None:
            raise ParseError("expected an authentication scheme", offset=pos, status_hint=400)
        scheme = _canonical_scheme(m.group(1))
        pos = m.end()
        if pos < n and value[pos] not in _SEP:
            raise ParseError("expected a space after the authentication scheme", offset=pos, status_hint=400)
        params, pos = _parse_params(value, pos)
        challenges.append(_make_challenge(scheme, params))
    if not challenges:
        raise ParseError("empty authentication challenge", offset=0, status_hint=400)
    return challenges


def parse_challenge(value: str) -> Challenge:
    """The first challenge of a header value (see `parse_challenges`)."""
    return parse_challenges(value)[0]


@attrs.frozen(kw_only=True, slots=True)
class DigestCredentials:
    """The Digest `Authorization` / `Proxy-Authorization` value (RFC 7616 §3.4).

    `algorithm`, `qop` (lower case) and `nc` (8 hex digits as sent) are None where absent; `algorithm` keeps the
    canonical spelling where known. `extra` holds other parameters in order.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def nonce_count(self) -> int | None:
        """`nc` as an integer (None where absent)."""
        return None if self.nc is None else int(self.nc, 16)

    def serialize(self) -> str:
        """The header value (without the header name)."""
        params: list[tuple[str, str, bool]] = [
            ("username", self.username, True),
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
            ("uri", self.uri, True),
            ("response", self.response, True),
        ]
        if self.algorithm is not None:
            params.append(("algorithm", self.algorithm, False))
        if self.cnonce is not None:
            params.append(("cnonce", self.cnonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.qop is not None:
            params.append(("qop", self.qop, False))
        if self.nc is not None:
            params.append(("nc", self.nc, False))
        params.extend((k, v, True) for k, v in self.extra)
        return _join_params("Digest", params)


@attrs.frozen(kw_only=True, slots=True)
class BasicCredentials:
    """The Basic `Authorization` value (RFC 7617 §2): user-id and password, decoded as UTF-8."""

    username: str
    password: str

    def serialize(self) -> str:
        """The header value (without the header name)."""
        return basic_authorization(self.username, self.password)


_CREDENTIALS_KNOWN = frozenset(
    {"username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc"}
)
_NC_RE = re.compile(r"[0-9A-Fa-f]{1,8}\Z")


def parse_authorization(value: str) -> DigestCredentials | BasicCredentials:
    """Parse an `Authorization` / `Proxy-Authorization` header value (Digest or Basic).

    Raises:
        ParseError: malformed syntax, an unknown scheme, a Digest value missing username/realm/nonce/uri/response,
            qop without nc and cnonce, or a bad nc (status_hint 400).
    """
    _check_length(value)
    m = _TOKEN_RE.match(value)
    if m is None:
        raise ParseError("expected an authentication scheme", offset=0, status_hint=400)
    scheme = _canonical_scheme(m.group(1))
    pos = m.end()
    if scheme == "Basic":
        t = _TOKEN68_RE.match(value, pos)
        if t is None or t.end() != len(value.rstrip()):
            raise ParseError("malformed Basic credentials", offset=pos, status_hint=400)
        try:
            decoded = base64.b64decode(t.group(1), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise ParseError("Basic credentials are not base64 of UTF-8", offset=pos, status_hint=400) from exc
        user, sep, password = decoded.partition(":")
        if not sep:
            raise ParseError("Basic credentials lack ':'", offset=pos, status_hint=400)
        return BasicCredentials(username=user, password=password)
    if scheme != "Digest":
        raise ParseError(f"unsupported authentication scheme {scheme!r}", offset=0, status_hint=400)
    if pos < len(value) and value[pos] not in _SEP:
        raise ParseError("expected a space after the authentication scheme", offset=pos, status_hint=400)
    params, end = _parse_params(value, pos)
    if end != len(value):
        raise ParseError("trailing data after Digest credentials", offset=end, status_hint=400)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in params]
    if missing:
        raise ParseError(f"Digest credentials lack {', '.join(missing)}", offset=0, status_hint=400)
    qop = params.get("qop")
    nc = params.get("nc")
    if qop is not None and (nc is None or "cnonce" not in params):
        raise ParseError("Digest credentials with qop need nc and cnonce", offset=0, status_hint=400)
    if nc is not None and not _NC_RE.match(nc):
        raise ParseError(f"bad nonce count {nc!r}", offset=0, status_hint=400)
    algorithm = params.get("algorithm")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=params["response"],
        algorithm=None if algorithm is None else ALGORITHMS.get(algorithm.upper(), algorithm),
        cnonce=params.get("cnonce"),
        opaque=params.get("opaque"),
        qop=None if qop is None else qop.lower(),
        nc=nc,
        extra=tuple((k, v) for k, v in params.items() if k not in _CREDENTIALS_KNOWN),
    )


def basic_authorization(username: str, password: str) -> str:
    """The Basic `Authorization` value (RFC 7617 §2); a ':' in the user-id is refused (LocalProtocolError)."""
    if ":" in username:
        raise LocalProtocolError("a Basic user-id cannot contain ':'")
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _encode(text: str) -> bytes:
    # Header text decoded with surrogateescape (as fluxkit's SIP and RTSP parsers do) hashes as the bytes sent,
    # which is what the peer hashed whatever its charset (GB28181 devices may use GB2312).
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _hash(algorithm: str, text: str) -> str:
    base = algorithm.upper().removesuffix("-SESS")
    return _HASHES[base](_encode(text)).hexdigest()


def compute_ha1(
    *, algorithm: str | None, username: str, realm: str, password: str, nonce: str = "", cnonce: str = ""
) -> str:
    """H(A1) (RFC 7616 §3.4.2); for the -sess variants, H(H(user:realm:pass):nonce:cnonce)."""
    algo = normalize_algorithm(algorithm)
    ha1 = _hash(algo, f"{username}:{realm}:{password}")
    if algo.endswith("-sess"):
        ha1 = _hash(algo, f"{ha1}:{nonce}:{cnonce}")
    return ha1


def compute_response(
    *,
    algorithm: str | None,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The `response` value (RFC 7616 §3.4.1; RFC 2069 form when `qop` is None).

    Raises:
        LocalProtocolError: qop is "auth-int" (not supported: it would hash the body), another unknown qop, or
            qop "auth" without nc/cnonce.
        ParseError: unsupported algorithm.
    """
    algo = normalize_algorithm(algorithm)
    ha1 = compute_ha1(
        algorithm=algo, username=username, realm=realm, password=password, nonce=nonce, cnonce=cnonce or ""
    )
    ha2 = _hash(algo, f"{method}:{uri}")
    if qop is None:
        if algo.endswith("-sess"):
            raise LocalProtocolError(f"{algo} needs qop (the cnonce enters H(A1))")
        return _hash(algo, f"{ha1}:{nonce}:{ha2}")
    if qop == "auth-int":
        raise LocalProtocolError("qop=auth-int is not supported (fluxkit implements qop=auth and none)")
    if qop != "auth":
        raise LocalProtocolError(f"unknown qop {qop!r}")
    if nc is None or cnonce is None:
        raise LocalProtocolError("qop=auth needs nc and cnonce")
    return _hash(algo, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
