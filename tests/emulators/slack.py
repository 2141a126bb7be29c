"""A Slack Web API emulator: ``chat.postMessage``, ``chat.update`` and ``chat.delete`` on
127.0.0.1, checking requests as Slack does and keeping the messages for assertions.

    emu = SlackEmulator(token="xoxb-...")
    async with emu.running() as api_url:        # http://127.0.0.1:PORT/api
        ...                                     # channels.slack.api_url = api_url
        emu.messages_in("#alerts")              # current messages, posted order
        emu.fail("ratelimited", times=3, retry_after=2)

Interactivity: ``emu.click(url, message, user_id=...)`` posts to the agent what Slack posts when
a user clicks a message's button: a form-encoded ``payload`` (a ``block_actions`` interaction
naming the user, the action and a ``response_url`` this emulator serves), signed with the app's
``signing_secret`` (``X-Slack-Signature``, ``X-Slack-Request-Timestamp``). What the agent posts
to that ``response_url`` is kept in ``emu.responses``.

Checked as Slack does (its method reference): POST only; ``Authorization: Bearer`` (or a
``token`` form field), else ``not_authed`` / ``invalid_auth``; JSON or form-encoded bodies
(``blocks`` a JSON string in a form), else ``invalid_post_type``; ``channel`` a ``#name`` or an
id (``chat.update`` and ``chat.delete`` take ids only); ``text`` up to 40,000 characters
(``msg_too_long``); blocks: at most 50, a section's text 1..3,000, a header's 1..150, a context
at most 10 elements (``invalid_blocks``). Answers are Slack's shape, keys in Slack's order:
``{"ok": true, "channel", "ts", "message"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import orjson
from aiohttp import web

from tests.emulators.failure_plan import truncated
from tests.helpers import serve

TEXT_LIMIT = 40_000
SECTION_LIMIT = 3_000
HEADER_LIMIT = 150
MAX_BLOCKS = 50
METHODS = ("chat.postMessage", "chat.update", "chat.delete")
STALL = 5.0  # longest a stalled request is held (released sooner by close())
# Slack's documented example signing secret ("Verifying requests from Slack").
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
# Failure modes besides a Slack error code (answered as 200 {"ok": false, "error": code}).
MODES = ("ratelimited", "ratelimited_200", "5xx", "stall", "malformed", "garbage")


@dataclass
class SlackMessage:
    """One message as Slack keeps it."""

    ts: str
    channel: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: int = 0
    deleted: bool = False

    def block_texts(self) -> list[str]:
        """The text of each section block, in order."""
        return [b["text"]["text"] for b in self.blocks if b.get("type") == "section"]


@dataclass
class Response:
    """What the app posted to an interaction's response_url."""

    path: str
    body: dict[str, Any]
    content_type: str


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class _Failure:
    mode: str
    remaining: int | None  # requests left; None: until ``until``
    until: float | None
    retry_after: int | None
    methods: frozenset[str] | None
    after: int = 0  # matching requests to let through first


@dataclass
class Request:
    """One request as it arrived (monotonic time), for rate and order assertions."""

    method: str
    at: float
    channel: str | None
    answered: str  # "ok", a Slack error code or a failure mode


