"""The REST API end to end: a real hypercorn server on a free loopback port, httpx on Trio, real engine/storage."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import stat
from pathlib import Path

import av
import pytest
import trio

from fluxkit.api import ApiServices, ensure_token, format_time, make_app, openapi_document, parse_time
from fluxkit.keyframes import SnapshotService
from fluxkit.storage import LocalStorage
from tests.api.helpers import TOKEN, jpeg_bytes, record_clip, running_api
from tests.keyframes.helpers import clip_frames, clip_parameter_sets

from fluxkit.engine import Track  # isort: skip

RTSP_BODY = {"stream_id": "cam1", "protocol": "rtsp", "source_url": "rtsp://user:pw@127.0.0.1:8554/x"}
HOUR = "start=2026-02-11T10:00:00Z&end=2026-02-11T11:00:00Z"


def assert_error(response, status: int, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status
    assert fragment.lower() in body["error"].lower()


# -- streams -----------------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_stream_lifecycle() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            c = api.client
            assert (await c.get("/api/video/streams")).json() == {"streams": []}
            r = await c.post("/api/video/streams", json={**RTSP_BODY, "transport": "udp"})
            assert r.status_code == 201, r.text
            assert r.headers["location"] == "/api/video/streams/cam1"
            body = r.json()
            assert body["stream_id"] == "cam1"
            assert body["state"] == "waiting"
            assert body["supervised"]
            assert body["source"] == {
                "protocol": "rtsp",
                "source_url": "rtsp://user:***@127.0.0.1:8554/x",  # the password is never echoed
                "transport": "udp",
            }
            assert api.services.source_factory is not None
            assert_error(await c.post("/api/video/streams", json=RTSP_BODY), 409, "already exists")
            listed = (await c.get("/api/video/streams")).json()["streams"]
            assert [s["stream_id"] for s in listed] == ["cam1"]
            assert set(listed[0]["statistics"]) >= {"fps", "bitrate", "frames", "keyframes", "losses", "restarts"}
            assert (await c.get("/api/video/streams/cam1")).json()["stream_id"] == "cam1"
            r = await c.delete("/api/video/streams/cam1")
            assert r.status_code == 204
            assert r.content == b""
            assert_error(await c.get("/api/video/streams/cam1"), 404, "no stream")
            assert_error(await c.delete("/api/video/streams/cam1"), 404)
            assert (await c.get("/api/video/streams")).json() == {"streams": []}


@pytest.mark.trio
async def test_published_stream_shows_tracks_and_statistics() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            track = Track(codec="h264", width=320, height=240, fps=25.0, parameter_sets=clip_parameter_sets("h264"))
            publisher = api.engine.publish_stream("pub", [track])
            for frame in clip_frames("h264")[:20]:
                publisher.send(frame)
            body = (await api.client.get("/api/video/streams/pub")).json()
            assert body["state"] == "live"
            assert not body["supervised"]
            assert body["source"] is None
            assert body["tracks"][0] | {} == {
                "codec": "h264",
                "kind": "video",
                "width": 320,
                "height": 240,
                "fps": 25.0,
                "sample_rate": None,
                "channels": None,
            }
            assert body["statistics"]["frames"] == 20
            assert body["statistics"]["keyframes"] == 2
            assert (await api.client.delete("/api/video/streams/pub")).status_code == 204  # stop_stream
            assert publisher.closed


@pytest.mark.trio
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"x"', "JSON object"),
        (json.dumps({"protocol": "rtsp", "source_url": "rtsp://h/x"}).encode(), "stream_id is required"),
        (json.dumps({**RTSP_BODY, "stream_id": 5}).encode(), "stream_id must be a string"),
        (json.dumps({**RTSP_BODY, "colour": "red"}).encode(), "unknown field 'colour'"),
        (json.dumps({**RTSP_BODY, "stream_id": "../etc"}).encode(), "stream_id: must be 1 to 64"),
        (json.dumps({**RTSP_BODY, "stream_id": "a/b"}).encode(), "stream_id"),
        (json.dumps({**RTSP_BODY, "stream_id": "x" * 65}).encode(), "stream_id"),
        (json.dumps({**RTSP_BODY, "protocol": "hls"}).encode(), "protocol: must be one of"),
        (json.dumps({**RTSP_BODY, "source_url": "http://h/x"}).encode(), "needs a rtsp:// or rtsps:// URL"),
        (json.dumps({**RTSP_BODY, "source_url": "rtsp://h:99999/x"}).encode(), "source_url"),
        (json.dumps({**RTSP_BODY, "transport": "quic"}).encode(), "transport"),
        (json.dumps({**RTSP_BODY, "transport": 1}).encode(), "transport must be a string or null"),
        (
            json.dumps({"stream_id": "whep", "protocol": "webrtc", "source_url": "http://127.0.0.1/whep/x"}).encode(),
            "not implemented yet",
        ),
    ],
)
async def test_create_stream_rejects_bad_bodies(body: bytes, fragment: str) -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            r = await api.client.post("/api/video/streams", content=body)
            assert_error(r, 422, fragment)
            assert "pw" not in r.text
            assert (await api.client.get("/api/video/streams")).json() == {"streams": []}


@pytest.mark.trio
async def test_create_stream_body_too_large() -> None:
    with trio.fail_after(20):
        async with running_api(lambda engine: {"max_body_size": 100}) as api:
            r = await api.client.post("/api/video/streams", content=b"{" + b" " * 200 + b"}")
            assert_error(r, 413, "larger than 100 bytes")


@pytest.mark.trio
async def test_the_default_source_factory_makes_an_rtsp_source() -> None:
    from fluxkit.api._app import _default_source
    from fluxkit.config import StreamSettings
    from fluxkit.net.rtsp_source import RtspSource

    source = _default_source(StreamSettings(stream_id="a", protocol="rtsp", source_url="rtsp://127.0.0.1:1/x"))
    assert isinstance(source, RtspSource)


# -- stream ids, paths, methods -----------------------------------------------------------------------------------

TRAVERSALS = [
    "%2E%2E",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..%2F..%2Findex.sqlite3",
    "a%2Fb",
    "%2Fetc",
    "a%00b",
    "a%0Ab",
    "a%7Fb",
    "%20cam",
    ".hidden",
    "keyframes",
    "x" * 129,
    "caf%C3%A9",
    "a%5Cb",
]


@pytest.mark.trio
@pytest.mark.parametrize("bad", TRAVERSALS)
async def test_bad_stream_ids_are_400_everywhere(bad: str, tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with LocalStorage(tmp_path / "rec") as storage:
            async with running_api(lambda e: {"storage": storage}) as api:
                c = api.client
                for method, path in [
                    ("GET", f"/api/video/streams/{bad}"),
                    ("DELETE", f"/api/video/streams/{bad}"),
                    ("GET", f"/api/video/streams/{bad}/snapshot"),
                    ("GET", f"/api/video/streams/{bad}/live"),
                    ("GET", f"/api/video/recordings/{bad}?{HOUR}"),
                    ("GET", f"/api/video/recordings/{bad}/playback?{HOUR}"),
                    ("GET", f"/api/video/recordings/{bad}/keyframes?{HOUR}"),
                    ("GET", f"/api/video/recordings/{bad}/keyframes/1700000000000.jpg"),
                ]:
                    r = await c.request(method, path)
                    assert_error(r, 400, "invalid stream id")
                assert not any(p.is_dir() for p in (tmp_path / "rec").iterdir())  # nothing created


@pytest.mark.trio
async def test_unknown_routes_and_methods_are_json() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            assert_error(await api.client.get("/api/video/nothing"), 404)
            assert_error(await api.client.get("/"), 404)
            assert_error(await api.client.put("/api/video/streams"), 405)
            assert_error(await api.client.post("/metrics"), 405)


# -- snapshots -----------------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_snapshot_is_a_decodable_jpeg() -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            holder: dict[str, SnapshotService] = {}

            def services(engine):
                holder["s"] = SnapshotService(engine, hwaccel=None)
                return {"snapshots": holder["s"]}

            async with running_api(services) as api:
                await nursery.start(holder["s"].run)
                track = Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))
                publisher = api.engine.publish_stream("cam1", [track])
                await trio.lowlevel.checkpoint()
                r = await api.client.get("/api/video/streams/cam1/snapshot")
                assert_error(r, 503, "no snapshot yet")
                assert r.headers["retry-after"] == "1"
                for frame in clip_frames("h264")[:12]:
                    publisher.send(frame)
                while True:
                    r = await api.client.get("/api/video/streams/cam1/snapshot")
                    if r.status_code != 503:
                        break
                    await trio.sleep(0.02)
                assert r.status_code == 200
                assert r.headers["content-type"] == "image/jpeg"
                with av.open(io.BytesIO(r.content)) as container:
                    frames = list(container.decode(video=0))
                assert len(frames) == 1
                assert frames[0].width > 0
                assert_error(await api.client.get("/api/video/streams/nope/snapshot"), 404)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_snapshot_without_service_is_503() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            api.engine.publish_stream("cam1", [Track(codec="h264")])
            assert_error(await api.client.get("/api/video/streams/cam1/snapshot"), 503, "not enabled")


# -- recordings, playback, keyframes -------------------------------------------------------------------------------


@pytest.mark.trio
async def test_recordings_playback_and_keyframes(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with LocalStorage(tmp_path / "rec") as storage:
            media = await record_clip(storage, "cam1", frames=100, gop=25)
            now = dt.datetime.now(dt.UTC)
            stamp = now - dt.timedelta(minutes=5)
            await storage.save_keyframe("cam1", stamp, media[0].data, jpeg=jpeg_bytes())
            await storage.save_keyframe("cam1", stamp + dt.timedelta(seconds=1), media[25].data)  # no thumbnail
            async with running_api(lambda e: {"storage": storage}) as api:
                c = api.client
                window = {
                    "start": format_time(now - dt.timedelta(hours=1)),
                    "end": format_time(now + dt.timedelta(hours=1)),
                }
                r = await c.get("/api/video/recordings/cam1", params=window)
                assert r.status_code == 200, r.text
                body = r.json()
                segments = body["segments"]
                assert len(segments) >= 2
                assert body["gaps"] == []
                for seg in segments:
                    assert {"start", "end", "size", "duration"} <= set(seg)
                    assert parse_time(seg["start"]) < parse_time(seg["end"])
                    assert seg["size"] > 0
                assert sum(s["frames"] for s in segments) == 100

                # The whole recording as one MP4, read back by PyAV.
                span = {"start": segments[0]["start"], "end": segments[-1]["end"]}
                r = await c.get("/api/video/recordings/cam1/playback", params=span)
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "video/mp4"
                with av.open(io.BytesIO(r.content)) as container:
                    decoded = list(container.decode(video=0))
                assert len(decoded) == 100
                assert parse_time(r.headers["x-fluxkit-first-frame"]) == parse_time(segments[0]["start"])
                # From inside a GOP (1 s GOPs): the answer starts at, and says, the keyframe before `start`.
                inside = parse_time(segments[0]["start"]) + dt.timedelta(seconds=1.5)
                r = await c.get("/api/video/recordings/cam1/playback", params={**span, "start": format_time(inside)})
                assert r.status_code == 200, r.text
                first_frame = parse_time(r.headers["x-fluxkit-first-frame"])
                expected = parse_time(segments[0]["start"]) + dt.timedelta(seconds=1)
                assert abs((first_frame - expected).total_seconds()) < 0.02, (first_frame, expected)
                with av.open(io.BytesIO(r.content)) as container:
                    assert sum(1 for p in container.demux(video=0) if p.size) == 75
                # Paced at 4x: still the same frames.
                r = await c.get("/api/video/recordings/cam1/playback", params={**span, "speed": "4"})
                with av.open(io.BytesIO(r.content)) as container:
                    assert sum(1 for p in container.demux(video=0) if p.size) == 100

                # Playback errors.
                far = {"start": "2001-01-01T00:00:00Z", "end": "2001-01-01T01:00:00Z"}
                assert_error(await c.get("/api/video/recordings/cam1/playback", params=far), 404)
                for speed in ("0.1", "5", "nan", "inf", "fast", ""):
                    r = await c.get("/api/video/recordings/cam1/playback", params={**span, "speed": speed})
                    assert_error(r, 400, "speed")
                huge = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
                assert_error(await c.get("/api/video/recordings/cam1/playback", params=huge), 413, "too large")

                # Keyframes: listed with their URL; the JPEG is served, the one without a thumbnail is 404.
                r = await c.get("/api/video/recordings/cam1/keyframes", params=window)
                assert r.status_code == 200, r.text
                keyframes = r.json()["keyframes"]
                assert [parse_time(k["time"]) for k in keyframes] == [stamp, stamp + dt.timedelta(seconds=1)]
                r = await c.get(keyframes[0]["url"])
                assert r.status_code == 200
                assert r.headers["content-type"] == "image/jpeg"
                with av.open(io.BytesIO(r.content)) as container:
                    assert next(container.decode(video=0)).width == 64
                assert_error(await c.get(keyframes[1]["url"]), 404, "not stored")
                assert_error(await c.get("/api/video/recordings/cam1/keyframes/12.jpg"), 404)
                assert_error(await c.get("/api/video/recordings/cam1/keyframes/abc.jpg"), 400)
                assert_error(await c.get("/api/video/recordings/cam1/keyframes/1" + "0" * 20 + ".jpg"), 400)

                # The stream has stopped but its recordings remain; an unknown stream with nothing is 404.
                assert_error(await c.get("/api/video/recordings/other", params=window), 404)
                assert_error(await c.get("/api/video/recordings/other/keyframes", params=window), 404)
                r = await c.get("/api/video/recordings/cam1", params=far)
                assert_error(r, 404)
                api.engine.publish_stream("live1", [Track(codec="h264")])
                r = await c.get("/api/video/recordings/live1", params=far)
                assert r.status_code == 200
                assert r.json()["segments"] == []


@pytest.mark.trio
@pytest.mark.parametrize(
    ("query", "status", "fragment"),
    [
        ("", 400, "start is required"),
        ("start=2026-02-11T10:00:00Z", 400, "end is required"),
        ("start=&end=2026-02-11T10:00:00Z", 400, "start is required"),
        ("start=2026-02-11T10:00:00Z&end=2026-02-11T09:00:00Z", 400, "end must be after start"),
        ("start=2026-02-11T10:00:00Z&end=2026-02-11T10:00:00Z", 400, "end must be after start"),
        ("start=2026-02-11&end=2026-02-12", 400, "RFC 3339"),
        ("start=2026-02-11T10:00:00&end=2026-02-11T11:00:00", 400, "RFC 3339"),
        ("start=yesterday&end=today", 400, "RFC 3339"),
        ("start=2026-02-30T10:00:00Z&end=2026-03-01T10:00:00Z", 400, "not a valid time"),
        ("start=2026-02-11T25:00:00Z&end=2026-02-12T10:00:00Z", 400, "not a valid time"),
        ("start=0000-01-01T00:00:00Z&end=2026-02-12T10:00:00Z", 400, "not a valid time"),
        ("start=9999-12-31T23:00:00-05:00&end=9999-12-31T23:30:00-05:00", 400, "not a valid time"),
        ("start=2026-02-11T10:00:00%2B99:00&end=2026-02-12T10:00:00Z", 400, "not a valid time"),
        ("start=1&start=2&end=3", 400, "more than once"),
        ("start=1970-01-01T00:00:00Z&end=2026-02-12T10:00:00Z", 400, "too large"),
        ("start=%FF%FE&end=2026-02-12T10:00:00Z", 400, "RFC 3339"),
    ],
)
async def test_bad_ranges(query: str, status: int, fragment: str, tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with LocalStorage(tmp_path / "rec") as storage:
            async with running_api(lambda e: {"storage": storage}) as api:
                api.engine.publish_stream("cam1", [Track(codec="h264")])
                for path in ("", "/keyframes", "/playback"):
                    r = await api.client.get(f"/api/video/recordings/cam1{path}?{query}")
                    expected = 413 if (path == "/playback" and fragment == "too large") else status
                    assert_error(r, expected, fragment)


@pytest.mark.trio
async def test_recordings_without_storage_are_503() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            for path in ("", "/keyframes", "/playback"):
                assert_error(await api.client.get(f"/api/video/recordings/cam1{path}?{HOUR}"), 503, "not enabled")
            assert_error(await api.client.get("/api/video/recordings/cam1/keyframes/1.jpg"), 503)


# -- auth ------------------------------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_bearer_token_is_required_everywhere_when_set() -> None:
    with trio.fail_after(20):
        async with running_api(token=TOKEN) as api:
            c = api.client
            assert (await c.get("/api/video/streams")).status_code == 200
            assert (await c.get("/metrics")).status_code == 200
            paths = [
                "/api/video/streams",
                "/api/video/streams/cam1",
                "/api/video/streams/cam1/snapshot",
                f"/api/video/recordings/cam1?{HOUR}",
                "/api/openapi.json",
                "/metrics",
                "/nowhere",
                "/api/video/streams/%2E%2E%2Fx",
            ]
            for headers in (
                {"Authorization": ""},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {TOKEN}"},
                {"Authorization": f"Bearer {TOKEN}x"},
                {"Authorization": f"Bearer {TOKEN[:-1]}"},
                {"Authorization": "Bearer"},
            ):
                for path in paths:
                    r = await c.get(path, headers=headers)
                    assert_error(r, 401, "token")
                    assert r.headers["www-authenticate"].startswith("Bearer")
            async with __import__("httpx").AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as anonymous:
                r = await anonymous.post("/api/video/streams", json=RTSP_BODY)
                assert_error(r, 401, "bearer token required")
            assert (await c.get("/api/video/streams")).json() == {"streams": []}
            r = await c.get("/api/video/streams", headers={"Authorization": f"bearer  {TOKEN}"})
            assert r.status_code == 200  # the scheme is case-insensitive (RFC 7235 §2.1)


@pytest.mark.trio
async def test_no_token_means_open() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            r = await api.client.get("/api/video/streams", headers={"Authorization": "Bearer whatever"})
            assert r.status_code == 200


def test_ensure_token_generates_once_and_keeps_it_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = ensure_token(data)
    path = data / "api-token"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(data) == token
    assert [p.name for p in data.iterdir()] == ["api-token"]
    path.chmod(0o644)
    assert ensure_token(str(data)) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("   \n")
    fresh = ensure_token(data)
    assert fresh != token
    assert path.read_text().strip() == fresh
    path.write_bytes(b"\xff\xfe")
    assert ensure_token(data) not in (token, fresh)
    assert os.stat(path).st_size > 40


# -- openapi, metrics, times ---------------------------------------------------------------------------------------


@pytest.mark.trio
async def test_openapi_document_lists_every_route() -> None:
    with trio.fail_after(20):
        async with running_api() as api:
            r = await api.client.get("/api/openapi.json")
            assert r.status_code == 200
            doc = json.loads(r.content)
            assert doc == openapi_document()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    app = make_app(ApiServices(engine=None))  # type: ignore[arg-type]  # routes only
    served = set()
    for route in app.routes:
        path = route.path.replace("{stream_id:fluxkit_any}", "{stream_id}")  # type: ignore[attr-defined]
        for method in getattr(route, "methods", None) or {"GET"}:
            if method != "HEAD":
                served.add((path, method))
    assert served == documented
    for path, item in doc["paths"].items():
        for operation in item.values():
            assert operation["responses"]
            assert operation["operationId"]
            names = {p["name"] for p in operation.get("parameters", ())}
            assert names == set(re.findall(r"{(\w+)}", path)) | (
                {"start", "end"} if path.startswith("/api/video/recordings/") and "{ms}" not in path else set()
            ) | ({"speed"} if path.endswith("/playback") else set())
            assert "401" in operation["responses"]


_SAMPLE = re.compile(r'([a-z_:][a-z0-9_:]*)(\{([a-z_]+="(?:[^"\\\n]|\\.)*"(,[a-z_]+="(?:[^"\\\n]|\\.)*")*)?\})? (\S+)')


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    assert text.endswith("\n")
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter")
            assert name not in types
            types[name] = kind
            families[name] = []
            continue
        match = _SAMPLE.fullmatch(line)
        assert match, line
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        assert match.group(1) in types
        families[match.group(1)].append((labels, float(match.group(5))))
    return families


@pytest.mark.trio
async def test_metrics(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with LocalStorage(tmp_path / "rec") as storage:
            await record_clip(storage, "cam1", frames=50, gop=25)
            async with running_api(lambda e: {"storage": storage}, token=TOKEN) as api:
                track = Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))
                publisher = api.engine.publish_stream("cam1", [track])
                for frame in clip_frames("h264")[:20]:
                    publisher.send(frame)
                api.engine.publish_stream('we"ird\\id', [track])
                await api.client.post("/api/video/streams", json={**RTSP_BODY, "stream_id": "cam2"})
                r = await api.client.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
                m = parse_metrics(r.text)
                assert m["fluxkit_streams"] == [({}, 3.0)]
                by_stream = {labels["stream"]: value for labels, value in m["fluxkit_stream_frames_total"]}
                assert by_stream == {"cam1": 20.0, 'we\\"ird\\\\id': 0.0, "cam2": 0.0}
                states = {(lab["stream"], lab["state"]): v for lab, v in m["fluxkit_stream_state"]}
                assert states[("cam1", "live")] == 1
                assert states[("cam2", "waiting")] == 1
                assert states[("cam1", "waiting")] == 0
                for family in (
                    "fluxkit_stream_fps",
                    "fluxkit_stream_bitrate_bits_per_second",
                    "fluxkit_stream_keyframes_total",
                    "fluxkit_stream_losses_total",
                    "fluxkit_stream_subscribers",
                    "fluxkit_stream_restarts_total",
                ):
                    assert len(m[family]) == 3, family
                assert dict(m["fluxkit_stream_keyframes_total"][0][0]) == {"stream": "cam1"}
                ((labels, size),) = m["fluxkit_recording_bytes"]
                assert labels == {"stream": "cam1"}
                assert size > 1000
                assert m["fluxkit_recording_segments"][0][1] >= 1
                ((labels, lag),) = m["fluxkit_recording_lag_seconds"]
                assert labels == {"stream": "cam1"}
                assert 0 <= lag < 3600
                assert m["fluxkit_disk_total_bytes"][0][1] >= m["fluxkit_disk_free_bytes"][0][1] > 0
                async with __import__("httpx").AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as anonymous:
                    assert_error(await anonymous.get("/metrics"), 401)


def test_times() -> None:
    utc = dt.UTC
    assert parse_time("2026-02-11T10:00:00Z") == dt.datetime(2026, 2, 11, 10, tzinfo=utc)
    assert parse_time("2026-02-11t10:00:00.5z") == dt.datetime(2026, 2, 11, 10, 0, 0, 500000, tzinfo=utc)
    assert parse_time("2026-02-11T12:30:00+02:30") == dt.datetime(2026, 2, 11, 10, tzinfo=utc)
    assert parse_time("2026-02-11T10:00:00.123456789-00:00").microsecond == 123456
    for bad in ("2026-02-11", "2026-02-11T10:00:00", "2026-02-11 10:00:00Z", "2026-02-11T10:00:60Z", "", "x" * 500):
        with pytest.raises(ValueError):
            parse_time(bad)
    assert format_time(dt.datetime(2026, 2, 11, 10, tzinfo=utc)) == "2026-02-11T10:00:00Z"
    assert format_time(dt.datetime(2026, 2, 11, 10, 0, 0, 250000, tzinfo=utc)) == "2026-02-11T10:00:00.25Z"
    tz = dt.timezone(dt.timedelta(hours=-5))
    assert format_time(dt.datetime(2026, 2, 11, 5, tzinfo=tz)) == "2026-02-11T10:00:00Z"


@pytest.mark.trio
async def test_http_flv_streams_the_live_stream() -> None:
    with trio.fail_after(30):
        async with running_api() as api:
            track = Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))
            publisher = api.engine.publish_stream("cam1", [track])
            frames = clip_frames("h264")
            body = bytearray()

            async def publish() -> None:
                for frame in frames:
                    publisher.send(frame)
                    await trio.sleep(0.005)
                publisher.close()

            assert_error(await api.client.get("/api/video/streams/nope.flv"), 404, "no stream")
            async with trio.open_nursery() as nursery, api.client.stream("GET", "/api/video/streams/cam1.flv") as r:
                nursery.start_soon(publish)
                assert r.status_code == 200
                assert r.headers["content-type"] == "video/x-flv"
                async for chunk in r.aiter_bytes():
                    body += chunk
    assert body.startswith(b"FLV")
    with av.open(io.BytesIO(bytes(body)), format="flv") as container:
        packets = [p for p in container.demux(video=0) if p.size]
    assert packets[0].is_keyframe
    assert len(packets) >= len(frames) - 25  # joined within the first GOP at the latest
    assert sum(1 for p in packets for _ in p.decode()) == len(packets)
