"""The compiled rule set: immutable, built off to the side, swapped in as one reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.directory import Directory
from agent.ingest.generic import GenericMapping
from agent.routing.matchers import Matcher
from agent.routing.timeintervals import TimeInterval


@dataclass(frozen=True, slots=True)
class Target:
    channel: str  # a channel, or PREFERRED
    to: str
    template: str | None = None
    update: str | None = None  # "edit" | "thread" | "new"; None: edit where the channel can
    retract: bool = False
    overflow: str | None = None  # "split" | "truncate"; None: the channel's default
    content_sid: str | None = None  # whatsapp: the pre-approved template to send
    channels: tuple[str, ...] | None = None  # PREFERRED: within these channels only

    def snapshot(self) -> dict[str, Any]:
        """As stored with a group: the delivery options only when set, so old snapshots and
        new ones read alike."""
        out: dict[str, Any] = {"channel": self.channel, "to": self.to, "template": self.template}
        if self.update is not None:
            out["update"] = self.update
        if self.retract:
            out["retract"] = True
        if self.overflow is not None:
            out["overflow"] = self.overflow
        if self.content_sid is not None:
            out["content_sid"] = self.content_sid
        if self.channels is not None:
            out["channels"] = list(self.channels)
        return out


@dataclass(frozen=True, slots=True)
class Escalation:
    until: str  # "acknowledged" | "resolved"
    repeat: int
    steps: tuple[tuple[float, tuple[Target, ...]], ...]  # (after seconds, targets)

    def snapshot(self) -> dict[str, Any]:
        return {"until": self.until, "repeat": self.repeat,
                "steps": [{"after": after, "notify": [t.snapshot() for t in targets]}
                          for after, targets in self.steps]}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    body: str
    channel: str | None = None
    subject: str | None = None
    content_sid: str | None = None  # whatsapp: the pre-approved template to send


@dataclass(frozen=True, slots=True)
class Route:
    """A route with every inherited setting resolved; ``id`` is stable across reloads."""

    id: str  # "file.yaml:routes[0].routes[1]" unless named: then the name
    name: str
    matchers: tuple[Matcher, ...]
    sources: frozenset[str] | None
    severity: str | None
    priority: str
    notify: tuple[Target, ...]
    group_by: tuple[str, ...] | None  # None: group by every label ('...')
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_resolved: bool
    active_time_intervals: tuple[str, ...]
    mute_time_intervals: tuple[str, ...]
    continue_: bool
    children: tuple[Route, ...] = ()
    index: ChildIndex | None = None
    # Teams and members whose chat clicks and links may acknowledge the route's alerts.
    ack_by: tuple[str, ...] = ()
    escalation: Escalation | None = None

    def accepts(self, source: str, labels: Mapping[str, str]) -> bool:
        if self.sources is not None and source not in self.sources and (
            source.partition(":")[0] not in self.sources
        ):
            return False
        return all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True, slots=True)
class ChildIndex:
    """Children by one equality matcher each, so a router need not try every sibling.

    A child can only match when its indexed ``name="value"`` holds, so the candidates for an
    alert are the children under its own (name, value) pairs plus those with no equality
    matcher, tried in file order: first-match semantics are unchanged.
    """

    by_pair: dict[tuple[str, str], tuple[int, ...]]
    always: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeverityMap:
    label: str
    map: Mapping[str, str]
    default: str

    def severity_of(self, labels: Mapping[str, str]) -> str:
        value = labels.get(self.label)
        if value is None:
            return self.default
        return self.map.get(value.lower(), self.default)


@dataclass(slots=True)
class RoutingCache:
    """Memo of the router for one rule set (see ``router.route_alert``): the routes of an
    alert depend only on its source and the labels some matcher reads, and a group key only on
    the route and its group labels, so a storm's alerts mostly share both."""

    label_names: tuple[str, ...] | None = None  # every label a matcher of the tree reads
    routes: dict[tuple[str | None, ...], tuple[Route, ...]] = field(default_factory=dict)
    group_keys: dict[tuple[str, tuple[tuple[str, str], ...]], str] = field(
        default_factory=dict)


@dataclass(frozen=True)
class RuleSet:
    root: Route
    severity_map: SeverityMap
    inhibit_rules: tuple[InhibitRule, ...]
    time_intervals: Mapping[str, tuple[TimeInterval, ...]]
    templates: Mapping[str, Template]
    generic_sources: Mapping[str, GenericMapping]
    files: tuple[str, ...]
    config_hash: str
    routes_by_id: Mapping[str, Route] = field(default_factory=dict)
    # The teams and members of the rule files: who ``to: team_x`` and ``to: mem_x`` reach.
    directory: Directory = field(default_factory=Directory)
    _snapshots: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # Not an init argument: a RuleSet made with dataclasses.replace() starts a memo of its own.
    routing_cache: RoutingCache = field(default_factory=RoutingCache, init=False, repr=False,
                                        compare=False)

    def snapshot(self, route: Route) -> dict[str, Any]:
        """A route's delivery settings as JSON, stored with its groups (cached: don't mutate).

        A group flushes with the current route of the same id; the snapshot serves when a
        reload removed that route, so no group is ever orphaned.
        """
        cached = self._snapshots.get(route.id)
        if cached is None:
            cached = self._snapshots[route.id] = self._snapshot(route)
        return cached

    def _snapshot(self, route: Route) -> dict[str, Any]:
        names = {t.template for t in route.notify if t.template}
        return {
            "id": route.id, "name": route.name, "priority": route.priority,
            "notify": [t.snapshot() for t in route.notify],
            "group_wait": route.group_wait, "group_interval": route.group_interval,
            "repeat_interval": route.repeat_interval, "send_resolved": route.send_resolved,
            "active_time_intervals": list(route.active_time_intervals),
            "mute_time_intervals": list(route.mute_time_intervals),
            **({"ack_by": list(route.ack_by)} if route.ack_by else {}),
            **({"escalation": route.escalation.snapshot()} if route.escalation else {}),
            "templates": {n: _template_snapshot(self.templates[n])
                          for n in names if n in self.templates},
        }


def _template_snapshot(t: Template) -> dict[str, Any]:
    out: dict[str, Any] = {"body": t.body, "subject": t.subject}
    if t.content_sid is not None:  # only when set: old snapshots and new ones read alike
        out["content_sid"] = t.content_sid
    return out
