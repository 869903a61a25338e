"""`fluxkit run`: the main job. The engine, the RTSP output, a source per configured stream, recording of every
stream, keyframe snapshots, the REST API, and, with `--demo`, simulated cameras so that a newcomer sees live
streams with no hardware.

Strategy: one Trio nursery owns everything. The demo cameras are a second, separate engine that plays the
generated clip through fluxkit's own RTSP server on a free loopback port, exactly as a real IP camera would
serve it; the main engine then pulls them with `RtspSource` like any configured camera, so the demo exercises
the real ingest path (RTSP client, RTP, depacketizer, fan-out) and the real RTSP output.
"""

from __future__ import annotations

import logging
import math
import random
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from fluxkit.api import TOKEN_FILE_NAME, ApiServices, ensure_token, serve_api
from fluxkit.config import StreamSettings
from fluxkit.engine import open_engine
from fluxkit.gb28181 import Gb28181Platform, PlatformSettings, gb28181_routes
from fluxkit.gb28181.device import DeviceSettings, SimulatedDevice
from fluxkit.keyframes import Keyframe, SnapshotService
from fluxkit.net.rtmp_server import serve_rtmp
from fluxkit.net.rtsp_server import serve_rtsp
from fluxkit.net.rtsp_source import RtspSource
from fluxkit.net.whip import open_whip_service, whip_routes
from fluxkit.sources import SourceFactory, UnsupportedProtocol, make_source_factory
from fluxkit.storage import RecordingSettings as RecorderSettings
from fluxkit.storage import StorageBackend, open_recorder
from fluxkit.storage.tiers import NvrUploads, nvr_routes, open_configured_storage

if TYPE_CHECKING:
    from fluxkit.config import Config
    from fluxkit.engine import VideoEngine

__all__ = ["DEMO_CAMERAS", "RunningFluxkit", "run_fluxkit"]

log = logging.getLogger("fluxkit")

#: How many simulated cameras `--demo` starts.
DEMO_CAMERAS = 2
#: Seconds between the statistics lines of each stream.
STATS_INTERVAL = 10.0


@attrs.frozen(kw_only=True)
class RunningFluxkit:
    """What `run_fluxkit` reports once it is serving (through `task_status`).

    Attributes:
        engine: the running engine (add sources, subscribe, read events).
        rtsp_url: base URL of the RTSP output; streams are at `<rtsp_url>/<stream_id>`.
        stream_ids: the streams started from the configuration and the demo.
        api_url: base URL of the REST API, or None when it is disabled.
        api_token: the bearer token the API wants (None: no auth).
        storage: the recording storage (None when recording is disabled).
    """

    engine: VideoEngine
    rtsp_url: str
    stream_ids: tuple[str, ...]
    api_url: str | None = None
    api_token: str | None = None
    storage: StorageBackend | None = None


def _recorder_settings(config: Config) -> RecorderSettings:
    video = config.video
    size = video.storage.max_size_gb
    return RecorderSettings(
        segment_duration=video.recording.segment_duration,
        part_duration=video.recording.part_duration,
        retention_days=video.storage.retention_days,
        max_size_bytes=None if size is None else int(size * 1e9),
    )


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


