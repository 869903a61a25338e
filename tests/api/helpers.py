"""A real API server on a free loopback port, an httpx client for it, and a source that never connects."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from fractions import Fraction
from typing import Any

import attrs
import httpx
import trio

from fluxkit.api import ApiServices, serve_api
from fluxkit.config import StreamSettings
from fluxkit.engine import SourceSession, VideoEngine, open_engine
from fluxkit.sources import make_source_factory

TOKEN = "test-token-0123456789"


class IdleSource:
    """A Source that stays "waiting" forever (no network): what POST creates in these tests."""

    def __init__(self, settings: StreamSettings) -> None:
        make_source_factory()(settings)  # the real factory's verdict on the protocol and URL, then idle instead
        self.settings = settings

    async def run(self, session: SourceSession) -> None:
        await trio.sleep_forever()


@attrs.frozen(kw_only=True)
class Running:
    engine: VideoEngine
    services: ApiServices
    client: httpx.AsyncClient
    port: int


@asynccontextmanager
async def running_api(
    make_services: Callable[[VideoEngine], dict[str, Any]] | None = None, *, token: str | None = None
) -> AsyncIterator[Running]:
    """Engine + `serve_api` on 127.0.0.1:0 in a nursery, and a client that sends the token when there is one."""
    async with open_engine() as engine, trio.open_nursery() as nursery:
        extra = make_services(engine) if make_services is not None else {}
        extra.setdefault("source_factory", IdleSource)
        services = ApiServices(engine=engine, token=token, **extra)
        port = await nursery.start(serve_api, services, "127.0.0.1", 0)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as client:
            yield Running(engine=engine, services=services, client=client, port=port)
        nursery.cancel_scope.cancel()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    """A small gray JPEG made with PyAV (for stored keyframe thumbnails)."""
    import av
    import numpy as np

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 128, dtype=np.uint8), format="rgb24")
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


async def record_clip(storage: Any, stream_id: str = "cam1", *, frames: int = 100, gop: int = 25) -> list[Any]:
    """Record a generated H.264 clip (25 fps) into `storage` through a real engine and recorder; its frames."""
    from fluxkit.storage import RecordingSettings, open_recorder
    from tests.storage._feed import build

    tracks, media = build("h264", frames=frames, gop=gop)
    settings = RecordingSettings(segment_duration=2.0, part_duration=0.5)
    async with open_engine() as engine, open_recorder(engine, storage, settings) as recorder:
        publisher = engine.publish_stream(stream_id, tracks)
        await trio.lowlevel.checkpoint()
        for i, frame in enumerate(media):
            publisher.send(frame)
            if i % 4 == 0:
                await trio.sleep(0.001)
        publisher.close()
        await trio.lowlevel.checkpoint()
        await recorder.wait_idle()
    return media
