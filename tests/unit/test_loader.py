"""Loading the rules directory (agent.routing.loader): every problem with its file, line and
reason; file merging; the default rule set; the config hash; the shipped ``rules/``."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from agent.domain import Alert, fingerprint_of
from agent.ingest.generic import GenericMapping, parse
from agent.routing.loader import Problem, RulesError, load_rules, rule_files
from agent.routing.router import route_alert
from agent.routing.ruleset import RuleSet, Target
from agent.routing.schema import parse_duration

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


# --- helpers ---------------------------------------------------------------------------


def write(rules_dir: Path, files: dict[str, str]) -> Path:
    rules_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (rules_dir / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return rules_dir


def problems_of(rules_dir: Path) -> list[Problem]:
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir)
    assert info.value.problems, "a RulesError must list its problems"
    return info.value.problems


def only_problem(tmp_path: Path, text: str, name: str = "rules.yaml") -> Problem:
    [problem] = problems_of(write(tmp_path / "rules", {name: text}))
    return problem


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line of the dedented ``text`` containing ``needle``."""
    hits = [i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line]
    return hits[nth - 1]


def alert(labels: dict[str, str], source: str = "alertmanager") -> Alert:
    return Alert(source=source, fingerprint=fingerprint_of(labels), status="firing",
                 labels=labels, annotations={})


def routes_for(rules: RuleSet, labels: dict[str, str], source: str = "alertmanager"
               ) -> list[str]:
    return [d.route.name for d in route_alert(rules, alert(labels, source))]


# --- YAML and schema problems ----------------------------------------------------------

YAML_ERRORS = [
    # an unclosed flow sequence: the parser notices at the next item
    ("""\
     routes:
       - name: x
         matchers: ['a="b"'
       - name: y
     """, 4, "expected ',' or ']'"),
    ("""\
     routes:
       - name: x
        bad: 1
     """, 3, "invalid YAML"),
    ("""\
     routes:
     \t- name: x
     """, 2, "'\\t'"),
    ("""\
     defaults:
       group_wait: 30s
     ---
     routes: []
     """, 3, "another document"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), YAML_ERRORS)
def test_yaml_syntax_error_has_its_line(tmp_path: Path, text: str, line: int, fragment: str
                                        ) -> None:
    p = only_problem(tmp_path, text)
    assert (p.file, p.line) == ("rules.yaml", line)
    assert p.message.startswith("invalid YAML")
    assert fragment in p.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    p = only_problem(tmp_path, text)
    assert (p.file, p.line, p.message) == ("rules.yaml", 1, "the top level must be a mapping")


UNKNOWN_KEYS = [
    ("""\
     # comment
     rotues: []
     """, "rotues:", "rotues"),
    ("""\
     routes:
       - name: x
         matcher: ['a="b"']
     """, "matcher:", "routes.0.matcher"),
    ("""\
     routes:
       - name: x
         routes:
           - name: y
             group-wait: 5s
     """, "group-wait:", "routes.0.routes.0.group-wait"),
    ("""\
     defaults:
       group_wait: 5s
       recevier: x
     """, "recevier:", "defaults.recevier"),
    ("""\
     routes:
       - name: x
         notify:
           - {channel: console, to: ops, tempalte: short}
     """, "tempalte", "routes.0.notify.0.tempalte"),
    ("""\
     severity_map:
       label: severity
       mapping: {p1: critical}
     """, "mapping:", "severity_map.mapping"),
    ("""\
     templates:
       - name: t
         body: x
         titel: y
     """, "titel:", "templates.0.titel"),
]


@pytest.mark.parametrize(("text", "needle", "path"), UNKNOWN_KEYS)
def test_unknown_key_is_reported_at_its_line(tmp_path: Path, text: str, needle: str, path: str
                                             ) -> None:
    p = only_problem(tmp_path, text)
    assert (p.file, p.line) == ("rules.yaml", line_of(text, needle))
    assert p.message == f"{path}: Extra inputs are not permitted"


BLOCK_VALUE_KEYS = [
    pytest.param("""\
     routes:
       - name: x
         bogus:
           - a
     """, "bogus:", id="unknown-key-with-block-list"),
    pytest.param("""\
     routes:
       - name: x
         extra_settings:
           a: 1
     """, "extra_settings:", id="unknown-key-with-block-mapping"),
]


