"""/v1/alerts (seed 002): post, list with filters, get with notifications, resolve."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.helpers import auth, runtime, wait_until

Client = TestClient[Any, Any]
RULES = """
defaults:
  group_wait: 0s
  group_interval: 0s
  notify: [{channel: in-app, to: ops}]
routes:
  - name: web
    matchers: ['monitor_id=~"web-.*"']
    group_by: [monitor_id]
    notify: [{channel: in-app, to: web-team}, {channel: console, to: web-team}]
"""


@pytest.fixture
async def aclient(settings: Settings) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def post(client: Client, **body: Any) -> tuple[int, Any]:
    resp = await client.post("/v1/alerts", json=body, headers=auth())
    return resp.status, await resp.json()


async def test_create_get_and_notifications(aclient: Client) -> None:
    status, body = await post(aclient, monitor_id="web-1", type="down",
                              message="Website is down", severity="critical",
                              threshold={"value": 1000, "operator": ">", "duration": 300})
    assert status == 201
    a = body["data"]
    assert a["id"].startswith("alt_") and a["status"] == "active"
    assert (a["monitor_id"], a["type"], a["message"]) == ("web-1", "down", "Website is down")
    assert a["severity"] == "critical" and a["resolved_at"] is None
    assert a["extra"]["threshold"]["value"] == 1000

    async def notified() -> bool:
        got = await (await aclient.get(f"/v1/alerts/{a['id']}", headers=auth())).json()
        return len(got["data"]["notifications"]) == 2

    await wait_until(notified)
    got = await (await aclient.get(f"/v1/alerts/{a['id']}", headers=auth())).json()
    assert {n["channel"] for n in got["data"]["notifications"]} == {"in-app", "console"}
    # Posting the same monitor again is the same open alert, not a new one.
    status, again = await post(aclient, monitor_id="web-1", type="down", message="still down")
    assert status == 200 and again["data"]["id"] == a["id"]


async def test_channels_restrict_targets(aclient: Client) -> None:
    _, body = await post(aclient, monitor_id="web-2", type="slow", channels=["console"])

    async def one() -> bool:
        got = await (await aclient.get(f"/v1/alerts/{body['data']['id']}",
                                       headers=auth())).json()
        return [n["channel"] for n in got["data"]["notifications"]] == ["console"]

    await wait_until(one)


async def test_list_filters_and_pages(aclient: Client) -> None:
    for i in range(5):
        await post(aclient, monitor_id=f"mon-{i % 2}", type="error", message=f"e{i}",
                   labels={"n": str(i)})
    listed = await (await aclient.get("/v1/alerts?per_page=1&page=2", headers=auth())).json()
    assert listed["meta"] == {"page": 2, "per_page": 1, "total": 2}
    only = await (await aclient.get("/v1/alerts?monitor_id=mon-1", headers=auth())).json()
    assert [a["monitor_id"] for a in only["data"]] == ["mon-1"]
    for q, status in (("status=open", 422), ("per_page=0", 422), ("page=x", 400)):
        assert (await aclient.get(f"/v1/alerts?{q}", headers=auth())).status == status


async def test_resolve_by_put_and_by_up(aclient: Client) -> None:
    _, body = await post(aclient, monitor_id="web-3", type="down", message="down")
    aid = body["data"]["id"]
    resp = await aclient.put(f"/v1/alerts/{aid}", headers=auth(),
                             json={"status": "resolved", "message": "Website is back up"})
    assert resp.status == 200
    got = (await resp.json())["data"]
    assert got["status"] == "resolved" and got["resolved_at"]
    assert got["message"] == "Website is back up"
    active = await (await aclient.get("/v1/alerts?status=active", headers=auth())).json()
    assert aid not in [a["id"] for a in active["data"]]

    _, body = await post(aclient, monitor_id="web-4", type="down", message="down")
    status, up = await post(aclient, monitor_id="web-4", type="up", message="back")
    assert status == 200 and up["data"]["id"] == body["data"]["id"]
    assert up["data"]["status"] == "resolved"
    status, nothing = await post(aclient, monitor_id="web-4", type="up")
    assert status == 409 and nothing["error"]["code"] == "no_active_alert"
    await runtime(aclient).grouper.run_until_idle()


async def test_validation_and_not_found(aclient: Client) -> None:
    status, body = await post(aclient, monitor_id="x", type="meltdown")
    assert status == 422 and body["error"]["param"] == "type"
    status, body = await post(aclient, type="down")
    assert status == 400 and body["error"]["param"] == "monitor_id"
    resp = await aclient.get("/v1/alerts/alt_nope", headers=auth())
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "alert_not_found"
    resp = await aclient.put("/v1/alerts/alt_nope", headers=auth(), json={"status": "resolved"})
    assert resp.status == 404
    assert (await aclient.get("/v1/alerts")).status == 401


async def test_idempotency_key_replays_and_conflicts(aclient: Client) -> None:
    body = {"monitor_id": "web-9", "type": "down", "message": "down",
            "idempotency_key": "incident-42"}
    status, first = await post(aclient, **body)
    assert status == 201
    aid = first["data"]["id"]
    await runtime(aclient).grouper.run_until_idle()
    # The same request again (keys in another order): 200 with the original, nothing new.
    status, again = await post(aclient, **dict(reversed(list(body.items()))))
    assert status == 200 and again["data"]["id"] == aid
    assert again["data"]["receive_count"] == 1
    await runtime(aclient).grouper.run_until_idle()
    got = await (await aclient.get(f"/v1/alerts/{aid}", headers=auth())).json()
    assert len(got["data"]["notifications"]) == 2
    # Even once the alert is resolved, a retried request does not open a new one.
    resp = await aclient.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
    assert resp.status == 200
    status, late = await post(aclient, **body)
    assert status == 200 and late["data"]["id"] == aid
    assert late["data"]["status"] == "resolved"
    listed = await (await aclient.get("/v1/alerts?monitor_id=web-9", headers=auth())).json()
    assert listed["meta"]["total"] == 1
    # The same key with another body is a conflict, and changes nothing.
    status, conflict = await post(aclient, **{**body, "message": "other"})
    assert status == 409
    assert (conflict["error"]["code"], conflict["error"]["param"]) == (
        "idempotency_key_reused", "idempotency_key")
    # Without a key the same body is a new report: the resolved alert re-opens as a new one.
    status, fresh = await post(aclient, monitor_id="web-9", type="down", message="down")
    assert status == 201 and fresh["data"]["id"] != aid


async def test_idempotency_key_of_a_resolve_and_validation(aclient: Client) -> None:
    _, opened = await post(aclient, monitor_id="web-8", type="down")
    up = {"monitor_id": "web-8", "type": "up", "idempotency_key": "up-1"}
    status, first = await post(aclient, **up)
    assert status == 200 and first["data"]["id"] == opened["data"]["id"]
    # Without the key this would be 409 no_active_alert: the retry is answered as the original.
    status, again = await post(aclient, **up)
    assert status == 200 and again["data"]["id"] == opened["data"]["id"]
    # A refused request binds nothing: the key stays free for a request that succeeds.
    status, body = await post(aclient, monitor_id="web-7", type="up", idempotency_key="k")
    assert status == 409 and body["error"]["code"] == "no_active_alert"
    status, _ = await post(aclient, monitor_id="web-7", type="down", idempotency_key="k")
    assert status == 201
    for bad in ("", "x" * 256, 5):
        status, body = await post(aclient, monitor_id="web-6", type="down", idempotency_key=bad)
        assert status in (400, 422) and body["error"]["param"] == "idempotency_key", body
