"""The client side: answer a `WWW-Authenticate` challenge, then keep answering it (RFC 7616 §3.4, RFC 7617).

Strategy: `DigestClient` remembers the challenge it chose and a nonce count, so every later request to the same
server (RTSP SETUP/PLAY after a DESCRIBE, a SIP REGISTER refresh) carries credentials without another 401 round
trip; a new nonce resets the count to 1 (RFC 7616 §3.4: nc counts requests sent with one nonce). The cnonce comes
from the injected `random.Random`, never from the OS, so tests are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fluxkit.errors import LocalProtocolError, RemoteProtocolError

from ._codec import (
    ALGORITHMS,
    Challenge,
    DigestCredentials,
    basic_authorization,
    compute_response,
    parse_challenges,
)

if TYPE_CHECKING:
    import random

__all__ = ["DigestClient"]

# Preference order when a server offers several challenges (RFC 7616 §3.7: the strongest the client supports).
_ALGORITHM_RANK = {"SHA-256": 4, "SHA-256-sess": 3, "MD5": 2, "MD5-sess": 1}


def _usable(challenge: Challenge) -> bool:
    if challenge.scheme == "Basic":
        return True
    if challenge.scheme != "Digest" or challenge.nonce is None:
        return False
    if challenge.algorithm is not None and challenge.algorithm not in ALGORITHMS.values():
        return False
    if not challenge.qop:
        return not (challenge.algorithm or "").endswith("-sess")  # -sess needs a cnonce, carried only with qop
    return "auth" in challenge.qop


def _rank(challenge: Challenge) -> int:
    if challenge.scheme == "Basic":
        return 0
    return _ALGORITHM_RANK[challenge.algorithm or "MD5"]


class DigestClient:
    """Answers Digest (MD5, MD5-sess, SHA-256, SHA-256-sess; qop auth or none) and Basic challenges.

    Args:
        username: the user name (SIP: the GB28181 device ID).
        password: the password.
        rng: source of cnonces.

    Usage: feed the 401/407 header values to `challenge()`, then call `authorization(method, uri)` for the
    header value of each request (None until a challenge was accepted). `respond()` does both.
    """

    def __init__(self, username: str, password: str, rng: random.Random) -> None:
        self.username = username
        self.password = password
        self._rng = rng
        self._challenge: Challenge | None = None
        self._nc = 0

    @property
    def current_challenge(self) -> Challenge | None:
        """The challenge being answered, or None."""
        return self._challenge

    @property
    def nonce_count(self) -> int:
        """How many requests carried credentials for the current nonce."""
        return self._nc

    def challenge(self, values: str | Challenge | Iterable[str | Challenge]) -> Challenge:
        """Accept a challenge (or pick the strongest of several header values / challenges) and return it.

        Raises:
            ParseError: a header value is malformed.
            RemoteProtocolError: no challenge is usable (unknown scheme/algorithm, only qop=auth-int, no nonce).
        """
        items: Iterable[str | Challenge] = [values] if isinstance(values, str | Challenge) else values
        candidates: list[Challenge] = []
        for item in items:
            if isinstance(item, Challenge):
                candidates.append(item)
            else:
                candidates.extend(parse_challenges(item))
        usable = [c for c in candidates if _usable(c)]
        if not usable:
            offered = ", ".join(f"{c.scheme} {c.algorithm or ''} qop={','.join(c.qop)}" for c in candidates)
            raise RemoteProtocolError(f"no supported authentication challenge (offered: {offered})")
        chosen = max(usable, key=_rank)  # max keeps the first of equal rank: the server's order
        if self._challenge is None or chosen.nonce != self._challenge.nonce:
            self._nc = 0
        self._challenge = chosen
        return chosen

    def authorization(self, method: str, uri: str) -> str | None:
        """The `Authorization` value for one request, counting it against the current nonce; None if none."""
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "Basic":
            return basic_authorization(self.username, self.password)
        assert ch.nonce is not None  # guaranteed by _usable
        self._nc += 1
        if self._nc > 0xFFFFFFFF:
            raise LocalProtocolError("nonce count exhausted: wait for a new challenge")
        qop = "auth" if ch.qop else None
        nc = f"{self._nc:08x}" if qop else None
        cnonce = f"{self._rng.getrandbits(64):016x}" if qop else None
        response = compute_response(
            algorithm=ch.algorithm,
            username=self.username,
            realm=ch.realm,
            password=self.password,
            method=method,
            uri=uri,
            nonce=ch.nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )
        return DigestCredentials(
            username=self.username,
            realm=ch.realm,
            nonce=ch.nonce,
            uri=uri,
            response=response,
            algorithm=ch.algorithm,
            cnonce=cnonce,
            opaque=ch.opaque,
            qop=qop,
            nc=nc,
        ).serialize()

    def respond(self, values: str | Challenge | Iterable[str | Challenge], method: str, uri: str) -> str:
        """`challenge(values)` then `authorization(method, uri)`."""
        self.challenge(values)
        result = self.authorization(method, uri)
        assert result is not None
        return result

    def reset(self) -> None:
        """Forget the challenge (after a final failure, or when the server changes)."""
        self._challenge = None
        self._nc = 0