@pytest.mark.parametrize(("text", "needle"), BLOCK_VALUE_KEYS)
def test_unknown_key_with_a_block_value_is_reported_at_the_key(
    tmp_path: Path, text: str, needle: str
) -> None:
    p = only_problem(tmp_path, text)
    assert p.line == line_of(text, needle)


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("""\
    routes:
      - name: lost
    routes:
      - name: kept
    """, 3, id="top-level"),
    pytest.param("""\
    routes:
      - name: x
        matchers: ['a="1"']
        matchers: ['b="2"']
    """, 4, id="in-a-route"),
])
def test_duplicate_keys_are_a_problem(tmp_path: Path, text: str, line: int) -> None:
    p = only_problem(tmp_path, text)
    assert p.line == line
    assert "duplicate" in p.message


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("group_wait", "5x", "invalid duration '5x'"),
        ("group_wait", "'1h 30m'", "invalid duration '1h 30m'"),
        ("group_interval", "m", "invalid duration 'm'"),
        ("group_interval", "'5'", "invalid duration '5'"),
        ("repeat_interval", "-5", "cannot be negative"),
        ("repeat_interval", "''", "a duration like"),
        ("group_wait", "true", "a duration like"),
        ("group_wait", "'30S'", "invalid duration '30S'"),
    ],
)
def test_bad_duration(tmp_path: Path, key: str, value: str, fragment: str) -> None:
    text = f"""\
    routes:
      - name: x
        send_resolved: true
        {key}: {value}
    """
    p = only_problem(tmp_path, text)
    assert p.line == line_of(text, f"{key}:")
    assert p.message.startswith(f"routes.0.{key}: ")
    assert fragment in p.message


def test_bad_duration_in_defaults(tmp_path: Path) -> None:
    text = """\
    defaults:
      group_wait: 30s
      repeat_interval: 4hours
    """
    p = only_problem(tmp_path, text)
    assert p.line == 3
    assert "defaults.repeat_interval" in p.message
    assert "invalid duration '4hours'" in p.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0), ("5m", 300.0), ("4h", 14400.0), ("1h30m", 5400.0), ("1d", 86400.0),
        ("1w", 604800.0), ("1y", 31536000.0), ("500ms", 0.5), ("1m30s500ms", 90.5),
        ("1.5h", 5400.0), ("0s", 0.0), (0, 0.0), (10, 10.0), (2.5, 2.5),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "s", "5x", "5m ", " 5m", "1h-5m", "-1s", -1, True,
                                   None, [], "1.h"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("notify", "fragment"),
    [
        ("{channel: pager, to: x}", "channel: Input should be"),
        ("{channel: console, to: ''}", "to: String should have at least 1 character"),
        ("{channel: console}", "to: Field required"),
        # Without a channel a target names people (their preferences choose): not an address.
        ("{to: ops}", "a target without a channel names a team, a member or oncall:"),
    ],
)
def test_invalid_notify_target(tmp_path: Path, notify: str, fragment: str) -> None:
    text = f"""\
    routes:
      - name: x
        notify:
          - {{channel: console, to: fine}}
          - {notify}
    """
    p = only_problem(tmp_path, text)
    assert p.line == 5
    assert p.message.startswith("routes.0.notify.1")
    assert fragment in p.message


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("severity: urgent", "routes.0.severity: Input should be 'info', 'warning' or"),
        ("priority: urgent", "routes.0.priority: Input should be 'low', 'normal' or 'high'"),
        ("continue: maybe", "routes.0.continue: Input should be a valid boolean"),
        ("matchers: 'a=b'", "routes.0.matchers: Input should be a valid list"),
        ("sources: alertmanager", "routes.0.sources: Input should be a valid list"),
    ],
)
def test_invalid_route_values(tmp_path: Path, entry: str, fragment: str) -> None:
    text = f"""\
    routes:
      - name: x
        {entry}
    """
    p = only_problem(tmp_path, text)
    assert p.line == 3
    assert p.message.startswith(fragment)


# --- compile problems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "fragment"),
    [
        ("a b", "expected '=', '!=', '=~' or '!~' after label name 'a'"),
        ('a="b', "missing closing '\"' of the value"),
        ("{a=b}", "unexpected '{'"),
        ("=b", "expected a label name"),
        ('1a="b"', "expected a label name"),
    ],
)
def test_bad_matcher(tmp_path: Path, matcher: str, fragment: str) -> None:
    text = f"""\
    routes:
      - name: x
        matchers:
          - 'ok="1"'
          - '{matcher}'
    """
    p = only_problem(tmp_path, text)
    assert (p.file, p.line) == ("rules.yaml", 5)
    assert p.message.startswith(f"bad matcher {matcher!r}: ")
    assert fragment in p.message


