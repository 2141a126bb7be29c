"""The RE2 adapter (agent.routing.regex): same answers as Alertmanager's ``^(?:p)$``."""

from __future__ import annotations

import pytest
import re2

from agent.routing.regex import Regex, RegexError

PATTERNS = [
    # Plain alternatives: answered by a set lookup, which must agree with RE2.
    "critical|warning",
    "svc-42",
    "",
    "|bar",
    "a||b",
    "a|ab",
    "🙂|ü",
    "with space| tab\t",
    "a-b,c=d:e/f@g#h%i&j'k\"l!m~n`o;p<q>r",
    # Everything else: RE2 anchored at both ends.
    ".*",
    ".+",
    "critical|warning.*",
    "(?i)critical|warning",
    "crit(ical)?",
    "[a-z]+\\d",
    "a{2}|b",
    "(?m)x$\\n?",
    "(?s)x.y",
    "\\Qa.b\\E|c",
]
VALUES = [
    "", "critical", "warning", "Critical", "warning2", "svc-42", "svc-4", "bar", "a", "b", "ab",
    "abc", "aa", "🙂", "ü", "u", "with space", " tab\t", "x\n", "x\ny", "x.y", "a.b", "c", "crit",
    "abc1", "critical|warning", "a||b", "a-b,c=d:e/f@g#h%i&j'k\"l!m~n`o;p<q>r",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_answers_as_re2_with_alertmanagers_anchors(pattern: str) -> None:
    oracle = re2.compile(f"^(?:{pattern})$")
    regex = Regex(pattern)
    wrong = [v for v in VALUES if regex.fullmatch(v) != (oracle.search(v) is not None)]
    assert wrong == []


def test_the_literal_shortcut_is_taken_only_for_plain_alternatives() -> None:
    literal = [p for p in PATTERNS if Regex(p)._literals is not None]
    assert literal == PATTERNS[: PATTERNS.index(".*")]


def test_a_group_cannot_be_broken_open() -> None:
    # Alertmanager compiles "^(?:" + p + ")$", so "a)|(b" would mean "starts with a or ends
    # with b" there; here it is the syntax error it looks like.
    with pytest.raises(RegexError, match="unexpected \\)"):
        Regex("a)|(b")


def test_lone_surrogates_in_values_do_not_raise() -> None:
    # No decoder here produces them, but a str may hold one; it is a character like any other.
    assert Regex(".").fullmatch("\ud800") is True
    assert Regex("a.c").fullmatch("a\udfffc") is True
    assert Regex("a|b").fullmatch("\ud800") is False


def test_regex_error_is_a_value_error_with_re2s_reason() -> None:
    with pytest.raises(ValueError, match="^missing \\): \\(a$"):
        Regex("(a")

