"""`RtmpSource`: an engine `Source` that plays a stream from an RTMP server (nginx-rtmp, SRS, a camera).

Strategy: one `run` call is one connection (a "try"); the engine's supervisor restarts it with backoff when it
raises. A try opens the TCP connection under `fail_after(connect_timeout)`, then drives a client-role
`RtmpConnection` in one loop: connect, createStream, play; each media message goes through an `FlvDemuxer`, and
the tracks are published with the first frame (taken from the sequence headers, updated when they change). The
loop waits for bytes until a deadline: `connect_timeout` until media flows, then `stall_timeout` after the last
media message (nginx-rtmp keeps a play of a missing stream open without a word, so this is also how that ends).

The handshake sends a digest-signed C1 (as Flash Player, librtmp and ffmpeg do) and checks the server's S1 digest
and S2 signature when the server answers in that scheme (nginx-rtmp, FMS, SRS); a simple server gets the simple
handshake.

Failures: an error `onStatus` (StreamNotFound, Connect.Rejected, ...), the server closing, `Play.Stop`, a stall,
or a protocol error raise `RtmpSourceError` and the engine retries (a publisher may come back); a malformed URL
raises `PermanentSourceError`. State changes are logged on the "fluxkit.net.rtmp" logger.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import trio

from fluxkit.engine import PermanentSourceError
from fluxkit.errors import FluxkitError, ProtocolError
from fluxkit.protocols.rtmp import (
    NEED_DATA,
    Connected,
    ConnectionClosed,
    MediaMessage,
    Role,
    RtmpConnection,
    StatusReceived,
    StreamCreated,
)

from .rtmp_server import FlvIngest

if TYPE_CHECKING:
    from fluxkit.engine import Publisher, SourceSession, Track

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_STALL_TIMEOUT", "RtmpSource", "RtmpSourceError", "parse_rtmp_url"]

_log = logging.getLogger("fluxkit.net.rtmp")

#: Seconds for the TCP connect, and again until the first media message.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds without a media message after which the try fails.
DEFAULT_STALL_TIMEOUT = 10.0
MAX_RECEIVE = 1 << 16
_END_CODES = frozenset({"NetStream.Play.Stop", "NetStream.Play.UnpublishNotify"})


class RtmpSourceError(FluxkitError):
    """A try of an `RtmpSource` failed in a way a reconnect may fix."""


def parse_rtmp_url(url: str) -> tuple[str, int, str, str]:
    """`rtmp://host[:port]/app/stream[?query]` -> (host, port, app, stream name with query).

    The app is the first path segment; the stream name is the rest (as nginx-rtmp and ffmpeg split it).

    Raises:
        PermanentSourceError: not an rtmp URL, or no app or stream name.
    """
    parts = urlsplit(url)
    if parts.scheme != "rtmp" or not parts.hostname:
        raise PermanentSourceError(f"not an rtmp:// URL: {url!r}")
    app, _, name = parts.path.lstrip("/").partition("/")
    if not app or not name:
        raise PermanentSourceError(f"RTMP URL needs /app/stream: {url!r}")
    if parts.query:
        name += "?" + parts.query
    try:
        port = parts.port or 1935
    except ValueError:
        raise PermanentSourceError(f"bad port in {url!r}") from None
    return parts.hostname, port, app, name


class RtmpSource:
    """Pulls one RTMP stream into the engine (implements `fluxkit.engine.Source`).

    Args:
        url: `rtmp://host[:port]/app/stream`.
        rng: randomness for the handshake.
        connect_timeout: seconds for the TCP connect, and until the first media message.
        stall_timeout: seconds without media before the try fails.
    """

    def __init__(
        self,
        url: str,
        *,
        rng: random.Random | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
    ) -> None:
        self.url = url
        self.host, self.port, self.app, self.stream_name = parse_rtmp_url(url)
        self._rng = rng or random.Random()
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout

    async def run(self, session: SourceSession) -> None:
        """One try: connect, play, publish and send frames until something fails (see the module docstring)."""
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(self.host, self.port)
        except (OSError, trio.TooSlowError) as exc:
            raise RtmpSourceError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        async with stream:
            try:
                await self._play(stream, session)
            except ProtocolError as exc:
                raise RtmpSourceError(f"{self.url}: protocol error: {exc}") from None
            except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError) as exc:
                raise RtmpSourceError(f"{self.url}: connection lost: {exc!r}") from None

    def _go_live(self, session: SourceSession, tracks: list[Track]) -> Publisher:
        publisher = session.publish(tracks)
        _log.info("rtmp pull %s: live: %s", self.url, ", ".join(t.codec for t in tracks))
        return publisher

    async def _play(self, stream: trio.SocketStream, session: SourceSession) -> None:
        conn = RtmpConnection(Role.CLIENT, rng=self._rng)
        tc_url = f"rtmp://{self.host}:{self.port}/{self.app}"
        conn.connect(self.app, tc_url)
        ingest = FlvIngest(functools.partial(self._go_live, session))
        deadline = trio.current_time() + self.connect_timeout
        await stream.send_all(conn.data_to_send())
        while True:
            with trio.move_on_at(deadline) as scope:
                data = await stream.receive_some(MAX_RECEIVE)
            if scope.cancelled_caught:
                what = "no media" if ingest.publisher is None else "stalled: no media"
                raise RtmpSourceError(f"{self.url}: {what} before the deadline")
            conn.receive_data(data)
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, MediaMessage):
                    ingest.feed(event.kind, event.timestamp, event.payload)
                    if ingest.publisher is not None:
                        deadline = trio.current_time() + self.stall_timeout
                elif isinstance(event, Connected):
                    _log.info(
                        "rtmp pull %s: connected (%s handshake)",
                        self.url,
                        "digest" if conn.handshake_digest else "simple",
                    )
                    conn.create_stream()
                elif isinstance(event, StreamCreated):
                    conn.play(event.stream_id, self.stream_name)
                elif isinstance(event, StatusReceived):
                    _log.info("rtmp pull %s: %s %s %s", self.url, event.level, event.code, event.description)
                    if event.level == "error" or event.code in (
                        "NetStream.Play.Stop",
                        "NetStream.Play.UnpublishNotify",
                    ):
                        raise RtmpSourceError(f"{self.url}: {event.code} {event.description}".rstrip())
                elif isinstance(event, ConnectionClosed):
                    raise RtmpSourceError(f"{self.url}: the server closed the connection")
            out = conn.data_to_send()
            if out:
                with trio.fail_after(self.stall_timeout):
                    await stream.send_all(out)
