"""Rules directory -> RuleSet: parse, validate, cross-check, compile. All problems, then one error.

Every problem names the file, the line and the reason, so a bad edit is found at once; the caller
keeps its running rules when loading fails (hot reload is all-or-nothing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent import directory as people
from agent.addresses import AddressError
from agent.observability import get_logger
from agent.rendering import TemplateError, extract_variables
from agent.routing import ruleyaml
from agent.routing.matchers import Matcher, MatcherError, parse_matcher
from agent.routing.rotations import compile_rotation
from agent.routing.router import build_index
from agent.routing.ruleset import (
    Escalation,
    InhibitRule,
    Route,
    RuleSet,
    SeverityMap,
    Template,
)
from agent.routing.schema import (
    MemberSpec,
    NotifySpec,
    RouteDefaults,
    RouteSpec,
    RuleFile,
    SeverityMapSpec,
)
from agent.routing.timeintervals import TimeInterval, TimeIntervalError, parse_time_interval

log = get_logger("rules")
# (channel, to) of a `notify:` target -> why it cannot be delivered here, or None. Handed in by
# the caller, which knows the enabled channels: routing stays pure and imports no channel.
TargetCheck = Callable[[str, str], str | None]
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


@dataclass
class _Parsed:
    name: str
    rules: RuleFile
    text: str
    _tree: yaml.Node | None = None

    def line(self, *loc: int | str) -> int | None:
        # Composed only when a problem needs a line: the happy path parses once.
        if self._tree is None:
            self._tree = ruleyaml.compose(self.text)
        return ruleyaml.line_of(self._tree, loc)


def _parse_file(name: str, raw: bytes, problems: list[Problem]) -> _Parsed | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, None, f"not UTF-8: {exc}"))
        return None
    try:
        data = ruleyaml.load(text)
    except ruleyaml.YamlProblem as exc:
        problems.append(Problem(name, exc.line, exc.message))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(name, 1, "the top level must be a mapping"))
        return None
    try:
        rules = RuleFile.model_validate(data)
    except ValidationError as exc:
        tree = ruleyaml.compose(text)
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            path_text = ".".join(str(p) for p in loc)
            problems.append(Problem(name, ruleyaml.line_of(tree, loc),
                                    f"{path_text}: {err['msg']}"))
        return None
    return _Parsed(name, rules, text)


class _Compiler:
    def __init__(self, files: list[_Parsed], problems: list[Problem],
                 check_target: TargetCheck | None = None,
                 allow_unlisted: frozenset[str] = frozenset()) -> None:
        self.files = files
        self.check_target = check_target
        self.directory = people.Directory(allow_unlisted=allow_unlisted)
        self.problems = problems
        self.templates: dict[str, Template] = {}
        self.intervals: dict[str, tuple[TimeInterval, ...]] = {}
        self.route_ids: set[str] = set()
        self.routes_by_id: dict[str, Route] = {}
        self.matcher_cache: dict[str, Matcher] = {}
        self.current: str | None = None  # the file being compiled, for an unexpected error

    def fail(self, f: _Parsed, message: str, *loc: int | str) -> None:
        self.problems.append(Problem(f.name, f.line(*loc), message))

    def targets(self, f: _Parsed, notify: list[NotifySpec], *loc: int | str) -> None:
        for i, n in enumerate(notify):
            # Without a channel, the people must exist (in-app reaches every member).
            problem = self.target_problem(n.channel.value if n.channel else "in-app", n.to)
            if problem is not None:
                self.fail(f, f"notify[{i}]: {problem}", *loc, "notify", i)

    def target_problem(self, channel: str, to: str) -> str | None:
        # A team or member is looked up in the directory; only a literal address is the
        # channel's to check. A team without approved members is no error here: its
        # notifications fail (recipient_not_approved) until one is approved again. Nor is an
        # on-call target whose member on call at the instant asked (any) is unreachable: the
        # check is that the team and its rotation exist.
        if people.is_reference(to):
            try:
                people.resolve(self.directory, channel, to, at=0.0)
            except people.Refused as exc:
                if exc.code != "recipient_not_approved" or people.MEMBER_ID.fullmatch(to):
                    return exc.message
            return None
        problem = self.check_target(channel, to) if self.check_target is not None else None
        if problem is None:
            try:
                people.resolve(self.directory, channel, to)
            except (people.Refused, AddressError) as exc:
                return exc.message
        return problem

    def member_addresses(self, f: _Parsed, i: int, m: MemberSpec,
                         owners: dict[tuple[str, str], str]) -> dict[str, str]:
        """Member ``m``'s addresses, canonical; a malformed one, or one that is another
        member's already, is a problem."""
        found: dict[str, str] = {}
        for channel, address in m.addresses.items():
            loc = ("members", i, "addresses", channel.value)
            try:
                address = people.canonical(channel.value, address)
            except AddressError as exc:
                self.fail(f, f"member '{m.id}': {channel.value}: {exc.message}", *loc)
                continue
            owner = owners.setdefault((channel.value, address), m.id)
            if owner != m.id:
                self.fail(f, f"member '{m.id}': the {channel.value} address is already member "
                          f"'{owner}''s", *loc)
            found[channel.value] = address
        return found

    def rotations(self, teams: dict[str, tuple[_Parsed, int, people.Team]],
                  members: Mapping[str, people.Member]) -> None:
        """Each team's ``oncall:`` rotation, checked against its members."""
        for tf, ti, team in teams.values():
            spec = tf.rules.teams[ti].oncall
            if spec is not None:
                rotation, found = compile_rotation(spec, team.members, members)
                for message, loc in found:
                    self.fail(tf, f"team '{team.id}': {message}", "teams", ti, "oncall", *loc)
                teams[team.id] = (tf, ti, replace(team, oncall=rotation))

    def preferences(self, f: _Parsed, i: int, m: MemberSpec,
                    found: dict[str, str]) -> dict[str, tuple[str, ...]]:
        """Member ``m``'s channels by severity; one it has no address on is a problem."""
        for severity, channels in m.preferences.items():
            for j, ch in enumerate(channels):
                if ch.value not in found and ch.value != "in-app":
                    self.fail(f, f"member '{m.id}': prefers {ch.value} for {severity.value} "
                              f"alerts but has no {ch.value} address",
                              "members", i, "preferences", severity.value, j)
        return {sev.value: tuple(c.value for c in chans) for sev, chans in m.preferences.items()}

    def compile_directory(self) -> None:
        """Teams and members of every file, each address checked as the API checks it."""
        teams: dict[str, tuple[_Parsed, int, people.Team]] = {}
        members: dict[str, people.Member] = {}
        owners: dict[tuple[str, str], str] = {}
        for f in self.files:
            self.current = f.name
            for i, m in enumerate(f.rules.members):
                if m.id in members:
                    self.fail(f, f"member '{m.id}' is defined twice", "members", i, "id")
                    continue
                if m.timezone is not None and not _valid_zone(m.timezone):
                    self.fail(f, f"member '{m.id}': unknown time zone '{m.timezone}'",
                              "members", i, "timezone")
                found = self.member_addresses(f, i, m, owners)
                members[m.id] = people.Member(m.id, m.name or m.id, m.approved, m.timezone,
                                              found, self.preferences(f, i, m, found))
            for i, t in enumerate(f.rules.teams):
                if t.id in teams:
                    self.fail(f, f"team '{t.id}' is defined twice", "teams", i, "id")
                    continue
                teams[t.id] = (f, i, people.Team(t.id, t.name or t.id, tuple(t.members)))
        self.rotations(teams, members)
        for tf, ti, team in teams.values():
            for j, mid in enumerate(team.members):
                if mid not in members:
                    self.fail(tf, f"team '{team.id}': unknown member '{mid}'", "teams", ti,
                              "members", j)
                elif team.members.index(mid) != j:
                    self.fail(tf, f"team '{team.id}': member '{mid}' is listed twice", "teams",
                              ti, "members", j)
        known = [t for _, _, t in teams.values()]
        self.directory = people.Directory.build(
            [replace(t, members=tuple(m for m in t.members if m in members)) for t in known],
            members.values(), self.directory.allow_unlisted)

    def single(self, attr: str) -> tuple[_Parsed | None, Any]:
        found = [(f, getattr(f.rules, attr)) for f in self.files
                 if getattr(f.rules, attr) is not None]
        for f, _ in found[1:]:
            self.fail(f, f"'{attr}' is already defined in {found[0][0].name}", attr)
        return found[0] if found else (None, None)

    def collect_named(self) -> None:
        for f in self.files:
            self.current = f.name
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
                except RecursionError:  # Jinja's parser recurses once per nesting level
                    self.fail(f, f"template '{t.name}': nested too deeply", "templates", i,
                              "body")
                    continue
                self.templates[t.name] = Template(t.name, t.body, t.channel, t.subject,
                                                  t.content_sid)
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

    def escalation(self, f: _Parsed, spec: RouteSpec, parent: Route,
                   loc: tuple[int | str, ...]) -> Escalation | None:
        e = spec.escalation
        if e is None:
            return parent.escalation
        steps = []
        for i, step in enumerate(e.steps):
            where = (*loc, "escalation", "steps", i)
            if i and step.after < e.steps[i - 1].after:
                self.fail(f, "escalation steps must be in the order they fire (after: "
                          "not less than the step before)", *where, "after")
            self.targets(f, step.notify, *where)
            steps.append((step.after, tuple(n.target() for n in step.notify)))
        if e.repeat and e.steps[-1].after <= 0:
            self.fail(f, "a repeated escalation needs a last step with after: > 0 (the "
                      "length of one run)", *loc, "escalation", "repeat")
        return Escalation(e.until, e.repeat, tuple(steps))

    def ack_by(self, f: _Parsed, spec: RouteSpec, parent: Route,
               loc: tuple[int | str, ...]) -> tuple[str, ...]:
        if spec.ack_by is None:
            return parent.ack_by
        for i, ref in enumerate(spec.ack_by):
            rota = people.ONCALL.fullmatch(ref)
            if rota is not None:
                team = self.directory.teams.get(rota.group(1))
                if team is None or team.oncall is None:
                    self.fail(f, f"ack_by: '{ref}' names no team with an on-call rotation",
                              *loc, "ack_by", i)
            elif ref not in self.directory.teams and ref not in self.directory.members:
                self.fail(f, f"ack_by: no team or member '{ref}' in the directory", *loc,
                          "ack_by", i)
        return tuple(spec.ack_by)

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
            notify = tuple(n.target() for n in spec.notify)
            self.targets(f, spec.notify, *loc)
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
            ack_by=self.ack_by(f, spec, parent, loc),
            escalation=self.escalation(f, spec, parent, loc),
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