@pytest.mark.parametrize(
    ("regex", "fragment"),
    [
        ("(", "missing ): ("),
        ("a)", "unexpected ): a)"),
        ("[a", "missing ]: [a"),
        ("a**", "bad repetition operator: **"),
        # Perl and Python syntax that RE2 (Alertmanager's engine) rejects. In the YAML below
        # '\\\\' is the matcher escape for one backslash.
        ("(a)\\\\1", "invalid escape sequence: \\1 (RE2 has no backreferences)"),
        ("(?=x)x", "invalid perl operator: (?= (RE2 has no lookaround"),
        ("(?<!x)y", "invalid perl operator: (?<!"),
        ("x\\\\Z", "invalid escape sequence: \\Z"),
    ],
)
def test_bad_regex(tmp_path: Path, regex: str, fragment: str) -> None:
    text = f"""\
    routes:
      - name: x
        routes:
          - name: y
            matchers: ['a="1"', 'svc=~"{regex}"']
    """
    p = only_problem(tmp_path, text)
    assert (p.file, p.line) == ("rules.yaml", 5)
    assert p.message.startswith("bad matcher 'svc=~")
    assert "invalid regular expression" in p.message
    assert fragment in p.message


def test_bad_regexes_are_all_reported_with_file_and_line(tmp_path: Path) -> None:
    a_text = """\
    routes:
      - name: ok
        matchers: ['env=~"prod|staging"']
      - name: lookahead
        matchers:
          - 'env="prod"'
          - 'instance=~"(?!10\\.).*"'
    inhibit_rules:
      - source_matchers: ['severity="critical"']
        target_matchers: ['job=~"(a)\\\\1"']
        equal: [alertname]
    """
    b_text = """\
    routes:
      - name: b
        matchers: ['x=~"(?<name>a)(?P=name)"']
    """
    ps = problems_of(write(tmp_path / "rules", {"a.yaml": a_text, "b.yaml": b_text}))
    by_place = {(p.file, p.line): p.message for p in ps}
    assert sorted(by_place) == [("a.yaml", 7), ("a.yaml", 10), ("b.yaml", 3)]
    assert all("invalid regular expression" in m for m in by_place.values())
    assert "(RE2 has no backreferences)" in by_place["a.yaml", 10]


def test_re2_syntax_python_lacked_loads_and_routes(tmp_path: Path) -> None:
    text = """\
    routes:
      - name: greek
        matchers: ['host=~"\\p{Greek}+-[0-9]+"']
      - name: lazy
        matchers: ['host=~"(?U)db-.+"']
      - name: not-alpha
        matchers: ['host=~"[[:^alpha:]]+"']
    """
    rules = load_rules(write(tmp_path / "rules", {"rules.yaml": text}))
    assert routes_for(rules, {"host": "αβ-1"}) == ["greek"]
    assert routes_for(rules, {"host": "db-7"}) == ["lazy"]
    assert routes_for(rules, {"host": "10.0.0.1"}) == ["not-alpha"]
    assert routes_for(rules, {"host": "ab-1"}) == ["root"]


def test_bad_matchers_in_inhibit_rules(tmp_path: Path) -> None:
    text = """\
    inhibit_rules:
      - source_matchers: ['severity="critical"']
        target_matchers:
          - 'severity="warning"'
          - 'x=~"("'
        equal: [alertname]
    """
    p = only_problem(tmp_path, text)
    assert p.line == 5
    assert p.message.startswith("bad matcher 'x=~\"(\"'")


def test_unknown_template_reference(tmp_path: Path) -> None:
    text = """\
    templates:
      - {name: short, body: "{{ status }}"}
    routes:
      - name: x
        notify:
          - {channel: console, to: a, template: short}
          - {channel: console, to: b, template: shrot}
    """
    p = only_problem(tmp_path, text)
    assert (p.line, p.message) == (line_of(text, "shrot"), "unknown template 'shrot'")


def test_unknown_time_interval_references(tmp_path: Path) -> None:
    text = """\
    time_intervals:
      - name: weekends
        time_intervals: [{weekdays: ['saturday', 'sunday']}]
    routes:
      - name: x
        active_time_intervals: [weekends, nights]
        routes:
          - name: y
            mute_time_intervals:
              - weekends
              - holidays
    """
    ps = problems_of(write(tmp_path / "rules", {"rules.yaml": text}))
    assert {(p.line, p.message) for p in ps} == {
        (line_of(text, "nights"), "unknown time interval 'nights'"),
        (line_of(text, "holidays"), "unknown time interval 'holidays'"),
    }


def test_bad_time_interval(tmp_path: Path) -> None:
    text = """\
    time_intervals:
      - name: ok
        time_intervals: [{weekdays: ['monday']}]
      - name: bad
        time_intervals: [{weekdays: ['funday']}]
    """
    p = only_problem(tmp_path, text)
    assert p.line == 4
    assert p.message.startswith("time interval 'bad': ")
    assert "funday" in p.message


