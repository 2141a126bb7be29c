"""The Telegram channel: Bot API ``sendMessage`` with ``parse_mode=HTML``, edits in place with
``editMessageText``, retracts with ``deleteMessage``.

A thin call through the shared aiohttp session (agent/channels/http.py) rather than aiogram or
python-telegram-bot: neither takes our session and keeps our failure table (aiogram brings its own
session and exception tree, python-telegram-bot speaks httpx). The bot token sits in the URL path
(``{api_url}/bot<token>/<method>``), so every detail and log line goes through the Redactor.

The rendered text is plain text: it is fitted to Telegram's 4,096 characters (UTF-16 code units,
counted after entity parsing, so markup is free) by budget.py first, and each part is escaped after,
so a cut never lands inside an entity and no value can open a tag.

Answers are ``{"ok": false, "error_code", "description", "parameters"}``::

    429                          retryable, rate_limited, parameters.retry_after (else Retry-After)
    5xx                          retryable, provider_unavailable
    401, 404 (the bot's token)   permanent, provider_rejected, scope channel (pauses the channel)
    403 (bot blocked, kicked)    permanent, provider_rejected, scope recipient
    400 chat not found           permanent, invalid_recipient, scope recipient
    400 migrate_to_chat_id       the group became a supergroup: sent there at once, remembered
    other 4xx                    permanent, provider_rejected (this message)
"""

from __future__ import annotations

import hashlib
import html
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import Field, SecretStr

from agent import addresses
from agent.channels import budget, http, telegram_updates
from agent.channels.ack import offers_ack
from agent.channels.base import (
    BaseUrl,
    ChannelConfigError,
    ChannelSettings,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    Rate,
    RetryableDeliveryError,
    parse_retry_after,
    require_text_address,
)
from agent.domain import FailureReason

API_URL = "https://api.telegram.org"
MAX_TEXT_UNITS = 4096  # UTF-16 code units of the text after entity parsing
MAX_SUBJECT_CHARS = 256
# Retries of a split message resume after the parts already posted; this many notifications'
# progress is kept (a cache: after a restart a retry posts every part again).
MAX_PROGRESS = 1024
_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")
_CHAT_ID = addresses.TELEGRAM_CHAT_ID
MARKERS = {"critical": "\U0001f534", "warning": "\U0001f7e0", "info": "\U0001f535"}
RESOLVED_MARKER = "\u2705"
OTHER_MARKER = "\u26aa"
# Telegram's descriptions (lower-cased) the edit, reply and delete paths act on.
NOT_MODIFIED = "message is not modified"
EDIT_REFUSED = ("message to edit not found", "message can't be edited")
DELETE_GONE = "message to delete not found"
DELETE_REFUSED = "message can't be deleted"
CHAT_NOT_FOUND = "chat not found"


class TelegramSettings(ChannelSettings):
    """``channels.telegram``."""

    enabled: bool = False
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    api_url: BaseUrl = API_URL
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Telegram's published limits: about 30 messages a second per bot, one a second per chat,
    # 20 a minute per group or channel.
    rate_per_second: float = Field(default=30.0, gt=0)
    chat_rate_per_second: float = Field(default=1.0, gt=0)
    group_rate_per_minute: float = Field(default=20.0, gt=0)
    # setWebhook's secret_token: with it, firing alerts carry an Acknowledge button whose
    # presses arrive at POST /hooks/telegram with X-Telegram-Bot-Api-Secret-Token.
    webhook_secret: SecretStr | None = None
    webhook_secret_file: Path | None = None


