"""A Telegram Bot API emulator: ``/bot<token>/sendMessage``, ``editMessageText`` and
``deleteMessage``, checked as Telegram checks them, answering Telegram's own errors.

State: the chats that exist (private, group, supergroup, channel; an @username for some), blocked
chats, groups migrated to supergroups, and every message by chat id with its plain text after
entity parsing, its entities, edit count and deleted flag. Failures can be scripted for the next
N requests or for a duration: ``429`` (``parameters.retry_after`` in the body and a
``Retry-After`` header), ``5xx``, a stall, a malformed (truncated) body, ``403`` and ``400``.

Button presses: ``setWebhook`` (the URL, ``secret_token`` and ``allowed_updates`` are kept in
``emu.webhook``), ``emu.press(chat, message_id, user_id=...)`` builds the ``callback_query`` update
Telegram sends when a user presses a message's inline button, ``emu.deliver(update)`` posts it to
the webhook with ``X-Telegram-Bot-Api-Secret-Token``, and ``answerCallbackQuery`` answers are kept
in ``emu.answers`` (query id -> text). Messages keep their ``reply_markup``: an edit without one
takes the keyboard away, as in Telegram.

Use::

    emu = TelegramEmulator()
    emu.add_chat(42)                        # a private chat
    async with emu.serve() as base_url:     # api_url for the channel
        ...
    emu.messages[42][0].text
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.emulators.failure_plan import truncated

TOKEN = "123456789:AAEmulatorToken_secret-0123456789"
MAX_TEXT_UNITS = 4096
STALL_SECONDS = 5.0  # a stall never outlasts this, and ends at once when the emulator stops
_TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
ChatType = Literal["private", "group", "supergroup", "channel"]
FailureKind = Literal["429", "5xx", "stall", "malformed", "403", "400"]
# Tag -> entity type, as Telegram's HTML style lists them.
TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler", "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre",
    "blockquote": "blockquote", "tg-emoji": "custom_emoji", "tg-time": "date_time",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class EntityError(Exception):
    """Telegram's ``can't parse entities`` (the text after the colon)."""


class _Html(HTMLParser):
    """Telegram's HTML style: the listed tags only, balanced; ``<`` only as a tag; the four
    named entities and numeric ones decoded (another ``&name;`` stays as it is)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text: list[str] = []
        self.units = 0
        self.stack: list[tuple[str, int]] = []
        self.entities: list[dict[str, Any]] = []

    def _add(self, s: str) -> None:
        self.text.append(s)
        self.units += utf16(s)

    def handle_data(self, data: str) -> None:
        if "<" in data:  # html.parser takes "< 5" for text; Telegram wants a tag there
            raise EntityError("Unsupported start tag \"\" at byte offset "
                              f"{self.getpos()[1]}")
        self._add(data)

    def handle_entityref(self, name: str) -> None:
        self._add(NAMED_ENTITIES.get(name, f"&{name};"))

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in "xX" else int(name)
            self._add(chr(code))
        except (ValueError, OverflowError) as exc:
            raise EntityError(f"Unsupported HTML entity &#{name};") from exc

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            raise EntityError(f"Unsupported start tag \"{tag}\" at byte offset "
                              f"{self.getpos()[1]}")
        if tag == "span" and ("class", "tg-spoiler") not in attrs:
            raise EntityError("Tag \"span\" must have class \"tg-spoiler\"")
        self.stack.append((tag, self.units))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise EntityError(f"Unsupported start tag \"{tag}\" at byte offset {self.getpos()[1]}")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack:
            raise EntityError(f"Unexpected end tag at byte offset {self.getpos()[1]}")
        open_tag, start = self.stack.pop()
        if open_tag != tag:
            raise EntityError(f"Unmatched end tag at byte offset {self.getpos()[1]}, "
                              f"expected \"</{open_tag}>\", found \"</{tag}>\"")
        if self.units > start:
            self.entities.append({"type": TAGS[tag], "offset": start,
                                  "length": self.units - start})

    def handle_comment(self, data: str) -> None:
        raise EntityError("Unsupported start tag \"!--\"")

    def handle_decl(self, decl: str) -> None:
        raise EntityError("Unsupported start tag \"!\"")

    def handle_pi(self, data: str) -> None:
        raise EntityError("Unsupported start tag \"?\"")

    def unknown_decl(self, data: str) -> None:
        raise EntityError("Unsupported start tag \"![\"")


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, entities) of ``source`` in Telegram's HTML style; raises EntityError."""
    parser = _Html()
    parser.feed(source)
    parser.close()
    if parser.rawdata:  # an unterminated tag ("<b" at the end) stays unparsed
        raise EntityError("Unclosed start tag at byte offset "
                          f"{len(source.encode()) - len(parser.rawdata.encode())}")
    if parser.stack:
        raise EntityError("Can't find end tag corresponding to start tag "
                          f"\"{parser.stack[-1][0]}\"")
    return "".join(parser.text), sorted(parser.entities, key=lambda e: e["offset"])


