"""Schema-driven test: schemathesis generates valid and invalid requests for every operation of the OpenAPI
document and checks the live server's answers against it (no 5xx, documented statuses, content types, bodies)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fluxkit.api import ApiServices, openapi_document, serve_api
from fluxkit.engine import Track, open_engine
from fluxkit.keyframes import SnapshotService
from fluxkit.storage import LocalStorage
from tests.api.helpers import TOKEN, IdleSource, jpeg_bytes, record_clip
from tests.keyframes.helpers import clip_frames, clip_parameter_sets

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API with an engine (one live stream), a recording, keyframes and snapshots, in its own Trio thread."""
    root: Path = tmp_path_factory.mktemp("schema") / "rec"
    ready: list[object] = []
    started = threading.Event()

    async def main() -> None:
        async with LocalStorage(root) as storage:
            media = await record_clip(storage, "cam1", frames=50, gop=25)
            await storage.save_keyframe("cam1", 1_770_804_000.0, media[0].data, jpeg=jpeg_bytes())
            async with open_engine() as engine, trio.open_nursery() as nursery:
                snapshots = SnapshotService(engine, hwaccel=None)
                await nursery.start(snapshots.run)
                track = Track(codec="h264", parameter_sets=clip_parameter_sets("h264"))
                publisher = engine.publish_stream("cam1", [track])
                for frame in clip_frames("h264")[:12]:
                    publisher.send(frame)
                services = ApiServices(
                    engine=engine, storage=storage, snapshots=snapshots, token=TOKEN, source_factory=IdleSource
                )
                port = await nursery.start(serve_api, services, "127.0.0.1", 0)
                ready.extend([f"http://127.0.0.1:{port}", trio.lowlevel.current_trio_token(), nursery.cancel_scope])
                started.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert started.wait(60), "the API did not start"
    url, token, scope = ready
    yield str(url)
    trio.from_thread.run_sync(scope.cancel, trio_token=token)  # type: ignore[attr-defined]
    thread.join(30)
    assert not thread.is_alive()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_every_operation_against_the_schema(live_server: str, operation, mode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        response = case.call(base_url=live_server, headers=AUTH, timeout=30)
        case.validate_response(response, checks=CHECKS)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["status"] == response.status_code

    run()
