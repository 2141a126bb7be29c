"""The ingest use cases: normalized alerts -> routing decisions -> one store transaction, and
resolving an alert by id. The API, the CLI and a chat button call these, not the store.

The rule set is read once per payload, so a reload in the middle of a request cannot route half
of it with the old rules and half with the new.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from agent.domain import (
    TEST_MODE,
    Alert,
    AlertIntake,
    AlertStatus,
    AlertType,
    GroupRef,
    StoredAlert,
)
from agent.observability import Metrics
from agent.routing.inhibit import Inhibitor
from agent.routing.router import restrict, route_alert
from agent.routing.ruleset import RuleSet
from agent.store.alerts import AlertStore, IngestResult
from agent.store.idempotency import IdemRequest

_TYPES = frozenset(t.value for t in AlertType)
_CHUNK = 256  # alerts checked or routed between two turns of the event loop


def describe(alert: Alert) -> tuple[str, str | None, str | None]:
    """(type, monitor_id, message) of an alert, from its labels and annotations."""
    labels, ann = alert.labels, alert.annotations
    kind = labels.get("type", "")
    kind = kind if kind in _TYPES else AlertType.CUSTOM.value
    monitor = labels.get("monitor_id") or labels.get("instance") or labels.get("alertname")
    message = ann.get("summary") or ann.get("description") or ann.get("message") \
        or labels.get("alertname")
    return kind, monitor, message


def intake(rules: RuleSet, alert: Alert, channels: frozenset[str] | None = None) -> AlertIntake:
    """Route one alert; ``channels`` (API alerts) keeps only notify targets of those channels.

    A test-mode alert groups apart from live ones, and its group's notifications are simulated.
    """
    decisions = route_alert(rules, alert)
    groups = []
    for d in decisions:
        snap, key = rules.snapshot(d.route), d.group_key
        if channels is not None:
            # A restricted alert groups apart: its group notifies fewer channels.
            snap = {**snap, "channels": sorted(channels)}
            snap["notify"] = restrict(snap["notify"], channels)
            key = hashlib.sha256(f"{key}|{','.join(snap['channels'])}".encode()).hexdigest()[:32]
        if alert.mode == TEST_MODE:
            snap = {**snap, "mode": TEST_MODE}
            key = hashlib.sha256(f"{key}|{TEST_MODE}".encode()).hexdigest()[:32]
        groups.append(GroupRef(key=key, route_id=d.route.id, labels=d.group_labels,
                               route=snap, group_wait=d.route.group_wait,
                               group_interval=d.route.group_interval))
    severity = decisions[0].severity if decisions else rules.severity_map.severity_of(
        alert.labels)
    kind, monitor, message = describe(alert)
    return AlertIntake(alert, severity, kind, monitor, message, groups)


class Inhibition:
    """The current inhibitor; rebuilt from the store when the rules change."""

    def __init__(self, store: AlertStore) -> None:
        self._store = store
        self.current = Inhibitor(())
        self._pending: Inhibitor | None = None
        self._lock = asyncio.Lock()  # rebuilds one at a time, in the order the rules swapped

    def observe(self, key: tuple[str, str], labels: Mapping[str, str], active: bool) -> None:
        self.current.observe(key, labels, active)
        if self._pending is not None:
            self._pending.observe(key, labels, active)

    async def rebuild(self, rules: RuleSet) -> None:
        async with self._lock:
            fresh = Inhibitor(rules.inhibit_rules)
            fresh.begin_rebuild()
            self._pending = fresh
            try:
                snapshot = await self._store.active_labels() if fresh.rules else []
            finally:
                self._pending = None
            fresh.finish_rebuild(snapshot)
            self.current = fresh


def digest(alert: Alert) -> int:
    """What a repeat may change about an active alert (labels are its fingerprint): every
    field the store updates on a repeat, so a changed one is never taken for unchanged."""
    extra = orjson.dumps(alert.extra, option=orjson.OPT_SORT_KEYS) if alert.extra else None
    return hash((tuple(sorted(alert.annotations.items())), alert.ends_at, alert.generator_url,
                 extra))


class ActiveAlerts:
    """Which alerts are active, in memory, so a repeat is recognised without a database round trip.

    A cache of the store (rebuilt from it at start), updated only after commits. Senders repeat
    firing alerts all the time (Alertmanager on every group_interval): an unchanged repeat changes
    no state, so it is answered at once and only its receipt counters are written, batched.
    """

    def __init__(self) -> None:
        # (source, fingerprint) -> (alert id, digest, hash of the rules it was routed with)
        self._by_key: dict[tuple[str, str], tuple[str, int, str]] = {}
        # alert id -> (receipts not yet written, last receipt time)
        self.receipts: dict[str, tuple[int, float]] = {}

    def load(self, rows: Iterable[tuple[tuple[str, str], str, Alert]]) -> None:
        # Loaded entries carry no rules hash: their first repeat is routed again (cheap, once).
        self._by_key = {key: (aid, digest(a), "") for key, aid, a in rows}

    def repeat_of(self, a: Alert, rules_hash: str) -> str | None:
        """The id of the active alert this unchanged firing alert repeats, under the same rules."""
        if a.status != AlertStatus.FIRING.value:
            return None
        hit = self._by_key.get((a.source, a.fingerprint))
        if hit is None or hit[2] != rules_hash or hit[1] != digest(a):
            return None
        return hit[0]

    def record(self, a: Alert, alert_id: str | None, outcome: str, rules_hash: str) -> None:
        key = (a.source, a.fingerprint)
        if outcome in ("created", "updated") and alert_id is not None:
            self._by_key[key] = (alert_id, digest(a), rules_hash)
        else:
            self._by_key.pop(key, None)

    def forget(self, source: str, fingerprint: str) -> None:
        self._by_key.pop((source, fingerprint), None)

    def count_receipt(self, alert_id: str, at: float) -> None:
        n, _ = self.receipts.get(alert_id, (0, at))
        self.receipts[alert_id] = (n + 1, at)

    def take_receipts(self) -> dict[str, tuple[int, float]]:
        out, self.receipts = self.receipts, {}
        return out

    def __len__(self) -> int:
        return len(self._by_key)


@dataclass
class Intake:
    """Stores alerts of any source after routing them with the current rules."""

    store: AlertStore
    rules: Callable[[], RuleSet]
    metrics: Metrics
    clock: Callable[[], float]
    on_groups_changed: Callable[[], None]
    inhibition: Inhibition
    active: ActiveAlerts = field(default_factory=ActiveAlerts)

    async def ingest(self, alerts: Sequence[Alert],
                     channels: Mapping[int, frozenset[str]] | None = None,
                     idem: IdemRequest | None = None) -> IngestResult:
        """Store what is new or changed (one transaction), then answer for all of it.

        With ``idem`` (one alert: ``POST /v1/alerts``) the key is checked and bound in the
        store's transaction, so even an unchanged repeat goes there.
        """
        now = self.clock()
        rules = self.rules()
        ids: list[str | None] = [None] * len(alerts)
        outcomes = [""] * len(alerts)
        fresh: list[int] = []
        for i, a in enumerate(alerts):
            if i and i % _CHUNK == 0:
                await asyncio.sleep(0)  # a 10,000-alert payload: let other requests in
            repeat = None if idem is not None else self.active.repeat_of(a, rules.config_hash)
            if repeat is None:
                fresh.append(i)
            else:
                ids[i], outcomes[i] = repeat, "updated"
                self.active.count_receipt(repeat, now)
        result = IngestResult(ids=ids, outcomes=outcomes, updated=len(alerts) - len(fresh))
        if not fresh:
            return result
        items = []
        for n, i in enumerate(fresh):
            if n and n % _CHUNK == 0:
                await asyncio.sleep(0)  # routing 10,000 alerts takes ~0.3 s
            items.append(intake(rules, alerts[i], (channels or {}).get(i)))
        stored = await self.store.ingest(items, now, idem)
        if stored.replayed:
            return stored
        # The results are applied in one go: a repeat must not meet an alert that the commit
        # resolved while the in-memory index still says active.
        for i, it, aid, outcome in zip(fresh, items, stored.ids, stored.outcomes, strict=True):
            ids[i], outcomes[i] = aid, outcome
            a = it.alert
            self.active.record(a, aid, outcome, rules.config_hash)
            if outcome in ("created", "resolved") and a.mode != TEST_MODE:
                # Test alerts never mute live ones.
                self.inhibition.observe((a.source, a.fingerprint), a.labels,
                                        outcome == "created")
        result.created, result.resolved, result.stale = (
            stored.created, stored.resolved, stored.stale)
        result.updated += stored.updated
        result.groups_touched = stored.groups_touched
        self._escalations_cancelled(stored.escalations_cancelled)
        if stored.groups_touched:
            self.on_groups_changed()
        return result

    async def resolve(self, alert_id: str, message: str | None, mode: str,
                      resolve: bool = True) -> StoredAlert | None:
        """Resolve an active alert of key mode `mode` by id and/or set its message; None when
        unknown or of the other mode. A resolve lifts the inhibitions it caused, leaves the
        active-alert index and wakes the grouper, as a resolve posted by a source does."""
        done = await self.store.resolve(alert_id, message, self.clock(), mode, resolve=resolve)
        if done is None:
            return None
        found, cancelled = done
        self._escalations_cancelled(cancelled)
        if resolve:
            if found.mode != TEST_MODE:
                self.inhibition.observe((found.source, found.fingerprint), found.labels, False)
            self.active.forget(found.source, found.fingerprint)
            self.on_groups_changed()
        return found

    def _escalations_cancelled(self, steps: int) -> None:
        if steps:
            self.metrics.escalation_steps.labels("cancelled").inc(steps)

    async def load(self) -> None:
        """Fill the active-alert index from the store (at start)."""
        self.active.load(await self.store.active_alerts())

    async def flush_receipts(self) -> None:
        """Write the batched receipt counters of repeats (periodically and at shutdown)."""
        pending = self.active.take_receipts()
        if pending:
            await self.store.record_receipts(pending)
