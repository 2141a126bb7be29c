"""Key scopes: an ``sk_test_`` key sees and touches only test-mode rows and pages nobody.

Live rows answer 404 to a test key (no existence oracle); shared configuration (templates,
rule reloads) needs a live key (403).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.helpers import LIVE_KEY, TEST_KEY, Sink, auth, runtime, wait_until

Client = TestClient[Any, Any]
_TOMORROW = (datetime.now(UTC) + timedelta(days=1)).isoformat()


async def _send(client: Client, key: str, **body: Any) -> dict[str, Any]:
    body = {"channel": "console", "to": "ops", "message": "hi"} | body
    resp = await client.post("/v1/notifications/send", json=body, headers=auth(key))
    assert resp.status == 201, await resp.text()
    out: dict[str, Any] = await resp.json()
    return out


async def test_test_key_cannot_see_or_cancel_live_notifications(client: Client) -> None:
    live = await _send(client, LIVE_KEY, schedule_at=_TOMORROW)
    test = await _send(client, TEST_KEY, schedule_at=_TOMORROW)
    # Read: the other mode's row does not exist for this key.
    got = await client.get(f"/v1/notifications/{live['id']}", headers=auth(TEST_KEY))
    assert got.status == 404
    assert (await got.json())["error"]["type"] == "not_found"
    got = await client.get(f"/v1/notifications/{test['id']}", headers=auth(LIVE_KEY))
    assert got.status == 404
    # List: each key lists its own mode only.
    listed = await (await client.get("/v1/notifications", headers=auth(TEST_KEY))).json()
    assert [n["id"] for n in listed["data"]] == [test["id"]]
    listed = await (await client.get("/v1/notifications", headers=auth(LIVE_KEY))).json()
    assert [n["id"] for n in listed["data"]] == [live["id"]]
    # Cancel: a test key cannot cancel a live notification, which stays queued.
    resp = await client.delete(f"/v1/notifications/{live['id']}", headers=auth(TEST_KEY))
    assert resp.status == 404
    still = await client.get(f"/v1/notifications/{live['id']}", headers=auth(LIVE_KEY))
    assert (await still.json())["status"] == "queued"
    resp = await client.delete(f"/v1/notifications/{test['id']}", headers=auth(TEST_KEY))
    assert resp.status == 200


async def test_inbox_is_scoped_by_mode(manual: Client) -> None:
    client = manual
    live = await _send(client, LIVE_KEY, channel="in-app", to="ana", message="live")
    test = await _send(client, TEST_KEY, channel="in-app", to="ana", message="test")
    assert await runtime(client).run_until_idle() == 2
    as_test = await (await client.get("/v1/inbox?to=ana", headers=auth(TEST_KEY))).json()
    as_live = await (await client.get("/v1/inbox?to=ana", headers=auth(LIVE_KEY))).json()
    assert [i["notification_id"] for i in as_test["data"]] == [test["id"]]
    assert [i["notification_id"] for i in as_live["data"]] == [live["id"]]


async def test_test_key_reads_and_uses_templates_but_cannot_change_them(manual: Client) -> None:
    client = manual
    body = {"name": "disk", "channel": "in-app", "body": "Disk {{ pct }}%"}
    resp = await client.post("/v1/templates", json=body, headers=auth(TEST_KEY))
    assert resp.status == 403
    err = (await resp.json())["error"]
    assert (err["type"], err["code"]) == ("forbidden", "live_key_required")
    resp = await client.post("/v1/templates", json=body, headers=auth(LIVE_KEY))
    tpl = await resp.json()
    assert resp.status == 201
    for method, extra in (("put", {"json": {"body": "x"}}), ("delete", {})):
        resp = await getattr(client, method)(f"/v1/templates/{tpl['id']}",
                                             headers=auth(TEST_KEY), **extra)
        assert resp.status == 403, method
    got = await client.get(f"/v1/templates/{tpl['id']}", headers=auth(TEST_KEY))
    assert got.status == 200 and (await got.json())["body"] == "Disk {{ pct }}%"
    listed = await (await client.get("/v1/templates", headers=auth(TEST_KEY))).json()
    assert [t["id"] for t in listed["data"]] == [tpl["id"]]
    sent = await _send(client, TEST_KEY, channel="in-app", to="ana", template_id=tpl["id"],
                       metadata={"pct": 93}, message=None)
    await runtime(client).run_until_idle()
    resp = await client.get(f"/v1/notifications/{sent['id']}", headers=auth(TEST_KEY))
    done = await resp.json()
    assert done["status"] == "delivered"
    assert done["simulated"] is True
    inbox = await (await client.get("/v1/inbox?to=ana", headers=auth(TEST_KEY))).json()
    assert [i["body"] for i in inbox["data"]] == ["Disk 93%"]


async def test_reload_needs_a_live_key(client: Client) -> None:
    resp = await client.post("/-/reload", headers=auth(TEST_KEY))
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "live_key_required"
    assert (await client.post("/-/reload", headers=auth(LIVE_KEY))).status == 200


RULES = """
defaults:
  group_wait: 0s
  group_interval: 0s
