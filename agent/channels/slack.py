"""The Slack channel: Web API ``chat.postMessage`` with a bot token, Block Kit blocks plus the
``text`` fallback; ``chat.update`` edits a group's message in place, ``chat.delete`` retracts it.

Each Web API call is one request through the shared session (channels/http.py), not
``slack_sdk``: with an injected session the SDK ignores its own timeout, reads any reply whole,
and logs request bodies and URLs at debug; the thin call has the shared failure table, a
bounded read and redaction already.

Slack answers ``200 {"ok": false, "error": code}`` for most refusals; the code decides::

    ratelimited (or HTTP 429)                     retryable, rate_limited, Retry-After
    internal_error, fatal_error, request_timeout,
    service_unavailable, team_added_to_org        retryable, provider_unavailable
    channel_not_found                             permanent, invalid_recipient, scope recipient
    not_in_channel, is_archived                   permanent, provider_rejected, scope recipient
    invalid_auth, not_authed, account_inactive,
    token_revoked, token_expired, missing_scope   permanent, provider_rejected, scope channel
    msg_too_long and any other code               permanent, provider_rejected, scope message

A message over budget is posted as numbered parts: the first in the channel, the others as
replies in its thread (in order), and ``provider_ref`` names every part so an edit reaches each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from pydantic import Field, SecretStr

from agent.channels import http, slack_interactions
from agent.channels.ack import offers_ack
from agent.channels.base import (
    AddressError,
    BaseUrl,
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
from agent.channels.slack_blocks import TEXT_LIMIT, bodies
from agent.domain import FailureReason

# Slack's published limit is about one message a second per channel, with short bursts.
BURST = 3.0

_RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
_TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable",
                        "request_timeout", "team_added_to_org"})
_AUTH = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                   "token_expired", "missing_scope"})
_RECIPIENT = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
# chat.update refusals that a new message gets around (too old, gone, not ours to edit).
EDIT_REFUSED = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

_NAME = re.compile(r"#[^\s#@<>|&,]{1,80}")
_ID = re.compile(r"[CGDUW][A-Z0-9]{2,20}")
# A reply cut at http.MAX_REPLY_BYTES (Slack echoes the whole message back) is no longer JSON;
# Slack writes ``ok``, ``channel`` and ``ts`` first, so they are still read from its head.
_HEAD = {k: re.compile(rf'"{k}"\s*:\s*"([^"\\]{{1,100}})"'.encode())
         for k in ("channel", "ts", "error")}
_HEAD_OK = re.compile(rb'^\s*\{\s*"ok"\s*:\s*(true|false)')


class SlackSettings(ChannelSettings):
    """``channels.slack``."""

    enabled: bool = False
    bot_token: SecretStr | None = None
    bot_token_file: Path | None = None
    api_url: BaseUrl = "https://slack.com/api"
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Messages a second to one Slack channel (a token bucket per channel, burst 3).
    rate_per_second: float = Field(default=1.0, gt=0)
    # The Slack app's signing secret: with it, firing alerts carry an Acknowledge button whose
    # clicks arrive, signed, at POST /hooks/slack/interactive.
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None


class SlackRefused(PermanentDeliveryError):
    """Slack refused the call for good; ``code`` is its ``error``."""

    def __init__(self, code: str, method: str, reason: FailureReason, scope: ErrorScope,
                 http_status: int | None) -> None:
        super().__init__(reason, f"slack {method}: {code}", http_status=http_status,
                         scope=scope)
        self.code = code


def slack_error(code: str, method: str, reply: http.HttpReply) -> DeliveryError:
    """The DeliveryError for Slack's ``error`` code (see the module's table)."""
    details = f"slack {method}: {code}"
    if code in _RATE_LIMITED:
        return RetryableDeliveryError(FailureReason.RATE_LIMITED, details,
                                      parse_retry_after(reply.headers.get("Retry-After")),
                                      http_status=reply.status)
    if code in _TRANSIENT:
        return RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE, details,
                                      http_status=reply.status)
    if code in _AUTH:
        return SlackRefused(code, method, FailureReason.PROVIDER_REJECTED, ErrorScope.CHANNEL,
                            reply.status)
    if code in _RECIPIENT:
        reason = (FailureReason.INVALID_RECIPIENT if code == "channel_not_found"
                  else FailureReason.PROVIDER_REJECTED)
        return SlackRefused(code, method, reason, ErrorScope.RECIPIENT, reply.status)
    return SlackRefused(code, method, FailureReason.PROVIDER_REJECTED, ErrorScope.MESSAGE,
                        reply.status)


def read_reply(body: bytes) -> dict[str, Any] | None:
    """The JSON object of a reply, or what its head says when it was cut; None when neither."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        return data
    if data is not None or len(body) < http.MAX_REPLY_BYTES:
        return None
    ok = _HEAD_OK.match(body)
    if ok is None:
        return None
    head: dict[str, Any] = {"ok": ok.group(1) == b"true"}
    for key, pattern in _HEAD.items():
        found = pattern.search(body)
        if found:
            head[key] = found.group(1).decode(errors="replace")
    return head


