"""Rules directory -> RuleSet: parse, validate, cross-check, compile. All problems, then one error.

Every problem names the file, the line and the reason, so a bad edit is found at once; the caller
keeps its running rules when loading fails (hot reload is all-or-nothing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.delivery.rendering import TemplateError, extract_variables
from agent.routing.matchers import Matcher, MatcherError, parse_matcher
from agent.routing.router import build_index
from agent.routing.ruleset import (
    InhibitRule,
    Route,
    RuleSet,
    SeverityMap,
    Target,
    Template,
)
from agent.routing.schema import RouteDefaults, RouteSpec, RuleFile, SeverityMapSpec
from agent.routing.timeintervals import TimeInterval, TimeIntervalError, parse_time_interval

KNOWN_SOURCES = frozenset({"alertmanager", "grafana", "generic", "api"})
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class RulesError(Exception):
    """The rules cannot be loaded; ``problems`` lists every reason with its file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


def rule_files(rules_dir: Path) -> list[Path]:
    """``*.yaml`` and ``*.yml`` directly in the directory, in file-name order."""
    if not rules_dir.is_dir():
        return []
    return sorted(
        (p for p in rules_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()),
        key=lambda p: p.name,
    )


def _line(node: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """The 1-based line of ``loc`` in a composed YAML document (of the key, for a mapping)."""
    if node is None:
        return None
    line = int(node.start_mark.line)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == part:
                    node, line = v, int(k.start_mark.line)
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = int(node.start_mark.line)
        else:
            break
    return line + 1


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR, _MAP, _SEQ = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _to_data(node: yaml.Node, scalars: Any) -> Any:
    """Node tree -> data, like PyYAML's SafeConstructor but refusing repeated keys.

    Strings (nearly every scalar of a rule file) are taken as they are; other scalars go through
    PyYAML's own constructor. Several times faster than ``yaml.safe_load`` on large files.
    """
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag == _STR else scalars.construct_object(node)
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        return [_to_data(n, scalars) for n in node.value]
    if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        out: dict[Any, Any] = {}
        for k, v in node.value:
            if k.tag == "tag:yaml.org,2002:merge":
                return scalars.construct_object(node, deep=True)  # '<<' merges: the slow path
            key = _to_data(k, scalars)
            if key in out:
                raise _DuplicateKey(key, k.start_mark.line + 1)
            out[key] = _to_data(v, scalars)
        return out
    return scalars.construct_object(node, deep=True)


def _load_yaml(text: str) -> Any:
    node = yaml.compose(text, Loader=_Loader)
    return None if node is None else _to_data(node, yaml.SafeLoader(""))


@dataclass
class _Parsed:
    name: str
    rules: RuleFile
    text: str
    _tree: yaml.Node | None = None

    def line(self, *loc: int | str) -> int | None:
        # Composed only when a problem needs a line: the happy path parses once.
        if self._tree is None:
            self._tree = yaml.compose(self.text, Loader=_Loader)
        return _line(self._tree, loc)


def _yaml_problem(name: str, text: str, exc: yaml.YAMLError) -> Problem:
    try:  # the pure-Python parser words its errors better (it names the character)
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as slow_exc:
        exc = slow_exc
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    return Problem(name, line, f"invalid YAML: {getattr(exc, 'problem', exc)}")


def _parse_file(name: str, raw: bytes, problems: list[Problem]) -> _Parsed | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, None, f"not UTF-8: {exc}"))
        return None
    try:
        data = _load_yaml(text)
    except _DuplicateKey as dup:
        problems.append(Problem(name, dup.line, f"duplicate key '{dup.key}' (the earlier one "
                                                "would be ignored)"))
        return None
    except yaml.YAMLError as fast_exc:
        problems.append(_yaml_problem(name, text, fast_exc))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(name, 1, "the top level must be a mapping"))
        return None
    try:
        rules = RuleFile.model_validate(data)
    except ValidationError as exc:
        tree = yaml.compose(text, Loader=_Loader)
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            path_text = ".".join(str(p) for p in loc)
            problems.append(Problem(name, _line(tree, loc), f"{path_text}: {err['msg']}"))
        return None
    return _Parsed(name, rules, text)


