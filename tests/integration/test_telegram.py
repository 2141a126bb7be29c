"""The Telegram channel against the Bot API emulator: what the chat shows afterwards (text after
entity parsing, parts, edits, deletions, replies), and how each refusal is classified."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from agent.channels.base import (
    AddressError,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.budget import utf16_units
from agent.channels.registry import (
    SPECS,
    ChannelBuildError,
    ChannelDeps,
    ChannelsSettings,
    build_channels,
)
from agent.channels.telegram import TelegramChannel, TelegramSettings, render
from agent.observability import get_logger
from tests.emulators.telegram import TOKEN, TelegramEmulator, parse_html

PRIVATE = 4242
GROUP = -1001234567890
TIMEOUT = 0.5


def _secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    return file.read_text().strip() if file is not None else None


def _deps(session: aiohttp.ClientSession | None = None) -> ChannelDeps:
    deps = ChannelDeps(secret=_secret, generated_secret=lambda n: "gen", logger=get_logger)
    return deps if session is None else dataclasses.replace(deps, session=lambda: session)


def _channel(url: str, session: aiohttp.ClientSession, **extra: Any) -> TelegramChannel:
    cfg = TelegramSettings.model_validate({"enabled": True, "bot_token": TOKEN, "api_url": url,
                                           "timeout_seconds": TIMEOUT, **extra})
    channel = SPECS["telegram"].build(cfg, _deps(session))
    assert isinstance(channel, TelegramChannel)
    return channel


def msg(text: str = "disk full on db1", *, to: int | str = PRIVATE, subject: str | None = "db1",
        **kw: Any) -> Message:
    base = Message(notification_id=kw.pop("nid", "ntf_1"), channel="telegram", to=str(to),
                   text=text, subject=subject, severity=kw.pop("severity", "critical"),
                   priority="high", created_at=1_700_000_000.0, thread_key="grp_1")
    return dataclasses.replace(base, **kw)


@pytest.fixture
async def tg() -> AsyncIterator[tuple[TelegramEmulator, TelegramChannel]]:
    emu = TelegramEmulator()
    emu.add_chat(PRIVATE)
    emu.add_chat(GROUP, "supergroup", username="ops_alerts")
    async with emu.serve() as url, aiohttp.ClientSession() as session:
        yield emu, _channel(url, session)



async def _fails(channel: TelegramChannel, message: Message) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await channel.send(message)
    return info.value


def _alerts(n: int) -> str:
    """A realistic Alertmanager-style group: values with <, >, & and non-BMP characters."""
    lines = [f"[FIRING:{n}] HighLatency (api & db) <prod>"]
    for i in range(n):
        lines.append(
            f"- alertname=HighLatency instance=<host-{i:03d}.example:9090> job=api&web "
            f"severity=critical\n  summary: p99 > 2s & errors < 5% on \"checkout\" \U0001f680 "
            f"(runbook https://runbooks.example/latency?a=1&b={i})")
    return "\n".join(lines)


# -- settings, addresses, limits -------------------------------------------------------------


def test_disabled_by_default_and_enabled_needs_a_token(tmp_path: Path) -> None:
    assert "telegram" not in build_channels(ChannelsSettings(), _deps())
    with pytest.raises(ChannelBuildError) as info:
        build_channels(ChannelsSettings.model_validate({"telegram": {"enabled": True}}), _deps())
    assert info.value.problems == [
        "channels.telegram: channels.telegram.bot_token (or bot_token_file) is required when "
        "the channel is enabled"]
    with pytest.raises(ChannelBuildError) as info:
        build_channels(ChannelsSettings.model_validate(
            {"telegram": {"enabled": True, "bot_token": "not a token"}}), _deps())
    assert "channels.telegram.bot_token is not a bot token" in info.value.problems[0]
    assert "not a token" not in info.value.problems[0].split("is not a bot token")[0]
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    built = build_channels(ChannelsSettings.model_validate(
        {"telegram": {"enabled": True, "bot_token_file": str(token_file)}}), _deps())
    assert isinstance(built["telegram"], TelegramChannel)


def test_settings_defaults_and_api_url() -> None:
    cfg = TelegramSettings()
    assert (cfg.enabled, cfg.api_url, cfg.rate_per_second, cfg.chat_rate_per_second,
            cfg.group_rate_per_minute) == (False, "https://api.telegram.org", 30.0, 1.0, 20.0)
    assert TelegramSettings(api_url="http://127.0.0.1:8081/").api_url == "http://127.0.0.1:8081"
    with pytest.raises(ValidationError):
        TelegramSettings(api_url="api.telegram.org")
    with pytest.raises(ValidationError):
        TelegramSettings.model_validate({"webhook_url": "x"})  # unknown keys are refused


async def test_addresses(tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    _emu, channel = tg
    for good in ("4242", "-1001234567890", "-4001234", "@ops_alerts"):
        assert channel.validate_address(good) == good
    for bad in ("", "0", "007", "12.5", "-", "@abc", "@1abc", "ops", "4242 ", "@a b",
                "12345678901234567", "https://t.me/ops"):
        with pytest.raises(AddressError):
            channel.validate_address(bad)


async def test_rates_and_destinations(tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    _emu, channel = tg
    assert [(r.key, r.per_second) for r in channel.rates("4242")] == [
        ("telegram", 30.0), ("telegram:4242", 1.0)]
    assert [(r.key, r.per_second) for r in channel.rates("-1001234567890")][1] == (
        "telegram:-1001234567890", 20 / 60)
    assert channel.rates("@ops_alerts")[1].per_second == 20 / 60
    assert channel.destination_key("4242") == "telegram:4242"
    assert channel.destination_key("4242") != channel.destination_key("-4242")
    async with aiohttp.ClientSession() as session:
        tuned = _channel("http://127.0.0.1:1", session, rate_per_second=10,
                         chat_rate_per_second=0.5, group_rate_per_minute=6)
    assert [r.per_second for r in tuned.rates("1")] == [10.0, 0.5]
    assert tuned.rates("-1")[1].per_second == pytest.approx(0.1)
    limits = channel.limits
    assert (limits.max_text_chars, limits.can_edit, limits.can_delete, limits.overflow) == (
        None, True, True, "split")


# -- sending -----------------------------------------------------------------------------------


async def test_a_message_is_escaped_with_the_subject_in_bold(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    result = await channel.send(msg("load <b>9</b> & rising > 5 &amp; <script>",
                                    subject="db<1> & db2"))
    [stored] = emu.messages[PRIVATE]
    assert stored.text == "\U0001f534 db<1> & db2\nload <b>9</b> & rising > 5 &amp; <script>"
    # The subject, and nothing of the values, is an entity.
    bold = stored.text.encode("utf-16-le")[2 * 3:2 * (3 + utf16_units("db<1> & db2"))]
    assert stored.entities == [{"type": "bold", "offset": 3, "length": utf16_units("db<1> & db2")}]
    assert bold.decode("utf-16-le") == "db<1> & db2"
    assert stored.link_preview_disabled
    assert result == DeliveryResult(provider_ref={"chat_id": PRIVATE, "message_id": 1,
                                                  "parts": [1]}, http_status=200)
    body = emu.requests[0].body
    assert body["parse_mode"] == "HTML" and body["chat_id"] == PRIVATE


async def test_markers_by_severity_and_resolved() -> None:
    firsts = [render(msg(severity=s))[0][:2] for s in ("critical", "warning", "info", "other")]
    assert [f[0] for f in firsts] == ["\U0001f534", "\U0001f7e0", "\U0001f535", "\u26aa"]
    assert render(msg(status="resolved"))[0].startswith("\u2705 <b>db1</b>\n")
    # No subject: the severity names the message; a multi-line subject is one line.
    assert render(msg(subject=None))[0].startswith("\U0001f534 <b>critical</b>\n")
    assert render(msg(subject="a\nb  c"))[0].startswith("\U0001f534 <b>a b c</b>\n")


async def test_a_channel_username_resolves_to_its_chat_id(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    result = await channel.send(msg(to="@ops_alerts"))
    assert result.provider_ref == {"chat_id": GROUP, "message_id": 1, "parts": [1]}
    assert len(emu.visible(GROUP)) == 1


async def test_a_200_alert_group_arrives_whole_in_numbered_parts(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    text = _alerts(200)
    assert utf16_units(text) > 4 * 4096
    result = await channel.send(msg(text, to=GROUP, subject="HighLatency <prod> & co"))
    parts = emu.visible(GROUP)
    assert result.provider_ref is not None
    assert result.provider_ref["parts"] == [m.message_id for m in parts]
    n = len(parts)
    assert 4 < n <= 10
    for i, part in enumerate(parts, 1):
        assert utf16_units(part.text) <= 4096
        assert part.text.startswith(f"({i}/{n})\n")
        assert part.html is not None and parse_html(part.html)[0] == part.text
    whole = "".join(re.sub(r"^\(\d+/\d+\)\n", "", p.text) for p in parts)
    expected = "\U0001f534 HighLatency <prod> & co\n" + text
    assert "".join(whole.split()) == "".join(expected.split())  # nothing lost, in order
    assert parts[0].entities[0]["type"] == "bold"


async def test_truncate_mode_sends_one_message_with_the_marker_and_link(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    await channel.send(msg(_alerts(200), overflow="truncate",
                           link="https://agent.example/n/ntf_1?a=1&b=2"))
    [stored] = emu.visible(PRIVATE)
    assert utf16_units(stored.text) <= 4096
    assert stored.text.endswith("full text at https://agent.example/n/ntf_1?a=1&b=2")
    assert "… truncated, " in stored.text


async def test_a_retry_resumes_after_the_parts_already_posted(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    message = msg(_alerts(60), to=GROUP, nid="ntf_split")
    n = len(render(message))
    assert n >= 3
    emu.fail("429", after=1, retry_after=4)  # the second part meets flood control
    err = await _fails(channel, message)
    assert isinstance(err, RetryableDeliveryError) and err.retry_after == 4.0
    assert len(emu.visible(GROUP)) == 1
    result = await channel.send(message)
    parts = emu.visible(GROUP)
    assert [p.text[:len(f"({n}/{n})")] for p in parts] == [f"({i}/{n})" for i in range(1, n + 1)]
    assert result.provider_ref is not None
    assert result.provider_ref["parts"] == [p.message_id for p in parts]
    # Another notification with the same text is its own message, not a resumption.
    await channel.send(dataclasses.replace(message, notification_id="ntf_again"))
    assert len(emu.visible(GROUP)) == 2 * n


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "cls", "reason", "scope"), [
    ("5xx", RetryableDeliveryError, "provider_unavailable", ErrorScope.MESSAGE),
    ("stall", RetryableDeliveryError, "timeout", ErrorScope.MESSAGE),
    ("malformed", RetryableDeliveryError, "network_error", ErrorScope.MESSAGE),
    ("403", PermanentDeliveryError, "provider_rejected", ErrorScope.RECIPIENT),
    ("400", PermanentDeliveryError, "provider_rejected", ErrorScope.MESSAGE),
])
async def test_scripted_failures(tg: tuple[TelegramEmulator, TelegramChannel], kind: Any,
                                 cls: type[DeliveryError], reason: str,
                                 scope: ErrorScope) -> None:
    emu, channel = tg
    emu.fail(kind)
    err = await _fails(channel, msg())
    assert (type(err), err.reason.value, err.scope) == (cls, reason, scope)
    assert TOKEN not in str(err) and TOKEN.split(":")[1] not in err.details
    await channel.send(msg())  # one request failed, the next goes through
    assert len(emu.visible(PRIVATE)) == 1


async def test_flood_control_defers_by_the_body_retry_after(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    emu.fail("429", retry_after=17)
    err = await _fails(channel, msg())
    assert isinstance(err, RetryableDeliveryError)
    assert (err.reason.value, err.retry_after, err.http_status) == ("rate_limited", 17.0, 429)
    assert "Too Many Requests: retry after 17" in err.details


async def test_a_blocked_bot_and_an_unknown_chat_fail_that_recipient(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    emu.block(PRIVATE)
    err = await _fails(channel, msg())
    assert (type(err), err.reason.value, err.scope, err.http_status) == (
        PermanentDeliveryError, "provider_rejected", ErrorScope.RECIPIENT, 403)
    assert "bot was blocked by the user" in err.details
    err = await _fails(channel, msg(to=777))
    assert (type(err), err.reason.value, err.scope) == (
        PermanentDeliveryError, "invalid_recipient", ErrorScope.RECIPIENT)
    assert "chat not found" in err.details
    await channel.send(msg(to=GROUP))  # other chats still work
    assert len(emu.visible(GROUP)) == 1


async def test_a_refused_token_pauses_the_channel(logs: Any) -> None:
    emu = TelegramEmulator(token="111:Other_token")
    emu.add_chat(PRIVATE)
    async with emu.serve() as url, aiohttp.ClientSession() as session:
        err = await _fails(_channel(url, session), msg())
    assert (type(err), err.scope, err.http_status) == (
        PermanentDeliveryError, ErrorScope.CHANNEL, 401)
    assert TOKEN not in err.details and TOKEN not in logs.getvalue()


async def test_a_group_migrated_to_a_supergroup_gets_the_message_there(
        tg: tuple[TelegramEmulator, TelegramChannel], logs: Any) -> None:
    emu, channel = tg
    emu.migrate(-4001234, -1009876543210)
    result = await channel.send(msg(to=-4001234))
    assert result.provider_ref == {"chat_id": -1009876543210, "message_id": 1, "parts": [1]}
    assert [m.text for m in emu.visible(-1009876543210)] == ["\U0001f534 db1\ndisk full on db1"]
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    [warned] = [x for x in lines if x.get("event") == "telegram_chat_migrated"]
    assert (warned["level"], warned["old_chat_id"], warned["new_chat_id"]) == (
        "warning", -4001234, -1009876543210)
    assert TOKEN not in logs.getvalue()
    # Later sends go to the supergroup at once.
    emu.requests.clear()
    await channel.send(msg("again", to=-4001234, nid="ntf_2"))
    assert [r.body["chat_id"] for r in emu.requests] == [-1009876543210]
    assert len(emu.visible(-1009876543210)) == 2


# -- edits, threads, retraction ----------------------------------------------------------------


async def test_resolving_edits_the_message_in_place(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg("disk 95% full"))
    second = await channel.send(msg("disk 60% full", status="resolved", nid="ntf_2",
                                    replaces=first.provider_ref))
    [stored] = emu.messages[PRIVATE]
    assert (stored.text, stored.edits, stored.deleted) == ("\u2705 db1\ndisk 60% full", 1, False)
    assert second.provider_ref == first.provider_ref
    assert emu.count("sendMessage") == 1 and emu.count("editMessageText") == 1


async def test_an_edit_with_nothing_new_is_a_success(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg())
    again = await channel.send(msg(nid="ntf_2", replaces=first.provider_ref))
    assert again.provider_ref == first.provider_ref
    assert emu.requests[-1].status == 400  # "message is not modified", taken for done
    [stored] = emu.messages[PRIVATE]
    assert stored.edits == 0


async def test_an_edit_grows_and_shrinks_the_parts(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    one = await channel.send(msg("short", to=GROUP))
    big = msg(_alerts(60), to=GROUP, nid="ntf_2", replaces=one.provider_ref)
    n = len(render(big))
    grown = await channel.send(big)
    assert grown.provider_ref is not None
    parts = emu.visible(GROUP)
    assert len(parts) == n and parts[0].edits == 1
    assert grown.provider_ref["parts"] == [p.message_id for p in parts]
    assert parts[0].text.startswith(f"(1/{n})\n")
    shrunk = await channel.send(msg("resolved", to=GROUP, nid="ntf_3", status="resolved",
                                    replaces=grown.provider_ref))
    assert [m.text for m in emu.visible(GROUP)] == ["\u2705 db1\nresolved"]
    assert shrunk.provider_ref == {"chat_id": GROUP, "message_id": parts[0].message_id,
                                   "parts": [parts[0].message_id]}
    assert all(m.deleted for m in emu.messages[GROUP][1:])


@pytest.mark.parametrize("how", ["too old", "deleted"])
async def test_a_refused_edit_falls_back_to_a_new_message(
        tg: tuple[TelegramEmulator, TelegramChannel], how: str) -> None:
    emu, channel = tg
    first = await channel.send(msg("firing"))
    stored = emu.messages[PRIVATE][0]
    if how == "too old":
        stored.editable = False
    else:
        stored.deleted = True
    result = await channel.send(msg("resolved", status="resolved", nid="ntf_2",
                                    replaces=first.provider_ref))
    assert result.provider_ref == {"chat_id": PRIVATE, "message_id": 2, "parts": [2]}
    assert emu.messages[PRIVATE][1].text == "\u2705 db1\nresolved"
    assert stored.edits == 0


async def test_thread_mode_replies_to_the_first_part(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg("firing", to=GROUP))
    reply = await channel.send(msg("resolved", to=GROUP, status="resolved", nid="ntf_2",
                                   update="thread", replaces=first.provider_ref))
    assert [(m.message_id, m.reply_to, m.edits) for m in emu.visible(GROUP)] == [
        (1, None, 0), (2, 1, 0)]
    assert reply.provider_ref == {"chat_id": GROUP, "message_id": 2, "parts": [2]}
    assert emu.requests[-1].body["reply_parameters"] == {
        "message_id": 1, "allow_sending_without_reply": True}
    # The first message gone, the reply still goes out (allow_sending_without_reply).
    emu.messages[GROUP][0].deleted = True
    await channel.send(msg("again", to=GROUP, nid="ntf_3", update="thread",
                           replaces=first.provider_ref))
    assert emu.visible(GROUP)[-1].text == "\U0001f534 db1\nagain"


async def test_new_mode_posts_a_new_message(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg("firing"))
    await channel.send(msg("resolved", status="resolved", nid="ntf_2", update="new",
                           replaces=first.provider_ref))
    assert [(m.edits, m.reply_to) for m in emu.visible(PRIVATE)] == [(0, None), (0, None)]


async def test_retract_deletes_every_part(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg(_alerts(60), to=GROUP))
    assert first.provider_ref is not None
    emu.messages[GROUP][1].deleted = True  # someone deleted one already: that counts as done
    result = await channel.send(msg("resolved", to=GROUP, status="resolved", nid="ntf_2",
                                    retract=True, replaces=first.provider_ref))
    assert emu.visible(GROUP) == []
    assert result.provider_ref == {**first.provider_ref, "deleted": True}
    # A later firing of the group posts anew rather than editing what is gone.
    again = await channel.send(msg("firing again", to=GROUP, nid="ntf_3",
                                   replaces=result.provider_ref))
    assert emu.count("editMessageText") == 0 and len(emu.visible(GROUP)) == 1
    assert again.provider_ref is not None and again.provider_ref["chat_id"] == GROUP


async def test_retract_only_on_resolve_and_edits_what_cannot_be_deleted(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    first = await channel.send(msg("firing"))
    await channel.send(msg("still firing", nid="ntf_2", retract=True,
                           replaces=first.provider_ref))
    [stored] = emu.visible(PRIVATE)
    assert stored.edits == 1  # firing: edited, not deleted
    stored.deletable = False  # older than 48 hours
    await channel.send(msg("resolved", nid="ntf_3", status="resolved", retract=True,
                           replaces=first.provider_ref))
    assert (stored.deleted, stored.text, stored.edits) == (False, "\u2705 db1\nresolved", 2)


# -- the emulator checks as Telegram does ------------------------------------------------------


@pytest.mark.parametrize(("text", "why"), [
    ("a <b>b", "Can't find end tag"),
    ("a <b>b</i>", "Unmatched end tag"),
    ("a </b>", "Unexpected end tag"),
    ("a <p>b</p>", "Unsupported start tag \"p\""),
    ("a < b", "Unsupported start tag"),
    ("a <br/>", "Unsupported start tag \"br\""),
])
async def test_the_emulator_refuses_what_telegram_cannot_parse(text: str, why: str) -> None:
    emu = TelegramEmulator()
    emu.add_chat(PRIVATE)
    async with emu.serve() as url, aiohttp.ClientSession() as session:
        async with session.post(f"{url}/bot{TOKEN}/sendMessage", json={
                "chat_id": PRIVATE, "text": text, "parse_mode": "HTML"}) as resp:
            body = await resp.json()
    assert resp.status == 400 and body["ok"] is False and body["error_code"] == 400
    assert body["description"].startswith("Bad Request: can't parse entities: ")
    assert why in body["description"]
    assert emu.messages == {}


async def test_the_emulator_counts_length_after_parsing_in_utf16() -> None:
    emu = TelegramEmulator()
    emu.add_chat(PRIVATE)
    async with emu.serve() as url, aiohttp.ClientSession() as session:
        async def send(text: str) -> tuple[int, Any]:
            async with session.post(f"{url}/bot{TOKEN}/sendMessage", json={
                    "chat_id": PRIVATE, "text": text, "parse_mode": "HTML"}) as resp:
                return resp.status, await resp.json()

        assert (await send("<b>" + "&amp;" * 4096 + "</b>"))[0] == 200  # markup is free
        status, body = await send("\U0001f680" * 2049)  # 4,098 UTF-16 units
        assert (status, body["description"]) == (400, "Bad Request: message is too long")
        async with session.post(f"{url}/bot{TOKEN[:-1]}X/sendMessage",
                                json={"chat_id": PRIVATE, "text": "x"}) as resp:
            assert (resp.status, (await resp.json())["description"]) == (401, "Unauthorized")
        async with session.post(f"{url}/botnot-a-token/sendMessage",
                                json={"chat_id": PRIVATE, "text": "x"}) as resp:
            assert resp.status == 404
    assert [m.text[:1] for m in emu.messages[PRIVATE]] == ["&"]


async def test_an_emulator_with_open_chats_takes_any_chat_id() -> None:
    emu = TelegramEmulator(open_chats=True)
    async with emu.serve() as url, aiohttp.ClientSession() as session:
        channel = _channel(url, session)
        await channel.send(msg(to=-100555))
        await channel.send(msg(to=777))
        err = await _fails(channel, msg(to="@nobody_here"))
    assert err.reason.value == "invalid_recipient"
    assert (emu.chats[-100555].type, emu.chats[777].type) == ("supergroup", "private")
    assert [len(emu.visible(c)) for c in (-100555, 777)] == [1, 1]


async def test_a_failure_for_a_duration_answers_every_request_meanwhile(
        tg: tuple[TelegramEmulator, TelegramChannel]) -> None:
    emu, channel = tg
    emu.fail("429", seconds=60, retry_after=2)
    for i in range(3):
        err = await _fails(channel, msg(nid=f"ntf_{i}"))
        assert isinstance(err, RetryableDeliveryError) and err.retry_after == 2.0
    assert [r.status for r in emu.requests] == [429, 429, 429]
    times = [r.at for r in emu.requests]
    assert times == sorted(times)
    assert emu.messages == {}
