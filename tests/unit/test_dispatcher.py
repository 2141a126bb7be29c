"""The dispatcher with a fake channel and a fake clock, on a real (temporary) SQLite store: what
each kind of outcome does to the row and to its attempts, and how outcomes are written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from agent.channels.base import (
    DeliveryResult,
    Limits,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.retry import RetryPolicy
from agent.domain import FailureReason, NewNotification, new_id
from agent.observability import Metrics
from agent.store import Store, StoreError
from agent.store.notifications import Outcome

T0 = 1_800_000_000.0


class Clock:
    """Fake time: tests move it; nothing sleeps."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeChannel:
    """Answers from a script (a result, or an exception to raise), then delivers."""

    local = False
    limits = Limits()

    def __init__(self, name: str = "fake", script: Sequence[Any] = ()) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[Message] = []
        self.gate: asyncio.Event | None = None  # when set: each send waits for it
        self.in_flight = 0
        self.max_in_flight = 0

    async def send(self, message: Message) -> DeliveryResult:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            self.sent.append(message)
            step = self.script.pop(0) if self.script else None
            if isinstance(step, BaseException):
                raise step
            return step or DeliveryResult(provider_ref={"n": len(self.sent)}, http_status=200)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        return None


def row(clock: Clock, *, channel: str = "fake", to: str = "ops", priority: str = "normal",
        severity: str = "warning", due_in: float = 0.0) -> NewNotification:
    return NewNotification(
        id=new_id("ntf"), channel=channel, recipient=to, message="m", subject=None,
        template_id=None, template_body=None, severity=severity, priority=priority,
        metadata={}, idempotency_key=None, request_hash=None, simulated=False,
        api_key_id="key_x", schedule_at=None, due_at=clock() + due_in, created_at=clock(),
    )


def dispatcher(store: Store, clock: Clock, *channels: FakeChannel, **kw: Any) -> Dispatcher:
    kw.setdefault("retry", RetryPolicy())
    return Dispatcher(store.notifications, {c.name: c for c in channels},
                      Metrics(CollectorRegistry()), clock=clock,
                      record_retry_pauses=(0.0, 0.0, 0.0), **kw)


async def test_outcomes_of_concurrent_deliveries_share_one_write(store: Store) -> None:
    # One store operation per outcome cost a savepoint, a future and a wake-up of the writer
    # each; the outcomes that end together are written together.
    clock = Clock()
    calls: list[int] = []
    complete = store.notifications.complete

    async def counting(outcomes: Sequence[Outcome], now: float | None = None) -> None:
        calls.append(len(outcomes))
        await complete(outcomes, now)

    setattr(store.notifications, "complete", counting)  # noqa: B010 (a seam, not a mock)
    await store.notifications.create([row(clock) for _ in range(50)])
    d = dispatcher(store, clock, FakeChannel())
    assert await d.run_until_idle() == 50
    assert sum(calls) == 50 and len(calls) <= 2, calls
    delivered = await store.notifications.outbox_stats(clock())
    assert delivered == (0, 0, None)


async def _one(store: Store, clock: Clock, ch: FakeChannel, **kw: Any) -> tuple[Any, Any]:
    r = row(clock, **kw)
    await store.notifications.create([r])
    return r, await store.notifications.get(r.id)


def _shape(attempts: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(a.attempt, a.outcome, a.failure_class, a.http_status) for a in attempts]


async def test_delivered(store: Store) -> None:
    clock, ch = Clock(), FakeChannel()
    r, _ = await _one(store, clock, ch)
    assert await dispatcher(store, clock, ch).run_until_idle() == 1
    n = await store.notifications.get(r.id)
    assert n is not None and (n.status, n.attempts, n.delivered_at) == ("delivered", 1, T0)
    assert _shape(await store.deliveries.attempts(r.id)) == [(1, "delivered", None, 200)]
    assert await store.deliveries.provider_ref(r.id) == {"n": 1}


