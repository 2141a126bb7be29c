"""The Slack channel against the Slack emulator: posts, parts, edits, threads, retractions,
and Slack's error codes mapped to delivery errors."""

from __future__ import annotations

import html
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from agent.app import create_app
from agent.channels import http
from agent.channels.base import (
    AddressError,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.slack import SlackChannel, SlackSettings
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.pause import ChannelPause
from agent.delivery.retry import RetryPolicy
from agent.domain import now
from agent.observability import Metrics, get_logger
from agent.settings import ConfigError, Settings
from agent.store import Store
from tests.emulators.slack import SlackEmulator, SlackMessage, _shown
from tests.integration.test_store import item
from tests.unit.test_slack_blocks import alert_lines

TOKEN = "xoxb-test-2222-SlackBotTokenValue"


@dataclass
class Env:
    emu: SlackEmulator
    channel: SlackChannel


def make_channel(api_url: str, session: aiohttp.ClientSession, token: str = TOKEN,
                 **settings: Any) -> SlackChannel:
    cfg = SlackSettings.model_validate({"enabled": True, "api_url": api_url,
                                        "timeout_seconds": 0.5, **settings})
    return SlackChannel(cfg, token, lambda: session, get_logger("channel.slack"))


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    emu = SlackEmulator(token=TOKEN)
    async with emu.running() as api_url, aiohttp.ClientSession() as session:
        yield Env(emu, make_channel(api_url, session))


def msg(text: str = "disk full on db1", **kw: Any) -> Message:
    base: dict[str, Any] = dict(notification_id="ntf_1", channel="slack", to="#alerts",
                                text=text, subject="db1 disk", severity="critical",
                                priority="high", created_at=0.0, thread_key="grp_1")
    return Message(**{**base, **kw})


def body_text(m: SlackMessage) -> str:
    """A stored message's sections, unescaped, without the part label."""
    joined = "\n".join(html.unescape(s) for s in m.block_texts())
    return re.sub(r"^\(\d+/\d+\)\n", "", joined)


async def test_a_message_is_posted_with_blocks_and_its_ref(env: Env) -> None:
    got = await env.channel.send(msg("disk <full> & rising"))
    [m] = env.emu.messages_in("#alerts")
    assert got.provider_ref == {"channel": "C0ALERTS01", "ts": m.ts, "parts": [m.ts]}
    assert got.http_status == 200
    assert [b["type"] for b in m.blocks] == ["header", "section", "context"]
    assert m.block_texts() == ["disk &lt;full&gt; &amp; rising"]
    assert m.text.startswith("🔴 CRITICAL: db1 disk\n") and m.thread_ts is None


async def test_a_user_id_gets_a_direct_message(env: Env) -> None:
    got = await env.channel.send(msg(to="U0123ABCD"))
    assert got.provider_ref is not None and got.provider_ref["channel"] == "D0123ABCD"
    assert len(env.emu.messages_in("D0123ABCD")) == 1


async def test_a_200_alert_group_is_read_back_whole(env: Env) -> None:
    text = alert_lines(200)
    got = await env.channel.send(msg(text))
    ref = got.provider_ref
    assert ref is not None
    stored = env.emu.messages_in("#alerts")
    assert len(stored) == len(ref["parts"]) > 1
    assert [m.ts for m in stored] == ref["parts"]
    first, *rest = stored
    # The later parts are replies in the first part's thread, in order.
    assert first.thread_ts is None and all(m.thread_ts == first.ts for m in rest)
    assert "\n".join(body_text(m) for m in stored) == text
    assert env.emu.count(answered="ok") == len(stored)  # not one refusal on the way


async def test_edit_updates_the_message_in_place(env: Env) -> None:
    first = await env.channel.send(msg())
    got = await env.channel.send(msg("all good again", status="resolved",
                                     replaces=first.provider_ref))
    [m] = env.emu.messages_in("#alerts")
    assert got.provider_ref == first.provider_ref
    assert m.edits == 1 and m.text.startswith("✅ RESOLVED: db1 disk")
    assert body_text(m) == "all good again"


async def test_edit_to_more_parts_posts_them_and_back_to_fewer_deletes_them(env: Env) -> None:
    small = await env.channel.send(msg())
    big = await env.channel.send(msg(alert_lines(200), replaces=small.provider_ref))
    assert big.provider_ref is not None and small.provider_ref is not None
    parts = big.provider_ref["parts"]
    assert parts[0] == small.provider_ref["ts"] and len(parts) > 1
    stored = env.emu.messages_in("#alerts")
    assert [m.ts for m in stored] == parts
    assert "\n".join(body_text(m) for m in stored) == alert_lines(200)

    again = await env.channel.send(msg("only this now", replaces=big.provider_ref))
    assert again.provider_ref is not None and again.provider_ref["parts"] == parts[:1]
    [m] = env.emu.messages_in("#alerts")
    assert body_text(m) == "only this now" and m.edits == 2
    assert all(m.deleted for m in env.emu.messages_in("#alerts", deleted=True)[1:])


@pytest.mark.parametrize("code", ["edit_window_closed", "cant_update_message",
                                  "message_not_found"])
async def test_a_refused_edit_falls_back_to_a_new_message(env: Env, code: str) -> None:
    first = await env.channel.send(msg())
    env.emu.fail(code, methods=["chat.update"])
    got = await env.channel.send(msg("resolved", status="resolved",
                                     replaces=first.provider_ref))
    old, new = env.emu.messages_in("#alerts")
    assert got.provider_ref == {"channel": "C0ALERTS01", "ts": new.ts, "parts": [new.ts]}
    assert old.edits == 0 and new.thread_ts is None and body_text(new) == "resolved"


async def test_an_edit_of_a_deleted_message_posts_a_new_one(env: Env) -> None:
    first = await env.channel.send(msg())
    env.emu.messages_in("#alerts")[0].deleted = True  # someone deleted it in Slack
    got = await env.channel.send(msg("again", replaces=first.provider_ref))
    [new] = env.emu.messages_in("#alerts")
    assert got.provider_ref is not None and got.provider_ref["ts"] == new.ts
    assert env.emu.count("chat.update", answered="message_not_found") == 1


async def test_thread_mode_replies_in_the_thread(env: Env) -> None:
    first = await env.channel.send(msg())
    assert first.provider_ref is not None
    got = await env.channel.send(msg("resolved", status="resolved", update="thread",
                                     replaces=first.provider_ref))
    parent, reply = env.emu.messages_in("#alerts")
    assert reply.thread_ts == parent.ts == first.provider_ref["ts"] and parent.edits == 0
    assert got.provider_ref == {"channel": "C0ALERTS01", "ts": reply.ts, "parts": [reply.ts],
                                "thread_ts": parent.ts}
    # A later reply of the same group goes to the parent, not under the reply.
    await env.channel.send(msg("again", update="thread", replaces=got.provider_ref))
    assert env.emu.messages_in("#alerts")[-1].thread_ts == parent.ts


async def test_new_mode_posts_a_second_message(env: Env) -> None:
    first = await env.channel.send(msg())
    await env.channel.send(msg("resolved", status="resolved", update="new",
                               replaces=first.provider_ref))
    a, b = env.emu.messages_in("#alerts")
    assert (a.edits, a.thread_ts, b.thread_ts) == (0, None, None)


async def test_retract_deletes_every_part_and_a_gone_part_counts_as_deleted(env: Env) -> None:
    first = await env.channel.send(msg(alert_lines(200)))
    assert first.provider_ref is not None
    parts = first.provider_ref["parts"]
    env.emu.messages_in("#alerts")[-1].deleted = True  # one part already gone
    got = await env.channel.send(msg("resolved", status="resolved", retract=True,
                                     replaces=first.provider_ref))
    assert got.provider_ref == {**first.provider_ref, "deleted": True}
    assert env.emu.messages_in("#alerts") == []
    assert env.emu.count("chat.delete") == len(parts)
    # Resolved again: nothing left to delete, nothing posted.
    again = await env.channel.send(msg("resolved", status="resolved", retract=True,
                                       replaces=got.provider_ref))
    assert again.provider_ref == got.provider_ref and env.emu.messages_in("#alerts") == []
    assert env.emu.count("chat.delete") == len(parts)
    # A deleted ref is not edited again: the next message is a new one.
    await env.channel.send(msg("firing again", replaces=got.provider_ref))
    assert len(env.emu.messages_in("#alerts")) == 1


async def test_a_failed_later_part_takes_back_the_earlier_ones(env: Env) -> None:
    # Part 2 is refused: part 1 is deleted, so the retry does not show it twice.
    env.emu.fail("internal_error", methods=["chat.postMessage"], after=1)
    with pytest.raises(RetryableDeliveryError) as info:
        await env.channel.send(msg(alert_lines(200)))
    assert info.value.details == "slack chat.postMessage: internal_error"
    assert env.emu.count("chat.postMessage", answered="ok") == 1
    assert env.emu.messages_in("#alerts") == [] and env.emu.count("chat.delete") == 1
    # The retry posts every part once.
    got = await env.channel.send(msg(alert_lines(200)))
    assert got.provider_ref is not None
    assert [m.ts for m in env.emu.messages_in("#alerts")] == got.provider_ref["parts"]


@dataclass(frozen=True)
class Case:
    mode: str
    cls: type[DeliveryError]
    reason: str
    scope: ErrorScope = ErrorScope.MESSAGE
    retry_after: float | None = None


CASES = [
    Case("ratelimited", RetryableDeliveryError, "rate_limited", retry_after=2.0),
    Case("ratelimited_200", RetryableDeliveryError, "rate_limited", retry_after=2.0),
    Case("5xx", RetryableDeliveryError, "provider_unavailable"),
    Case("stall", RetryableDeliveryError, "timeout"),
    Case("malformed", RetryableDeliveryError, "network_error"),
    Case("garbage", RetryableDeliveryError, "provider_unavailable"),
    *(Case(c, RetryableDeliveryError, "provider_unavailable")
      for c in ("internal_error", "fatal_error", "service_unavailable", "request_timeout")),
    Case("channel_not_found", PermanentDeliveryError, "invalid_recipient", ErrorScope.RECIPIENT),
    *(Case(c, PermanentDeliveryError, "provider_rejected", ErrorScope.RECIPIENT)
      for c in ("not_in_channel", "is_archived")),
    Case("msg_too_long", PermanentDeliveryError, "provider_rejected", ErrorScope.MESSAGE),
    *(Case(c, PermanentDeliveryError, "provider_rejected", ErrorScope.CHANNEL)
      for c in ("invalid_auth", "not_authed", "account_inactive", "token_revoked",
                "missing_scope")),
    Case("some_new_error", PermanentDeliveryError, "provider_rejected", ErrorScope.MESSAGE),
]


@pytest.mark.parametrize("case", CASES, ids=[c.mode for c in CASES])
async def test_slack_answers_map_to_delivery_errors(env: Env, case: Case) -> None:
    env.emu.fail(case.mode, retry_after=2 if case.retry_after else None)
    with pytest.raises(DeliveryError) as info:
        await env.channel.send(msg())
    err = info.value
    assert isinstance(err, case.cls)
    assert (err.reason.value, err.scope) == (case.reason, case.scope)
    if isinstance(err, RetryableDeliveryError):
        assert err.retry_after == case.retry_after
    assert TOKEN not in err.details and TOKEN not in str(err)
    assert env.emu.count() == 1  # no retry inside the channel


async def test_the_real_refusals_of_the_emulator_map_alike(env: Env) -> None:
    env.emu.archived.add("C0OPS00001")
    cases = {"#ops": "is_archived", "#nowhere": "channel_not_found",
             "C0NOTKNOWN": "channel_not_found"}
    for to, code in cases.items():
        with pytest.raises(PermanentDeliveryError) as info:
            await env.channel.send(msg(to=to))
        assert info.value.scope is ErrorScope.RECIPIENT and code in info.value.details


async def test_a_wrong_token_is_channel_scoped(env: Env) -> None:
    async with aiohttp.ClientSession() as session:
        url = env.channel._api  # noqa: SLF001 (the emulator's URL)
        wrong = make_channel(url, session, token="xoxb-not-the-right-one")
        with pytest.raises(PermanentDeliveryError) as info:
            await wrong.send(msg())
    assert info.value.scope is ErrorScope.CHANNEL
    assert info.value.details == "slack chat.postMessage: invalid_auth"


async def test_a_reply_cut_at_the_read_limit_still_yields_the_ref(env: Env) -> None:
    # Slack echoes the message back: 40,000 characters of multi-byte text in the text and
    # again in the blocks pass the 64 KiB read limit, and the reply is cut.
    got = await env.channel.send(msg("ü€" * 15_000))
    [m] = env.emu.messages_in("#alerts")
    assert len(orjson.dumps(_shown(m))) > 2 * http.MAX_REPLY_BYTES
    assert got.provider_ref == {"channel": "C0ALERTS01", "ts": m.ts, "parts": [m.ts]}


def test_addresses(env: Env) -> None:
    ch = env.channel
    for good in ("#alerts", "#ops-eu_1", "C0123ABCD", "G0123ABCD", "D0123ABCD", "U0123ABCD",
                 "W0123ABCD"):
        assert ch.validate_address(good) == good
    for bad in ("alerts", "#", "# a", "#a b", "c0123", "X0123ABCD", "https://hooks.slack.com/x",
                "#" + "a" * 81, "<!here>"):
        with pytest.raises(AddressError):
            ch.validate_address(bad)


async def test_a_queued_bad_address_fails_for_its_recipient(env: Env) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await env.channel.send(msg(to="not an address"))
    assert info.value.scope is ErrorScope.RECIPIENT and env.emu.count() == 0


def test_one_bucket_and_one_destination_per_slack_channel(env: Env) -> None:
    [rate] = env.channel.rates("#alerts")
    assert (rate.key, rate.per_second, rate.burst) == ("slack:#alerts", 1.0, 3.0)
    assert env.channel.rates("#ops")[0].key != rate.key
    assert env.channel.destination_key("#alerts") == "slack:#alerts"


async def test_the_rate_is_a_setting() -> None:
    async with aiohttp.ClientSession() as session:
        ch = make_channel("http://127.0.0.1:1/api", session, rate_per_second=0.5)
    assert ch.rates("C0123ABCD")[0].per_second == 0.5


async def test_a_delivered_result_is_what_the_dispatcher_stores(env: Env) -> None:
    got = await env.channel.send(msg())
    assert isinstance(got, DeliveryResult)
    assert set(got.provider_ref or {}) == {"channel", "ts", "parts"}


async def test_a_revoked_token_pauses_slack_once_through_the_dispatcher(
        store: Store, stream: io.StringIO) -> None:
    # Twenty rows for Slack and a token Slack refuses: one log line, one pause in the
    # metrics; no row fails and none spends an attempt.
    emu = SlackEmulator(token="xoxb-the-real-one")
    rows = [replace(item(), channel="slack", recipient="#alerts") for _ in range(20)]
    await store.notifications.create(rows)
    metrics = Metrics(CollectorRegistry())
    async with emu.running() as api_url, aiohttp.ClientSession() as session:
        slack = make_channel(api_url, session)
        dispatcher = Dispatcher(store.notifications, {"slack": slack}, metrics,
                                retry=RetryPolicy(max_attempts=2),
                                clock=lambda: now() + 1.0,
                                pause=ChannelPause(metrics, base=60.0))
        await dispatcher.run_until_idle()
        # The sends already in flight when the first refusal came back are refused alike;
        # after that the channel is paused and nothing more goes out.
        first_round = emu.count()
        for _ in range(4):  # bounded: a few more rounds at the same (fake) time
            await dispatcher.run_until_idle()
    assert 1 <= emu.count() == first_round <= len(rows)
    assert {r.answered for r in emu.requests} == {"invalid_auth"}
    got = [await store.notifications.get(r.id) for r in rows]
    assert {(n.status, n.attempts) for n in got if n} == {("queued", 0)}
    # Waiting for the channel, or (with the channel's token bucket) for a token before that.
    reasons = [n.failure_reason for n in got if n]
    assert "channel_paused" in reasons and set(reasons) <= {"channel_paused", "throttled"}
    events = [orjson.loads(x) for x in stream.getvalue().splitlines()]
    paused = [e for e in events if e["event"] == "channel_paused"]
    assert len(paused) == 1 and paused[0]["channel"] == "slack"
    assert paused[0]["details"] == "slack chat.postMessage: invalid_auth"
    assert TOKEN not in stream.getvalue()
    sample = metrics.registry.get_sample_value
    assert sample("alert_agent_channel_paused", {"channel": "slack"}) == 1
    assert sample("alert_agent_channel_pauses_total", {"channel": "slack"}) == 1


async def test_start_up_refuses_slack_enabled_without_a_token(settings: Settings) -> None:
    settings.channels.slack = SlackSettings(enabled=True)
    server = TestServer(create_app(settings), host="127.0.0.1")
    with pytest.raises(ConfigError, match=r"channels\.slack\.bot_token"):
        await server.start_server()
    await server.close()


async def test_the_route_may_truncate_instead_of_splitting(env: Env) -> None:
    got = await env.channel.send(msg(alert_lines(200), overflow="truncate",
                                     link="https://agent.test/v1/notifications/ntf_1"))
    [m] = env.emu.messages_in("#alerts")
    assert got.provider_ref is not None and got.provider_ref["parts"] == [m.ts]
    assert "truncated" in m.block_texts()[-1]
    assert "https://agent.test/v1/notifications/ntf_1" in m.block_texts()[-1]
