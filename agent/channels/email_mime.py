"""The email channel's message: headers and a multipart/alternative body built from a Message.

Pure: no I/O, no clock of its own (the Date and Message-ID come from the stdlib at build time).

- ``text/plain`` is the rendered text; ``text/html`` is the SAME text HTML-escaped inside a
  ``<pre style="white-space:pre-wrap">``: a template's output is never markup, so no value can
  inject a tag or a link. Both UTF-8, quoted-printable (safe through any relay, 7-bit or not).
- Header values (Subject) are one line: every control character (CR and LF included) and every
  Unicode line separator becomes a space, so a value cannot start a header of its own.
- Threading: a later message of the group (``Message.replaces`` with a ``message_id``) carries
  ``In-Reply-To`` (that id) and ``References`` (its chain and that id), and the subject of the
  thread's first message as ``Re: <subject>``: Gmail threads only when the subject is the same
  up to a reply prefix, the others follow the headers (RFC 5322 section 3.6.4).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from agent.channels import budget
from agent.channels.base import Message

MAX_SUBJECT_CHARS = 200
# Text over this is truncated with the marker and the link: far under every relay's SIZE limit
# with both parts, and more than anybody reads in an alert mail.
MAX_TEXT_CHARS = 100_000
# The References chain kept: the thread's first id and the latest ones (RFC 5322 allows
# trimming the middle of a long chain).
MAX_REFERENCES = 20
REPLY_PREFIX = "Re: "
_MSGID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")
# C0/C1 control characters and the Unicode line and paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """``value`` as a safe header value: no control characters, spaces collapsed, bounded."""
    line = " ".join(_UNSAFE.sub(" ", value).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "\u2026"


def own_subject(message: Message) -> str:
    """The subject of a message that starts a thread: the template's subject, else the severity
    (``RESOLVED`` once resolved) and the text's first line."""
    subject = one_line(message.subject or "")
    if subject:
        return subject
    first = next((line for line in message.text.splitlines() if line.strip()), "")
    status = "RESOLVED" if message.status == "resolved" else message.severity.upper()
    return one_line(f"[{status}] {first}".rstrip())


@dataclass(frozen=True, slots=True)
class Thread:
    """The earlier message a new one follows up: its id, its References and its subject."""

    message_id: str
    references: tuple[str, ...]
    subject: str | None

    @classmethod
    def of(cls, ref: dict[str, Any] | None) -> Thread | None:
        """The thread a provider ref names; None when it names none we can use."""
        if not ref or not isinstance(ref.get("message_id"), str):
            return None
        mid = ref["message_id"]
        if not _MSGID.fullmatch(mid):
            return None
        refs = ref.get("references")
        chain = tuple(r for r in refs if isinstance(r, str) and _MSGID.fullmatch(r)) \
            if isinstance(refs, list) else ()
        subject = ref.get("thread_subject")
        return cls(mid, chain, one_line(subject) if isinstance(subject, str) else None)

    def chain(self) -> list[str]:
        """References for the reply: the earlier chain and the earlier id, the first id kept
        when the chain is trimmed."""
        ids = [*self.references, self.message_id]
        if len(ids) > MAX_REFERENCES:
            ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
        return ids


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith(REPLY_PREFIX.lower()) \
        else one_line(REPLY_PREFIX + subject)


def body_text(message: Message) -> str:
    """The plain text of the mail: the rendered text, truncated with the marker and link when
    it is over the budget, and the link to the notification when there is one."""
    text = budget.truncate(message.text, MAX_TEXT_CHARS, link=message.link)
    if message.link and message.link not in text:
        text = f"{text}\n\n{message.link}"
    if message.ack_url:
        text = f"{text}\n\nAcknowledge: {message.ack_url}"
    return text


def html_of(text: str, title: str) -> str:
    """The HTML part: ``text`` escaped, as preformatted text that wraps."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title></head>\n<body>"
            "<pre style=\"white-space:pre-wrap;font-family:monospace\">"
            f"{html.escape(text)}</pre></body></html>\n")


def build(message: Message, sender: str, sender_domain: str,
          ) -> tuple[EmailMessage, dict[str, Any]]:
    """The mail for ``message`` from ``sender``, and the provider ref that names it (its
    Message-ID, References and the thread's subject, for the next message of the group)."""
    thread = Thread.of(message.replaces) if message.update != "new" else None
    subject = own_subject(message)
    thread_subject = subject
    if thread is not None:
        thread_subject = thread.subject or subject
        subject = reply_subject(thread_subject)
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = subject
    mail["Date"] = formatdate(usegmt=True)
    msgid = make_msgid(domain=sender_domain)
    mail["Message-ID"] = msgid
    references: list[str] = []
    if thread is not None:
        references = thread.chain()
        mail["In-Reply-To"] = thread.message_id
        mail["References"] = " ".join(references)
    # RFC 3834: no vacation auto-replies to an alert.
    mail["Auto-Submitted"] = "auto-generated"
    text = body_text(message)
    mail.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mail.add_alternative(html_of(text, subject), subtype="html", charset="utf-8",
                         cte="quoted-printable")
    ref = {"message_id": msgid, "references": references, "thread_subject": thread_subject}
    return mail, ref
