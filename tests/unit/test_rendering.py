"""Template variables and sandboxed rendering (agent.rendering)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.rendering import TemplateError, extract_variables, render

# --- extract_variables -------------------------------------------------------------------------


def test_extract_variables_in_order_of_first_appearance() -> None:
    assert extract_variables("{{ b }} then {{ a }} then {{ c }}") == ["b", "a", "c"]


def test_extract_variables_reports_duplicates_once() -> None:
    assert extract_variables("{{ host }} {{ disk }} {{ host }} {{ disk }}") == ["host", "disk"]


def test_extract_variables_seed_style_without_spaces() -> None:
    assert extract_variables("Server {{server}} is {{state}}") == ["server", "state"]


def test_extract_variables_attribute_access_reports_top_level_name() -> None:
    body = "{{ labels.alertname }} on {{ labels.instance }} ({{ annotations['summary'] }})"
    assert extract_variables(body) == ["labels", "annotations"]


def test_extract_variables_ignores_loop_variables() -> None:
    body = "{% for h in hosts %}{{ h }} of {{ total }}{% endfor %}"
    assert extract_variables(body) == ["hosts", "total"]


def test_extract_variables_ignores_set_variables() -> None:
    body = "{% set who = team %}{{ who }} paged about {{ service }}"
    assert extract_variables(body) == ["team", "service"]


def test_extract_variables_of_plain_text_is_empty() -> None:
    assert extract_variables("no variables here") == []


def test_extract_variables_order_ignores_literal_text() -> None:
    # "host" appears as plain text before {{ disk }}, but as a variable only after it.
    assert extract_variables("Disk on host is full: {{ disk }} on {{ host }}") == ["disk", "host"]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("{{ unclosed", 1),
        ("fine\n{{ x }\nmore", 2),
        ("a\nb\n{% for x in y %}{{ x }}", 3),
    ],
)
def test_extract_variables_syntax_error_names_the_line(body: str, line: int) -> None:
    with pytest.raises(TemplateError, match=rf"^line {line}: "):
        extract_variables(body)


# --- render ------------------------------------------------------------------------------------


def test_render_seed_style_variable() -> None:
    assert render("Server {{server}} is down", {"server": "db-1"}) == "Server db-1 is down"


def test_render_nested_attributes_and_items() -> None:
    variables = {"labels": {"alertname": "DiskFull", "instance": "web-3"}}
    out = render("{{ labels.alertname }} on {{ labels['instance'] }}", variables)
    assert out == "DiskFull on web-3"


def test_render_loop_and_set() -> None:
    body = "{% set sep = ', ' %}{% for h in hosts %}{{ h }}{% if not loop.last %}{{ sep }}" \
           "{% endif %}{% endfor %}"
    assert render(body, {"hosts": ["a", "b", "c"]}) == "a, b, c"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, "5"), (2.5, "2.5"), (True, "True"), (None, "None"), ([1, 2], "[1, 2]")],
)
def test_render_non_string_values(value: Any, expected: str) -> None:
    assert render("v={{ v }}", {"v": value}) == f"v={expected}"


def test_render_does_not_html_escape() -> None:
    assert render("{{ x }}", {"x": "<b>&'\"</b>"}) == "<b>&'\"</b>"


def test_render_unicode_and_emoji() -> None:
    out = render("🔥 {{ host }} — {{ status }}", {"host": "wéb-1", "status": "✅ résolu"})
    assert out == "🔥 wéb-1 — ✅ résolu"


def test_render_keeps_trailing_newline() -> None:
    assert render("{{ a }}\n", {"a": "x"}) == "x\n"


def test_render_undefined_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render("Server {{ server }} on {{ host }}", {"server": "db-1"})


def test_render_undefined_nested_attribute_is_an_error() -> None:
    with pytest.raises(TemplateError):
        render("{{ labels.missing }}", {"labels": {"alertname": "x"}})


def test_render_syntax_error_is_template_error_with_line() -> None:
    with pytest.raises(TemplateError, match=r"^line 2: "):
        render("ok\n{% if x %}", {"x": 1})


def test_render_runtime_error_is_template_error() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ 1 / n }}", {"n": 0})


def _hook() -> str:
    return "called"


@pytest.mark.parametrize(
    ("body", "variables"),
    [
        ("{{ ''.__class__.__mro__ }}", {}),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}),
        ("{{ f.__globals__ }}", {"f": _hook}),
        ("{{ f.__code__ }}", {"f": _hook}),
        ("{{ cycler.__init__.__globals__.os }}", {}),
        ("{{ x.__class__.__base__.__subclasses__() }}", {"x": 1}),
    ],
)
def test_render_sandbox_blocks_escapes(body: str, variables: dict[str, Any]) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render(body, variables)


def test_render_sandbox_still_allows_calling_safe_values() -> None:
    assert render("{{ f() }}", {"f": _hook}) == "called"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{{ 'x' * 100000000 }}", "too large"),
        ("{{ 10 ** 100000000 }}", "exponent"),
        ("{% for i in range(100000) %}{% endfor %}", "range"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
         "{% endfor %}{% endfor %}{% endfor %}", "longer than"),
        ("{% for i in range(1000) %}{{ 'y' * 1000 }}{% endfor %}", "larger than"),
    ],
)
def test_runaway_templates_fail_fast(body: str, needle: str) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(TemplateError, match=needle):
        render(body, {})
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "body",
    ["{{ " + "(" * 1300 + "1" + ")" * 1300 + " }}",
     "{{ " + "[" * 1300 + "1" + "]" * 1300 + " }}",
     "{% if x %}" * 1000 + "{% endif %}" * 1000],
)
def test_nesting_too_deep_for_the_parser_is_a_template_error(body: str) -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        extract_variables(body)
    with pytest.raises(TemplateError):
        render(body, {"x": 1})


def test_an_unknown_filter_is_a_template_error_not_an_exception() -> None:
    # Found by the rules loader fuzz: TemplateAssertionError escaped (a 500 on POST /v1/templates).
    with pytest.raises(TemplateError, match="No filter named 'nofilter'"):
        extract_variables("{{ x | nofilter }}")
