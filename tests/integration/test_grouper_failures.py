"""One group whose flush fails must not stop the others, and is retried with back-off, not in
a tight loop. Real SQLite store, the real grouper, a fake clock advanced by hand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.clock import FakeClock
from agent.domain import Alert, FlushResult, GroupSnapshot, fingerprint_of
from agent.grouping.grouper import Grouper
from agent.observability import Metrics
from agent.routing.inhibit import Inhibitor
from agent.routing.loader import load_rules
from agent.routing.ruleset import RuleSet
from agent.services.ingest import Inhibition, Intake
from agent.store import Store, StoreError
from agent.store.alerts import FlushOutcome
from agent.store.notifications import ListFilter
from tests.helpers import wait_until

RULES = """
defaults:
  notify: [{channel: in-app, to: ops}]
  group_wait: 0s
  group_interval: 1s
  group_by: [alertname]
"""
T0 = 1_800_000_000.0
POISON = "Poison"


class PoisonedGrouper(Grouper):
    """Deciding the flush of the poisoned group raises, as a bad stored value would."""

    def flush(self, group: GroupSnapshot, rules: RuleSet, t: float) -> FlushResult:
        if group.labels.get("alertname") == POISON:
            raise ValueError("year 10000 is out of range")
        return super().flush(group, rules, t)


@dataclass
class Env:
    store: Store
    intake: Intake
    grouper: Grouper
    metrics: Metrics
    clock: FakeClock
    rules: RuleSet

    async def fire(self, name: str) -> None:
        labels = {"alertname": name}
        await self.intake.ingest([Alert(source="api", fingerprint=fingerprint_of(labels),
                                        status="firing", labels=labels, annotations={},
                                        starts_at=self.clock.now())])

    async def notified(self, name: str) -> int:
        rows, _ = await self.store.notifications.page(ListFilter(limit=100))
        return sum(1 for n in rows if name in (n.message or ""))

    def failures(self, stage: str) -> float:
        return float(self.metrics.group_flush_failures.labels(stage)._value.get())


def build(store: Store, tmp_path: Path, grouper_cls: type[Grouper] = Grouper) -> Env:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "r.yaml").write_text(RULES)
    rules = load_rules(rules_dir)
    metrics, clock = Metrics(CollectorRegistry()), FakeClock(T0)
    grouper = grouper_cls(store.alerts, lambda: rules, metrics, lambda: None,
                          lambda: Inhibitor(()), clock=clock, backoff_base=1.0,
                          backoff_max=30.0)
    intake = Intake(store.alerts, lambda: rules, metrics, clock.now, lambda: None,
                    Inhibition(store.alerts))
    return Env(store, intake, grouper, metrics, clock, rules)


async def _poison(env: Env, stage: str) -> None:
    if stage == "load":  # an alert whose stored annotations this build cannot decode
        await env.store.db.write(lambda c: c.execute(
            "UPDATE alerts SET annotations = '{broken' WHERE alertname = ?", (POISON,)))
    elif stage == "record":  # the database refuses to store this group's notification
        await env.store.db.write(lambda c: c.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON notifications WHEN NEW.message LIKE "
            f"'%{POISON}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"))


async def _cure(env: Env, stage: str) -> None:
    if stage == "load":
        await env.store.db.write(lambda c: c.execute(
            "UPDATE alerts SET annotations = '{}' WHERE alertname = ?", (POISON,)))
    elif stage == "record":
        await env.store.db.write(lambda c: c.execute("DROP TRIGGER poison"))


@pytest.mark.parametrize("stage", ["load", "plan", "record"])
async def test_a_failing_group_fails_alone_and_backs_off(
    store: Store, tmp_path: Path, stage: str
) -> None:
    env = build(store, tmp_path, PoisonedGrouper if stage == "plan" else Grouper)
    await env.fire(POISON)
    await env.fire("Fine")
    await _poison(env, stage)

    await env.grouper.run_until_idle()  # one round claims both groups
    assert await env.notified("Fine") == 1, "a failing group stopped another group's flush"
    assert await env.notified(POISON) == 0
    assert env.failures(stage) == 1
    # The failing group is due again only after its back-off: the loop idles instead of
    # claiming it again at once.
    due = await store.alerts.next_group_due()
    assert due is not None and due >= env.clock.now() + 1.0

    # Another group's alert arriving meanwhile is still notified.
    env.clock.advance(0.5)
    await env.fire("Other")
    await env.grouper.run_until_idle()
    assert await env.notified("Other") == 1

    # 60 s of rounds every 0.1 s: retried at +1, +3, +7, +15, +31 s (doubling), not 600 times.
    for _ in range(600):
        env.clock.advance(0.1)
        await env.grouper.run_until_idle()
    assert 5 <= env.failures(stage) <= 7, env.failures(stage)
    assert await env.notified("Fine") == 1 and await env.notified(POISON) == 0

    if stage == "plan":
        return
    # Once the cause is gone the group notifies at its next retry (at most 30 s later).
    await _cure(env, stage)
    for _ in range(31):
        env.clock.advance(1.0)
        await env.grouper.run_until_idle()
    assert await env.notified(POISON) == 1
    assert 5 <= env.failures(stage) <= 8


class DownStore:
    """The grouper's store while the database refuses every write of a round."""

    def __init__(self, real: Store, clock: FakeClock) -> None:
        self.real = real.alerts
        self.clock = clock
        self.attempts: list[float] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    async def apply_flushes(self, results: list[FlushResult]) -> FlushOutcome:
        self.attempts.append(self.clock.monotonic())
        raise StoreError("database or disk is full")


async def test_a_failing_round_backs_off_in_the_running_loop(
    store: Store, tmp_path: Path
) -> None:
    env = build(store, tmp_path)
    await env.fire("Fine")
    down = DownStore(store, env.clock)
    grouper = Grouper(down, lambda: env.rules, env.metrics, lambda: None,  # type: ignore[arg-type]
                      lambda: Inhibitor(()), poll_interval=0.05, clock=env.clock,
                      backoff_base=0.1, backoff_max=1.0)
    await grouper.start()
    try:
        for n in range(1, 5):
            # The loop parks in its back-off sleep on the clock after each failed round.
            await wait_until(lambda n=n: len(down.attempts) == n  # type: ignore[misc]
                             and env.clock.sleepers == 1)
            grouper.wake()  # new alerts arriving must not cut the back-off short
            for _ in range(50):  # let every ready task run: nothing here waits on real time
                await asyncio.sleep(0)
            assert len(down.attempts) == n and env.clock.sleepers == 1
            wait = env.clock.next_wake()
            assert wait is not None
            env.clock.advance(wait)
    finally:
        await grouper.stop()
    gaps = [b - a for a, b in zip(down.attempts, down.attempts[1:], strict=False)]
    # 0.1, 0.2, 0.4 s: doubling, not a tight loop.
    assert gaps == pytest.approx([0.1, 0.2, 0.4]), gaps
    assert env.failures("round") >= 4
