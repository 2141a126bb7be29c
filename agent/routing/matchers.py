"""Alertmanager label matchers: parsing, canonical printing and matching.

Pure: no I/O; of the project it imports only its RE2 adapter. The accepted syntax is
Alertmanager's classic one (``pkg/labels/parse.go``), which is what its default
fallback mode ends up using, plus double-quoted UTF-8 label names from its newer
parser. Regular expressions are RE2's, as in Alertmanager, and matched by RE2 itself
(``agent.routing.regex``): linear in the label value, whatever the pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from agent.routing.regex import Regex, RegexError

__all__ = [
    "MatchType",
    "Matcher",
    "MatcherError",
    "parse_matcher",
    "parse_matchers",
]


class MatchType(StrEnum):
    """The four Alertmanager match operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class MatcherError(ValueError):
    """A matcher that cannot be parsed or compiled; ``column`` is 1-based when known."""

    def __init__(self, reason: str, column: int | None = None) -> None:
        super().__init__(reason if column is None else f"column {column}: {reason}")
        self.reason = reason
        self.column = column


# Go's \s, which the classic parser uses to trim around the three tokens.
_SPACE = " \t\n\r\f"
_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# '=~' and '!~' come before '=' so that the '~' is not left over for the value.
_OPERATOR_RE = re.compile(r"=~|!=|!~|=")
_UNESCAPES = {"n": "\n", '"': '"', "\\": "\\"}
_OPERATORS = "'=', '!=', '=~' or '!~'"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; regexes are compiled once, anchored at both ends."""

    name: str
    type: MatchType
    value: str
    _regex: Regex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise MatcherError("label name must not be empty")
        if self.type in (MatchType.REGEX, MatchType.NOT_REGEX):
            object.__setattr__(self, "_regex", _compile_regex(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the labels satisfy this matcher; a missing label counts as ``""``."""
        value = labels.get(self.name, "")
        if self.type is MatchType.EQUAL:
            return value == self.value
        if self.type is MatchType.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(value)
        return found if self.type is MatchType.REGEX else not found

    def equality(self) -> tuple[str, str] | None:
        """``(name, value)`` for an indexable ``name="value"`` matcher, else None.

        ``name=""`` is excluded: it also matches alerts without the label, so an
        index keyed by label values would miss them.
        """
        if self.type is MatchType.EQUAL and self.value:
            return self.name, self.value
        return None

    def __str__(self) -> str:
        name = self.name if _NAME_RE.fullmatch(self.name) else f'"{_escape(self.name)}"'
        return f'{name}{self.type.value}"{_escape(self.value)}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher such as ``severity="critical"``, ``env=prod`` or ``svc=~"db|pg"``."""
    stripped = text.strip(_SPACE)
    if stripped.startswith("{"):
        raise MatcherError(
            "unexpected '{': braces belong around a list of matchers, not a single one",
            text.index("{") + 1,
        )
    if stripped.endswith("}") and not stripped.endswith('"}'):
        raise MatcherError(
            "unexpected '}' at the end of an unquoted value; quote the value if it is meant",
            text.rindex("}") + 1,
        )
    return _parse_one(text, 0)


def parse_matchers(text: str) -> list[Matcher]:
    """Parse ``{a="b", c=~"d"}`` or ``a=b,c!=d``: braces optional, one trailing comma allowed."""
    start, end = 0, len(text)
    while start < end and text[start] in _SPACE:
        start += 1
    while end > start and text[end - 1] in _SPACE:
        end -= 1
    opened = start < end and text[start] == "{"
    closed = end > start + (1 if opened else 0) and text[end - 1] == "}"
    if opened and not closed:
        raise MatcherError("missing closing '}'", end + 1)
    if closed and not opened:
        raise MatcherError("unexpected '}' without an opening '{'", end)
    if opened:
        start, end = start + 1, end - 1
    segments = _split_commas(text, start, end)
    matchers = []
    for index, (seg_start, seg_end) in enumerate(segments):
        segment = text[seg_start:seg_end]
        if not segment.strip(_SPACE):
            if index == len(segments) - 1:
                break  # a trailing comma, or an empty list
            raise MatcherError("empty matcher before ','", seg_end + 1)
        matchers.append(_parse_one(segment, seg_start))
    return matchers


