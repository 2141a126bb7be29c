"""Acknowledge by text (issue 14): an alert's SMS ends with its link and "or reply ACK <code>";
a signed inbound message "ACK" (or "ACK <code>") from the member's number acknowledges, and
the TwiML answer carries the reply Twilio sends back. Unsigned, unknown numbers and wrong codes
change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.emulators.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioEmulator, twilio_signature
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]
RAJ, EVE = "+14155552671", "+14155550199"
PUBLIC = "https://agent.example"
RULES = f"""
defaults:
  group_wait: 0s
  group_interval: 1m
  notify: [{{channel: console, to: ops}}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    notify: [{{channel: sms, to: team_db}}]
teams:
  - {{id: team_db, members: [mem_raj]}}
members:
  - {{id: mem_raj, name: Raj, approved: true, addresses: {{sms: "{RAJ}"}}}}
"""


@pytest.fixture
async def agent(settings: Settings,
                clock: FakeClock) -> AsyncIterator[tuple[Client, TwilioEmulator]]:
    emu = TwilioEmulator()
    async with emu.serve() as url:
        settings.rules_dir.mkdir(parents=True)
        (settings.rules_dir / "r.yaml").write_text(RULES)
        settings.public_url = PUBLIC
        settings.channels.twilio = settings.channels.twilio.model_validate({
            "enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
            "from_number": "+15017122661", "api_url": url})
        async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                         host="127.0.0.1")) as c:
            yield c, emu


async def fire(c: Client, monitor: str = "db-1") -> str:
    resp = await c.post("/v1/alerts", headers=auth(), json={
        "monitor_id": monitor, "type": "down", "severity": "critical", "message": "db down"})
    assert resp.status == 201
    await runtime(c).run_until_idle()
    return str((await resp.json())["data"]["id"])


async def text(c: Client, sender: str, body: str, token: str = AUTH_TOKEN) -> tuple[int, str]:
    params = [("AccountSid", ACCOUNT_SID), ("Body", body), ("From", sender),
              ("MessageSid", "SM" + "1" * 32), ("To", "+15017122661")]
    sig = twilio_signature(token, f"{PUBLIC}/hooks/twilio/inbound", params)
    resp = await c.post("/hooks/twilio/inbound", data=params,
                        headers={"X-Twilio-Signature": sig})
    return resp.status, await resp.text()


async def acked(c: Client, aid: str) -> dict[str, Any]:
    return dict((await (await c.get(f"/v1/alerts/{aid}", headers=auth())).json())["data"])


async def test_a_reply_ack_acknowledges_the_newest_open_alert(
        agent: tuple[Client, TwilioEmulator]) -> None:
    c, emu = agent
    aid = await fire(c)
    [sms] = emu.messages[RAJ]
    found = re.search(rf"Ack: {PUBLIC}/ack/\S+ or reply ACK ([0-9a-f]{{6}})$", sms.body or "")
    assert found is not None, sms.body
    # Not signed by the account: 403, nothing changes.
    status, _ = await text(c, RAJ, "ACK", token="not-the-token")
    assert status == 403 and (await acked(c, aid))["acknowledged"] is False
    status, body = await text(c, RAJ, "ack")
    assert status == 200 and "<Message>Acknowledged.</Message>" in body
    got = await acked(c, aid)
    assert (got["acknowledged_by"], got["acknowledged_via"]) == ("mem_raj", "sms")
    status, body = await text(c, RAJ, "ACK")
    assert "No open alert to acknowledge." in body


async def test_a_code_picks_the_alert_and_strangers_are_refused(
        agent: tuple[Client, TwilioEmulator]) -> None:
    c, emu = agent
    first = await fire(c, "db-1")
    second = await fire(c, "db-2")
    code_of_first = re.findall(r"reply ACK ([0-9a-f]{6})", emu.messages[RAJ][0].body or "")[0]
    _, body = await text(c, EVE, f"ACK {code_of_first}")
    assert "may not acknowledge" in body
    _, body = await text(c, RAJ, "ACK 000000")
    assert "No open alert with code 000000." in body
    _, body = await text(c, RAJ, f"ACK {code_of_first}")
    assert "Acknowledged." in body
    assert (await acked(c, first))["acknowledged"] is True
    assert (await acked(c, second))["acknowledged"] is False
    _, body = await text(c, RAJ, "thanks")  # not an acknowledgment: no reply
    assert "<Message>" not in body


async def test_a_bare_ack_skips_resolved_messages_and_answered_alerts(
        agent: tuple[Client, TwilioEmulator], clock: FakeClock) -> None:
    c, _ = agent
    older = await fire(c, "db-1")
    newer = await fire(c, "db-2")
    await c.put(f"/v1/alerts/{newer}", headers=auth(), json={"status": "resolved"})
    clock.advance(61)
    await runtime(c).run_until_idle()  # db-2's resolved SMS is now the newest message
    _, body = await text(c, RAJ, "ACK")
    assert "<Message>Acknowledged.</Message>" in body
    assert (await acked(c, older))["acknowledged_by"] == "mem_raj"
    # Acknowledged, then resolved: its resolved SMS is no new acknowledgment.
    await c.put(f"/v1/alerts/{older}", headers=auth(), json={"status": "resolved"})
    clock.advance(61)
    await runtime(c).run_until_idle()
    _, body = await text(c, RAJ, "ACK")
    assert "No open alert to acknowledge." in body
    metrics = await (await c.get("/metrics")).text()
    assert 'alert_agent_acknowledgments_total{channel="sms"} 1.0' in metrics
