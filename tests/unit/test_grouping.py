"""Grouping decisions (agent.grouping.flush): when a group notifies (Alertmanager's dedup
stage), what each notification says, and the group's next state."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.domain import (
    FlushResult,
    GroupMember,
    GroupSnapshot,
    StoredAlert,
    fingerprint_of,
    iso,
)
from agent.grouping.flush import (
    Plan,
    build_flush,
    default_text,
    max_severity,
    plan,
    template_context,
)
from agent.routing.loader import load_rules
from agent.routing.router import route_alert
from agent.routing.ruleset import RuleSet

NOW = 1_700_000_000.0
INTERVAL, REPEAT = 300.0, 3600.0
SHIPPED = Path(__file__).resolve().parents[2] / "rules"

# --- helpers ---------------------------------------------------------------------------


def stored(seq: int, labels: dict[str, str] | None = None, *, severity: str = "warning",
           annotations: dict[str, str] | None = None, message: str | None = None,
           extra: dict[str, Any] | None = None, resolved: bool = False) -> StoredAlert:
    labels = {"alertname": "HighCPU", "instance": f"host{seq}"} if labels is None else labels
    return StoredAlert(
        seq=seq, id=f"alt_{seq}", source="alertmanager", fingerprint=fingerprint_of(labels),
        status="resolved" if resolved else "active", type="custom", monitor_id=None,
        alertname=labels.get("alertname"), message=message, severity=severity, labels=labels,
        annotations={} if annotations is None else annotations, extra=extra,
        generator_url=None, starts_at=NOW - 1000, ends_at=NOW - 10 if resolved else None,
        created_at=NOW - 1000, updated_at=NOW - 10, resolved_at=NOW - 10 if resolved else None,
        last_received_at=NOW - 10, receive_count=1,
    )


def member(seq: int, status: str = "firing", notified: str | None = None,
           **kw: Any) -> GroupMember:
    return GroupMember(stored(seq, resolved=status == "resolved", **kw), status, notified)


def route(**overrides: Any) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "id": "team", "name": "team", "priority": "high",
        "notify": [{"channel": "console", "to": "ops", "template": None}],
        "group_wait": 30.0, "group_interval": INTERVAL, "repeat_interval": REPEAT,
        "send_resolved": True, "active_time_intervals": [], "mute_time_intervals": [],
        "templates": {},
    }
    snapshot.update(overrides)
    return snapshot


def group(members: list[GroupMember], last_flush_at: float | None = None,
          snapshot: dict[str, Any] | None = None,
          labels: dict[str, str] | None = None) -> GroupSnapshot:
    snapshot = route() if snapshot is None else snapshot
    return GroupSnapshot(
        id=42, key="gk_0123", route_id=snapshot["id"], route=snapshot,
        labels={"alertname": "HighCPU"} if labels is None else labels, version=7,
        last_flush_at=last_flush_at, created_at=NOW - 1000, members=members)


def ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def flush(g: GroupSnapshot, *, now: float = NOW, muted: bool = False) -> FlushResult:
    decision = plan(g.members, g.last_flush_at, g.route, now, muted)
    return build_flush(g, g.route, decision, now, make_id=ids())


# --- plan ------------------------------------------------------------------------------

# members as (seq, status, notified); expected (notify, reason, seqs of the alerts it is about)
M = tuple[int, str, str | None]
PLAN_CASES: list[Any] = [
    pytest.param([(1, "firing", None)], None, NOW, True, False, (True, "new", [1]),
                 id="new-firing"),
    pytest.param([(1, "firing", "firing")], NOW - 100, NOW, True, False,
                 (False, "nothing", [1]), id="already-told"),
    pytest.param([(1, "firing", "firing")], NOW - REPEAT, NOW, True, False,
                 (True, "repeat", [1]), id="repeat-at-exactly-the-interval"),
    pytest.param([(1, "firing", "firing")], NOW - REPEAT + 0.001, NOW, True, False,
                 (False, "nothing", [1]), id="repeat-not-yet"),
    pytest.param([(1, "firing", "firing")], NOW - 10 * REPEAT, NOW, True, False,
                 (True, "repeat", [1]), id="repeat-long-overdue"),
    pytest.param([(1, "firing", "firing"), (2, "firing", None)], NOW - 100, NOW, True, False,
                 (True, "new", [1, 2]), id="one-new-among-told"),
    pytest.param([(1, "firing", "resolved")], NOW - 100, NOW, True, False,
                 (True, "new", [1]), id="fired-again-after-resolved"),
    pytest.param([(1, "resolved", "firing")], NOW - 100, NOW, True, False,
                 (True, "resolved", [1]), id="told-firing-now-resolved"),
    pytest.param([(1, "resolved", "firing")], NOW - 100, NOW, False, False,
                 (False, "nothing", []), id="resolved-without-send-resolved"),
    pytest.param([(1, "resolved", "firing")], NOW - 10 * REPEAT, NOW, False, False,
                 (False, "nothing", []), id="resolved-without-send-resolved-no-repeat"),
    pytest.param([(1, "resolved", None)], None, NOW, True, False,
                 (False, "nothing", []), id="resolved-before-ever-told"),
    pytest.param([(1, "resolved", "resolved")], NOW - 100, NOW, True, False,
                 (False, "nothing", []), id="resolution-already-told"),
    pytest.param([(1, "firing", "firing"), (2, "resolved", "firing")], NOW - 100, NOW, True,
                 False, (True, "resolved", [1, 2]), id="one-resolved-one-still-firing"),
    pytest.param([(1, "firing", "firing"), (2, "resolved", "firing")], NOW - 100, NOW, False,
                 False, (False, "nothing", [1]), id="one-resolved-no-send-resolved"),
    pytest.param([(1, "firing", "firing"), (2, "resolved", "firing")], NOW - REPEAT, NOW,
                 False, False, (True, "repeat", [1]), id="repeat-leaves-out-resolved"),
    pytest.param([(1, "firing", "firing"), (2, "resolved", None)], NOW - REPEAT, NOW, True,
                 False, (True, "repeat", [1]), id="repeat-leaves-out-never-told"),
    pytest.param([(2, "resolved", "firing"), (1, "firing", None)], NOW - 100, NOW, True, False,
                 (True, "new", [1, 2]), id="new-with-a-resolution-firing-first"),
    pytest.param([(1, "firing", None)], None, NOW, True, True, (False, "muted", [1]),
                 id="muted-new"),
    pytest.param([(1, "resolved", "firing")], NOW - 100, NOW, True, True,
                 (False, "muted", [1]), id="muted-resolved"),
    pytest.param([(1, "firing", "firing")], NOW - 10 * REPEAT, NOW, True, True,
                 (False, "muted", [1]), id="muted-repeat"),
    pytest.param([], NOW - 10 * REPEAT, NOW, True, False, (False, "nothing", []),
                 id="empty"),
]


@pytest.mark.parametrize(
    ("members", "last_flush_at", "now", "send_resolved", "muted", "expected"), PLAN_CASES)
def test_plan(members: list[M], last_flush_at: float | None, now: float, send_resolved: bool,
              muted: bool, expected: tuple[bool, str, list[int]]) -> None:
    ms = [member(seq, status, notified) for seq, status, notified in members]
    p = plan(ms, last_flush_at, route(send_resolved=send_resolved), now, muted)
    assert (p.notify, p.reason, [m.alert.seq for m in p.alerts]) == expected


INHIBIT_CASES: list[Any] = [
    pytest.param([(1, "firing", None)], {1}, (False, "nothing", [], True), id="only-inhibited"),
    pytest.param([(1, "firing", None), (2, "firing", None)], {2}, (True, "new", [1], True),
                 id="the-other-is-new"),
    pytest.param([(1, "firing", "firing"), (2, "firing", None)], {2},
                 (False, "nothing", [1], True), id="inhibited-new-is-not-new"),
    pytest.param([(1, "firing", "firing")], {1}, (False, "nothing", [], True),
                 id="told-then-inhibited-no-repeat"),
    pytest.param([(1, "resolved", "firing")], {1}, (True, "resolved", [1], False),
                 id="resolved-is-not-inhibited"),
    pytest.param([(1, "firing", None)], {9}, (True, "new", [1], False), id="other-seq"),
    pytest.param([(1, "firing", None)], set(), (True, "new", [1], False), id="none"),
]


@pytest.mark.parametrize(("members", "inhibited", "expected"), INHIBIT_CASES)
def test_plan_leaves_inhibited_firing_alerts_out(
    members: list[M], inhibited: set[int], expected: tuple[bool, str, list[int], bool]
) -> None:
    ms = [member(seq, status, notified) for seq, status, notified in members]
    p = plan(ms, NOW - 100, route(), NOW, False, frozenset(inhibited))
    assert (p.notify, p.reason, [m.alert.seq for m in p.alerts], p.held_back) == expected


def test_inhibited_alert_stays_untold_and_the_group_looks_again_soon() -> None:
    g = group([member(1, "firing", None), member(2, "firing", None)])
    decision = plan(g.members, None, g.route, NOW, False, frozenset({2}))
    f = build_flush(g, g.route, decision, NOW, make_id=ids())
    [n] = f.notifications
    assert n.metadata["alert_ids"] == ["alt_1"]
    assert f.notified == {1: "firing"}
    assert f.remove == []
    assert f.next_flush_at == NOW + INTERVAL
    # the inhibition ended: the held-back alert is new
    later = NOW + INTERVAL
    told = [member(1, "firing", "firing"), member(2, "firing", None)]
    again = plan(told, NOW, g.route, later, False)
    assert (again.notify, again.reason, again.held_back) == (True, "new", False)


def test_plan_defaults_when_the_snapshot_lacks_settings() -> None:
    bare: dict[str, Any] = {"id": "r", "notify": []}
    told = [member(1, "firing", "firing")]
    assert plan(told, NOW - 14399, bare, NOW, False).reason == "nothing"
    assert plan(told, NOW - 14400, bare, NOW, False).reason == "repeat"  # 4h
    assert plan([member(1, "resolved", "firing")], NOW, bare, NOW, False).reason == "resolved"


# --- build_flush: the group's next state -----------------------------------------------


def test_new_firing_alert_notifies_and_is_marked() -> None:
    g = group([member(1)])
    f = flush(g)
    assert len(f.notifications) == 1
    assert (f.group_id, f.version_seen) == (42, 7)
    assert f.alert_seqs == [1]
    assert f.notified == {1: "firing"}
    assert f.remove == []
    assert f.last_flush_at == NOW
    assert f.next_flush_at == NOW + REPEAT


def test_nothing_new_sends_nothing_and_waits_for_the_repeat() -> None:
    g = group([member(1, "firing", "firing")], last_flush_at=NOW - 100)
    f = flush(g)
    assert f.notifications == [] and f.alert_seqs == [] and f.notified == {}
    assert f.remove == []
    assert f.last_flush_at is None  # unchanged
    assert f.next_flush_at == NOW - 100 + REPEAT


def test_a_repeat_due_within_a_group_interval_waits_for_the_next_interval() -> None:
    g = group([member(1, "firing", "firing")], last_flush_at=NOW - REPEAT + 10)
    f = flush(g)
    assert f.notifications == []
    assert f.next_flush_at == NOW + INTERVAL


def test_repeat_notifies_again() -> None:
    g = group([member(1, "firing", "firing")], last_flush_at=NOW - REPEAT)
    f = flush(g)
    [n] = f.notifications
    assert n.metadata["reason"] == "repeat"
    assert f.notified == {1: "firing"}
    assert (f.last_flush_at, f.next_flush_at) == (NOW, NOW + REPEAT)


def test_resolved_alert_is_told_and_leaves_the_group() -> None:
    g = group([member(1, "firing", "firing"), member(2, "resolved", "firing")],
              last_flush_at=NOW - 100)
    f = flush(g)
    [n] = f.notifications
    assert n.metadata["reason"] == "resolved"
    assert n.metadata["status"] == "firing"  # one is still firing
    assert n.metadata["alert_ids"] == ["alt_1", "alt_2"]
    assert f.notified == {1: "firing", 2: "resolved"}
    assert f.remove == [2]
    assert (f.last_flush_at, f.next_flush_at) == (NOW, NOW + REPEAT)


def test_last_alert_resolved_empties_the_group() -> None:
    g = group([member(1, "resolved", "firing")], last_flush_at=NOW - 100)
    f = flush(g)
    [n] = f.notifications
    assert n.metadata["status"] == "resolved"
    assert n.message is not None and n.message.startswith("[RESOLVED]")
    assert f.notified == {1: "resolved"}
    assert f.remove == [1]
    assert f.next_flush_at is None


def test_resolved_without_send_resolved_is_dropped_silently() -> None:
    g = group([member(1, "resolved", "firing")], last_flush_at=NOW - 100,
              snapshot=route(send_resolved=False))
    f = flush(g)
    assert f.notifications == []
    assert f.notified == {}
    assert f.remove == [1]
    assert f.next_flush_at is None


def test_resolved_without_send_resolved_leaves_the_firing_ones() -> None:
    g = group([member(1, "firing", "firing"), member(2, "resolved", "firing")],
              last_flush_at=NOW - 100, snapshot=route(send_resolved=False))
    f = flush(g)
    assert f.notifications == []
    assert f.remove == [2]
    assert f.next_flush_at == NOW - 100 + REPEAT


def test_new_alert_without_send_resolved_leaves_resolutions_out() -> None:
    g = group([member(1, "firing", None), member(2, "resolved", "firing")],
              last_flush_at=NOW - 100, snapshot=route(send_resolved=False))
    f = flush(g)
    [n] = f.notifications
    assert n.metadata["alert_ids"] == ["alt_1"]
    assert f.notified == {1: "firing"}
    assert f.remove == [2]


def test_resolved_before_ever_told_is_not_notified_and_leaves() -> None:
    # Alertmanager's dedup: the receiver was never told, so it is not told it ended.
    g = group([member(1, "resolved", None)])
    f = flush(g)
    assert f.notifications == []
    assert f.notified == {}
    assert f.remove == [1]
    assert f.next_flush_at is None


def test_resolved_before_told_next_to_a_new_alert() -> None:
    g = group([member(1, "firing", None), member(2, "resolved", None)])
    f = flush(g)
    [n] = f.notifications
    assert n.metadata["alert_ids"] == ["alt_1"]
    assert f.notified == {1: "firing"}
    assert f.remove == [2]
    assert f.next_flush_at == NOW + REPEAT


@pytest.mark.parametrize(
    "members",
    [
        [(1, "firing", None)],
        [(1, "firing", "firing"), (2, "resolved", "firing")],
        [(1, "resolved", None)],
        [(1, "resolved", "firing")],
    ],
)
def test_muted_group_sends_nothing_keeps_members_and_looks_again(members: list[M]) -> None:
    g = group([member(s, st, n) for s, st, n in members], last_flush_at=NOW - 10 * REPEAT)
    f = flush(g, muted=True)
    assert f.notifications == []
    assert f.alert_seqs == [] and f.notified == {}
    assert f.remove == []
    assert f.last_flush_at is None
    assert f.next_flush_at == NOW + INTERVAL


def test_muted_then_unmuted_tells_what_was_held_back() -> None:
    g = group([member(1, "firing", None)])
    held = flush(g, muted=True)
    assert held.notifications == []
    later = NOW + INTERVAL
    f = flush(g, now=later)
    [n] = f.notifications
    assert n.metadata["reason"] == "new"
    assert f.next_flush_at == later + REPEAT


def test_next_flush_uses_the_route_intervals() -> None:
    snap = route(group_interval=60.0, repeat_interval=600.0)
    assert flush(group([member(1)], snapshot=snap)).next_flush_at == NOW + 600
    assert flush(group([member(1)], snapshot=snap), muted=True).next_flush_at == NOW + 60


# --- build_flush: the notifications ----------------------------------------------------

TEMPLATES = {
    "vars": {
        "subject": "{{ status }}/{{ severity }}",
        "body": ("status={{ status }} n={{ alerts | length }} "
                 "labels={{ labels | dictsort }} annotations={{ annotations | dictsort }} "
                 "groupLabels={{ groupLabels | dictsort }} "
                 "commonLabels={{ commonLabels | dictsort }} "
                 "commonAnnotations={{ commonAnnotations | dictsort }} "
                 "receiver={{ receiver }} severity={{ severity }} "
                 "ids={% for a in alerts %}{{ a.id }}:{{ a.status }} {% endfor %}"),
    },
    "plain": {"body": "{{ alerts | length }} alert(s) for {{ receiver }}", "subject": None},
}
NOTIFY = [
    {"channel": "in-app", "to": "oncall", "template": "vars"},
    {"channel": "webhook", "to": "https://example.test/hook", "template": "plain"},
    {"channel": "console", "to": "ops", "template": None},
]


def _members() -> list[GroupMember]:
    return [
        member(1, "firing", None, severity="warning",
               labels={"alertname": "HighCPU", "cluster": "eu", "instance": "a"},
               annotations={"summary": "CPU high on a", "runbook": "rb"}),
        member(2, "firing", "firing", severity="critical",
               labels={"alertname": "HighCPU", "cluster": "eu", "instance": "b"},
               annotations={"summary": "CPU high on b", "runbook": "rb"}),
        member(3, "resolved", "firing", severity="info",
               labels={"alertname": "HighCPU", "cluster": "eu", "instance": "c"},
               annotations={"summary": "CPU high on c", "runbook": "rb"}),
    ]


def test_one_notification_per_target_with_templates_rendered() -> None:
    snap = route(name="cpu-route", notify=NOTIFY, templates=TEMPLATES)
    g = group(_members(), last_flush_at=NOW - 100, snapshot=snap,
              labels={"alertname": "HighCPU", "cluster": "eu"})
    f = flush(g)
    assert [(n.channel, n.recipient) for n in f.notifications] == [
        ("in-app", "oncall"), ("webhook", "https://example.test/hook"), ("console", "ops")]
    vars_, plain, default = f.notifications
    assert vars_.message == (
        "status=firing n=3 "
        "labels=[('alertname', 'HighCPU'), ('cluster', 'eu')] "
        "annotations=[('runbook', 'rb')] "
        "groupLabels=[('alertname', 'HighCPU'), ('cluster', 'eu')] "
        "commonLabels=[('alertname', 'HighCPU'), ('cluster', 'eu')] "
        "commonAnnotations=[('runbook', 'rb')] "
        "receiver=cpu-route severity=critical "
        "ids=alt_1:firing alt_2:firing alt_3:resolved ")
    assert vars_.subject == "firing/critical"
    assert plain.message == "3 alert(s) for cpu-route"
    assert plain.subject == plain.message  # no subject template: the first line
    assert default.message == (
        "[FIRING:2] HighCPU (cluster=eu)\n"
        "- CPU high on a\n"
        "- CPU high on b\n"
        "- [resolved] CPU high on c")
    assert default.subject == "[FIRING:2] HighCPU (cluster=eu)"
    assert [n.id for n in f.notifications] == ["ntf_1", "ntf_2", "ntf_3"]
    for n in f.notifications:
        assert n.severity == "critical"  # the highest of the alerts
        assert n.priority == "high"
        assert n.metadata == {
            "route": "cpu-route", "group_key": "gk_0123", "group_id": 42, "status": "firing",
            "reason": "new", "alert_ids": ["alt_1", "alt_2", "alt_3"], "alert_count": 3,
            "group_labels": {"alertname": "HighCPU", "cluster": "eu"},
        }
        assert (n.due_at, n.created_at, n.schedule_at) == (NOW, NOW, None)
        assert (n.template_id, n.template_body, n.idempotency_key) == (None, None, None)
        assert n.simulated is False
    assert f.alert_seqs == [1, 2, 3]
    assert f.notified == {1: "firing", 2: "firing", 3: "resolved"}
    assert f.remove == [3]


def test_no_targets_means_no_notifications_but_the_alerts_count_as_told() -> None:
    f = flush(group([member(1)], snapshot=route(notify=[])))
    assert f.notifications == []
    assert f.notified == {1: "firing"}


def test_an_unknown_template_name_falls_back_to_the_default_text() -> None:
    snap = route(notify=[{"channel": "console", "to": "ops", "template": "gone"}])
    [n] = flush(group([member(1, annotations={"summary": "hot"})], snapshot=snap)).notifications
    assert n.message == "[FIRING:1] HighCPU\n- hot"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{ nosuch.field }}", "undefined variable"),
        ("{{ alerts[5].id }}", "undefined variable"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ broken ", "line 1"),
    ],
)
def test_template_error_falls_back_to_default_text_with_the_error(body: str, error: str
                                                                  ) -> None:
    snap = route(notify=[{"channel": "console", "to": "ops", "template": "bad"}],
                 templates={"bad": {"body": body, "subject": "{{ status }}"}})
    [n] = flush(group([member(1, annotations={"summary": "hot"})], snapshot=snap)).notifications
    assert n.message is not None
    head, _, tail = n.message.partition("\n(template error: ")
    assert head == "[FIRING:1] HighCPU\n- hot"
    assert error in tail and tail.endswith(")")
    assert n.subject == "[FIRING:1] HighCPU"


def test_subject_template_error_also_falls_back() -> None:
    snap = route(notify=[{"channel": "console", "to": "ops", "template": "t"}],
                 templates={"t": {"body": "fine", "subject": "{{ missing }}"}})
    [n] = flush(group([member(1)], snapshot=snap)).notifications
    assert n.message is not None and n.message.startswith("[FIRING:1] HighCPU\n")
    assert "(template error: undefined variable" in n.message


def test_long_first_line_is_cut_for_the_subject() -> None:
    snap = route(notify=[{"channel": "console", "to": "ops", "template": "t"}],
                 templates={"t": {"body": "x" * 500 + "\nsecond", "subject": None}})
    [n] = flush(group([member(1)], snapshot=snap)).notifications
    assert n.subject == "x" * 200


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        (["info"], "info"),
        (["info", "warning"], "warning"),
        (["warning", "critical", "info"], "critical"),
        (["critical", "critical"], "critical"),
        ([], "info"),
    ],
)
def test_severity_is_the_highest_of_the_alerts(severities: list[str], expected: str) -> None:
    ms = [member(i, severity=s) for i, s in enumerate(severities, 1)]
    assert max_severity(ms) == expected
    if ms:
        [n] = flush(group(ms)).notifications
        assert n.severity == expected


def test_severity_counts_only_the_alerts_notified_about() -> None:
    # a critical alert that resolved before anyone was told does not raise the severity
    ms = [member(1, severity="warning"), member(2, "resolved", None, severity="critical")]
    [n] = flush(group(ms)).notifications
    assert n.severity == "warning"


# --- template_context ------------------------------------------------------------------


def test_template_context_alert_fields() -> None:
    m = member(1, annotations={"summary": "s"}, message="msg",
               extra={"dashboardURL": "https://grafana.test/d/1"})
    g = group([m])
    ctx = template_context(g, [m])
    [a] = ctx["alerts"]
    assert a == {
        "id": "alt_1", "status": "firing", "labels": m.alert.labels,
        "annotations": {"summary": "s"}, "severity": "warning", "source": "alertmanager",
        "fingerprint": m.alert.fingerprint, "startsAt": iso(NOW - 1000), "endsAt": None,
        "generatorURL": None, "message": "msg", "type": "custom",
        "dashboardURL": "https://grafana.test/d/1",
    }
    assert ctx["firing"] == [a] and ctx["resolved"] == []
    assert ctx["receiver"] == "team"


def test_template_context_common_labels_and_status() -> None:
    ms = [member(1, "resolved", "firing", labels={"alertname": "A", "env": "x", "k": "1"},
                 annotations={"s": "1", "d": "same"}),
          member(2, "resolved", "firing", labels={"alertname": "A", "env": "x", "k": "2"},
                 annotations={"s": "2", "d": "same"})]
    ctx = template_context(group(ms), ms)
    assert ctx["status"] == "resolved"
    assert ctx["commonLabels"] == ctx["labels"] == {"alertname": "A", "env": "x"}
    assert ctx["commonAnnotations"] == ctx["annotations"] == {"d": "same"}
    assert [a["id"] for a in ctx["resolved"]] == ["alt_1", "alt_2"]
    assert ctx["firing"] == []
    empty = template_context(group([]), [])
    assert (empty["status"], empty["commonLabels"], empty["severity"]) == ("resolved", {}, "info")


def test_receiver_falls_back_to_the_route_id() -> None:
    snap = route()
    del snap["name"]
    ctx = template_context(group([member(1)], snapshot=snap), [member(1)])
    assert ctx["receiver"] == "team"


def test_extra_fields_do_not_override_the_alert_fields() -> None:
    # generic sources keep the whole item in extra: {"status": "down", ...}
    m = member(1, "firing", None, annotations={"summary": "backup failed"},
               extra={"status": "down", "id": "raw", "labels": {"x": "y"}, "severity": "low"})
    ctx = template_context(group([m]), [m])
    [a] = ctx["alerts"]
    assert (a["status"], a["id"], a["labels"], a["severity"]) == (
        "firing", "alt_1", m.alert.labels, "warning")
    assert ctx["status"] == "firing"
    assert default_text(ctx).startswith("[FIRING:1] HighCPU")


# --- default_text ----------------------------------------------------------------------


def _text(members: list[GroupMember], labels: dict[str, str]) -> str:
    g = group(members, labels=labels)
    return default_text(template_context(g, members))


DEFAULT_TEXT_CASES: list[Any] = [
    pytest.param(
        [member(1, annotations={"summary": "CPU 95%"}),
         member(2, annotations={"summary": "CPU 97%"})],
        {"alertname": "HighCPU"},
        "[FIRING:2] HighCPU\n- CPU 95%\n- CPU 97%", id="firing-two"),
    pytest.param(
        [member(1, annotations={"summary": "CPU 95%"})],
        {"alertname": "HighCPU", "cluster": "eu", "env": "prod"},
        "[FIRING:1] HighCPU (cluster=eu, env=prod)\n- CPU 95%", id="group-labels-sorted"),
    pytest.param(
        [member(1, "resolved", "firing", annotations={"summary": "CPU ok"})],
        {"alertname": "HighCPU"},
        "[RESOLVED] HighCPU\n- [resolved] CPU ok", id="resolved"),
    pytest.param(
        [member(1, annotations={"summary": "a"}),
         member(2, "resolved", "firing", annotations={"summary": "b"})],
        {"alertname": "HighCPU"},
        "[FIRING:1] HighCPU\n- a\n- [resolved] b", id="mixed"),
    pytest.param(
        [member(1, annotations={"description": "the description"}, message="msg")],
        {"alertname": "HighCPU"},
        "[FIRING:1] HighCPU\n- the description", id="description-when-no-summary"),
    pytest.param(
        [member(1, message="the message")], {"alertname": "HighCPU"},
        "[FIRING:1] HighCPU\n- the message", id="message-when-no-annotation"),
    pytest.param(
        [member(1, labels={"alertname": "Disk", "mount": "/", "host": "h1"})],
        {"alertname": "Disk"},
        "[FIRING:1] Disk\n- alertname=Disk, host=h1, mount=/", id="labels-when-nothing-else"),
    pytest.param(
        [member(1, labels={"alertname": "A"}, annotations={"summary": "x"}),
         member(2, labels={"alertname": "B"}, annotations={"summary": "y"})],
        {},
        "[FIRING:2] A\n- x\n- y", id="different-names-first-wins"),
    pytest.param(
        [], {"alertname": "Gone"}, "[RESOLVED] alert", id="no-alerts"),
]


@pytest.mark.parametrize(("members", "labels", "expected"), DEFAULT_TEXT_CASES)
def test_default_text(members: list[GroupMember], labels: dict[str, str], expected: str
                      ) -> None:
    assert _text(members, labels) == expected


def test_default_text_without_any_alertname() -> None:
    ms = [member(1, labels={"job": "backup"}, message="exit 2")]
    assert _text(ms, {"job": "backup"}) == "[FIRING:1] alert (job=backup)\n- exit 2"


# --- the shipped templates -------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED)


def _shipped_flush(rules: RuleSet, labels: dict[str, str], annotations: dict[str, str],
                   status: str = "firing", notified: str | None = None) -> FlushResult:
    from agent.domain import Alert

    a = Alert(source="alertmanager", fingerprint=fingerprint_of(labels), status=status,
              labels=labels, annotations=annotations)
    [d, *_] = route_alert(rules, a)
    snap = rules.snapshot(d.route)
    m = GroupMember(stored(1, labels, severity=d.severity, annotations=annotations,
                           resolved=status == "resolved"), status, notified)
    g = GroupSnapshot(id=1, key=d.group_key, route_id=d.route.id, route=snap,
                      labels=d.group_labels, version=1, last_flush_at=None,
                      created_at=NOW, members=[m])
    return build_flush(g, snap, plan(g.members, None, snap, NOW, False), NOW, make_id=ids())


def test_shipped_templates_render(shipped: RuleSet) -> None:
    labels = {"alertname": "PgDown", "severity": "critical", "service": "web",
              "cluster": "eu", "instance": "db1"}
    f = _shipped_flush(shipped, labels, {"summary": "Postgres is down"})
    detailed, short = f.notifications
    assert (detailed.channel, short.channel) == ("in-app", "console")
    assert detailed.subject == "[FIRING:1] PgDown"
    assert detailed.message is not None
    assert detailed.message.rstrip("\n") == "🔥 PgDown on db1 (critical)\n  Postgres is down"
    assert short.message == "FIRING PgDown: Postgres is down"
    resolved = _shipped_flush(shipped, labels, {"summary": "Postgres is down"},
                              status="resolved", notified="firing")
    detailed, short = resolved.notifications
    assert detailed.subject == "[RESOLVED:1] PgDown"
    assert detailed.message is not None and detailed.message.startswith("✅ PgDown on db1")
    assert short.message == "RESOLVED PgDown: Postgres is down"


def test_shipped_short_template_without_a_summary(shipped: RuleSet) -> None:
    labels = {"alertname": "PgDown", "severity": "critical", "cluster": "eu"}
    f = _shipped_flush(shipped, labels, {})
    for n in f.notifications:
        assert "template error" not in (n.message or ""), n.message


def test_plan_is_a_plain_value() -> None:
    p = plan([member(1)], None, route(), NOW, False)
    assert isinstance(p, Plan)
    assert p == Plan(True, "new", [member(1)])


def test_default_text_caps_long_groups() -> None:
    from agent.grouping.flush import DEFAULT_TEXT_MAX_ALERTS, default_text

    alerts = [{"status": "firing", "labels": {"alertname": "Storm", "i": str(i)},
               "annotations": {"summary": f"s{i}"}, "message": None} for i in range(120)]
    ctx = {"alerts": alerts, "firing": alerts, "commonLabels": {"alertname": "Storm"},
           "groupLabels": {"alertname": "Storm"}}
    lines = default_text(ctx).splitlines()
    assert lines[0] == "[FIRING:120] Storm"
    assert len(lines) == 1 + DEFAULT_TEXT_MAX_ALERTS + 1
    assert lines[-1] == f"... and {120 - DEFAULT_TEXT_MAX_ALERTS} more"
