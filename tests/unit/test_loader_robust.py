"""Rule files that used to crash ``load_rules`` with something other than a RulesError (issue 10,
item 5): every one is now a problem naming the file and, where there is one, the line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.routing.loader import Problem, RulesError, load_rules
from agent.routing.ruleyaml import MAX_DEPTH, load

NAME = "rules.yaml"


def write(tmp_path: Path, text: str) -> Path:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / NAME).write_text(textwrap.dedent(text), encoding="utf-8")
    return rules_dir


def only_problem(tmp_path: Path, text: str) -> Problem:
    with pytest.raises(RulesError) as info:
        load_rules(write(tmp_path, text))
    [problem] = info.value.problems
    assert problem.file == NAME
    return problem


DEEP_TEMPLATE = "{% if x %}" * 2000 + "y" + "{% endif %}" * 2000
DEEP_EXPRESSION = "{{ " + "(" * 2000 + "x" + ")" * 2000 + " }}"


# --- the three inputs of the issue -------------------------------------------------------


def test_an_impossible_date_is_kept_as_the_text_written(tmp_path: Path) -> None:
    # YAML 1.1 reads 2024-13-45 as a timestamp and datetime() raised ValueError out of the load.
    rules = load_rules(write(tmp_path, """\
        routes:
          - name: r
            notify: [{channel: console, to: 2024-13-45}]
          - name: 2024-01-01
        """))
    assert rules.routes_by_id["r"].notify[0].to == "2024-13-45"
    assert "2024-01-01" in rules.routes_by_id


def test_a_date_where_a_duration_belongs_is_a_problem_at_its_line(tmp_path: Path) -> None:
    p = only_problem(tmp_path, """\
        routes:
          - name: r
            group_wait: 2024-13-45
        """)
    assert p.line == 3 and "invalid duration '2024-13-45'" in p.message


@pytest.mark.parametrize(("text", "line"), [
    pytest.param("""\
        routes: &r
          - name: a
            routes: *r
        """, 3, id="sequence"),
    pytest.param("""\
        defaults: &d
          notify: [{channel: console, to: ops}]
          x: *d
        """, 3, id="mapping"),
    pytest.param("""\
        routes:
          - &r {name: a, routes: [*r]}
        """, 2, id="flow"),
    pytest.param("""\
        defaults: &d
          <<: *d
        """, 2, id="merge"),
])
def test_a_recursive_alias_is_a_problem_at_the_alias(tmp_path: Path, text: str, line: int
                                                     ) -> None:
    p = only_problem(tmp_path, text)
    assert p.line == line
    assert "recursive alias" in p.message


@pytest.mark.parametrize("body", [DEEP_TEMPLATE, DEEP_EXPRESSION], ids=["blocks", "parens"])
def test_a_template_nested_2000_deep_is_a_problem_naming_the_template(tmp_path: Path, body: str
                                                                      ) -> None:
    p = only_problem(tmp_path, f"templates:\n  - name: deep\n    body: {body!r}\n")
    assert p.line == 3
    assert p.message.startswith("template 'deep': ") and "nested too deeply" in p.message


def test_a_generic_source_template_nested_2000_deep_is_a_problem(tmp_path: Path) -> None:
    p = only_problem(tmp_path, f"generic_sources:\n  deep:\n    alertname: {DEEP_EXPRESSION!r}\n")
    assert p.line == 2 and "generic source 'deep'" in p.message


# --- the rest of what YAML can say ---------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 990, 2000, 5000])
@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_a_problem(tmp_path: Path, depth: int, style: str) -> None:
    if style == "flow":
        text = "routes: " + "[" * depth + "]" * depth + "\n"
    else:  # compact block sequences: "- - - x"
        text = "routes:\n  " + "- " * depth + "x\n"
    p = only_problem(tmp_path, text)
    assert p.line == (1 if style == "flow" else 2)
    assert f"nested more than {MAX_DEPTH} levels deep" in p.message


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert load("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None


@pytest.mark.parametrize(("value", "needle"), [
    ("!!binary aGVsbG8=", "unsupported YAML tag !!binary"),
    ("!!set {a: null}", "unsupported YAML tag !!set"),
    ("!!omap [{a: 1}]", "unsupported YAML tag !!omap"),
    ("!!pairs [{a: 1}]", "unsupported YAML tag !!pairs"),
    ("!custom x", "unsupported YAML tag !custom"),
    ("!!python/name:os.system x", "unsupported YAML tag !!python/name:os.system"),
    ("!!int abc", "'abc' is not a valid !!int"),
    ("!!float x", "'x' is not a valid !!float"),
    ("!!bool maybe", "'maybe' is not a valid !!bool"),
    ("!!int " + "9" * 5000, "is not a valid !!int"),  # above Python's int-from-text digit limit
])
def test_other_types_in_a_string_position_are_problems_at_their_line(
    tmp_path: Path, value: str, needle: str
) -> None:
    p = only_problem(tmp_path, f"routes:\n  - name: r\n  - name: {value}\n")
    assert p.line == 3 and needle in p.message


def test_an_explicit_timestamp_tag_is_still_text(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, "routes:\n  - name: !!timestamp 2024-01-01\n  - name: =\n"))
    assert {"2024-01-01", "="} <= set(rules.routes_by_id)


@pytest.mark.parametrize(("text", "line"), [
    ("routes:\n  - {[a]: 1}\n", 2),
    ("? {a: 1}\n: x\n", 1),
])
def test_a_collection_as_a_mapping_key_is_a_problem(tmp_path: Path, text: str, line: int
                                                    ) -> None:
    p = only_problem(tmp_path, text)
    assert p.line == line and "mapping key" in p.message


def test_an_alias_bomb_is_a_problem(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    p = only_problem(tmp_path, "\n".join(lines) + "\n")
    assert "too many values" in p.message


def test_shared_anchors_and_merges_still_load(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, """\
        defaults:
          notify: &ops [{channel: console, to: ops}]
        routes:
          - &base {name: a, matchers: ['team="a"'], group_wait: 5s, notify: *ops}
          - {<<: *base, name: b}
          - <<: [{name: ignored, group_wait: 7s}, *base]
            name: c
        """))
    assert rules.routes_by_id["b"].group_wait == 5.0
    assert rules.routes_by_id["c"].group_wait == 7.0
    assert rules.routes_by_id["c"].notify == rules.routes_by_id["a"].notify


@pytest.mark.parametrize("text", [
    "a: 1\nb: [true, False, ~, 1.5, '2', 0x1F, 017, 1_000, .inf, -.Inf]\nc: {d: null}\n",
    "base: &b {x: 1, y: two}\nuse: *b\nmerged: {<<: *b, y: 3}\n",
    "l: &l [{a: 1}, {b: 2}]\nm: {<<: [{a: 3, c: 4}, {d: 5}], a: 0}\n",
    "- !!str 5\n- !!int '7'\n- plain\n- 'quoted: yes'\n- !!null ''\n",
    "",
])
def test_plain_documents_load_as_safe_load_does(text: str) -> None:
    assert load(text) == yaml.safe_load(text)


def test_only_true_and_false_are_booleans_as_in_yaml_1_2(tmp_path: Path) -> None:
    # YAML 1.1 reads off/on/yes/no as booleans (the "Norway problem") and 1:30 as 90.
    assert load("a: [off, On, YES, no, 'no', true, FALSE, 1:30, -1:30.5, 130]\n") == {
        "a": ["off", "On", "YES", "no", "no", True, False, "1:30", "-1:30.5", 130]}
    rules = load_rules(write(tmp_path, """\
        routes:
          - name: off
            continue: yes
            notify: [{channel: console, to: no}]
          - name: on
            continue: off
        """))
    off, on = rules.routes_by_id["off"], rules.routes_by_id["on"]
    assert off.notify[0].to == "no"
    assert (off.continue_, on.continue_) == (True, False)  # a boolean setting still reads them


# --- whatever else goes wrong -------------------------------------------------------------


def test_any_other_exception_is_a_problem_naming_the_file(tmp_path: Path) -> None:
    from agent.routing.schema import RuleFile

    rules_dir = write(tmp_path, "routes: [{name: a}]\n")
    cache: dict[Any, Any] = {}
    load_rules(rules_dir, cache)
    # A parsed file that breaks the compiler: stands for any bug the loader may still have.
    [parsed] = cache.values()
    parsed.rules = RuleFile.model_construct(routes=[object()])
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir, cache)
    [p] = info.value.problems
    assert p.file == NAME and p.message.startswith("internal error while loading: ")
