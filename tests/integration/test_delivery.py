"""Delivery through the outbox: webhook signing and retries, in-app inbox, scheduling."""

from __future__ import annotations

import hashlib
import hmac
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.observability import configure_logging
from agent.settings import Settings
from tests.helpers import (
    LIVE_KEY,
    TEST_KEY,
    WEBHOOK_SECRET,
    Sink,
    auth,
    runtime,
    wait_status,
)

Client = TestClient[Any, Any]


async def send(client: Client, **body: Any) -> dict[str, Any]:
    resp = await client.post("/v1/notifications/send", json=body, headers=auth())
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def fetch(client: Client, nid: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/v1/notifications/{nid}", headers=auth())).json())


async def test_webhook_posts_signed_json(manual: Client, sink: Sink) -> None:
    n = await send(manual, channel="webhook", to=sink.url, message="disk full",
                   severity="critical", metadata={"host": "db1"})
    assert await runtime(manual).run_until_idle() == 1
    done = await fetch(manual, n["id"])
    assert done["status"] == "delivered"
    assert len(sink.received) == 1
    req = sink.received[0]
    expected = hmac.new(WEBHOOK_SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Alert-Agent-Signature"] == f"sha256={expected}"
    assert req["headers"]["Idempotency-Key"] == n["id"]
    assert req["headers"]["Content-Type"] == "application/json"
    body = orjson.loads(req["body"])
    assert body | {"created_at": None} == {
        "id": n["id"], "object": "notification", "channel": "webhook", "to": sink.url,
        "message": "disk full", "subject": None, "severity": "critical", "priority": "normal",
        "metadata": {"host": "db1"}, "created_at": None}
    assert done["attempt_count"] == 1 and done["sent_at"] and done["delivered_at"]


async def test_webhook_retries_5xx_then_delivers(manual: Client, clock: FakeClock,
                                                 sink: Sink) -> None:
    client = manual
    sink.script = [(500, {}), (503, {})]
    n = await send(client, channel="webhook", to=sink.url, message="m")
    for attempts in (1, 2):
        await runtime(client).run_until_idle()
        queued = await fetch(client, n["id"])
        assert (queued["status"], queued["attempt_count"]) == ("queued", attempts)
        assert len(sink.received) == attempts
        clock.advance(0.2)  # backoff_max_seconds of the test settings
    await runtime(client).run_until_idle()
    done = await fetch(client, n["id"])
    assert done["status"] == "delivered"
    assert len(sink.received) == 3 and done["attempt_count"] == 3
    # Every attempt carries the same idempotency key, so the receiver can deduplicate.
    assert {r["headers"]["Idempotency-Key"] for r in sink.received} == {n["id"]}
    metrics = await (await client.get("/metrics")).text()
    assert ('alert_agent_notifications_total{channel="webhook",outcome="retried"} 2.0'
            in metrics)
    assert ('alert_agent_delivery_failures_total{channel="webhook",reason="provider_unavailable"}'
            ' 2.0' in metrics)


async def test_webhook_honours_retry_after(manual: Client, clock: FakeClock,
                                           sink: Sink) -> None:
    sink.script = [(429, {"Retry-After": "1"})]
    n = await send(manual, channel="webhook", to=sink.url, message="m")
    await runtime(manual).run_until_idle()
    # The configured backoff is 0.05-0.2 s: only Retry-After keeps it queued for a second.
    clock.advance(0.95)
    assert await runtime(manual).run_until_idle() == 0
    assert len(sink.received) == 1
    clock.advance(0.15)  # Retry-After and at most a tenth more
    assert await runtime(manual).run_until_idle() == 1
    done = await fetch(manual, n["id"])
    assert done["status"] == "delivered"
    # A 429 is a wait the far side asked for: it spends no attempt, and is counted as a wait.
    assert len(sink.received) == 2 and done["attempt_count"] == 1
    metrics = await (await manual.get("/metrics")).text()
    assert 'alert_agent_notifications_total{channel="webhook",outcome="deferred"} 1.0' in metrics


async def test_webhook_4xx_is_permanent(manual: Client, sink: Sink) -> None:
    sink.script = [(400, {})]
    n = await send(manual, channel="webhook", to=sink.url, message="m")
    await runtime(manual).run_until_idle()
    done = await fetch(manual, n["id"])
    assert done["status"] == "failed"
    assert done["failure_reason"] == "provider_rejected"
    assert "HTTP 400" in done["failure_details"]
    assert len(sink.received) == 1 and done["failed_at"]


async def retry_until_final(client: Client, clock: FakeClock, nid: str) -> dict[str, Any]:
    """Deliver, advancing the clock past each back-off, until the notification is final."""
    for _ in range(20):
        await runtime(client).run_until_idle()
        got = await fetch(client, nid)
        if got["status"] != "queued":
            return got
        clock.advance(0.2)  # backoff_max_seconds of the test settings
    raise AssertionError(f"{nid} still queued after 20 back-offs")


async def test_retries_are_bounded(manual: Client, clock: FakeClock, sink: Sink) -> None:
    sink.script = [(502, {})] * 10
    n = await send(manual, channel="webhook", to=sink.url, message="m")
    done = await retry_until_final(manual, clock, n["id"])
    assert done["status"] == "failed"
    assert len(sink.received) == 5 == done["attempt_count"]
    assert done["failure_reason"] == "provider_unavailable"
    assert done["failure_details"].startswith("gave up after 5 attempts")


async def test_unreachable_webhook_is_a_network_error(manual: Client, clock: FakeClock) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    n = await send(manual, channel="webhook", to=f"http://127.0.0.1:{port}/x", message="m")
    done = await retry_until_final(manual, clock, n["id"])
    assert done["status"] == "failed"
    assert done["failure_reason"] == "network_error" and done["attempt_count"] == 5


async def test_slow_webhook_times_out(settings: Settings, sink: Sink) -> None:
    settings.channels.webhook.timeout_seconds = 0.2
    settings.delivery.max_attempts = 1
    sink.delay = 1.0
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        n = await send(client, channel="webhook", to=sink.url, message="m")
        done = await wait_status(client, n["id"], "failed")
    assert done["failure_reason"] == "timeout"


async def test_in_app_lands_in_the_inbox(manual: Client) -> None:
    client = manual
    n = await send(client, channel="in-app", to="eng_sarah", message="maintenance at 10",
                   subject="Heads up", severity="warning", metadata={"deep_link": "/m"})
    await runtime(client).run_until_idle()
    assert (await fetch(client, n["id"]))["status"] == "delivered"
    resp = await client.get("/v1/inbox?to=eng_sarah", headers=auth())
    page = await resp.json()
    assert resp.status == 200 and page["object"] == "list"
    [item] = page["data"]
    assert item | {"created_at": None} == {
        "object": "inbox_item", "notification_id": n["id"], "to": "eng_sarah",
        "title": "Heads up", "body": "maintenance at 10", "severity": "warning",
        "metadata": {"deep_link": "/m"}, "created_at": None, "read_at": None}
    other = await (await client.get("/v1/inbox?to=someone_else", headers=auth())).json()
    assert other["data"] == []
    assert (await client.get("/v1/inbox", headers=auth())).status == 400
    assert (await client.get("/v1/inbox?to=eng_sarah")).status == 401


async def test_scheduled_waits_until_its_time(manual: Client, clock: FakeClock,
                                             sink: Sink) -> None:
    at = datetime.fromtimestamp(clock.now(), UTC) + timedelta(seconds=90)
    n = await send(manual, channel="webhook", to=sink.url, message="later",
                   schedule_at=at.isoformat())
    assert n["schedule_at"]
    clock.advance(89.9)
    assert await runtime(manual).run_until_idle() == 0
    assert sink.received == []
    clock.advance(0.1)
    assert await runtime(manual).run_until_idle() == 1
    done = await fetch(manual, n["id"])
    assert done["status"] == "delivered"
    assert datetime.fromisoformat(done["delivered_at"]) >= at
    assert len(sink.received) == 1


async def test_rate_limit_headers_and_429(settings: Settings, clock: FakeClock) -> None:
    settings.api.rate_limit.requests_per_minute = 3
    # 15 s into a minute: the four requests share its window however slowly they run.
    clock.advance(60 - clock.now() % 60 + 15)
    window_end = int(clock.now()) + 45
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as client:
        statuses = []
        for _ in range(4):
            resp = await client.get("/v1/notifications", headers=auth())
            statuses.append(resp.status)
            assert int(resp.headers["X-RateLimit-Limit"]) == 3
            assert int(resp.headers["X-RateLimit-Reset"]) == window_end
        assert statuses == [200, 200, 200, 429]
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert int(resp.headers["Retry-After"]) == 45
        clock.advance(45)  # the next window
        assert (await client.get("/v1/notifications", headers=auth())).status == 200
        err = (await resp.json())["error"]
        assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        # Limits are per key: the test key still has its budget.
        assert (await client.get("/v1/notifications", headers=auth(TEST_KEY))).status == 200
        assert (await client.get("/healthz")).status == 200  # not limited, not authenticated


async def test_metrics_and_readiness(client: Client, sink: Sink) -> None:
    n = await send(client, channel="webhook", to=sink.url, message="m")
    await wait_status(client, n["id"], "delivered")
    text = await (await client.get("/metrics")).text()
    for needle in (
        'alert_agent_notifications_accepted_total{channel="webhook"} 1.0',
        'alert_agent_notifications_total{channel="webhook",outcome="delivered"} 1.0',
        'alert_agent_delivery_latency_seconds_count{channel="webhook"} 1.0',
        'alert_agent_outbox_depth{state="due"}',
        "alert_agent_outbox_oldest_due_age_seconds",
        'alert_agent_http_requests_total{method="POST",route="/v1/notifications/send",'
        'status="201"} 1.0',
        "alert_agent_build_info{",
    ):
        assert needle in text, needle
    assert "_created" not in text
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"store": True, "dispatcher": True}


async def test_no_secret_reaches_the_logs(settings: Settings, sink: Sink) -> None:
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    try:
        async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
            n = await send(client, channel="webhook", to=sink.url, message="m")
            await wait_status(client, n["id"], "delivered")
            await client.get("/v1/notifications", headers={"Authorization": "Bearer sk_live_x"
                                                           "nopeNOPEnope123"})
            sink.script = [(500, {})]
            n2 = await send(client, channel="webhook", to=sink.url, message="m")
            await wait_status(client, n2["id"], "delivered")
    finally:
        structlog.reset_defaults()
    logs = out.getvalue()
    assert "notification_delivered" in logs and n["id"] in logs
    for secret in (LIVE_KEY, TEST_KEY, WEBHOOK_SECRET, "sk_live_xnopeNOPEnope123",
                   LIVE_KEY[8:], WEBHOOK_SECRET[6:]):
        assert secret not in logs


async def test_webhook_redirects_are_not_followed(client: Client, sink: Sink) -> None:
    sink.script = [(302, {"Location": sink.url + "/elsewhere"})]
    n = await send(client, channel="webhook", to=sink.url, message="m")
    done = await wait_status(client, n["id"], "failed")
    assert len(sink.received) == 1 and done["failure_reason"] == "provider_rejected"
    assert done["failure_details"].startswith("HTTP 302")
