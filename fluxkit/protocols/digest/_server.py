"""The server side: issue nonces, check credentials, decide from `now` (RFC 7616 §3.3, §3.4, §5.4-§5.5).

Strategy: nonces are random (from the injected `random.Random`) and remembered in an insertion-ordered dict with
their expiry and the highest nonce count seen. Because every nonce lives `nonce_ttl` seconds and `now` only moves
forward, the dict is also ordered by expiry: purging walks from the oldest and stops at the first live one, and
the size bound (`max_nonces`) evicts the oldest. A credential is first checked against the password (so a wrong
password is reported as such whatever its nonce), then the nonce: unknown or expired means STALE (the client
knew the password; RFC 7616 §3.3 says answer stale=true), a nonce count not above the last one means REPLAY.
Without qop there is no nonce count, so each nonce is good for one request, unless `reuse_without_qop` is set:
RTSP players (ffmpeg, VLC) answer without qop and send the same nonce on every request of a session, so an RTSP
server trades the one-shot rule (a fresh 401 round trip per request) for replay protection bounded by the expiry.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from fluxkit.errors import LocalProtocolError, ProtocolError

from ._codec import Challenge, DigestCredentials, compute_response, normalize_algorithm, parse_authorization

if TYPE_CHECKING:
    import random

__all__ = ["DEFAULT_MAX_NONCES", "DEFAULT_NONCE_TTL", "DigestServer", "DigestVerdict"]

#: Seconds a nonce stays valid.
DEFAULT_NONCE_TTL = 300.0
#: Nonces remembered at once; beyond it the oldest is forgotten (a client holding it gets STALE, then retries).
DEFAULT_MAX_NONCES = 10_000


class DigestVerdict(enum.Enum):
    """What `DigestServer.verify` decided, and what to answer (GB/T 28181-2016 §9.1.2 for BAD_PASSWORD)."""

    #: Credentials are valid: serve the request.
    OK = "ok"
    #: Right password, expired or unknown nonce: answer 401 with a new challenge and `stale=true`.
    STALE = "stale"
    #: A nonce/nc pair seen before: answer 401 with a new challenge.
    REPLAY = "replay"
    #: Wrong password: GB28181 answers 403; generic HTTP/RTSP answers 401 with a new challenge.
    BAD_PASSWORD = "bad_password"
    #: Missing, unparsable or inconsistent credentials (realm, algorithm, opaque, uri, qop): 401 (or 400).
    MALFORMED = "malformed"
    #: The lookup knows no such user: 401 with a new challenge (GB28181 platforms often answer 403 or 404).
    UNKNOWN_USER = "unknown_user"


class _Nonce:
    __slots__ = ("expires", "last_nc")

    def __init__(self, expires: float) -> None:
        self.expires = expires
        self.last_nc = 0


class DigestServer:
    """Issues Digest challenges and verifies the credentials that answer them.

    Args:
        realm: the protection space (GB28181: the platform's 10-digit domain or 8-digit area code).
        rng: source of nonces.
        nonce_ttl: seconds a nonce is accepted after `challenge()` issued it.
        algorithm: MD5, MD5-sess, SHA-256 or SHA-256-sess (any case).
        qop: "auth" to offer qop=auth (credentials without qop are still accepted, once per nonce), None for the
            RFC 2069 form. "auth-int" is refused (LocalProtocolError).
        opaque: an opaque value to send and require back, or None.
        max_nonces: bound on remembered nonces.
        reuse_without_qop: accept a nonce again in credentials without qop until it expires (RTSP players do
            this); False keeps every nonce single-use without qop, as a SIP registrar can afford.
    """

    def __init__(
        self,
        realm: str,
        rng: random.Random,
        *,
        nonce_ttl: float = DEFAULT_NONCE_TTL,
        algorithm: str = "MD5",
        qop: str | None = "auth",
        opaque: str | None = None,
        max_nonces: int = DEFAULT_MAX_NONCES,
        reuse_without_qop: bool = False,
    ) -> None:
        if qop not in (None, "auth"):
            raise LocalProtocolError(f"qop must be 'auth' or None, not {qop!r} (auth-int is not supported)")
        try:
            self.algorithm = normalize_algorithm(algorithm)
        except ProtocolError as exc:
            raise LocalProtocolError(str(exc)) from None
        if self.algorithm.endswith("-sess") and qop is None:
            raise LocalProtocolError(f"{self.algorithm} needs qop='auth'")
        if max_nonces < 1 or nonce_ttl <= 0:
            raise LocalProtocolError("max_nonces and nonce_ttl must be positive")
        self.realm = realm
        self.qop = qop
        self.opaque = opaque
        self.nonce_ttl = nonce_ttl
        self.max_nonces = max_nonces
        self.reuse_without_qop = reuse_without_qop
        self._rng = rng
        self._nonces: dict[str, _Nonce] = {}

    def __len__(self) -> int:
        """Nonces currently remembered (live or expired but not yet purged)."""
        return len(self._nonces)

    def _purge(self, now: float) -> None:
        nonces = self._nonces
        while nonces:
            oldest = next(iter(nonces))
            if nonces[oldest].expires > now and len(nonces) < self.max_nonces:
                break
            del nonces[oldest]

    def new_challenge(self, now: float, *, stale: bool = False) -> Challenge:
        """Issue a fresh nonce valid until `now + nonce_ttl` and return the challenge carrying it."""
        self._purge(now)
        nonce = f"{self._rng.getrandbits(128):032x}"
        self._nonces[nonce] = _Nonce(now + self.nonce_ttl)
        return Challenge(
            scheme="Digest",
            realm=self.realm,
            nonce=nonce,
            opaque=self.opaque,
            algorithm=self.algorithm,
            qop=(self.qop,) if self.qop else (),
            stale=stale,
        )

    def challenge(self, now: float, *, stale: bool = False) -> str:
        """`new_challenge(now, stale=stale)` as a `WWW-Authenticate` header value."""
        return self.new_challenge(now, stale=stale).serialize()

    def verify(
        self,
        authorization: str | DigestCredentials | None,
        *,
        method: str,
        now: float,
        lookup: Callable[[str], str | None],
        uri: str | None = None,
    ) -> DigestVerdict:
        """Check one request's credentials.

        Args:
            authorization: the `Authorization` header value (or parsed credentials); None gives MALFORMED.
            method: the request method (enters H(A2)).
            now: the current time, seconds.
            lookup: username -> password, or None for an unknown user.
            uri: if given, the credentials' `uri` must equal it (RFC 7616 §3.4.6); GB28181 devices are known to
                send a uri that differs from the Request-URI in trivial ways, so the SIP layer leaves it None.
        """
        if authorization is None:
            return DigestVerdict.MALFORMED
        if isinstance(authorization, str):
            try:
                parsed = parse_authorization(authorization)
            except ProtocolError:
                return DigestVerdict.MALFORMED
            if not isinstance(parsed, DigestCredentials):
                return DigestVerdict.MALFORMED
            creds = parsed
        else:
            creds = authorization
        if (
            creds.realm.lower() != self.realm.lower()  # realm case variants seen on devices: compare loosely
            or (creds.algorithm or "MD5").upper() != self.algorithm.upper()
            or (self.opaque is not None and creds.opaque != self.opaque)
            or (uri is not None and creds.uri != uri)
            or creds.qop not in (None, "auth")
            or (creds.qop is None and self.algorithm.endswith("-sess"))
        ):
            return DigestVerdict.MALFORMED
        password = lookup(creds.username)
        if password is None:
            return DigestVerdict.UNKNOWN_USER
        expected = compute_response(
            algorithm=self.algorithm,
            username=creds.username,
            realm=creds.realm,  # hash what the client hashed
            password=password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        if not hmac.compare_digest(expected.encode(), creds.response.lower().encode("utf-8", "replace")):
            return DigestVerdict.BAD_PASSWORD
        state = self._nonces.get(creds.nonce)
        if state is None or now >= state.expires:
            return DigestVerdict.STALE
        nc = creds.nonce_count
        if nc is None:
            if self.reuse_without_qop:
                return DigestVerdict.OK
            if state.last_nc:
                return DigestVerdict.REPLAY
            state.last_nc = 1 << 32  # one request per nonce without qop
        else:
            if nc <= state.last_nc:
                return DigestVerdict.REPLAY
            state.last_nc = nc
        return DigestVerdict.OK
