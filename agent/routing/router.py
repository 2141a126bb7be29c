"""Pure routing: an alert's labels -> the routes it goes to, with group key and severity.

Semantics as Alertmanager's ``Route.Match``: a route that matches tries its children in order;
the first matching child wins unless it has ``continue``; a route none of whose children match
handles the alert itself. Top-level routes are the children of an implicit catch-all root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.domain import Alert
from agent.routing.ruleset import ChildIndex, Route, RuleSet


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route
    group_key: str
    group_labels: dict[str, str]
    severity: str


def _candidates(route: Route, labels: Mapping[str, str]) -> list[int] | range:
    idx = route.index
    if idx is None:
        return range(len(route.children))
    found: list[int] = list(idx.always)
    for pair in labels.items():
        hit = idx.by_pair.get(pair)
        if hit:
            found.extend(hit)
    found.sort()
    return found


def match_routes(route: Route, source: str, labels: Mapping[str, str]) -> list[Route]:
    """The routes handling ``labels`` under ``route`` (which must itself match)."""
    out: list[Route] = []
    children = route.children
    for i in _candidates(route, labels):
        child = children[i]
        if not child.accepts(source, labels):
            continue
        out.extend(match_routes(child, source, labels))
        if not child.continue_:
            break
    if not out:
        out.append(route)
    return out


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    if route.group_by is None:
        return dict(labels)
    return {k: labels[k] for k in route.group_by if k in labels}


def group_key(route: Route, glabels: Mapping[str, str]) -> str:
    """Stable key of a group: route id and the grouping labels (hashed: labels can be long)."""
    text = route.id + "\x00" + "\x00".join(f"{k}\xff{glabels[k]}" for k in sorted(glabels))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# Entries per memo of a rule set: alerts that differ in a label some matcher reads (a storm
# routed on `instance`) would otherwise grow it without bound; it starts over when full.
CACHE_MAX = 4096


def _matcher_names(route: Route) -> set[str]:
    names = {m.name for m in route.matchers}
    for child in route.children:
        names |= _matcher_names(child)
    return names


def _routes(rules: RuleSet, source: str, labels: Mapping[str, str]) -> tuple[Route, ...]:
    """``match_routes`` from the root, memoised on the source and the labels matchers read
    (only those decide: an absent label and an empty one stay apart in the key)."""
    cache = rules.routing_cache
    names = cache.label_names
    if names is None:
        names = cache.label_names = tuple(sorted(_matcher_names(rules.root)))
    key = (source, *[labels.get(n) for n in names])
    hit = cache.routes.get(key)
    if hit is None:
        if len(cache.routes) >= CACHE_MAX:
            cache.routes.clear()
        hit = cache.routes[key] = tuple(match_routes(rules.root, source, labels))
    return hit


def _group_key(rules: RuleSet, route: Route, glabels: dict[str, str]) -> str:
    if route.group_by is None:  # every label: as distinct as the alerts, not worth a memo
        return group_key(route, glabels)
    keys = rules.routing_cache.group_keys
    key = (route.id, tuple(glabels.items()))
    hit = keys.get(key)
    if hit is None:
        if len(keys) >= CACHE_MAX:
            keys.clear()
        hit = keys[key] = group_key(route, glabels)
    return hit


def route_alert(rules: RuleSet, alert: Alert) -> list[Decision]:
    """Every (route, group) an alert belongs to, with its severity tag."""
    labels = alert.labels
    out = []
    for route in _routes(rules, alert.source, labels):
        glabels = group_labels(route, labels)
        severity = route.severity or rules.severity_map.severity_of(labels)
        out.append(Decision(route, _group_key(rules, route, glabels), glabels, severity))
    return out


def build_index(children: tuple[Route, ...]) -> ChildIndex | None:
    """Index siblings by their first equality matcher; None when there are too few to bother."""
    if len(children) < 8:
        return None
    by_pair: dict[tuple[str, str], list[int]] = {}
    always: list[int] = []
    for i, child in enumerate(children):
        pair = next((p for m in child.matchers if (p := m.equality()) is not None), None)
        if pair is None:
            always.append(i)
        else:
            by_pair.setdefault(pair, []).append(i)
    return ChildIndex({k: tuple(v) for k, v in by_pair.items()}, tuple(always))


def restrict(notify: list[dict[str, Any]], channels: Iterable[str]) -> list[dict[str, Any]]:
    """The notify targets of a route snapshot that use one of `channels`."""
    allowed = set(channels)
    return [t for t in notify if t["channel"] in allowed]