def _valid_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _pick(value: Any, inherited: Any) -> Any:
    return inherited if value is None else value


def _with_children(route: Route, children: tuple[Route, ...]) -> Route:
    from dataclasses import replace

    return replace(route, children=children, index=build_index(children))


def _root(defaults: RouteDefaults) -> Route:
    return Route(
        id="root", name="root", matchers=(), sources=None, severity=None,
        priority=defaults.priority.value,
        notify=tuple(n.target() for n in defaults.notify),
        group_by=None if "..." in defaults.group_by else tuple(defaults.group_by),
        group_wait=defaults.group_wait, group_interval=defaults.group_interval,
        repeat_interval=defaults.repeat_interval, send_resolved=defaults.send_resolved,
        active_time_intervals=(), mute_time_intervals=(), continue_=False,
    )


def _internal_error(file: str | None, exc: Exception) -> Problem:
    # Kept apart from rule problems: this is a bug of the loader, the traceback is for us.
    log.error("rules_loader_error", file=file, exc_info=exc)
    return Problem(file or "(rules)", None,
                   f"internal error while loading: {type(exc).__name__}: {exc}")


def compile_files(files: list[_Parsed], problems: list[Problem], config_hash: str,
                  check_target: TargetCheck | None = None,
                  allow_unlisted: frozenset[str] | None = None) -> RuleSet:
    """Cross-check and compile parsed files. Raises RulesError for any exception."""
    c = _Compiler(files, problems, check_target, _allowed(allow_unlisted))
    try:
        return _compile(c, config_hash)
    except Exception as exc:  # a bug must be a reported failure, never a dead reload
        problems.append(_internal_error(c.current, exc))
        raise RulesError(problems) from exc


