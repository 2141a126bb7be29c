"""Pure grouping decisions: when a group notifies, about which alerts, with what text.

Like Alertmanager's dedup stage: a group notifies when an alert fired that it has not told about
yet, or (``send_resolved``) when an alert it told about as firing resolved; otherwise it repeats
its firing alerts every ``repeat_interval``. ``now`` is passed in; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.domain import (
    TEST_MODE,
    AlertStatus,
    FlushResult,
    GroupMember,
    GroupSnapshot,
    NewNotification,
    Severity,
    iso,
    new_id,
)
from agent.rendering import TemplateError, render

SEVERITY_RANK = {Severity.INFO.value: 0, Severity.WARNING.value: 1, Severity.CRITICAL.value: 2}
FIRING, RESOLVED = AlertStatus.FIRING.value, AlertStatus.RESOLVED.value
# A storm's group can hold thousands of alerts; a page listing them all helps nobody.
DEFAULT_TEXT_MAX_ALERTS = 50
# The notify-target options a notification carries to the dispatcher in its metadata.
DELIVERY_OPTIONS = ("update", "retract", "overflow", "content_sid")
MAX_ALERT_IDS = 100  # in a notification's metadata; GET /v1/alerts/{id} links them all


@dataclass(frozen=True, slots=True)
class Plan:
    notify: bool
    reason: str  # "new" | "resolved" | "repeat" | "muted" | "nothing"
    alerts: list[GroupMember]  # what a notification would be about
    held_back: bool = False  # firing alerts were inhibited: look again soon


def plan(members: Sequence[GroupMember], last_flush_at: float | None, route: Mapping[str, Any],
         now: float, muted: bool, inhibited: frozenset[int] = frozenset()) -> Plan:
    """Decide whether this flush notifies and about which alerts.

    ``inhibited`` holds the seqs of firing alerts an inhibit rule mutes right now: they are left
    out as if absent, and stay untold so they notify once the inhibition ends.
    """
    held = any(m.status == FIRING and m.seq in inhibited for m in members)
    if held:
        members = [m for m in members if not (m.status == FIRING and m.seq in inhibited)]
        p = plan(members, last_flush_at, route, now, muted)
        return Plan(p.notify, p.reason, p.alerts, True)
    firing = [m for m in members if m.status == FIRING]
    told_resolved = [m for m in members if m.status == RESOLVED and m.notified == FIRING]
    send_resolved = bool(route.get("send_resolved", True))
    about = firing + (told_resolved if send_resolved else [])
    if muted:
        return Plan(False, "muted", about)
    if any(m.notified != FIRING for m in firing):
        return Plan(True, "new", about)
    if told_resolved and send_resolved:
        return Plan(True, "resolved", about)
    repeat = float(route.get("repeat_interval", 14400.0))
    # Someone took it: an acknowledged alert is not repeated (a new alert of the group is).
    unacknowledged = any(not m.acknowledged for m in firing)
    if unacknowledged and last_flush_at is not None and now - last_flush_at >= repeat:
        return Plan(True, "repeat", about)
    return Plan(False, "nothing", about)


def _common(dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def template_context(group: GroupSnapshot, about: Sequence[GroupMember]) -> dict[str, Any]:
    """What templates see: the group and its alerts, Alertmanager-style names included."""
    alerts = []
    for m in about:
        a = m.alert
        if a is None:  # beyond what the store loaded for display (counted in "truncated")
            continue
        alerts.append({
            # Source fields first: the alert's own fields must win over a sender's "status".
            **(a.extra or {}),
            "id": a.id, "status": m.status, "labels": a.labels, "annotations": a.annotations,
            "severity": a.severity, "source": a.source, "fingerprint": a.fingerprint,
            "startsAt": iso(a.starts_at), "endsAt": iso(a.ends_at),
            "generatorURL": a.generator_url, "message": a.message, "type": a.type,
        })
    firing = [x for x in alerts if x["status"] == FIRING]
    firing_count = sum(1 for m in about if m.status == FIRING)
    common_labels = _common([x["labels"] for x in alerts])
    common_annotations = _common([x["annotations"] for x in alerts])
    return {
        "status": FIRING if firing_count else RESOLVED,
        "alerts": alerts,
        # Alertmanager's name: alerts of the group the notification does not list.
        "truncatedAlerts": len(about) - len(alerts),
        "firing_count": firing_count,
        "firing": firing,
        "resolved": [x for x in alerts if x["status"] == RESOLVED],
        "labels": common_labels,
        "annotations": common_annotations,
        "groupLabels": group.labels,
        "commonLabels": common_labels,
        "commonAnnotations": common_annotations,
        "receiver": group.route.get("name", group.route_id),
        "severity": max_severity(about),
    }


def max_severity(about: Sequence[GroupMember]) -> str:
    if not about:
        return Severity.INFO.value
    return max((m.severity for m in about), key=lambda s: SEVERITY_RANK.get(s, 0))


def default_text(ctx: Mapping[str, Any]) -> str:
    """A readable message when the route names no template (Alertmanager's default shape)."""
    alerts = ctx["alerts"]
    firing = ctx.get("firing_count", len(ctx["firing"]))
    head = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
    name = ctx["commonLabels"].get("alertname") or next(
        (a["labels"]["alertname"] for a in alerts if a["labels"].get("alertname")), "alert")
    extra = ", ".join(f"{k}={v}" for k, v in sorted(ctx["groupLabels"].items())
                      if k != "alertname")
    lines = [f"{head} {name}" + (f" ({extra})" if extra else "")]
    for a in alerts[:DEFAULT_TEXT_MAX_ALERTS]:
        text = (a["annotations"].get("summary") or a["annotations"].get("description")
                or a["message"] or ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())))
        mark = "" if a["status"] == FIRING else "[resolved] "
        lines.append(f"- {mark}{text}")
    hidden = max(0, len(alerts) - DEFAULT_TEXT_MAX_ALERTS) + ctx.get("truncatedAlerts", 0)
    if hidden:
        lines.append(f"... and {hidden} more")
    return "\n".join(lines)


