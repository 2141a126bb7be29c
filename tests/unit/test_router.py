"""Routing (agent.routing.router) on rules loaded from YAML: Alertmanager's route-tree semantics,
inheritance, sources, severity tags, group keys, and the sibling index's equivalence with a plain
linear walk."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.domain import Alert, fingerprint_of
from agent.routing.loader import load_rules
from agent.routing.router import (
    Decision,
    build_index,
    group_key,
    group_labels,
    match_routes,
    route_alert,
)
from agent.routing.ruleset import Route, RuleSet, Target

# --- helpers ---------------------------------------------------------------------------


def load(tmp_path: Path, text: str, name: str = "rules.yaml") -> RuleSet:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / name).write_text(text, encoding="utf-8")
    return load_rules(rules_dir)


def alert(labels: Mapping[str, str], source: str = "alertmanager") -> Alert:
    return Alert(source=source, fingerprint=fingerprint_of(dict(labels)), status="firing",
                 labels=dict(labels), annotations={})


def route_to(rules: RuleSet, labels: Mapping[str, str], source: str = "alertmanager"
             ) -> list[str]:
    """The names of the routes an alert goes to, in order."""
    return [d.route.name for d in route_alert(rules, alert(labels, source))]


def receivers(rules: RuleSet, labels: Mapping[str, str], source: str = "alertmanager"
              ) -> list[str]:
    """The first notify target of each route an alert goes to (Alertmanager's receiver)."""
    return [d.route.notify[0].to for d in route_alert(rules, alert(labels, source))]


def console(to: str) -> str:
    return f"[{{channel: console, to: {to}}}]"


# --- Alertmanager semantics ------------------------------------------------------------

SIBLINGS = f"""
routes:
  - name: db
    matchers: ['service="db"']
    notify: {console("dba")}
  - name: db-again
    matchers: ['service="db"']
    notify: {console("dba2")}
  - name: web
    matchers: ['service="web"']
    continue: true
    notify: {console("web")}
  - name: web-or-api
    matchers: ['service=~"web|api"']
    notify: {console("webapi")}
  - name: everything
    notify: {console("all")}
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # first matching sibling wins: db-again never sees service=db
        ({"service": "db"}, ["db"]),
        # continue: web matches and lets web-or-api match too; web-or-api stops the walk
        ({"service": "web"}, ["web", "web-or-api"]),
        ({"service": "api"}, ["web-or-api"]),
        # an empty matcher list matches everything
        ({"service": "cache"}, ["everything"]),
        ({}, ["everything"]),
    ],
)
def test_sibling_order_and_continue(
    tmp_path: Path, labels: dict[str, str], expected: list[str]
) -> None:
    assert route_to(load(tmp_path, SIBLINGS), labels) == expected


def test_no_match_goes_to_the_implicit_root_with_the_defaults(tmp_path: Path) -> None:
    rules = load(tmp_path, f"""
defaults:
  notify: [{{channel: in-app, to: fallback}}]
routes:
  - name: db
    matchers: ['service="db"']
    notify: {console("dba")}
""")
    [d] = route_alert(rules, alert({"service": "web"}))
    assert d.route is rules.root
    assert d.route.id == "root"
    assert d.route.notify == (Target("in-app", "fallback"),)


def test_no_match_without_defaults_goes_to_console_ops(tmp_path: Path) -> None:
    rules = load(tmp_path, f"""
routes:
  - matchers: ['service="db"']
    notify: {console("dba")}
""")
    [d] = route_alert(rules, alert({"service": "web"}))
    assert d.route.id == "root"
    assert d.route.notify == (Target("console", "ops"),)
    assert d.route.group_by == ()
    assert (d.route.group_wait, d.route.group_interval, d.route.repeat_interval) == (
        30.0, 300.0, 14400.0)
    assert d.route.send_resolved is True
    assert d.route.priority == "normal"


PARENT_CHILDREN = f"""
routes:
  - name: team-a
    matchers: ['team="a"']
    notify: {console("team-a")}
    routes:
      - name: team-a-db
        matchers: ['service="db"']
        notify: {console("team-a-db")}
      - name: team-a-web
        matchers: ['service="web"']
        notify: {console("team-a-web")}
  - name: catch-db
    matchers: ['service="db"']
    notify: {console("db")}
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"team": "a", "service": "db"}, ["team-a-db"]),
        ({"team": "a", "service": "web"}, ["team-a-web"]),
        # the parent matches, no child does: the parent handles it itself
        ({"team": "a", "service": "cache"}, ["team-a"]),
        ({"team": "a"}, ["team-a"]),
        # a matching parent without continue stops the walk even if a later sibling matches
        ({"team": "a", "service": "mq", "x": "db"}, ["team-a"]),
        ({"team": "b", "service": "db"}, ["catch-db"]),
        ({"team": "b"}, ["root"]),
    ],
)
def test_parent_handles_what_its_children_do_not(
    tmp_path: Path, labels: dict[str, str], expected: list[str]
) -> None:
    assert route_to(load(tmp_path, PARENT_CHILDREN), labels) == expected


