"""The Microsoft Teams channel: an Adaptive Card posted to a Workflows (Power Automate) webhook.

Office 365 connectors (incoming webhooks) were retired in 2026; a Teams channel now takes webhook
posts through a Workflows flow made from the template "Post to a channel when a webhook request
is received" (also listed as "Send webhook alerts to a channel"). The flow reads the Bot Framework
message shape and posts each attachment's card::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null, "content": <Adaptive Card>}]}

It answers ``202 Accepted`` (some flows ``200``, some with the body ``1``) before it runs: every
2xx is a delivery. The Teams connector refuses a message over about 28 KB ("Request Entity too
large", Microsoft Teams connector, known limitations) *inside* the flow, after the 202, so nobody
would learn of it: the size budget below is the only guard. Workflows can neither edit nor
delete a posted card (the flow answers no message id), so a later message of a group is a
follow-up card.

``to`` is an alias of ``channels.teams.webhooks`` (or of the file ``webhooks_file``): the URLs
carry a ``sig=`` signature, so they are secrets, kept out of the rule files, the API, failure
details and logs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import Field, SecretStr
from yarl import URL

from agent.channels import budget, http
from agent.channels.aliasfile import parse_alias_file
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    ChannelSettings,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    OverflowMode,
    PermanentDeliveryError,
    Rate,
    require_text_address,
)
from agent.domain import FailureReason

# The whole webhook payload, measured as sent (ASCII-escaped JSON, so a flow that re-escapes
# non-ASCII text cannot grow it): 1 KB under the connector's ~28 KB for what the flow adds.
MAX_PAYLOAD_BYTES = 27_000
# The flow posts as the Workflows bot: Teams limits a bot's posts per conversation (60 per
# 30 s, 1,800 an hour; Teams platform, "Rate limiting for bots") and the Teams connector
# throttles each connection; a card every two seconds, bursts of five, stays under both.
RATE_PER_SECOND = 0.5
RATE_BURST = 5.0
MAX_TITLE_CHARS = 300
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

# severity -> (marker, Adaptive Card colour); a resolved card is green whatever the severity.
_STYLE = {
    "critical": ("\N{LARGE RED CIRCLE}", "Attention"),
    "warning": ("\N{LARGE ORANGE CIRCLE}", "Warning"),
    "info": ("\N{LARGE BLUE CIRCLE}", "Accent"),
}
_RESOLVED = ("\N{WHITE HEAVY CHECK MARK}", "Good")
_OTHER = ("\N{MEDIUM WHITE CIRCLE}", "Default")


class TeamsSettings(ChannelSettings):
    """``channels.teams``."""

    enabled: bool = False
    # alias -> Workflows webhook URL (a secret: it carries the sig= signature)
    webhooks: dict[str, SecretStr] = {}
    # A YAML or JSON file mapping alias -> URL, instead of ``webhooks``.
    webhooks_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Cards a second to one webhook (a token bucket with bursts of 5): under Teams' limits for
    # posts to one conversation.
    rate_per_second: float = Field(default=RATE_PER_SECOND, gt=0)


# (inline value, file, setting) -> the secret or None; raises ChannelConfigError naming the
# setting (the registry's SecretResolver).
Secret = Callable[[SecretStr | None, Path | None, str], str | None]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(alias: str, url: str, where: str) -> str:
    """``url`` when it can be a Workflows webhook: https, or http on loopback (tests and local
    relays only: the URL's signature must not cross a network in clear). The message names
    the alias, never the URL."""
    try:
        parsed = URL(url)
    except ValueError:
        parsed = None
    if parsed is None or not parsed.host or parsed.scheme not in ("http", "https"):
        raise ChannelConfigError(f"{where}: the URL of webhook '{alias}' is not an http(s) URL")
    if parsed.scheme == "http" and not _is_loopback(parsed.host):
        raise ChannelConfigError(f"{where}: the URL of webhook '{alias}' must be https "
                                 "(http only on a loopback address)")
    return url


def resolve_webhooks(cfg: TeamsSettings, secret: Secret) -> dict[str, str]:
    """alias -> URL from ``webhooks`` or ``webhooks_file`` (not both), each checked. Raises
    ChannelConfigError naming the setting and alias, never a URL."""
    if cfg.webhooks and cfg.webhooks_file is not None:
        raise ChannelConfigError("webhooks and webhooks_file are both set; set only one of them")
    found: dict[str, str] = {}
    if cfg.webhooks_file is not None:
        where = "channels.teams.webhooks_file"
        text = secret(None, cfg.webhooks_file, "channels.teams.webhooks")
        found = parse_alias_file(text or "", where)
    else:
        where = "channels.teams.webhooks"
        for alias, value in cfg.webhooks.items():
            url = secret(value, None, f"channels.teams.webhooks.{alias}")
            if url is not None:
                found[alias] = url
    if not found:
        raise ChannelConfigError("enabled without a webhook: set channels.teams.webhooks "
                                 "(alias: URL) or channels.teams.webhooks_file")
    for alias, url in found.items():
        if not ALIAS.fullmatch(alias):
            # Named only when it cannot be a URL pasted as the key.
            named = f"'{alias}'" if len(alias) <= 64 and not set(alias) & set(":/?=&") \
                else "of a URL's shape"
            raise ChannelConfigError(f"{where}: alias {named} must be 1-64 letters, "
                                     "digits, '_', '.' or '-'")
        _check_url(alias, url.strip(), where)
    return {alias: url.strip() for alias, url in found.items()}


def _escaped_len(text: str) -> int:
    """Bytes of ``text`` inside an ASCII-escaped JSON string (what the payload carries)."""
    return len(json.dumps(text)) - 2


def _title(message: Message) -> tuple[str, str]:
    if message.status == "resolved":
        marker, colour = _RESOLVED
    else:
        marker, colour = _STYLE.get(message.severity, _OTHER)
    head = f"{marker} {message.severity.upper()}"
    if message.status == "resolved":
        head += " resolved"
    if message.subject:
        head += f": {message.subject}"
    if len(head) > MAX_TITLE_CHARS:
        head = head[:MAX_TITLE_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return head, colour


def card(message: Message, text: str) -> dict[str, Any]:
    """The Adaptive Card for ``text`` (one part of ``message``): a coloured title with a
    severity marker, the status, the text, and a button to ``message.link`` when set."""
    title, colour = _title(message)
    status = "Status: " + ("RESOLVED" if message.status == "resolved" else "FIRING")
    content: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
             "color": colour, "wrap": True},
            {"type": "TextBlock", "text": status, "isSubtle": True, "spacing": "None",
             "wrap": True},
            # One block for the whole text: its size is then exact to measure, and paragraphs
            # keep their line breaks.
            {"type": "TextBlock", "text": text, "wrap": True},
        ],
    }
    actions = []
    if message.ack_url:  # opens the link's page; its button acknowledges
        actions.append({"type": "Action.OpenUrl", "title": "Acknowledge",
                        "url": message.ack_url})
    if message.link:
        actions.append({"type": "Action.OpenUrl", "title": "Open in alert-agent",
                        "url": message.link})
    if actions:
        content["actions"] = actions
    return content


def payload(content: dict[str, Any]) -> bytes:
    """The webhook body carrying one card (ASCII-escaped JSON)."""
    return json.dumps(
        {"type": "message",
         "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None,
                          "content": content}]},
        separators=(",", ":"), ensure_ascii=True,
    ).encode()


def cards(message: Message, overflow: OverflowMode | None = None) -> list[bytes]:
    """The payloads to post for ``message``: one card, or several numbered ``(i/n)`` when the
    text is over budget and ``overflow`` is split (else one card, truncated with a marker and
    the link). Each is at most MAX_PAYLOAD_BYTES."""
    text = message.text if message.text.strip() else "(no text)"
    overhead = len(payload(card(message, "")))
    room = MAX_PAYLOAD_BYTES - overhead
    parts = budget.fit(text, room, overflow or TeamsChannel.limits.overflow,
                       link=message.link, measure=_escaped_len)
    return [payload(card(message, part)) for part in parts]


class TeamsChannel:
    name = "teams"
    local = False
    # No edit or delete through a webhook; a group's later messages are follow-up cards.
    limits = Limits(max_subject_chars=MAX_TITLE_CHARS, can_edit=False, can_delete=False,
                    overflow="split")

    def __init__(self, webhooks: Mapping[str, str], timeout_seconds: float,
                 session: Callable[[], aiohttp.ClientSession],
                 rate_per_second: float = RATE_PER_SECOND) -> None:
        self._webhooks = dict(webhooks)
        self._rate = rate_per_second
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        secrets: list[str] = []
        for url in self._webhooks.values():
            # The whole URL, its path (the flow id: a far side may echo it) and its sig.
            parsed = URL(url)
            secrets.extend([url, parsed.raw_path] if len(parsed.raw_path) > 1 else [url])
            secrets.extend(v for k, v in parsed.query.items() if k == "sig" and v)
        self._redact = http.Redactor(secrets)

    @classmethod
    def from_settings(cls, cfg: TeamsSettings, secret: Secret,
                      session: Callable[[], aiohttp.ClientSession]) -> TeamsChannel:
        """Built from ``channels.teams``; raises ChannelConfigError naming the setting."""
        return cls(resolve_webhooks(cfg, secret), cfg.timeout_seconds, session,
                   cfg.rate_per_second)

    def validate_address(self, to: str) -> str:
        """An alias of ``channels.teams.webhooks``."""
        require_text_address(to, max_chars=64)
        if to not in self._webhooks:
            known = ", ".join(sorted(self._webhooks))
            raise AddressError(f"For the teams channel 'to' must be a webhook alias of "
                               f"channels.teams.webhooks (one of: {known}).")
        return to

    def destination_key(self, to: str) -> str:
        """One destination per webhook (one flow, one Teams channel)."""
        return f"teams:{to}"

    def rates(self, to: str) -> Sequence[Rate]:
        """One bucket per webhook: ``rate_per_second`` (one card every two seconds unless
        set), bursts of five."""
        return (Rate(f"teams:{to}", self._rate, RATE_BURST),)

    async def send(self, message: Message) -> DeliveryResult:
        url = self._webhooks.get(message.to)
        if url is None:  # queued before the alias left the settings
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         f"no teams webhook alias '{message.to[:64]}'",
                                         scope=ErrorScope.RECIPIENT)
        bodies = cards(message, message.overflow)
        status = 0
        # In order, one at a time: a failure on a later part retries the whole message (the
        # first parts then arrive twice; at-least-once, as everywhere).
        for body in bodies:
            status = await self._post(url, body)
        # The webhook names no message: what was posted is all there is to keep.
        return DeliveryResult(provider_ref={"alias": message.to, "cards": len(bodies),
                                            "http_status": status},
                              http_status=status)

    async def _post(self, url: str, body: bytes) -> int:
        try:
            reply = await http.call(
                self._session(), "POST", url, data=body,
                headers={"Content-Type": "application/json"}, timeout=self._timeout,
                redact=self._redact, auth_scope=ErrorScope.RECIPIENT,
            )
        except PermanentDeliveryError as exc:
            if exc.http_status in (403, 404, 410):  # the flow is gone or off: this alias only
                raise PermanentDeliveryError(exc.reason, exc.details, http_status=exc.http_status,
                                             scope=ErrorScope.RECIPIENT) from exc
            raise
        return reply.status

    async def close(self) -> None:
        return None
