"""End to end (issue 14): the human loop through real HTTP. A real Alertmanager sends a
critical alert; the Slack and Telegram messages carry an Acknowledge button; nobody answers,
so the escalation's first step texts the member it names (Twilio emulator) on schedule; the
Slack emulator posts a correctly signed click as a member of the team: the alert is
acknowledged, the Slack and Telegram messages are edited to say so, and the second step never
fires; a second click by someone not on the team is refused.

The agent and Alertmanager are child processes (killed by PID at teardown); the emulators run
in the test's event loop. Every wait polls against a deadline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import Child, tails
from tests.e2e.test_alertmanager import (
    API_KEY,
    agent_env,
    am_alert,
    am_binary,
    free_port,
    poll,
    start_alertmanager,
    wait_http_ok,
)
from tests.emulators.slack import SlackEmulator
from tests.emulators.telegram import TOKEN as TELEGRAM_TOKEN
from tests.emulators.telegram import TelegramEmulator
from tests.emulators.twilio import TwilioEmulator

SLACK_TOKEN = "xoxb-e2e-0000-SecretSlackBotTokenForAcks"
ANA_SLACK, EVE_SLACK = "U0ANA00001", "U0EVE00001"
CHAT = 4242  # Ana's private chat with the bot
RAJ_PHONE = "+14155552671"
STEP_1, STEP_2 = 2.0, 8.0  # seconds after the first notification
RULES = f"""\
defaults:
  notify: [{{channel: console, to: fallback}}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
routes:
  - name: db
    sources: [alertmanager]
    matchers: ['alertname="E2EAckLoop"']
    group_by: [alertname]
    ack_by: [team_db]
    notify:
      - {{channel: slack, to: "#alerts"}}
      - {{channel: telegram, to: "{CHAT}"}}
    escalation:
      until: acknowledged
      steps:
        - {{after: {STEP_1:g}s, notify: [{{channel: sms, to: mem_raj}}]}}
        - {{after: {STEP_2:g}s, notify: [{{channel: sms, to: team_db}}]}}
teams:
  - {{id: team_db, name: DB, members: [mem_ana, mem_raj]}}
members:
  - id: mem_ana
    name: Ana
    approved: true
    addresses: {{slack: "{ANA_SLACK}", telegram: "{CHAT}", sms: "+351912345678"}}
  - id: mem_raj
    name: Raj
    approved: true
    addresses: {{sms: "{RAJ_PHONE}"}}
  - id: mem_eve
    name: Eve
    approved: true
    addresses: {{slack: "{EVE_SLACK}"}}
"""


@dataclass
class Loop:
    http: aiohttp.ClientSession
    agent: Child
    agent_url: str
    am_url: str
    slack: SlackEmulator
    telegram: TelegramEmulator
    twilio: TwilioEmulator
    children: list[Child]


@pytest.fixture
async def loop(tmp_path: Path, children: Callable[[str, list[str], dict[str, str]], Child]
               ) -> AsyncIterator[Loop]:
    binary = am_binary()
    slack, telegram, twilio = SlackEmulator(token=SLACK_TOKEN), TelegramEmulator(), \
        TwilioEmulator()
    telegram.add_chat(CHAT)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-db.yaml").write_text(RULES)
    async with AsyncExitStack() as stack:
        slack_url = await stack.enter_async_context(slack.running())
        telegram_url = await stack.enter_async_context(telegram.serve())
        twilio_url = await stack.enter_async_context(twilio.serve())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = agent_env(tmp_path, port)
        env.update({
            "ALERT_AGENT_PUBLIC_URL": url,
            "ALERT_AGENT_CHANNELS__SLACK__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__SLACK__BOT_TOKEN": SLACK_TOKEN,
            "ALERT_AGENT_CHANNELS__SLACK__API_URL": slack_url,
            "ALERT_AGENT_CHANNELS__SLACK__SIGNING_SECRET": slack.signing_secret,
            "ALERT_AGENT_CHANNELS__TELEGRAM__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TELEGRAM__BOT_TOKEN": TELEGRAM_TOKEN,
            "ALERT_AGENT_CHANNELS__TELEGRAM__API_URL": telegram_url,
            "ALERT_AGENT_CHANNELS__TELEGRAM__WEBHOOK_SECRET": "e2e-webhook-secret-0123",
            "ALERT_AGENT_CHANNELS__TWILIO__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TWILIO__ACCOUNT_SID": twilio.account_sid,
            "ALERT_AGENT_CHANNELS__TWILIO__AUTH_TOKEN": twilio.auth_token,
            "ALERT_AGENT_CHANNELS__TWILIO__FROM_NUMBER": "+15017122661",
            "ALERT_AGENT_CHANNELS__TWILIO__API_URL": twilio_url,
            "ALERT_AGENT_CHANNELS__TWILIO__RATE_PER_SECOND": "100",
        })
        agent = children("agent", [sys.executable, "-m", "agent", "run"], env)
        am, am_url = start_alertmanager(binary, tmp_path, port, children)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await wait_http_ok(http, f"{url}/readyz", agent)
            await wait_http_ok(http, f"{am_url}/-/ready", am)
            yield Loop(http, agent, url, am_url, slack, telegram, twilio, [agent, am])


@pytest.mark.timeout(120)
async def test_click_stops_the_escalation_and_edits_every_message(loop: Loop) -> None:
    diag = lambda: tails(loop.children)  # noqa: E731
    async with loop.http.post(f"{loop.am_url}/api/v2/alerts", json=[am_alert(
            {"alertname": "E2EAckLoop", "instance": "db1", "severity": "critical"},
            time.time() - 60)]) as r:
        assert r.status == 200, await r.text()

    async def posted() -> bool:
        return bool(loop.slack.messages_in("#alerts") and loop.telegram.visible(CHAT))

    await poll(posted, "the Slack and Telegram messages", diagnostics=diag)
    first_at = time.monotonic()
    [slack_msg] = loop.slack.messages_in("#alerts")
    [tg_msg] = loop.telegram.visible(CHAT)
    assert any(b.get("type") == "actions" for b in slack_msg.blocks)  # the button

    async def texted() -> bool:
        return bool(loop.twilio.messages.get(RAJ_PHONE))

    await poll(texted, "escalation step 1: an SMS to Raj", timeout=30, diagnostics=diag)
    assert time.monotonic() - first_at >= STEP_1 - 0.5  # on schedule, not before
    [sms] = loop.twilio.messages[RAJ_PHONE]
    assert sms.body is not None and sms.body.startswith("[Escalation 1/2]")

    # Eve's client still shows the button when she clicks, after Ana's click took it.
    eve_click = loop.slack.interaction(slack_msg, user_id=EVE_SLACK, user_name="eve")
    status = await loop.slack.click(f"{loop.agent_url}/hooks/slack/interactive", slack_msg,
                                    user_id=ANA_SLACK)
    assert status == 200

    async def edited() -> bool:
        return slack_msg.edits >= 1 and tg_msg.edits >= 1

    await poll(edited, "both messages edited", diagnostics=diag)
    assert "Acknowledged by Ana" in slack_msg.text and "Acknowledged by Ana" in tg_msg.text
    async with loop.http.get(f"{loop.agent_url}/v1/alerts", params={"status": "active"},
                             headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        [alert] = (await r.json())["data"]
    assert (alert["acknowledged_by"], alert["acknowledged_via"]) == ("mem_ana", "slack")

    # Someone not on the team clicks too: refused, told so, nothing changes.
    body, headers = loop.slack.signed(eve_click)
    async with loop.http.post(f"{loop.agent_url}/hooks/slack/interactive", data=body,
                              headers=headers) as r:
        assert r.status == 200

    async def refused() -> bool:
        return any("not allowed" in str(r.body).lower() for r in loop.slack.responses)

    await poll(refused, "the refusal posted to the response_url", diagnostics=diag)
    # The second step was cancelled by the acknowledgment, in its transaction: it never fires.
    async with loop.http.get(f"{loop.agent_url}/metrics") as r:
        metrics = await r.text()
    assert 'alert_agent_escalation_steps_total{outcome="fired"} 1.0' in metrics
    assert 'alert_agent_escalation_steps_total{outcome="cancelled"} 1.0' in metrics
    assert [len(v) for v in loop.twilio.messages.values()] == [1]
