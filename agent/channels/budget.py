"""Size budgets: a message over a channel's limit is split into numbered parts or truncated
with a visible marker, never dropped and never refused by the provider for its length.

Pure functions over plain text. A channel that escapes or wraps its text (Telegram HTML, Slack
blocks) fits the plain text first and escapes each part after, so a cut can never land inside
an entity; ``measure`` counts what the provider counts (characters, UTF-16 code units, bytes).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.channels.base import OverflowMode

Measure = Callable[[str], int]
# More parts than this is a flood, not a message: the last part is truncated instead.
DEFAULT_MAX_PARTS = 10


def utf8_bytes(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (ntfy's body limit, Teams' payload limit)."""
    return len(text.encode())


def utf16_units(text: str) -> int:
    """UTF-16 code units of ``text`` (how Telegram counts message length)."""
    return len(text.encode("utf-16-le")) // 2


def _longest_prefix(text: str, budget: int, measure: Measure) -> int:
    """The largest i with measure(text[:i]) <= budget (0 when not even one character fits)."""
    if measure(text) <= budget:
        return len(text)
    lo, hi = 0, len(text)
    while lo < hi:  # measure is monotone in the prefix length
        mid = (lo + hi + 1) // 2
        if measure(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _cut(text: str, end: int) -> int:
    """Where to cut ``text`` at or before ``end``: the last line break, else the last space, as
    long as that keeps at least half of the room; else ``end`` itself."""
    if end >= len(text):
        return len(text)
    for sep in ("\n", " "):
        at = text.rfind(sep, 0, end + 1)
        if at >= end // 2 and at > 0:
            return at
    return max(end, 1)


def _marker(omitted: int, link: str | None, ellipsis: str = "\u2026") -> str:
    more = f"{ellipsis} truncated, {omitted} more characters"
    return f"\n{more}: full text at {link}" if link else f"\n{more}"


def truncate(text: str, limit: int, *, link: str | None = None,
             measure: Measure = len, ellipsis: str = "\u2026") -> str:
    """``text`` when it fits ``limit``; else as much of it as fits with a marker that says how
    much was cut and, given a ``link``, where to read the rest. ``ellipsis`` opens the marker
    (SMS says "..." instead: "\u2026" is not in the GSM-7 alphabet and would force UCS-2)."""
    if measure(text) <= limit:
        return text
    # The widest marker this text can need: the real count has no more digits.
    widest = _marker(len(text), link, ellipsis)
    room = limit - measure(widest)
    if room <= 0:  # a limit smaller than the marker: keep what fits of the marker itself
        return widest.lstrip("\n")[:_longest_prefix(widest.lstrip("\n"), limit, measure)]
    end = _cut(text, _longest_prefix(text, room, measure))
    head = text[:end].rstrip()
    return head + _marker(len(text) - len(head), link, ellipsis)


def _label(i: int, n: int) -> str:
    return f"({i}/{n})\n"


def split(text: str, limit: int, *, link: str | None = None, measure: Measure = len,
          max_parts: int = DEFAULT_MAX_PARTS) -> list[str]:
    """``text`` in parts that each fit ``limit``, numbered ``(i/n)`` on their first line and
    cut at line breaks where possible. Past ``max_parts`` the last part is truncated (with the
    marker and ``link``) rather than sending a flood."""
    if measure(text) <= limit:
        return [text]
    n = 2
    while True:
        room = limit - measure(_label(n, n))
        if room <= 0:
            return [truncate(text, limit, link=link, measure=measure)]
        parts: list[str] = []
        rest = text
        while rest and len(parts) < max_parts:
            if len(parts) == max_parts - 1 or measure(rest) <= room:
                parts.append(rest)
                rest = ""
                break
            end = _cut(rest, _longest_prefix(rest, room, measure))
            parts.append(rest[:end].rstrip())
            rest = rest[end:].lstrip("\n ")
        if len(str(len(parts))) <= len(str(n)):  # the labels as reserved still fit
            total = len(parts)
            out = [_label(i + 1, total) + p for i, p in enumerate(parts)]
            out[-1] = truncate(out[-1], limit, link=link, measure=measure)
            return out
        n = len(parts)  # more digits than reserved: reserve them and cut again


def fit(text: str, limit: int | None, mode: OverflowMode, *, link: str | None = None,
        measure: Measure = len, max_parts: int = DEFAULT_MAX_PARTS) -> list[str]:
    """The message texts to send for ``text`` under ``limit`` (None: no limit) and ``mode``."""
    if limit is None or measure(text) <= limit:
        return [text]
    if mode == "split":
        return split(text, limit, link=link, measure=measure, max_parts=max_parts)
    return [truncate(text, limit, link=link, measure=measure)]
