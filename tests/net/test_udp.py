"""The batched UDP receiver on loopback: one wait, then a drain of everything queued, bounded per call."""

from __future__ import annotations

import socket

import pytest
import trio

from fluxkit.errors import LocalProtocolError
from fluxkit.net._udp import DatagramReceiver, bind_rtp_pair, bind_udp


@pytest.mark.trio
async def test_batches_drain_everything_queued() -> None:
    rx = DatagramReceiver(bind_udp("127.0.0.1"), max_batch=64)
    dest = rx.sock.getsockname()
    with trio.fail_after(5), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(200):
            tx.sendto(i.to_bytes(2, "big") * 500, dest)
        got: list[bytes] = []
        batches = 0
        while len(got) < 200:
            batch = await rx.receive_batch()
            assert 1 <= len(batch) <= 64
            got += batch
            batches += 1
    assert [int.from_bytes(d[:2], "big") for d in got] == list(range(200))
    assert all(len(d) == 1000 for d in got)
    stats = rx.statistics()
    assert (stats.datagrams, stats.bytes, stats.batches) == (200, 200_000, batches)
    assert batches <= 8  # drained in batches, not one wakeup per datagram
    assert rx.drain() == []
    rx.close()


@pytest.mark.trio
async def test_oversized_datagrams_are_dropped_and_counted() -> None:
    rx = DatagramReceiver(bind_udp("127.0.0.1"), max_datagram_size=100)
    with trio.fail_after(5), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"x" * 101, rx.sock.getsockname())
        tx.sendto(b"y" * 100, rx.sock.getsockname())
        assert await rx.receive_batch() == [b"y" * 100]
    assert rx.statistics().truncated == 1
    rx.close()


@pytest.mark.trio
async def test_close_wakes_a_waiting_task() -> None:
    rx = DatagramReceiver(bind_udp("127.0.0.1"))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def wait() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await rx.receive_batch()

            nursery.start_soon(wait)
            await trio.sleep(0.01)
            rx.close()


def test_rtp_pair_is_even_then_odd() -> None:
    rtp, rtcp = bind_rtp_pair("127.0.0.1")
    with rtp, rtcp:
        port = rtp.getsockname()[1]
        assert port % 2 == 0
        assert rtcp.getsockname()[1] == port + 1
        assert not rtp.getblocking()


def test_bad_limits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        with pytest.raises(LocalProtocolError):
            DatagramReceiver(sock, max_batch=0)
        with pytest.raises(LocalProtocolError):
            DatagramReceiver(sock, max_datagram_size=0)
