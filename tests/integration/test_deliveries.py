"""The deliveries table: every attempt is a row, shown oldest first by GET /v1/notifications/{id};
the provider's ref of a delivered message is readable for a later edit; retention prunes it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from agent.channels.base import DeliveryResult, Limits, Message
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.retry import RetryPolicy
from agent.domain import now
from agent.observability import Metrics
from agent.store import Store
from tests.helpers import TEST_KEY, Sink, auth, runtime, wait_status
from tests.integration.test_store import item

Client = TestClient[Any, Any]


async def send(client: Client, key: str | None = None, **body: Any) -> dict[str, Any]:
    headers = auth() if key is None else auth(key)
    resp = await client.post("/v1/notifications/send", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def _pick(attempts: list[dict[str, Any]], *fields: str) -> list[tuple[Any, ...]]:
    return [tuple(a[f] for f in fields) for a in attempts]


async def test_every_attempt_is_listed_oldest_first(client: Client, sink: Sink) -> None:
    sink.script = [(503, {}), (429, {"Retry-After": "1"})]
    n = await send(client, channel="webhook", to=sink.url, message="m")
    done = await wait_status(client, n["id"], "delivered")
    attempts = done["attempts"]
    # The 429 asked for a wait: a deferral, which gives its attempt back (same number next).
    assert _pick(attempts, "attempt", "outcome", "http_status", "retry_after") == [
        (1, "retry", 503, None), (2, "deferred", 429, 1.0), (2, "delivered", 200, None)]
    assert _pick(attempts, "failure_reason", "failure_class") == [
        ("provider_unavailable", "retryable"), ("rate_limited", "retryable"), (None, None)]
    assert all(a["channel"] == "webhook" for a in attempts)
    times = [(datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["finished_at"]))
             for a in attempts]
    assert all(s <= f for s, f in times)
    assert [s for s, _ in times] == sorted(s for s, _ in times)
    assert done["attempt_count"] == 2
    # The webhook's answer names no message: its status is the ref that is kept.
    store = runtime(client).store
    assert await store.deliveries.provider_ref(n["id"]) == {"http_status": 200}


async def test_a_permanent_failure_is_one_failed_attempt(client: Client, sink: Sink) -> None:
    sink.script = [(404, {})]
    n = await send(client, channel="webhook", to=sink.url, message="m")
    done = await wait_status(client, n["id"], "failed")
    [a] = done["attempts"]
    assert (a["attempt"], a["outcome"], a["http_status"], a["failure_reason"],
            a["failure_class"], a["retry_after"]) == (
        1, "failed", 404, "provider_rejected", "permanent", None)
    assert "HTTP 404" in a["failure_details"]
    assert await runtime(client).store.deliveries.provider_ref(n["id"]) is None


async def test_a_simulated_delivery_is_recorded(client: Client, sink: Sink) -> None:
    n = await send(client, TEST_KEY, channel="webhook", to=sink.url, message="m")
    done = await wait_status(client, n["id"], "delivered", key=TEST_KEY)
    [a] = done["attempts"]
    assert (a["attempt"], a["outcome"], a["http_status"], a["failure_class"]) == (
        1, "delivered", None, None)
    assert sink.received == []


async def test_the_in_app_provider_ref_is_readable(client: Client) -> None:
    n = await send(client, channel="in-app", to="alice", message="m")
    done = await wait_status(client, n["id"], "delivered")
    assert _pick(done["attempts"], "outcome") == [("delivered",)]
    assert await runtime(client).store.deliveries.provider_ref(n["id"]) == {
        "inbox_notification_id": n["id"], "to": "alice"}


async def test_send_carries_the_count_only_and_the_list_the_attempts(client: Client) -> None:
    n = await send(client, channel="in-app", to="alice", message="m")
    assert n["attempt_count"] == 0 and "attempts" not in n
    await wait_status(client, n["id"], "delivered")
    page = await (await client.get("/v1/notifications", headers=auth())).json()
    [listed] = [x for x in page["data"] if x["id"] == n["id"]]
    assert listed["attempt_count"] == 1
    assert [(a["attempt"], a["outcome"]) for a in listed["attempts"]] == [(1, "delivered")]


class _Crashing:
    name = "console"
    local = False
    limits = Limits()

    async def send(self, message: Message) -> DeliveryResult:
        raise RuntimeError("bug")

    async def close(self) -> None:
        return None


async def test_a_channel_crash_is_a_technical_failure(store: Store) -> None:
    row = item()
    await store.notifications.create([row])
    dispatcher = Dispatcher(store.notifications, {"console": _Crashing()},
                            Metrics(CollectorRegistry()), retry=RetryPolicy())
    assert await dispatcher.run_until_idle() == 1
    [a] = await store.deliveries.attempts(row.id)
    assert (a.outcome, a.failure_class, a.failure_reason, a.http_status) == (
        "failed", "technical", "provider_rejected", None)


async def test_retention_prunes_attempts_with_their_notification(store: Store) -> None:
    from agent.store.retention import prune

    row = item()
    await store.notifications.create([row])
    dispatcher = Dispatcher(store.notifications, {"console": _Crashing()},
                            Metrics(CollectorRegistry()), retry=RetryPolicy())
    await dispatcher.run_until_idle()
    assert len(await store.deliveries.attempts(row.id)) == 1
    await prune(store.db, now() + 10)
    assert await store.notifications.get(row.id) is None
    assert await store.deliveries.attempts(row.id) == []


class _Refs:
    """A channel whose messages have refs ("ts" = how many it sent before)."""

    name = "console"
    local = False
    limits = Limits(can_edit=True)

    def __init__(self) -> None:
        self.sent = 0

    async def send(self, message: Message) -> DeliveryResult:
        self.sent += 1
        return DeliveryResult(provider_ref={"ts": self.sent, "to": message.to})

    async def close(self) -> None:
        return None


async def test_the_first_message_of_a_group_is_found_by_group_channel_and_recipient(
        store: Store) -> None:
    # Edit on resolve (issue 12) edits the first delivered message of the group on that
    # channel to that recipient: the resolved notification is a different row.
    rows = [item() for _ in range(4)]
    for r, (key, to) in zip(rows, [("g1", "ops"), ("g1", "dev"), ("g2", "ops"), ("g1", "ops")],
                            strict=True):
        r.metadata, r.recipient = {"group_key": key}, to
    await store.notifications.create(rows[:3])
    dispatcher = Dispatcher(store.notifications, {"console": _Refs()},
                            Metrics(CollectorRegistry()), retry=RetryPolicy())
    assert await dispatcher.run_until_idle() == 3
    first = await store.deliveries.first_ref("g1", "console", "ops")
    assert first is not None and first["to"] == "ops"
    await store.notifications.create(rows[3:])  # the resolved notification of g1 to ops
    assert await dispatcher.run_until_idle() == 1
    assert await store.deliveries.first_ref("g1", "console", "ops") == first
    assert await store.deliveries.provider_ref(rows[3].id) != first
    dev = await store.deliveries.first_ref("g1", "console", "dev")
    assert dev is not None and dev["to"] == "dev"
    assert await store.deliveries.first_ref("g1", "webhook", "ops") is None
    assert await store.deliveries.first_ref("g3", "console", "ops") is None


async def test_a_channel_that_cannot_edit_keeps_its_attempts_out_of_the_thread_index(
        store: Store) -> None:
    # Nobody looks its messages up again: one index page less per delivery.
    row = item()
    row.metadata = {"group_key": "g1"}
    await store.notifications.create([row])
    plain = _Refs()
    plain.limits = Limits()  # type: ignore[misc]
    dispatcher = Dispatcher(store.notifications, {"console": plain},
                            Metrics(CollectorRegistry()), retry=RetryPolicy())
    assert await dispatcher.run_until_idle() == 1
    assert await store.deliveries.provider_ref(row.id) == {"ts": 1, "to": row.recipient}
    assert await store.deliveries.first_ref("g1", "console", row.recipient) is None
