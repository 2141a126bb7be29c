"""The /v1/notifications contract of seed 000, through real HTTP and real SQLite."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from agent.clock import FakeClock
from tests.helpers import LIVE_KEY, TEST_KEY, auth, runtime

Client = TestClient[Any, Any]
SEND = "/v1/notifications/send"


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def send(client: Client, body: dict[str, Any], key: str = LIVE_KEY) -> tuple[int, Any]:
    resp = await client.post(SEND, json=body, headers=auth(key))
    return resp.status, await resp.json()


async def get(client: Client, nid: str, key: str = LIVE_KEY) -> dict[str, Any]:
    resp = await client.get(f"/v1/notifications/{nid}", headers=auth(key))
    assert resp.status == 200
    return dict(await resp.json())


def error_of(payload: dict[str, Any]) -> dict[str, Any]:
    err = payload["error"]
    assert set(err) == {"type", "code", "message", "param", "doc_url"}
    return err


async def test_send_returns_201_with_the_full_notification(client: Client) -> None:
    status, body = await send(client, {
        "channel": "slack", "to": "#engineering", "message": "CPU usage above 90%",
        "severity": "warning", "metadata": {"server": "prod-3", "value": 92},
        "priority": "high", "idempotency_key": "cpu_alert_prod3",
    })
    assert status == 201
    assert body["id"].startswith("ntf_")
    assert body["object"] == "notification"
    assert body["status"] == "queued"
    for k, v in {"channel": "slack", "to": "#engineering", "severity": "warning",
                 "priority": "high", "acknowledged": False, "credits_used": 1,
                 "idempotency_key": "cpu_alert_prod3", "template_id": None,
                 "metadata": {"server": "prod-3", "value": 92}}.items():
        assert body[k] == v, k
    assert body["created_at"].endswith("Z")


async def test_defaults_are_info_and_normal(client: Client) -> None:
    status, body = await send(client, {"channel": "console", "to": "ops", "message": "hi"})
    assert status == 201
    assert (body["severity"], body["priority"]) == ("info", "normal")


async def test_validation_errors_use_the_seed_envelope(client: Client) -> None:
    cases: list[tuple[Any, int, str, str | None]] = [
        ({"to": "x", "message": "m"}, 400, "missing_required_field", "channel"),
        ({"channel": "slack", "message": "m"}, 400, "missing_required_field", "to"),
        ({"channel": "slack", "to": "x"}, 400, "missing_required_field", "message"),
        ({"channel": "pager", "to": "x", "message": "m"}, 422, "invalid_channel", "channel"),
        ({"channel": "slack", "to": "x", "message": "m", "severity": "loud"}, 422,
         "invalid_severity", "severity"),
        ({"channel": "slack", "to": "x", "message": "m", "priority": "urgent"}, 422,
         "invalid_priority", "priority"),
        ({"channel": "slack", "to": 5, "message": "m"}, 400, "invalid_type", "to"),
        ({"channel": "slack", "to": "x", "message": "m", "metadata": []}, 400, "invalid_type",
         "metadata"),
        ({"channel": "slack", "to": "x", "message": "m", "bogus": 1}, 400, "unknown_parameter",
         "bogus"),
        ({"channel": "slack", "to": "x", "message": "m", "idempotency_key": "k" * 256}, 422,
         "invalid_value", "idempotency_key"),
        ({"channel": "webhook", "to": "not-a-url", "message": "m"}, 422, "invalid_recipient",
         "to"),
        ({"channel": "slack", "to": "x", "message": "m", "schedule_at": iso_in(0.2)}, 422,
         "invalid_schedule_at", "schedule_at"),
        ({"channel": "slack", "to": "x", "message": "m", "schedule_at": iso_in(31 * 86400)},
         422, "invalid_schedule_at", "schedule_at"),
        ({"channel": "slack", "to": "x", "message": "m", "schedule_at": "tomorrow"}, 400,
         "invalid_type", "schedule_at"),
        ({"channel": "slack", "to": "x", "template_id": "tpl_missing"}, 422,
         "template_not_found", "template_id"),
    ]
    for body, status, code, param in cases:
        got_status, payload = await send(client, body)
        err = error_of(payload)
        assert (got_status, err["code"], err["param"]) == (status, code, param), body
        assert err["type"] == ("validation_error" if status == 422 else "invalid_request_error")
        assert err["message"]


async def test_malformed_bodies_are_clear_4xx(client: Client) -> None:
    for raw, code in ((b"{", "invalid_json"), (b"", "missing_body"), (b"[1,2]", "invalid_json"),
                      (b"\xff\xfe", "invalid_json")):
        resp = await client.post(SEND, data=raw, headers=auth())
        assert resp.status == 400
        assert error_of(await resp.json())["code"] == code


async def test_oversize_body_is_413_in_the_envelope(client: Client) -> None:
    big = b'{"channel":"slack","to":"x","message":"' + b"a" * 2_000_000 + b'"}'
    resp = await client.post(SEND, data=io.BytesIO(big), headers=auth())
    assert resp.status == 413
    assert error_of(await resp.json())["code"] == "body_too_large"


async def test_auth_is_required_and_checked(client: Client) -> None:
    body = {"channel": "slack", "to": "x", "message": "m"}
    for headers, code in (({}, "missing_api_key"),
                          ({"Authorization": "Bearer sk_live_wrong"}, "invalid_api_key"),
                          ({"Authorization": f"Basic {LIVE_KEY}"}, "invalid_api_key"),
                          ({"Authorization": "Bearer"}, "invalid_api_key")):
        resp = await client.post(SEND, json=body, headers=headers)
        assert resp.status == 401
        err = error_of(await resp.json())
        assert (err["type"], err["code"]) == ("authentication_error", code)
    for path in ("/v1/notifications", "/v1/templates", "/v1/notifications/ntf_x"):
        assert (await client.get(path)).status == 401
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_unknown_routes_and_methods_get_the_envelope(client: Client) -> None:
    resp = await client.get("/v1/nothing-here", headers=auth())
    assert resp.status == 404
    assert error_of(await resp.json())["type"] == "not_found"
    resp = await client.patch("/v1/notifications/send", headers=auth())
    assert resp.status == 405
    assert error_of(await resp.json())["code"] == "method_not_allowed"


async def test_get_and_lifecycle_timestamps(manual: Client) -> None:
    client = manual
    _, created = await send(client, {"channel": "console", "to": "ops", "message": "hello"})
    await runtime(client).run_until_idle()
    body = await get(client, created["id"])
    assert body["status"] == "delivered"
    for k in ("created_at", "sent_at", "delivered_at", "read_at", "failed_at",
              "acknowledged_at", "failure_reason"):
        assert k in body
    assert body["sent_at"] and body["delivered_at"]
    assert body["failed_at"] is None and body["failure_reason"] is None
    resp = await client.get("/v1/notifications/ntf_doesnotexist", headers=auth())
    assert resp.status == 404
    assert error_of(await resp.json())["type"] == "not_found"


async def test_unbuilt_channel_fails_with_channel_not_configured(manual: Client) -> None:
    _, created = await send(manual, {"channel": "telegram", "to": "-1001234567890", "message": "x"})
    await runtime(manual).run_until_idle()
    body = await get(manual, created["id"])
    assert body["status"] == "failed"
    assert body["failure_reason"] == "channel_not_configured"
    assert body["failed_at"]


async def test_list_filters_order_and_cursors(manual: Client) -> None:
    client = manual
    ids = []
    for i in range(7):
        channel = "slack" if i % 2 else "console"
        _, b = await send(client, {"channel": channel, "to": "x", "message": f"m{i}"})
        ids.append(b["id"])
    resp = await client.get("/v1/notifications", headers=auth())
    page = await resp.json()
    assert page["object"] == "list"
    assert [n["id"] for n in page["data"]] == ids[::-1]
    assert page["has_more"] is False and page["next_cursor"] is None

    seen, cursor = [], None
    while True:
        q = "?limit=2&channel=console" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get("/v1/notifications" + q, headers=auth())).json()
        seen += [n["id"] for n in page["data"]]
        assert all(n["channel"] == "console" for n in page["data"])
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
        assert cursor.startswith("cur_")
    assert seen == [ids[i] for i in (6, 4, 2, 0)]

    assert await runtime(client).run_until_idle() == 7
    page = await (await client.get("/v1/notifications?status=queued", headers=auth())).json()
    assert page["data"] == []
    for status, expected in (("failed", [5, 3, 1]), ("delivered", [6, 4, 2, 0])):
        page = await (await client.get(f"/v1/notifications?status={status}",
                                       headers=auth())).json()
        assert [n["id"] for n in page["data"]] == [ids[i] for i in expected]
    future = iso_in(3600)
    page = await (await client.get(f"/v1/notifications?from={future}", headers=auth())).json()
    assert page["data"] == []
    page = await (await client.get(f"/v1/notifications?to={future}&limit=100",
                                   headers=auth())).json()
    assert len(page["data"]) == 7


async def test_list_rejects_bad_query_params(client: Client) -> None:
    for q, status, code in (("limit=0", 422, "invalid_value"), ("limit=101", 422, "invalid_value"),
                            ("limit=x", 400, "invalid_type"), ("channel=pager", 422,
                                                               "invalid_channel"),
                            ("status=gone", 422, "invalid_status"), ("from=yesterday", 400,
                                                                     "invalid_value"),
                            ("cursor=cur_garbage", 400, "invalid_cursor")):
        resp = await client.get(f"/v1/notifications?{q}", headers=auth())
        assert resp.status == status, q
        assert error_of(await resp.json())["code"] == code


async def test_cancel_queued_then_conflict_when_sent(manual: Client) -> None:
    client = manual
    _, scheduled = await send(client, {"channel": "console", "to": "ops", "message": "later",
                                       "schedule_at": iso_in(120)})
    resp = await client.delete(f"/v1/notifications/{scheduled['id']}", headers=auth())
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == scheduled["id"] and body["object"] == "notification"
    assert body["status"] == "cancelled" and body["cancelled_at"]
    # Seed 000: only queued notifications can be cancelled, so a second cancel is a conflict.
    resp = await client.delete(f"/v1/notifications/{scheduled['id']}", headers=auth())
    assert resp.status == 409
    err = error_of(await resp.json())
    assert (err["type"], err["code"], err["param"]) == (
        "conflict", "notification_not_cancellable", "id")
    assert "'cancelled'" in err["message"]

    _, now_ = await send(client, {"channel": "console", "to": "ops", "message": "now"})
    await runtime(client).run_until_idle()
    assert (await get(client, now_["id"]))["status"] == "delivered"
    resp = await client.delete(f"/v1/notifications/{now_['id']}", headers=auth())
    assert resp.status == 409
    err = error_of(await resp.json())
    assert (err["type"], err["code"]) == ("conflict", "notification_not_cancellable")
    assert (await client.delete("/v1/notifications/ntf_nope", headers=auth())).status == 404
    got = await (await client.get(f"/v1/notifications/{scheduled['id']}", headers=auth())).json()
    assert got["status"] == "cancelled"


async def test_idempotency_replay_conflict_and_scope(client: Client) -> None:
    body = {"channel": "slack", "to": "team", "message": "deploy done",
            "idempotency_key": "deploy_v241"}
    s1, first = await send(client, body)
    s2, again = await send(client, dict(reversed(list(body.items()))))  # same body, other order
    assert (s1, s2) == (201, 200)
    # The original, as it is now (it may have progressed since).
    assert (again["id"], again["created_at"]) == (first["id"], first["created_at"])
    s3, conflict = await send(client, {**body, "message": "something else"})
    assert s3 == 409
    assert error_of(conflict)["code"] == "idempotency_key_reused"
    # Keys are scoped to the API key: the test key may reuse it.
    s4, other = await send(client, body, key=TEST_KEY)
    assert s4 == 201 and other["id"] != first["id"]
    # Each key mode lists its own notifications only.
    page = await (await client.get("/v1/notifications", headers=auth())).json()
    assert [n["id"] for n in page["data"]] == [first["id"]]
    page = await (await client.get("/v1/notifications", headers=auth(TEST_KEY))).json()
    assert [n["id"] for n in page["data"]] == [other["id"]]


async def test_idempotency_keys_expire(manual: Client, clock: FakeClock) -> None:
    from agent.app import _purge_idempotency

    rt = runtime(manual)
    body = {"channel": "slack", "to": "team", "message": "x", "idempotency_key": "k1"}
    s1, first = await send(manual, body)
    clock.advance(86400 + 1)
    await _purge_idempotency(rt)
    assert rt.metrics.idempotency_expired._value.get() == 1
    s2, second = await send(manual, body)
    assert (s1, s2) == (201, 201)
    assert second["id"] != first["id"]


async def test_batch_accepts_all_and_returns_ids(client: Client) -> None:
    items = [{"channel": c, "to": "t", "message": f"m{i}"}
             for i, c in enumerate(["console", "push", "slack", "teams", "in-app"])]
    resp = await client.post("/v1/notifications/send-batch", json={"notifications": items},
                             headers=auth())
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "batch" and body["id"].startswith("bat_")
    assert (body["total"], body["accepted"], body["rejected"]) == (5, 5, 0)
    assert [n["channel"] for n in body["notifications"]] == [i["channel"] for i in items]
    assert all(n["status"] == "queued" and n["id"].startswith("ntf_")
               for n in body["notifications"])
    got = await (await client.get(f"/v1/notifications/{body['notifications'][2]['id']}",
                                  headers=auth())).json()
    assert got["batch_id"] == body["id"]


async def test_batch_validation_is_atomic_and_names_the_item(client: Client) -> None:
    items = [{"channel": "slack", "to": "t", "message": "ok"} for _ in range(4)]
    items[2] = {"channel": "pager", "to": "t", "message": "bad"}
    resp = await client.post("/v1/notifications/send-batch", json={"notifications": items},
                             headers=auth())
    assert resp.status == 422
    err = error_of(await resp.json())
    assert err["param"] == "notifications[2].channel"
    assert err["type"] == "validation_error"
    items[2] = {"channel": "slack", "message": "no recipient"}
    resp = await client.post("/v1/notifications/send-batch", json={"notifications": items},
                             headers=auth())
    assert resp.status == 422
    assert error_of(await resp.json())["param"] == "notifications[2].to"
    page = await (await client.get("/v1/notifications", headers=auth())).json()
    assert page["data"] == []


async def test_batch_limits(client: Client) -> None:
    over = [{"channel": "slack", "to": "t", "message": "m"}] * 1001
    for body, code in (({"notifications": over}, "batch_too_large"),
                       ({"notifications": []}, "empty_batch"),
                       ({}, "missing_required_field")):
        resp = await client.post("/v1/notifications/send-batch", json=body, headers=auth())
        assert resp.status == 422
        assert error_of(await resp.json())["code"] == code
    full = [{"channel": "slack", "to": "t", "message": "m"}] * 1000
    resp = await client.post("/v1/notifications/send-batch", json={"notifications": full},
                             headers=auth())
    assert resp.status == 200
    assert (await resp.json())["accepted"] == 1000


async def test_test_keys_simulate_delivery(manual: Client) -> None:
    client = manual
    _, created = await send(client, {"channel": "telegram", "to": "12345", "message": "m"},
                            key=TEST_KEY)
    assert created["simulated"] is True and created["credits_used"] == 0
    await runtime(client).run_until_idle()
    body = await get(client, created["id"], key=TEST_KEY)
    # Even an unbuilt channel "delivers": nothing leaves the host under a test key.
    assert body["status"] == "delivered" and body["simulated"] is True
    metrics = await (await client.get("/metrics")).text()
    assert 'alert_agent_notifications_total{channel="telegram",outcome="simulated"} 1.0' in metrics


async def test_idempotent_replay_skips_checks_its_original_passed(manual: Client,
                                                                    clock: FakeClock) -> None:
    at = datetime.fromtimestamp(clock.now() + 120, UTC).isoformat()
    body = {"channel": "console", "to": "ops", "message": "m", "schedule_at": at,
            "idempotency_key": "sched-1"}
    s1, first = await send(manual, body)
    clock.advance(119.5)  # the schedule is now 0.5 s ahead: below the minimum
    s2, again = await send(manual, body)
    resp = await manual.post("/v1/notifications/send-batch", headers=auth(),
                             json={"notifications": [body]})
    assert (s1, s2) == (201, 200) and again["id"] == first["id"]
    assert resp.status == 200
    assert (await resp.json())["notifications"][0]["id"] == first["id"]
    s3, other = await send(manual, {**body, "message": "different"})
    assert s3 == 409 and error_of(other)["code"] == "idempotency_key_reused"


async def test_non_utf8_credentials_are_401_not_500(client: Client) -> None:
    import asyncio

    async def raw_status(path: bytes, auth_value: bytes) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + auth_value + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return int(line.split()[1])

    assert await raw_status(b"/v1/notifications", b"\xff\xfe") == 401
    assert await raw_status(b"/v1/notifications", b"sk_live_\xc3\x28") == 401