def test_template_syntax_error(tmp_path: Path) -> None:
    text = """\
    templates:
      - name: fine
        body: "{{ status }}"
      - name: broken
        subject: "{{ status }}"
        body: "{{ status "
    """
    p = only_problem(tmp_path, text)
    assert p.line == 6
    assert p.message.startswith("template 'broken': line 1: ")


def test_template_body_is_required(tmp_path: Path) -> None:
    text = """\
    templates:
      - name: empty
        body: ""
    """
    p = only_problem(tmp_path, text)
    assert p.line == 3
    assert p.message.startswith("templates.0.body: String should have at least 1 character")


@pytest.mark.parametrize(
    ("section", "other", "first", "second", "message"),
    [
        ("templates", "{name: other, body: x}", "{name: t, body: one}", "{name: t, body: two}",
         "template 't' is defined twice"),
        ("time_intervals", "{name: other, time_intervals: []}",
         "{name: ti, time_intervals: [{weekdays: [monday]}]}",
         "{name: ti, time_intervals: [{weekdays: [tuesday]}]}",
         "time interval 'ti' is defined twice"),
        ("routes", "{name: other}", "{name: r, matchers: ['a=\"1\"']}", "{name: r}",
         "route name 'r' is used twice"),
    ],
)
def test_duplicate_names_across_files(
    tmp_path: Path, section: str, other: str, first: str, second: str, message: str
) -> None:
    rules_dir = write(tmp_path / "rules", {
        "a.yaml": f"{section}:\n  - {first}\n",
        "b.yaml": f"# the second file\n{section}:\n  - {other}\n  - {second}\n",
    })
    [p] = problems_of(rules_dir)
    assert (p.file, p.line, p.message) == ("b.yaml", 4, message)


def test_duplicate_route_names_in_one_file_and_nested(tmp_path: Path) -> None:
    text = """\
    routes:
      - name: a
        routes:
          - name: b
      - name: c
        routes:
          - name: b
    """
    p = only_problem(tmp_path, text)
    assert (p.line, p.message) == (7, "route name 'b' is used twice")


@pytest.mark.parametrize("section", ["defaults", "severity_map"])
def test_single_sections_defined_in_two_files(tmp_path: Path, section: str) -> None:
    body = "{group_wait: 1m}" if section == "defaults" else "{label: level}"
    rules_dir = write(tmp_path / "rules", {
        "a.yaml": f"{section}: {body}\n",
        "b.yaml": "# notes\n\n" + f"{section}: {body}\n",
        "c.yaml": "routes: []\n" + f"{section}: {body}\n",
    })
    ps = problems_of(rules_dir)
    assert [(p.file, p.line, p.message) for p in ps] == [
        ("b.yaml", 3, f"'{section}' is already defined in a.yaml"),
        ("c.yaml", 2, f"'{section}' is already defined in a.yaml"),
    ]


@pytest.mark.parametrize("section", ["defaults", "severity_map"])
def test_single_section_in_block_style_is_reported_at_its_key(tmp_path: Path, section: str
                                                              ) -> None:
    body = "group_wait: 1m" if section == "defaults" else "label: level"
    rules_dir = write(tmp_path / "rules", {
        "a.yaml": f"{section}:\n  {body}\n",
        "b.yaml": f"# notes\n{section}:\n  {body}\n",
    })
    [p] = problems_of(rules_dir)
    assert (p.file, p.line) == ("b.yaml", 2)


@pytest.mark.parametrize(
    ("mapping", "fragment"),
    [
        ("{status: x}", "alertname: required"),
        ("{alertname: x, wat: 1}", "unknown key 'wat'"),
        ('{alertname: "{{ x"}', "alertname: template syntax error on line 1"),
        ('{alertname: x, labels: {alertname: y}}', "labels.alertname"),
        ("{alertname: x, severity: s, labels: {severity: y}}", "severity given twice"),
    ],
)
def test_generic_source_mapping_errors(tmp_path: Path, mapping: str, fragment: str) -> None:
    text = f"""\
    generic_sources:
      good: {{alertname: ok}}
      broken: {mapping}
    """
    p = only_problem(tmp_path, text)
    assert p.line == 3
    assert p.message.startswith("generic source 'broken': ")
    assert fragment in p.message


@pytest.mark.parametrize("name", ["bad name", "x" * 65, "dotted.name", ""])
def test_generic_source_name_must_be_simple(tmp_path: Path, name: str) -> None:
    text = f"""\
    generic_sources:
      '{name}': {{alertname: x}}
    """
    p = only_problem(tmp_path, text)
    assert p.line == 2
    assert p.message.startswith("generic source name")


