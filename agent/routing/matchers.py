"""Alertmanager label matchers: parsing, canonical printing and matching.

Pure: no I/O and no imports from the rest of the project. The accepted syntax is
Alertmanager's classic one (``pkg/labels/parse.go``), which is what its default
fallback mode ends up using, plus double-quoted UTF-8 label names from its newer
parser. Regular expressions are written for Go's RE2 and translated to Python ``re``
where the two differ; what cannot be translated faithfully is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

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
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

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
        found = self._regex.fullmatch(value) is not None
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


# --- RE2 -> Python ``re`` ---------------------------------------------------------------


class _Unsupported(Exception):
    """RE2 syntax that has no faithful Python translation, or is malformed."""


# RE2's Perl classes are ASCII-only, Python's are Unicode; spell them out.
_PERL_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_FLAG_GROUP_RE = re.compile(r"\(\?([A-Za-z]*)(?:-([A-Za-z]*))?([:)])")
_HEX_BRACES_RE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_OCTAL_RE = re.compile(r"\\(0[0-7]{0,2}|[1-7][0-7]{1,2})")


@dataclass
class _Group:
    flags: frozenset[str]
    # Go's "(?i)" lasts to the end of the enclosing group; Python only has the scoped
    # "(?i:...)", so each is opened here and closed (and reopened after '|') by hand.
    opened: list[str] = field(default_factory=list)


class _Re2Translator:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0
        self.out: list[str] = []
        self.groups = [_Group(frozenset())]

    def translate(self) -> str:
        src = self.src
        while self.i < len(src):
            char = src[self.i]
            if char == "\\":
                piece, self.i = _translate_escape(src, self.i, in_class=False)
                self.out.append(piece)
            elif char == "[":
                self._char_class()
            elif char == "(":
                self._open_group()
            elif char == ")":
                self._close_group()
            else:
                self.out.append(self._plain(char))
                self.i += 1
        if len(self.groups) > 1:
            raise _Unsupported("missing closing ')'")
        self.out.append(")" * len(self.groups[0].opened))
        return "".join(self.out)

    def _plain(self, char: str) -> str:
        group = self.groups[-1]
        if char == "|":
            reopen = "".join(f"(?{spec}:" for spec in group.opened)
            return ")" * len(group.opened) + "|" + reopen
        if char == "$" and "m" not in group.flags:
            return "\\Z"  # RE2's '$' is end of text; Python's also matches before a final \n
        if char == "{" and self.src.startswith(",", self.i + 1):
            return "\\{"  # RE2 reads "{,n}" literally, Python as {0,n}
        return char

    def _open_group(self) -> None:
        src, i = self.src, self.i
        group = self.groups[-1]
        flags = _FLAG_GROUP_RE.match(src, i)
        if flags is not None and (flags.group(1) or flags.group(2) is not None):
            on, off = flags.group(1), flags.group(2) or ""
            _check_flags(on + off)
            spec = on + ("-" + off if flags.group(2) is not None else "")
            new = (group.flags | set(on)) - set(off)
            self.i = flags.end()
            self.out.append(f"(?{spec}:")
            if flags.group(3) == ")":
                group.flags = new
                group.opened.append(spec)
            else:
                self.groups.append(_Group(new))
            return
        if src.startswith("(?#", i):
            raise _Unsupported("comments '(?#...)' are not RE2 syntax")
        if re.match(r"\(\?<[A-Za-z_]", src[i : i + 4]):
            self.out.append("(?P<")  # RE2's "(?<name>" is Python's "(?P<name>"
            self.i += 3
        else:
            self.out.append("(")
            self.i += 1
        self.groups.append(_Group(group.flags))

    def _close_group(self) -> None:
        if len(self.groups) == 1:
            raise _Unsupported("unbalanced ')'")
        group = self.groups.pop()
        self.out.append(")" * len(group.opened) + ")")
        self.i += 1

    def _char_class(self) -> None:
        src = self.src
        i = self.i + 1
        out = ["["]
        if src.startswith("^", i):
            out.append("^")
            i += 1
        # A ']' right after '[' or '[^' is a literal, and may start a range.
        can_start_range = src.startswith("]", i)
        if can_start_range:
            out.append("\\]")
            i += 1
        # Python warns about "--", "&&", "[[" etc. in classes, so literals are escaped;
        # a '-' stays bare only where it forms a range, as RE2 decides.
        after_dash = False
        while i < len(src) and src[i] != "]":
            if src[i] == "-" and can_start_range and not src.startswith("]", i + 1):
                out.append("-")
                i += 1
                can_start_range, after_dash = False, True
                continue
            piece, i = self._class_atom(i)
            out.append(piece)
            can_start_range, after_dash = not after_dash, False
        if i >= len(src):
            raise _Unsupported("missing closing ']'")
        out.append("]")
        self.out.append("".join(out))
        self.i = i + 1

    def _class_atom(self, i: int) -> tuple[str, int]:
        src = self.src
        if src[i] == "\\":
            return _translate_escape(src, i, in_class=True)
        if src.startswith("[:", i) and (end := src.find(":]", i + 2)) != -1:
            name = src[i + 2 : end]
            if name.startswith("^"):
                raise _Unsupported(f"negated POSIX class '[:{name}:]' has no Python equivalent")
            if name not in _POSIX_CLASSES:
                raise _Unsupported(f"unknown POSIX class '[:{name}:]'")
            return _POSIX_CLASSES[name], end + 2
        char = src[i]
        return ("\\" + char if char in "[]&~|-" else char), i + 1


def _check_flags(letters: str) -> None:
    for letter in letters:
        if letter == "U":
            raise _Unsupported("the ungreedy flag 'U' has no Python equivalent")
        if letter not in "ims":
            raise _Unsupported(f"unknown flag {letter!r} (RE2 has i, m, s and U)")


def _translate_escape(src: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``src[i]`` (a backslash); returns the piece and next index."""
    if i + 1 >= len(src):
        raise _Unsupported("trailing backslash")
    char = src[i + 1]
    if char in "pP":
        raise _Unsupported(f"Unicode classes '\\{char}' are not supported by Python's re")
    if char.lower() in _PERL_CLASSES:
        body = _PERL_CLASSES[char.lower()]
        if in_class:
            # A negated Perl class inside [...] cannot be spelled out; Python's is Unicode.
            return (body if char.islower() else "\\" + char), i + 2
        return (f"[{body}]" if char.islower() else f"[^{body}]"), i + 2
    if (hexa := _HEX_BRACES_RE.match(src, i)) is not None:
        return f"\\U{int(hexa.group(1), 16):08x}", hexa.end()
    if char in "0123456789":
        octal = _OCTAL_RE.match(src, i)
        if octal is None:
            raise _Unsupported(f"backreference '\\{char}' (RE2 has none)")
        return f"\\u{int(octal.group(1), 8):04x}", octal.end()
    if not in_class and char == "z":
        return "\\Z", i + 2
    if not in_class and char == "Q":
        end = src.find("\\E", i + 2)
        literal = src[i + 2 :] if end == -1 else src[i + 2 : end]
        return re.escape(literal), len(src) if end == -1 else end + 2
    return "\\" + char, i + 2


def _compile_regex(value: str) -> re.Pattern[str]:
    try:
        translated = _Re2Translator(value).translate()
        return re.compile(f"^(?:{translated})$")
    except _Unsupported as exc:
        raise MatcherError(f"invalid regular expression {value!r}: {exc}") from None
    except re.error as exc:
        raise MatcherError(f"invalid regular expression {value!r}: {exc.msg}") from None
