"""Live view: fragmented MP4 over a WebSocket, read by a trio-websocket client and decoded with PyAV."""

from __future__ import annotations

import io

import av
import pytest
import trio
import trio_websocket

from fluxkit.engine import Track
from tests.api.helpers import TOKEN, running_api
from tests.keyframes.helpers import clip_frames, clip_parameter_sets


async def open_ws(
    nursery: trio.Nursery, stream: trio.SocketStream, resource: str
) -> trio_websocket.WebSocketConnection:
    # We own the TCP stream (stack.md §3): open_websocket_url leaks the client socket after a server close.
    return await trio_websocket.wrap_client_stream(
        nursery, stream, "127.0.0.1", resource, receive_buffer_size=65536, max_message_size=1 << 22
    )


async def rejection(port: int, resource: str) -> trio_websocket.ConnectionRejected:
    """The handshake's refusal (trio-websocket raises it in its nursery as well as to the caller)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                await open_ws(nursery, stream, resource)
        except trio_websocket.ConnectionRejected as exc:
            return exc
        except BaseExceptionGroup as group:
            found = group.subgroup(trio_websocket.ConnectionRejected)
            while found is not None and isinstance(found.exceptions[0], BaseExceptionGroup):
                found = found.exceptions[0]
            if found is not None:
                rejected = found.exceptions[0]
                assert isinstance(rejected, trio_websocket.ConnectionRejected)
                return rejected
            raise
    raise AssertionError(f"{resource} was accepted")


async def receive_all(ws: trio_websocket.WebSocketConnection) -> list[bytes]:
    messages = []
    with pytest.raises(trio_websocket.ConnectionClosed) as info:  # noqa: PT012 - messages until the close
        while True:
            messages.append(await ws.get_message())
    assert info.value.reason is not None
    assert info.value.reason.code == 1000, info.value.reason
    return messages


async def wait_subscribers(engine, stream_id: str, count: int) -> None:
    while True:
        if next(s.subscribers for s in engine.list_streams() if s.stream_id == stream_id) >= count:
            return
        await trio.sleep(0.01)


@pytest.mark.trio
async def test_live_view_sends_init_then_fragments_that_pyav_decodes() -> None:
    frames = clip_frames("h264", frames=60, gop=10)
    with trio.fail_after(30):
        async with running_api(token=TOKEN) as api, trio.open_nursery() as nursery:
            publisher = api.engine.publish_stream(
                "cam1", [Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))]
            )
            # A stalled client that never reads must not hold the reading one back.
            stalled_stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            reader_stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            async with stalled_stream, reader_stream:
                await open_ws(nursery, stalled_stream, f"/api/video/streams/cam1/live?access_token={TOKEN}")
                ws = await open_ws(nursery, reader_stream, f"/api/video/streams/cam1/live?access_token={TOKEN}")
                await wait_subscribers(api.engine, "cam1", 2)
                for frame in frames[3:]:  # starts mid-GOP: the view must start at the next keyframe
                    publisher.send(frame)
                    await trio.lowlevel.checkpoint()
                publisher.close()  # the stream ends: the server closes with 1000 after the last fragment
                messages = await receive_all(ws)
            nursery.cancel_scope.cancel()
    assert len(messages) >= 2
    assert messages[0][4:8] == b"ftyp"
    assert b"moov" in messages[0]
    assert all(m[4:8] in (b"moof", b"styp") for m in messages[1:])
    with av.open(io.BytesIO(b"".join(messages))) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 50  # frames 10..59: from the first keyframe after the join
    assert decoded[0].key_frame


@pytest.mark.trio
async def test_live_view_refusals() -> None:
    with trio.fail_after(30):
        async with running_api(token=TOKEN) as api, trio.open_nursery() as nursery:
            api.engine.publish_stream("cam1", [Track(codec="h264")])
            for resource, status in [
                ("/api/video/streams/cam1/live", 401),
                ("/api/video/streams/cam1/live?access_token=wrong", 401),
                (f"/api/video/streams/nope/live?access_token={TOKEN}", 404),
                (f"/api/video/streams/%2E%2E%2Fx/live?access_token={TOKEN}", 400),
            ]:
                rejected = await rejection(api.port, resource)
                assert rejected.status_code == status, resource
                assert b'"error"' in (rejected.body or b"")
            # The plain-HTTP GET on the live URL explains itself.
            r = await api.client.get("/api/video/streams/cam1/live", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 426
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_client_that_leaves_releases_its_subscription() -> None:
    with trio.fail_after(30):
        async with running_api() as api, trio.open_nursery() as nursery:
            publisher = api.engine.publish_stream(
                "cam1", [Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))]
            )
            stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            async with stream:
                ws = await open_ws(nursery, stream, "/api/video/streams/cam1/live")
                await wait_subscribers(api.engine, "cam1", 1)
                for frame in clip_frames("h264", frames=60, gop=10)[:12]:
                    publisher.send(frame)
                assert (await ws.get_message())[4:8] == b"ftyp"
                await ws.aclose()
            while True:
                if not api.engine.list_streams()[0].subscribers:
                    break
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_live_viewer_that_never_reads_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # Hypercorn shields its socket writes, so only a sender task fed over an unbuffered channel lets the handler
    # notice a stalled client; this drives one far enough to fill its socket buffers.
    import logging
    import socket

    caplog.set_level(logging.WARNING, logger="fluxkit.api")
    frames = clip_frames("h264")
    big = [f.__class__(codec=f.codec, data=f.data + bytes(200_000), pts=f.pts, dts=f.dts, keyframe=f.keyframe)
           for f in frames]  # fmt: skip
    with trio.fail_after(60):
        async with running_api(lambda engine: {"live_send_timeout": 0.3}) as api:
            publisher = api.engine.publish_stream(
                "cam1", [Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))]
            )
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", api.port))
            stalled = trio.SocketStream(sock)
            async with stalled:
                await stalled.send_all(
                    b"GET /api/video/streams/cam1/live?access_token=" + TOKEN.encode() + b" HTTP/1.1\r\n"
                    b"Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                )
                await wait_subscribers(api.engine, "cam1", 1)
                i = 0
                while "too slow" not in caplog.text:
                    publisher.send(big[i % len(big)])
                    i += 1
                    await trio.sleep(0.01)
                while next(s.subscribers for s in api.engine.list_streams() if s.stream_id == "cam1"):  # noqa: ASYNC110
                    await trio.sleep(0.01)  # the subscription is released even though the socket write is stuck
    assert i > 1
