"""What API handlers may use, stored once on the application under a typed key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from agent.api.auth import KeyRing
from agent.api.hookauth import Hooks
from agent.api.ratelimit import IntervalGate, RateLimiter
from agent.channels.base import ChannelSender
from agent.clock import Clock
from agent.observability import Metrics
from agent.routing.ruleset import RuleSet
from agent.services.acklinks import AckLinks
from agent.services.acknowledge import AcknowledgeService
from agent.services.chatacks import ChatAcks
from agent.services.ingest import Intake
from agent.services.notifications import NotificationService
from agent.services.receipts import ReceiptService
from agent.services.rules import RulesHolder
from agent.settings import ApiSettings
from agent.store import Store


@dataclass(slots=True)
class ApiContext:
    """The services and the few shared things handlers need; the services wake the loops."""

    store: Store
    metrics: Metrics
    settings: ApiSettings
    keyring: KeyRing
    limiter: RateLimiter | None
    dispatcher_running: Callable[[], bool]
    clock: Clock
    intake: Intake
    notifications: NotificationService
    acks: AcknowledgeService
    ack_links: AckLinks
    rules_holder: RulesHolder
    hooks: Hooks
    reload_gate: IntervalGate
    # The enabled channels (filled at start-up): their validate_address checks `to` at the edge.
    channels: Mapping[str, ChannelSender]
    # Delivery receipts of providers that report later (Twilio's status callbacks).
    receipts: ReceiptService | None = None
    # Acknowledge buttons in Slack and Telegram (their verified callbacks).
    chat_acks: ChatAcks | None = None

    def rules(self) -> RuleSet:
        return self.rules_holder.current


CTX = web.AppKey("api_context", ApiContext)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CTX]