class _ApiError(Exception):
    """A refusal of the Bot API, before it is classified (the edit and delete paths take some
    refusals for success or for a reason to post anew)."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any],
                 retry_after_header: str | None) -> None:
        super().__init__(f"HTTP {status}: {description}")
        self.status = status
        self.description = description
        self.parameters = parameters
        self.retry_after_header = retry_after_header

    def says(self, *texts: str) -> bool:
        low = self.description.lower()
        return any(t in low for t in texts)

    @property
    def migrate_to(self) -> int | None:
        new = self.parameters.get("migrate_to_chat_id")
        return new if isinstance(new, int) and not isinstance(new, bool) else None


def _check(redact: http.Redactor) -> http.BodyHook:
    """The body hook: a success must say ``ok``; any other answer becomes an _ApiError."""

    def hook(reply: http.HttpReply) -> None:
        body = reply.json()
        if 200 <= reply.status < 300:
            if not (isinstance(body, dict) and body.get("ok") is True and "result" in body):
                raise RetryableDeliveryError(FailureReason.NETWORK_ERROR,
                                             "malformed answer from the Bot API",
                                             http_status=reply.status)
            return
        if isinstance(body, dict) and isinstance(body.get("description"), str):
            description = body["description"]
        else:
            description = reply.body[:200].decode(errors="replace")
        params = body.get("parameters") if isinstance(body, dict) else None
        raise _ApiError(reply.status, redact(description)[:200],
                        params if isinstance(params, dict) else {},
                        reply.headers.get("Retry-After"))

    return hook


def classify(err: _ApiError) -> DeliveryError:
    """The delivery error for a refusal of the Bot API (the table in the module docstring)."""
    details, status = str(err), err.status
    if status == 429:
        ra = err.parameters.get("retry_after")
        retry_after = (parse_retry_after(str(ra)) if isinstance(ra, int | float)
                       else parse_retry_after(err.retry_after_header))
        return RetryableDeliveryError(FailureReason.RATE_LIMITED, details, retry_after,
                                      http_status=status)
    if status >= 500 or status in (408, 425):
        return RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE, details,
                                      parse_retry_after(err.retry_after_header),
                                      http_status=status)
    if status in (401, 404):  # the bot's token: every message would fail alike
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                      http_status=status, scope=ErrorScope.CHANNEL)
    if status == 403:
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                      http_status=status, scope=ErrorScope.RECIPIENT)
    if status == 400 and err.says(CHAT_NOT_FOUND):
        return PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, details,
                                      http_status=status, scope=ErrorScope.RECIPIENT)
    return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details, http_status=status)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_SUBJECT_CHARS else line[:MAX_SUBJECT_CHARS - 1] + "\u2026"


def render(message: Message) -> list[str]:
    """The HTML texts to send for ``message``: a first line with the severity marker and the
    subject in bold, the text under it, split (or truncated) to the budget, every part
    escaped."""
    marker = RESOLVED_MARKER if message.status == "resolved" else MARKERS.get(
        message.severity, OTHER_MARKER)
    title = _one_line(message.subject or "") or message.severity
    header = f"{marker} {title}"
    plain = f"{header}\n{message.text}" if message.text.strip() else header
    mode = message.overflow or TelegramChannel.limits.overflow
    parts = budget.fit(plain, MAX_TEXT_UNITS, mode, link=message.link,
                       measure=budget.utf16_units)
    out = [html.escape(p, quote=False) for p in parts]
    first = parts[0]
    at = first.find(header)
    if at >= 0 and "\n" not in first[:at].rstrip("\n"):  # the header line, after any label
        start = at + len(marker) + 1
        end = at + len(header)
        out[0] = (html.escape(first[:start], quote=False) + "<b>"
                  + html.escape(first[start:end], quote=False) + "</b>"
                  + html.escape(first[end:], quote=False))
    return out


def _digest(texts: Sequence[str]) -> str:
    return hashlib.sha256(orjson.dumps(list(texts))).hexdigest()


class TelegramChannel:
    name = "telegram"
    local = False
    # No text limit for callers: the channel fits any text to Telegram's itself (split).
    limits = Limits(overflow="split", can_edit=True, can_delete=True)

    def __init__(self, config: TelegramSettings, token: str,
                 session: Callable[[], aiohttp.ClientSession], logger: Any,
                 webhook_secret: str | None = None) -> None:
        self._base = f"{config.api_url}/bot{token}/"
        self._webhook_secret = webhook_secret
        self._session = session
        self._log = logger
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        self._redact = http.Redactor([token, webhook_secret])
        self._hook = _check(self._redact)
        self._bot_rate = config.rate_per_second
        self._chat_rate = config.chat_rate_per_second
        self._group_rate = config.group_rate_per_minute / 60.0
        # A group that became a supergroup: old chat id -> new one, for later sends.
        self._migrated: dict[str, int] = {}
        # notification id -> (digest of the texts, the chat, message ids of the parts posted).
        self._progress: OrderedDict[str, tuple[str, int | str, list[int]]] = OrderedDict()

    # -- addresses and limits -------------------------------------------------------------

    def validate_address(self, to: str) -> str:
        """A chat id (an integer; ``-100…`` for supergroups and channels) or ``@username``."""
        require_text_address(to, max_chars=64)
        return addresses.telegram_chat(to)

    def destination_key(self, to: str) -> str:
        """One destination per chat."""
        return f"telegram:{to}"

    def rates(self, to: str) -> Sequence[Rate]:
        """The bot's bucket, and the chat's: one a second for a private chat, 20 a minute for a
        group or channel (a negative id or an @username)."""
        private = _CHAT_ID.fullmatch(to) is not None and not to.startswith("-")
        return (Rate("telegram", self._bot_rate),
                Rate(f"telegram:{to}", self._chat_rate if private else self._group_rate))

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: Message) -> DeliveryResult:
        texts = render(message)
        markup = (telegram_updates.ack_keyboard(message.notification_id)
                  if self._webhook_secret is not None and offers_ack(message) else None)
        ref = _parts_of(message.replaces)
        if ref is not None:
            chat, parts = ref
            if message.retract and message.status == "resolved":
                return await self._retract(chat, parts, texts)
            if message.update == "edit":
                edited = await self._edit(message.notification_id, chat, parts, texts, markup)
                if edited is not None:
                    return edited
            elif message.update == "thread":
                return await self._post(message.notification_id, chat, texts,
                                        reply_to=parts[0], markup=markup)
        return await self._post(message.notification_id, self._chat(message.to), texts,
                                markup=markup)

    def _chat(self, to: str) -> int | str:
        if to in self._migrated:
            return self._migrated[to]
        return int(to) if _CHAT_ID.fullmatch(to) else to

    async def _post(self, nid: str, chat: int | str, texts: Sequence[str], *,
                    reply_to: int | None = None, first_index: int = 0,
                    markup: dict[str, Any] | None = None) -> DeliveryResult:
        """Post ``texts`` as new messages; a retry of the same notification resumes after the
        parts already posted (in the chat they went to, should it have migrated since).
        ``markup`` (the Acknowledge keyboard) goes on the first part."""
        key = f"{nid}:{first_index}"
        digest = _digest(texts)
        done = self._progress.get(key)
        ids: list[int] = []
        if done is not None and done[0] == digest:
            chat, ids = done[1], list(done[2])
        for text in texts[len(ids):]:
            payload: dict[str, Any] = {"chat_id": chat, "text": text, "parse_mode": "HTML",
                                       "link_preview_options": {"is_disabled": True}}
            if reply_to is not None:
                payload["reply_parameters"] = {"message_id": reply_to,
                                               "allow_sending_without_reply": True}
            if markup is not None and not ids:
                payload["reply_markup"] = markup
            try:
                result = await self._send_message(chat, payload)
                ids.append(_message_id(result))
            except DeliveryError:
                if ids:
                    self._remember(key, (digest, chat, ids))
                raise
            chat = _chat_of(result, chat)
        self._progress.pop(key, None)
        return DeliveryResult(provider_ref={"chat_id": chat, "message_id": ids[0], "parts": ids},
                              http_status=200)

    async def _send_message(self, chat: int | str, payload: dict[str, Any]) -> Any:
        try:
            return await self._api("sendMessage", payload)
        except _ApiError as err:
            new = err.migrate_to
            if new is None:
                raise classify(err) from None
        # The group became a supergroup: deliver there now and from now on.
        self._log.warning("telegram_chat_migrated", old_chat_id=chat, new_chat_id=new)
        self._migrated[str(chat)] = new
        try:
            return await self._api("sendMessage", {**payload, "chat_id": new})
        except _ApiError as err:
            raise classify(err) from None

    async def _edit(self, nid: str, chat: int | str, parts: list[int],
                    texts: Sequence[str],
                    markup: dict[str, Any] | None = None) -> DeliveryResult | None:
        """Edit each part in place; more parts now are posted, fewer delete the surplus. None
        when Telegram refuses the edit (too old, deleted): the caller posts anew. The first
        part gets ``markup``; an edit without it takes the keyboard away (Telegram drops the
        markup an edit does not repeat)."""
        for i, (message_id, text) in enumerate(zip(parts, texts, strict=False)):
            payload: dict[str, Any] = {
                "chat_id": chat, "message_id": message_id, "text": text,
                "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}
            if markup is not None and i == 0:
                payload["reply_markup"] = markup
            try:
                await self._api("editMessageText", payload)
            except _ApiError as err:
                if err.says(NOT_MODIFIED):
                    continue
                if err.says(*EDIT_REFUSED) or err.migrate_to is not None:
                    return None
                raise classify(err) from None
        ids = parts[:len(texts)]
        if len(texts) > len(parts):
            extra = await self._post(nid, chat, texts[len(parts):], first_index=len(parts))
            assert extra.provider_ref is not None
            ids += extra.provider_ref["parts"]
        for message_id in parts[len(texts):]:
            await self._delete(chat, message_id)
        return DeliveryResult(provider_ref={"chat_id": chat, "message_id": ids[0], "parts": ids},
                              http_status=200)

    async def _retract(self, chat: int | str, parts: list[int],
                       texts: Sequence[str]) -> DeliveryResult:
        """Delete every part (one already gone counts as deleted); a message too old to delete
        is edited to the resolved text instead."""
        kept: list[int] = []
        for message_id in parts:
            if not await self._delete(chat, message_id):
                kept.append(message_id)
        if kept:
            edited = await self._edit("", chat, kept, texts[:len(kept)])
            if edited is not None:
                return edited
        return DeliveryResult(provider_ref={"chat_id": chat, "message_id": parts[0],
                                            "parts": parts, "deleted": True},
                              http_status=200)

    async def _delete(self, chat: int | str, message_id: int) -> bool:
        """Delete one message: True when it is gone, False when Telegram keeps it."""
        try:
            await self._api("deleteMessage", {"chat_id": chat, "message_id": message_id})
        except _ApiError as err:
            if err.says(DELETE_GONE):
                return True
            if err.says(DELETE_REFUSED):
                return False
            raise classify(err) from None
        return True

    async def _api(self, method: str, payload: dict[str, Any]) -> Any:
        """One Bot API call: its ``result``; raises _ApiError for a refusal, a DeliveryError
        for anything else."""
        reply = await http.call(
            self._session(), "POST", self._base + method, data=orjson.dumps(payload),
            headers={"Content-Type": "application/json"}, timeout=self._timeout,
            redact=self._redact, body_hook=self._hook, auth_scope=ErrorScope.CHANNEL)
        return reply.json()["result"]

    # -- acknowledge buttons (their presses reach POST /hooks/telegram) -------------------

    @property
    def interactive(self) -> bool:
        """Whether button presses can be verified (a webhook secret is set): only then are
        buttons offered, the webhook registered and POST /hooks/telegram served."""
        return self._webhook_secret is not None

    def webhook_secret_ok(self, given: str | None) -> bool:
        """Whether ``given`` (the X-Telegram-Bot-Api-Secret-Token header) is the secret this
        agent registered with setWebhook; compared in constant time."""
        if self._webhook_secret is None:
            return False
        return telegram_updates.secret_ok(self._webhook_secret, given)

    async def answer_callback_query(self, query_id: str, text: str) -> None:
        """Answer a button press (the client shows a spinner until it is answered) with a
        short notice. Raises DeliveryError."""
        try:
            await self._api("answerCallbackQuery", {
                "callback_query_id": query_id,
                "text": text[:telegram_updates.MAX_ANSWER_CHARS]})
        except _ApiError as err:
            raise classify(err) from None

    async def set_webhook(self, url: str) -> None:
        """Register ``url`` as the bot's webhook with the secret token, for button presses and
        messages. Raises DeliveryError (ChannelConfigError without a secret)."""
        if self._webhook_secret is None:
            raise ChannelConfigError("channels.telegram.webhook_secret is not set")
        try:
            await self._api("setWebhook", {"url": url, "secret_token": self._webhook_secret,
                                           "allowed_updates": list(telegram_updates.ALLOWED)})
        except _ApiError as err:
            raise classify(err) from None

    def _remember(self, key: str, progress: tuple[str, int | str, list[int]]) -> None:
        self._progress[key] = progress
        self._progress.move_to_end(key)
        while len(self._progress) > MAX_PROGRESS:
            self._progress.popitem(last=False)

    async def close(self) -> None:
        return None


def _parts_of(ref: dict[str, Any] | None) -> tuple[int | str, list[int]] | None:
    """(chat, message ids) of an earlier delivery this one replaces; None when there is none
    to act on (no ref, a ref of another shape, or a message already retracted)."""
    if not ref or ref.get("deleted"):
        return None
    chat = ref.get("chat_id")
    parts = ref.get("parts") or ([ref["message_id"]] if "message_id" in ref else [])
    if not isinstance(chat, int | str) or isinstance(chat, bool) or not parts \
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        return None
    return chat, list(parts)


def _message_id(result: Any) -> int:
    mid = result.get("message_id") if isinstance(result, dict) else None
    if not isinstance(mid, int) or isinstance(mid, bool):
        raise RetryableDeliveryError(FailureReason.NETWORK_ERROR,
                                     "malformed answer from the Bot API: no message_id")
    return mid


def _chat_of(result: Any, sent_to: int | str) -> int | str:
    """The numeric chat id Telegram answered with (an @username resolves to one)."""
    chat = result.get("chat") if isinstance(result, dict) else None
    cid = chat.get("id") if isinstance(chat, dict) else None
    return cid if isinstance(cid, int) and not isinstance(cid, bool) else sent_to


def build_telegram(config: TelegramSettings,
                   secret: Callable[[SecretStr | None, Path | None, str], str | None],
                   session: Callable[[], aiohttp.ClientSession],
                   logger: Any) -> TelegramChannel:
    """The channel from its settings; a ChannelConfigError names the setting that is wrong."""
    token = secret(config.bot_token, config.bot_token_file, "channels.telegram.bot_token")
    if not token:
        raise ChannelConfigError("channels.telegram.bot_token (or bot_token_file) is required "
                                 "when the channel is enabled")
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise ChannelConfigError("channels.telegram.bot_token is not a bot token "
                                 "(<digits>:<letters, digits, _ and ->, as BotFather gives it)")
    secret_token = secret(config.webhook_secret, config.webhook_secret_file,
                          "channels.telegram.webhook_secret")
    if secret_token is not None and not telegram_updates.SECRET_TOKEN.fullmatch(secret_token):
        raise ChannelConfigError("channels.telegram.webhook_secret must be 1-256 characters of "
                                 "A-Z, a-z, 0-9, _ and - (Telegram's secret_token)")
    return TelegramChannel(config, token, session, logger, webhook_secret=secret_token)
