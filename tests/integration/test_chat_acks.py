"""Acknowledge buttons through the whole agent (issue 14): a firing alert's Slack and Telegram
messages carry a button, a resolved one does not; a verified click acknowledges through the
acknowledge service and the messages are edited; a forged, unsigned or replayed callback is
401 and changes nothing; a non-member is refused and told so; Telegram presses are answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.channels.ack import offers_ack
from agent.clock import FakeClock
from agent.settings import Settings
from tests.emulators.slack import SlackEmulator, SlackMessage
from tests.emulators.telegram import TOKEN, TelegramEmulator
from tests.helpers import Sink, auth, runtime, serve, wait_until

Client = TestClient[Any, Any]
CHAT = 4242  # Ana's private chat with the bot (her Telegram user id)
ANA_SLACK, EVE_SLACK, STRANGER_SLACK = "U0ANA00001", "U0EVE00001", "U0NOBODY01"
EVE_TG, STRANGER_TG = 777, 999
WEBHOOK_SECRET = "tg-webhook_secret-0123456789"
PUBLIC_URL = "https://agent.example.test"
RULES = f"""
defaults:
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 10m
  notify: [{{channel: console, to: ops}}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    ack_by: [team_db]
    notify:
      - {{channel: slack, to: "#alerts"}}
      - {{channel: telegram, to: "{CHAT}"}}
teams:
  - id: team_db
    name: DB
    members: [mem_ana]
members:
  - id: mem_ana
    name: Ana
    approved: true
    addresses: {{slack: "{ANA_SLACK}", telegram: "{CHAT}"}}
  - id: mem_eve
    name: Eve
    approved: true
    addresses: {{slack: "{EVE_SLACK}", telegram: "{EVE_TG}"}}
"""


@dataclass
class Env:
    client: Client
    slack: SlackEmulator
    telegram: TelegramEmulator
    clock: FakeClock

    @property
    def slack_hook(self) -> str:
        return str(self.client.make_url("/hooks/slack/interactive"))

    @property
    def telegram_hook(self) -> str:
        return str(self.client.make_url("/hooks/telegram"))

    def slack_message(self) -> SlackMessage:
        [message] = self.slack.messages_in("#alerts")
        return message

    async def fire(self) -> str:
        resp = await self.client.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "db-1", "type": "down", "severity": "critical",
            "message": "disk full"})
        assert resp.status == 201, await resp.text()
        await runtime(self.client).run_until_idle()
        return str((await resp.json())["data"]["id"])

    async def resolve(self, aid: str) -> None:
        resp = await self.client.put(f"/v1/alerts/{aid}", headers=auth(),
                                     json={"status": "resolved"})
        assert resp.status == 200, await resp.text()
        self.clock.advance(61)  # the group's interval
        await runtime(self.client).run_until_idle()

    async def alert(self, aid: str) -> dict[str, Any]:
        resp = await self.client.get(f"/v1/alerts/{aid}", headers=auth())
        assert resp.status == 200
        return dict((await resp.json())["data"])

    async def metric(self, line: str) -> bool:
        return line in await (await self.client.get("/metrics")).text()

    async def drain(self) -> None:
        """Wait for the replies the agent sends in the background (ephemeral, answers)."""
        ctx = runtime(self.client).api
        assert ctx is not None and ctx.chat_acks is not None
        await ctx.chat_acks.drain()


def _configure(settings: Settings, slack_url: str, telegram_url: str, *,
               signing: bool = True, webhook: bool = True) -> None:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.public_url = PUBLIC_URL
    settings.channels.slack = settings.channels.slack.model_validate({
        "enabled": True, "bot_token": "xoxb-emulator-token", "api_url": slack_url,
        "timeout_seconds": 2.0, "rate_per_second": 1000,
        **({"signing_secret": SlackEmulator.signing_secret} if signing else {})})
    settings.channels.telegram = settings.channels.telegram.model_validate({
        "enabled": True, "bot_token": TOKEN, "api_url": telegram_url, "timeout_seconds": 2.0,
        **({"webhook_secret": WEBHOOK_SECRET} if webhook else {})})


@pytest.fixture
async def env(settings: Settings, clock: FakeClock) -> AsyncIterator[Env]:
    slack, telegram = SlackEmulator(), TelegramEmulator()
    telegram.add_chat(CHAT)
    async with slack.running() as slack_url, telegram.serve() as telegram_url:
        _configure(settings, slack_url, telegram_url)
        app = create_app(settings, clock=clock, loops=False)
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            await wait_until(lambda: bool(telegram.webhook))  # registered at start
            yield Env(c, slack, telegram, clock)
            await runtime(c).api.chat_acks.drain()


def _slack_button(message: SlackMessage) -> dict[str, Any] | None:
    return next((e for b in message.blocks if b["type"] == "actions"
                 for e in b["elements"]), None)


async def _notification_id(env: Env, aid: str, channel: str) -> str:
    detail = await env.alert(aid)
    return str(next(n["id"] for n in detail["notifications"] if n["channel"] == channel))


# --- buttons ------------------------------------------------------------------------------


async def test_a_firing_alert_has_buttons_and_its_resolution_takes_them_away(env: Env) -> None:
    aid = await env.fire()
    message = env.slack_message()
    button = _slack_button(message)
    assert button is not None and button["action_id"] == "ack"
    assert button["value"] == await _notification_id(env, aid, "slack")
    [tg] = env.telegram.visible(CHAT)
    assert tg.buttons() == [{"text": "Acknowledge", "callback_data":
                             "ack:" + await _notification_id(env, aid, "telegram")}]

    await env.resolve(aid)
    assert message.edits == 1 and message.text.startswith("✅ RESOLVED")
    assert _slack_button(message) is None
    assert tg.edits == 1 and tg.reply_markup is None


async def test_no_button_without_the_secrets(settings: Settings, clock: FakeClock) -> None:
    slack, telegram = SlackEmulator(), TelegramEmulator()
    telegram.add_chat(CHAT)
    async with slack.running() as slack_url, telegram.serve() as telegram_url:
        _configure(settings, slack_url, telegram_url, signing=False, webhook=False)
        app = create_app(settings, clock=clock, loops=False)
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            env = Env(c, slack, telegram, clock)
            await env.fire()
            assert _slack_button(env.slack_message()) is None
            assert [m.reply_markup for m in telegram.visible(CHAT)] == [None]
            # The hooks do not exist then: nothing could verify what arrives there.
            resp = await c.post("/hooks/slack/interactive", data=b"payload=%7B%7D")
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_configured"
            resp = await c.post("/hooks/telegram", json={"update_id": 1})
            assert resp.status == 404
    assert telegram.count("setWebhook") == 0


async def test_a_plain_api_send_has_no_button(env: Env) -> None:
    resp = await env.client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "slack", "to": "#alerts", "message": "deploy done"})
    assert resp.status == 201, await resp.text()
    await runtime(env.client).run_until_idle()
    assert _slack_button(env.slack_message()) is None


# --- Slack clicks ---------------------------------------------------------------------------


async def test_a_signed_click_by_a_member_acknowledges_and_the_messages_are_edited(
        env: Env) -> None:
    aid = await env.fire()
    message = env.slack_message()
    stale = env.slack.interaction(message, user_id=ANA_SLACK)  # a client not yet refreshed
    env.clock.advance(30)
    status = await env.slack.click(env.slack_hook, message, user_id=ANA_SLACK,
                                   user_name="ana", at=env.clock.now())
    assert status == 200
    detail = await env.alert(aid)
    assert (detail["acknowledged"], detail["acknowledged_by"]) == (True, "mem_ana")
    await runtime(env.client).run_until_idle()
    # The acknowledge service's edit, through the dispatcher: Slack and Telegram, no button.
    assert message.edits == 1 and "Acknowledged by Ana at" in message.text
    assert _slack_button(message) is None
    [tg] = env.telegram.visible(CHAT)
    assert "Acknowledged by Ana at" in tg.text and tg.reply_markup is None
    await env.drain()
    assert env.slack.responses == []  # the edited message says it all
    assert await env.metric('alert_agent_acknowledgments_total{channel="slack"} 1.0')

    # A second click (on a client still showing the button) is answered, to the clicker
    # only; the first acknowledgment stays.
    env.clock.advance(5)
    body, headers = env.slack.signed(stale, at=env.clock.now())
    resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
    assert resp.status == 200
    await env.drain()
    [reply] = env.slack.responses
    assert reply.body == {"response_type": "ephemeral", "replace_original": False,
                          "text": "Already acknowledged by Ana"}
    assert (await env.alert(aid))["acknowledged_at"] == detail["acknowledged_at"]


@pytest.mark.parametrize("forgery", ["wrong_secret", "no_signature", "no_timestamp", "replayed",
                                     "future", "tampered"])
async def test_a_callback_that_does_not_verify_is_401_and_changes_nothing(
        env: Env, forgery: str) -> None:
    aid = await env.fire()
    message = env.slack_message()
    payload = env.slack.interaction(message, user_id=ANA_SLACK)
    now = env.clock.now()
    body, headers = env.slack.signed(payload, at=now)
    if forgery == "wrong_secret":
        body, headers = env.slack.signed(payload, at=now, secret="not-the-signing-secret")
    elif forgery == "no_signature":
        del headers["X-Slack-Signature"]
    elif forgery == "no_timestamp":
        del headers["X-Slack-Request-Timestamp"]
    elif forgery == "replayed":  # a captured request, six minutes later
        body, headers = env.slack.signed(payload, at=now - 360)
    elif forgery == "future":
        body, headers = env.slack.signed(payload, at=now + 360)
    else:  # signed, then the value swapped for another notification
        body = body.replace(payload["actions"][0]["value"].encode(), b"ntf_00000000000000000000")
    resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
    assert resp.status == 401
    error = (await resp.json())["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_signature")
    await runtime(env.client).run_until_idle()
    await env.drain()
    assert (await env.alert(aid))["acknowledged"] is False
    assert message.edits == 0 and env.slack.responses == []
    assert await env.metric(
        'alert_agent_ack_refused_total{channel="slack",reason="bad_signature"} 1.0')


async def test_a_click_by_someone_not_allowed_is_refused_and_told(env: Env) -> None:
    aid = await env.fire()
    message = env.slack_message()
    for user in (EVE_SLACK, STRANGER_SLACK):  # a member of another team; nobody we know
        assert await env.slack.click(env.slack_hook, message, user_id=user,
                                     at=env.clock.now()) == 200
    await env.drain()
    assert [r.body["text"] for r in env.slack.responses] == [
        "You are not allowed to acknowledge this alert"] * 2
    assert all(r.body["response_type"] == "ephemeral" for r in env.slack.responses)
    assert (await env.alert(aid))["acknowledged"] is False
    await runtime(env.client).run_until_idle()
    assert message.edits == 0
    assert await env.metric(
        'alert_agent_ack_refused_total{channel="slack",reason="not_allowed"} 2.0')


async def test_a_click_once_the_alert_is_resolved_is_told_so(env: Env) -> None:
    aid = await env.fire()
    payload = env.slack.interaction(env.slack_message(), user_id=ANA_SLACK)
    await env.resolve(aid)
    # A button still shown on a client after the alert resolved: nothing is recorded.
    body, headers = env.slack.signed(payload, at=env.clock.now())
    resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
    assert resp.status == 200
    await env.drain()
    assert [r.body["text"] for r in env.slack.responses] == [
        "This alert is resolved: there is nothing left to acknowledge"]
    assert (await env.alert(aid))["acknowledged"] is False


async def test_a_click_after_an_acknowledged_alert_resolved_says_who_took_it(env: Env) -> None:
    aid = await env.fire()
    payload = env.slack.interaction(env.slack_message(), user_id=ANA_SLACK)
    body, headers = env.slack.signed(payload, at=env.clock.now())
    assert (await env.client.post("/hooks/slack/interactive", data=body,
                                  headers=headers)).status == 200
    await env.resolve(aid)
    body, headers = env.slack.signed(payload, at=env.clock.now())
    resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
    assert resp.status == 200
    await env.drain()
    assert [r.body["text"] for r in env.slack.responses] == ["Already acknowledged by Ana"]
    assert (await env.alert(aid))["acknowledged_by"] == "mem_ana"


async def test_a_button_expires_after_the_link_ttl_and_a_repeats_works(env: Env) -> None:
    aid = await env.fire()
    message = env.slack_message()
    env.clock.advance(86400 + 1)  # ack.link_ttl; no repeat has run yet (loops are stopped)
    assert await env.slack.click(env.slack_hook, message, user_id=ANA_SLACK,
                                 at=env.clock.now()) == 200
    [tg] = env.telegram.visible(CHAT)
    press = env.telegram.press(CHAT, tg.message_id, user_id=CHAT, first_name="Ana")
    assert await env.telegram.deliver(press, url=env.telegram_hook) == 200
    await env.drain()
    expired = "This button has expired: use the alert's latest message"
    assert [r.body["text"] for r in env.slack.responses] == [expired]
    assert env.telegram.answers == {press["callback_query"]["id"]: expired}
    assert (await env.alert(aid))["acknowledged"] is False
    assert await env.metric('alert_agent_ack_refused_total{channel="slack",reason="expired"} 1.0')
    # The group's repeat is a new message, whose button works.
    await runtime(env.client).run_until_idle()
    first, repeat = env.slack.messages_in("#alerts")
    assert first is message and _slack_button(repeat) != _slack_button(message)
    assert await env.slack.click(env.slack_hook, repeat, user_id=ANA_SLACK,
                                 at=env.clock.now()) == 200
    assert (await env.alert(aid))["acknowledged_by"] == "mem_ana"


async def test_replies_go_only_to_slack(env: Env) -> None:
    """A response_url elsewhere (even in a correctly signed payload) is never posted to."""
    sink = Sink()
    async with serve(sink.handle) as elsewhere:
        await env.fire()
        payload = env.slack.interaction(env.slack_message(), user_id=EVE_SLACK)
        payload["response_url"] = elsewhere + "/actions/T0/1/x"
        body, headers = env.slack.signed(payload, at=env.clock.now())
        resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
        assert resp.status == 200
        await env.drain()
    assert sink.received == [] and env.slack.responses == []


async def test_other_interactions_are_answered_and_ignored(env: Env) -> None:
    aid = await env.fire()
    message = env.slack_message()
    for payload in (env.slack.interaction(message, user_id=ANA_SLACK, kind="message_action"),
                    env.slack.interaction(message, user_id=ANA_SLACK, action_id="other",
                                          value="x")):
        body, headers = env.slack.signed(payload, at=env.clock.now())
        resp = await env.client.post("/hooks/slack/interactive", data=body, headers=headers)
        assert resp.status == 200 and await resp.text() == ""
    assert (await env.alert(aid))["acknowledged"] is False


# --- Telegram presses -----------------------------------------------------------------------


async def test_the_webhook_is_registered_at_start(env: Env) -> None:
    assert env.telegram.webhook == {"url": PUBLIC_URL + "/hooks/telegram",
                                    "secret_token": WEBHOOK_SECRET,
                                    "allowed_updates": ["callback_query", "message"]}


async def test_a_press_by_a_member_acknowledges_and_is_answered(env: Env) -> None:
    aid = await env.fire()
    [tg] = env.telegram.visible(CHAT)
    env.clock.advance(30)  # the chat's rate bucket refills for the edit
    update = env.telegram.press(CHAT, tg.message_id, user_id=CHAT, first_name="Ana")
    assert await env.telegram.deliver(update, url=env.telegram_hook) == 200
    detail = await env.alert(aid)
    assert (detail["acknowledged"], detail["acknowledged_by"]) == (True, "mem_ana")
    await env.drain()
    assert env.telegram.answers == {update["callback_query"]["id"]: "Acknowledged"}
    await runtime(env.client).run_until_idle()
    assert "Acknowledged by Ana at" in tg.text and tg.reply_markup is None
    assert "Acknowledged by Ana at" in env.slack_message().text
    assert await env.metric('alert_agent_acknowledgments_total{channel="telegram"} 1.0')


@pytest.mark.parametrize("secret", ["wrong-secret", None])
async def test_a_press_without_the_secret_is_401_and_changes_nothing(
        env: Env, secret: str | None) -> None:
    aid = await env.fire()
    [tg] = env.telegram.visible(CHAT)
    update = env.telegram.press(CHAT, tg.message_id, user_id=CHAT)
    status = await env.telegram.deliver(update, url=env.telegram_hook, secret=secret,
                                        send_secret=secret is not None)
    assert status == 401
    await env.drain()
    assert (await env.alert(aid))["acknowledged"] is False
    assert env.telegram.answers == {}
    assert await env.metric(
        'alert_agent_ack_refused_total{channel="telegram",reason="bad_signature"} 1.0')


async def test_a_press_by_a_non_member_is_refused_in_the_answer(env: Env) -> None:
    aid = await env.fire()
    [tg] = env.telegram.visible(CHAT)
    presses = [env.telegram.press(CHAT, tg.message_id, user_id=user)
               for user in (EVE_TG, STRANGER_TG)]
    for update in presses:
        assert await env.telegram.deliver(update, url=env.telegram_hook) == 200
    await env.drain()
    assert env.telegram.answers == {u["callback_query"]["id"]:
                                    "You are not allowed to acknowledge this alert"
                                    for u in presses}
    assert (await env.alert(aid))["acknowledged"] is False


async def test_other_updates_are_ignored(env: Env) -> None:
    await env.fire()
    [tg] = env.telegram.visible(CHAT)
    message = {"update_id": 5, "message": {"message_id": 9, "date": 0, "text": "hello",
                                           "chat": {"id": CHAT, "type": "private"},
                                           "from": {"id": CHAT, "is_bot": False,
                                                    "first_name": "Ana"}}}
    assert await env.telegram.deliver(message, url=env.telegram_hook) == 200
    foreign = env.telegram.press(CHAT, tg.message_id, user_id=CHAT, data="vote:yes")
    assert await env.telegram.deliver(foreign, url=env.telegram_hook) == 200
    await env.drain()
    # A press is always answered (the client spins until then), even one that is not ours.
    assert list(env.telegram.answers) == [foreign["callback_query"]["id"]]
    assert tg.edits == 0


async def test_a_failing_set_webhook_does_not_stop_the_agent(settings: Settings,
                                                             clock: FakeClock) -> None:
    slack, telegram = SlackEmulator(), TelegramEmulator()
    telegram.add_chat(CHAT)
    telegram.fail("5xx", times=1)
    async with slack.running() as slack_url, telegram.serve() as telegram_url:
        _configure(settings, slack_url, telegram_url)
        app = create_app(settings, clock=clock, loops=False)
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            await wait_until(lambda: telegram.count("setWebhook") == 1)
            await runtime(c).api.chat_acks.drain()
            assert telegram.webhook == {}
            assert (await c.get("/healthz")).status == 200
            await Env(c, slack, telegram, clock).fire()
            assert len(telegram.visible(CHAT)) == 1


def test_an_acknowledged_edit_offers_no_button() -> None:
    from agent.channels.base import Message

    edit = Message("ntf_1", "slack", "#a", "t", "s", "critical", "high", 0.0,
                   metadata={"alert_ids": ["alt_1"], "reason": "acknowledged",
                             "update": "edit", "acknowledged_by": "mem_ana"})
    assert not offers_ack(edit)
