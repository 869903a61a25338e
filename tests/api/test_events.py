"""The engine event feed: `/api/video/events` over a WebSocket, read by a trio-websocket client."""

from __future__ import annotations

import json
import logging
import socket

import pytest
import trio
import trio_websocket

from fluxkit.api import event_json
from fluxkit.engine import StreamFailed, StreamPublished, Track
from tests.api.helpers import TOKEN, running_api
from tests.api.test_live import open_ws, rejection


async def wait_listeners(engine, count: int) -> None:
    # The server makes its listener before accepting; wait until every client's exists.
    while True:
        if len(engine._listeners) >= count:
            return
        await trio.sleep(0.01)


async def next_event(ws: trio_websocket.WebSocketConnection) -> dict:
    message = await ws.get_message()
    assert isinstance(message, str)
    return json.loads(message)


def test_event_json_is_generic_and_json_safe() -> None:
    track = Track(codec="h264", width=768, height=320, fps=25.0, parameter_sets=(b"\x67",))
    body = event_json(StreamPublished(stream_id="cam1", time=12.5, tracks=(track,)), 1_770_804_000.25)
    assert body == {
        "type": "StreamPublished",
        "stream_id": "cam1",
        "time": "2026-02-11T10:00:00.25Z",
        "engine_time": 12.5,
        "tracks": [{"codec": "h264", "kind": "video", "width": 768, "height": 320, "fps": 25.0}],
    }
    failed = event_json(StreamFailed(stream_id="c", time=float("nan"), error="E: x", permanent=True, attempts=3), 0)
    assert failed["engine_time"] is None
    assert (failed["error"], failed["permanent"], failed["attempts"]) == ("E: x", True, 3)
    json.dumps(failed, allow_nan=False)


@pytest.mark.trio
async def test_publish_and_stop_arrive_in_order_and_the_filter_works() -> None:
    with trio.fail_after(30):
        async with running_api(token=TOKEN) as api, trio.open_nursery() as nursery:
            all_stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            one_stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            async with all_stream, one_stream:
                every = await open_ws(nursery, all_stream, f"/api/video/events?access_token={TOKEN}")
                only = await open_ws(nursery, one_stream, f"/api/video/events?stream_id=cam2&access_token={TOKEN}")
                await wait_listeners(api.engine, 2)
                for name in ("cam1", "cam2"):
                    publisher = api.engine.publish_stream(name, [Track(codec="h264", width=64, height=48, fps=25)])
                    publisher.close()
                got = [await next_event(every) for _ in range(4)]
                assert [(e["type"], e["stream_id"]) for e in got] == [
                    ("StreamPublished", "cam1"),
                    ("StreamStopped", "cam1"),
                    ("StreamPublished", "cam2"),
                    ("StreamStopped", "cam2"),
                ]
                assert got[0]["tracks"] == [{"codec": "h264", "kind": "video", "width": 64, "height": 48, "fps": 25}]
                assert isinstance(got[1]["reason"], str)
                assert got[0]["time"].endswith("Z")
                assert got[0]["engine_time"] <= got[1]["engine_time"]
                filtered = [await next_event(only) for _ in range(2)]
                assert [(e["type"], e["stream_id"]) for e in filtered] == [
                    ("StreamPublished", "cam2"),
                    ("StreamStopped", "cam2"),
                ]
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_refusals_and_plain_http() -> None:
    with trio.fail_after(30):
        async with running_api(token=TOKEN) as api:
            for resource, status in [
                ("/api/video/events", 401),
                ("/api/video/events?access_token=wrong", 401),
                (f"/api/video/events?stream_id=%2E%2E%2Fx&access_token={TOKEN}", 400),
                (f"/api/video/events?stream_id=a&stream_id=b&access_token={TOKEN}", 400),
            ]:
                rejected = await rejection(api.port, resource)
                assert rejected.status_code == status, resource
                assert b'"error"' in (rejected.body or b"")
            r = await api.client.get("/api/video/events")
            assert r.status_code == 426
            assert r.headers["upgrade"] == "websocket"
            assert r.json()["status"] == 426
            r = await api.client.get("/api/video/events", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401


@pytest.mark.trio
async def test_a_client_that_never_reads_is_dropped_without_holding_back_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="fluxkit.api")
    # Big events (many tracks) fill the stalled client's socket buffers quickly.
    tracks = [Track(codec=f"c{i}", width=1920, height=1080, fps=25.0) for i in range(300)]
    with trio.fail_after(60):
        async with running_api(lambda engine: {"live_send_timeout": 0.2}) as api, trio.open_nursery() as nursery:
            # A raw client with a tiny receive window that completes the handshake and then never reads.
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await sock.connect(("127.0.0.1", api.port))
            stalled = trio.SocketStream(sock)
            await stalled.send_all(
                b"GET /api/video/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            reader_stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            async with stalled, reader_stream:
                ws = await open_ws(nursery, reader_stream, "/api/video/events")
                await wait_listeners(api.engine, 2)
                rounds = 0
                while "too slow" not in caplog.text:
                    rounds += 1
                    name = f"cam{rounds}"
                    api.engine.publish_stream(name, tracks).close()
                    first, second = await next_event(ws), await next_event(ws)
                    assert (first["type"], second["type"], first["stream_id"]) == (
                        "StreamPublished",
                        "StreamStopped",
                        name,
                    )
                # The reader keeps receiving after the stalled client was dropped.
                api.engine.publish_stream("after", [Track(codec="h264")]).close()
                assert (await next_event(ws))["stream_id"] == "after"
                await wait_listeners_at_most(api.engine, 1)
            nursery.cancel_scope.cancel()
    assert rounds > 1


async def wait_listeners_at_most(engine, count: int) -> None:
    while True:
        if len(engine._listeners) <= count:
            return
        await trio.sleep(0.01)