routes:
  - matchers: ['monitor_id=~"web-.*"']
    group_by: [monitor_id]
    notify: [{{channel: webhook, to: "{url}"}}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [monitor_id]
"""


@pytest.fixture
async def aclient(settings: Settings, sink: Sink) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES.format(url=sink.url))
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def _alert(client: Client, key: str, **body: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/alerts", json=body, headers=auth(key))
    out: dict[str, Any] = await resp.json()
    return resp.status, out


async def _notifications(client: Client, aid: str, key: str) -> list[dict[str, Any]]:
    got = await (await client.get(f"/v1/alerts/{aid}", headers=auth(key))).json()
    out: list[dict[str, Any]] = got["data"]["notifications"]
    return out


async def test_test_key_alerts_are_simulated_end_to_end(aclient: Client, sink: Sink) -> None:
    status, body = await _alert(aclient, TEST_KEY, monitor_id="web-1", type="down",
                                severity="critical")
    assert status == 201
    test_alert = body["data"]
    assert test_alert["simulated"] is True

    async def notified() -> bool:
        ns = await _notifications(aclient, test_alert["id"], TEST_KEY)
        return len(ns) == 1 and ns[0]["status"] == "delivered"

    await wait_until(notified)
    (n,) = await _notifications(aclient, test_alert["id"], TEST_KEY)
    assert n["simulated"] is True
    # The same monitor posted with a live key is a different alert that pages for real.
    status, body = await _alert(aclient, LIVE_KEY, monitor_id="web-1", type="down",
                                severity="warning")
    assert status == 201
    live_alert = body["data"]
    assert live_alert["id"] != test_alert["id"] and live_alert["simulated"] is False
    # ...and the test alert (critical, same monitor) does not inhibit it.
    await wait_until(lambda: len(sink.received) == 1)
    assert sink.received[0]["path"] == "/hook"
    ns = await _notifications(aclient, live_alert["id"], LIVE_KEY)
    assert [x["simulated"] for x in ns] == [False]


async def test_test_key_cannot_see_or_resolve_live_alerts(aclient: Client) -> None:
    _, body = await _alert(aclient, LIVE_KEY, monitor_id="db-1", type="down")
    live = body["data"]
    _, body = await _alert(aclient, TEST_KEY, monitor_id="db-2", type="down")
    test = body["data"]
    assert (await aclient.get(f"/v1/alerts/{live['id']}", headers=auth(TEST_KEY))).status == 404
    assert (await aclient.get(f"/v1/alerts/{test['id']}", headers=auth(LIVE_KEY))).status == 404
    resp = await aclient.put(f"/v1/alerts/{live['id']}", json={"status": "resolved"},
                             headers=auth(TEST_KEY))
    assert resp.status == 404
    got = await (await aclient.get(f"/v1/alerts/{live['id']}", headers=auth(LIVE_KEY))).json()
    assert got["data"]["status"] == "active"
    listed = await (await aclient.get("/v1/alerts", headers=auth(TEST_KEY))).json()
    assert [a["id"] for a in listed["data"]] == [test["id"]]
    assert listed["meta"]["total"] == 1
    listed = await (await aclient.get("/v1/alerts", headers=auth(LIVE_KEY))).json()
    assert [a["id"] for a in listed["data"]] == [live["id"]]
    # A test key's "up" resolves only its own monitor's alert.
    status, _ = await _alert(aclient, TEST_KEY, monitor_id="db-1", type="up")
    assert status == 409
    resp = await aclient.put(f"/v1/alerts/{test['id']}", json={"status": "resolved"},
                             headers=auth(TEST_KEY))
    assert resp.status == 200 and (await resp.json())["data"]["status"] == "resolved"
