"""Simulator recipients for ``sk_test_`` keys: addresses that force each delivery outcome
through the whole pipeline (retries, deferrals, failure classes, dead letters), as GOV.UK
Notify's test addresses do. Nothing leaves the host.

Each outcome has an email address, a phone number (the UK's range reserved for drama, never
assigned) and a chat id (a Telegram-shaped @username), valid on every channel. A live key
sending to one is refused at the API edge: it would otherwise reach nobody and look delivered.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum

from agent.channels.base import (
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.domain import FailureReason


class Outcome(StrEnum):
    DELIVERED = "delivered"
    PERMANENT_FAILURE = "permanent-failure"
    TEMPORARY_FAILURE = "temporary-failure"  # fails once (a retry), then delivered
    RATE_LIMITED = "rate-limited"  # deferred once with Retry-After, then delivered
    TECHNICAL_FAILURE = "technical-failure"  # the channel crashes: our side


_ORDER = tuple(Outcome)
SIMULATOR_ADDRESSES: dict[str, Outcome] = {
    **{f"simulate-{o.value}@simulator.invalid": o for o in _ORDER},
    **{f"+44770090000{i}": o for i, o in enumerate(_ORDER)},
    **{"@simulate_" + o.value.replace("-", "_"): o for o in _ORDER},
}
# How long a simulated rate limit asks to wait (its Retry-After).
RATE_LIMIT_RETRY_AFTER = 1.0


def simulated_outcome(to: str) -> Outcome | None:
    """The outcome ``to`` forces, or None when it is no simulator address."""
    return SIMULATOR_ADDRESSES.get(to.strip())


class SimulatorChannel:
    """Delivers test-key notifications to simulator addresses with the outcome each names.

    The first try of a temporary failure or rate limit fails and a later one succeeds, so the
    dispatcher's own retry and deferral paths run; it remembers which notifications it failed
    (bounded: at worst a forgotten one fails once more).
    """

    name = "simulator"
    local = True
    limits = Limits()

    def __init__(self, remember: int = 10_000) -> None:
        self._failed_once: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def validate_address(self, to: str) -> str:
        return to

    async def send(self, message: Message) -> DeliveryResult:
        outcome = simulated_outcome(message.to)
        if outcome is Outcome.PERMANENT_FAILURE:
            raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                         "simulated permanent failure", scope=ErrorScope.RECIPIENT)
        if outcome is Outcome.TECHNICAL_FAILURE:
            raise RuntimeError("simulated technical failure")
        if outcome in (Outcome.TEMPORARY_FAILURE, Outcome.RATE_LIMITED) and self._first(
                message.notification_id):
            if outcome is Outcome.RATE_LIMITED:
                raise RetryableDeliveryError(FailureReason.RATE_LIMITED,
                                             "simulated rate limit", RATE_LIMIT_RETRY_AFTER,
                                             http_status=429)
            raise RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE,
                                         "simulated temporary failure", http_status=503)
        return DeliveryResult(provider_ref={"simulated": outcome.value if outcome else None})

    def _first(self, notification_id: str) -> bool:
        if notification_id in self._failed_once:
            del self._failed_once[notification_id]
            return False
        self._failed_once[notification_id] = None
        while len(self._failed_once) > self._remember:
            self._failed_once.popitem(last=False)
        return True

    async def close(self) -> None:
        return None
