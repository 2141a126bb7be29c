"""Dead letters: every failed notification carries a failure_class (permanent, temporary,
technical), the list shows failed ones with their attempts, a re-drive queues one (or many, by
the list filters) again under the same id with a new retry budget, and the
alert_agent_dead_letters gauge follows failures, re-drives, restarts and retention.

The agent runs on a FakeClock without loops: ``drain`` delivers what is due, then moves the clock
to the next due row, until nothing is left (bounded).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.api import schemas as s
from agent.app import _apply_retention, create_app
from agent.channels.base import DeliveryResult, Message
from agent.cli import main
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import LIVE_KEY, TEST_KEY, WEBHOOK_SECRET, auth, runtime, serve
from tests.integration.test_openapi import documented_statuses

Client = TestClient[Any, Any]
T0 = 1_800_000_000.0


@dataclass
class Far:
    """A webhook receiver answering ``status``; records (Idempotency-Key, fake time)."""

    clock: FakeClock
    status: int = 503
    url: str = ""
    seen: list[tuple[str, float]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.headers["Idempotency-Key"], self.clock.now()))
        return web.Response(status=self.status)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def far(clock: FakeClock) -> AsyncIterator[Far]:
    f = Far(clock)
    async with serve(f.handle, "/hook") as url:
        f.url = url + "/hook"
        yield f


def make_settings(tmp_path: Path, **delivery: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", rules_dir=tmp_path / "rules", api_keys=[LIVE_KEY, TEST_KEY],
        delivery={"backoff_base_seconds": 1.0, "backoff_max_seconds": 4.0, "max_attempts": 3,
                  **delivery},
        channels={"webhook": {"signing_secret": WEBHOOK_SECRET, "timeout_seconds": 2.0,
                              "allow_loopback": True}},  # the receiver is on 127.0.0.1
    )


@asynccontextmanager
async def agent(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def client(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Client]:
    async with agent(make_settings(tmp_path), clock) as c:
        yield c


async def drain(client: Client, clock: FakeClock) -> None:
    """Deliver until nothing is due, moving the fake clock to each next due row."""
    rt = runtime(client)
    for _ in range(500):
        await rt.run_until_idle()
        nxt = await rt.store.notifications.next_due_at()
        if nxt is None:
            return
        clock.advance(max(0.0, nxt - clock.now()))
    raise AssertionError("still delivering after 500 steps")


async def send(client: Client, key: str = LIVE_KEY, **body: Any) -> str:
    resp = await client.post("/v1/notifications/send", json=body, headers=auth(key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def get(client: Client, nid: str, key: str = LIVE_KEY) -> dict[str, Any]:
    resp = await client.get(f"/v1/notifications/{nid}", headers=auth(key))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    s.NotificationOut.model_validate(body)
    return dict(body)


async def retry(client: Client, nid: str, status: int = 200,
                key: str = LIVE_KEY) -> dict[str, Any]:
    resp = await client.post(f"/v1/notifications/{nid}/retry", headers=auth(key))
    body = await resp.json()
    assert resp.status == status, body
    assert status in documented_statuses("POST", f"/v1/notifications/{nid}/retry")
    (s.NotificationOut if status == 200 else s.ErrorEnvelope).model_validate(body)
    return dict(body)


async def retry_many(client: Client, body: Any, status: int = 200,
                     key: str = LIVE_KEY) -> dict[str, Any]:
    resp = await client.post("/v1/notifications/retry", json=body, headers=auth(key))
    out = await resp.json()
    assert resp.status == status, out
    assert status in documented_statuses("POST", "/v1/notifications/retry")
    (s.RetryManyOut if status == 200 else s.ErrorEnvelope).model_validate(out)
    return dict(out)


def gauge(client: Client, channel: str) -> float:
    value = runtime(client).metrics.registry.get_sample_value(
        "alert_agent_dead_letters", {"channel": channel})
    assert value is not None
    return float(value)


def ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def outcomes(n: dict[str, Any]) -> list[tuple[int, str]]:
    return [(a["attempt"], a["outcome"]) for a in n["attempts"]]


# --- failure_class ------------------------------------------------------------------------------


async def test_a_refusal_of_the_far_side_is_permanent(client: Client, clock: FakeClock,
                                                      far: Far) -> None:
    far.status = 404
    nid = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    n = await get(client, nid)
    assert (n["status"], n["failure_class"], n["failure_reason"]) == (
        "failed", "permanent", "provider_rejected")
    assert [a["failure_class"] for a in n["attempts"]] == ["permanent"]  # per attempt: kept


async def test_retries_exhausted_are_temporary(client: Client, clock: FakeClock,
                                               far: Far) -> None:
    nid = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    n = await get(client, nid)
    assert (n["status"], n["failure_class"]) == ("failed", "temporary")
    assert n["failure_details"].startswith("gave up after 3 attempts")
    assert outcomes(n) == [(1, "retry"), (2, "retry"), (3, "failed")]


async def test_a_passed_deadline_is_temporary(tmp_path: Path, clock: FakeClock,
                                              far: Far) -> None:
    # critical: bound by the deadline only, never by max_attempts
    async with agent(make_settings(tmp_path, retry_for=30.0), clock) as c:
        nid = await send(c, channel="webhook", to=far.url, message="m", severity="critical")
        await drain(c, clock)
        n = await get(c, nid)
    assert (n["status"], n["failure_class"]) == ("failed", "temporary")
    assert n["failure_details"].startswith("gave up after 30 s")
    assert len(n["attempts"]) > 3
    assert T0 + 26 <= ts(n["failed_at"]) <= T0 + 30


async def test_a_wait_past_the_deadline_is_temporary(tmp_path: Path, clock: FakeClock,
                                                     far: Far) -> None:
    far.status = 429  # Retry-After absent: a rate limit is a deferral, which ends at the deadline
    async with agent(make_settings(tmp_path, retry_for=30.0), clock) as c:
        nid = await send(c, channel="webhook", to=far.url, message="m")
        await drain(c, clock)
        n = await get(c, nid)
    assert (n["status"], n["failure_class"], n["failure_reason"]) == (
        "failed", "temporary", "rate_limited")


async def test_a_channel_crash_is_technical(client: Client, clock: FakeClock, far: Far,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async def bug(message: Message) -> DeliveryResult:
        raise RuntimeError("bug")

    monkeypatch.setattr(runtime(client).api.channels["webhook"], "send", bug)
    nid = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    n = await get(client, nid)
    assert (n["status"], n["failure_class"]) == ("failed", "technical")
    assert n["failure_details"] == "internal channel error: RuntimeError"


async def test_a_channel_not_configured_is_technical(client: Client, clock: FakeClock) -> None:
    nid = await send(client, channel="slack", to="#ops", message="m")
    await drain(client, clock)
    n = await get(client, nid)
    assert (n["status"], n["failure_class"], n["failure_reason"]) == (
        "failed", "technical", "channel_not_configured")


async def test_a_template_error_is_technical_and_delivered_has_no_class(
        client: Client, clock: FakeClock, far: Far) -> None:
    resp = await client.post("/v1/templates", headers=auth(), json={
        "name": "div", "channel": "webhook", "body": "{{ 1 // x }}"})
    assert resp.status == 201
    tpl = (await resp.json())["id"]
    broken = await send(client, channel="webhook", to=far.url, template_id=tpl,
                        metadata={"x": 0})
    far.status = 200
    fine = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    n = await get(client, broken)
    assert (n["status"], n["failure_class"], n["failure_reason"]) == (
        "failed", "technical", "template_render_error")
    ok = await get(client, fine)
    assert (ok["status"], ok["failure_class"]) == ("delivered", None)


async def test_the_list_filters_by_class_and_shows_attempts(client: Client, clock: FakeClock,
                                                           far: Far) -> None:
    temporary = await send(client, channel="webhook", to=far.url, message="m")
    technical = await send(client, channel="slack", to="#ops", message="m")
    await drain(client, clock)
    far.status = 200
    delivered = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)

    async def page(query: str) -> list[dict[str, Any]]:
        resp = await client.get(f"/v1/notifications?{query}", headers=auth())
        body = await resp.json()
        assert resp.status == 200, body
        s.NotificationList.model_validate(body)
        return list(body["data"])

    failed = await page("status=failed")
    assert [n["id"] for n in failed] == [technical, temporary]  # newest first
    assert [len(n["attempts"]) for n in failed] == [1, 3]
    assert [a["http_status"] for a in failed[1]["attempts"]] == [503, 503, 503]
    assert [n["id"] for n in await page("failure_class=temporary")] == [temporary]
    assert [n["id"] for n in await page("failure_class=technical&channel=slack")] == [technical]
    assert [n["id"] for n in await page("failure_reason=channel_not_configured")] == [technical]
    [ok] = await page("status=delivered")
    assert ok["id"] == delivered and outcomes(ok) == [(1, "delivered")]
    resp = await client.get("/v1/notifications?failure_class=bogus", headers=auth())
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "invalid_failure_class"


# --- re-drive one -------------------------------------------------------------------------------


async def test_a_redrive_continues_the_attempts_under_the_same_id(
        client: Client, clock: FakeClock, far: Far) -> None:
    nid = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    assert (await get(client, nid))["status"] == "failed"
    clock.advance(3600)
    far.status = 200
    redriven_at = clock.now()
    queued = await retry(client, nid)
    assert (queued["id"], queued["status"], queued["failure_class"], queued["failed_at"]) == (
        nid, "queued", None, None)
    assert queued["last_error"] == "provider_unavailable"
    assert outcomes(queued) == [(1, "retry"), (2, "retry"), (3, "failed")]  # history kept
    await runtime(client).run_until_idle()  # due now: no clock move needed
    n = await get(client, nid)
    assert n["status"] == "delivered" and n["failure_class"] is None
    assert outcomes(n) == [(1, "retry"), (2, "retry"), (3, "failed"), (4, "delivered")]
    assert abs(ts(n["attempts"][-1]["started_at"]) - redriven_at) < 0.001  # due at once
    # The receiver saw one idempotency key throughout: the notification id.
    assert {key for key, _ in far.seen} == {nid} and len(far.seen) == 4


async def test_a_redrive_gets_a_new_attempt_budget(client: Client, clock: FakeClock,
                                                   far: Far) -> None:
    nid = await send(client, channel="webhook", to=far.url, message="m")
    await drain(client, clock)
    await retry(client, nid)
    await drain(client, clock)
    n = await get(client, nid)
    # max_attempts (3) again after the re-drive, numbers going on; not one attempt and out.
    assert outcomes(n) == [(1, "retry"), (2, "retry"), (3, "failed"),
                           (4, "retry"), (5, "retry"), (6, "failed")]
    assert (n["status"], n["failure_class"], n["attempt_count"]) == ("failed", "temporary", 6)
    assert n["failure_details"].startswith("gave up after 3 attempts")


async def test_a_redrive_counts_the_deadline_from_the_redrive(tmp_path: Path, clock: FakeClock,
                                                              far: Far) -> None:
    async with agent(make_settings(tmp_path, retry_for=30.0), clock) as c:
        nid = await send(c, channel="webhook", to=far.url, message="m", severity="critical")
        await drain(c, clock)
        first = await get(c, nid)
        clock.advance(3600)  # far past created_at + retry_for
        redriven_at = clock.now()
        await retry(c, nid)
        await drain(c, clock)
        n = await get(c, nid)
    again = n["attempts"][len(first["attempts"]):]
    # Retried for another 30 s from the re-drive (not failed at once for the old deadline).
    assert [a["outcome"] for a in again[:-1]] == ["retry"] * (len(again) - 1) and len(again) > 3
    assert again[-1]["outcome"] == "failed" and n["failure_class"] == "temporary"
    assert redriven_at + 26 <= ts(n["failed_at"]) <= redriven_at + 30
    assert abs(ts(again[0]["started_at"]) - redriven_at) < 0.001


async def test_retry_refuses_what_is_not_failed_unknown_or_not_the_keys(
        client: Client, clock: FakeClock, far: Far) -> None:
    far.status = 200
    delivered = await send(client, channel="webhook", to=far.url, message="m")
    failed = await send(client, channel="slack", to="#ops", message="m")
    await drain(client, clock)
    err = (await retry(client, delivered, 409))["error"]
    assert (err["type"], err["code"], err["param"]) == (
        "conflict", "notification_not_retryable", "id")
    assert "'delivered'" in err["message"]
    assert (await retry(client, "ntf_nope", 404))["error"]["code"] == "resource_missing"
    # A test key sees only its own notifications: a live one is unknown to it.
    assert (await retry(client, failed, 404, TEST_KEY))["error"]["code"] == "resource_missing"
    assert (await get(client, failed))["status"] == "failed"
    resp = await client.post(f"/v1/notifications/{failed}/retry")
    assert resp.status == 401
    await retry(client, failed)
    assert (await retry(client, failed, 409))["error"]["code"] == "notification_not_retryable"


async def test_a_test_key_redrives_its_own(client: Client, clock: FakeClock) -> None:
    resp = await client.post("/v1/templates", headers=auth(), json={
        "name": "div", "channel": "console", "body": "{{ 1 // x }}"})
    tpl = (await resp.json())["id"]
    nid = await send(client, TEST_KEY, channel="console", to="ops", template_id=tpl,
                     metadata={"x": 0})
    await drain(client, clock)
    assert (await get(client, nid, TEST_KEY))["failure_class"] == "technical"
    assert (await retry(client, nid, 404))["error"]["code"] == "resource_missing"  # live key
    assert (await retry(client, nid, key=TEST_KEY))["status"] == "queued"


# --- re-drive many ------------------------------------------------------------------------------


async def test_redrive_many_by_filters_oldest_first_within_the_limit(
        client: Client, clock: FakeClock, far: Far) -> None:
    temporary = [await send(client, channel="webhook", to=far.url, message=f"t{i}")
                 for i in range(3)]
    technical = await send(client, channel="slack", to="#ops", message="m")
    clock.advance(100)
    late = await send(client, channel="webhook", to=far.url, message="late")
    await drain(client, clock)
    far.status = 404
    permanent = await send(client, channel="webhook", to=far.url, message="p")
    await drain(client, clock)
    far.status = 200

    got = await retry_many(client, {"channel": "webhook", "failure_class": "temporary",
                                    "to": datetime.fromtimestamp(T0 + 50).isoformat(),
                                    "limit": 2})
    assert got == {"object": "retry_result", "retried": 2, "ids": temporary[:2],
                   "has_more": True}
    got = await retry_many(client, {"channel": "webhook", "failure_class": "temporary",
                                    "to": datetime.fromtimestamp(T0 + 50).isoformat()})
    assert got == {"object": "retry_result", "retried": 1, "ids": temporary[2:],
                   "has_more": False}
    assert (await get(client, late))["status"] == "failed"  # created after 'to'
    got = await retry_many(client, {"from": datetime.fromtimestamp(T0 + 50).isoformat() + "Z",
                                    "failure_reason": "provider_unavailable"})
    assert got["ids"] == [late]
    await runtime(client).run_until_idle()
    for nid in [*temporary, late]:
        assert (await get(client, nid))["status"] == "delivered"
    for nid, cls in ((technical, "technical"), (permanent, "permanent")):
        n = await get(client, nid)
        assert (n["status"], n["failure_class"]) == ("failed", cls)
    # The test key's mode holds none of these.
    assert (await retry_many(client, {}, key=TEST_KEY))["retried"] == 0
    got = await retry_many(client, {})
    assert got["ids"] == [technical, permanent] and not got["has_more"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"limit": 0}, 422, "invalid_value"),
    ({"limit": 10_001}, 422, "invalid_value"),
    ({"limit": "many"}, 400, "invalid_type"),
    ({"failure_class": "sometimes"}, 422, "invalid_failure_class"),
    ({"failure_reason": "bad_luck"}, 422, "invalid_failure_reason"),
    ({"channel": "pager"}, 422, "invalid_channel"),
    ({"status": "delivered"}, 400, "unknown_parameter"),
    ({"from": "yesterday"}, 400, "invalid_type"),
    ([], 400, "invalid_json"),
])
async def test_redrive_many_refuses_bad_bodies(client: Client, body: Any, status: int,
                                               code: str) -> None:
    assert (await retry_many(client, body, status))["error"]["code"] == code


async def test_redrive_many_lists_ids_only_when_few(client: Client, clock: FakeClock) -> None:
    resp = await client.post("/v1/notifications/send-batch", headers=auth(), json={
        "notifications": [{"channel": "slack", "to": "#ops", "message": str(i)}
                          for i in range(101)]})
    assert resp.status == 200
    await drain(client, clock)
    got = await retry_many(client, {"channel": "slack"})
    assert (got["retried"], got["ids"], got["has_more"]) == (101, None, False)


# --- the gauge ----------------------------------------------------------------------------------


async def test_the_gauge_follows_failures_redrives_restarts_and_retention(
        tmp_path: Path, clock: FakeClock, far: Far) -> None:
    settings = make_settings(tmp_path)
    async with agent(settings, clock) as c:
        assert gauge(c, "webhook") == gauge(c, "slack") == 0
        hooks = [await send(c, channel="webhook", to=far.url, message="m") for _ in range(3)]
        await send(c, channel="slack", to="#ops", message="m")
        await drain(c, clock)
        assert (gauge(c, "webhook"), gauge(c, "slack")) == (3, 1)
        await retry(c, hooks[0])
        assert gauge(c, "webhook") == 2
    async with agent(settings, clock) as c:  # a restart: counted from the store
        assert (gauge(c, "webhook"), gauge(c, "slack")) == (2, 1)
        await drain(c, clock)  # the re-driven one fails again
        assert gauge(c, "webhook") == 3
        await retry_many(c, {"channel": "webhook", "limit": 2})
        assert gauge(c, "webhook") == 1
        far.status = 200
        await drain(c, clock)
        assert gauge(c, "webhook") == 1
        clock.advance(31 * 86400)  # past retention (30 days): the failed rows go
        await _apply_retention(runtime(c))
        assert (gauge(c, "webhook"), gauge(c, "slack")) == (0, 0)
    async with agent(settings, clock) as c:
        assert (gauge(c, "webhook"), gauge(c, "slack")) == (0, 0)


# --- the CLI ------------------------------------------------------------------------------------


async def test_the_cli_redrives_by_id_and_by_filter(client: Client, clock: FakeClock,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = str(client.make_url("")).rstrip("/")
    ids = [await send(client, channel="slack", to="#ops", message=str(i)) for i in range(3)]
    await drain(client, clock)

    async def cli(*args: str, key: str = LIVE_KEY) -> tuple[int, str, str]:
        # In a thread: the client's urllib call blocks, and this loop serves the API.
        code = await asyncio.to_thread(main, ["retry", "--url", url, "--api-key", key, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli(ids[0])
    assert code == 0, err
    assert orjson.loads(out)["status"] == "queued"
    code, _, err = await cli(ids[0])  # queued now: refused, exit 1
    assert code == 1 and "notification_not_retryable" in err
    code, out, err = await cli("--all", "--channel", "slack", "--limit", "1")
    assert code == 0, err
    assert orjson.loads(out) == {"object": "retry_result", "retried": 1, "ids": [ids[1]],
                                 "has_more": True}
    code, _, err = await cli("--all", "--failure-class", "nope")
    assert code == 1 and "invalid_failure_class" in err
    for usage in ((), (ids[2], "--all"), (ids[2], "--channel", "slack")):
        code, _, err = await cli(*usage)
        assert code == 2 and "--all" in err
    code, _, err = await cli(ids[2], key="")
    assert code == 2 and "no API key" in err
    assert (await get(client, ids[2]))["status"] == "failed"