def test_continue_on_a_nested_route_only_affects_its_siblings(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - name: parent
    matchers: ['team="a"']
    routes:
      - name: first
        matchers: ['service="db"']
        continue: true
      - name: second
  - name: after-parent
""")
    assert route_to(rules, {"team": "a", "service": "db"}) == ["first", "second"]
    assert route_to(rules, {"team": "a", "service": "web"}) == ["second"]
    assert route_to(rules, {"team": "b"}) == ["after-parent"]


def test_continue_on_a_parent_lets_later_top_level_routes_match(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - name: audit
    continue: true
    routes:
      - name: audit-db
        matchers: ['service="db"']
  - name: db
    matchers: ['service="db"']
  - name: rest
""")
    assert route_to(rules, {"service": "db"}) == ["audit-db", "db"]
    assert route_to(rules, {"service": "web"}) == ["audit", "rest"]


def test_all_continue_and_none_matching_falls_back_to_root(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - {name: one, matchers: ['a="1"'], continue: true}
  - {name: two, matchers: ['b="2"'], continue: true}
""")
    assert route_to(rules, {"a": "1", "b": "2"}) == ["one", "two"]
    assert route_to(rules, {"a": "1"}) == ["one"]
    assert route_to(rules, {"c": "3"}) == ["root"]


@pytest.mark.parametrize(
    ("matcher", "value", "matches"),
    [
        ('svc=~"db"', "db", True),
        ('svc=~"db"', "mydb", False),  # anchored at the start
        ('svc=~"db"', "db1", False),  # and at the end
        ('svc=~"db.*"', "db1", True),
        ('svc=~"db|pg"', "pg", True),
        ('svc=~"db|pg"', "pgbouncer", False),  # the anchor spans the whole alternation
        ('svc=~".*db"', "mydb", True),
        ('svc!~"db"', "mydb", True),
        ('svc!~"db"', "db", False),
        ('svc!~"db|pg"', "pg", False),
        ('svc=~""', None, True),  # a missing label is ""
        ('svc=~".+"', None, False),
        ('svc!~".+"', None, True),
        ('svc=""', None, True),
        ('svc=""', "x", False),
        ('svc!=""', None, False),
        ('svc!="db"', None, True),
        ('svc="db"', "DB", False),  # case-sensitive
        ('svc=~"(?i)db"', "DB", True),
    ],
)
def test_matchers_in_routes(tmp_path: Path, matcher: str, value: str | None, matches: bool
                            ) -> None:
    rules = load(tmp_path, f"""
routes:
  - name: hit
    matchers: ['{matcher}']
""")
    labels = {"alertname": "A"} if value is None else {"alertname": "A", "svc": value}
    assert route_to(rules, labels) == (["hit"] if matches else ["root"])


def test_all_matchers_of_a_route_must_hold(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - name: hit
    matchers: ['env="prod"', 'team!="b"', 'svc=~"db|pg"', 'instance!~"test-.*"']
""")
    base = {"env": "prod", "team": "a", "svc": "db", "instance": "db-1"}
    assert route_to(rules, base) == ["hit"]
    for key, bad in [("env", "dev"), ("team", "b"), ("svc", "web"), ("instance", "test-1")]:
        assert route_to(rules, {**base, key: bad}) == ["root"], key


# --- inheritance -----------------------------------------------------------------------

INHERIT = """
defaults:
  notify: [{channel: console, to: default}]
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
  send_resolved: false
  priority: low
routes:
  - name: bare
    matchers: ['kind="bare"']
  - name: parent
    matchers: ['kind="nested"']
    sources: [alertmanager]
    severity: critical
    priority: high
    notify: [{channel: in-app, to: parent}]
    group_by: [cluster]
    group_wait: 10s
    group_interval: 20s
    repeat_interval: 30s
    send_resolved: true
    routes:
      - name: inherits
        matchers: ['child="inherits"']
      - name: overrides
        matchers: ['child="overrides"']
        sources: [alertmanager, grafana]
        severity: info
        priority: normal
        notify: [{channel: webhook, to: "https://example.test/hook"}]
        group_by: [service]
        group_wait: 1m
        group_interval: 2m
        repeat_interval: 3m
        send_resolved: false
        routes:
          - name: grandchild
            matchers: ['deep="yes"']
"""


