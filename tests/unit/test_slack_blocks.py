"""Slack bodies: headline, mrkdwn escaping, and the size budget (text, sections, blocks)."""

from __future__ import annotations

import html
import re
from typing import Any

from agent.channels.base import Message
from agent.channels.slack_blocks import (
    HEADER_LIMIT,
    MAX_BLOCKS,
    SECTION_LIMIT,
    TEXT_LIMIT,
    bodies,
    escape,
    escaped_len,
    headline,
)


def msg(text: str = "disk full", **kw: Any) -> Message:
    base: dict[str, Any] = dict(notification_id="ntf_1", channel="slack", to="#alerts",
                                text=text, subject="db1 disk", severity="critical",
                                priority="high", created_at=0.0)
    return Message(**{**base, **kw})


def alert_lines(n: int, width: int = 300) -> str:
    """``n`` alert lines of about ``width`` characters, with mrkdwn control characters."""
    lines = []
    for i in range(n):
        head = (f"[FIRING] HighLatency instance=api-{i:03d}:9090 job=api severity=warning "
                "summary=p99 <latency> 2.3s > 1s & rising, "
                "runbook https://runbooks.test/x?a=1&b=2 ")
        lines.append((head + "x" * width)[:width])
    return "\n".join(lines)


def sections(body: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]


def test_escape_covers_the_three_control_characters() -> None:
    assert escape("<!here> a&b > c") == "&lt;!here&gt; a&amp;b &gt; c"
    for text in ("<!channel>", "a & b", "x>y", "plain", "&amp;"):
        assert escaped_len(text) == len(escape(text))


def test_headline_marks_severity_and_resolution() -> None:
    assert headline(msg()) == "🔴 CRITICAL: db1 disk"
    assert headline(msg(severity="warning", subject=None)) == "🟠 WARNING"
    assert headline(msg(status="resolved")) == "✅ RESOLVED: db1 disk"
    long = headline(msg(subject="s\n" * 400))
    assert len(long) == HEADER_LIMIT and "\n" not in long and long.endswith("…")


def test_a_small_message_is_one_body_with_header_section_and_context() -> None:
    [body] = bodies(msg("disk <full> & more", link="https://agent.test/n/1?a=1&b=2"), "split")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds == ["header", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "🔴 CRITICAL: db1 disk",
                                         "emoji": True}
    assert sections(body) == ["disk &lt;full&gt; &amp; more"]
    assert body["text"] == "🔴 CRITICAL: db1 disk\ndisk &lt;full&gt; &amp; more"
    context = body["blocks"][-1]["elements"][0]["text"]
    assert "*Status:* firing" in context and "*Severity:* critical" in context
    assert "<https://agent.test/n/1?a=1&amp;b=2|Open in alert-agent>" in context


def test_a_200_alert_group_splits_into_parts_within_every_limit() -> None:
    text = alert_lines(200)
    parts = bodies(msg(text), "split")
    assert len(parts) > 1
    for i, body in enumerate(parts, start=1):
        assert len(body["text"]) <= TEXT_LIMIT
        assert len(body["blocks"]) <= MAX_BLOCKS
        assert all(0 < len(s) <= SECTION_LIMIT for s in sections(body))
        assert sections(body)[0].startswith(f"({i}/{len(parts)})\n")
    # Nothing lost: the sections, unescaped and without the part labels, are the text.
    lines = []
    for body in parts:
        joined = "\n".join(html.unescape(s) for s in sections(body))
        lines += re.sub(r"^\(\d+/\d+\)\n", "", joined).split("\n")
    assert lines == text.split("\n")


def test_truncate_keeps_one_part_with_the_marker_and_the_link() -> None:
    [body] = bodies(msg(alert_lines(200), link="https://agent.test/n/1"), "truncate")
    assert len(body["text"]) <= TEXT_LIMIT
    last = sections(body)[-1]
    assert "truncated" in last and "https://agent.test/n/1" in last


def test_an_escaping_heavy_text_still_fits() -> None:
    # Every character grows to four or five once escaped: the budget counts that.
    parts = bodies(msg("<&>" * 30_000), "split")
    assert len(parts) >= 5
    for body in parts:
        assert len(body["text"]) <= TEXT_LIMIT
        assert all(len(s) <= SECTION_LIMIT for s in sections(body))
        assert len(body["blocks"]) <= MAX_BLOCKS


def test_a_blank_text_sends_the_headline_alone() -> None:
    [body] = bodies(msg("  \n "), "split")
    assert [b["type"] for b in body["blocks"]] == ["header", "context"]
    assert body["text"] == "🔴 CRITICAL: db1 disk"
