"""RTSP benchmarks: interleaved RTP through the client machine, message parsing, server interleaved output.

Each figure is printed beside a naive reference run in the same process (ratios matter, absolute times drift):

* receive: 64 KiB reads of a TCP stream of 1400-byte `$` frames (a 4K camera's bulk) through
  `RtspClientConnection.receive_data` / `next_event`, against a naive deframer that re-slices the buffer
  after each frame (`buf = buf[4 + n:]`), the commonest hand-written loop.
* parse: a Hikvision SETUP reply through `parse_message`, against `http.client`-style parsing with
  `email.parser` (the stdlib route many Python RTSP clients take).
* send: `RtspServerConnection.send_interleaved` + one `data_to_send()` per 64 frames, against building each
  frame with `b"$" + bytes([ch]) + len.to_bytes(2) + data` and `+=` into one buffer.
"""

from __future__ import annotations

import email.parser
import random
import time

from fluxkit.protocols.rtsp import NEED_DATA, RtspClientConnection, RtspServerConnection, parse_message

SETUP_REPLY = (
    b"RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession:       1273222592;timeout=60\r\n"
    b'Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=1d4d8a5c;mode="play"\r\n'
    b"Date:  Mon, Jan 08 2024 10:21:09 GMT\r\n\r\n"
)
FRAMES = 20000
PACKET = bytes(range(256)) * 5 + bytes(120)  # 1400 bytes
STREAM = (b"$\x00" + len(PACKET).to_bytes(2, "big") + PACKET) * FRAMES


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def bench_receive() -> tuple[float, float]:
    chunks = _chunks(STREAM)
    client = RtspClientConnection("rtsp://127.0.0.1/x", rng=random.Random(0))
    t0 = time.perf_counter()
    n = 0
    for chunk in chunks:
        client.receive_data(chunk)
        while (event := client.next_event()) is not NEED_DATA:
            n += 1
    ours = (time.perf_counter() - t0) / n
    assert n == FRAMES, n
    t0 = time.perf_counter()
    buf = b""
    m = 0
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 4 and buf[0] == 0x24:
            length = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + length:
                break
            _ = (buf[1], buf[4 : 4 + length])
            buf = buf[4 + length :]
            m += 1
    naive = (time.perf_counter() - t0) / m
    del event
    return ours, naive


def bench_parse(rounds: int = 20000) -> tuple[float, float]:
    t0 = time.perf_counter()
    for _ in range(rounds):
        parse_message(SETUP_REPLY)
    ours = (time.perf_counter() - t0) / rounds
    parser = email.parser.BytesParser()
    t0 = time.perf_counter()
    for _ in range(rounds):
        head, _, rest = SETUP_REPLY.partition(b"\r\n")
        _version, status, _reason = head.decode().split(" ", 2)
        message = parser.parsebytes(rest, headersonly=True)
        _ = (int(status), message["CSeq"], message["Transport"])
    naive = (time.perf_counter() - t0) / rounds
    return ours, naive


def bench_send(rounds: int = 300) -> tuple[float, float]:
    server = RtspServerConnection(rng=random.Random(0))
    t0 = time.perf_counter()
    for _ in range(rounds):
        for _ in range(64):
            server.send_interleaved(0, PACKET)
        server.data_to_send()
    ours = (time.perf_counter() - t0) / (rounds * 64)
    t0 = time.perf_counter()
    for _ in range(rounds):
        out = b""
        for _ in range(64):
            out += b"$" + bytes([0]) + len(PACKET).to_bytes(2, "big") + PACKET
    naive = (time.perf_counter() - t0) / (rounds * 64)
    return ours, naive


def main() -> None:
    print(f"{'benchmark':<44} {'fluxkit':>10} {'reference':>10} {'speed-up':>9}")
    for name, (ours, naive) in (
        ("receive interleaved 1400 B frame (per frame)", bench_receive()),
        ("parse SETUP reply (per message)", bench_parse()),
        ("send interleaved 1400 B frame (per frame)", bench_send()),
    ):
        print(f"{name:<44} {ours * 1e6:>8.2f}us {naive * 1e6:>8.2f}us {naive / ours:>8.1f}x")
    frames_per_s = 1 / bench_receive()[0]
    print(f"receive throughput: {frames_per_s:,.0f} frames/s = {frames_per_s * 1404 / 1e6:,.0f} MB/s on one core")


if __name__ == "__main__":
    main()