def _settings(r: Route) -> dict[str, Any]:
    return {
        "sources": r.sources, "severity": r.severity, "priority": r.priority,
        "notify": r.notify, "group_by": r.group_by, "group_wait": r.group_wait,
        "group_interval": r.group_interval, "repeat_interval": r.repeat_interval,
        "send_resolved": r.send_resolved,
    }


PARENT_SETTINGS: dict[str, Any] = {
    "sources": frozenset({"alertmanager"}), "severity": "critical", "priority": "high",
    "notify": (Target("in-app", "parent"),), "group_by": ("cluster",), "group_wait": 10.0,
    "group_interval": 20.0, "repeat_interval": 30.0, "send_resolved": True,
}
OVERRIDE_SETTINGS: dict[str, Any] = {
    "sources": frozenset({"alertmanager", "grafana"}), "severity": "info",
    "priority": "normal", "notify": (Target("webhook", "https://example.test/hook"),),
    "group_by": ("service",), "group_wait": 60.0, "group_interval": 120.0,
    "repeat_interval": 180.0, "send_resolved": False,
}


@pytest.mark.parametrize(
    ("labels", "name", "expected"),
    [
        ({"kind": "bare"}, "bare", {
            "sources": None, "severity": None, "priority": "low",
            "notify": (Target("console", "default"),), "group_by": ("alertname",),
            "group_wait": 1.0, "group_interval": 2.0, "repeat_interval": 3.0,
            "send_resolved": False,
        }),
        ({"kind": "nested"}, "parent", PARENT_SETTINGS),
        ({"kind": "nested", "child": "inherits"}, "inherits", PARENT_SETTINGS),
        ({"kind": "nested", "child": "overrides"}, "overrides", OVERRIDE_SETTINGS),
        ({"kind": "nested", "child": "overrides", "deep": "yes"}, "grandchild",
         OVERRIDE_SETTINGS),
    ],
)
def test_routes_inherit_unset_settings_from_their_parent(
    tmp_path: Path, labels: dict[str, str], name: str, expected: dict[str, Any]
) -> None:
    [d] = route_alert(load(tmp_path, INHERIT), alert(labels))
    assert d.route.name == name
    assert _settings(d.route) == expected


def test_inherited_sources_filter_children(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - name: am-only
    sources: [alertmanager]
    routes:
      - name: am-child
        matchers: ['x="1"']
  - name: other
""")
    assert route_to(rules, {"x": "1"}, "alertmanager") == ["am-child"]
    assert route_to(rules, {"x": "1"}, "grafana") == ["other"]
    [d] = route_alert(rules, alert({"x": "1"}))
    assert d.route.sources == frozenset({"alertmanager"})


def test_group_by_all_is_inherited_until_a_child_sets_its_own(tmp_path: Path) -> None:
    # Alertmanager's TestInheritParentGroupByAll
    rules = load(tmp_path, """
routes:
  - matchers: ['env="parent"']
    group_by: ['...']
    routes:
      - name: child1
        matchers: ['env="child1"']
      - name: child2
        matchers: ['env="child2"']
        group_by: ['foo']
""")
    parent = rules.root.children[0]
    child1, child2 = parent.children
    assert parent.group_by is None
    assert child1.group_by is None
    assert child2.group_by == ("foo",)


def test_an_empty_group_by_in_a_child_overrides_the_parent(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - group_by: [alertname]
    routes:
      - name: child
        group_by: []
""")
    [d] = route_alert(rules, alert({"alertname": "A", "x": "1"}))
    assert d.route.name == "child"
    assert d.group_labels == {}


# --- sources ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sources", "source", "accepted"),
    [
        ("[alertmanager]", "alertmanager", True),
        ("[alertmanager]", "grafana", False),
        ("[alertmanager]", "generic:shell", False),
        ("[grafana]", "grafana", True),
        ("[alertmanager, grafana]", "grafana", True),
        ("[generic]", "generic:shell", True),  # every generic source
        ("[generic]", "generic:uptime-kuma", True),
        ("[generic]", "alertmanager", False),
        ("[generic:shell]", "generic:shell", True),
        ("[generic:shell]", "generic:uptime-kuma", False),
        ("[generic:shell]", "generic:shell2", False),
        ("[generic:shell]", "alertmanager", False),
        ("[generic:shell, grafana]", "grafana", True),
    ],
)
def test_sources_filter_by_alert_source(
    tmp_path: Path, sources: str, source: str, accepted: bool
) -> None:
    rules = load(tmp_path, f"""
routes:
  - name: filtered
    sources: {sources}
""")
    assert route_to(rules, {"alertname": "A"}, source) == (
        ["filtered"] if accepted else ["root"])


def test_no_sources_key_accepts_every_source(tmp_path: Path) -> None:
    rules = load(tmp_path, "routes: [{name: any}]\n")
    for source in ("alertmanager", "grafana", "generic:x", "api"):
        assert route_to(rules, {}, source) == ["any"]