def _compile(c: _Compiler, config_hash: str) -> RuleSet:
    from agent.ingest.generic import GenericMapping, compile_mapping

    files = c.files
    c.compile_directory()
    defaults_file, defaults = c.single("defaults")
    if defaults_file is not None:
        c.targets(defaults_file, defaults.notify, "defaults")
    _, sev = c.single("severity_map")
    sev = sev or SeverityMapSpec()
    c.collect_named()
    root = _root(defaults or RouteDefaults())
    top = []
    for f in files:
        c.current = f.name
        for i, spec in enumerate(f.rules.routes):
            top.append(c.route(f, spec, root, ("routes", i)))
    inhibit = []
    generic: dict[str, GenericMapping] = {}
    for f in files:
        c.current = f.name
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
            except (RecursionError, SyntaxError):  # Jinja parsing, then Python compiling it
                c.fail(f, f"generic source '{name}': a template is nested too deeply",
                       "generic_sources", name)
    c.current = None
    root = _with_children(root, tuple(top))
    return RuleSet(
        root=root,
        severity_map=SeverityMap(sev.label, {k.lower(): v.value for k, v in sev.map.items()},
                                 sev.default.value),
        inhibit_rules=tuple(inhibit), time_intervals=c.intervals, templates=c.templates,
        generic_sources=generic, files=tuple(f.name for f in files), config_hash=config_hash,
        routes_by_id={"root": root, **c.routes_by_id}, directory=c.directory,
    )


