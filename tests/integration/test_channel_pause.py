"""A channel-scoped failure (a refused token) pauses the whole channel: its rows wait, spending no
attempt, one log line and a gauge say so, and one probe after the back-off resumes it. And the
dispatcher hands channels the v2 message: thread key, status, attempt, the replaced ref."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from agent.channels.base import (
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
)
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.pause import ChannelPause
from agent.delivery.retry import RetryPolicy
from agent.domain import FailureReason, Notification, now
from agent.observability import Metrics
from agent.store import Store
from tests.integration.test_store import item

TOKEN_REFUSED = PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, "HTTP 401: invalid_auth",
                                       http_status=401, scope=ErrorScope.CHANNEL)


class _Chat:
    """A chat-like channel whose token can be revoked."""

    name = "console"
    local = False
    limits = Limits(max_text_chars=4096, can_edit=True)

    def __init__(self) -> None:
        self.revoked = True
        self.sent: list[Message] = []

    def validate_address(self, to: str) -> str:
        return to

    async def send(self, message: Message) -> DeliveryResult:
        self.sent.append(message)
        if self.revoked:
            raise TOKEN_REFUSED
        return DeliveryResult(provider_ref={"ts": str(len(self.sent))})

    async def close(self) -> None:
        return None


class _Clock:
    def __init__(self) -> None:
        self.t = now() + 1.0  # the rows below are due at the real now()

    def __call__(self) -> float:
        return self.t


def _gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"channel": "console"})


async def _run(dispatcher: Dispatcher) -> int:
    total = 0
    for _ in range(20):  # bounded: each round claims what is due at the fake time
        done = await dispatcher.run_until_idle()
        total += done
        if not done:
            return total
    raise AssertionError("the dispatcher never went idle")


async def test_a_refused_token_pauses_the_channel_instead_of_failing_rows(
        store: Store, stream: io.StringIO) -> None:
    rows = [item() for _ in range(5)]
    await store.notifications.create(rows)
    chat, clock, metrics = _Chat(), _Clock(), Metrics(CollectorRegistry())
    dispatcher = Dispatcher(store.notifications, {"console": chat}, metrics,
                            retry=RetryPolicy(max_attempts=2), clock=clock,
                            pause=ChannelPause(metrics, base=30.0, cap=120.0))
    await dispatcher.start()
    await dispatcher.stop(0)  # start() initialised the gauges; the test drives it by hand
    assert _gauge(metrics, "alert_agent_channel_paused") == 0

    await _run(dispatcher)
    got = [await store.notifications.get(r.id) for r in rows]
    # Nothing failed and no attempt was spent: the rows wait for the channel.
    assert {(n.status, n.attempts, n.failure_reason) for n in got if n} == {
        ("queued", 0, "channel_paused")}
    assert len(chat.sent) == 1  # one refusal, not one per row
    assert _gauge(metrics, "alert_agent_channel_paused") == 1
    assert _gauge(metrics, "alert_agent_channel_pauses_total") == 1
    assert await _run(dispatcher) == 0  # paused: nothing is due before the probe

    clock.t += 30.0  # the probe goes out, and is refused again: the pause doubles
    await _run(dispatcher)
    assert len(chat.sent) == 2
    clock.t += 30.0
    await _run(dispatcher)
    assert len(chat.sent) == 2  # still paused (60 s now)

    chat.revoked = False  # the operator fixed the token
    clock.t += 30.0
    for _ in range(5):  # the probe delivers; the rest follow once it has
        await _run(dispatcher)
        clock.t += 1.0
    got = [await store.notifications.get(r.id) for r in rows]
    assert {n.status for n in got if n} == {"delivered"}
    assert len(chat.sent) == 2 + 5
    assert _gauge(metrics, "alert_agent_channel_paused") == 0
    lines = [orjson.loads(x) for x in stream.getvalue().splitlines()]
    events = [x["event"] for x in lines]
    assert events.count("channel_paused") == 1 and events.count("channel_resumed") == 1
    assert not any(e == "notification_failed" for e in events)
    # The refused attempts are in the history as waits, with the far side's status.
    histories = [await store.deliveries.attempts(r.id) for r in rows]
    history = max(histories, key=len)  # the row that went out first, and probed
    assert [(a.outcome, a.http_status) for a in history][-1] == ("delivered", None)
    assert {(a.outcome, a.http_status, a.failure_class) for a in history[:-1]} == {
        ("deferred", 401, "permanent")}


async def test_a_message_scoped_refusal_fails_only_its_row(store: Store) -> None:
    rows = [item() for _ in range(3)]
    await store.notifications.create(rows)
    metrics = Metrics(CollectorRegistry())

    class _OneBad(_Chat):
        async def send(self, message: Message) -> DeliveryResult:
            self.sent.append(message)
            if message.notification_id == rows[0].id:
                raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, "HTTP 400",
                                             http_status=400)
            return DeliveryResult()

    dispatcher = Dispatcher(store.notifications, {"console": _OneBad()}, metrics,
                            retry=RetryPolicy(), clock=_Clock())
    await _run(dispatcher)
    got = [await store.notifications.get(r.id) for r in rows]
    assert [n.status for n in got if n] == ["failed", "delivered", "delivered"]
    assert _gauge(metrics, "alert_agent_channel_pauses_total") == 0  # never paused


async def test_the_channel_gets_the_v2_message(store: Store) -> None:
    meta = {"group_key": "grp_abc", "status": "resolved", "route": "db"}
    row = replace(item(), metadata=meta)
    await store.notifications.create([row])
    chat = _Chat()
    chat.revoked = False
    asked: list[str] = []

    async def replaces(n: Notification) -> dict[str, Any] | None:
        asked.append(n.id)
        return {"channel": "C1", "ts": "17.1"}

    dispatcher = Dispatcher(store.notifications, {"console": chat},
                            Metrics(CollectorRegistry()), retry=RetryPolicy(), clock=_Clock(),
                            replaces=replaces)
    await _run(dispatcher)
    [m] = chat.sent
    assert (m.thread_key, m.status, m.attempt, m.replaces) == (
        "grp_abc", "resolved", 1, {"channel": "C1", "ts": "17.1"})
    assert asked == [row.id] and m.created_at == row.created_at
