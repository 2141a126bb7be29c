"""The grouper: flushes due alert groups into notifications on the outbox.

Groups live in the store with a ``next_flush_at``; this loop claims the due ones, decides with
the pure ``grouping`` functions, and records the outcome (notifications included) in one
transaction. A crash between claim and record leaves the claim to expire: nothing is lost.

A group whose flush fails (a stored value that cannot be read or rendered, a write the database
refuses) fails alone: the others of its round are recorded, and it is due again only after an
exponential back-off, so one bad group neither blocks every other nor spins the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from agent.clock import SYSTEM_CLOCK, Clock, as_clock, wait_event
from agent.directory import Directory, flush_rows
from agent.domain import FlushResult, GroupSnapshot, NewNotification, new_id
from agent.grouping.flush import build_flush, plan
from agent.loops.backoff import Backoff
from agent.loops.waker import Waker
from agent.observability import Metrics, get_logger
from agent.routing.inhibit import Inhibitor
from agent.routing.router import restrict
from agent.routing.ruleset import RuleSet
from agent.routing.timeintervals import in_any
from agent.store.alerts import AlertStore
from agent.store.escalations import DueStep, EscalationStore

log = get_logger("grouper")


class Grouper:
    def __init__(
        self,
        alerts: AlertStore,
        rules: Callable[[], RuleSet],
        metrics: Metrics,
        on_queued: Callable[[], None],
        inhibitor: Callable[[], Inhibitor],
        *,
        batch: int = 256,
        poll_interval: float = 1.0,
        claim_lease: float = 300.0,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
        backoff_base: float = 1.0,
        backoff_max: float = 300.0,
        escalations: EscalationStore | None = None,
    ) -> None:
        self._store = alerts
        # Due escalation steps fire in the grouper's rounds: it has the clock and the rules.
        self._escalations = escalations
        self._rules = rules
        self._metrics = metrics
        self._on_queued = on_queued
        self._inhibitor = inhibitor
        self._batch = batch
        self._lease = claim_lease
        self._clock = as_clock(clock)
        self._waker = Waker(poll_interval, self._clock)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._group_backoff: Backoff[int] = Backoff(backoff_base, backoff_max)
        # A failing round is the store failing, not a group: retried sooner once it is back.
        self._round_backoff: Backoff[str] = Backoff(backoff_base, min(backoff_max, 60.0))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._waker.wake()

    async def start(self) -> None:
        await self._store.release_group_claims()
        self._task = asyncio.create_task(self._run(), name="grouper")

    async def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._waker.wake()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Flush every group due now; return how many were processed (tests, tools).

        Raises RuntimeError when groups are still due after ``max_rounds`` rounds: a group
        interval of 0 under a clock that stands still would flush forever.
        """
        total = 0
        for _ in range(max_rounds):
            n = await self._round()
            if not n:
                return total
            total += n
        raise RuntimeError(f"groups still due after {max_rounds} rounds")

    async def _round(self) -> int:
        t = self._clock.now()
        fired = await self._escalate(t)
        return fired + await self._flush_round(t)

    async def _escalate(self, t: float) -> int:
        """Fire the escalation steps due at ``t``; how many steps were handled."""
        if self._escalations is None:
            return 0
        due = await self._escalations.next_due()  # a read: no write transaction per round
        if due is None or due > t:
            return 0
        rules = self._rules()
        fired, cancelled, queued = await self._escalations.fire_due(
            t, self._batch, lambda step: escalation_rows(rules.directory, step, t))
        if fired:
            self._metrics.escalation_steps.labels("fired").inc(fired)
            log.info("escalation_steps_fired", steps=fired, notifications=queued)
        if cancelled:
            self._metrics.escalation_steps.labels("cancelled").inc(cancelled)
        if queued:
            self._on_queued()
        return fired + cancelled

    async def _next_due(self) -> float | None:
        due = [await self._store.next_group_due()]
        if self._escalations is not None:
            due.append(await self._escalations.next_due())
        return min((d for d in due if d is not None), default=None)

    async def _flush_round(self, t: float) -> int:
        inhibitor = self._inhibitor()
        groups = await self._store.claim_groups(
            t, self._batch, self._lease, muted=inhibitor.inhibited if inhibitor.rules else None)
        if not groups:
            return 0
        rules = self._rules()
        results: list[FlushResult] = []
        failed: dict[int, tuple[str, Exception]] = {}
        for g in groups:
            if g.error is not None:
                failed[g.id] = ("load", g.error)
                continue
            try:
                results.append(self.flush(g, rules, t))
            except Exception as exc:
                failed[g.id] = ("plan", exc)
        try:
            outcome = await self._store.apply_flushes(results)
        except Exception:
            # Don't sit on the claims for a whole lease: let the next round try again.
            with contextlib.suppress(Exception):
                await self._store.release_group_claims([g.id for g in groups])
            raise
        failed.update((gid, ("record", exc)) for gid, exc in outcome.failed.items())
        for r in results:
            if r.group_id not in failed:
                self._group_backoff.succeeded(r.group_id)
        if failed:
            await self._back_off({g.id: g for g in groups}, failed, t)
        if outcome.queued:
            self._metrics.group_notifications.inc(outcome.queued)
            self._on_queued()
        return len(groups)

    async def _back_off(self, groups: Mapping[int, GroupSnapshot],
                        failed: Mapping[int, tuple[str, Exception]], t: float) -> None:
        until = {}
        for gid, (stage, exc) in failed.items():
            n, delay = self._group_backoff.failed(gid)
            until[gid] = t + delay
            self._metrics.group_flush_failures.labels(stage).inc()
            log.error("group_flush_failed", group_key=groups[gid].key, stage=stage,
                      failures=n, retry_in=delay, error=str(exc), exc_info=exc)
        await self._store.defer_groups(until)

    def flush(self, group: GroupSnapshot, rules: RuleSet, t: float) -> FlushResult:
        """Decide one group's flush with the current route of its id (or its snapshot)."""
        current = rules.routes_by_id.get(group.route_id)
        route = rules.snapshot(current) if current is not None else group.route
        if "channels" in group.route:
            route = {**route, "notify": restrict(route["notify"], group.route["channels"])}
        if "mode" in group.route:  # a test-mode group stays simulated under any rules
            route = {**route, "mode": group.route["mode"]}
        muted = self._muted(route, rules, t)
        decision = plan(group.members, group.last_flush_at, route, t, muted, group.inhibited)
        result = build_flush(group, route, decision, t)
        if result.notifications:
            # `oncall:team_x` reaches whoever is on call at the flush, not when the alert came.
            result.notifications = flush_rows(rules.directory, result.notifications, new_id,
                                              at=t)
        if decision.notify:
            log.info("group_notified", group_key=group.key, route=route.get("name"),
                     reason=decision.reason, alerts=len(decision.alerts),
                     notifications=[n.id for n in result.notifications])
        if decision.reason == "muted" or decision.held_back:
            self._metrics.groups_muted.inc()
        return result

    @staticmethod
    def _muted(route: Mapping[str, Any], rules: RuleSet, t: float) -> bool:
        when = datetime.fromtimestamp(t, tz=UTC)
        active = [i for name in route.get("active_time_intervals", [])
                  for i in rules.time_intervals.get(name, ())]
        if route.get("active_time_intervals") and not in_any(active, when):
            return True
        mute = [i for name in route.get("mute_time_intervals", [])
                for i in rules.time_intervals.get(name, ())]
        return bool(mute) and in_any(mute, when)

    async def _run(self) -> None:
        while not self._stopping:
            self._waker.clear()
            try:
                n = await self._round()
            except Exception as exc:  # the store failed: keep flushing later, not at once
                failures, delay = self._round_backoff.failed("round")
                self._metrics.group_flush_failures.labels("round").inc()
                log.error("group_round_failed", failures=failures, retry_in=delay,
                          error=str(exc), exc_info=exc)
                # Not the waker: new alerts arriving must not cut the back-off short.
                await wait_event(self._clock, self._stopped, delay)
                continue
            self._round_backoff.succeeded("round")
            if n < self._batch and not self._stopping:
                await self._waker.idle(self._next_due)


def escalation_rows(directory: Directory, step: DueStep, now: float) -> list[NewNotification]:
    """A due step's notifications, made now: each target fans out through the directory as it
    is at this moment (``oncall:`` reaches whoever is on call now)."""
    n = step.notification
    mark = f"[Escalation {step.step + 1}/{step.steps}]"
    subject = n.get("subject")
    items = [NewNotification(
        id=new_id("ntf"), channel=t["channel"], recipient=t["to"],
        message=f"{mark} {n.get('message') or ''}",
        subject=f"{mark} {subject}" if subject else None, template_id=None, template_body=None,
        severity=n["severity"], priority="high",
        metadata={**n["metadata"], "reason": "escalation", "status": "firing",
                  "escalation": {"run": step.run, "step": step.step, "until": step.until},
                  "update": "new",
                  **{k: t[k] for k in ("overflow", "content_sid") if k in t},
                  **({"preferred_channels": t["channels"]} if t.get("channels") else {})},
        idempotency_key=None, request_hash=None, simulated=bool(n.get("simulated")),
        api_key_id=None, schedule_at=None, due_at=now, created_at=now)
        for t in step.targets]
    return flush_rows(directory, items, new_id, at=now)