@dataclass
class Chat:
    id: int
    type: ChatType
    username: str | None = None
    blocked: bool = False  # the user blocked the bot, or the bot was kicked
    migrated_to: int | None = None  # a group that became this supergroup

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.username:
            out["username"] = self.username
        if self.type != "private":
            out["title"] = f"chat {self.id}"
        return out


@dataclass
class StoredMessage:
    """One message as Telegram holds it."""

    message_id: int
    chat_id: int
    text: str  # after entity parsing
    entities: list[dict[str, Any]]
    html: str | None  # as sent, when parse_mode was HTML
    link_preview_disabled: bool
    reply_to: int | None
    sent_at: float
    edits: int = 0
    deleted: bool = False
    editable: bool = True
    deletable: bool = True
    reply_markup: dict[str, Any] | None = None

    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard's buttons, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [b for row in rows for b in row]


@dataclass
class Received:
    """One request, in arrival order."""

    method: str
    body: dict[str, Any]
    at: float  # time.monotonic()
    status: int = 0


@dataclass
class _Failure:
    kind: FailureKind
    remaining: int | None  # requests still to fail; None: until ``until``
    until: float | None
    retry_after: int
    description: str | None
    skip: int = 0  # requests to let through first


@dataclass
class TelegramEmulator:
    token: str = TOKEN
    # True: any numeric chat id exists (a chat of its sign's kind) the first time it is named.
    open_chats: bool = False
    chats: dict[int, Chat] = field(default_factory=dict)
    messages: dict[int, list[StoredMessage]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    # setWebhook's parameters, as last set (url, secret_token, allowed_updates).
    webhook: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)  # callback query id -> answer text
    _queries: set[str] = field(default_factory=set)  # pressed, not answered yet
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _failures: list[_Failure] = field(default_factory=list)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    # -- set-up -----------------------------------------------------------------------------

    def add_chat(self, chat_id: int, kind: ChatType | None = None,
                 username: str | None = None) -> Chat:
        """A chat the bot is in (private for a positive id, else a supergroup by default)."""
        chat = Chat(chat_id, kind or ("private" if chat_id > 0 else "supergroup"), username)
        self.chats[chat_id] = chat
        return chat

    def block(self, chat_id: int) -> None:
        """The user blocks the bot (sends answer 403)."""
        self.chats[chat_id].blocked = True

    def migrate(self, group_id: int, supergroup_id: int) -> None:
        """The group becomes a supergroup: sends to it answer 400 with migrate_to_chat_id."""
        self.chats.setdefault(group_id, Chat(group_id, "group")).migrated_to = supergroup_id
        self.add_chat(supergroup_id, "supergroup")

    def fail(self, kind: FailureKind, *, times: int | None = 1, seconds: float | None = None,
             retry_after: int = 3, description: str | None = None, after: int = 0) -> None:
        """Answer the next ``times`` requests (or all for ``seconds``) with ``kind``, once
        ``after`` requests went through."""
        until = None if seconds is None else time.monotonic() + seconds
        self._failures.append(_Failure(kind, None if seconds is not None else times, until,
                                       retry_after, description, after))

    def visible(self, chat_id: int) -> list[StoredMessage]:
        """The chat's messages not deleted, oldest first."""
        return [m for m in self.messages.get(chat_id, []) if not m.deleted]

    def find(self, chat_id: int, message_id: int) -> StoredMessage | None:
        for m in self.messages.get(chat_id, []):
            if m.message_id == message_id:
                return m
        return None

    def count(self, method: str | None = None) -> int:
        return sum(1 for r in self.requests if method is None or r.method == method)

    # -- button presses -------------------------------------------------------------------

    def press(self, chat_id: int, message_id: int, *, user_id: int, first_name: str = "Ana",
              username: str | None = "ana", data: str | None = None) -> dict[str, Any]:
        """The update Telegram sends when ``user_id`` presses the first inline button of the
        message (its callback_data unless ``data`` is given): a ``callback_query`` as the Bot
        API documents it (Update, CallbackQuery, User, Message)."""
        msg = self.find(chat_id, message_id)
        assert msg is not None, f"no message {message_id} in chat {chat_id}"
        if data is None:
            assert msg.buttons(), f"message {message_id} has no inline keyboard"
            data = msg.buttons()[0]["callback_data"]
        query_id = str(4_000_000_000_000_000 + next(self._ids))
        self._queries.add(query_id)
        sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name,
                                  "language_code": "en"}
        if username:
            sender["username"] = username
        chat = self.chats.get(chat_id) or Chat(chat_id, "private")
        return {"update_id": 100_000 + next(self._ids), "callback_query": {
            "id": query_id, "from": sender,
            "message": {**self._message_json(chat, msg),
                        **({"reply_markup": msg.reply_markup} if msg.reply_markup else {})},
            "chat_instance": str(-7_000_000_000 - chat_id), "data": data}}

    async def deliver(self, update: dict[str, Any], *, url: str | None = None,
                      secret: str | None = None, send_secret: bool = True) -> int:
        """Post ``update`` to the webhook (``url``, else the one registered) with the secret
        token header (``secret``, else the registered one; none when ``send_secret`` is
        False), as Telegram does; the HTTP status the webhook answered."""
        target = url or self.webhook.get("url")
        assert target, "no webhook registered"
        headers = {"Content-Type": "application/json"}
        token = secret if secret is not None else self.webhook.get("secret_token")
        if send_secret and token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with aiohttp.ClientSession() as session, session.post(
                target, data=orjson.dumps(update), headers=headers,
                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            await resp.read()
            return resp.status

    # -- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 (a random port); yields the base URL (the channel's api_url)."""
        server = TestServer(self.app(), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            self._release.set()
            await server.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        parts = request.path.strip("/").split("/")
        got = Received(parts[1] if len(parts) == 2 else "", {}, time.monotonic())
        self.requests.append(got)
        resp = await self._answer(request, parts, got, raw)
        got.status = resp.status
        return resp

    @staticmethod
    def _body(request: web.Request, raw: bytes) -> dict[str, Any] | None:
        """The parameters (query string, then a JSON or form body); None for bad JSON."""
        body: dict[str, Any] = dict(request.query)
        if raw and request.content_type == "application/json":
            try:
                loaded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return None
            if not isinstance(loaded, dict):
                return None
            body.update(loaded)
        elif raw:
            body.update(p.split("=", 1) for p in raw.decode(errors="replace").split("&")
                        if "=" in p)
        return body

    async def _answer(self, request: web.Request, parts: list[str], got: Received,
                      raw: bytes) -> web.StreamResponse:
        if len(parts) != 2 or not parts[0].startswith("bot") \
                or not _TOKEN.fullmatch(parts[0][3:]):
            return _error(404, "Not Found")
        if parts[0][3:] != self.token:
            return _error(401, "Unauthorized")
        handler = {"sendMessage": self._send, "editMessageText": self._edit,
                   "deleteMessage": self._delete, "answerCallbackQuery": self._answer_query,
                   "setWebhook": self._set_webhook}.get(got.method)
        if handler is None or request.method not in ("GET", "POST"):
            return _error(404, "Not Found")
        body = self._body(request, raw)
        got.body = body or {}
        failed = await self._scripted(request)
        if failed is not None:
            return failed
        if body is None:
            return _error(400, "Bad Request: can't parse JSON object")
        return handler(body)

    async def _scripted(self, request: web.Request) -> web.StreamResponse | None:
        now = time.monotonic()
        self._failures = [f for f in self._failures
                          if (f.remaining is None or f.remaining > 0)
                          and (f.until is None or f.until > now)]
        if not self._failures:
            return None
        f = self._failures[0]
        if f.skip > 0:
            f.skip -= 1
            return None
        if f.remaining is not None:
            f.remaining -= 1
        if f.kind == "429":
            return _error(429, f.description or f"Too Many Requests: retry after {f.retry_after}",
                          {"retry_after": f.retry_after},
                          headers={"Retry-After": str(f.retry_after)})
        if f.kind == "5xx":
            return _error(502, f.description or "Bad Gateway")
        if f.kind == "403":
            return _error(403, f.description or "Forbidden: bot was kicked from the group chat")
        if f.kind == "400":
            return _error(400, f.description or "Bad Request: message text is empty")
        if f.kind == "stall":
            await asyncio.wait([asyncio.ensure_future(self._release.wait())],
                               timeout=STALL_SECONDS)
            return _error(504, "Gateway Timeout")
        return await truncated(request, b'{"ok":tr')

    # -- methods ----------------------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> Chat | web.Response:
        raw = body.get("chat_id")
        if raw in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        chat: Chat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self.chats.values() if c.username
                         and c.username.lower() == raw[1:].lower()), None)
        else:
            try:
                chat = self.chats.get(int(raw))
                if chat is None and self.open_chats:
                    chat = self.add_chat(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat.migrated_to is not None:
            return _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                          {"migrate_to_chat_id": chat.migrated_to})
        if chat.blocked:
            return _error(403, "Forbidden: bot was blocked by the user" if chat.type == "private"
                          else "Forbidden: bot was kicked from the supergroup chat")
        return chat

    @staticmethod
    def _text(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None] | web.Response:
        source = body.get("text")
        if not isinstance(source, str) or not source.strip():
            return _error(400, "Bad Request: message text is empty")
        mode = body.get("parse_mode")
        if mode is None or mode == "":
            text, entities, html = source, [], None
        elif str(mode).lower() == "html":
            try:
                text, entities = parse_html(source)
            except EntityError as exc:
                return _error(400, f"Bad Request: can't parse entities: {exc}")
            html = source
        else:
            return _error(400, f"Bad Request: unsupported parse_mode {mode}")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16(text) > MAX_TEXT_UNITS:
            return _error(400, "Bad Request: message is too long")
        return text, entities, html

    def _send(self, body: dict[str, Any]) -> web.Response:
        chat = self._chat(body)
        if isinstance(chat, web.Response):
            return chat
        parsed = self._text(body)
        if isinstance(parsed, web.Response):
            return parsed
        text, entities, html = parsed
        reply = body.get("reply_parameters")
        reply_to: int | None = None
        if isinstance(reply, dict):
            target = self.find(chat.id, reply.get("message_id", 0))
            if target is not None and not target.deleted:
                reply_to = target.message_id
            elif not reply.get("allow_sending_without_reply"):
                return _error(400, "Bad Request: message to be replied not found")
        markup = _markup(body.get("reply_markup"))
        if isinstance(markup, web.Response):
            return markup
        preview = body.get("link_preview_options")
        stored = self.messages.setdefault(chat.id, [])
        msg = StoredMessage(
            message_id=(stored[-1].message_id + 1) if stored else 1, chat_id=chat.id, text=text,
            entities=entities, html=html, reply_to=reply_to, sent_at=time.time(),
            link_preview_disabled=isinstance(preview, dict) and bool(preview.get("is_disabled")),
            reply_markup=markup)
        stored.append(msg)
        return _ok(self._message_json(chat, msg))

    def _target(self, body: dict[str, Any], gone: str) -> tuple[Chat, StoredMessage] | web.Response:
        chat = self._chat(body)
        if isinstance(chat, web.Response):
            return chat
        try:
            mid = int(body.get("message_id", 0))
        except (TypeError, ValueError):
            return _error(400, "Bad Request: message identifier is not specified")
        msg = self.find(chat.id, mid)
        if msg is None or msg.deleted:
            return _error(400, gone)
        return chat, msg

    def _edit(self, body: dict[str, Any]) -> web.Response:
        found = self._target(body, "Bad Request: message to edit not found")
        if isinstance(found, web.Response):
            return found
        chat, msg = found
        parsed = self._text(body)
        if isinstance(parsed, web.Response):
            return parsed
        if not msg.editable:
            return _error(400, "Bad Request: message can't be edited")
        markup = _markup(body.get("reply_markup"))
        if isinstance(markup, web.Response):
            return markup
        text, entities, html = parsed
        if (text, entities, markup) == (msg.text, msg.entities, msg.reply_markup):
            return _error(400, "Bad Request: message is not modified: specified new message "
                          "content and reply markup are exactly the same as a current content "
                          "and reply markup of the message")
        msg.text, msg.entities, msg.html = text, entities, html
        msg.reply_markup = markup  # an edit without reply_markup takes the keyboard away
        msg.edits += 1
        return _ok({**self._message_json(chat, msg), "edit_date": int(time.time())})

    def _delete(self, body: dict[str, Any]) -> web.Response:
        found = self._target(body, "Bad Request: message to delete not found")
        if isinstance(found, web.Response):
            return found
        _chat, msg = found
        if not msg.deletable:
            return _error(400, "Bad Request: message can't be deleted")
        msg.deleted = True
        return _ok(True)

    def _answer_query(self, body: dict[str, Any]) -> web.Response:
        query_id = str(body.get("callback_query_id") or "")
        text = body.get("text", "")
        if not isinstance(text, str) or len(text) > 200:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        if query_id not in self._queries:
            return _error(400, "Bad Request: query is too old and response timeout expired or "
                          "query ID is invalid")
        self._queries.discard(query_id)
        self.answers[query_id] = text
        return _ok(True)

    def _set_webhook(self, body: dict[str, Any]) -> web.Response:
        url = body.get("url")
        if not isinstance(url, str):
            return _error(400, "Bad Request: bad webhook: Failed to resolve host")
        parts = urlsplit(url)
        # Telegram takes only https; the emulator also takes http to a loopback test server.
        if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost"):
            return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for "
                          "webhook")
        token = body.get("secret_token")
        if token is not None and not (isinstance(token, str) and _SECRET.fullmatch(token)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {"url": url, "secret_token": token,
                        "allowed_updates": body.get("allowed_updates")}
        return _ok(True)

    @staticmethod
    def _message_json(chat: Chat, msg: StoredMessage) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message_id": msg.message_id, "date": int(msg.sent_at), "chat": chat.json(),
            "from": {"id": 123456789, "is_bot": True, "first_name": "alert-agent"},
            "text": msg.text,
        }
        if msg.entities:
            out["entities"] = msg.entities
        return out


def _markup(value: Any) -> dict[str, Any] | None | web.Response:
    """An inline keyboard as Telegram checks it (callback_data 1-64 bytes), None when absent,
    else the 400 Telegram answers."""
    if value is None:
        return None
    rows = value.get("inline_keyboard") if isinstance(value, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return _error(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for button in (b for r in rows for b in r):
        data = button.get("callback_data") if isinstance(button, dict) else None
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            return _error(400, "Bad Request: can't parse inline keyboard button")
        if data is not None and not (isinstance(data, str)
                                     and 1 <= len(data.encode()) <= 64):
            return _error(400, "Bad Request: BUTTON_DATA_INVALID")
    return dict(value)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status, headers=headers)
