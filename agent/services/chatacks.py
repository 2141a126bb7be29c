"""Acknowledge buttons in chats: a Slack click or a Telegram press, verified, becomes a call to
the acknowledge service (services/acknowledge.py), and the person who clicked is told how it
went. The handlers (api/chathooks.py) only translate HTTP; the checks are here and in the
channels' pure modules (channels/slack_interactions.py, channels/telegram_updates.py).

A request that fails verification changes nothing: it raises Unverified (the handler answers
401), and is logged and counted (``alert_agent_ack_refused_total{reason="bad_signature"}``).

Slack wants its answer within 3 seconds: the click is acknowledged before the handler answers
(one store transaction), and a reply for the clicker only (refused, resolved, acknowledged
already) goes to the interaction's ``response_url`` in the background. The message itself is
edited by the acknowledge service, through the dispatcher, on every channel. Telegram shows a
spinner until the press is answered: answerCallbackQuery is called for every press, also in
the background, so a slow Bot API does not hold the webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from agent.channels.base import ChannelSender, DeliveryError
from agent.channels.slack import SlackChannel
from agent.channels.slack_interactions import parse_click
from agent.channels.telegram import TelegramChannel
from agent.channels.telegram_updates import parse_update
from agent.clock import Clock
from agent.observability import Metrics, get_logger
from agent.services.acknowledge import AcknowledgeService, Actor
from agent.services.errors import Conflict, Forbidden, NotFound, ServiceError

log = get_logger("chatacks")
WEBHOOK_PATH = "/hooks/telegram"
ACKNOWLEDGED = "Acknowledged"
NOT_ALLOWED = "You are not allowed to acknowledge this alert"
RESOLVED = "This alert is resolved: there is nothing left to acknowledge"
EXPIRED = "This button has expired: use the alert's latest message"
UNKNOWN = "This alert is no longer known to alert-agent"
FAILED = "The acknowledgment could not be recorded; try again"


class Unverified(Exception):
    """The request is not the provider's: ``problem`` says why (for the log, never shown)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a click went: ``reply`` for the person who clicked (None: nothing to tell them on
    Slack, where the edited message says it), ``answer`` the short notice Telegram shows."""

    reply: str | None
    answer: str


class ChatAcks:
    def __init__(self, channels: Mapping[str, ChannelSender], acks: AcknowledgeService,
                 metrics: Metrics, clock: Clock, public_url: str | None) -> None:
        self._channels = channels  # filled at start-up
        self._acks = acks
        self._metrics = metrics
        self._clock = clock
        self._public_url = public_url.rstrip("/") if public_url else None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- Slack ----------------------------------------------------------------------------

    def slack(self) -> SlackChannel | None:
        """The Slack channel when it can verify clicks (a signing secret is set)."""
        channel = self._channels.get("slack")
        return channel if isinstance(channel, SlackChannel) and channel.interactive else None

    async def slack_interaction(self, body: bytes, timestamp: str | None,
                                signature: str | None) -> None:
        """Handle one interactivity request; raises Unverified when it is not Slack's."""
        slack = self.slack()
        if slack is None:
            raise Unverified("not_configured")
        problem = slack.interaction_problem(timestamp, signature, body, self._clock.now())
        if problem is not None:
            raise self._unverified("slack", problem)
        click = parse_click(body)
        if click is None:  # another interaction (a shortcut, a modal): not ours to answer
            log.info("slack_interaction_ignored")
            return
        outcome = await self._acknowledge(click.notification_id,
                                          Actor("slack", click.user_id, click.user_name))
        if outcome.reply is not None and click.response_url is not None:
            self._spawn(self._slack_reply(slack, click.response_url, outcome.reply))

    async def _slack_reply(self, slack: SlackChannel, url: str, text: str) -> None:
        try:
            await slack.respond(url, text)
        except DeliveryError as exc:
            log.warning("slack_reply_failed", reason=exc.reason.value, error=exc.details)

    # -- Telegram -------------------------------------------------------------------------

    def telegram(self) -> TelegramChannel | None:
        """The Telegram channel when it can verify presses (a webhook secret is set)."""
        channel = self._channels.get("telegram")
        return (channel if isinstance(channel, TelegramChannel) and channel.interactive
                else None)

    def telegram_verify(self, given: str | None) -> None:
        """Raises Unverified unless ``given`` is the webhook's secret token."""
        telegram = self.telegram()
        if telegram is None:
            raise Unverified("not_configured")
        if not telegram.webhook_secret_ok(given):
            raise self._unverified("telegram", "missing_secret" if not given
                                   else "invalid_secret")

    async def telegram_update(self, body: bytes) -> None:
        """Handle one verified update: a press of an Acknowledge button is acknowledged and
        answered; any other update is ignored."""
        telegram = self.telegram()
        press = parse_update(body)
        if telegram is None or press is None:
            return
        if press.notification_id is None:
            answer = UNKNOWN
        else:
            outcome = await self._acknowledge(press.notification_id,
                                              Actor("telegram", press.user_id, press.user_name))
            answer = outcome.answer
        self._spawn(self._telegram_answer(telegram, press.query_id, answer))

    async def _telegram_answer(self, telegram: TelegramChannel, query_id: str,
                               text: str) -> None:
        try:
            await telegram.answer_callback_query(query_id, text)
        except DeliveryError as exc:
            log.warning("telegram_answer_failed", reason=exc.reason.value, error=exc.details)

    def start(self) -> None:
        """At start-up, once the channels are built: register the Telegram webhook in the
        background (a slow Bot API must not hold the start)."""
        if self.telegram() is not None:
            self._spawn(self._register())

    async def _register(self) -> None:
        await self.register_telegram_webhook()

    async def register_telegram_webhook(self) -> bool:
        """At start: point the bot's webhook at ``{public_url}/hooks/telegram`` with the
        secret token. Failures are logged, never raised: alerts still go out without it.
        Whether it was registered."""
        telegram = self.telegram()
        if telegram is None:
            return False
        if self._public_url is None:
            log.warning("telegram_webhook_not_registered", reason="public_url is not set",
                        hint="set public_url to where Telegram can reach this agent, or call "
                        "setWebhook yourself; until then button presses do not arrive")
            return False
        url = self._public_url + WEBHOOK_PATH
        try:
            await telegram.set_webhook(url)
        except DeliveryError as exc:
            log.error("telegram_webhook_not_registered", url=url, reason=exc.reason.value,
                      error=exc.details)
            return False
        log.info("telegram_webhook_registered", url=url)
        return True

    # -- shared ---------------------------------------------------------------------------

    async def _acknowledge(self, notification_id: str, actor: Actor) -> Outcome:
        """Call the acknowledge service; what to tell the person who clicked."""
        try:
            result = await self._acks.acknowledge_notification(notification_id, actor)
        except Forbidden:  # logged and counted by the service
            return Outcome(NOT_ALLOWED, NOT_ALLOWED)
        except Conflict as exc:
            text = EXPIRED if exc.code == "ack_expired" else RESOLVED
            return Outcome(text, text)
        except NotFound:
            log.info("ack_unknown_notification", channel=actor.channel,
                     notification_id=notification_id)
            return Outcome(UNKNOWN, UNKNOWN)
        except ServiceError as exc:
            log.warning("ack_failed", channel=actor.channel, code=exc.code)
            return Outcome(FAILED, FAILED)
        if result.first:
            return Outcome(None, ACKNOWLEDGED)
        already = f"Already acknowledged by {result.acknowledged_by_name or 'someone'}"
        return Outcome(already, already)

    def _unverified(self, channel: str, problem: str) -> Unverified:
        self._metrics.acks_refused.labels(channel, "bad_signature").inc()
        log.warning("ack_callback_rejected", channel=channel, problem=problem)
        return Unverified(problem)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # a reference until done, or the task may be collected
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the replies in flight (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