def test_generic_source_defined_in_two_files(tmp_path: Path) -> None:
    rules_dir = write(tmp_path / "rules", {
        "a.yaml": "generic_sources: {shell: {alertname: a}}\n",
        "b.yaml": "routes: []\ngeneric_sources: {shell: {alertname: b}}\n",
    })
    [p] = problems_of(rules_dir)
    assert (p.file, p.line, p.message) == ("b.yaml", 2, "generic source 'shell' is defined twice")


def test_generic_sources_compile(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path / "rules", {"rules.yaml": """\
    generic_sources:
      shell: {alertname: "{{ name }}", labels: {host: "{{ host }}"}}
    """}))
    mapping = rules.generic_sources["shell"]
    assert isinstance(mapping, GenericMapping)
    [a] = parse(mapping, {"name": "Backup", "host": "db1"}).alerts
    assert (a.source, a.labels) == ("generic:shell", {"alertname": "Backup", "host": "db1"})


def test_every_problem_of_a_load_is_reported(tmp_path: Path) -> None:
    a_text = """\
    templates:
      - {name: t, body: "{{ x }}"}
    routes:
      - name: one
        matchers: ['a=~"("']
        notify: [{channel: console, to: x, template: nope}]
      - name: two
        active_time_intervals: [never]
    """
    b_text = """\
    routes:
      - name: one
      - name: three
        group_wait: soon
    """
    c_text = "routes: [\n"
    rules_dir = write(tmp_path / "rules", {"a.yaml": a_text, "b.yaml": b_text,
                                           "c.yaml": c_text})
    ps = problems_of(rules_dir)
    got = {(p.file, p.line) for p in ps}
    assert got == {
        ("a.yaml", 5),  # bad regex
        ("a.yaml", 6),  # unknown template
        ("a.yaml", 8),  # unknown time interval
        ("b.yaml", 4),  # bad duration (b.yaml is dropped, so 'one' is not a duplicate)
        ("c.yaml", 2),  # YAML syntax
    }
    assert len(ps) == 5
    # the exception's text names them all
    text = str(RulesError(ps))
    for p in ps:
        assert str(p) in text
    assert str(Problem("a.yaml", 5, "m")) == "a.yaml:5: m"
    assert str(Problem("a.yaml", None, "m")) == "a.yaml: m"


def test_two_schema_errors_in_one_file_are_both_reported(tmp_path: Path) -> None:
    text = """\
    routes:
      - name: x
        group_wait: 5x
        notify: [{channel: pager, to: y}]
      - name: y
        colour: red
    """
    ps = problems_of(write(tmp_path / "rules", {"rules.yaml": text}))
    assert sorted(p.line or 0 for p in ps) == [3, 4, 6]


# --- merging and the directory ---------------------------------------------------------


def test_files_merge_in_file_name_order(tmp_path: Path) -> None:
    rules_dir = write(tmp_path / "rules", {
        "b.yaml": "routes: [{name: from-b}]\n",
        "a.yaml": "routes: [{name: from-a, continue: true}]\n",
        "10-later.yaml": "routes: [{name: from-10, continue: true}]\n",
        "c.yml": "routes: [{name: from-c}]\n",
    })
    rules = load_rules(rules_dir)
    assert rules.files == ("10-later.yaml", "a.yaml", "b.yaml", "c.yml")
    assert [r.name for r in rules.root.children] == ["from-10", "from-a", "from-b", "from-c"]
    assert routes_for(rules, {}) == ["from-10", "from-a", "from-b"]


def test_later_files_use_names_from_earlier_and_later_files(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path / "rules", {
        "a.yaml": """\
        routes:
          - {name: a, notify: [{channel: console, to: x, template: from-b}],
             mute_time_intervals: [from-b]}
        """,
        "b.yaml": """\
        templates: [{name: from-b, body: "{{ status }}"}]
        time_intervals: [{name: from-b, time_intervals: [{weekdays: [monday]}]}]
        """,
    }))
    assert rules.routes_by_id["a"].notify == (Target("console", "x", "from-b"),)
    assert rules.routes_by_id["a"].mute_time_intervals == ("from-b",)


def test_defaults_from_any_file_apply_to_routes_of_every_file(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path / "rules", {
        "a.yaml": "routes: [{name: a, matchers: ['x=\"1\"']}]\n",
        "z.yaml": "defaults: {notify: [{channel: in-app, to: team}], group_wait: 7s}\n",
    }))
    [d] = route_alert(rules, alert({"x": "1"}))
    assert (d.route.name, d.route.notify, d.route.group_wait) == (
        "a", (Target("in-app", "team"),), 7.0)
    [d] = route_alert(rules, alert({"x": "2"}))
    assert (d.route.id, d.route.notify) == ("root", (Target("in-app", "team"),))