# --- severity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        ({"severity": "critical"}, "critical"),
        ({"severity": "CRITICAL"}, "critical"),  # the label value is case-insensitive
        ({"severity": "Page"}, "critical"),
        ({"severity": "error"}, "critical"),
        ({"severity": "warning"}, "warning"),
        ({"severity": "WARN"}, "warning"),
        ({"severity": "info"}, "info"),
        ({"severity": "none"}, "info"),
        ({"severity": "bogus"}, "warning"),  # unmapped value: the default
        ({}, "warning"),  # no label: the default
        ({"level": "critical"}, "warning"),  # another label does not count
    ],
)
def test_severity_from_the_default_severity_map(
    tmp_path: Path, labels: dict[str, str], severity: str
) -> None:
    [d] = route_alert(load(tmp_path, "routes: []\n"), alert(labels))
    assert d.severity == severity


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        ({"level": "P1"}, "critical"),
        ({"level": "p1"}, "critical"),
        ({"level": "p2"}, "warning"),
        ({"level": "p5"}, "info"),  # unmapped: this map's default
        ({"severity": "critical"}, "info"),  # the map reads its own label only
        ({}, "info"),
    ],
)
def test_severity_from_a_custom_severity_map(
    tmp_path: Path, labels: dict[str, str], severity: str
) -> None:
    rules = load(tmp_path, """
severity_map:
  label: level
  map: {P1: critical, p2: warning}
  default: info
""")
    [d] = route_alert(rules, alert(labels))
    assert d.severity == severity


