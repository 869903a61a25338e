"""The OpenAPI document with the mounted route groups (GB28181, WHIP, the NVR protocol): `/api/openapi.json`
documents exactly the routes the app serves, each operation complete (operationId, responses, 401, path
parameters), and the merge refuses ambiguous documentation."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import trio
from starlette.routing import Route

from fluxkit.api import ApiServices, make_app, openapi_document, serve_api
from fluxkit.api._openapi import route_path
from fluxkit.engine import open_engine
from fluxkit.gb28181 import Gb28181Platform, PlatformSettings, gb28181_routes
from fluxkit.net.whip import open_whip_service, whip_routes
from fluxkit.storage import LocalStorage
from fluxkit.storage.tiers import nvr_routes
from tests.api.helpers import TOKEN

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _served(routes: Any) -> set[tuple[str, str]]:
    served = set()
    for route in routes:
        for method in getattr(route, "methods", None) or {"GET"}:  # a WebSocketRoute has none: its GET upgrade
            if method != "HEAD":
                served.add((route_path(route.path), method))
    return served


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item}


def _check_operations(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for path, item in doc["paths"].items():
        assert set(item) <= _METHODS
        for operation in item.values():
            assert operation["operationId"]
            assert operation["summary"]
            assert operation["responses"]
            assert "401" in operation["responses"]
            declared = [p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"]
            assert sorted(declared) == sorted(re.findall(r"{(\w+)}", path)), (path, declared)
            for parameter in operation.get("parameters", ()):
                assert parameter["in"] != "path" or parameter["required"] is True
                assert "schema" in parameter
            for code, response in operation["responses"].items():
                assert response["description"]
                if code.startswith(("4", "5")):
                    content = response["content"]
                    json_error = content.get("application/json")
                    # JSON errors are the shared `{"error", "status"}`; WHIP's own are plain text (RFC 9725).
                    assert json_error == {"schema": {"$ref": "#/components/schemas/Error"}} or set(content) == {
                        "text/plain"
                    }, (path, code)


@pytest.mark.trio
async def test_openapi_documents_every_mounted_route_group(tmp_path: Path) -> None:
    with trio.fail_after(120):  # generous: only a hang should trip it (the set-up imports aiortc)
        async with (
            LocalStorage(tmp_path) as storage,
            open_engine() as engine,
            open_whip_service(engine) as whip,
            trio.open_nursery() as nursery,
        ):
            platform = Gb28181Platform(engine, PlatformSettings(sip_port=0), rng=random.Random(0))  # not served
            routes = (*gb28181_routes(platform), *whip_routes(whip), *nvr_routes(storage))
            services = ApiServices(engine=engine, token=TOKEN, extra_routes=routes)
            port = await nursery.start(serve_api, services, "127.0.0.1", 0)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=auth, timeout=10) as client:
                r = await client.get("/api/openapi.json")
                assert r.status_code == 200
                doc = json.loads(r.content)
                # Mounted routes stay behind the token, as documented.
                assert (
                    await client.get("/api/video/gb28181/devices", headers={"Authorization": ""})
                ).status_code == 401
            nursery.cancel_scope.cancel()
    doc_without = openapi_document()
    assert doc == openapi_document(routes)
    app = make_app(ApiServices(engine=None, extra_routes=routes))  # type: ignore[arg-type]  # routes only
    assert _served(app.routes) == _documented(doc)
    assert _documented(doc) - _documented(doc_without) == _served(routes)
    _check_operations(doc)
    # A schema tool reads it: every operation resolves (references included).
    for result in schemathesis.openapi.from_dict(doc).get_all_operations():
        result.ok()  # type: ignore[union-attr]  # an Err raises its InvalidSchema


def test_openapi_document_without_extras_is_the_core_document() -> None:
    doc = openapi_document()
    assert doc == openapi_document(())
    assert not any(path.startswith(("/api/video/gb28181", "/api/video/whip", "/api/v1/")) for path in doc["paths"])
    _check_operations(doc)


def test_route_path_strips_convertors() -> None:
    assert route_path("/a/{stream_id:fluxkit_any}/b/{ms}.jpg") == "/a/{stream_id}/b/{ms}.jpg"
    assert route_path("/x/{p:path}") == "/x/{p}"


async def _handler(request: Any) -> Any:  # never called
    raise AssertionError


def _route(path: str, method: str, op_id: str) -> Route:
    route = Route(path, _handler, methods=[method])
    route.openapi = {method.lower(): {"operationId": op_id, "responses": {"200": {"description": "ok"}}}}  # type: ignore[attr-defined]
    return route


def test_merge_skips_undocumented_routes_and_refuses_clashes() -> None:
    bare = Route("/plain", _handler, methods=["GET"])
    assert openapi_document([bare]) == openapi_document()
    doc = openapi_document([_route("/x/{a:path}", "GET", "xGet"), _route("/x/{a:path}", "POST", "xPost")])
    assert set(doc["paths"]["/x/{a}"]) == {"get", "post"}
    # The copy is deep: editing the result leaves the routes' operations alone.
    doc["paths"]["/x/{a}"]["get"]["operationId"] = "changed"
    with pytest.raises(ValueError, match="twice"):
        openapi_document([_route("/x", "GET", "a"), _route("/x", "GET", "b")])
    with pytest.raises(ValueError, match="twice"):
        openapi_document([_route("/api/video/streams", "GET", "other")])
    with pytest.raises(ValueError, match="operationId"):
        openapi_document([_route("/y", "GET", "listStreams")])
    with pytest.raises(ValueError, match="operationId"):
        make_app(ApiServices(engine=None, extra_routes=(_route("/y", "GET", "z"), _route("/w", "GET", "z"))))  # type: ignore[arg-type]