def test_unnamed_routes_get_names_from_position_and_ids_from_content(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path / "rules", {
        "a.yaml": "routes: [{matchers: ['x=\"1\"'], routes: [{}, {name: named}]}]\n",
        "b.yaml": "routes: [{}]\n",
    }))
    names = {r.name for r in rules.routes_by_id.values()}
    assert names == {"root", "a.yaml:routes[0]", "a.yaml:routes[0].routes[0]", "named",
                     "b.yaml:routes[0]"}
    assert len(rules.routes_by_id) == 5
    # A route inserted above another does not change the other's id (its groups stay its own).
    before = {r.name: r.id for r in rules.routes_by_id.values()}
    moved = load_rules(write(tmp_path / "rules2", {
        "a.yaml": "routes: [{matchers: ['y=\"2\"']}, {matchers: ['x=\"1\"'], "
                  "routes: [{}, {name: named}]}]\n",
        "b.yaml": "routes: [{}]\n",
    }))
    after = {r.name: r.id for r in moved.routes_by_id.values()}
    assert after["a.yaml:routes[1]"] == before["a.yaml:routes[0]"]
    assert after["a.yaml:routes[1].routes[0]"] == before["a.yaml:routes[0].routes[0]"]


def test_non_yaml_files_are_ignored(tmp_path: Path) -> None:
    rules_dir = write(tmp_path / "rules", {
        "a.yaml": "routes: [{name: a}]\n",
        "README.md": "# not: [valid yaml\n",
        "a.yaml.bak": "routes: [oops\n",
        "notes.txt": "::\n",
        "b.yaml~": "routes: [oops\n",
        ".a.yaml.swp": "\0\0",
    })
    (rules_dir / "dir.yaml").mkdir()
    (rules_dir / "sub").mkdir()
    (rules_dir / "sub" / "nested.yaml").write_text("routes: [oops\n")
    rules = load_rules(rules_dir)
    assert rules.files == ("a.yaml",)
    assert [p.name for p in rule_files(rules_dir)] == ["a.yaml"]


@pytest.mark.parametrize("make", ["missing", "empty", "empty-file", "comment-only"])
def test_missing_or_empty_rules_route_to_console_ops(tmp_path: Path, make: str) -> None:
    rules_dir = tmp_path / "rules"
    if make != "missing":
        rules_dir.mkdir()
    if make == "empty-file":
        (rules_dir / "a.yaml").write_text("")
    if make == "comment-only":
        (rules_dir / "a.yaml").write_text("# nothing yet\n")
    rules = load_rules(rules_dir)
    assert rules.root.children == ()
    assert rules.templates == {} and rules.time_intervals == {}
    assert rules.generic_sources == {} and rules.inhibit_rules == ()
    [d] = route_alert(rules, alert({"alertname": "A", "severity": "critical"}))
    assert d.route.id == "root"
    assert d.route.notify == (Target("console", "ops"),)
    assert d.severity == "critical"
    assert d.group_labels == {}


def test_config_hash(tmp_path: Path) -> None:
    rules_dir = write(tmp_path / "rules", {"a.yaml": "routes: [{name: a}]\n"})
    first = load_rules(rules_dir).config_hash
    assert load_rules(rules_dir).config_hash == first  # nothing changed
    (rules_dir / "notes.txt").write_text("ignored")
    assert load_rules(rules_dir).config_hash == first  # a non-rule file does not count
    (rules_dir / "a.yaml").write_text("routes: [{name: b}]\n")
    changed = load_rules(rules_dir).config_hash
    assert changed != first
    (rules_dir / "a.yaml").write_text("routes: [{name: a}]\n")
    assert load_rules(rules_dir).config_hash == first  # content, not modification time
    (rules_dir / "a.yaml").write_text("routes: [{name: a}]  # a comment\n")
    assert load_rules(rules_dir).config_hash not in (first, changed)
    (rules_dir / "a.yaml").write_text("routes: [{name: a}]\n")
    (rules_dir / "a.yaml").rename(rules_dir / "b.yaml")
    assert load_rules(rules_dir).config_hash != first  # the file name counts
    (rules_dir / "c.yaml").write_text("")
    with_empty = load_rules(rules_dir).config_hash
    (rules_dir / "c.yaml").unlink()
    assert load_rules(rules_dir).config_hash != with_empty  # so does an added file