def test_route_severity_overrides_the_label(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - name: tagged
    matchers: ['team="a"']
    severity: critical
    routes:
      - name: child-inherits
        matchers: ['x="1"']
      - name: child-info
        matchers: ['x="2"']
        severity: info
  - name: untagged
""")
    cases = [
        ({"team": "a", "severity": "info"}, "tagged", "critical"),
        ({"team": "a", "x": "1", "severity": "info"}, "child-inherits", "critical"),
        ({"team": "a", "x": "2", "severity": "critical"}, "child-info", "info"),
        ({"team": "b", "severity": "info"}, "untagged", "info"),
        ({"team": "b", "severity": "critical"}, "untagged", "critical"),
    ]
    for labels, name, severity in cases:
        [d] = route_alert(rules, alert(labels))
        assert (d.route.name, d.severity) == (name, severity), labels


def test_each_decision_of_a_continued_alert_has_its_route_severity(tmp_path: Path) -> None:
    rules = load(tmp_path, """
routes:
  - {name: pager, severity: critical, continue: true}
  - {name: log}
""")
    decisions = route_alert(rules, alert({"severity": "info"}))
    assert [(d.route.name, d.severity) for d in decisions] == [
        ("pager", "critical"), ("log", "info")]


# --- group labels and keys -------------------------------------------------------------

GROUPING = """
routes:
  - name: by-name-cluster
    matchers: ['kind="a"']
    group_by: [alertname, cluster]
  - name: by-all
    matchers: ['kind="b"']
    group_by: ['...']
  - name: one-group
    matchers: ['kind="c"']
    group_by: []
  - name: by-name-cluster-too
    matchers: ['kind="d"']
    group_by: [alertname, cluster]
"""


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"kind": "a", "alertname": "A", "cluster": "eu", "pod": "p1"},
         {"alertname": "A", "cluster": "eu"}),
        # a group_by label the alert lacks is left out
        ({"kind": "a", "alertname": "A"}, {"alertname": "A"}),
        ({"kind": "b", "alertname": "A", "pod": "p1"},
         {"kind": "b", "alertname": "A", "pod": "p1"}),
        ({"kind": "c", "alertname": "A", "pod": "p1"}, {}),
    ],
)
def test_group_labels(tmp_path: Path, labels: dict[str, str], expected: dict[str, str]
                      ) -> None:
    [d] = route_alert(load(tmp_path, GROUPING), alert(labels))
    assert d.group_labels == expected


def _key(rules: RuleSet, labels: dict[str, str]) -> str:
    [d] = route_alert(rules, alert(labels))
    return d.group_key


def test_group_keys(tmp_path: Path) -> None:
    rules = load(tmp_path, GROUPING)
    a1 = {"kind": "a", "alertname": "A", "cluster": "eu", "pod": "p1"}
    # same route, same group labels (other labels differ): same group
    assert _key(rules, a1) == _key(rules, {**a1, "pod": "p2", "extra": "x"})
    # a group label differs, or is missing: another group
    assert _key(rules, a1) != _key(rules, {**a1, "cluster": "us"})
    assert _key(rules, a1) != _key(rules, {**a1, "alertname": "B"})
    assert _key(rules, a1) != _key(rules, {"kind": "a", "alertname": "A", "pod": "p1"})
    # same group labels on another route: another group
    assert _key(rules, a1) != _key(rules, {**a1, "kind": "d"})
    # group by all: any label difference is another group
    b1 = {"kind": "b", "alertname": "A", "pod": "p1"}
    assert _key(rules, b1) == _key(rules, dict(b1))
    assert _key(rules, b1) != _key(rules, {**b1, "pod": "p2"})
    assert _key(rules, b1) != _key(rules, {**b1, "new": "label"})
    # one group for the whole route
    c1 = {"kind": "c", "alertname": "A"}
    assert _key(rules, c1) == _key(rules, {"kind": "c", "alertname": "B", "x": "y"})


def test_group_key_is_stable_and_unambiguous(tmp_path: Path) -> None:
    rules = load(tmp_path, GROUPING)
    route = rules.routes_by_id["by-all"]
    # label order does not matter
    assert group_key(route, {"a": "1", "b": "2"}) == group_key(route, {"b": "2", "a": "1"})
    # the same text split differently between names and values is another key
    assert group_key(route, {"ab": "c"}) != group_key(route, {"a": "bc"})
    assert group_key(route, {"a": "1", "b": "2"}) != group_key(route, {"a": "1b2"})
    assert group_key(route, {}) != group_key(rules.routes_by_id["one-group"], {})
    # stable across reloads of the same rules
    again = load(tmp_path, GROUPING)
    assert group_key(route, {"a": "1"}) == group_key(again.routes_by_id["by-all"], {"a": "1"})


def test_decision_fields(tmp_path: Path) -> None:
    rules = load(tmp_path, GROUPING)
    labels = {"kind": "a", "alertname": "A", "cluster": "eu"}
    [d] = route_alert(rules, alert(labels))
    assert d == Decision(rules.routes_by_id["by-name-cluster"],
                         group_key(d.route, {"alertname": "A", "cluster": "eu"}),
                         {"alertname": "A", "cluster": "eu"}, "warning")
    assert group_labels(d.route, labels) == d.group_labels


# --- Alertmanager's dispatch/route_test.go ---------------------------------------------

# TestRouteMatch's tree, translated: receiver -> notify, match/match_re -> matchers.
AM_ROUTE_MATCH = """
defaults:
  notify: [{channel: console, to: notify-def}]
routes:
  - matchers: ['owner="team-A"']
    notify: [{channel: console, to: notify-A}]
    routes:
      - matchers: ['env="testing"']
        notify: [{channel: console, to: notify-testing}]
        group_by: ['...']
      - matchers: ['env="production"']
        notify: [{channel: console, to: notify-productionA}]
        group_wait: 1m
        continue: true
      - matchers: ['env=~"produ.*"', 'job=~".*"']
        notify: [{channel: console, to: notify-productionB}]
        group_wait: 30s
        group_interval: 5m
        repeat_interval: 1h
        group_by: ['job']
  - matchers: ['owner=~"team-(B|C)"']
    group_by: ['foo', 'bar']
    group_wait: 2m
    notify: [{channel: console, to: notify-BC}]
  - matchers: ['group_by="role"']
    group_by: ['role']
    routes:
      - matchers: ['env="testing"']
        notify: [{channel: console, to: notify-testing}]
        routes:
          - matchers: ['wait="long"']
            group_wait: 2m
"""

# TestRouteMatchers' tree: the same, with extra negative matchers.
AM_ROUTE_MATCHERS = """
defaults:
  notify: [{channel: console, to: notify-def}]
routes:
  - matchers: ['owner="team-A"', 'level!="critical"']
    notify: [{channel: console, to: notify-A}]
    routes:
      - matchers: ['env="testing"', 'baz!~".*quux"']
        notify: [{channel: console, to: notify-testing}]
        group_by: [...]
      - matchers: ['env="production"']
        notify: [{channel: console, to: notify-productionA}]
        group_wait: 1m
        continue: true
      - matchers: [ env=~"produ.*", job=~".*"]
        notify: [{channel: console, to: notify-productionB}]
        group_wait: 30s
        group_interval: 5m
        repeat_interval: 1h
        group_by: ['job']
  - matchers: [owner=~"team-(B|C)"]
    group_by: ['foo', 'bar']
    group_wait: 2m
    notify: [{channel: console, to: notify-BC}]
  - matchers: [group_by="role"]
    group_by: ['role']
    routes:
      - matchers: ['env="testing"']
        notify: [{channel: console, to: notify-testing}]
        routes:
          - matchers: [wait="long"]
            group_wait: 2m
"""

# (receiver, group_by (None: all), group_wait, group_interval, repeat_interval)
Opts = tuple[str, tuple[str, ...] | None, float, float, float]
DEF_WAIT, DEF_INTERVAL, DEF_REPEAT = 30.0, 300.0, 14400.0

AM_CASES: list[tuple[dict[str, str], list[Opts]]] = [
    ({"owner": "team-A"}, [("notify-A", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "unset"},
     [("notify-A", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-C"},
     [("notify-BC", ("foo", "bar"), 120.0, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "testing"},
     [("notify-testing", None, DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "production"}, [
        ("notify-productionA", (), 60.0, DEF_INTERVAL, DEF_REPEAT),
        ("notify-productionB", ("job",), 30.0, 300.0, 3600.0),
    ]),
    ({"group_by": "role"}, [("notify-def", ("role",), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"env": "testing", "group_by": "role"},
     [("notify-testing", ("role",), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"env": "testing", "group_by": "role", "wait": "long"},
     [("notify-testing", ("role",), 120.0, DEF_INTERVAL, DEF_REPEAT)]),
]

# Not in the Go tables, but implied by the trees.
AM_EXTRA_CASES: list[tuple[dict[str, str], list[Opts]]] = [
    ({"owner": "team-B"}, [("notify-BC", ("foo", "bar"), 120.0, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-D"}, [("notify-def", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "xteam-B"}, [("notify-def", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "productive"},
     [("notify-productionB", ("job",), 30.0, 300.0, 3600.0)]),
    ({}, [("notify-def", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
]

# Only TestRouteMatchers' tree has these negative matchers.
AM_MATCHERS_ONLY_CASES: list[tuple[dict[str, str], list[Opts]]] = [
    ({"owner": "team-A", "level": "critical"},
     [("notify-def", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "testing", "baz": "fooquux"},
     [("notify-A", (), DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
    ({"owner": "team-A", "env": "testing", "baz": "quuxfoo"},
     [("notify-testing", None, DEF_WAIT, DEF_INTERVAL, DEF_REPEAT)]),
]


def _opts(d: Decision) -> Opts:
    r = d.route
    return (r.notify[0].to, r.group_by, r.group_wait, r.group_interval, r.repeat_interval)


@pytest.mark.parametrize("tree", [AM_ROUTE_MATCH, AM_ROUTE_MATCHERS],
                         ids=["TestRouteMatch", "TestRouteMatchers"])
@pytest.mark.parametrize(("labels", "expected"), AM_CASES + AM_EXTRA_CASES)
def test_alertmanager_route_match(
    tmp_path: Path, tree: str, labels: dict[str, str], expected: list[Opts]
) -> None:
    decisions = route_alert(load(tmp_path, tree), alert(labels))
    assert [_opts(d) for d in decisions] == expected


@pytest.mark.parametrize(("labels", "expected"), AM_MATCHERS_ONLY_CASES)
def test_alertmanager_route_matchers_negative(
    tmp_path: Path, labels: dict[str, str], expected: list[Opts]
) -> None:
    decisions = route_alert(load(tmp_path, AM_ROUTE_MATCHERS), alert(labels))
    assert [_opts(d) for d in decisions] == expected


def test_alertmanager_keys_distinguish_the_two_production_routes(tmp_path: Path) -> None:
    # The Go test's keys: each match is its own route, hence its own group.
    rules = load(tmp_path, AM_ROUTE_MATCH)
    decisions = route_alert(rules, alert({"owner": "team-A", "env": "production"}))
    assert len({d.route.id for d in decisions}) == 2
    assert len({d.group_key for d in decisions}) == 2


# --- the sibling index -----------------------------------------------------------------


def reference_match(route: Route, source: str, labels: Mapping[str, str]) -> list[Route]:
    """Alertmanager's Route.Match, a plain walk over ``children`` that ignores ``index``."""
    out: list[Route] = []
    for child in route.children:
        if child.sources is not None and source not in child.sources and (
            source.split(":", 1)[0] not in child.sources
        ):
            continue
        if not all(m.matches(labels) for m in child.matchers):
            continue
        out.extend(reference_match(child, source, labels))
        if not child.continue_:
            break
    return out or [route]


def without_index(route: Route) -> Route:
    return replace(route, index=None, children=tuple(without_index(c) for c in route.children))


NAMES = ["a", "b", "c", "d", "e"]
VALUES = ["v0", "v1", "v2", "v3", "v4"]
REGEXES = ["v[0-2]", "v.*", ".*", ".+", "", "v1|v3", "v", "x.*", "(v0|v4)", "v[34]?"]
SOURCES = ["alertmanager", "grafana", "generic:a", "generic:b"]


def _random_matcher(rnd: random.Random) -> str:
    name = rnd.choice(NAMES)
    op = rnd.choice(["=", "=", "=", "!=", "=~", "!~"])
    if op in ("=", "!="):
        value = rnd.choice([*VALUES, ""])
    else:
        value = rnd.choice(REGEXES)
    return f'{name}{op}"{value}"'


def _random_route(rnd: random.Random, depth: int) -> dict[str, Any]:
    matchers = [_random_matcher(rnd) for _ in range(rnd.choice([0, 1, 1, 2, 2, 2, 3, 3]))]
    spec: dict[str, Any] = {"matchers": matchers}
    # A route without a (selective, indexable) equality matcher matches many alerts: it mostly
    # continues, or the first few of them would end every walk.
    selective = any(re.fullmatch(r'\w+="\w+"', m) for m in matchers)
    if rnd.random() < (0.3 if selective else 0.95):
        spec["continue"] = True
    if rnd.random() < 0.1:
        spec["sources"] = rnd.sample([*SOURCES, "generic"], rnd.randint(1, 2))
    if depth > 0 and rnd.random() < 0.08:
        spec["routes"] = [_random_route(rnd, depth - 1) for _ in range(rnd.randint(1, 12))]
    return spec


def _random_labels(rnd: random.Random) -> dict[str, str]:
    names = rnd.sample(NAMES, rnd.randint(0, len(NAMES)))
    return {n: rnd.choice([*VALUES, "v", "other", ""]) for n in names}


def _walk(route: Route) -> list[Route]:
    return [route, *(r for c in route.children for r in _walk(c))]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_index_gives_the_same_routes_as_a_linear_walk(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    spec = {"routes": [_random_route(rnd, depth=2) for _ in range(200)]}
    rules = load(tmp_path, yaml.safe_dump(spec, sort_keys=False))
    # the index is really in use, at the top and below
    assert rules.root.index is not None
    assert any(r.index is not None for c in rules.root.children for r in _walk(c))
    plain = without_index(rules.root)

    outcomes: set[tuple[str, ...]] = set()
    for _ in range(1500):
        labels = _random_labels(rnd)
        source = rnd.choice(SOURCES)
        expected = [r.id for r in reference_match(rules.root, source, labels)]
        assert [r.id for r in match_routes(rules.root, source, labels)] == expected, (
            source, labels)
        assert [r.id for r in match_routes(plain, source, labels)] == expected
        outcomes.add(tuple(expected))
    # not vacuous: many different outcomes, several of them multi-route
    assert len(outcomes) > 30
    assert any(len(o) > 1 for o in outcomes)


def test_index_with_the_same_equality_on_many_siblings(tmp_path: Path) -> None:
    # Siblings sharing their indexed pair, interleaved with unindexed ones: file order holds.
    routes = []
    for i in range(40):
        kind = i % 4
        if kind == 0:
            m = ['team="a"', f'n!="{i}"']
        elif kind == 1:
            m = ['team=""', 'x="1"']  # name="" is not indexable
        elif kind == 2:
            m = ['x!="2"', 'team="a"']  # indexed by its second matcher
        else:
            m = ['team=~"a|b"']
        routes.append({"name": f"r{i}", "matchers": m, "continue": i % 3 != 0})
    rules = load(tmp_path, yaml.safe_dump({"routes": routes}))
    assert rules.root.index is not None
    rnd = random.Random(7)
    for _ in range(300):
        labels = {k: rnd.choice(["a", "b", "1", "2", "0", "3"])
                  for k in rnd.sample(["team", "x", "n"], rnd.randint(0, 3))}
        expected = [r.name for r in reference_match(rules.root, "alertmanager", labels)]
        got = [r.name for r in match_routes(rules.root, "alertmanager", labels)]
        assert got == expected, labels


def _route(name: str, matchers: list[str]) -> Route:
    from agent.routing.matchers import parse_matcher

    return Route(id=name, name=name, matchers=tuple(parse_matcher(m) for m in matchers),
                 sources=None, severity=None, priority="normal", notify=(), group_by=(),
                 group_wait=0.0, group_interval=0.0, repeat_interval=0.0, send_resolved=True,
                 active_time_intervals=(), mute_time_intervals=(), continue_=False)


def test_build_index_needs_eight_siblings() -> None:
    children = tuple(_route(f"r{i}", [f'a="{i}"']) for i in range(8))
    assert build_index(children[:7]) is None
    assert build_index(()) is None
    index = build_index(children)
    assert index is not None
    assert index.by_pair == {("a", str(i)): (i,) for i in range(8)}
    assert index.always == ()


def test_build_index_keys_by_the_first_non_empty_equality() -> None:
    children = (
        _route("r0", ['a="1"', 'b="2"']),
        _route("r1", ['a!="1"', 'b="2"']),
        _route("r2", ['a=""', 'b=~"2"']),
        _route("r3", []),
        _route("r4", ['a=~"1"']),
        _route("r5", ['a=""', 'c="3"']),
        _route("r6", ['a="1"']),
        _route("r7", ['b!~"x"']),
    )
    index = build_index(children)
    assert index is not None
    assert index.by_pair == {("a", "1"): (0, 6), ("b", "2"): (1,), ("c", "3"): (5,)}
    assert index.always == (2, 3, 4, 7)


# --- a big rule file -------------------------------------------------------------------


def test_ten_thousand_routes_load_and_route(tmp_path: Path) -> None:
    lines = ["routes:"]
    for i in range(10_000):
        if i % 1000 == 999:
            lines.append(f"  - {{matchers: ['service=~\"svc{i}|special\"'], continue: true}}")
        else:
            lines.append(f"  - {{matchers: ['service=\"svc{i}\"']}}")
    lines.append("  - {name: tail}")
    rules = load(tmp_path, "\n".join(lines) + "\n", name="big.yaml")
    assert len(rules.root.children) == 10_001
    assert rules.root.index is not None

    def ids(labels: dict[str, str]) -> list[str]:
        return [d.route.name for d in route_alert(rules, alert(labels))]

    assert ids({"service": "svc0"}) == ["big.yaml:routes[0]"]
    assert ids({"service": "svc5000"}) == ["big.yaml:routes[5000]"]
    assert ids({"service": "svc9998"}) == ["big.yaml:routes[9998]"]
    # a continue route falls through to the catch-all at the end
    assert ids({"service": "svc1999"}) == ["big.yaml:routes[1999]", "tail"]
    assert ids({"service": "special"}) == [
        f"big.yaml:routes[{i}]" for i in range(999, 10_000, 1000)] + ["tail"]
    assert ids({"service": "unknown"}) == ["tail"]
    assert ids({}) == ["tail"]


# --- the router's memo (a storm of alerts that differ in labels no matcher reads) ---------

MEMO = f"""
defaults:
  group_by: [alertname, team]
routes:
  - name: empty-team
    matchers: ['team=""', 'service="db"']
    notify: {console("nobody")}
  - name: db
    matchers: ['service="db"']
    notify: {console("dba")}
  - name: web
    matchers: ['service=~"web|api"']
    group_by: ['...']
    notify: {console("web")}
"""


def _plain(rules: RuleSet, a: Alert) -> list[tuple[str, str, dict[str, str], str]]:
    """route_alert's answer computed without the memo."""
    out = []
    for r in match_routes(rules.root, a.source, a.labels):
        glabels = group_labels(r, a.labels)
        out.append((r.name, group_key(r, glabels), glabels,
                    r.severity or rules.severity_map.severity_of(a.labels)))
    return out


def test_a_storm_differing_in_unread_labels_is_routed_once(tmp_path: Path) -> None:
    rules = load(tmp_path, MEMO)
    storm = [alert({"alertname": f"Down{i % 3}", "service": "db", "team": "core",
                    "instance": f"host-{i}"}) for i in range(1000)]
    for a in storm:
        assert [(d.route.name, d.group_key, d.group_labels, d.severity)
                for d in route_alert(rules, a)] == _plain(rules, a)
    # instance is read by no matcher and not grouped by: one route lookup, three group keys
    assert len(rules.routing_cache.routes) == 1
    assert len(rules.routing_cache.group_keys) == 3


@pytest.mark.parametrize("labels", [
    {"service": "db"},  # no team: team="" matches
    {"service": "db", "team": ""},  # an empty team matches too, but is another memo entry
    {"service": "db", "team": "core"},
    {"service": "web", "team": "core", "instance": "a"},  # group_by all labels: no key memo
    {"service": "web", "team": "core", "instance": "b"},
    {"service": "api"},
    {},
])
def test_the_memo_answers_as_the_route_tree_does(tmp_path: Path, labels: dict[str, str]) -> None:
    rules = load(tmp_path, MEMO)
    for _ in range(2):  # the second answer comes from the memo
        a = alert(labels)
        assert [(d.route.name, d.group_key, d.group_labels, d.severity)
                for d in route_alert(rules, a)] == _plain(rules, a)


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    from agent.routing.router import CACHE_MAX

    rules = load(tmp_path, MEMO)
    for i in range(CACHE_MAX + 50):  # every alert differs in a label a matcher reads
        route_alert(rules, alert({"service": f"svc-{i}", "team": "core"}))
    assert 0 < len(rules.routing_cache.routes) <= CACHE_MAX


def test_the_memo_is_per_rule_set(tmp_path: Path) -> None:
    old = load(tmp_path, MEMO)
    route_alert(old, alert({"service": "db", "team": "core"}))
    (tmp_path / "new").mkdir()
    new = load(tmp_path / "new", MEMO.replace('service="db"', 'service="pg"'))
    assert route_to(new, {"service": "db", "team": "core"}) != ["db"]
    assert new.routing_cache is not old.routing_cache