def _usable(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """``ref`` when it names a live Slack message (channel id and ts), else None."""
    if not ref or ref.get("deleted"):
        return None
    if isinstance(ref.get("channel"), str) and isinstance(ref.get("ts"), str):
        return ref
    return None


def _parts(ref: dict[str, Any]) -> list[str]:
    parts = ref.get("parts")
    if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
        return parts
    return [ref["ts"]]


class SlackChannel:
    name = "slack"
    local = False
    limits = Limits(max_text_chars=TEXT_LIMIT, can_edit=True, can_delete=True,
                    overflow="split")

    def __init__(self, config: SlackSettings, token: str,
                 session: Callable[[], aiohttp.ClientSession], logger: Any,
                 signing_secret: str | None = None) -> None:
        self._api = config.api_url
        self._signing = signing_secret.encode() if signing_secret else None
        self._rate = config.rate_per_second
        self._session = session
        self._log = logger
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        self._headers = {"Authorization": f"Bearer {token}",
                         "Content-Type": "application/json; charset=utf-8"}
        self._redact = http.Redactor([token])

    @property
    def interactive(self) -> bool:
        """Whether clicks can be verified (a signing secret is set): only then are buttons
        offered and POST /hooks/slack/interactive served."""
        return self._signing is not None

    def interaction_problem(self, timestamp: str | None, signature: str | None, body: bytes,
                            now: float) -> str | None:
        """Why an interactivity request is not signed by this Slack app (see
        slack_interactions.signature_problem), or None when it is."""
        if self._signing is None:
            return slack_interactions.MISSING_SIGNATURE
        return slack_interactions.signature_problem(self._signing, timestamp, signature, body,
                                                    now)

    async def respond(self, response_url: str, text: str) -> None:
        """An ephemeral answer, seen only by the user who clicked, through the interaction's
        ``response_url``: only on hooks.slack.com (or the configured api_url's host), never
        to an address the payload names otherwise. Raises DeliveryError."""
        if not slack_interactions.response_url_ok(response_url, self._api):
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         "slack response_url is not on hooks.slack.com")
        body = {"response_type": "ephemeral", "replace_original": False, "text": text}
        # response_url is itself a credential (it posts into the conversation): the Redactor
        # keeps every URL out of details.
        await http.call(self._session(), "POST", response_url, data=orjson.dumps(body),
                        headers={"Content-Type": "application/json; charset=utf-8"},
                        timeout=self._timeout, redact=self._redact)

    def validate_address(self, to: str) -> str:
        """``#channel-name``, or a channel, group or DM id (C…, G…, D…) or a user id (U…, W…)
        for a direct message."""
        require_text_address(to, max_chars=81)
        if _NAME.fullmatch(to) or _ID.fullmatch(to):
            return to
        raise AddressError("For the slack channel 'to' must be '#channel-name' or a Slack "
                           "channel, DM or user id (C…, G…, D…, U…, W…).")

    def destination_key(self, to: str) -> str:
        """One Slack channel: the dispatcher's per-destination caps apply to each."""
        return "slack:" + to

    def rates(self, to: str) -> Sequence[Rate]:
        """One bucket per Slack channel at ``rate_per_second`` (Slack: about 1 a second)."""
        return (Rate("slack:" + to, self._rate, BURST),)

    async def send(self, message: Message) -> DeliveryResult:
        try:
            self.validate_address(message.to)
        except AddressError as exc:  # a row queued before the check, or by hand
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, exc.message,
                                         scope=ErrorScope.RECIPIENT) from exc
        ref = _usable(message.replaces)
        if message.retract and message.status == "resolved":
            if ref is not None:
                return await self._retract(ref)
            if message.replaces and message.replaces.get("deleted"):
                # Retracted already (a resolved notification sent again): nothing to do.
                return DeliveryResult(provider_ref=message.replaces, http_status=None)
        ack = (slack_interactions.ack_button(message.notification_id)
               if self._signing is not None and offers_ack(message) else None)
        parts = bodies(message, message.overflow or self.limits.overflow, ack)
        if ref is not None and message.update == "edit":
            return await self._edit(message, ref, parts)
        if ref is not None and message.update == "thread":
            return await self._post(ref["channel"], parts,
                                    ref.get("thread_ts") or ref["ts"])
        return await self._post(message.to, parts, None)

    async def close(self) -> None:
        return None

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """One Web API call: Slack's answer when ``ok``, else the DeliveryError for it."""
        got: list[dict[str, Any]] = []

        def check(reply: http.HttpReply) -> None:
            if reply.status == 429 or reply.status >= 500:
                return  # the shared table: Retry-After, provider_unavailable
            data = read_reply(reply.body)
            if data is not None and data.get("ok") is False and isinstance(
                    data.get("error"), str):
                raise slack_error(data["error"][:100], method, reply)
            if 200 <= reply.status < 300:
                if data is None or data.get("ok") is not True:
                    raise RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE,
                                                 f"slack {method}: unexpected reply",
                                                 http_status=reply.status)
                got.append(data)

        reply = await http.call(self._session(), "POST", f"{self._api}/{method}",
                                data=orjson.dumps(body), headers=self._headers,
                                timeout=self._timeout, redact=self._redact, body_hook=check,
                                auth_scope=ErrorScope.CHANNEL)
        if not got:  # the table let a non-2xx through: it never does, but be sure
            raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                         f"slack {method}: HTTP {reply.status}",
                                         http_status=reply.status)
        return got[0]

    async def _post_one(self, channel: str, body: dict[str, Any],
                        thread_ts: str | None) -> tuple[str, str]:
        fields = {"channel": channel, **body, "unfurl_links": False, "unfurl_media": False}
        if thread_ts is not None:
            fields["thread_ts"] = thread_ts
        data = await self._call("chat.postMessage", fields)
        cid, ts = data.get("channel"), data.get("ts")
        if not isinstance(cid, str) or not isinstance(ts, str):
            raise RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE,
                                         "slack chat.postMessage: reply without channel/ts",
                                         http_status=200)
        return cid, ts

    async def _post(self, to: str, parts: list[dict[str, Any]],
                    thread_ts: str | None) -> DeliveryResult:
        """Post every part: the first to ``to`` (in ``thread_ts``'s thread when given), the
        rest as replies in the first's thread (or the same thread)."""
        cid, first = await self._post_one(to, parts[0], thread_ts)
        posted = [first]
        parent = thread_ts or first
        try:
            for body in parts[1:]:
                posted.append((await self._post_one(cid, body, parent))[1])
        except DeliveryError:
            # The retry posts every part again: take back what did go out, so the channel
            # does not show the first parts twice.
            await self._delete_quietly(cid, posted)
            raise
        return self._result(cid, posted, thread_ts)

    async def _edit(self, message: Message, ref: dict[str, Any],
                    parts: list[dict[str, Any]]) -> DeliveryResult:
        """Update each part in place; post the parts it did not have, delete the surplus. A
        refused edit of the first part posts a new message instead."""
        cid, old = ref["channel"], _parts(ref)
        thread_ts = ref.get("thread_ts") if isinstance(ref.get("thread_ts"), str) else None
        try:
            await self._call("chat.update", {"channel": cid, "ts": old[0], **parts[0]})
        except SlackRefused as exc:
            if exc.code not in EDIT_REFUSED:
                raise
            self._log.info("slack_edit_refused", notification_id=message.notification_id,
                           error=exc.code, fallback="new_message")
            return await self._post(message.to, parts, None)
        kept = [old[0]]
        parent = thread_ts or old[0]
        for i, body in enumerate(parts[1:], start=1):
            if i < len(old):
                try:
                    await self._call("chat.update", {"channel": cid, "ts": old[i], **body})
                    kept.append(old[i])
                    continue
                except SlackRefused as exc:
                    if exc.code not in EDIT_REFUSED:
                        raise
            kept.append((await self._post_one(cid, body, parent))[1])
        for ts in old[len(parts):]:
            await self._delete(cid, ts)
        return self._result(cid, kept, thread_ts)

    async def _retract(self, ref: dict[str, Any]) -> DeliveryResult:
        """Delete every part; one already gone counts as deleted."""
        cid, parts = ref["channel"], _parts(ref)
        for ts in parts:
            await self._delete(cid, ts)
        result = self._result(cid, parts, ref.get("thread_ts"))
        assert result.provider_ref is not None
        result.provider_ref["deleted"] = True
        return result

    async def _delete(self, channel: str, ts: str) -> None:
        try:
            await self._call("chat.delete", {"channel": channel, "ts": ts})
        except SlackRefused as exc:
            if exc.code != "message_not_found":
                raise

    async def _delete_quietly(self, channel: str, parts: list[str]) -> None:
        for ts in parts:
            try:
                await self._delete(channel, ts)
            except DeliveryError as exc:
                self._log.warning("slack_part_not_taken_back", error=exc.details)
                return

    @staticmethod
    def _result(channel: str, parts: list[str], thread_ts: Any) -> DeliveryResult:
        ref: dict[str, Any] = {"channel": channel, "ts": parts[0], "parts": parts}
        if isinstance(thread_ts, str):
            ref["thread_ts"] = thread_ts
        return DeliveryResult(provider_ref=ref, http_status=200)