def test_config_hash_of_equal_directories_is_equal(tmp_path: Path) -> None:
    files = {"a.yaml": "routes: [{name: a}]\n", "b.yaml": "defaults: {group_wait: 1s}\n"}
    one = load_rules(write(tmp_path / "one", files)).config_hash
    two = load_rules(write(tmp_path / "two", files)).config_hash
    assert one == two
    empty = load_rules(tmp_path / "missing").config_hash
    assert empty == load_rules(write(tmp_path / "empty", {})).config_hash
    assert empty != one


# --- the shipped rules -----------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules(SHIPPED)


def test_shipped_rules_load(shipped: RuleSet) -> None:
    assert shipped.files == ("00-common.yaml", "05-people.yaml", "10-alertmanager.yaml",
                             "20-grafana.yaml", "30-generic.yaml")
    assert set(shipped.templates) == {"short", "detailed"}
    assert set(shipped.time_intervals) == {"business-hours"}
    assert set(shipped.generic_sources) == {"uptime-kuma", "shell"}
    [inhibit] = shipped.inhibit_rules
    assert [str(m) for m in inhibit.source] == ['severity="critical"']
    assert [str(m) for m in inhibit.target] == ['severity="warning"']
    assert inhibit.equal == ("alertname", "cluster")
    assert shipped.root.notify == (Target("console", "ops"),)
    assert shipped.root.group_by == ("alertname",)
    assert [r.name for r in shipped.root.children] == ["critical", "warnings", "grafana",
                                                       "uptime"]


def test_shipped_critical_db_alert_reaches_the_dbas_and_the_on_call(shipped: RuleSet) -> None:
    # "the DBAs hear about it, and so does the on-call route below"
    decisions = route_alert(shipped, alert(
        {"alertname": "PgDown", "severity": "critical", "service": "postgres", "cluster": "eu"}))
    assert [d.route.name for d in decisions] == ["critical-db", "critical-default"]
    db, default = decisions
    assert db.route.notify == (Target("in-app", "dba", "detailed"),)
    assert default.route.notify == (Target("in-app", "oncall", "detailed"),
                                    Target("console", "oncall", "short"))
    for d in decisions:
        assert (d.severity, d.route.priority, d.route.group_wait) == ("critical", "high", 10.0)
        assert d.group_labels == {"alertname": "PgDown", "cluster": "eu"}
    assert db.group_key != default.group_key


@pytest.mark.parametrize(
    ("source", "labels", "routes", "severity"),
    [
        ("alertmanager", {"alertname": "A", "severity": "page", "service": "web"},
         ["critical-default"], "critical"),
        ("alertmanager", {"alertname": "A", "severity": "Critical", "service": "db"},
         ["root"], "critical"),  # the matcher is case-sensitive, the severity map is not
        ("grafana", {"alertname": "A", "severity": "critical"}, ["critical-default"],
         "critical"),
        ("grafana", {"alertname": "A", "severity": "critical", "service": "mysql"},
         ["critical-db", "critical-default"], "critical"),
        ("generic:shell", {"alertname": "A", "severity": "critical", "service": "db"},
         ["root"], "critical"),
        ("alertmanager", {"alertname": "A", "severity": "warning"}, ["warnings"], "warning"),
        ("grafana", {"alertname": "A", "severity": "warning"}, ["grafana"], "warning"),
        ("grafana", {"alertname": "A"}, ["grafana"], "warning"),
        ("alertmanager", {"alertname": "A", "severity": "info"}, ["root"], "info"),
        ("generic:uptime-kuma", {"alertname": "A", "severity": "critical"}, ["uptime"],
         "critical"),
        ("generic:shell", {"alertname": "A", "severity": "critical"}, ["root"], "critical"),
        ("api", {"alertname": "A"}, ["root"], "warning"),
    ],
)
def test_shipped_rules_route(
    shipped: RuleSet, source: str, labels: dict[str, str], routes: list[str], severity: str
) -> None:
    decisions = route_alert(shipped, alert(labels, source))
    assert [(d.route.name, d.severity) for d in decisions] == [(r, severity) for r in routes]


def test_shipped_warning_route_settings(shipped: RuleSet) -> None:
    [d] = route_alert(shipped, alert({"alertname": "A", "severity": "warning", "cluster": "c"}))
    assert d.route.repeat_interval == 12 * 3600
    assert d.route.group_by == ("alertname", "cluster")
    assert d.route.notify == (Target("in-app", "ops", "detailed"),)


