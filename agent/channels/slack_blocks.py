"""Slack message bodies: a notification as Block Kit blocks plus the ``text`` fallback, fitted
to Slack's limits (channels/budget.py) and escaped for mrkdwn.

Pure functions, no I/O. The plain text is fitted first (with a measure that counts the escaped
length) and each piece escaped after, so a cut never lands inside ``&amp;``.

Limits relied on (Slack's Block Kit and ``chat.postMessage`` reference): ``text`` up to 40,000
characters, a section's text up to 3,000, a header's plain text up to 150, 50 blocks a message.
"""

from __future__ import annotations

from typing import Any

from agent.channels import budget
from agent.channels.base import Message, OverflowMode

TEXT_LIMIT = 40_000
SECTION_LIMIT = 3_000
HEADER_LIMIT = 150
MAX_BLOCKS = 50
# A part's sections: at least half of SECTION_LIMIT each (budget's cut rule), so a 40,000
# character part needs at most 27; with the header, the context and the actions block that is well
# under 50.

_MARKERS = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_RESOLVED = "✅"
_OTHER = "⚪"


def escape(text: str) -> str:
    """``text`` safe to interpolate into Slack mrkdwn: only ``&``, ``<`` and ``>`` are control
    characters there (``<!here>``, ``<url|label>``, ``<@U123>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escaped_len(text: str) -> int:
    """The length of ``text`` once escaped: what Slack counts against its limits."""
    return len(text) + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))


def headline(message: Message) -> str:
    """The first line: a status marker, the severity (or RESOLVED) and the subject."""
    if message.status == "resolved":
        label = f"{_RESOLVED} RESOLVED"
    else:
        label = f"{_MARKERS.get(message.severity, _OTHER)} {message.severity.upper()}"
    subject = " ".join((message.subject or "").split())  # a header is one line
    line = f"{label}: {subject}" if subject else label
    if len(line) > HEADER_LIMIT:
        line = line[:HEADER_LIMIT - 1] + "…"
    return line


def _sections(text: str) -> list[str]:
    """``text`` in pieces of at most SECTION_LIMIT escaped characters, cut at line breaks
    where possible (else at a space, else anywhere); blank pieces are dropped (Slack refuses
    an empty section)."""
    out: list[str] = []
    rest = text
    while rest:
        if escaped_len(rest) <= SECTION_LIMIT:
            out.append(rest)
            break
        lo, hi = 1, len(rest)
        while lo < hi:  # the longest prefix that fits
            mid = (lo + hi + 1) // 2
            if escaped_len(rest[:mid]) <= SECTION_LIMIT:
                lo = mid
            else:
                hi = mid - 1
        end = lo
        for sep in ("\n", " "):
            at = rest.rfind(sep, 0, end)
            if at >= end // 2 and at > 0:
                end = at
                break
        out.append(rest[:end])
        rest = rest[end:].lstrip("\n")
    return [p for p in out if p.strip()]


def _link(url: str) -> str:
    # ``|`` and ``>`` end a Slack link: percent-encode them; ``&`` and ``<`` are escaped.
    return escape(url.replace("|", "%7C")).replace("&gt;", "%3E")


def _context(message: Message) -> dict[str, Any]:
    status = escape(message.status)
    severity = escape(message.severity)
    line = f"*Status:* {status}  ·  *Severity:* {severity}"
    if message.link and len(message.link) <= 2_000:
        line += f"  ·  <{_link(message.link)}|Open in alert-agent>"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]}


def bodies(message: Message, overflow: OverflowMode,
           ack: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ``chat.postMessage`` / ``chat.update`` fields (``text``, ``blocks``) of each part
    of ``message``: one when it fits, else numbered parts (``split``) or one part cut with a
    visible marker and the link (``truncate``). ``ack``, the Acknowledge ``actions`` block,
    goes under the first part (the one in the channel; the others are thread replies)."""
    head = headline(message)
    # The fallback ``text`` is the headline and the part: keep both under TEXT_LIMIT.
    room = TEXT_LIMIT - escaped_len(head) - 1
    parts = budget.fit(message.text, room, overflow, link=message.link, measure=escaped_len)
    out: list[dict[str, Any]] = []
    for part in parts:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}}]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": escape(s)}}
                   for s in _sections(part)]
        blocks.append(_context(message))
        if ack is not None and not out:
            blocks.append(ack)
        text = escape(head) + ("\n" + escape(part) if part.strip() else "")
        out.append({"text": text, "blocks": blocks})
    return out