class _Compiler:
    def __init__(self, files: list[_Parsed], problems: list[Problem]) -> None:
        self.files = files
        self.problems = problems
        self.templates: dict[str, Template] = {}
        self.intervals: dict[str, tuple[TimeInterval, ...]] = {}
        self.route_ids: set[str] = set()
        self.routes_by_id: dict[str, Route] = {}
        self.matcher_cache: dict[str, Matcher] = {}

    def fail(self, f: _Parsed, message: str, *loc: int | str) -> None:
        self.problems.append(Problem(f.name, f.line(*loc), message))

    def single(self, attr: str) -> tuple[_Parsed | None, Any]:
        found = [(f, getattr(f.rules, attr)) for f in self.files
                 if getattr(f.rules, attr) is not None]
        for f, _ in found[1:]:
            self.fail(f, f"'{attr}' is already defined in {found[0][0].name}", attr)
        return found[0] if found else (None, None)

    def collect_named(self) -> None:
        for f in self.files:
            for i, t in enumerate(f.rules.templates):
                if t.name in self.templates:
                    self.fail(f, f"template '{t.name}' is defined twice", "templates", i)
                    continue
                try:
                    extract_variables(t.body)
                    if t.subject:
                        extract_variables(t.subject)
                except TemplateError as exc:
                    self.fail(f, f"template '{t.name}': {exc}", "templates", i, "body")
                    continue
                self.templates[t.name] = Template(t.name, t.body, t.channel, t.subject)
            for i, ti in enumerate(f.rules.time_intervals):
                if ti.name in self.intervals:
                    self.fail(f, f"time interval '{ti.name}' is defined twice",
                              "time_intervals", i)
                    continue
                try:
                    self.intervals[ti.name] = tuple(
                        parse_time_interval(spec) for spec in ti.time_intervals)
                except (TimeIntervalError, ValueError) as exc:
                    self.fail(f, f"time interval '{ti.name}': {exc}", "time_intervals", i)

    def matchers(self, f: _Parsed, texts: list[str], *loc: int | str) -> tuple[Matcher, ...]:
        out = []
        for i, text in enumerate(texts):
            try:
                # Matchers are immutable and often repeated across routes: parse each text once.
                m = self.matcher_cache.get(text)
                if m is None:
                    m = self.matcher_cache[text] = parse_matcher(text)
                out.append(m)
            except MatcherError as exc:
                self.fail(f, f"bad matcher {text!r}: {exc}", *loc, i)
        return tuple(out)

    def group_by(self, f: _Parsed, spec: RouteSpec, parent: Route,
                 loc: tuple[int | str, ...]) -> tuple[str, ...] | None:
        if spec.group_by is None:
            return parent.group_by
        if "..." in spec.group_by and len(spec.group_by) > 1:
            self.fail(f, "group_by: '...' (every label) cannot be combined with names",
                      *loc, "group_by")
        return None if "..." in spec.group_by else tuple(spec.group_by)

    def route(self, f: _Parsed, spec: RouteSpec, parent: Route, loc: tuple[int | str, ...]
              ) -> Route:
        where = f"{f.name}:" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        if spec.name:
            rid = spec.name
            if rid in self.route_ids:
                self.fail(f, f"route name '{rid}' is used twice", *loc, "name")
        else:
            # An unnamed route is known by what it selects, not by its position: inserting a
            # route above it must not hand its groups to another route after a reload.
            rid = _content_id(parent.id, spec)
            while rid in self.route_ids:  # identical siblings: keep them apart, in order
                rid += "'"
        self.route_ids.add(rid)
        for key in ("active_time_intervals", "mute_time_intervals"):
            for i, name in enumerate(getattr(spec, key) or []):
                if name not in self.intervals:
                    self.fail(f, f"unknown time interval '{name}'", *loc, key, i)
        notify = parent.notify
        if spec.notify is not None:
            notify = tuple(Target(n.channel.value, n.to, n.template) for n in spec.notify)
            for i, n in enumerate(spec.notify):
                if n.template is not None and n.template not in self.templates:
                    self.fail(f, f"unknown template '{n.template}'", *loc, "notify", i,
                              "template")
        group_by = self.group_by(f, spec, parent, loc)
        for i, src in enumerate(spec.sources or []):
            if src not in KNOWN_SOURCES and not src.startswith("generic:"):
                self.fail(f, f"unknown source '{src}' (one of: {', '.join(sorted(KNOWN_SOURCES))}"
                          ", generic:<name>)", *loc, "sources", i)
        shell = Route(
            id=rid, name=spec.name or where,
            matchers=self.matchers(f, spec.matchers, *loc, "matchers"),
            sources=frozenset(spec.sources) if spec.sources is not None else parent.sources,
            severity=spec.severity.value if spec.severity else parent.severity,
            priority=spec.priority.value if spec.priority else parent.priority,
            notify=notify, group_by=group_by,
            group_wait=_pick(spec.group_wait, parent.group_wait),
            group_interval=_pick(spec.group_interval, parent.group_interval),
            repeat_interval=_pick(spec.repeat_interval, parent.repeat_interval),
            send_resolved=_pick(spec.send_resolved, parent.send_resolved),
            # Not inherited, as in Alertmanager's route.go: each route names its own.
            active_time_intervals=tuple(spec.active_time_intervals or ()),
            mute_time_intervals=tuple(spec.mute_time_intervals or ()),
            continue_=spec.continue_,
        )
        children = tuple(self.route(f, c, shell, (*loc, "routes", i))
                         for i, c in enumerate(spec.routes))
        done = _with_children(shell, children)
        self.routes_by_id[rid] = done
        return done


