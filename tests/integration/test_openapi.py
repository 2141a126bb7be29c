"""``GET /openapi.json``: served without auth, covers exactly the app's routes, and what the
handlers answer validates against the response models the document is built from.

The fuzz test (tests/e2e/test_fuzz.py) checks every answer against the document at scale; these
checks are the fast, deterministic floor under it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import BaseModel

from agent.api import hookmodels as hm
from agent.api import schemas as s
from agent.api.openapi import OPERATIONS, build_document
from agent.app import create_app
from agent.ingest import alertmanager, grafana
from agent.settings import Settings
from tests.helpers import TEST_KEY, auth

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
# aiohttp adds HEAD to every GET; the document leaves those implicit.
IMPLICIT = {"HEAD"}


def registered_routes(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    return {(r.method, r.resource.canonical) for r in app.router.routes()
            if r.resource is not None and r.method not in IMPLICIT}


def test_every_registered_route_is_documented_and_nothing_else(settings: Settings) -> None:
    documented = {(op.method, op.path) for op in OPERATIONS}
    routes = registered_routes(settings)
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations that no route serves"
    doc = build_document(settings.api)
    in_doc = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert in_doc == routes


def test_operation_ids_are_unique_and_links_point_at_them(settings: Settings) -> None:
    ids = [op.operation_id for op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for op in OPERATIONS:
        assert set(op.links) <= set(ids), op.operation_id


def test_every_reference_resolves(settings: Settings) -> None:
    doc = build_document(settings.api)
    text = json.dumps(doc)
    for kind in ("schemas", "headers"):
        prefix = f'"#/components/{kind}/'
        for chunk in text.split(prefix)[1:]:
            name = chunk.split('"', 1)[0]
            assert name in doc["components"][kind], f"dangling reference to {kind}/{name}"


async def test_document_is_served_without_auth(client: TestClient[Any, Any],
                                               settings: Settings) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    assert doc == json.loads(json.dumps(build_document(settings.api)))
    send = doc["paths"]["/v1/notifications/send"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendRequest"}
    batch = doc["paths"]["/v1/notifications/send-batch"]["post"]["requestBody"]
    assert batch["content"]["application/json"]["schema"]["properties"]["notifications"][
        "maxItems"] == settings.api.max_batch_size


@pytest.mark.parametrize("name", ["alertmanager-firing.json", "alertmanager-resolved.json"])
def test_real_alertmanager_payloads_fit_the_documented_model(name: str) -> None:
    payload = json.loads((SAMPLES / name).read_text())
    hm.AlertmanagerWebhook.model_validate(payload)
    assert alertmanager.parse(payload).alerts


def test_real_grafana_payload_fits_the_documented_model() -> None:
    payload = json.loads((SAMPLES / "grafana-firing.json").read_text())
    hm.GrafanaWebhook.model_validate(payload)
    legacy = {"ruleName": "cpu", "state": "alerting", "ruleId": 3,
              "evalMatches": [{"metric": "cpu", "value": 91.5, "tags": {"host": "a"}}]}
    hm.GrafanaLegacyWebhook.model_validate(legacy)
    assert grafana.parse(payload).alerts and grafana.parse(legacy).alerts


def documented_statuses(method: str, path: str) -> set[int]:
    bare = path.split("?", 1)[0]
    for op in OPERATIONS:
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(op.path))
        if op.method == method and re.fullmatch(pattern, bare):
            return op.statuses
    raise AssertionError(f"{method} {bare} is not documented")


async def _json(client: TestClient[Any, Any], method: str, path: str, model: type[BaseModel],
                status: int = 200, key: str | None = None, **kw: Any) -> dict[str, Any]:
    resp = await client.request(method, path, headers=auth(key) if key else auth(), **kw)
    body = await resp.json()
    assert resp.status == status, body
    assert status in documented_statuses(method, path)
    model.model_validate(body)  # extra fields are forbidden: a new field must be documented
    return dict(body)


async def test_answers_validate_against_the_response_models(
    client: TestClient[Any, Any]
) -> None:
    c = client
    ntf = await _json(c, "POST", "/v1/notifications/send", s.NotificationOut, 201,
                      json={"channel": "in-app", "to": "ops", "message": "hi"})
    await _json(c, "GET", f"/v1/notifications/{ntf['id']}", s.NotificationOut)
    await _json(c, "GET", "/v1/notifications", s.NotificationList)
    await _json(c, "POST", "/v1/notifications/send-batch", s.BatchOut, key=TEST_KEY,
                json={"notifications": [{"channel": "console", "to": "x", "message": "m"}]})
    tpl = await _json(c, "POST", "/v1/templates", s.TemplateOut, 201,
                      json={"name": "t1", "channel": "console", "body": "{{ a }}"})
    await _json(c, "PUT", f"/v1/templates/{tpl['id']}", s.TemplateOut, json={"body": "x"})
    for method, path in (("POST", "/v1/templates"), ("PUT", f"/v1/templates/{tpl['id']}"),
                         ("DELETE", f"/v1/templates/{tpl['id']}"), ("POST", "/-/reload")):
        denied = await _json(c, method, path, s.ErrorEnvelope, 403, key=TEST_KEY,
                             json={"name": "t2", "channel": "console", "body": "x"})
        assert denied["error"]["code"] == "live_key_required"
    await _json(c, "GET", "/v1/templates", s.TemplateList)
    await _json(c, "DELETE", f"/v1/templates/{tpl['id']}", s.TemplateDeleted)
    await _json(c, "GET", "/v1/inbox?to=ops", s.InboxList)
    alert = await _json(c, "POST", "/v1/alerts", s.AlertData, 201,
                        json={"monitor_id": "m1", "type": "down", "message": "x"})
    await _json(c, "GET", f"/v1/alerts/{alert['data']['id']}", s.AlertDetail)
    await _json(c, "PUT", f"/v1/alerts/{alert['data']['id']}", s.AlertData,
                json={"status": "resolved"})
    await _json(c, "GET", "/v1/alerts", s.AlertList)
    await _json(c, "GET", "/v1/rules/status", s.RulesStatus)
    await _json(c, "POST", "/-/reload", s.RulesStatus)
    await _json(c, "POST", "/hooks/alertmanager", s.HookResult,
                json=json.loads((SAMPLES / "alertmanager-firing.json").read_text()))
    err = await _json(c, "GET", "/v1/notifications/ntf_nope", s.ErrorEnvelope, 404)
    assert err["error"]["code"] == "resource_missing"
    await _json(c, "GET", "/healthz", s.Health)
    await _json(c, "GET", "/readyz", s.Ready)
