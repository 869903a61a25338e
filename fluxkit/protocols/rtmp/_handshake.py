"""The digest ("FP9", or "complex") RTMP handshake: HMAC-SHA256 digests inside C1/S1 and signatures in C2/S2.

Adobe never published this part (RTMP 1.0 §5.2 only has the simple handshake); the facts below are those that
Flash Player 9+, FMS, librtmp, ffmpeg (libavformat/rtmpproto.c) and nginx-rtmp (ngx_rtmp_handshake.c) agree on:

- A 1536-byte C1 or S1 is time (4 bytes), version (4 bytes, non-zero when a digest is present), then 1528 bytes
  holding a 32-byte digest somewhere. Its position comes from four "offset" bytes: with the scheme based at 8,
  pos = (b[8] + b[9] + b[10] + b[11]) % 728 + 12; with the scheme based at 772, pos = sum(b[772:776]) % 728 + 776.
- The digest is HMAC-SHA256 over the 1504 other bytes, keyed with the first 30 bytes of the player key
  ("Genuine Adobe Flash Player 001") in C1, and the first 36 bytes of the server key ("Genuine Adobe Flash Media
  Server 001") in S1.
- S2 (C2) is 1504 random bytes then a 32-byte signature: HMAC-SHA256 over those 1504 bytes, keyed with
  HMAC-SHA256(full server key (player key for C2), the peer's C1 (S1) digest). The full keys are the text
  followed by the same 32 fixed bytes.

A reader finds the peer's scheme by trying the 772-based position first, then the 8-based one (as ffmpeg and
nginx-rtmp do); a block with a zero version field is a simple-handshake block and is not searched.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = [
    "CLIENT_VERSION",
    "DIGEST_SIZE",
    "PLAYER_KEY",
    "PLAYER_KEY_PART",
    "SERVER_KEY",
    "SERVER_KEY_PART",
    "SERVER_VERSION",
    "digest_position",
    "find_digest",
    "imprint_digest",
    "response_signature",
]

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
#: The full player (client) key: text then 32 fixed bytes; its first 30 bytes sign C1.
PLAYER_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
#: The full server key; its first 36 bytes sign S1.
SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
PLAYER_KEY_PART = PLAYER_KEY[:30]
SERVER_KEY_PART = SERVER_KEY[:36]
#: Bytes of a digest (SHA-256).
DIGEST_SIZE = 32
#: The version field of our S1 (that of nginx-rtmp): its first byte >= 3 makes ffmpeg check the S1 digest.
SERVER_VERSION = bytes((13, 14, 10, 13))
#: The version field of our C1 (Flash Player 9.0.124.2, as ffmpeg sends).
CLIENT_VERSION = bytes((9, 0, 124, 2))

_BLOCK = 1536
_SIGNED = _BLOCK - DIGEST_SIZE


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def digest_position(block: bytes, base: int) -> int:
    """Where the digest of a C1/S1 sits for the scheme based at `base` (8 or 772)."""
    return sum(block[base : base + 4]) % 728 + base + 4


def _digest_at(block: bytes, pos: int, key: bytes) -> bytes:
    return _hmac(key, block[:pos] + block[pos + DIGEST_SIZE :])


def find_digest(block: bytes, key: bytes) -> tuple[int, int] | None:
    """The (scheme base, position) of a valid digest in a 1536-byte C1/S1 signed with `key`, or None.

    Args:
        block: C1 or S1 (without the C0/S0 byte).
        key: `PLAYER_KEY_PART` for a C1, `SERVER_KEY_PART` for an S1.
    """
    if len(block) != _BLOCK or not any(block[4:8]):
        return None
    for base in (772, 8):
        pos = digest_position(block, base)
        if hmac.compare_digest(_digest_at(block, pos, key), block[pos : pos + DIGEST_SIZE]):
            return base, pos
    return None


def imprint_digest(block: bytes, key: bytes, base: int = 8) -> bytes:
    """`block` (1536 bytes, version field set) with its digest written at the position of scheme `base`."""
    pos = digest_position(block, base)
    return block[:pos] + _digest_at(block, pos, key) + block[pos + DIGEST_SIZE :]


def response_signature(block: bytes, peer_digest: bytes, key: bytes) -> bytes:
    """The signature closing an S2 (key `SERVER_KEY`) or C2 (key `PLAYER_KEY`) over its first 1504 bytes."""
    return _hmac(_hmac(key, peer_digest), block[:_SIGNED])