def _content_id(parent_id: str, spec: RouteSpec) -> str:
    selects = "|".join((parent_id, ",".join(spec.matchers), ",".join(spec.sources or []),
                        ",".join(spec.group_by or [])))
    return "route-" + hashlib.sha256(selects.encode()).hexdigest()[:12]


def _pick(value: Any, inherited: Any) -> Any:
    return inherited if value is None else value


def _with_children(route: Route, children: tuple[Route, ...]) -> Route:
    from dataclasses import replace

    return replace(route, children=children, index=build_index(children))


def _root(defaults: RouteDefaults) -> Route:
    return Route(
        id="root", name="root", matchers=(), sources=None, severity=None,
        priority=defaults.priority.value,
        notify=tuple(Target(n.channel.value, n.to, n.template) for n in defaults.notify),
        group_by=None if "..." in defaults.group_by else tuple(defaults.group_by),
        group_wait=defaults.group_wait, group_interval=defaults.group_interval,
        repeat_interval=defaults.repeat_interval, send_resolved=defaults.send_resolved,
        active_time_intervals=(), mute_time_intervals=(), continue_=False,
    )


def compile_files(files: list[_Parsed], problems: list[Problem], config_hash: str) -> RuleSet:
    from agent.ingest.generic import GenericMapping, compile_mapping

    c = _Compiler(files, problems)
    _, defaults = c.single("defaults")
    _, sev = c.single("severity_map")
    sev = sev or SeverityMapSpec()
    c.collect_named()
    root = _root(defaults or RouteDefaults())
    top = []
    for f in files:
        for i, spec in enumerate(f.rules.routes):
            top.append(c.route(f, spec, root, ("routes", i)))
    inhibit = []
    generic: dict[str, GenericMapping] = {}
    for f in files:
        for i, rule in enumerate(f.rules.inhibit_rules):
            inhibit.append(InhibitRule(
                c.matchers(f, rule.source_matchers, "inhibit_rules", i, "source_matchers"),
                c.matchers(f, rule.target_matchers, "inhibit_rules", i, "target_matchers"),
                tuple(rule.equal)))
        for name, mapping in f.rules.generic_sources.items():
            if not _SOURCE_NAME.fullmatch(name):
                c.fail(f, f"generic source name {name!r}: use 1-64 letters, digits, _ or -",
                       "generic_sources", name)
                continue
            if name in generic:
                c.fail(f, f"generic source '{name}' is defined twice", "generic_sources", name)
                continue
            try:
                generic[name] = compile_mapping(name, mapping)
            except ValueError as exc:
                c.fail(f, f"generic source '{name}': {exc}", "generic_sources", name)
    root = _with_children(root, tuple(top))
    return RuleSet(
        root=root,
        severity_map=SeverityMap(sev.label, {k.lower(): v.value for k, v in sev.map.items()},
                                 sev.default.value),
        inhibit_rules=tuple(inhibit), time_intervals=c.intervals, templates=c.templates,
        generic_sources=generic, files=tuple(f.name for f in files), config_hash=config_hash,
        routes_by_id={"root": root, **c.routes_by_id},
    )


ParseCache = dict[tuple[str, str], "_Parsed"]


def load_rules(rules_dir: Path, cache: ParseCache | None = None) -> RuleSet:
    """Load and compile every rule file of ``rules_dir``. Raises RulesError listing all problems.

    A missing or empty directory is valid: the embedded default routes everything to console.
    With a ``cache`` (kept by the reloader), a file whose bytes did not change since the last
    load is not parsed and validated again: only compiling, which is cheaper, is redone.
    """
    problems: list[Problem] = []
    parsed = []
    digest = hashlib.sha256()
    seen: set[tuple[str, str]] = set()
    for path in rule_files(rules_dir):
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(path.name, None, f"cannot read: {exc.strerror}"))
            continue
        file_digest = hashlib.sha256(raw).hexdigest()
        digest.update(path.name.encode() + b"\0" + file_digest.encode())
        key = (path.name, file_digest)
        p = cache.get(key) if cache is not None else None
        if p is None:
            p = _parse_file(path.name, raw, problems)
            if p is not None and cache is not None:
                cache[key] = p
        if p is not None:
            seen.add(key)
            parsed.append(p)
    if cache is not None:
        for stale in set(cache) - seen:
            del cache[stale]
    rules = compile_files(parsed, problems, digest.hexdigest())
    if problems:
        raise RulesError(problems)
    return rules
