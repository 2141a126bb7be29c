"""A status callback that never comes (the agent was down, Twilio does not retry; or no
public_url to post to): the agent looks the message up through Twilio's API as it crosses each
age of ``channels.twilio.status_poll_after_seconds``, and the answer moves the notification as
the callback would have. A message whose callback came is never looked up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.services.receipts import ReceiptService
from agent.settings import Settings
from tests.emulators.twilio import ACCOUNT_SID, AUTH_TOKEN, StoredMessage, TwilioEmulator
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]
TO = "+351912345678"
AGES = (600.0, 3600.0, 21600.0, 86400.0)


@dataclass
class Env:
    client: Client
    twilio: TwilioEmulator
    clock: FakeClock

    @property
    def receipts(self) -> ReceiptService:
        ctx = runtime(self.client).api
        assert ctx is not None and ctx.receipts is not None
        return ctx.receipts

    async def send(self) -> tuple[str, StoredMessage]:
        self.clock.advance(1)  # the sender's token bucket refills between sends
        resp = await self.client.post("/v1/notifications/send", headers=auth(), json={
            "channel": "sms", "to": TO, "message": "disk full on db1", "severity": "critical"})
        assert resp.status == 201, await resp.text()
        await runtime(self.client).run_until_idle()
        nid = str((await resp.json())["id"])
        assert (await self.get(nid))["status"] == "sent"
        return nid, self.twilio.messages[TO][-1]

    async def get(self, nid: str) -> dict[str, Any]:
        return dict(await (await self.client.get(f"/v1/notifications/{nid}",
                                                 headers=auth())).json())

    def lookups(self) -> int:
        return sum(1 for r in self.twilio.requests if "/Messages/" in r.path)

    async def at_age(self, seconds: float, since: float) -> dict[str, int]:
        """Move the clock to ``seconds`` after ``since`` and run a poll round."""
        self.clock.advance(since + seconds - self.clock.now())
        return await self.receipts.poll()

    async def metric(self, line: str) -> bool:
        return line in await (await self.client.get("/metrics")).text()


@pytest.fixture
async def env(settings: Settings, clock: FakeClock) -> AsyncIterator[Env]:
    twilio = TwilioEmulator()
    async with twilio.serve() as url:
        settings.recipients = settings.recipients.model_validate({"allow_unlisted": True})
        # The callbacks would go to the agent's own address; the emulator posts none unless
        # asked (report()), as when they were lost: only a lookup can tell.
        settings.channels.twilio = settings.channels.twilio.model_validate({
            "enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
            "from_number": "+15017122661", "api_url": url, "timeout_seconds": 2.0,
            "rate_per_second": 100.0})
        async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                         host="127.0.0.1")) as c:
            yield Env(c, twilio, clock)


async def test_a_lookup_at_ten_minutes_delivers_what_no_callback_said(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    env.twilio.settle(m)  # delivered at Twilio
    assert await env.at_age(599, t0) == {}  # not a second early
    assert env.lookups() == 0
    assert await env.at_age(600, t0) == {"delivered": 1}
    got = await env.get(nid)
    assert got["status"] == "delivered" and got["delivered_at"] is not None
    assert env.lookups() == 1
    assert await env.at_age(AGES[-1] + 3600, t0) == {}  # delivered: never looked up again
    assert env.lookups() == 1
    for counter in ("receipt_polls_total", "notifications_total"):
        assert await env.metric(
            f'alert_agent_{counter}{{channel="sms",outcome="delivered"}} 1.0'), counter


async def test_undelivered_at_twilio_fails_the_notification_with_its_error(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    env.twilio.settle(m, "undelivered", 30003)
    assert await env.at_age(600, t0) == {"failed": 1}
    got = await env.get(nid)
    assert (got["status"], got["failure_reason"]) == ("failed", "provider_rejected")
    assert "Twilio error 30003" in got["failure_details"]


async def test_a_message_without_a_final_status_is_asked_about_once_per_age(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    env.twilio.settle(m, "sent")  # the carrier never confirms
    for n, age in enumerate(AGES, start=1):
        assert await env.at_age(age - 60, t0) == {}  # rounds between the ages ask nothing
        assert await env.at_age(age, t0) == {"pending": 1}
        assert env.lookups() == n
    assert await env.at_age(AGES[-1] * 3, t0) == {}
    assert env.lookups() == len(AGES)
    assert (await env.get(nid))["status"] == "sent"


async def test_a_message_whose_callback_came_is_never_looked_up(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    # The callback, as the signed hook hands it over (the hook is tested in test_twilio_app).
    await env.receipts.twilio_status([("MessageSid", m.sid), ("MessageStatus", "delivered")])
    assert (await env.get(nid))["status"] == "delivered"
    for age in AGES:
        assert await env.at_age(age, t0) == {}
    assert env.lookups() == 0


async def test_a_refused_account_stops_the_round_and_the_rows_stay_due(env: Env) -> None:
    first, m1 = await env.send()
    second, m2 = await env.send()
    t0 = env.clock.now()
    env.twilio.settle(m1)
    env.twilio.settle(m2)
    token = env.twilio.auth_token
    env.twilio.auth_token = "rotated-elsewhere"  # the agent's token no longer works
    assert await env.at_age(600, t0) == {}
    assert env.lookups() == 1  # the first refusal ends the round
    assert await env.metric('alert_agent_receipt_polls_total{channel="sms",outcome="error"} 1.0')
    assert [(await env.get(n))["status"] for n in (first, second)] == ["sent", "sent"]
    env.twilio.auth_token = token  # fixed: the next round asks about both
    assert await env.at_age(660, t0) == {"delivered": 2}


async def test_a_late_round_still_asks_once(env: Env) -> None:
    """The agent was down past the first age: the first round after asks, once."""
    nid, m = await env.send()
    t0 = env.clock.now()
    env.twilio.settle(m, "sent")
    assert await env.at_age(1200, t0) == {"pending": 1}
    assert await env.at_age(1260, t0) == {}
    assert await env.at_age(3600, t0) == {"pending": 1}
    assert env.lookups() == 2


async def test_a_round_asks_at_most_its_share_and_the_rest_stay_due(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.services import receipts

    monkeypatch.setattr(receipts, "POLL_BATCH", 2)
    monkeypatch.setattr(receipts, "POLL_ROUND", 3)
    sent = [await env.send() for _ in range(5)]
    t0 = env.clock.now()
    for _, m in sent:
        env.twilio.settle(m)
    assert await env.at_age(600, t0) == {"delivered": 3}
    assert await env.at_age(660, t0) == {"delivered": 2}
    assert env.lookups() == 5
    assert {(await env.get(n))["status"] for n, _ in sent} == {"delivered"}


async def test_an_acknowledged_sms_is_not_asked_about(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    resp = await env.client.post(f"/v1/notifications/{nid}/acknowledge", headers=auth())
    assert resp.status == 200 and (await resp.json())["status"] == "acknowledged"
    for age in AGES:
        assert await env.at_age(age, t0) == {}
    assert env.lookups() == 0


async def test_a_message_twilio_does_not_know_is_logged_and_left(env: Env) -> None:
    nid, m = await env.send()
    t0 = env.clock.now()
    env.twilio.messages[TO].clear()  # deleted at Twilio (its message log is editable)
    assert await env.at_age(600, t0) == {"unknown": 1}
    assert (await env.get(nid))["status"] == "sent"


async def test_a_lookup_racing_a_callback_leaves_the_row_alone(env: Env) -> None:
    nid, m = await env.send()
    await env.receipts.twilio_status([("MessageSid", m.sid), ("MessageStatus", "delivered")])
    # The round had read the row as sent; its lookup ends after the callback moved it.
    await runtime(env.client).store.receipts.check_again(nid, env.clock.now() + 3600)
    [(at,)] = await runtime(env.client).store.db.read(lambda conn: conn.execute(
        "SELECT receipt_check_at FROM notifications WHERE id = ?", (nid,)).fetchall())
    assert at is None