def _split_commas(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of ``text[start:end]`` between commas that are outside double quotes."""
    spans = []
    inside_quotes = escaped = False
    seg_start = start
    for i in range(start, end):
        char = text[i]
        if char == "," and not inside_quotes:
            spans.append((seg_start, i))
            seg_start = i + 1
        elif char == '"' and not escaped:
            inside_quotes = not inside_quotes
        escaped = char == "\\" and not escaped
    spans.append((seg_start, end))
    return spans


def _parse_one(text: str, offset: int) -> Matcher:
    """Parse one matcher; ``offset`` is where ``text`` starts in the caller's input."""
    i = _skip_space(text, 0)
    if i == len(text):
        raise MatcherError("expected a label name, got end of input", offset + i + 1)
    name, i = _parse_name(text, i, offset)
    i = _skip_space(text, i)
    op = _OPERATOR_RE.match(text, i)
    if op is None:
        if i == len(text):
            got = "end of input"
        elif text[i] in "!=~":
            got = repr(text[i : i + 2])
        else:
            got = f"{text[i]!r} (names other than [a-zA-Z_][a-zA-Z0-9_]* must be double-quoted)"
        raise MatcherError(
            f"expected {_OPERATORS} after label name {name!r}, got {got}", offset + i + 1
        )
    i = _skip_space(text, op.end())
    raw = text[i:].rstrip(_SPACE)
    value = _unquote_value(raw, offset + i)
    try:
        return Matcher(name, MatchType(op.group()), value)
    except MatcherError as exc:
        raise MatcherError(f"label {name!r}: {exc.reason}", offset + i + 1) from None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in _SPACE:
        i += 1
    return i


def _parse_name(text: str, i: int, offset: int) -> tuple[str, int]:
    """The label name starting at ``text[i]`` and the index just past it."""
    if text[i] == '"':
        close = _closing_quote(text, i + 1)
        if close is None:
            raise MatcherError("missing closing '\"' of the label name", offset + i + 1)
        name = _unescape(text[i + 1 : close])
        if not name:
            raise MatcherError("label name must not be empty", offset + i + 1)
        return name, close + 1
    found = _NAME_RE.match(text, i)
    if found is None:
        raise MatcherError(
            f"expected a label name, got {text[i]!r} (unquoted names are "
            "[a-zA-Z_][a-zA-Z0-9_]*; double-quote others)",
            offset + i + 1,
        )
    return found.group(), found.end()


def _closing_quote(text: str, i: int) -> int | None:
    """Index of the first unescaped '"' at or after ``i``."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return None


def _unquote_value(raw: str, offset: int) -> str:
    """Classic Alertmanager value rules: optional surrounding quotes, three escapes."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    base = offset + (1 if quoted else 0)
    close = _closing_quote(body, 0)
    if close is None:
        if quoted:
            raise MatcherError("missing closing '\"' of the value", offset + 1)
        return _unescape(body)
    if not quoted:
        raise MatcherError(
            "unescaped '\"' in an unquoted value (quote the whole value or write \\\")",
            base + close + 1,
        )
    if close != len(body) - 1:
        rest = body[close + 1 :]
        raise MatcherError(
            f"unexpected {rest.strip(_SPACE)!r} after the closing quote of the value",
            base + close + 2 + (len(rest) - len(rest.lstrip(_SPACE))),
        )
    return _unescape(body[:close])


def _unescape(body: str) -> str:
    # As in Alertmanager, only \" \\ and \n are escapes; any other backslash is
    # literal, so regexes like "\d+" need no doubling.
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_UNESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _escape(text: str) -> str:
    """OpenMetrics escaping, the inverse of ``_unescape``."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _compile_regex(value: str) -> Regex:
    try:
        return Regex(value)
    except RegexError as exc:
        raise MatcherError(f"invalid regular expression {value!r}: {exc}") from None