@dataclass
class SlackEmulator:
    token: str = "xoxb-emulator-token"
    # name (without #) -> channel id; ids not listed here are channel_not_found.
    channels: dict[str, str] = field(default_factory=lambda: {"alerts": "C0ALERTS01",
                                                              "ops": "C0OPS00001"})
    archived: set[str] = field(default_factory=set)  # channel ids
    not_in: set[str] = field(default_factory=set)  # channel ids the bot is not a member of
    messages: dict[str, list[SlackMessage]] = field(default_factory=dict)  # by channel id
    requests: list[Request] = field(default_factory=list)
    signing_secret: str = SIGNING_SECRET
    responses: list[Response] = field(default_factory=list)  # posted to response_urls
    base_url: str = ""  # set by running(): where response_urls point
    _failures: list[_Failure] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    # --- driving it -------------------------------------------------------------------

    def fail(self, mode: str, *, times: int | None = 1, seconds: float | None = None,
             retry_after: int | None = None, methods: Iterable[str] | None = None,
             after: int = 0) -> None:
        """Answer the next ``times`` requests (or every request for ``seconds``) with ``mode``:
        one of MODES or a Slack error code; ``methods`` limits it to those API methods,
        ``after`` lets that many of them through first."""
        until = None if seconds is None else time.monotonic() + seconds
        self._failures.append(_Failure(mode, None if seconds is not None else times, until,
                                       retry_after, frozenset(methods) if methods else None,
                                       after))

    def add_channel(self, name: str, cid: str) -> None:
        self.channels[name.lstrip("#")] = cid

    def messages_in(self, channel: str, *, deleted: bool = False) -> list[SlackMessage]:
        """The messages of a channel (``#name`` or id), posted order; deleted ones only when
        asked for."""
        cid = self.channels.get(channel[1:], "") if channel.startswith("#") else channel
        return [m for m in self.messages.get(cid, []) if deleted or not m.deleted]

    def count(self, method: str | None = None, answered: str | None = None) -> int:
        return sum(1 for r in self.requests if (method is None or r.method == method)
                   and (answered is None or r.answered == answered))

    def close(self) -> None:
        """Release stalled requests."""
        self._release.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 (random port); yields the API base URL (``.../api``)."""
        try:
            async with serve(self.handle) as base:
                self.base_url = base
                yield base + "/api"
        finally:
            self.close()

    def app(self) -> web.Application:
        """The emulator as an aiohttp application (every path; the API is under /api)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # --- the API ----------------------------------------------------------------------

    # --- interactivity ----------------------------------------------------------------

    def interaction(self, message: SlackMessage, *, user_id: str, user_name: str = "ana",
                    action_id: str = "ack", value: str | None = None,
                    kind: str = "block_actions") -> dict[str, Any]:
        """The ``block_actions`` payload Slack sends when ``user_id`` clicks the button
        ``action_id`` of ``message`` (its value unless ``value`` is given), as Slack's
        interactivity reference shows it."""
        button = next((e for b in message.blocks if b.get("type") == "actions"
                       for e in b.get("elements", []) if e.get("action_id") == action_id),
                      None)
        if value is None:
            assert button is not None, f"message {message.ts} has no {action_id!r} button"
            value = button["value"]
        hook = f"{self.base_url}/actions/T0EMULATOR/{next(self._seq)}/{secrets.token_hex(8)}"
        return {
            "type": kind,
            "user": {"id": user_id, "username": user_name, "name": user_name,
                     "team_id": "T0EMULATOR"},
            "api_app_id": "A0EMULATOR", "token": "verification-token-unused",
            "container": {"type": "message", "message_ts": message.ts,
                          "channel_id": message.channel, "is_ephemeral": False},
            "trigger_id": f"{next(self._seq)}.{secrets.token_hex(4)}",
            "team": {"id": "T0EMULATOR", "domain": "emulator"},
            "channel": {"id": message.channel, "name": "alerts"},
            "message": _shown(message),
            "response_url": hook,
            "actions": [{"action_id": action_id, "block_id": "alert_agent_ack",
                         "text": {"type": "plain_text", "text": "Acknowledge"},
                         "value": value, "type": "button",
                         "action_ts": f"{time.time():.6f}"}],
        }

    def signed(self, payload: dict[str, Any], *, at: float | None = None,
               secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of the request Slack makes for ``payload``, signed at ``at``
        (default now) with ``secret`` (default the app's)."""
        body = urlencode({"payload": orjson.dumps(payload).decode()}).encode()
        ts = str(int(time.time() if at is None else at))
        return body, {"Content-Type": "application/x-www-form-urlencoded",
                      "X-Slack-Request-Timestamp": ts,
                      "X-Slack-Signature": sign(secret or self.signing_secret, ts, body)}

    async def click(self, url: str, message: SlackMessage, *, user_id: str,
                    user_name: str = "ana", at: float | None = None,
                    headers: dict[str, str] | None = None) -> int:
        """Post a signed click of ``message``'s Acknowledge button by ``user_id`` to ``url``
        (the agent's /hooks/slack/interactive), as Slack does; the HTTP status it answered.
        ``headers`` replace the signed ones (a forged or missing signature)."""
        body, signed = self.signed(self.interaction(message, user_id=user_id,
                                                    user_name=user_name), at=at)
        async with aiohttp.ClientSession() as session, session.post(
                url, data=body, headers={**signed, **(headers or {})},
                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            await resp.read()
            return resp.status

    async def _response_url(self, request: web.Request, raw: bytes) -> web.Response:
        """Slack's response_url: JSON with ``text`` (or blocks), answered ``ok``."""
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="no_text")
        self.responses.append(Response(request.path, body, request.content_type))
        return web.Response(text="ok")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path.startswith("/actions/") and request.method == "POST":
            return await self._response_url(request, raw)
        method = request.path.removeprefix("/api/")
        if not request.path.startswith("/api/") or method not in METHODS:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        if request.method != "POST":
            return web.json_response({"ok": False, "error": "invalid_post_type"})
        args, error = _arguments(request, raw)
        channel = args.get("channel") if isinstance(args.get("channel"), str) else None
        failure = self._failure(method)
        if failure is not None:
            self.requests.append(Request(method, time.monotonic(), channel, failure.mode))
            return await self._answer_failure(request, failure)
        if error is None:
            error = self._auth(request, args)
        answer: dict[str, Any] | None = None
        if error is None:
            answer, error = getattr(self, "_" + method.replace(".", "_"))(args)
        self.requests.append(Request(method, time.monotonic(), channel, error or "ok"))
        if error is not None:
            return _json({"ok": False, "error": error})
        assert answer is not None
        return _json({"ok": True, **answer})

    def _auth(self, request: web.Request, args: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else args.get("token")
        if not given:
            return "not_authed"
        return None if given == self.token else "invalid_auth"

    def _resolve(self, channel: Any, *, ids_only: bool = False) -> tuple[str | None, str | None]:
        """(channel id, None) or (None, error) as Slack answers for ``channel``."""
        if not isinstance(channel, str) or not channel:
            return None, "channel_not_found"
        if channel.startswith("#"):
            if ids_only or channel[1:] not in self.channels:
                return None, "channel_not_found"
            cid = self.channels[channel[1:]]
        elif channel[0] in "UW" and not ids_only:  # a user: the bot's DM with them
            cid = "D" + channel[1:]
            self.messages.setdefault(cid, [])
        elif channel in self.channels.values() or channel in self.messages:
            cid = channel
        else:
            return None, "channel_not_found"
        if cid in self.archived:
            return None, "is_archived"
        if cid in self.not_in:
            return None, "not_in_channel"
        return cid, None

    def _content(self, args: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None]:
        text = args.get("text") or ""
        blocks = args.get("blocks") or []
        if not isinstance(text, str) or not isinstance(blocks, list):
            return "", [], "invalid_arguments"
        if not text and not blocks:
            return "", [], "no_text"
        if len(text) > TEXT_LIMIT:
            return "", [], "msg_too_long"
        if not _blocks_ok(blocks):
            return "", [], "invalid_blocks"
        return text, blocks, None

    def _find(self, args: dict[str, Any]) -> tuple[SlackMessage | None, str | None]:
        cid, error = self._resolve(args.get("channel"), ids_only=True)
        if cid is None:
            return None, error
        ts = args.get("ts")
        for m in self.messages.get(cid, []):
            if m.ts == ts and not m.deleted:
                return m, None
        return None, "message_not_found"

    def _chat_postMessage(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None,
                                                               str | None]:
        cid, error = self._resolve(args.get("channel"))
        if cid is None:
            return None, error
        text, blocks, error = self._content(args)
        if error is not None:
            return None, error
        thread_ts = args.get("thread_ts") or None
        ts = f"{int(time.time())}.{next(self._seq):06d}"
        msg = SlackMessage(ts, cid, text, blocks, thread_ts if isinstance(thread_ts, str)
                           else None)
        self.messages.setdefault(cid, []).append(msg)
        return {"channel": cid, "ts": ts, "message": _shown(msg)}, None

    def _chat_update(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        msg, error = self._find(args)
        if msg is None:
            return None, error
        text, blocks, error = self._content(args)
        if error is not None:
            return None, error
        msg.text, msg.blocks, msg.edits = text, blocks, msg.edits + 1
        return {"channel": msg.channel, "ts": msg.ts, "text": text,
                "message": _shown(msg)}, None

    def _chat_delete(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        msg, error = self._find(args)
        if msg is None:
            return None, error
        msg.deleted = True
        return {"channel": msg.channel, "ts": msg.ts}, None

    # --- failures ---------------------------------------------------------------------

    def _failure(self, method: str) -> _Failure | None:
        now = time.monotonic()
        for f in list(self._failures):
            if f.until is not None and now >= f.until:
                self._failures.remove(f)
                continue
            if f.methods is not None and method not in f.methods:
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0:
                    self._failures.remove(f)
            return f
        return None

    async def _answer_failure(self, request: web.Request,
                              f: _Failure) -> web.StreamResponse:
        headers = {} if f.retry_after is None else {"Retry-After": str(f.retry_after)}
        if f.mode == "ratelimited":
            return _json({"ok": False, "error": "ratelimited"}, status=429, headers=headers)
        if f.mode == "ratelimited_200":
            return _json({"ok": False, "error": "ratelimited"}, headers=headers)
        if f.mode == "5xx":
            return web.Response(status=503, text="<html>Service Unavailable</html>",
                                content_type="text/html")
        if f.mode == "stall":
            await asyncio.wait([asyncio.ensure_future(self._release.wait())], timeout=STALL)
            return _json({"ok": False, "error": "request_timeout"})
        if f.mode == "malformed":  # promise a body, send part of it, hang up
            return await truncated(request, b'{"ok": tr')
        if f.mode == "garbage":
            return web.Response(status=200, text="<html>proxy error</html>",
                                content_type="text/html")
        return _json({"ok": False, "error": f.mode}, headers=headers)


def _json(body: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json", charset="utf-8")


def _shown(msg: SlackMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "subtype": "bot_message", "text": msg.text,
                           "bot_id": "B0EMULATOR", "blocks": msg.blocks, "ts": msg.ts}
    if msg.thread_ts:
        out["thread_ts"] = msg.thread_ts
    return out


def _arguments(request: web.Request, raw: bytes) -> tuple[dict[str, Any], str | None]:
    """The call's arguments from a JSON or form body, or Slack's error for the body."""
    ctype = request.content_type
    if not raw:
        return {}, None
    if ctype == "application/json":
        try:
            args = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}, "invalid_json"
        return (args, None) if isinstance(args, dict) else ({}, "invalid_json")
    if ctype == "application/x-www-form-urlencoded":
        try:
            form: dict[str, Any] = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            return {}, "invalid_form_data"
        if "blocks" in form:
            try:
                form["blocks"] = orjson.loads(form["blocks"])
            except orjson.JSONDecodeError:
                return {}, "invalid_blocks_format"
        return form, None
    if not request.headers.get("Content-Type"):
        return {}, "missing_post_type"
    return {}, "invalid_post_type"


def _text_of(obj: Any) -> str | None:
    if isinstance(obj, dict) and obj.get("type") in ("plain_text", "mrkdwn") \
            and isinstance(obj.get("text"), str):
        return str(obj["text"])
    return None


def _blocks_ok(blocks: list[Any]) -> bool:
    if len(blocks) > MAX_BLOCKS:
        return False
    for b in blocks:
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "header":
            text = _text_of(b.get("text"))
            if text is None or b["text"]["type"] != "plain_text" or \
                    not 1 <= len(text) <= HEADER_LIMIT:
                return False
        elif kind == "section":
            text = _text_of(b.get("text"))
            if text is None or not text.strip() or len(text) > SECTION_LIMIT:
                return False
        elif kind == "context":
            elements = b.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10 or any(
                    _text_of(e) is None or len(_text_of(e) or "") > SECTION_LIMIT
                    for e in elements):
                return False
        elif kind == "actions":
            if not _actions_ok(b.get("elements")):
                return False
        elif kind != "divider":
            return False
    return True


def _actions_ok(elements: Any) -> bool:
    """Buttons as Block Kit allows them: 1..25 elements, a plain_text label up to 75
    characters, an action_id up to 255, a value up to 2,000."""
    if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
        return False
    for e in elements:
        if not isinstance(e, dict) or e.get("type") != "button":
            return False
        label = _text_of(e.get("text"))
        if label is None or e["text"]["type"] != "plain_text" or not 1 <= len(label) <= 75:
            return False
        if not isinstance(e.get("action_id"), str) or not 1 <= len(e["action_id"]) <= 255:
            return False
        value = e.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            return False
    return True
