"""End to end: a real Alertmanager group reaches Slack, Telegram, Teams and ntfy (their
emulators on loopback) through a running agent; resolving it edits the Slack and Telegram messages
in place and replaces the ntfy notification, across a restart of the agent between firing and
resolving; and a storm to one Slack channel that answers ``429 Retry-After: 2`` for a minute
arrives whole afterwards.

The agent and Alertmanager are child processes (killed by PID at teardown); the emulators run in
the test's event loop. Every wait polls against a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from tests.emulators.ntfy import NtfyEmulator
from tests.emulators.slack import SlackEmulator
from tests.emulators.teams import TeamsEmulator
from tests.emulators.telegram import TOKEN as TELEGRAM_TOKEN
from tests.emulators.telegram import TelegramEmulator

SLACK_TOKEN = "xoxb-e2e-0000-SecretSlackBotTokenForE2E"
ALERTNAME = "E2EChat"
TELEGRAM_CHAT = -1001234567890
STORM = 1_000
RULES = """\
defaults:
  notify: [{{channel: console, to: fallback}}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
routes:
  - name: chat
    sources: [alertmanager]
    matchers: ['alertname="{alertname}"']
    group_by: [alertname]
    notify:
      - {{channel: slack, to: "#alerts"}}
      - {{channel: telegram, to: "{chat}"}}
      - {{channel: teams, to: ops}}
      - {{channel: push, to: e2e-alerts}}
  - name: storm
    sources: [alertmanager]
    matchers: ['alertname="E2EStorm"']
    group_by: [alertname, instance]
    notify:
      - {{channel: slack, to: "#storm"}}
"""


@dataclass
class Emulators:
    slack: SlackEmulator
    slack_url: str
    teams: TeamsEmulator
    teams_webhook: str
    ntfy: NtfyEmulator
    ntfy_url: str
    telegram: TelegramEmulator
    telegram_url: str


@pytest.fixture
async def emulators() -> AsyncIterator[Emulators]:
    slack = SlackEmulator(token=SLACK_TOKEN)
    slack.add_channel("storm", "C0STORM001")
    teams, ntfy, telegram = TeamsEmulator(), NtfyEmulator(), TelegramEmulator()
    telegram.add_chat(TELEGRAM_CHAT)
    async with AsyncExitStack() as stack:
        slack_url = await stack.enter_async_context(slack.running())
        await stack.enter_async_context(teams.serve())
        ntfy_url = await stack.enter_async_context(ntfy.serve())
        telegram_url = await stack.enter_async_context(telegram.serve())
        yield Emulators(slack, slack_url, teams, teams.add_webhook("ops"), ntfy, ntfy_url,
                        telegram, telegram_url)


@dataclass
class ChatStack:
    http: aiohttp.ClientSession
    start_agent: Callable[[], Child]
    agent: Child
    agent_url: str
    am_url: str
    children: list[Child]

    def logs(self) -> str:
        return tails(self.children)

    async def restart_agent(self) -> None:
        """SIGTERM the agent, wait for it to exit, start it again on the same data."""
        os.kill(self.agent.proc.pid, signal.SIGTERM)
        self.agent.proc.wait(timeout=30)
        self.agent = self.start_agent()
        self.children.append(self.agent)
        await wait_http_ok(self.http, f"{self.agent_url}/readyz", self.agent)


@pytest.fixture
async def chat_stack(tmp_path: Path, emulators: Emulators,
                     children: Callable[[str, list[str], dict[str, str]], Child]
                     ) -> AsyncIterator[ChatStack]:
    binary = am_binary()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-chat.yaml").write_text(RULES.format(alertname=ALERTNAME, chat=TELEGRAM_CHAT))
    agent_port = free_port()
    env = agent_env(tmp_path, agent_port)
    env.update({
        "ALERT_AGENT_CHANNELS__SLACK__ENABLED": "true",
        "ALERT_AGENT_CHANNELS__SLACK__BOT_TOKEN": SLACK_TOKEN,
        "ALERT_AGENT_CHANNELS__SLACK__API_URL": emulators.slack_url,
        # The storm test drains 1,000 messages to one channel in seconds, not Slack's ~17 min.
        "ALERT_AGENT_CHANNELS__SLACK__RATE_PER_SECOND": "50",
        "ALERT_AGENT_CHANNELS__TELEGRAM__ENABLED": "true",
        "ALERT_AGENT_CHANNELS__TELEGRAM__BOT_TOKEN": TELEGRAM_TOKEN,
        "ALERT_AGENT_CHANNELS__TELEGRAM__API_URL": emulators.telegram_url,
        "ALERT_AGENT_CHANNELS__TEAMS__ENABLED": "true",
        "ALERT_AGENT_CHANNELS__TEAMS__WEBHOOKS": json.dumps({"ops": emulators.teams_webhook}),
        "ALERT_AGENT_CHANNELS__PUSH__ENABLED": "true",
        "ALERT_AGENT_CHANNELS__PUSH__NTFY_URL": emulators.ntfy_url,
    })
    started: list[Child] = []
    runs = iter(range(1, 100))

    def start_agent() -> Child:
        return children(f"agent-{next(runs)}", [sys.executable, "-m", "agent", "run"], env)

    agent = start_agent()
    started.append(agent)
    am, am_url = start_alertmanager(binary, tmp_path, agent_port, children)
    started.append(am)
    agent_url = f"http://127.0.0.1:{agent_port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await wait_http_ok(http, f"{agent_url}/readyz", agent)
        await wait_http_ok(http, f"{am_url}/-/ready", am)
        yield ChatStack(http, start_agent, agent, agent_url, am_url, started)


async def am_post(s: ChatStack, alerts: list[dict[str, Any]]) -> None:
    async with s.http.post(f"{s.am_url}/api/v2/alerts", json=alerts) as r:
        assert r.status == 200, (r.status, await r.text())


async def failed_notifications(s: ChatStack) -> list[dict[str, Any]]:
    async with s.http.get(f"{s.agent_url}/v1/notifications",
                          params={"status": "failed", "limit": "100"},
                          headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 200, await r.text()
        return list((await r.json())["data"])


def labels(instance: str, alertname: str = ALERTNAME) -> dict[str, str]:
    return {"alertname": alertname, "instance": instance, "severity": "critical"}


async def test_a_group_reaches_every_chat_channel_and_resolving_edits_it_across_a_restart(
        chat_stack: ChatStack, emulators: Emulators) -> None:
    s, emu = chat_stack, emulators
    started = time.time() - 60
    await am_post(s, [am_alert(labels("host-a"), started), am_alert(labels("host-b"), started)])

    def both(text: str) -> bool:
        return "host-a" in text and "host-b" in text

    async def everywhere() -> bool:
        slack = [m for m in emu.slack.messages_in("#alerts") if both(m.text)]
        telegram = [m for m in emu.telegram.visible(TELEGRAM_CHAT) if both(m.text)]
        teams = [c for c in emu.teams.cards.get("ops", []) if both(" ".join(c.texts))]
        push = [n for n in emu.ntfy.current("e2e-alerts") if both(n.message)]
        return bool(slack and telegram and teams and push)

    await poll(everywhere, "the firing group on Slack, Telegram, Teams and ntfy",
               diagnostics=s.logs)
    [first] = emu.slack.messages_in("#alerts")
    # Alertmanager may post the two alerts apart: the group's message then shows both by an
    # edit already. What counts is that resolving edits it again, in place.
    assert "[FIRING:2]" in first.text
    firing_edits = first.edits
    [tg_first] = emu.telegram.visible(TELEGRAM_CHAT)
    tg_firing_edits = tg_first.edits

    # The agent restarts between firing and resolving: the provider refs are in its store.
    await s.restart_agent()
    await am_post(s, [am_alert(labels("host-a"), started, ends_at=time.time() - 1),
                      am_alert(labels("host-b"), started, ends_at=time.time() - 1)])

    async def resolved_in_place() -> bool:
        slack = emu.slack.messages_in("#alerts")
        telegram = emu.telegram.visible(TELEGRAM_CHAT)
        push = emu.ntfy.current("e2e-alerts")
        teams = emu.teams.cards.get("ops", [])
        return (len(slack) == 1 and "[RESOLVED]" in slack[0].text
                and len(telegram) == 1 and "[RESOLVED]" in telegram[0].text
                and len(push) == 1 and "[RESOLVED]" in push[0].message
                and any("[RESOLVED]" in " ".join(c.texts) for c in teams))

    await poll(resolved_in_place,
               "Slack, Telegram and ntfy edited to resolved, a Teams follow-up card",
               diagnostics=s.logs)
    [edited] = emu.slack.messages_in("#alerts")
    assert edited.ts == first.ts and edited.edits > firing_edits  # the same message, edited
    assert emu.slack.count("chat.postMessage") == 1
    [tg_edited] = emu.telegram.visible(TELEGRAM_CHAT)
    assert (tg_edited.message_id == tg_first.message_id
            and tg_edited.edits > tg_firing_edits)
    assert emu.telegram.count("sendMessage") == 1
    [shown] = emu.ntfy.current("e2e-alerts")
    assert shown.edits >= 1  # one notification on the phones, replaced
    assert await failed_notifications(s) == []
    logs = "".join(c.log() for c in s.children)
    assert SLACK_TOKEN not in logs and TELEGRAM_TOKEN not in logs


# A minute of 429s, then 1,000 messages at 50 a second: past the suite's 120 s default.
@pytest.mark.timeout(300)
async def test_a_storm_to_one_slack_channel_rate_limited_for_a_minute_arrives_whole(
        chat_stack: ChatStack, emulators: Emulators) -> None:
    s, emu = chat_stack, emulators
    emu.slack.fail("ratelimited", seconds=60, retry_after=2)
    failing_until = time.monotonic() + 60
    started = time.time() - 60
    instances = [f"node-{i:04d}" for i in range(STORM)]
    for chunk in range(0, STORM, 250):  # each alert its own group: 1,000 notifications
        await am_post(s, [am_alert(labels(i, "E2EStorm"), started)
                          for i in instances[chunk:chunk + 250]])

    async def all_arrived() -> bool:
        return len(emu.slack.messages_in("#storm")) >= STORM

    await poll(all_arrived, f"{STORM} Slack messages in #storm", timeout=60 + 120,
               interval=0.5, diagnostics=s.logs)
    posted = emu.slack.messages_in("#storm")
    assert len(posted) == STORM
    assert {i for m in posted for i in instances if i in m.text} == set(instances)
    # Nothing got through while Slack said to wait, and nothing failed.
    ok = [r for r in emu.slack.requests if r.answered == "ok"]
    assert ok and min(r.at for r in ok) >= failing_until - 0.5
    assert await failed_notifications(s) == []
    # Waiting was done in the store, not by asking Slack again and again: a few hundred
    # refused requests over the minute, not one per notification per Retry-After.
    refused = emu.slack.count(answered="ratelimited")
    assert refused < 3 * 60, refused
