"""Alertmanager's regular expressions, matched by RE2 in time linear in the label value.

Patterns are written by operators but matched against label values that senders choose, on the
event loop and on the store's writer thread: a backtracking engine lets one long label stall
both (``.*prod.*:9100.*`` against 128 KB took 2.7 s with Python's ``re``). RE2 is also the
engine and the syntax of Alertmanager (Go's ``regexp``), so patterns mean what they mean there,
and what RE2 rejects (backreferences, lookaround) is rejected here.

A small typed adapter over ``google-re2``, which ships no type information. It calls the
compiled program (``re2._re2.RE2``) directly: the ``re``-like wrapper builds a generator and a
match object per call, three times the cost of the match itself for a short label.
"""

from __future__ import annotations

from typing import Any

import re2
from re2 import _re2

__all__ = ["Regex", "RegexError"]


class RegexError(ValueError):
    """A pattern that RE2 (Alertmanager's syntax) does not accept."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every rejected pattern to stderr
    options.never_capture = True  # only "does it match" is asked
    return options


_OPTIONS = _options()
_ANCHOR_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_NO_MATCH = (-1, -1)
# Characters that are not literal somewhere in RE2 syntax; a pattern with none of them but '|'
# is a set of literal strings.
_METACHARACTERS = frozenset("\\.+*?()[]{}^$")
_BAD_ESCAPE = "invalid escape sequence: \\"


class Regex:
    """A compiled pattern that must match the whole value, as Alertmanager's ``^(?:p)$``.

    The pattern is compiled on its own and matched anchored at both ends, which is the same
    language as ``^(?:p)$`` but cannot be broken open: ``a)|(b`` is a syntax error here, not
    "starts with a or ends with b".
    """

    __slots__ = ("pattern", "_program", "_literals")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            encoded = pattern.encode()
        except UnicodeEncodeError:
            raise RegexError("the pattern is not valid UTF-8") from None
        program = _re2.RE2(encoded, _OPTIONS)
        if not program.ok():
            raise RegexError(_describe(program.error()))
        # "critical|warning" is the commonest matcher of all: answer it with a set lookup,
        # which gives the same answer as RE2 for a pattern of plain alternatives.
        self._literals: frozenset[str] | None = None
        self._program: Any = program
        if _METACHARACTERS.isdisjoint(pattern):
            self._literals, self._program = frozenset(pattern.split("|")), None

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of ``text`` matches the pattern."""
        if self._literals is not None:
            return text in self._literals
        # Lone surrogates (which no JSON decoder here produces) must not raise: RE2 reads
        # the resulting invalid UTF-8 like any other byte sequence, in linear time.
        data = text.encode("utf-8", "surrogatepass")
        spans = self._program.Match(_ANCHOR_BOTH, data, 0, len(data))
        return bool(spans[0] != _NO_MATCH)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def _describe(error: bytes | str) -> str:
    """RE2's reason, with a hint for what users of Perl or Python regexes most often try."""
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
    if text.startswith("invalid perl operator"):
        return f"{text} (RE2 has no lookaround, backreferences or comments; flags are i, m, s, U)"
    if text.startswith(_BAD_ESCAPE) and text[len(_BAD_ESCAPE) : len(_BAD_ESCAPE) + 1].isdigit():
        return f"{text} (RE2 has no backreferences)"
    return text