def test_shipped_uptime_kuma_example(shipped: RuleSet) -> None:
    mapping = shipped.generic_sources["uptime-kuma"]
    assert isinstance(mapping, GenericMapping)
    body = {"heartbeat": {"status": 0, "msg": "timeout"},
            "monitor": {"id": 7, "name": "Website", "url": "https://example.test"},
            "msg": "[Website] [DOWN] timeout"}
    [down] = parse(mapping, body).alerts
    assert (down.source, down.status) == ("generic:uptime-kuma", "firing")
    assert down.labels == {"alertname": "Website", "instance": "https://example.test",
                           "type": "down", "severity": "critical"}
    assert down.annotations == {"summary": "[Website] [DOWN] timeout"}
    [up] = parse(mapping, {**body, "heartbeat": {"status": 1}}).alerts
    assert up.status == "resolved"
    assert up.fingerprint == down.fingerprint  # the same monitor
    [d] = route_alert(shipped, down)
    assert (d.route.name, d.route.group_wait, d.severity) == ("uptime", 0.0, "critical")
    assert d.route.notify == (Target("in-app", "oncall", "short"),)


def test_shipped_shell_example(shipped: RuleSet) -> None:
    mapping = shipped.generic_sources["shell"]
    assert isinstance(mapping, GenericMapping)
    body = {"alertname": "BackupFailed", "status": "firing", "host": "db1", "text": "exit 2"}
    [a] = parse(mapping, body).alerts
    assert (a.source, a.status) == ("generic:shell", "firing")
    assert a.labels == {"alertname": "BackupFailed", "host": "db1", "severity": "warning"}
    assert a.annotations == {"summary": "exit 2"}
    [d] = route_alert(shipped, a)
    assert d.route.id == "root"
    assert d.route.notify == (Target("console", "ops"),)
    assert (d.severity, d.group_labels) == ("warning", {"alertname": "BackupFailed"})


@pytest.mark.parametrize("text", [
    "a: 1\nb: [true, False, ~, 1.5, '2', 0x1F, 017, 1_000]\nc: {d: null, e: 2026-01-01}\n",
    "base: &b {x: 1, y: two}\nuse: *b\nmerged: {<<: *b, y: 3}\n",
    "- !!str 5\n- !!int '7'\n- plain\n- 'quoted: yes'\n",
    "",
    "times: [{start_time: 09:00, end_time: '17:00'}]\n",
])
def test_fast_yaml_loading_equals_safe_load(text: str) -> None:
    import yaml

    from agent.routing.ruleyaml import load

    # Except that a timestamp stays the text written (a rule file never wants a datetime).
    assert load(text) == yaml.safe_load(text.replace("2026-01-01", "'2026-01-01'"))


def test_parse_cache_reuses_unchanged_files_only(tmp_path: Path) -> None:
    rules_dir = write(tmp_path / "rules", {"a.yaml": "routes: [{name: a}]\n",
                                           "b.yaml": "routes: [{name: b}]\n"})
    cache: dict[Any, Any] = {}
    first = load_rules(rules_dir, cache)
    kept = dict(cache)
    assert len(kept) == 2
    (rules_dir / "b.yaml").write_text("routes: [{name: b2}]\n")
    second = load_rules(rules_dir, cache)
    assert {r.name for r in second.root.children} == {"a", "b2"}
    assert len(cache) == 2
    a_key = next(k for k in kept if k[0] == "a.yaml")
    assert cache[a_key] is kept[a_key]  # a.yaml was not parsed again
    assert first.config_hash != second.config_hash


def test_notify_delivery_options_reach_the_group_snapshot(tmp_path: Path) -> None:
    rules = write(tmp_path, {"r.yaml": """
        routes:
          - name: db
            matchers: ['service="db"']
            notify:
              - {channel: slack, to: "#db", update: thread, retract: true, overflow: truncate}
              - {channel: console, to: ops}
        """})
    rs = load_rules(rules)
    [db] = [r for r in rs.root.children if r.name == "db"]
    assert db.notify == (Target("slack", "#db", None, "thread", True, "truncate"),
                         Target("console", "ops"))
    # Only the options set are stored: older snapshots and these read alike.
    assert rs.snapshot(db)["notify"] == [
        {"channel": "slack", "to": "#db", "template": None, "update": "thread",
         "retract": True, "overflow": "truncate"},
        {"channel": "console", "to": "ops", "template": None}]


@pytest.mark.parametrize("option", ["update: edits", "overflow: drop", "retract: maybe"])
def test_a_bad_delivery_option_is_a_rule_error_with_its_line(tmp_path: Path,
                                                             option: str) -> None:
    text = f"""
        routes:
          - name: db
            notify:
              - {{channel: console, to: ops, {option}}}
        """
    problem = only_problem(tmp_path, text)
    assert problem.line == line_of(textwrap.dedent(text), option)
