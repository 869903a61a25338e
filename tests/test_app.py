"""`fluxkit run`: the main job, end to end with the demo cameras and a real player (ffmpeg)."""

from __future__ import annotations

import datetime as dt
import io
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import av
import httpx
import pytest
import trio

from fluxkit.app import RunningFluxkit, run_fluxkit
from fluxkit.cli import main
from fluxkit.config import (
    Config,
    KeyframeSettings,
    ProtocolSettings,
    RecordingSettings,
    StreamSettings,
    VideoSettings,
)
from fluxkit.engine import SourceReconnecting
from tests.conftest import require_tool


def _rfc3339(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, *streams: StreamSettings) -> Config:
    protocols = ProtocolSettings(
        rtsp_port=_free_port(), api_port=_free_port(), rtmp_port=_free_port(), sip_port=_free_port()
    )
    recording = RecordingSettings(segment_duration=2.0, part_duration=0.5)
    keyframe = KeyframeSettings(interval_seconds=1.0)
    return Config(
        video=VideoSettings(
            data_dir=str(tmp_path), protocols=protocols, recording=recording, keyframe=keyframe, streams=streams
        )
    )


@pytest.mark.interop
@pytest.mark.trio
async def test_demo_streams_are_ingested_and_playable_with_ffmpeg(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            running: RunningFluxkit = await nursery.start(partial(run_fluxkit, _config(tmp_path), demo=True))
            assert running.stream_ids == ("demo1", "demo2", "gb1", "gb2", "gb3")
            out = tmp_path / "demo1.mkv"
            url = f"{running.rtsp_url}/demo1"
            args = [
                ffmpeg,
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-i",
                url,
                "-frames:v",
                "25",
                "-c",
                "copy",
                str(out),
            ]
            result = await trio.run_process(args, capture_stderr=True, check=False)
            assert result.returncode == 0, result.stderr.decode()
            with av.open(str(out)) as container:
                packets = [p for p in container.demux(video=0) if p.size]
                assert container.streams.video[0].codec_context.width == 640
            assert len(packets) == 25
            assert packets[0].is_keyframe
            stats = running.engine.stream_statistics("demo2")
            assert stats.state == "live"
            assert stats.frames > 0
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_camera_that_refuses_does_not_stop_the_others(tmp_path: Path) -> None:
    dead = StreamSettings(stream_id="dead", protocol="rtsp", source_url=f"rtsp://127.0.0.1:{_free_port()}/x")
    skipped = StreamSettings(stream_id="later", protocol="webrtc", source_url="http://127.0.0.1/whep/x")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            running: RunningFluxkit = await nursery.start(
                partial(run_fluxkit, _config(tmp_path, dead, skipped), demo=True)
            )
            assert running.stream_ids == ("demo1", "demo2", "dead", "gb1", "gb2", "gb3")
            events = running.engine.events()
            while True:
                event = await events.receive()
                if isinstance(event, SourceReconnecting) and event.stream_id == "dead":
                    break
            async with running.engine.subscribe_stream("demo1") as frames:
                received = 0
                async for _frame in frames:
                    received += 1
                    if received == 25:
                        break
            assert running.engine.stream_statistics("dead").frames == 0
            nursery.cancel_scope.cancel()


def test_run_command_stops_cleanly_after_its_duration(tmp_path: Path) -> None:
    port = _free_port()
    args = [sys.executable, "-m", "fluxkit", "run", "--demo", "--duration", "4", "--rtsp-port", str(port)]
    args += ["--api-port", str(_free_port()), "--rtmp-port", str(_free_port()), "--sip-port", str(_free_port())]
    args += ["--data-dir", str(tmp_path)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"play it at rtsp://127.0.0.1:{port}/demo1" in result.stderr
    token = (tmp_path / "api-token").read_text().strip()
    assert f"shown only this once): {token}" in result.stdout
    assert "stopping" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_rejects_an_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[video.protocols]\nrtsp_port = 0\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "@ $.video.protocols.rtsp_port" in capsys.readouterr().err


@pytest.mark.interop
@pytest.mark.trio
async def test_demo_streams_are_recorded_snapshotted_and_served_by_the_api(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            running: RunningFluxkit = await nursery.start(partial(run_fluxkit, _config(tmp_path), demo=True))
            assert running.api_url is not None
            headers = {"Authorization": f"Bearer {running.api_token}"}
            async with httpx.AsyncClient(base_url=running.api_url, headers=headers) as api:
                streams = (await api.get("/api/video/streams")).json()
                assert {s["stream_id"] for s in streams["streams"]} >= {"demo1", "demo2"}
                now = dt.datetime.now(dt.UTC)
                window = {"start": _rfc3339(now - dt.timedelta(hours=1)), "end": _rfc3339(now + dt.timedelta(hours=1))}
                while True:  # two-second segments: wait for the first ones to be indexed
                    await trio.sleep(0.5)
                    listing = await api.get("/api/video/recordings/demo1", params=window)
                    if listing.status_code == 200 and len(listing.json()["segments"]) >= 2:
                        break
                first, second = listing.json()["segments"][:2]
                clip = await api.get(
                    "/api/video/recordings/demo1/playback", params={"start": first["start"], "end": second["end"]}
                )
                assert clip.status_code == 200
                assert clip.headers["content-type"] == "video/mp4"
                with av.open(io.BytesIO(clip.content)) as container:
                    frames = [p for p in container.demux(video=0) if p.size]
                assert len(frames) >= 75  # two segments of ~2 s at 25 fps
                assert frames[0].is_keyframe
                snapshot = await api.get("/api/video/streams/demo2/snapshot")
                assert snapshot.status_code == 200
                assert snapshot.headers["content-type"] == "image/jpeg"
                devices = (await api.get("/api/video/gb28181/devices")).json()["devices"]
                assert [d["online"] for d in devices] == [True, True, True]
                ptz = await api.post(
                    f"/api/video/gb28181/devices/{devices[0]['device_id']}/ptz",
                    json={"channel_id": devices[0]["channels"][0]["channel_id"], "command": "left", "speed": 64},
                )
                assert ptz.status_code == 200, ptz.text
                for stream_id in ("gb1", "gb2", "gb3"):  # the demo GB28181 cameras: udp, tcp-passive, tcp-active
                    # Each transport's stream is recorded and plays back from the recording.
                    while True:
                        await trio.sleep(0.5)
                        listing = await api.get(f"/api/video/recordings/{stream_id}", params=window)
                        if listing.status_code == 200 and listing.json()["segments"]:
                            break
                    segment = listing.json()["segments"][0]
                    clip = await api.get(
                        f"/api/video/recordings/{stream_id}/playback",
                        params={"start": segment["start"], "end": segment["end"]},
                    )
                    assert clip.status_code == 200, (stream_id, clip.text)
                    with av.open(io.BytesIO(clip.content)) as container:
                        frames = [p for p in container.demux(video=0) if p.size]
                    assert len(frames) >= 25, stream_id  # a finished segment of a 25 fps camera: >= 1 s
                    assert frames[0].is_keyframe, stream_id
                wrong = await api.get("/api/video/streams", headers={"Authorization": "Bearer wrong"})
                assert wrong.status_code == 401
            nursery.cancel_scope.cancel()


@pytest.mark.interop
@pytest.mark.trio
async def test_an_rtmp_push_becomes_a_recorded_stream(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    config = _config(tmp_path)
    push = [
        ffmpeg, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "3",
        "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-pix_fmt", "yuv420p", "-f", "flv",
        f"rtmp://127.0.0.1:{config.video.protocols.rtmp_port}/live/obs",
    ]  # fmt: skip
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            running: RunningFluxkit = await nursery.start(partial(run_fluxkit, config))
            result = await trio.run_process(push, capture_stderr=True, check=False)
            assert result.returncode == 0, result.stderr.decode()
            assert running.storage is not None
            while not (await running.storage.query_segments("obs", 0, 4e9)).segments:  # noqa: ASYNC110 - polls an index
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
