"""`serve_rtmp`, `RtmpSource` and `flv_stream` over loopback TCP, with fluxkit's own sans-IO client as the peer.

Approach: `_Client` drives a client-role `RtmpConnection` over a real socket; the publisher sends FLV tags made by
`FlvMuxer` from a clip encoded with tests/mediagen.py, so the engine's frames can be compared with the clip's.
Hostile peers (garbage chunks, an oversized chunk size, a stalled handshake) must get their own connection closed
with a log line while a publisher on another connection goes on.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from fluxkit.engine import RestartPolicy, StreamPublished, VideoEngine, open_engine
from fluxkit.net._flv_out import flv_stream
from fluxkit.net.rtmp_server import serve_rtmp, split_stream_name
from fluxkit.net.rtmp_source import RtmpSource, parse_rtmp_url
from fluxkit.protocols import MediaFrame
from fluxkit.protocols.flv import FlvDemuxer, FlvMuxer
from fluxkit.protocols.nalu import AccessUnitAssembler, split_annexb
from fluxkit.protocols.rtmp import (
    HANDSHAKE_SIZE,
    NEED_DATA,
    ChunkWriter,
    Connected,
    ConnectionClosed,
    Event,
    MediaMessage,
    Role,
    RtmpConnection,
    RtmpMessage,
    StatusReceived,
    StreamCreated,
)
from tests.mediagen import encode_annexb


def _clip_tags() -> list[tuple[str, int, bytes]]:
    stream = encode_annexb("h264", width=160, height=96, frames=20, gop=10)
    assembler = AccessUnitAssembler("h264")
    units = [u for nal in split_annexb(stream) for u in assembler.feed(nal)] + assembler.flush()
    muxer = FlvMuxer(video_codec="h264", audio_codec="aac", audio_extradata=b"\x12\x10")
    tags: list[tuple[str, int, bytes]] = []
    for i, unit in enumerate(units):
        data = b"".join(b"\x00\x00\x00\x01" + n for n in unit.nals)
        tags += muxer.push(MediaFrame(codec="h264", data=data, pts=3600 * i, dts=3600 * i, keyframe=unit.keyframe))
        tags += muxer.push(MediaFrame(codec="aac", data=b"\x21\x00\x03", pts=3600 * i, dts=3600 * i, keyframe=True))
    return tags


class _Client:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = RtmpConnection(Role.CLIENT, rng=random.Random(3))
        self.events: list[Event] = []

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def next(self) -> Event:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                assert isinstance(event, Event)
                self.events.append(event)
                return event
            await self.flush()
            self.conn.receive_data(await self.stream.receive_some(65536))

    async def expect(self, kind: type[Event]) -> Event:
        while not isinstance(event := await self.next(), kind):
            pass
        return event

    async def open_stream(self, app: str = "live", tc_url: str = "") -> int:
        self.conn.connect(app, tc_url or f"rtmp://127.0.0.1/{app}")
        await self.expect(Connected)
        self.conn.create_stream()
        created = await self.expect(StreamCreated)
        assert isinstance(created, StreamCreated)
        return created.stream_id

    async def publish(self, key: str, *, app: str = "live", tc_url: str = "") -> tuple[int, StatusReceived]:
        sid = await self.open_stream(app, tc_url)
        self.conn.publish(sid, key)
        status = await self.expect(StatusReceived)
        assert isinstance(status, StatusReceived)
        return sid, status

    async def send_tags(self, sid: int, tags: list[tuple[str, int, bytes]]) -> None:
        for kind, ms, body in tags:
            self.conn.send_media(sid, kind, ms, body)
        await self.flush()


@asynccontextmanager
async def _server(**kwargs: object) -> AsyncIterator[tuple[VideoEngine, int]]:
    async with open_engine() as engine, trio.open_nursery() as nursery:

        async def run(task_status: trio.TaskStatus[list[trio.SocketListener]]) -> None:
            await serve_rtmp(engine, "127.0.0.1", 0, rng=random.Random(0), task_status=task_status, **kwargs)  # type: ignore[arg-type]

        listeners = await nursery.start(run)
        yield engine, listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _client(port: int) -> AsyncIterator[_Client]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield _Client(stream)


async def _collect(engine: VideoEngine, stream_id: str, count: int, out: list[MediaFrame]) -> None:
    async with engine.subscribe_stream(stream_id, queue_size=1000) as sub:
        async for frame in sub:
            out.append(frame)
            if len(out) >= count:
                return


def test_helpers() -> None:
    assert split_stream_name("cam1?token=a&x=1") == ("cam1", {"token": "a", "x": "1"})
    assert parse_rtmp_url("rtmp://h:1936/live/cam1?t=1") == ("h", 1936, "live", "cam1?t=1")
    assert parse_rtmp_url("rtmp://h/live/a/b") == ("h", 1935, "live", "a/b")
    from fluxkit.engine import PermanentSourceError

    for bad in ("http://h/live/x", "rtmp://h/live", "rtmp://h:99999/live/x"):
        with pytest.raises(PermanentSourceError):
            parse_rtmp_url(bad)


@pytest.mark.trio
async def test_publish_play_and_duplicate(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    tags = _clip_tags()
    with trio.fail_after(20):
        async with _server() as (engine, port), _client(port) as pub, trio.open_nursery() as nursery:
            sid, status = await pub.publish("cam1")
            assert status.code == "NetStream.Publish.Start"
            frames: list[MediaFrame] = []
            async with engine.events() as events:
                await pub.send_tags(sid, tags[:3])
                async for event in events:
                    if isinstance(event, StreamPublished):
                        tracks = {t.codec: t for t in event.tracks}
                        break
            assert (tracks["h264"].width, tracks["h264"].height) == (160, 96)
            assert tracks["aac"].sample_rate == 44100
            assert tracks["aac"].channels == 2
            # A second publisher on the same key is refused; the first goes on.
            async with _client(port) as dup:
                _, refused = await dup.publish("cam1")
                assert (refused.level, refused.code) == ("error", "NetStream.Publish.BadName")
            # A player gets sequence headers first, then the frames from a keyframe.
            async with _client(port) as player:
                psid = await player.open_stream()
                player.conn.play(psid, "cam1")
                codes = []
                while "NetStream.Play.Start" not in codes:
                    event = await player.expect(StatusReceived)
                    assert isinstance(event, StatusReceived)
                    codes.append(event.code)
                nursery.start_soon(_collect, engine, "cam1", 20, frames)
                await pub.send_tags(sid, tags[3:])
                demuxer = FlvDemuxer()
                played: list[MediaFrame] = []
                while len([f for f in played if f.codec == "h264"]) < 10:
                    media = await player.expect(MediaMessage)
                    assert isinstance(media, MediaMessage)
                    got = (demuxer.video if media.kind == "video" else demuxer.audio)(media.timestamp, media.payload)
                    if got is not None:
                        played.append(got)
            assert demuxer.video_config is not None
            assert demuxer.audio_config is not None
            assert played[0].codec == "h264"
            assert played[0].keyframe
    assert "refused: stream is already being published" in caplog.text
    video = [f for f in frames if f.codec == "h264"]
    # The subscription starts at a keyframe (frame 0 or 10 of the clip, depending on when it subscribed).
    dts = [f.dts for f in video if f.dts is not None]
    assert video[0].keyframe
    assert dts[0] % 36000 == 0
    assert all(b - a == 3600 for a, b in itertools.pairwise(dts))


@pytest.mark.trio
async def test_tokens_and_key_mapping() -> None:
    with trio.fail_after(20):
        async with _server(publish_keys={"k1": "lobby"}, tokens={"k1": "s3cret"}) as (engine, port):
            async with _client(port) as c:
                _, status = await c.publish("k1")
                assert status.code == "NetStream.Publish.Rejected"
            async with _client(port) as c:
                _, status = await c.publish("k1?token=wrong")
                assert status.code == "NetStream.Publish.Rejected"
            async with _client(port) as c:
                _, status = await c.publish("nokey")
                assert status.code == "NetStream.Publish.BadName"
            async with _client(port) as c:
                _, status = await c.publish("k1", tc_url="rtmp://127.0.0.1/live?token=s3cret")
                assert status.code == "NetStream.Publish.Start"
            async with _client(port) as c:
                sid, status = await c.publish("k1?token=s3cret")
                assert status.code == "NetStream.Publish.Start"
                async with engine.events() as events:
                    await c.send_tags(sid, _clip_tags()[:4])
                    async for event in events:
                        if isinstance(event, StreamPublished):
                            assert event.stream_id == "lobby"
                            break
            async with _client(port) as player:
                psid = await player.open_stream()
                player.conn.play(psid, "missing")
                status_event = await player.expect(StatusReceived)
                assert isinstance(status_event, StatusReceived)
                assert status_event.code == "NetStream.Play.StreamNotFound"


async def _closed_by_server(stream: trio.SocketStream) -> None:
    while await stream.receive_some(65536):
        pass


@pytest.mark.trio
async def test_hostile_peers_are_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    tags = _clip_tags()
    with trio.fail_after(20):
        async with _server(handshake_timeout=0.5) as (engine, port), _client(port) as pub:
            sid, _ = await pub.publish("cam1")
            await pub.send_tags(sid, tags[:5])
            # 1. garbage chunks after a good handshake and connect
            async with _client(port) as bad:
                await bad.open_stream()
                await bad.stream.send_all(b"\xca" + bytes(100))  # type 3 on a chunk stream never seen
                await _closed_by_server(bad.stream)
            # 2. an oversized chunk size
            async with _client(port) as bad:
                await bad.open_stream()
                writer = ChunkWriter()
                await bad.stream.send_all(
                    writer.write(RtmpMessage(type_id=1, stream_id=0, timestamp=0, payload=(1 << 30).to_bytes(4, "big")))
                )
                await _closed_by_server(bad.stream)
            # 3. a peer that stalls in the handshake
            stalled = await trio.open_tcp_stream("127.0.0.1", port)
            async with stalled:
                await stalled.send_all(b"\x03" + bytes(HANDSHAKE_SIZE // 2))
                await _closed_by_server(stalled)
            # 4. an oversized message
            async with _client(port) as bad:
                await bad.open_stream()
                await bad.stream.send_all(b"\x04\x00\x00\x00\xff\xff\xff\x09\x01\x00\x00\x00")
                await _closed_by_server(bad.stream)
            # the publisher is unaffected
            frames: list[MediaFrame] = []
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, engine, "cam1", 4, frames)
                await trio.lowlevel.checkpoint()
                await pub.send_tags(sid, tags[5:])
            assert len(frames) == 4
            pub.conn.delete_stream(sid)
            await pub.flush()
    assert "protocol error, closing" in caplog.text
    assert "chunk size" in caplog.text
    assert "timed out" in caplog.text
    assert "exceeds the limit" in caplog.text


@pytest.mark.trio
async def test_rtmp_source_and_http_flv() -> None:
    tags = _clip_tags()
    with trio.fail_after(20):
        async with _server() as (engine, port), _client(port) as pub:
            sid, _ = await pub.publish("cam1")
            async with engine.events() as events:
                await pub.send_tags(sid, tags[:4])
                async for event in events:
                    if isinstance(event, StreamPublished):
                        break
            source = RtmpSource(f"rtmp://127.0.0.1:{port}/live/cam1", rng=random.Random(1), stall_timeout=5)
            engine.add_source("pulled", source, restart=RestartPolicy(initial_delay=0.05))
            pulled: list[MediaFrame] = []
            chunks: list[bytes] = []

            async def http() -> None:
                async for chunk in flv_stream(engine, "cam1"):
                    chunks.append(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_collect, engine, "pulled", 10, pulled)
                nursery.start_soon(http)
                await trio.sleep(0.5)
                for i in range(4, len(tags), 4):
                    await pub.send_tags(sid, tags[i : i + 4])
                    await trio.sleep(0.01)
                with trio.move_on_after(5):
                    while len(pulled) < 10:  # noqa: ASYNC110 - the collector task fills the list
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
            engine.remove_source("pulled")
    assert len(pulled) == 10
    assert pulled[0].keyframe
    assert pulled[0].codec == "h264"
    body = b"".join(chunks)
    assert body.startswith(b"FLV\x01\x05")
    # walk the FLV tags back into frames
    demuxer = FlvDemuxer()
    pos, got = 13, []
    while pos + 11 <= len(body):
        tag_type, size = body[pos], int.from_bytes(body[pos + 1 : pos + 4], "big")
        ms = int.from_bytes(body[pos + 4 : pos + 7], "big") | (body[pos + 7] << 24)
        data = body[pos + 11 : pos + 11 + size]
        frame = (demuxer.video if tag_type == 9 else demuxer.audio)(ms, data)
        if frame is not None:
            got.append(frame)
        pos += 11 + size + 4
    assert got
    assert got[0].keyframe
    assert any(f.codec == "aac" for f in got)


@pytest.mark.trio
async def test_source_fails_cleanly() -> None:
    from fluxkit.net.rtmp_source import RtmpSourceError

    with trio.fail_after(10):
        async with _server() as (_engine, port):
            source = RtmpSource(f"rtmp://127.0.0.1:{port}/live/none", connect_timeout=5)

            class _Session:
                def publish(self, tracks: object) -> object:
                    raise AssertionError("nothing to publish")

            with pytest.raises(RtmpSourceError, match="StreamNotFound"):
                await source.run(_Session())  # type: ignore[arg-type]
        # nothing listens on the port any more
        with pytest.raises(RtmpSourceError, match="cannot connect"):
            await RtmpSource(f"rtmp://127.0.0.1:{port}/live/none").run(_Session())  # type: ignore[arg-type]
    _ = ConnectionClosed


async def _publish_forever(pub: _Client, sid: int, tags: list[tuple[str, int, bytes]]) -> None:
    for rep in itertools.count(1):  # the whole clip again and again, timestamps continuing (20 frames = 800 ms)
        await pub.send_tags(sid, [(kind, ms + rep * 800, body) for kind, ms, body in tags])
        await trio.sleep(0.01)


@pytest.mark.trio
async def test_player_that_stops_acknowledging(caplog: pytest.LogCaptureFixture) -> None:
    # A player that reads its socket but never acknowledges: its frames are dropped (not buffered), then it is
    # disconnected with a clear log line; the publisher goes on.
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    tags = _clip_tags()
    settings = {"window_ack_size": 5_000, "max_unacknowledged": 20_000, "send_timeout": 0.5}
    with trio.fail_after(20):
        async with _server(**settings) as (engine, port), _client(port) as pub, trio.open_nursery() as nursery:
            sid, _ = await pub.publish("cam1")
            async with engine.events() as events:
                await pub.send_tags(sid, tags[:4])
                async for event in events:
                    if isinstance(event, StreamPublished):
                        break
            nursery.start_soon(_publish_forever, pub, sid, tags)
            async with _client(port) as player:
                psid = await player.open_stream()
                player.conn.play(psid, "cam1")
                await player.expect(MediaMessage)
                received = 0
                while data := await player.stream.receive_some(65536):  # read, never acknowledge
                    received += len(data)
            assert received < 200_000  # bounded: nothing piles up for it
            assert any(s.stream_id == "cam1" for s in engine.list_streams())
            nursery.cancel_scope.cancel()
    assert "is not acknowledging" in caplog.text
    assert "stopped acknowledging" in caplog.text


@pytest.mark.trio
async def test_slow_player_resumes_at_keyframe(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "fluxkit.net.rtmp")
    tags = _clip_tags()
    settings = {"window_ack_size": 5_000, "max_unacknowledged": 20_000, "send_timeout": 30.0}
    with trio.fail_after(20):
        async with _server(**settings) as (_engine, port), _client(port) as pub, trio.open_nursery() as nursery:
            sid, _ = await pub.publish("cam1")
            await pub.send_tags(sid, tags[:4])
            nursery.start_soon(_publish_forever, pub, sid, tags)
            async with _client(port) as player:
                psid = await player.open_stream()
                player.conn.play(psid, "cam1")
                await player.expect(MediaMessage)
                held = bytearray()
                while "is not acknowledging" not in caplog.text:
                    with trio.move_on_after(0.05):  # once it lags, the server sends nothing more
                        held += await player.stream.receive_some(65536)
                player.conn.receive_data(bytes(held))  # catch up: the client acknowledges what it read
                video: list[MediaMessage] = []
                while "caught up" not in caplog.text or len(video) < 40:
                    media = await player.expect(MediaMessage)
                    assert isinstance(media, MediaMessage)
                    if media.kind == "video" and media.payload[1] == 1:
                        video.append(media)
            nursery.cancel_scope.cancel()
    gaps = [i for i in range(1, len(video)) if video[i].timestamp - video[i - 1].timestamp > 40]
    assert gaps  # frames were dropped while it lagged
    assert all(video[i].payload[0] >> 4 == 1 for i in gaps)  # and it resumed at a keyframe