ParseCache = dict[tuple[str, str], "_Parsed"]


def _allowed(allow_unlisted: frozenset[str] | None) -> frozenset[str]:
    if allow_unlisted is None:  # the setting's default
        return people.allow_unlisted_setting({})
    return allow_unlisted


def load_rules(rules_dir: Path, cache: ParseCache | None = None,
               check_target: TargetCheck | None = None,
               allow_unlisted: frozenset[str] | None = None) -> RuleSet:
    """Load and compile every rule file of ``rules_dir``. Raises RulesError listing all problems.

    A missing or empty directory is valid: the embedded default routes everything to console.
    With a ``cache`` (kept by the reloader), a file whose bytes did not change since the last
    load is not parsed and validated again: only compiling, which is cheaper, is redone.
    ``check_target`` names the `notify:` targets this agent cannot deliver (rule errors);
    ``allow_unlisted`` the channels whose literal targets need not be directory addresses
    (``recipients.allow_unlisted``; None: its default).
    """
    problems: list[Problem] = []
    parsed = []
    digest = hashlib.sha256()
    seen: set[tuple[str, str]] = set()
    try:
        paths = rule_files(rules_dir)
    except OSError as exc:  # e.g. removed or made unreadable between two calls
        raise RulesError([Problem(str(rules_dir), None, f"cannot list: {exc.strerror}")]
                         ) from exc
    for path in paths:
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
            try:
                p = _parse_file(path.name, raw, problems)
            except Exception as exc:  # a bug must be a reported failure, never a dead reload
                problems.append(_internal_error(path.name, exc))
                continue
            if p is not None and cache is not None:
                cache[key] = p
        if p is not None:
            seen.add(key)
            parsed.append(p)
    if cache is not None:
        for stale in set(cache) - seen:
            del cache[stale]
    rules = compile_files(parsed, problems, digest.hexdigest(), check_target, allow_unlisted)
    if problems:
        raise RulesError(problems)
    return rules
