"""The email channel's pure message building: header safety, subjects, References, budget."""

from __future__ import annotations

from dataclasses import replace

from agent.channels import email_mime
from agent.channels.base import Message

BASE = Message(notification_id="ntf_1", channel="email", to="ana@example.com", text="disk full",
               subject="db1", severity="warning", priority="normal", created_at=0.0)


def test_one_line_removes_every_line_break_and_control_character() -> None:
    assert email_mime.one_line("a\r\nb\nc\rd\x00e\x85f\u2028g\u2029h\tI") == "a b c d e f g h I"
    assert email_mime.one_line("x" * 500) == "x" * 199 + "\u2026"


def test_reply_subject_does_not_stack_prefixes() -> None:
    assert email_mime.reply_subject("db1") == "Re: db1"
    assert email_mime.reply_subject("RE: db1") == "RE: db1"


def test_references_keep_the_first_id_and_the_latest_when_trimmed() -> None:
    ids = [f"<m{i}@example.com>" for i in range(30)]
    thread = email_mime.Thread.of({"message_id": "<last@example.com>", "references": ids})
    assert thread is not None
    chain = thread.chain()
    assert len(chain) == email_mime.MAX_REFERENCES
    assert chain[0] == ids[0] and chain[-1] == "<last@example.com>" and chain[-2] == ids[-1]


def test_a_ref_with_foreign_or_unsafe_values_is_no_thread() -> None:
    for ref in (None, {}, {"message_id": 7}, {"message_id": "<a@b>\nX: y"},
                {"ts": "1.2", "channel": "C1"}):
        assert email_mime.Thread.of(ref) is None
    thread = email_mime.Thread.of({"message_id": "<a@b>", "references": ["<x@y>\r\nX: z", 3]})
    assert thread is not None and thread.references == ()


def test_a_long_text_is_truncated_with_the_marker_and_link() -> None:
    link = "https://agent.example/v1/notifications/ntf_1"
    text = email_mime.body_text(replace(BASE, text="line\n" * 50_000, link=link))
    assert len(text) <= email_mime.MAX_TEXT_CHARS
    assert "truncated" in text and text.rstrip().endswith(link)


def test_the_html_part_is_the_escaped_text() -> None:
    mail, ref = email_mime.build(replace(BASE, text="<b>x</b> & y"), "alerts@example.com",
                                 "example.com")
    html = mail.get_body(("html",))
    assert html is not None
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in html.get_content()
    assert ref["message_id"] == mail["Message-ID"] and ref["references"] == []
    assert ref["thread_subject"] == "db1"