async def _serve_demo_cameras(count: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A separate engine playing the generated clip at rtsp://127.0.0.1:<port>/cam1..camN; reports the port."""
    from fluxkit.sim import FileSource, generate_demo_clip, load_clip

    clip_path = await trio.to_thread.run_sync(generate_demo_clip)
    clip = await trio.to_thread.run_sync(load_clip, clip_path)
    async with open_engine() as cameras, trio.open_nursery() as nursery:
        for i in range(1, count + 1):
            # Each camera gets its own clock origin, as real cameras do.
            cameras.add_source(f"cam{i}", FileSource(clip, rng=random.Random(i)))
        listeners = await nursery.start(partial(serve_rtsp, cameras, "127.0.0.1", 0))
        task_status.started(listeners[0].socket.getsockname()[1])


async def _report_statistics(engine: VideoEngine, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        for info in engine.list_streams():
            s = engine.stream_statistics(info.stream_id)
            gop = "-" if s.gop is None else str(s.gop)
            log.info(
                "stream %s: %s, %.1f fps, %.0f kb/s, GOP %s, %d frames, %d keyframes, %d subscribers, %d restarts",
                s.stream_id, s.state, s.fps, s.bitrate / 1000, gop, s.frames, s.keyframes, s.subscribers, s.restarts,
            )  # fmt: skip


def _add_sources(
    engine: VideoEngine, config: Config, camera_port: int | None, source_factory: SourceFactory
) -> list[str]:
    """Supervise a source per demo camera and per configured stream; returns their stream ids."""
    stream_ids: list[str] = []
    if camera_port is not None:
        for i in range(1, DEMO_CAMERAS + 1):
            url = f"rtsp://127.0.0.1:{camera_port}/cam{i}"
            engine.add_source(f"demo{i}", RtspSource(url))
            stream_ids.append(f"demo{i}")
            log.info("demo camera %d serves %s; ingested as stream demo%d", i, url, i)
    for stream in config.video.streams:
        try:
            source = source_factory(stream)
        except UnsupportedProtocol as exc:
            log.warning("stream %s: %s; skipped", stream.stream_id, exc)
            continue
        engine.add_source(stream.stream_id, source)
        stream_ids.append(stream.stream_id)
    return stream_ids


def _api_token(data_dir: Path) -> str:
    """The API token from `<data_dir>/api-token`, made on first run and then printed once."""
    path = data_dir / TOKEN_FILE_NAME
    first_run = not path.exists()
    token = ensure_token(data_dir)
    if first_run:
        print(f"REST API token (saved in {path}, shown only this once): {token}", flush=True)
    return token


#: Password of the simulated GB28181 cameras of `--demo` when `[video.gb28181] password` is not set.
DEMO_GB28181_PASSWORD = "fluxkit-demo"
#: How many simulated GB28181 cameras `--demo` registers (streams gb1..gbN).
DEMO_GB28181_CAMERAS = 3
#: The media transport of each demo GB28181 camera, in turn, so that the demo shows all three (Appendix F).
DEMO_GB28181_TRANSPORTS = ("udp", "tcp-passive", "tcp-active")


async def _serve_gb28181(
    engine: VideoEngine, config: Config, demo: bool, *, task_status: trio.TaskStatus[Gb28181Platform]
) -> None:
    """The GB28181 platform: SIP on UDP and TCP at `sip_port`, the device registry in `<data_dir>/gb28181.sqlite3`."""
    video = config.video
    gb = video.gb28181
    settings = PlatformSettings(
        server_id=gb.server_id,
        domain=gb.domain,
        password=gb.password if gb.password is not None or not demo else DEMO_GB28181_PASSWORD,
        host=video.protocols.host,
        sip_port=video.sip_port,
        media_port_range=gb.media_port_range,
    )
    video.data_path.mkdir(parents=True, exist_ok=True)
    platform = Gb28181Platform(engine, settings, rng=random.Random(), registry_path=video.data_path / "gb28181.sqlite3")
    try:
        await platform.serve(task_status=task_status)
    finally:
        platform.close()


async def _run_demo_gb28181_cameras(
    engine: VideoEngine,
    platform: Gb28181Platform,
    source_factory: SourceFactory,
    *,
    task_status: trio.TaskStatus[list[str]],
) -> None:
    """Simulated GB28181 cameras that register to our own platform; their live video becomes streams gbN, camera N
    streaming over `DEMO_GB28181_TRANSPORTS[N - 1]` (in turn), so the demo shows UDP, TCP passive and TCP active."""
    from fluxkit.sim import generate_demo_clip, load_clip

    settings = platform.settings
    stream_ids: list[str] = []
    # One clip in memory for every camera (each device would otherwise load its own copy at its first INVITE).
    clip_path = await trio.to_thread.run_sync(generate_demo_clip)
    clip = await trio.to_thread.run_sync(load_clip, clip_path)
    async with trio.open_nursery() as nursery:
        devices = []
        for i in range(1, DEMO_GB28181_CAMERAS + 1):
            device = SimulatedDevice(
                DeviceSettings(
                    server_host="127.0.0.1",
                    server_port=platform.sip_port,
                    server_id=settings.server_id,
                    domain=settings.domain,
                    device_id=f"{settings.domain}13200{i:05d}",
                    password=settings.password or DEMO_GB28181_PASSWORD,
                    name=f"fluxkit demo GB28181 camera {i}",
                ),
                rng=random.Random(i),
                clip=clip,
            )
            await nursery.start(device.run)
            devices.append(device)
        with trio.move_on_after(10):  # registered together; a camera still registering is retried by its source
            for device in devices:
                await device.wait_registered()
        for i, device in enumerate(devices, 1):
            transport = DEMO_GB28181_TRANSPORTS[(i - 1) % len(DEMO_GB28181_TRANSPORTS)]
            url = f"gb28181://{device.settings.device_id}/{device.channel_ids[0]}?transport={transport}"
            stream_id = f"gb{i}"
            engine.add_source(stream_id, source_factory(StreamSettings(stream_id=stream_id, protocol="gb28181",
                                                                       source_url=url)))  # fmt: skip
            stream_ids.append(stream_id)
            log.info(
                "demo GB28181 camera %s registered; its live video (%s) is stream %s",
                device.settings.device_id, transport, stream_id,
            )  # fmt: skip
        task_status.started(stream_ids)


async def _run_recorder(recorder: AbstractAsyncContextManager[object]) -> None:
    async with recorder:
        await trio.sleep_forever()


def _snapshot_service(engine: VideoEngine, storage: StorageBackend, config: Config) -> SnapshotService:
    keyframe = config.video.keyframe

    async def store(stream_id: str, frame: Keyframe, jpeg: bytes) -> None:
        # One keyframe (the self-contained access unit plus its JPEG) every `interval_seconds` per stream.
        await storage.save_keyframe(stream_id, frame.wall_time, frame.data, codec=frame.codec, jpeg=jpeg)

    return SnapshotService(
        engine,
        interval_seconds=keyframe.interval_seconds,
        width=keyframe.thumbnail_width,
        quality=keyframe.jpeg_quality,
        on_keyframe=store,
    )


async def run_fluxkit(
    config: Config,
    *,
    demo: bool = False,
    duration: float | None = None,
    stats_interval: float = STATS_INTERVAL,
    task_status: trio.TaskStatus[RunningFluxkit] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run fluxkit until cancelled (Ctrl-C) or for `duration` seconds.

    Args:
        config: the loaded configuration (`fluxkit.config.Config()` for the embedded defaults).
        demo: also start `DEMO_CAMERAS` simulated cameras, ingested as streams demo1..demoN.
        duration: stop by itself after this many seconds (None: run until cancelled).
        stats_interval: seconds between the per-stream statistics log lines.
        task_status: reports a `RunningFluxkit` once the RTSP output listens and the sources are added.
    """
    video = config.video
    host = video.protocols.host
    # The demo cameras live in an outer nursery so that they outlast the engine that pulls them: on shutdown
    # the engine's sources go first, instead of seeing their cameras vanish and reconnecting.
    async with trio.open_nursery() as cameras:
        camera_port = await cameras.start(_serve_demo_cameras, DEMO_CAMERAS) if demo else None
        async with (
            open_engine() as engine,
            open_configured_storage(config) as storage,
            open_whip_service(engine) as whip,
            trio.open_nursery() as nursery,
        ):
            listeners = await nursery.start(partial(serve_rtsp, engine, host, video.protocols.rtsp_port))
            rtsp_url = _url("rtsp", host, listeners[0].socket.getsockname()[1])
            rtmp_listeners = await nursery.start(partial(serve_rtmp, engine, host, video.protocols.rtmp_port))
            rtmp_port = rtmp_listeners[0].socket.getsockname()[1]
            log.info("RTMP ingest: push to %s/live/<stream_key>", _url("rtmp", host, rtmp_port))
            platform = None
            if video.gb28181.enabled or demo:
                platform = await nursery.start(_serve_gb28181, engine, config, demo)
            source_factory = make_source_factory(gb28181_platform=platform)
            if video.recording.enabled:
                recorder = open_recorder(engine, storage, _recorder_settings(config))
                nursery.start_soon(_run_recorder, recorder)
                log.info("recording every stream under %s", video.storage_path)
            snapshots = None
            if video.keyframe.enabled:
                snapshots = _snapshot_service(engine, storage, config)
                await nursery.start(snapshots.run)
            nvr_uploads = None
            if video.storage.serve_nvr:
                # Uploads edge fluxkits abandoned are removed at start (before serving) and then hourly.
                nvr_uploads = NvrUploads(storage, max_age=video.storage.nvr_upload_max_age_hours * 3600.0)
                await nursery.start(nvr_uploads.run)
            api_url = token = None
            if video.api.enabled:
                token = video.api.token or await trio.to_thread.run_sync(_api_token, video.data_path)
                routes = tuple(nvr_routes(storage, uploads=nvr_uploads)) if nvr_uploads is not None else ()
                if platform is not None:
                    routes += tuple(gb28181_routes(platform))
                routes += tuple(whip_routes(whip))  # WHIP ingest: POST an SDP offer to /api/video/whip/<stream_id>
                services = ApiServices(
                    engine=engine,
                    storage=storage,
                    snapshots=snapshots,
                    token=token,
                    source_factory=source_factory,
                    extra_routes=routes,
                )
                api_port = await nursery.start(serve_api, services, host, video.protocols.api_port)
                api_url = _url("http", host, api_port)
                log.info("REST API at %s/api/video/streams (token in %s)", api_url, video.data_path / "api-token")
            stream_ids = _add_sources(engine, config, camera_port, source_factory)
            if demo and platform is not None:
                stream_ids += await nursery.start(_run_demo_gb28181_cameras, engine, platform, source_factory)
            for stream_id in stream_ids:
                log.info("stream %s: play it at %s/%s", stream_id, rtsp_url, stream_id)
            if not stream_ids:
                log.warning("no streams configured: add [[video.streams]] to the config file, or run with --demo")
            nursery.start_soon(_report_statistics, engine, stats_interval)
            running = RunningFluxkit(
                engine=engine, rtsp_url=rtsp_url, stream_ids=tuple(stream_ids), api_url=api_url, api_token=token,
                storage=storage,
            )  # fmt: skip
            task_status.started(running)
            await trio.sleep(math.inf if duration is None else duration)
            log.info("stopping")
            nursery.cancel_scope.cancel()
        cameras.cancel_scope.cancel()
