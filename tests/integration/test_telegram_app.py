"""Telegram through the whole agent: the API checks `to` with the channel, an alert's message
reaches the emulator, and resolving the alert edits it in place (or, with `retract: true`,
deletes it) through the provider ref the first delivery stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.emulators.telegram import TOKEN, TelegramEmulator
from tests.helpers import auth, wait_until

Client = TestClient[Any, Any]
PRIVATE, GROUP = 4242, -1001234567890
RULES = f"""
defaults:
  group_wait: 0s
  group_interval: 0s
  notify: [{{channel: console, to: ops}}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    notify:
      - {{channel: telegram, to: "{PRIVATE}"}}
      - {{channel: telegram, to: "{GROUP}", retract: true}}
"""


@pytest.fixture
async def emu() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    e = TelegramEmulator()
    e.add_chat(PRIVATE)
    e.add_chat(GROUP, "supergroup")
    async with e.serve() as url:
        yield e, url


@pytest.fixture
async def app_client(settings: Settings, emu: tuple[TelegramEmulator, str]
                     ) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.channels.telegram = settings.channels.telegram.model_validate({
        "enabled": True, "bot_token": TOKEN, "api_url": emu[1], "timeout_seconds": 2.0,
        # The group's 20 a minute would space the resolve 3 s after the alert.
        "group_rate_per_minute": 6000})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def test_resolving_an_alert_edits_its_message_and_retracts_where_asked(
        app_client: Client, emu: tuple[TelegramEmulator, str]) -> None:
    e, _ = emu
    resp = await app_client.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical",
        "message": "disk <95%> full & rising"})
    assert resp.status == 201, await resp.text()
    aid = (await resp.json())["data"]["id"]
    await wait_until(lambda: len(e.visible(PRIVATE)) == 1 and len(e.visible(GROUP)) == 1)
    [firing] = e.visible(PRIVATE)
    assert firing.text.startswith("\U0001f534 ") and firing.edits == 0
    assert "disk <95%> full & rising" in firing.text

    resp = await app_client.put(f"/v1/alerts/{aid}", headers=auth(),
                                json={"status": "resolved", "message": "disk back to 60%"})
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: firing.edits == 1 and e.visible(GROUP) == [])
    assert firing.text.startswith("\u2705 ")
    assert [len(e.messages[c]) for c in (PRIVATE, GROUP)] == [1, 1]  # nothing posted anew
    assert e.count("sendMessage") == 2 and e.count("deleteMessage") == 1


async def test_the_api_refuses_a_chat_the_channel_refuses(app_client: Client) -> None:
    for to in ("ops", "@ab", "0"):
        resp = await app_client.post("/v1/notifications/send", headers=auth(),
                                     json={"channel": "telegram", "to": to, "message": "m"})
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "invalid_recipient"
