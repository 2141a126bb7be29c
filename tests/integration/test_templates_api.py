"""The /v1/templates contract of seed 000, and templates used by notifications."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient

from agent.clock import FakeClock
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]
CPU_BODY = ("CPU Alert on {{server}}\nCurrent: {{value}}% | Threshold: {{threshold}}%\n"
            "Duration: {{duration}}\nDashboard: {{dashboard_url}}")


async def create(client: Client, **fields: Any) -> tuple[int, Any]:
    body = {"name": "cpu_alert", "channel": "slack", "body": CPU_BODY,
            "description": "CPU threshold alert", "metadata": {"team": "infra"}} | fields
    resp = await client.post("/v1/templates", json=body, headers=auth())
    return resp.status, await resp.json()


async def test_create_extracts_variables_in_order(client: Client) -> None:
    status, t = await create(client)
    assert status == 201
    assert t["id"].startswith("tpl_") and t["object"] == "template"
    assert t["variables"] == ["server", "value", "threshold", "duration", "dashboard_url"]
    assert (t["usage_count"], t["last_used_at"]) == (0, None)
    assert t["created_at"] == t["updated_at"]
    assert t["metadata"] == {"team": "infra"} and t["description"] == "CPU threshold alert"
    got = await (await client.get(f"/v1/templates/{t['id']}", headers=auth())).json()
    assert got == t


async def test_template_validation(client: Client) -> None:
    cases = [
        ({"name": "bad name!"}, 422, "name"),
        ({"name": "x" * 65}, 422, "name"),
        ({"body": "x" * 4097}, 422, "body"),
        ({"description": "d" * 257}, 422, "description"),
        ({"channel": "fax"}, 422, "channel"),
        ({"body": "{{ unclosed"}, 422, "body"),
    ]
    for fields, status, param in cases:
        got_status, body = await create(client, **fields)
        assert (got_status, body["error"]["param"]) == (status, param), fields
    ok_status, _ = await create(client, name="A-z_09" + "x" * 58, body="b" * 4096)
    assert ok_status == 201
    status, body = await create(client, name="A-z_09" + "x" * 58)
    assert status == 409 and body["error"]["code"] == "template_name_taken"


async def test_update_reextracts_and_keeps_other_fields(client: Client) -> None:
    _, t = await create(client)
    new_body = CPU_BODY.replace("Dashboard", "Runbook: {{runbook_url}}\nDashboard")
    resp = await client.put(f"/v1/templates/{t['id']}", headers=auth(),
                            json={"body": new_body, "description": "with runbook"})
    assert resp.status == 200
    u = await resp.json()
    assert u["variables"] == ["server", "value", "threshold", "duration", "runbook_url",
                              "dashboard_url"]
    assert (u["name"], u["channel"], u["metadata"]) == ("cpu_alert", "slack", {"team": "infra"})
    assert u["description"] == "with runbook"
    assert u["updated_at"] >= t["updated_at"]
    resp = await client.put(f"/v1/templates/{t['id']}", headers=auth(), json={"metadata": {}})
    assert (await resp.json())["metadata"] == {}
    resp = await client.put(f"/v1/templates/{t['id']}", headers=auth(), json={"channel": "x"})
    assert resp.status == 400  # channel is not updatable (seed): unknown parameter
    resp = await client.put("/v1/templates/tpl_nope", headers=auth(), json={"name": "n"})
    assert resp.status == 404


async def test_delete(client: Client) -> None:
    _, t = await create(client)
    resp = await client.delete(f"/v1/templates/{t['id']}", headers=auth())
    assert resp.status == 200
    assert await resp.json() == {"id": t["id"], "object": "template", "deleted": True}
    assert (await client.get(f"/v1/templates/{t['id']}", headers=auth())).status == 404
    assert (await client.delete(f"/v1/templates/{t['id']}", headers=auth())).status == 404


async def test_list_channel_filter_and_cursor(client: Client) -> None:
    for i in range(5):
        await create(client, name=f"t{i}", channel="slack" if i % 2 else "email")
    page = await (await client.get("/v1/templates?channel=email&limit=2",
                                   headers=auth())).json()
    assert [t["name"] for t in page["data"]] == ["t4", "t2"] and page["has_more"]
    page = await (await client.get(f"/v1/templates?channel=email&limit=2&cursor="
                                   f"{page['next_cursor']}", headers=auth())).json()
    assert [t["name"] for t in page["data"]] == ["t0"] and not page["has_more"]
    # A notifications cursor is not a templates cursor.
    resp = await client.get("/v1/notifications?limit=1", headers=auth())
    assert resp.status == 200


async def test_send_with_template_renders_counts_and_snapshots(manual: Client, clock: FakeClock,
                                                               sink: Any) -> None:
    client = manual
    _, t = await create(client, name="hook_tpl", channel="webhook",
                        body="{{server}} at {{value}}%")
    meta = {"server": "prod-3", "value": 92}
    resp = await client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "webhook", "to": sink.url, "template_id": t["id"], "metadata": meta,
        "schedule_at": datetime.fromtimestamp(clock.now() + 60, UTC).isoformat()})
    assert resp.status == 201
    queued = await resp.json()
    got = await (await client.get(f"/v1/templates/{t['id']}", headers=auth())).json()
    assert got["usage_count"] == 1 and got["last_used_at"]
    # Changing and then deleting the template does not touch the queued notification.
    await client.put(f"/v1/templates/{t['id']}", headers=auth(), json={"body": "changed {{x}}"})
    await client.delete(f"/v1/templates/{t['id']}", headers=auth())
    clock.advance(60)
    assert await runtime(client).run_until_idle() == 1
    assert len(sink.received) == 1
    import orjson

    delivered = orjson.loads(sink.received[0]["body"])
    assert delivered["message"] == "prod-3 at 92%"
    n = await (await client.get(f"/v1/notifications/{queued['id']}", headers=auth())).json()
    assert n["status"] == "delivered"
    assert n["message"] == "prod-3 at 92%" and n["template_id"] == t["id"]


async def test_send_with_template_checks_channel_and_variables(client: Client) -> None:
    _, t = await create(client)
    base = {"channel": "slack", "to": "#ops", "template_id": t["id"]}
    resp = await client.post("/v1/notifications/send", headers=auth(),
                             json=base | {"metadata": {"server": "a"}})
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert err["code"] == "missing_template_variables" and "threshold" in err["message"]
    resp = await client.post("/v1/notifications/send", headers=auth(),
                             json=base | {"channel": "email", "to": "a@b.c"})
    assert (await resp.json())["error"]["code"] == "template_channel_mismatch"
    assert runtime(client).metrics.notifications_accepted.labels("slack")._value.get() == 0


async def test_create_is_idempotent(client: Client) -> None:
    s1, first = await create(client, idempotency_key="tpl-1")
    s2, again = await create(client, idempotency_key="tpl-1")
    assert (s1, s2) == (201, 200) and again["id"] == first["id"]
    s3, other = await create(client, idempotency_key="tpl-1", body="another {{x}}")
    assert s3 == 409 and other["error"]["code"] == "idempotency_key_reused"
    page = await (await client.get("/v1/templates", headers=auth())).json()
    assert len(page["data"]) == 1
