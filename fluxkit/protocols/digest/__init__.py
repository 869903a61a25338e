"""HTTP/SIP/RTSP authentication: Digest (RFC 7616, RFC 2617, RFC 2069 form) and Basic (RFC 7617), sans-IO.

Shared by the SIP user agent (GB28181 REGISTER), the RTSP client and server machines and any HTTP code.
Algorithms MD5, MD5-sess, SHA-256 and SHA-256-sess; qop "auth" and none. qop "auth-int" is refused clearly: a
server never offers it, a client skips a challenge that offers only it (RemoteProtocolError if nothing else is
usable), and `compute_response(qop="auth-int")` raises LocalProtocolError.

Headers (values only, without the header name; str in, str out):

* `parse_challenges(value) -> list[Challenge]`, `parse_challenge(value) -> Challenge`: a `WWW-Authenticate` /
  `Proxy-Authenticate` value. Parameter names are case-insensitive, values unquoted and unescaped, algorithm
  names canonicalised (`md5` -> `MD5`, `sha-256-SESS` -> `SHA-256-sess`). `Challenge.serialize() -> str`.
* `parse_authorization(value) -> DigestCredentials | BasicCredentials`: an `Authorization` /
  `Proxy-Authorization` value; `.serialize() -> str`. `basic_authorization(username, password) -> str`.
* All parsers raise `ParseError` (status_hint 400) on malformed input and nothing else; values longer than
  `DEFAULT_MAX_HEADER_LENGTH` are refused.

Computation:

* `compute_response(*, algorithm, username, realm, password, method, uri, nonce, qop=None, nc=None,
  cnonce=None) -> str` (hex digest; `nc` is the 8-hex-digit string as sent), `compute_ha1(...)`,
  `normalize_algorithm(name) -> str`.

Client:

* `DigestClient(username, password, rng)`: `challenge(values)` picks the strongest usable challenge among header
  values (SHA-256 > SHA-256-sess > MD5 > MD5-sess > Basic); `authorization(method, uri) -> str | None` gives the
  header value for each request, counting `nc` per nonce (reset on a new nonce); `respond(values, method, uri)`
  does both; `reset()`. The cnonce is drawn from `rng`.

Server:

* `DigestServer(realm, rng, *, nonce_ttl=DEFAULT_NONCE_TTL, algorithm="MD5", qop="auth", opaque=None,
  max_nonces=DEFAULT_MAX_NONCES)`: `challenge(now, *, stale=False) -> str` issues a nonce valid until
  `now + nonce_ttl` (`new_challenge` returns the `Challenge`); `verify(authorization, *, method, now, lookup,
  uri=None) -> DigestVerdict` where `lookup(username) -> password | None`. Verdicts: OK; STALE (right password,
  expired/unknown nonce: answer 401 with `stale=true`); REPLAY (nonce/nc pair reused, or a qop-less nonce used
  twice: 401 with a new challenge); BAD_PASSWORD (GB28181: 403); MALFORMED (unparsable, or realm, algorithm,
  opaque, uri or qop inconsistent with the challenge; the realm is compared case-insensitively); UNKNOWN_USER.
  At most `max_nonces` nonces are kept; the oldest is forgotten first.
"""

from __future__ import annotations

from ._client import DigestClient as DigestClient
from ._codec import ALGORITHMS as ALGORITHMS
from ._codec import DEFAULT_MAX_HEADER_LENGTH as DEFAULT_MAX_HEADER_LENGTH
from ._codec import BasicCredentials as BasicCredentials
from ._codec import Challenge as Challenge
from ._codec import DigestCredentials as DigestCredentials
from ._codec import basic_authorization as basic_authorization
from ._codec import compute_ha1 as compute_ha1
from ._codec import compute_response as compute_response
from ._codec import normalize_algorithm as normalize_algorithm
from ._codec import parse_authorization as parse_authorization
from ._codec import parse_challenge as parse_challenge
from ._codec import parse_challenges as parse_challenges
from ._server import DEFAULT_MAX_NONCES as DEFAULT_MAX_NONCES
from ._server import DEFAULT_NONCE_TTL as DEFAULT_NONCE_TTL
from ._server import DigestServer as DigestServer
from ._server import DigestVerdict as DigestVerdict

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_HEADER_LENGTH",
    "DEFAULT_MAX_NONCES",
    "DEFAULT_NONCE_TTL",
    "BasicCredentials",
    "Challenge",
    "DigestClient",
    "DigestCredentials",
    "DigestServer",
    "DigestVerdict",
    "basic_authorization",
    "compute_ha1",
    "compute_response",
    "normalize_algorithm",
    "parse_authorization",
    "parse_challenge",
    "parse_challenges",
]
