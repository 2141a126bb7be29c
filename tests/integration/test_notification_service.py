"""The send and cancel use cases without HTTP: what the API, the CLI and a chat button share.

A real SQLite store; the service's refusals are domain errors naming the field, mapped to the
HTTP envelope only by the API (tests/integration/test_notifications_api.py checks that side).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from agent.apikeys import describe
from agent.channels.webhook import WebhookChannel, WebhookSettings
from agent.clock import FakeClock
from agent.domain import Channel, Status
from agent.observability import Metrics
from agent.services.errors import Conflict, Invalid, MissingField, NotFound
from agent.services.notifications import NotificationService, SendCommand
from agent.settings import ApiSettings
from agent.store import Store
from agent.store.notifications import ListFilter
from tests.helpers import LIVE_KEY, TEST_KEY

T0 = 1_800_000_000.0
LIVE, TEST = describe(LIVE_KEY), describe(TEST_KEY)


class Woken:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def service(store: Store, woken: Woken) -> NotificationService:
    webhook = WebhookChannel(WebhookSettings(), b"secret")
    return NotificationService(store, ApiSettings(), Metrics(CollectorRegistry()),
                               FakeClock(T0), woken, {"webhook": webhook})


async def test_send_queues_and_wakes_the_dispatcher(store: Store) -> None:
    woken = Woken()
    svc = service(store, woken)
    sent = await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="m"))
    assert not sent.replayed and sent.notification.status == Status.QUEUED
    assert sent.notification.due_at == T0 and woken.count == 1
    stored = await store.notifications.get(sent.notification.id)
    assert stored is not None and stored.message == "m"


async def test_a_scheduled_send_does_not_wake_the_dispatcher(store: Store) -> None:
    woken = Woken()
    at = datetime.fromtimestamp(T0, UTC) + timedelta(hours=1)
    sent = await service(store, woken).send(
        LIVE, SendCommand(Channel.CONSOLE, "ops", message="m", schedule_at=at))
    assert sent.notification.due_at == at.timestamp() and woken.count == 0


async def test_refusals_are_domain_errors_naming_the_field(store: Store) -> None:
    svc = service(store, Woken())
    with pytest.raises(MissingField) as missing:
        await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops"))
    assert (missing.value.code, missing.value.param) == ("missing_required_field", "message")
    with pytest.raises(Invalid) as bad:
        await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="m",
                                         schedule_at=datetime.fromtimestamp(T0, UTC)))
    assert (bad.value.code, bad.value.param) == ("invalid_schedule_at", "schedule_at")
    with pytest.raises(Invalid) as batch:
        await svc.send_batch(LIVE, [SendCommand(Channel.CONSOLE, "ops", message="m"),
                                    SendCommand(Channel.WEBHOOK, "not-a-url", message="m")])
    assert (batch.value.code, batch.value.item) == ("invalid_recipient", 1)
    rows, _ = await store.notifications.page(ListFilter(limit=10))
    assert rows == []  # a refused batch queues none of its items


async def test_cancel(store: Store) -> None:
    svc = service(store, Woken())
    sent = await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="m"))
    with pytest.raises(NotFound):
        await svc.cancel(TEST, sent.notification.id)  # the other mode's row is not there
    cancelled = await svc.cancel(LIVE, sent.notification.id)
    assert cancelled.status == Status.CANCELLED and cancelled.cancelled_at == T0
    with pytest.raises(Conflict) as again:
        await svc.cancel(LIVE, sent.notification.id)
    assert again.value.code == "notification_not_cancellable"


async def test_idempotency_key_reuse_is_a_conflict(store: Store) -> None:
    svc = service(store, Woken())
    first = await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="a",
                                             idempotency_key="k", request_hash="h1"))
    again = await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="a",
                                             idempotency_key="k", request_hash="h1"))
    assert again.replayed and again.notification.id == first.notification.id
    with pytest.raises(Conflict) as reused:
        await svc.send(LIVE, SendCommand(Channel.CONSOLE, "ops", message="b",
                                         idempotency_key="k", request_hash="h2"))
    assert (reused.value.code, reused.value.param) == ("idempotency_key_reused",
                                                       "idempotency_key")
