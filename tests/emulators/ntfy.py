"""An ntfy server emulator (the publish API of ntfy 2.16+, or an older one) on 127.0.0.1.

As ntfy does (server/server.go, server/errors.go, docs "Publishing"):

- ``POST``/``PUT /{topic}`` publishes the body; topics match ``[-_A-Za-z0-9]{1,64}`` (else
  404 ``{"code":40401,...}``); the answer is the message as JSON (``id``, ``time``,
  ``expires``, ``event: message``, ``topic``, ...), one line.
- Parameters come from headers under ntfy's names and aliases (``X-Title``/``Title``/``t``,
  ``X-Priority``/``Priority``/``prio``/``p``, ``X-Tags``/``Tags``/``ta``, ``X-Click``/``Click``,
  ``X-Sequence-ID``/``Sequence-ID``/``sid``), RFC 2047 encoded words decoded; a priority that
  is not 1-5 or a name is ``400 {"code":40007}``.
- ``X-Actions``/``Actions``/``Action``: up to three action buttons, parsed as ntfy does
  (ntfy_actions.py); an invalid one is ``400 {"code":40018}``. A subscriber's device keeps
  them, so a test can tap one (make the request the button describes).
- ``Authorization: Bearer <token>``: an unknown token is ``401 {"code":40101}``; a
  ``protected`` topic without a valid token is ``403 {"code":40301}``.
- A body over 4,096 bytes (or not UTF-8) becomes an attachment: refused with ``400 40014``
  when attachments are off (``attachment_limit=None``), ``413 41301`` over the limit.
- With ``sequences`` (2.16+): a publish with a sequence id (header or ``/{topic}/{sid}``)
  replaces the notification of that sequence; ``DELETE /{topic}/{sid}`` deletes it
  (``message_delete``) and ``PUT /{topic}/{sid}/clear`` clears it. Without: the header is
  ignored (a new notification) and those paths are 404, as on an older server.
- Faults: ``429`` (``{"code":42901,...}``, no ``Retry-After`` unless asked: ntfy sends none),
  ``5xx``, ``stall``, ``malformed``.

``emu.messages[topic]`` is what a subscriber's device shows: one ``Notification`` per sequence,
with its latest content, its edit count and whether it was deleted.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from typing import Any

from aiohttp import web

from tests.emulators.failure_plan import FailurePlan, stall, truncated
from tests.emulators.ntfy_actions import Action, ActionsInvalid, parse_actions
from tests.helpers import serve

MESSAGE_LIMIT = 4096
TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")
_PRIORITY_NAMES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}
_ALPHABET = string.ascii_letters + string.digits
LIMITATIONS = "https://ntfy.sh/docs/publish/#limitations"


@dataclass
class Notification:
    """A notification as a subscriber sees it (the latest message of its sequence)."""

    id: str  # the first message's id
    sequence_id: str
    message: str
    title: str
    priority: int  # 0: not set (3)
    tags: list[str]
    click: str
    attachment: dict[str, Any] | None = None
    actions: list[Action] = field(default_factory=list)
    edits: int = 0
    deleted: bool = False
    cleared: bool = False


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


def _err(status: int, code: int, message: str, link: str = "",
         headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "http": status, "error": message}
    if link:
        body["link"] = link
    return web.json_response(body, status=status, headers=headers)


def _decode(value: str) -> str:
    """An RFC 2047 encoded header value decoded (as Go's mime.WordDecoder does)."""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


def _param(request: web.Request, *names: str) -> str:
    for name in names:
        value = request.headers.get(name, "")
        if value.strip():
            return _decode(value).strip()
    for name in names:
        value = request.query.get(name.lower(), "")
        if value.strip():
            return value.strip()
    return ""


def _priority(raw: str) -> int | None:
    """1-5 from a number or a name; 0 when unset; None when invalid."""
    if not raw:
        return 0
    if raw.isdigit() and 1 <= int(raw) <= 5:
        return int(raw)
    return _PRIORITY_NAMES.get(raw.lower())


def _new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


@dataclass
class NtfyEmulator:
    tokens: set[str] = field(default_factory=set)
    protected: set[str] = field(default_factory=set)
    sequences: bool = True  # ntfy >= 2.16
    attachment_limit: int | None = 2 * 1024 * 1024  # ntfy.sh's; None: attachments off
    messages: dict[str, list[Notification]] = field(default_factory=dict)
    # Every event published per topic, as the server answered it.
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: FailurePlan = field(default_factory=FailurePlan)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on 127.0.0.1 (random port); yields the base URL."""
        async with serve(self.handle) as url:
            try:
                yield url
            finally:  # before the server closes: a stalled request ends now
                self.failures.release.set()

    def current(self, topic: str) -> list[Notification]:
        """The notifications of ``topic`` still shown (not deleted)."""
        return [n for n in self.messages.get(topic, []) if not n.deleted]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = await self._answer(request, body)
        self.requests.append(Request(request.method, request.path, dict(request.headers), body,
                                     resp.status, time.monotonic()))
        return resp

    def _auth(self, request: web.Request, topic: str) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        valid = False
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or token not in self.tokens:
                return _err(401, 40101, "unauthorized", "https://ntfy.sh/docs/publish/#authentication")
            valid = True
        if topic in self.protected and not valid:
            return _err(403, 40301, "forbidden", "https://ntfy.sh/docs/publish/#authentication")
        return None

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if not parts or not TOPIC.fullmatch(parts[0]) or len(parts) > 3:
            return _err(404, 40401, "page not found")
        topic = parts[0]
        method = request.method
        publish = len(parts) == 1 and method in ("POST", "PUT")
        seq_path = (len(parts) >= 2 and self.sequences and TOPIC.fullmatch(parts[1])
                    is not None)
        if not publish and not seq_path:
            return _err(404, 40401, "page not found")
        denied = self._auth(request, topic)
        if denied is not None:
            return denied
        fault = self.failures.take()
        if fault is not None:
            return await self._fault(request, fault.kind, fault.retry_after, fault.status)
        if len(parts) == 3:
            if parts[2] != "clear" or method != "PUT":
                return _err(404, 40401, "page not found")
            return self._mark(topic, parts[1], "message_clear")
        if len(parts) == 2 and method == "DELETE":
            return self._mark(topic, parts[1], "message_delete")
        if len(parts) == 2 and method not in ("POST", "PUT"):
            return _err(404, 40401, "page not found")
        sequence = parts[1] if len(parts) == 2 else (
            _param(request, "X-Sequence-ID", "Sequence-ID", "SID") if self.sequences else "")
        return self._publish(request, topic, body, sequence)

    def _publish(self, request: web.Request, topic: str, body: bytes,
                 sequence: str) -> web.Response:
        priority = _priority(_param(request, "X-Priority", "Priority", "prio", "p"))
        if priority is None:
            return _err(400, 40007, "invalid priority parameter",
                        "https://ntfy.sh/docs/publish/#message-priority")
        if sequence and not TOPIC.fullmatch(sequence):
            return _err(400, 40049, "invalid request: sequence ID invalid")
        try:
            actions = parse_actions(_param(request, "X-Actions", "Actions", "Action"))
        except ActionsInvalid as exc:
            return _err(400, 40018, f"invalid request: actions invalid, {exc}",
                        "https://ntfy.sh/docs/publish/#action-buttons")
        text, attachment = self._body(body)
        if isinstance(text, web.Response):
            return text
        tags = [t.strip() for t in _param(request, "X-Tags", "Tags", "Tag", "ta").split(",")
                if t.strip()]
        title = _param(request, "X-Title", "Title", "ti", "t")
        click = _param(request, "X-Click", "Click")
        now = int(time.time())
        msg_id = _new_id()
        event: dict[str, Any] = {"id": msg_id, "time": now, "expires": now + 43200,
                                 "event": "message", "topic": topic,
                                 "message": text or "triggered"}
        optional = {"title": title, "priority": priority, "tags": tags, "click": click,
                    "actions": [a.as_json() for a in actions], "attachment": attachment,
                    "sequence_id": sequence}
        event.update({k: v for k, v in optional.items() if v})
        self._store(topic, event, actions)
        self.events.setdefault(topic, []).append(event)
        return web.json_response(event, dumps=_line)

    def _store(self, topic: str, event: dict[str, Any], actions: list[Action]) -> None:
        """Show ``event``: as a new notification, or over the one of its sequence."""
        shown = self.messages.setdefault(topic, [])
        sequence = event.get("sequence_id", "")
        existing = next((n for n in shown if sequence and n.sequence_id == sequence), None)
        fields = (event["message"], event.get("title", ""), event.get("priority", 0),
                  event.get("tags", []), event.get("click", ""), event.get("attachment"),
                  actions)
        if existing is None:
            shown.append(Notification(event["id"], sequence or event["id"], *fields))
            return
        (existing.message, existing.title, existing.priority, existing.tags, existing.click,
         existing.attachment, existing.actions) = fields
        existing.edits += 1
        existing.deleted = existing.cleared = False

    def _body(self, body: bytes) -> tuple[str | web.Response, dict[str, Any] | None]:
        """The message text, or an attachment when the body is too large or not UTF-8."""
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None and len(body) <= MESSAGE_LIMIT:
            return text, None
        if self.attachment_limit is None:
            return _err(400, 40014, "invalid request: attachments not allowed",
                        "https://ntfy.sh/docs/config/#attachments"), None
        if len(body) > self.attachment_limit:
            return _err(413, 41301, "attachment too large, or bandwidth limit reached",
                        LIMITATIONS), None
        return "You received a file: attachment.txt", {"name": "attachment.txt",
                                                        "size": len(body)}

    def _mark(self, topic: str, sequence: str, kind: str) -> web.Response:
        for n in self.messages.get(topic, []):
            if n.sequence_id == sequence:
                if kind == "message_delete":
                    n.deleted = True
                else:
                    n.cleared = True
        event = {"id": _new_id(), "time": int(time.time()), "event": kind, "topic": topic,
                 "sequence_id": sequence}
        self.events.setdefault(topic, []).append(event)
        return web.json_response(event, dumps=_line)

    async def _fault(self, request: web.Request, kind: str, retry_after: float | None,
                     status: int | None) -> web.StreamResponse:
        if kind == "429":
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return _err(429, 42901, "limit reached: too many requests, please be nice",
                        LIMITATIONS, headers)
        if kind == "5xx":
            return _err(status or 500, 50001, "internal server error")
        if kind == "stall":
            return await stall(self.failures)
        if kind == "malformed":
            return await truncated(request)
        raise ValueError(f"unknown fault {kind!r}")


def _line(obj: Any) -> str:
    return json.dumps(obj) + "\n"  # ntfy writes one JSON line