# A repeated policy whose run would be shorter wastes nobody's attention: one run lasts at
# least this long.
MIN_ESCALATION_RUN = 60.0


def escalation_plan(route: Mapping[str, Any], first: NewNotification,
                    now: float) -> list[dict[str, Any]] | None:
    """The steps of the route's escalation policy for a new incident, each run after the
    last: due ``after`` the first notification (``now``), the next run one last step later.
    ``first`` lends them its text and alert fields."""
    policy = route.get("escalation")
    if not policy:
        return None
    steps = policy["steps"]
    run_length = max(float(steps[-1]["after"]), MIN_ESCALATION_RUN)
    about = {k: first.metadata[k] for k in ("route", "group_key", "group_id", "alert_ids",
                                            "alert_count", "group_labels", "ack_by")
             if k in first.metadata}
    notification = {"message": first.message, "subject": first.subject,
                    "severity": first.severity, "priority": first.priority,
                    "simulated": first.simulated, "metadata": about}
    return [{"run": run, "step": i, "steps": len(steps), "until": policy["until"],
             "due_at": now + run * run_length + float(step["after"]),
             "targets": step["notify"], "notification": notification}
            for run in range(int(policy.get("repeat", 0)) + 1)
            for i, step in enumerate(steps)]


def build_flush(
    group: GroupSnapshot,
    route: Mapping[str, Any],
    decision: Plan,
    now: float,
    make_id: Callable[[str], str] = new_id,
) -> FlushResult:
    """The notifications (one per notify target) and the group's next state."""
    notifications: list[NewNotification] = []
    notified: dict[int, str] = {}
    if decision.notify:
        ctx = template_context(group, decision.alerts)
        templates: Mapping[str, Any] = route.get("templates", {})
        for target in route.get("notify", []):
            tpl = templates.get(target.get("template") or "")
            try:
                text = render(tpl["body"], ctx) if tpl else default_text(ctx)
                subject = render(tpl["subject"], ctx) if tpl and tpl.get("subject") else None
            except TemplateError as exc:
                text, subject = f"{default_text(ctx)}\n(template error: {exc})", None
            notifications.append(NewNotification(
                id=make_id("ntf"), channel=target["channel"], recipient=target["to"],
                message=text, subject=subject or text.split("\n", 1)[0][:200],
                template_id=None, template_body=None, severity=ctx["severity"],
                priority=route.get("priority", "normal"),
                metadata={"route": route.get("name", group.route_id), "group_key": group.key,
                          # Group ids are never reused: a later incident of the same key is a
                          # new thread, not an edit of a resolved message.
                          "group_id": group.id,
                          "status": ctx["status"], "reason": decision.reason,
                          "alert_ids": [a["id"] for a in ctx["alerts"][:MAX_ALERT_IDS]],
                          # Every alert it is about, also those beyond the listed ones.
                          "alert_count": len(decision.alerts),
                          "group_labels": group.labels,
                          # A WhatsApp template's content_sid, unless the target names one.
                          **({"content_sid": tpl["content_sid"]}
                             if tpl and tpl.get("content_sid") else {}),
                          # The target's delivery options (update, retract, overflow,
                          # content_sid) when set.
                          **{k: target[k] for k in DELIVERY_OPTIONS if k in target},
                          **({"preferred_channels": target["channels"]}
                             if target.get("channels") else {}),
                          # Who may acknowledge from a chat click or link.
                          **({"ack_by": route["ack_by"]} if route.get("ack_by") else {})},
                idempotency_key=None, request_hash=None,
                simulated=route.get("mode") == TEST_MODE, api_key_id=None,
                schedule_at=None, due_at=now, created_at=now,
            ))
        notified = {m.seq: m.status for m in decision.alerts}
    # Resolved members leave once their resolution was told (or will never be).
    remove = [m.seq for m in group.members if m.status == RESOLVED
              and (decision.notify or m.notified != FIRING or not route.get("send_resolved", True))
              and decision.reason != "muted"]
    still_firing = any(m.status == FIRING for m in group.members)
    interval = float(route.get("group_interval", 300.0))
    repeat = float(route.get("repeat_interval", 14400.0))
    last = now if decision.notify else group.last_flush_at
    if decision.reason == "muted" or decision.held_back:
        nxt: float | None = now + interval  # look again: the mute or inhibition may end
    elif still_firing:
        nxt = (last if last is not None else now) + repeat
        nxt = max(nxt, now + interval) if not decision.notify else nxt
    else:
        nxt = None if len(remove) == len(group.members) else now + interval
    escalation = (escalation_plan(route, notifications[0], now)
                  if decision.reason == "new" and notifications else None)
    return FlushResult(
        group_id=group.id, version_seen=group.version, notifications=notifications,
        escalation=escalation,
        alert_seqs=[m.seq for m in decision.alerts] if decision.notify else [],
        notified=notified, remove=remove, last_flush_at=now if decision.notify else None,
        next_flush_at=nxt, retry_at=max(now, (last if last is not None else now) + interval),
    )
