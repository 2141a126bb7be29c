"""The dispatcher with a fake channel and a fake clock, on a real (temporary) SQLite store: what
each kind of outcome does to the row and to its attempts, and how outcomes are written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent.channels.base import DeliveryResult, Message
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.retry import RetryPolicy
from agent.domain import NewNotification, new_id
from agent.observability import Metrics
from agent.store import Store
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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(tmp_path / "d.db", Metrics(CollectorRegistry()))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


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

    async def counting(outcomes: Sequence[Outcome]) -> None:
        calls.append(len(outcomes))
        await complete(outcomes)

    setattr(store.notifications, "complete", counting)  # noqa: B010 (a seam, not a mock)
    await store.notifications.create([row(clock) for _ in range(50)])
    d = dispatcher(store, clock, FakeChannel())
    assert await d.run_until_idle() == 50
    assert sum(calls) == 50 and len(calls) <= 2, calls
    delivered = await store.notifications.outbox_stats(clock())
    assert delivered == (0, 0, None)
