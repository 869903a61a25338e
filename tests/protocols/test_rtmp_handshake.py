"""The digest ("FP9") RTMP handshake: golden blocks from real peers, both schemes, fallbacks and tampering.

Golden data (tests/protocols/data): `rtmp_ffmpeg_c0c1.bin` is the C0+C1 that ffmpeg 5.1 sends (deterministic: its
random bytes come from a fixed-seed generator, uptime 0, version 9.0.124.2); `rtmp_nginx_s0s1s2.bin` is what
nginx-rtmp 1.2.2 answered to the C0+C1 of `RtmpConnection(Role.CLIENT, rng=random.Random(7))`. The checks below
recompute digests with `hmac` directly, from the published description, not through fluxkit's helpers.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxkit.errors import ParseError, ProtocolError
from fluxkit.protocols.rtmp import HANDSHAKE_SIZE, NEED_DATA, ConnectionState, Role, RtmpConnection
from fluxkit.protocols.rtmp._handshake import PLAYER_KEY_PART, find_digest, imprint_digest

DATA = Path(__file__).parent / "data"
TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FP_KEY = b"Genuine Adobe Flash Player 001"
FMS_KEY = b"Genuine Adobe Flash Media Server 001"


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _pos(block: bytes, base: int) -> int:
    return sum(block[base : base + 4]) % 728 + base + 4


def _valid_at(block: bytes, base: int, key: bytes) -> bool:
    p = _pos(block, base)
    return _mac(key, block[:p] + block[p + 32 :]) == block[p : p + 32]


def _digest(block: bytes, base: int) -> bytes:
    p = _pos(block, base)
    return block[p : p + 32]


def _signed(block: bytes, peer_digest: bytes, full_key: bytes) -> bool:
    return _mac(_mac(full_key, peer_digest), block[:1504]) == block[1504:]


def _server_answer(c0c1: bytes, **kwargs: object) -> tuple[RtmpConnection, bytes]:
    server = RtmpConnection(Role.SERVER, rng=random.Random(5), **kwargs)  # type: ignore[arg-type]
    server.receive_data(c0c1)
    assert server.next_event() is NEED_DATA
    out = server.data_to_send()
    assert len(out) == 1 + 2 * HANDSHAKE_SIZE
    assert out[0] == 3
    return server, out


def test_ffmpeg_c1_answered_with_digest() -> None:
    c0c1 = (DATA / "rtmp_ffmpeg_c0c1.bin").read_bytes()
    c1 = c0c1[1:]
    assert c1[4:8] == bytes((9, 0, 124, 2))
    assert _valid_at(c1, 8, FP_KEY)  # ffmpeg signs with the scheme based at 8
    assert find_digest(c1, PLAYER_KEY_PART) == (8, _pos(c1, 8))
    server, out = _server_answer(c0c1)
    s1, s2 = out[1 : 1 + HANDSHAKE_SIZE], out[1 + HANDSHAKE_SIZE :]
    assert s1[4] >= 3  # ffmpeg (playing) validates S1 only then
    assert _valid_at(s1, 8, FMS_KEY)  # our digest, in the client's scheme
    assert _signed(s2, _digest(c1, 8), FMS_KEY + TAIL)  # what ffmpeg checks against its own digest
    assert s2 != c1
    # ffmpeg publishing answers with S1 echoed as C2: accepted (C2 is not checked).
    server.receive_data(s1)
    assert server.next_event() is NEED_DATA
    assert server.state is ConnectionState.OPEN
    assert server.handshake_digest


def test_scheme_772_answered_in_kind() -> None:
    rng = random.Random(11)
    c1 = imprint_digest(bytes(4) + b"\x0a\x00\x2d\x02" + rng.randbytes(1528), PLAYER_KEY_PART, 772)
    assert _valid_at(c1, 772, FP_KEY)
    _, out = _server_answer(b"\x03" + c1)
    s1, s2 = out[1 : 1 + HANDSHAKE_SIZE], out[1 + HANDSHAKE_SIZE :]
    assert _valid_at(s1, 772, FMS_KEY)
    assert _signed(s2, _digest(c1, 772), FMS_KEY + TAIL)


@pytest.mark.parametrize("version", [bytes(4), b"\x0a\x00\x2d\x02"])
def test_plain_c1_gets_simple_handshake(version: bytes) -> None:
    c1 = bytes(4) + version + random.Random(3).randbytes(1528)  # no digest (or a zero version field)
    server, out = _server_answer(b"\x03" + c1)
    assert out[5:9] == bytes(4)  # S1 version zero: clients skip the digest check
    assert out[1 + HANDSHAKE_SIZE :] == c1  # S2 echoes C1
    server.receive_data(out[1 : 1 + HANDSHAKE_SIZE])
    assert server.next_event() is NEED_DATA
    assert not server.handshake_digest


def test_server_digest_can_be_switched_off() -> None:
    c0c1 = (DATA / "rtmp_ffmpeg_c0c1.bin").read_bytes()
    server, out = _server_answer(c0c1, digest_handshake=False)
    assert out[1 + HANDSHAKE_SIZE :] == c0c1[1:]
    assert not server.handshake_digest


def test_client_against_nginx_answer() -> None:
    client = RtmpConnection(Role.CLIENT, rng=random.Random(7))
    c0c1 = client.data_to_send()
    c1 = c0c1[1:]
    assert c1[4:8] == bytes((9, 0, 124, 2))
    assert _valid_at(c1, 8, FP_KEY)
    answer = (DATA / "rtmp_nginx_s0s1s2.bin").read_bytes()
    s1 = answer[1 : 1 + HANDSHAKE_SIZE]
    assert _valid_at(s1, 8, FMS_KEY)  # nginx-rtmp signs S1 in the scheme based at 8
    assert _signed(answer[1 + HANDSHAKE_SIZE :], _digest(c1, 8), FMS_KEY + TAIL)
    for i in range(0, len(answer), 100):  # any split
        client.receive_data(answer[i : i + 100])
        assert client.next_event() is NEED_DATA
    assert client.state is ConnectionState.OPEN
    assert client.handshake_digest
    c2 = client.data_to_send()
    assert len(c2) == HANDSHAKE_SIZE
    assert _signed(c2, _digest(s1, 8), FP_KEY + TAIL)


def test_client_rejects_bad_s2_signature() -> None:
    client = RtmpConnection(Role.CLIENT, rng=random.Random(7))
    answer = bytearray((DATA / "rtmp_nginx_s0s1s2.bin").read_bytes())
    answer[-1] ^= 1
    client.receive_data(bytes(answer))
    with pytest.raises(ParseError, match="S2 signature"):
        client.next_event()
    assert client.state is ConnectionState.ERROR


def test_client_falls_back_to_simple_server() -> None:
    client = RtmpConnection(Role.CLIENT, rng=random.Random(7))
    server = RtmpConnection(Role.SERVER, rng=random.Random(8), digest_handshake=False)
    server.receive_data(client.data_to_send())
    server.next_event()
    answer = server.data_to_send()
    client.receive_data(answer)
    assert client.next_event() is NEED_DATA
    assert client.data_to_send() == answer[1 : 1 + HANDSHAKE_SIZE]  # C2 echoes S1
    assert not client.handshake_digest


@pytest.mark.parametrize("client_digest", [True, False])
def test_pair_round_trip(client_digest: bool) -> None:
    client = RtmpConnection(Role.CLIENT, rng=random.Random(1), digest_handshake=client_digest)
    server = RtmpConnection(Role.SERVER, rng=random.Random(2))
    data = client.data_to_send()
    server.receive_data(data)
    server.next_event()
    client.receive_data(server.data_to_send())
    client.next_event()
    server.receive_data(client.data_to_send())
    server.next_event()
    assert client.state is server.state is ConnectionState.OPEN
    assert client.handshake_digest is server.handshake_digest is client_digest


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HANDSHAKE_SIZE, max_size=HANDSHAKE_SIZE))
def test_any_c1_is_answered(c1: bytes) -> None:
    server = RtmpConnection(Role.SERVER, rng=random.Random(0))
    server.receive_data(b"\x03" + c1 + c1)
    assert server.next_event() is NEED_DATA
    assert server.state is ConnectionState.OPEN
    assert not server.handshake_digest
    assert find_digest(c1, PLAYER_KEY_PART) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2 * HANDSHAKE_SIZE, max_size=2 * HANDSHAKE_SIZE + 10))
def test_any_server_answer_is_handled(answer: bytes) -> None:
    client = RtmpConnection(Role.CLIENT, rng=random.Random(0))
    client.receive_data(b"\x03" + answer)
    with contextlib.suppress(ProtocolError):
        client.next_event()
