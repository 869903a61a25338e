"""Batched datagram reception for Trio, and RTP/RTCP port pairs.

Strategy (../shared/reference/performance.md): one `await` per datagram costs about five times the work of the
datagram itself and loses packets under load. A `DatagramReceiver` instead waits once for the socket to become
readable (`trio.lowlevel.wait_readable`) and then drains the non-blocking stdlib socket with `recv_into` until
`BlockingIOError` (or `max_batch` datagrams, so one busy socket cannot starve the other tasks), returning the
whole batch for the sans-IO layer to process in one call.

Datagram semantics: nothing here raises on what the peer sends. A datagram larger than `max_datagram_size` is
truncated by the kernel; it is dropped and counted (`statistics().truncated`), as are ICMP-induced errors
(`ConnectionRefusedError` after we sent to a closed port) in `errors`.
"""

from __future__ import annotations

import errno
import socket

import attrs
import trio

from fluxkit.errors import LocalProtocolError

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "DEFAULT_RECEIVE_BUFFER",
    "DatagramReceiver",
    "DatagramStatistics",
    "bind_rtp_pair",
    "bind_udp",
]

#: Largest datagram accepted (bytes); larger ones are dropped and counted. RTP over Ethernet stays under 1500.
DEFAULT_MAX_DATAGRAM_SIZE = 65536
#: Most datagrams returned by one `receive_batch` call, so that one busy socket yields to other tasks.
DEFAULT_MAX_BATCH = 256
#: SO_RCVBUF asked for (the kernel caps it at net.core.rmem_max): about 2 s of a 4 Mbit/s camera.
DEFAULT_RECEIVE_BUFFER = 1 << 20

_MAX_PAIR_TRIES = 64


@attrs.frozen(kw_only=True, slots=True)
class DatagramStatistics:
    """Counters of a `DatagramReceiver`.

    Attributes:
        datagrams: datagrams returned.
        bytes: bytes returned.
        batches: non-empty batches returned (datagrams / batches is the mean batch size).
        truncated: datagrams dropped for exceeding `max_datagram_size`.
        errors: receive errors ignored (ICMP port unreachable and the like).
    """

    datagrams: int
    bytes: int
    batches: int
    truncated: int
    errors: int


class DatagramReceiver:
    """Receives datagrams from a bound UDP socket in batches.

    Args:
        sock: a bound stdlib UDP socket; it is switched to non-blocking mode. The receiver does not own it:
            closing it stays the caller's job (or use `close()`).
        max_datagram_size: datagrams longer than this are dropped and counted.
        max_batch: most datagrams per `receive_batch` call.
    """

    __slots__ = ("_batches", "_buf", "_bytes", "_count", "_errors", "_max", "_max_batch", "_truncated", "_view", "sock")

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_datagram_size < 1:
            raise LocalProtocolError(f"max_datagram_size={max_datagram_size} must be >= 1")
        if max_batch < 1:
            raise LocalProtocolError(f"max_batch={max_batch} must be >= 1")
        sock.setblocking(False)
        self.sock = sock
        self._max = max_datagram_size
        self._max_batch = max_batch
        # One byte more than the limit: a datagram that fills it was truncated by the kernel.
        self._buf = bytearray(max_datagram_size + 1)
        self._view = memoryview(self._buf)
        self._count = 0
        self._bytes = 0
        self._batches = 0
        self._truncated = 0
        self._errors = 0

    def drain(self) -> list[bytes]:
        """Every datagram queued on the socket right now (up to `max_batch`), without waiting."""
        recv_into = self.sock.recv_into
        view = self._view
        limit = self._max
        out: list[bytes] = []
        append = out.append
        size = 0
        for _ in range(self._max_batch):
            try:
                n = recv_into(view)
            except BlockingIOError:
                break
            except OSError as exc:
                # ICMP errors surface on the next receive (ECONNREFUSED on Linux); the socket stays usable.
                if exc.errno in (errno.EBADF, errno.ENOTSOCK):
                    raise
                self._errors += 1
                continue
            if n > limit:
                self._truncated += 1
                continue
            append(view[:n].tobytes())
            size += n
        if out:
            self._count += len(out)
            self._bytes += size
            self._batches += 1
        return out

    async def receive_batch(self) -> list[bytes]:
        """Wait until at least one datagram is there, then return all that are queued (up to `max_batch`).

        Always a checkpoint; returns a non-empty list.
        """
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            batch = self.drain()
            if batch:
                return batch

    def statistics(self) -> DatagramStatistics:
        """The counters so far."""
        return DatagramStatistics(
            datagrams=self._count,
            bytes=self._bytes,
            batches=self._batches,
            truncated=self._truncated,
            errors=self._errors,
        )

    def close(self) -> None:
        """Close the socket (and tell Trio, so that a task waiting on it wakes up with ClosedResourceError)."""
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


def bind_udp(host: str, port: int = 0, *, receive_buffer: int = DEFAULT_RECEIVE_BUFFER) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port), its receive buffer enlarged to `receive_buffer` bytes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_rtp_pair(host: str, *, receive_buffer: int = DEFAULT_RECEIVE_BUFFER) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on `host`: RTP on an even port and RTCP on the next, odd one (RFC 3550 §11).

    Raises:
        OSError: no free pair was found after a bounded number of tries.
    """
    for _ in range(_MAX_PAIR_TRIES):
        rtp = bind_udp(host, 0, receive_buffer=receive_buffer)
        port = rtp.getsockname()[1]
        if port & 1 or port >= 65535:
            rtp.close()
            continue
        try:
            rtcp = bind_udp(host, port + 1, receive_buffer=0)
        except OSError:
            rtp.close()
            continue
        return rtp, rtcp
    raise OSError(errno.EADDRINUSE, f"no free even/odd UDP port pair on {host}")
