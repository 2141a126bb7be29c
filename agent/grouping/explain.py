"""``alert-agent routes test``: which routes an alert takes and what each would send."""

from __future__ import annotations

from agent.domain import (
    Alert,
    AlertStatus,
    GroupMember,
    GroupSnapshot,
    StoredAlert,
    fingerprint_of,
    now,
)
from agent.grouping.flush import build_flush, plan
from agent.routing.router import route_alert
from agent.routing.ruleset import RuleSet


def explain(rules: RuleSet, source: str, labels: dict[str, str],
            annotations: dict[str, str]) -> str:
    """A human-readable report, like ``amtool config routes test`` plus the rendered text."""
    t = now()
    alert = Alert(source=source, fingerprint=fingerprint_of(labels),
                  status=AlertStatus.FIRING.value, labels=labels, annotations=annotations,
                  starts_at=t)
    lines = []
    for d in route_alert(rules, alert):
        route = rules.snapshot(d.route)
        stored = StoredAlert(
            seq=1, id="alt_example", source=source, fingerprint=alert.fingerprint,
            status="active", type="custom", monitor_id=None, alertname=labels.get("alertname"),
            message=annotations.get("summary"), severity=d.severity, labels=labels,
            annotations=annotations, extra=None, generator_url=None, starts_at=t, ends_at=None,
            created_at=t, updated_at=t, resolved_at=None, last_received_at=t, receive_count=1)
        group = GroupSnapshot(id=0, key=d.group_key, route_id=d.route.id, route=route,
                              labels=d.group_labels, version=0, last_flush_at=None,
                              created_at=t, members=[GroupMember(stored, "firing", None)])
        flush = build_flush(group, route, plan(group.members, None, route, t, False), t)
        grouping = ", ".join(f"{k}={v}" for k, v in d.group_labels.items()) or "(one group)"
        lines.append(f"route: {d.route.name}")
        lines.append(f"  severity: {d.severity}   priority: {d.route.priority}")
        lines.append(f"  group by: {grouping}   wait {d.route.group_wait:g}s, interval "
                     f"{d.route.group_interval:g}s, repeat {d.route.repeat_interval:g}s")
        for n in flush.notifications:
            lines.append(f"  -> {n.channel} {n.recipient}:")
            lines.extend(f"       {line}" for line in (n.message or "").splitlines())
    return "\n".join(lines)
