"""The RTMP server: encoders (ffmpeg, OBS, cameras) push to `rtmp://HOST:PORT/APP/KEY`, players pull.

Strategy: `serve_rtmp` is `trio.serve_tcp` with one handler task per connection, each driving its own sans-IO
`RtmpConnection` (style.md §6.11): the reader loop waits for bytes, drains `next_event()` into handlers and flushes
`data_to_send()` under the connection's write lock. The handshake must finish within `handshake_timeout`; a
connection that is not playing and sends nothing for `idle_timeout` seconds is a stalled peer and is dropped.

Publishing: the stream key (the publish name without its `?query`) maps to a stream id through `publish_keys`
(None: the key is the stream id). With `tokens`, a key listed there needs `token=<value>` in the publish name's
query or in the tcUrl's. A key that is already being published (by RTMP or any other source in the engine) is
refused with `NetStream.Publish.BadName` and a warning log line. Once accepted, an `FlvDemuxer` turns tags into
`MediaFrame`s; the stream enters the engine (`engine.publish_stream`) with the first frame, its tracks taken from
the sequence headers (size from the SPS, AAC rate and channels from the AudioSpecificConfig); a later sequence
header with another configuration updates the tracks. Unpublishing, deleting the stream or closing the connection
stops the engine stream.

Playing: the play name is a stream id (or a key of `publish_keys`); the handler answers `Play.Start` and starts a
sender task that subscribes to the stream (the engine starts it at a keyframe) and writes FLV tags built by
`FlvMuxer`, sequence headers first, in batches. A write that makes no progress for `send_timeout` seconds drops
that player; frames wait meanwhile in the engine's bounded subscription queue.

Flow control (RTMP §5.4.3-5.4.5): publishers are acknowledged per the window they set (in `RtmpConnection`). A
player is asked to acknowledge every `window_ack_size` bytes; one whose unacknowledged bytes exceed
`max_unacknowledged` (or the output window it set with Set Peer Bandwidth, when smaller) is slow even though TCP
still takes the bytes: its frames are dropped (counted, never buffered) until its acknowledgements catch up, and
it resumes at the next video keyframe; one that stays over the limit for `send_timeout` seconds is disconnected
with a warning log line.

Every error stays inside its connection: a protocol error (malformed chunks, an oversized chunk size or message,
bad AMF) is logged with the peer address and closes that connection only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import parse_qs, urlsplit

import trio

from fluxkit.engine import StreamNotFoundError, Track
from fluxkit.errors import FluxkitError, LocalProtocolError, ProtocolError
from fluxkit.protocols.flv import FlvDemuxer
from fluxkit.protocols.rtmp import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_WINDOW_ACK_SIZE,
    NEED_DATA,
    CommandReceived,
    Connected,
    ConnectionClosed,
    ConnectionState,
    MediaMessage,
    PlayRequested,
    PublishRequested,
    Role,
    RtmpConnection,
    StreamDeleted,
)

from ._flv_out import muxer_for

if TYPE_CHECKING:
    from fluxkit.engine import Publisher, Subscription, VideoEngine
    from fluxkit.protocols import MediaFrame

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_UNACKNOWLEDGED",
    "DEFAULT_SEND_TIMEOUT",
    "FlvIngest",
    "RtmpServer",
    "serve_rtmp",
    "split_stream_name",
    "tracks_from_demuxer",
]

_log = logging.getLogger("fluxkit.net.rtmp")

#: Seconds for the handshake and the connect command.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Seconds a non-playing connection may stay silent before it counts as stalled.
DEFAULT_IDLE_TIMEOUT = 30.0
#: Seconds a write to a peer may make no progress.
DEFAULT_SEND_TIMEOUT = 10.0
#: Bytes a player may leave unacknowledged before it counts as slow (three of the default windows).
DEFAULT_MAX_UNACKNOWLEDGED = 3 * DEFAULT_WINDOW_ACK_SIZE
MAX_RECEIVE = 1 << 16
_CONNECTION_ERRORS = (
    ProtocolError,
    FluxkitError,
    trio.TooSlowError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ConnectionError,
)


def split_stream_name(name: str) -> tuple[str, dict[str, str]]:
    """ "cam1?token=abc" -> ("cam1", {"token": "abc"}) (first value of each query parameter)."""
    key, _, query = name.partition("?")
    return key, {k: v[0] for k, v in parse_qs(query).items() if v}


def tracks_from_demuxer(demuxer: FlvDemuxer) -> list[Track]:
    """Engine tracks from the sequence headers an `FlvDemuxer` has seen (video first, then audio)."""
    tracks: list[Track] = []
    video = demuxer.video_config
    if video is not None:
        tracks.append(Track.for_video(video.codec, video.parameter_sets))
    if demuxer.audio_codec == "aac" and demuxer.audio_config is not None:
        config = demuxer.audio_config
        tracks.append(
            Track(
                codec="aac",
                sample_rate=config.sample_rate,
                channels=config.channels or None,
                extradata=demuxer.audio_extradata,
            )
        )
    elif demuxer.audio_codec in ("pcm_alaw", "pcm_mulaw"):
        tracks.append(Track(codec=demuxer.audio_codec, sample_rate=8000, channels=1))
    return tracks


#: Audio frames held back while waiting for video before an audio-only stream is published (about 2 s of AAC).
DEFAULT_MAX_PENDING = 100


class FlvIngest:
    """FLV tag bodies in, engine frames out: an `FlvDemuxer` plus the rule of when the stream is published.

    The stream is published with the first video frame (its tracks from the sequence headers seen so far), or,
    when no video sequence header came, once `max_pending` audio frames waited (an audio-only stream). Frames
    before that are held (bounded) and sent right after publishing; a later sequence header with a new
    configuration updates the tracks.

    Args:
        publish: called once with the tracks; returns the `Publisher` to send to.
        max_pending: bound on the held frames.
    """

    def __init__(self, publish: Callable[[list[Track]], Publisher], *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.demuxer = FlvDemuxer()
        self.publisher: Publisher | None = None
        self._publish = publish
        self._pending: list[MediaFrame] = []
        self._max_pending = max_pending

    def feed(self, kind: str, timestamp: int, payload: bytes) -> None:
        """One audio/video message payload.

        Raises:
            ParseError: a malformed tag.
            trio.ClosedResourceError: the engine stopped the stream.
        """
        demuxer = self.demuxer
        frame = demuxer.video(timestamp, payload) if kind == "video" else demuxer.audio(timestamp, payload)
        if frame is None:
            return
        publisher = self.publisher
        if publisher is None:
            if frame.kind != "video" and demuxer.video_config is None and len(self._pending) < self._max_pending:
                self._pending.append(frame)
                return
            demuxer.config_changed = False
            publisher = self.publisher = self._publish(tracks_from_demuxer(demuxer))
            pending, self._pending = self._pending, []
            for held in pending:
                self._send(publisher, held)
        elif demuxer.config_changed:
            demuxer.config_changed = False
            publisher.update_tracks(tracks_from_demuxer(demuxer))
        self._send(publisher, frame)

    @staticmethod
    def _send(publisher: Publisher, frame: MediaFrame) -> None:
        with contextlib.suppress(LocalProtocolError):  # a codec without a track (a mid-stream switch): dropped
            publisher.send(frame)

    def close(self) -> None:
        """Stop the engine stream (when it was published)."""
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None


class RtmpServer:
    """Shared state of one `serve_rtmp`: settings and the keys being published (for duplicate refusal)."""

    def __init__(
        self,
        engine: VideoEngine,
        *,
        publish_keys: dict[str, str] | None,
        tokens: dict[str, str] | None,
        rng: random.Random,
        handshake_timeout: float,
        idle_timeout: float,
        send_timeout: float,
        max_message_size: int,
        queue_size: int | None,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
        max_unacknowledged: int = DEFAULT_MAX_UNACKNOWLEDGED,
    ) -> None:
        self.engine = engine
        self.publish_keys = publish_keys
        self.tokens = tokens or {}
        self.rng = rng
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.send_timeout = send_timeout
        self.max_message_size = max_message_size
        self.queue_size = queue_size
        self.window_ack_size = window_ack_size
        self.max_unacknowledged = max_unacknowledged
        #: stream id -> the peer address publishing it.
        self.publishing: dict[str, str] = {}

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            peer = "%s:%s" % stream.socket.getpeername()[:2]  # noqa: UP031 - (host, port) or (host, port, ...)
        except OSError:
            peer = "?"
        session = _Session(self, stream, peer)
        try:
            await session.run()
        except ProtocolError as exc:
            _log.warning("rtmp %s: protocol error, closing: %s", peer, exc)
        except FluxkitError as exc:
            _log.warning("rtmp %s: closing: %s", peer, exc)
        except trio.TooSlowError:
            _log.warning("rtmp %s: timed out (handshake, stalled peer or blocked write), closing", peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            _log.info("rtmp %s: connection lost", peer)
        finally:
            session.unpublish_all()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()


class _Session:
    def __init__(self, server: RtmpServer, stream: trio.SocketStream, peer: str) -> None:
        self.server = server
        self.stream = stream
        self.peer = peer
        self.conn = RtmpConnection(
            Role.SERVER,
            rng=server.rng,
            max_message_size=server.max_message_size,
            window_ack_size=server.window_ack_size,
        )
        self.lock = trio.Lock()
        #: message stream id -> (stream id, its ingest).
        self.publishes: dict[int, tuple[str, FlvIngest]] = {}
        self.players: dict[int, trio.CancelScope] = {}
        self.nursery: trio.Nursery | None = None
        self.error: BaseException | None = None

    async def flush(self) -> None:
        async with self.lock:
            data = self.conn.data_to_send()
            if data:
                with trio.fail_after(self.server.send_timeout):
                    await self.stream.send_all(data)

    async def run(self) -> None:
        # Errors are carried out of the nursery by hand so that `handle` sees the bare exception (trio wraps
        # whatever escapes a nursery body in an ExceptionGroup); player tasks end the connection the same way.
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            try:
                await self.read_loop()
            except _CONNECTION_ERRORS as exc:
                self.error = exc
            nursery.cancel_scope.cancel()
        if self.error is not None:
            raise self.error

    async def read_loop(self) -> None:
        deadline = trio.current_time() + self.server.handshake_timeout
        while True:
            if self.conn.state is ConnectionState.OPEN and self.conn.app:
                deadline = math.inf if self.players else trio.current_time() + self.server.idle_timeout
            with trio.move_on_at(deadline) as scope:
                data = await self.stream.receive_some(MAX_RECEIVE)
            if scope.cancelled_caught:
                what = "handshake not completed" if not self.conn.app else "no data"
                raise trio.TooSlowError(f"{what} before the deadline")
            self.conn.receive_data(data)
            if not await self.process():
                return

    async def process(self) -> bool:
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, MediaMessage):
                self.on_media(event)
            elif isinstance(event, PublishRequested):
                self.on_publish(event)
            elif isinstance(event, PlayRequested):
                await self.on_play(event)
            elif isinstance(event, StreamDeleted):
                self.unpublish(event.stream_id, event.command)
                scope = self.players.pop(event.stream_id, None)
                if scope is not None:
                    scope.cancel()
            elif isinstance(event, Connected):
                _log.info(
                    "rtmp %s: connected (app %r, %s handshake, objectEncoding %d)",
                    self.peer,
                    event.app,
                    "digest" if conn.handshake_digest else "simple",
                    conn.object_encoding,
                )
            elif isinstance(event, CommandReceived):
                if event.name == "FCUnpublish":
                    for sid in list(self.publishes):
                        self.unpublish(sid, "FCUnpublish")
            elif isinstance(event, ConnectionClosed):
                await self.flush()
                return False
        await self.flush()
        return True

    # --- publishing -----------------------------------------------------------------------------------------

    def on_publish(self, event: PublishRequested) -> None:
        server = self.server
        key, query = split_stream_name(event.stream_key)
        if server.publish_keys is not None:
            stream_id = server.publish_keys.get(key)
            if stream_id is None:
                _log.warning("rtmp %s: publish of unknown key %r refused", self.peer, key)
                self.conn.refuse_publish(event.stream_id, "NetStream.Publish.BadName", "Unknown stream key.")
                return
        else:
            stream_id = key
        if not stream_id:
            self.conn.refuse_publish(event.stream_id, "NetStream.Publish.BadName", "Empty stream key.")
            return
        wanted = server.tokens.get(key)
        if wanted is not None:
            # The token may come on the key ("cam1?token=x"), in the tcUrl ("rtmp://h/live?token=x") or, the same
            # thing seen from the app field, in the app ("live?token=x").
            token = (
                query.get("token")
                or split_stream_name("?" + urlsplit(self.conn.tc_url).query)[1].get("token")
                or split_stream_name(self.conn.app)[1].get("token")
            )
            if token != wanted:
                _log.warning("rtmp %s: publish of key %r refused: bad or missing token", self.peer, key)
                self.conn.refuse_publish(event.stream_id, "NetStream.Publish.Rejected", "Bad or missing token.")
                return
        taken_by = server.publishing.get(stream_id)
        if taken_by is not None or any(s.stream_id == stream_id for s in server.engine.list_streams()):
            _log.warning(
                "rtmp %s: publish of %r refused: stream is already being published%s",
                self.peer,
                stream_id,
                f" by {taken_by}" if taken_by else "",
            )
            self.conn.refuse_publish(event.stream_id, "NetStream.Publish.BadName", f"{stream_id} is already published.")
            return
        server.publishing[stream_id] = self.peer
        self.publishes[event.stream_id] = (stream_id, FlvIngest(functools.partial(self.go_live, stream_id)))
        self.conn.accept_publish(event.stream_id, key)
        _log.info("rtmp %s: publishing stream %r (app %r)", self.peer, stream_id, event.app)

    def on_media(self, event: MediaMessage) -> None:
        entry = self.publishes.get(event.stream_id)
        if entry is None:
            return  # media on a stream that is not publishing (refused, or already unpublished): ignore
        try:
            entry[1].feed(event.kind, event.timestamp, event.payload)
        except trio.ClosedResourceError:
            raise FluxkitError(f"the engine stopped stream {entry[0]!r}") from None

    def go_live(self, stream_id: str, tracks: list[Track]) -> Publisher:
        publisher = self.server.engine.publish_stream(stream_id, tracks)
        _log.info("rtmp %s: stream %r live: %s", self.peer, stream_id, ", ".join(t.codec for t in tracks))
        return publisher

    def unpublish(self, message_stream: int, why: str) -> None:
        entry = self.publishes.pop(message_stream, None)
        if entry is None:
            return
        stream_id, ingest = entry
        self.server.publishing.pop(stream_id, None)
        ingest.close()
        _log.info("rtmp %s: stream %r unpublished (%s)", self.peer, stream_id, why)

    def unpublish_all(self) -> None:
        for sid in list(self.publishes):
            self.unpublish(sid, "connection closed")

    # --- playing --------------------------------------------------------------------------------------------

    async def on_play(self, event: PlayRequested) -> None:
        name, _ = split_stream_name(event.stream_name)
        keys = self.server.publish_keys
        stream_id = keys.get(name, name) if keys else name
        info = next((s for s in self.server.engine.list_streams() if s.stream_id == stream_id), None)
        if info is None:
            _log.info("rtmp %s: play of unknown stream %r refused", self.peer, stream_id)
            self.conn.refuse_play(event.stream_id, "NetStream.Play.StreamNotFound", f"No stream {stream_id}.")
            return
        try:
            subscription = self.server.engine.subscribe_stream(
                stream_id, queue_size=self.server.queue_size, name=f"rtmp:{self.peer}"
            )
        except StreamNotFoundError:
            self.conn.refuse_play(event.stream_id, "NetStream.Play.StreamNotFound", f"No stream {stream_id}.")
            return
        self.conn.accept_play(event.stream_id, name)
        scope = trio.CancelScope()
        self.players[event.stream_id] = scope
        assert self.nursery is not None
        self.nursery.start_soon(self.play_task, scope, event.stream_id, stream_id, info.tracks, subscription)
        _log.info("rtmp %s: playing stream %r", self.peer, stream_id)

    async def play_task(
        self,
        scope: trio.CancelScope,
        message_stream: int,
        stream_id: str,
        tracks: tuple[Track, ...],
        subscription: Subscription,
    ) -> None:
        try:
            await self._play(scope, message_stream, stream_id, tracks, subscription)
        except _CONNECTION_ERRORS as exc:
            self.error = exc
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel()

    async def _play(
        self,
        scope: trio.CancelScope,
        message_stream: int,
        stream_id: str,
        tracks: tuple[Track, ...],
        subscription: Subscription,
    ) -> None:
        muxer = muxer_for(tracks)
        conn = self.conn
        has_video = muxer.video_codec is not None
        slow_since: float | None = None
        resync = False  # after dropping, wait for a video keyframe
        dropped = 0
        with scope:
            async with subscription:
                while True:
                    try:
                        frames = [await subscription.receive()]
                    except (trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    while True:
                        try:
                            frames.append(subscription.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                            break
                    limit = self.server.max_unacknowledged
                    if conn.peer_bandwidth:
                        limit = min(limit, conn.peer_bandwidth)
                    if conn.unacknowledged > limit:
                        now = trio.current_time()
                        if slow_since is None:
                            slow_since = now
                            _log.warning(
                                "rtmp %s: player of %r is not acknowledging (%d bytes unacknowledged, limit %d): "
                                "dropping frames until it catches up",
                                self.peer,
                                stream_id,
                                conn.unacknowledged,
                                limit,
                            )
                        elif now - slow_since > self.server.send_timeout:
                            raise FluxkitError(
                                f"player of {stream_id!r} stopped acknowledging: {conn.unacknowledged} bytes "
                                f"unacknowledged for {now - slow_since:.1f} s"
                            )
                        dropped += len(frames)
                        resync = True
                        continue
                    if slow_since is not None:
                        slow_since = None
                        _log.info(
                            "rtmp %s: player of %r caught up after %d dropped frames; resuming at a keyframe",
                            self.peer,
                            stream_id,
                            dropped,
                        )
                    if resync:
                        start = next(
                            (i for i, f in enumerate(frames) if f.keyframe and (f.kind == "video" or not has_video)),
                            None,
                        )
                        if start is None:
                            dropped += len(frames)
                            continue
                        dropped += start
                        frames = frames[start:]
                        resync = False
                    async with self.lock:
                        for frame in frames:
                            for kind, ms, body in muxer.push(frame):
                                conn.send_media(message_stream, kind, ms, body)
                        data = conn.data_to_send()
                        if data:
                            with trio.fail_after(self.server.send_timeout):
                                await self.stream.send_all(data)
                if conn.state is ConnectionState.OPEN:
                    conn.end_play(message_stream)
                    await self.flush()
                _log.info("rtmp %s: stream %r ended for this player", self.peer, stream_id)


async def serve_rtmp(
    engine: VideoEngine,
    host: str = "127.0.0.1",
    port: int = 1935,
    *,
    publish_keys: dict[str, str] | None = None,
    tokens: dict[str, str] | None = None,
    rng: random.Random | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    send_timeout: float = DEFAULT_SEND_TIMEOUT,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    queue_size: int | None = None,
    window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
    max_unacknowledged: int = DEFAULT_MAX_UNACKNOWLEDGED,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Serve RTMP publish and play on `host:port` until cancelled.

    Args:
        engine: where published streams go and played streams come from.
        host: address to listen on.
        port: TCP port (0: any free port; the listeners given to `task_status.started` tell which).
        publish_keys: stream key -> stream id; None lets any key publish the stream named by the key.
        tokens: stream key -> the token a publisher must give (`?token=` on the key, or in the tcUrl).
        rng: randomness for the handshake.
        handshake_timeout: seconds for the handshake and connect.
        idle_timeout: seconds a non-playing connection may send nothing.
        send_timeout: seconds a write may make no progress.
        max_message_size: bound on one received RTMP message.
        queue_size: bound of each player's subscription queue (default: the engine's).
        window_ack_size: the acknowledgement window announced to every peer (Window Acknowledgement Size).
        max_unacknowledged: bytes a player may leave unacknowledged before its frames are dropped (see above).
        task_status: receives the listeners once listening.
    """
    server = RtmpServer(
        engine,
        publish_keys=publish_keys,
        tokens=tokens,
        rng=rng or random.Random(),
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        send_timeout=send_timeout,
        max_message_size=max_message_size,
        queue_size=queue_size,
        window_ack_size=window_ack_size,
        max_unacknowledged=max_unacknowledged,
    )
    await trio.serve_tcp(server.handle, port, host=host, task_status=task_status)
    raise AssertionError("unreachable")  # pragma: no cover - serve_tcp only returns by raising
