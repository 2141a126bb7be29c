"""The alert intake: normalized alerts -> routing decisions -> one store transaction.

The rule set is read once per payload, so a reload in the middle of a request cannot route half
of it with the old rules and half with the new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.domain import Alert, AlertIntake, AlertType, GroupRef
from agent.observability import Metrics
from agent.routing.inhibit import Inhibitor
from agent.routing.router import route_alert
from agent.routing.ruleset import RuleSet
from agent.store.alerts import AlertStore, IngestResult

_TYPES = frozenset(t.value for t in AlertType)


def describe(alert: Alert) -> tuple[str, str | None, str | None]:
    """(type, monitor_id, message) of an alert, from its labels and annotations."""
    labels, ann = alert.labels, alert.annotations
    kind = labels.get("type", "")
    kind = kind if kind in _TYPES else AlertType.CUSTOM.value
    monitor = labels.get("monitor_id") or labels.get("instance") or labels.get("alertname")
    message = ann.get("summary") or ann.get("description") or ann.get("message") \
        or labels.get("alertname")
    return kind, monitor, message


def restrict(notify: list[dict[str, Any]], channels: Iterable[str]) -> list[dict[str, Any]]:
    allowed = set(channels)
    return [t for t in notify if t["channel"] in allowed]


def intake(rules: RuleSet, alert: Alert, channels: frozenset[str] | None = None) -> AlertIntake:
    """Route one alert; ``channels`` (API alerts) keeps only notify targets of those channels."""
    decisions = route_alert(rules, alert)
    groups = []
    for d in decisions:
        snap, key = rules.snapshot(d.route), d.group_key
        if channels is not None:
            # A restricted alert groups apart: its group notifies fewer channels.
            snap = {**snap, "channels": sorted(channels)}
            snap["notify"] = restrict(snap["notify"], channels)
            key = hashlib.sha256(f"{key}|{','.join(snap['channels'])}".encode()).hexdigest()[:32]
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

    def observe(self, key: tuple[str, str], labels: Mapping[str, str], active: bool) -> None:
        self.current.observe(key, labels, active)
        if self._pending is not None:
            self._pending.observe(key, labels, active)

    async def rebuild(self, rules: RuleSet) -> None:
        fresh = Inhibitor(rules.inhibit_rules)
        fresh.begin_rebuild()
        self._pending = fresh
        try:
            snapshot = await self._store.active_labels() if fresh.rules else []
        finally:
            self._pending = None
        fresh.finish_rebuild(snapshot)
        self.current = fresh


@dataclass
class Intake:
    """Stores alerts of any source after routing them with the current rules."""

    store: AlertStore
    rules: Callable[[], RuleSet]
    metrics: Metrics
    clock: Callable[[], float]
    on_groups_changed: Callable[[], None]
    inhibition: Inhibition

    async def ingest(self, alerts: Sequence[Alert],
                     channels: Mapping[int, frozenset[str]] | None = None) -> IngestResult:
        rules = self.rules()
        items = [intake(rules, a, (channels or {}).get(i)) for i, a in enumerate(alerts)]
        result = await self.store.ingest(items, self.clock())
        for it, outcome in zip(items, result.outcomes, strict=True):
            if outcome in ("created", "resolved"):
                a = it.alert
                self.inhibition.observe((a.source, a.fingerprint), a.labels,
                                        outcome == "created")
        if result.groups_touched:
            self.on_groups_changed()
        return result