async def test_retryable_then_delivered(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel(script=[retryable(503)])
    r, _ = await _one(store, clock, ch)
    d = dispatcher(store, clock, ch)
    await d.run_until_idle()
    n = await store.notifications.get(r.id)
    assert n is not None and (n.status, n.attempts) == ("queued", 1)
    assert 0.5 <= n.due_at - T0 <= 1.0  # the first backoff step, half jittered
    assert await d.run_until_idle() == 0  # not due yet
    clock.advance(1.0)
    assert await d.run_until_idle() == 1
    n = await store.notifications.get(r.id)
    assert n is not None and (n.status, n.attempts) == ("delivered", 2)
    assert _shape(await store.deliveries.attempts(r.id)) == [
        (1, "retry", "retryable", 503), (2, "delivered", None, 200)]


async def test_deferred_spends_no_attempt(store: Store) -> None:
    # A rate limit is a wait the far side asked for: attempts stay where they were, however
    # often it says so, and the wait is at least its Retry-After.
    clock = Clock()
    ch = FakeChannel(script=[rate_limited(30.0)] * 20)
    r, _ = await _one(store, clock, ch)
    d = dispatcher(store, clock, ch, retry=RetryPolicy(max_attempts=2))
    for _ in range(20):
        assert await d.run_until_idle() == 1
        n = await store.notifications.get(r.id)
        assert n is not None and (n.status, n.attempts) == ("queued", 0)
        assert n.due_at >= clock() + 30.0
        clock.t = n.due_at
    assert await d.run_until_idle() == 1
    n = await store.notifications.get(r.id)
    assert n is not None and (n.status, n.attempts) == ("delivered", 1)
    shape = _shape(await store.deliveries.attempts(r.id))
    assert shape == [(1, "deferred", "retryable", 429)] * 20 + [(1, "delivered", None, 200)]


async def test_waits_end_at_retry_for(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel(script=[rate_limited(500.0)] * 10)
    r, _ = await _one(store, clock, ch)
    d = dispatcher(store, clock, ch, retry=RetryPolicy(retry_for=1800.0))
    for _ in range(10):
        await d.run_until_idle()
        n = await store.notifications.get(r.id)
        assert n is not None
        if n.status != "queued":
            break
        clock.t = n.due_at
    assert n.status == "failed" and n.failure_reason == "rate_limited"
    assert "gave up after 1800 s" in (n.failure_details or "")
    # Three waits of 500-550 s (Retry-After and up to a tenth more) fit, a fourth would not.
    assert T0 + 1500 <= clock() <= T0 + 1650


async def test_critical_keeps_trying_past_max_attempts(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel(script=[retryable(503)] * 5)
    r, _ = await _one(store, clock, ch, severity="critical")
    w, _ = await _one(store, clock, ch, severity="warning")
    d = dispatcher(store, clock, ch, retry=RetryPolicy(max_attempts=2, max_seconds=10.0))
    for _ in range(8):
        await d.run_until_idle()
        clock.advance(10.0)
    crit, warn = await store.notifications.get(r.id), await store.notifications.get(w.id)
    assert warn is not None and warn.status == "failed" and warn.attempts == 2
    assert crit is not None and crit.status == "delivered" and crit.attempts >= 3


async def test_permanent(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel(script=[PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, "HTTP 404",
                                                    http_status=404)])
    r, _ = await _one(store, clock, ch)
    await dispatcher(store, clock, ch).run_until_idle()
    n = await store.notifications.get(r.id)
    assert n is not None and (n.status, n.attempts, n.failure_reason) == (
        "failed", 1, "provider_rejected")
    assert _shape(await store.deliveries.attempts(r.id)) == [(1, "failed", "permanent", 404)]


async def test_a_crash_inside_send_fails_the_row_as_technical(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel(script=[ZeroDivisionError("bug")])
    r, _ = await _one(store, clock, ch)
    await dispatcher(store, clock, ch).run_until_idle()
    n = await store.notifications.get(r.id)
    assert n is not None and n.status == "failed"
    assert "internal channel error: ZeroDivisionError" in (n.failure_details or "")
    assert _shape(await store.deliveries.attempts(r.id)) == [(1, "failed", "technical", None)]


async def test_an_outcome_write_failure_is_retried(store: Store) -> None:
    clock, ch = Clock(), FakeChannel()
    complete = store.notifications.complete
    failures = [StoreError("database is locked")] * 2

    async def flaky(outcomes: Sequence[Outcome], now: float | None = None) -> None:
        if failures:
            raise failures.pop()
        await complete(outcomes, now)

    setattr(store.notifications, "complete", flaky)  # noqa: B010 (a seam, not a mock)
    r, _ = await _one(store, clock, ch)
    assert await dispatcher(store, clock, ch).run_until_idle() == 1
    n = await store.notifications.get(r.id)
    assert n is not None and n.status == "delivered" and len(ch.sent) == 1
    assert not failures


async def test_one_refused_outcome_does_not_sink_the_batch(store: Store) -> None:
    clock, ch = Clock(), FakeChannel()
    complete = store.notifications.complete
    rows = [row(clock) for _ in range(5)]
    bad = rows[2].id

    async def refusing(outcomes: Sequence[Outcome], now: float | None = None) -> None:
        if any(o.id == bad for o in outcomes):
            raise StoreError("constraint failed")
        await complete(outcomes, now)

    setattr(store.notifications, "complete", refusing)  # noqa: B010 (a seam, not a mock)
    await store.notifications.create(rows)
    await dispatcher(store, clock, ch).run_until_idle()
    statuses = [(await store.notifications.get(r.id)).status  # type: ignore[union-attr]
                for r in rows]
    assert statuses == ["delivered", "delivered", "queued", "delivered", "delivered"]


async def test_shutdown_grace(store: Store) -> None:
    # Deliveries still running when the grace ends are cancelled: the row stays queued and is
    # due again at the next start (its abandoned claim is counted, not as an attempt).
    clock = Clock()
    slow, fast = FakeChannel("slow"), FakeChannel("fast")
    slow.gate = asyncio.Event()
    rs, rf = row(clock, channel="slow"), row(clock, channel="fast")
    await store.notifications.create([rs, rf])
    d = dispatcher(store, clock, slow, fast, poll_interval=0.01)
    await d.start()
    await wait_for(lambda: len(fast.sent) == 1 and slow.in_flight == 1)
    await d.stop(grace=0.0)
    n = await store.notifications.get(rs.id)
    assert n is not None and (n.status, n.attempts) == ("queued", 0)
    assert (await store.notifications.get(rf.id)).status == "delivered"  # type: ignore[union-attr]
    assert await store.notifications.release_claims() == 1
    slow.gate.set()
    again = dispatcher(store, clock, slow, fast)
    assert await again.run_until_idle() == 1
    assert (await store.notifications.get(rs.id)).status == "delivered"  # type: ignore[union-attr]


async def test_priority_order(store: Store) -> None:
    clock = Clock()
    ch = FakeChannel()
    # Oldest first would be low, normal, high: priority comes before age among due rows.
    rows = [row(clock, priority=p, due_in=-i) for i, p in
            enumerate(["high", "normal", "low", "high", "normal", "low"])]
    rows.reverse()
    await store.notifications.create(rows)
    d = dispatcher(store, clock, ch, max_in_flight=1, claim_batch=1)
    assert await d.run_until_idle() == 6
    assert [m.priority for m in ch.sent] == ["high", "high", "normal", "normal", "low", "low"]


async def test_the_claim_walks_the_priority_index(store: Store) -> None:
    from agent.store.notifications import _CANDIDATES

    def plan(conn: Any) -> list[str]:
        return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + _CANDIDATES,
                                           ("high", T0, T0, 10))]

    steps = await store.db.read(plan)
    assert any("notifications_claim" in s for s in steps), steps
    assert not any("TEMP B-TREE" in s for s in steps), steps


class HostChannel(FakeChannel):
    """A webhook-like channel: the destination is the host; sends to a gated host wait."""

    def __init__(self) -> None:
        super().__init__("hooks")
        self.gates: dict[str, asyncio.Event] = {}
        self.per_host: dict[str, int] = {}
        self.max_per_host: dict[str, int] = {}

    def destination_key(self, to: str) -> str:
        return to.split("/")[2]

    async def send(self, message: Message) -> DeliveryResult:
        host = self.destination_key(message.to)
        self.per_host[host] = self.per_host.get(host, 0) + 1
        self.max_per_host[host] = max(self.max_per_host.get(host, 0), self.per_host[host])
        try:
            if host in self.gates:
                await self.gates[host].wait()
            self.sent.append(message)
            return DeliveryResult(http_status=200)
        finally:
            self.per_host[host] -= 1


async def test_a_slow_destination_cannot_take_every_slot(store: Store) -> None:
    clock = Clock()
    ch = HostChannel()
    ch.gates["slow.example"] = asyncio.Event()
    slow = [row(clock, channel="hooks", to="http://slow.example/h", due_in=-10)
            for _ in range(6)]
    fast = [row(clock, channel="hooks", to="http://fast.example/h") for _ in range(3)]
    await store.notifications.create(slow + fast)
    d = dispatcher(store, clock, ch, max_in_flight=6, max_in_flight_per_destination=2,
                   poll_interval=5.0)
    run = asyncio.create_task(d.run_until_idle())
    try:
        # The slow host's rows are older, so they are claimed first: two run, two wait.
        await wait_for(lambda: ch.per_host.get("slow.example") == 2)
        assert ch.sent == []
        # Nothing came back from the slow host for two polls: it is stuck, its waiting rows
        # go back to the outbox and the claim reaches the fast host's rows behind them.
        clock.advance(10.0)
        d.wake()
        await wait_for(lambda: len(ch.sent) == 3)
        assert {m.to for m in ch.sent} == {"http://fast.example/h"}
        assert ch.max_per_host["slow.example"] == 2 and ch.max_per_host["fast.example"] <= 2
    finally:
        ch.gates["slow.example"].set()
        await asyncio.wait_for(run, 5.0)
    # The rows given back are due again later; nothing was counted against them.
    clock.advance(60.0)
    assert await d.run_until_idle() == 4
    assert len(ch.sent) == 9 and ch.max_per_host["slow.example"] == 2
    ns = [await store.notifications.get(r.id) for r in slow]
    assert all(n is not None and (n.status, n.attempts) == ("delivered", 1) for n in ns)


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll a condition of the event loop's own progress, with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0)


def retryable(status: int) -> RetryableDeliveryError:
    return RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE, f"HTTP {status}",
                                  http_status=status)


def rate_limited(retry_after: float) -> RetryableDeliveryError:
    return RetryableDeliveryError(FailureReason.RATE_LIMITED, "HTTP 429", retry_after,
                                  http_status=429)
