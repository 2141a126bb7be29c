"""The push (ntfy) channel against the ntfy emulator: settings, headers (a non-ASCII title
arrives intact), priorities and tags, the 4,096-byte body budget (a 200-alert group arrives
visibly trimmed, or whole in parts), edit and retract through sequence ids with the fallback for
older servers, auth, the failure modes, and the token kept out of details and logs."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.channels import push
from agent.channels.base import (
    AddressError,
    DeliveryError,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.registry import ChannelBuildError, ChannelsSettings, build_channels
from tests.emulators.ntfy import NtfyEmulator
from tests.integration.test_teams import deps, group_text, secret

LINK = "https://agent.example/v1/notifications/ntf_1"
TOKEN = "tk_pushtesttoken0123456789abcdef"


def message(to: str = "alerts", text: str = "disk full on db1", **kw: Any) -> Message:
    base: dict[str, Any] = dict(
        notification_id="ntf_1", channel="push", to=to, text=text, subject="db1 down",
        severity="critical", priority="high", created_at=1_700_000_000.0, thread_key="grp_1",
        link=LINK)
    base.update(kw)
    return Message(**base)


@pytest.fixture
async def emu() -> AsyncIterator[tuple[NtfyEmulator, str]]:
    e = NtfyEmulator(tokens={TOKEN}, protected={"private"})
    async with e.serve() as url:
        yield e, url




def channel(url: str, session: aiohttp.ClientSession, token: str | None = TOKEN,
            timeout: float = 2.0) -> push.PushChannel:
    cfg = push.PushSettings(enabled=True, ntfy_url=url, timeout_seconds=timeout,
                            token=token)  # type: ignore[arg-type]
    return push.PushChannel.from_settings(cfg, secret, lambda: session)


# --- settings -------------------------------------------------------------------------------

def test_disabled_by_default_and_enabled_needs_ntfy_url() -> None:
    assert build_channels(ChannelsSettings(), deps()).get("push") is None
    with pytest.raises(ChannelBuildError, match=r"channels\.push.*ntfy_url"):
        build_channels(ChannelsSettings(push={"enabled": True}), deps())
    with pytest.raises(ChannelBuildError, match="base URL"):
        build_channels(ChannelsSettings(push={"enabled": True,
                                              "ntfy_url": "ntfy.sh/alerts?x=1"}), deps())
    # A public server needs no token.
    built = build_channels(ChannelsSettings(push={"enabled": True,
                                                  "ntfy_url": "https://ntfy.sh"}), deps())
    assert built["push"].validate_address("alerts") == "alerts"


async def test_the_token_may_come_from_a_file(tmp_path: Path,
                                              emu: tuple[NtfyEmulator, str],
                                              session: aiohttp.ClientSession) -> None:
    e, url = emu
    path = tmp_path / "ntfy-token"
    path.write_text(TOKEN + "\n")
    cfg = push.PushSettings(enabled=True, ntfy_url=url, token_file=path)
    ch = push.PushChannel.from_settings(cfg, secret, lambda: session)
    await ch.send(message(to="private"))
    assert [n.message for n in e.current("private")] == ["disk full on db1"]
    with pytest.raises(ChannelBuildError, match="both set"):
        build_channels(ChannelsSettings(push={"enabled": True, "ntfy_url": url,
                                              "token": "tk_x", "token_file": path}), deps())


@pytest.mark.parametrize("to", ["", "a/b", "a b", "x" * 65, "topic?x=1", "ünïcode"])
def test_to_is_an_ntfy_topic(to: str) -> None:
    ch = push.PushChannel("https://ntfy.sh", None, 1.0, lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(AddressError):
        ch.validate_address(to)
    assert ch.validate_address("db-alerts_2") == "db-alerts_2"


def test_a_bucket_for_ntfy_sh_only() -> None:
    public = push.PushChannel("https://ntfy.sh/", None, 1.0, lambda: None)  # type: ignore[arg-type,return-value]
    [rate] = public.rates("alerts")
    assert (rate.per_second, rate.burst) == (0.2, 60.0)
    own = push.PushChannel("https://ntfy.example.com", None, 1.0, lambda: None)  # type: ignore[arg-type,return-value]
    assert list(own.rates("alerts")) == []
    assert public.destination_key("a") != public.destination_key("b")


def test_rate_per_second_sets_one_bucket_for_the_server() -> None:
    built = build_channels(ChannelsSettings(push={
        "enabled": True, "ntfy_url": "https://ntfy.example.com", "rate_per_second": 2.5}),
        deps())["push"]
    assert isinstance(built, push.PushChannel)
    [a], [b] = built.rates("alerts"), built.rates("other")
    assert a == b and (a.per_second, a.burst) == (2.5, push.SET_RATE_BURST)


# --- publishing -----------------------------------------------------------------------------

async def test_a_message_arrives_with_its_headers(emu: tuple[NtfyEmulator, str],
                                                  session: aiohttp.ClientSession) -> None:
    e, url = emu
    result = await channel(url, session).send(message(to="private"))
    [shown] = e.current("private")
    assert (shown.message, shown.title, shown.priority, shown.tags, shown.click) == (
        "disk full on db1", "db1 down", 5, ["rotating_light"], LINK)
    assert result.http_status == 200 and result.provider_ref == {
        "topic": "private", "id": shown.id, "sequence_id": shown.id, "parts": 1}
    assert e.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_non_ascii_title_arrives_intact(emu: tuple[NtfyEmulator, str],
                                                session: aiohttp.ClientSession) -> None:
    e, url = emu
    short = "Disque plein sur la base de données \N{FIRE}"
    long = "é\N{FIRE}" * 60 + " =?not an encoded word?="
    ch = channel(url, session)
    await ch.send(message(subject=short))
    await ch.send(message(subject=long))
    assert [n.title for n in e.current("alerts")] == [short, long]
    sent = [r.headers["Title"] for r in e.requests]
    assert all(v.isascii() for v in sent)  # encoded words, not raw UTF-8
    # RFC 2047: an encoded word is at most 75 characters.
    assert all(len(w) <= 75 for v in sent for w in v.split(" ") if w.startswith("=?"))
    assert push.header_value("plain ascii\r\nInjected: yes") == "plain ascii Injected: yes"


@pytest.mark.parametrize(("severity", "status", "priority", "tag"), [
    ("critical", "firing", 5, "rotating_light"),
    ("warning", "firing", 4, "warning"),
    ("info", "firing", 3, "information_source"),
    ("critical", "resolved", 3, "white_check_mark"),
    ("info", "resolved", 3, "white_check_mark"),
])
async def test_priority_and_tag_follow_severity_and_status(
        emu: tuple[NtfyEmulator, str], session: aiohttp.ClientSession, severity: str,
        status: Any, priority: int, tag: str) -> None:
    e, url = emu
    await channel(url, session).send(message(severity=severity, status=status, link=None))
    [shown] = e.current("alerts")
    assert (shown.priority, shown.tags, shown.click) == (priority, [tag], "")


# --- the size budget ------------------------------------------------------------------------

async def test_a_200_alert_group_is_visibly_trimmed_by_default(
        emu: tuple[NtfyEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    text = group_text()
    await channel(url, session).send(message(text=text))
    [shown] = e.current("alerts")
    assert shown.attachment is None  # never turned into an attachment
    assert len(shown.message.encode()) <= push.MAX_BODY_BYTES
    assert shown.message.endswith(f"full text at {LINK}") and "… truncated, " in shown.message
    assert text.startswith(shown.message.split("\n…", 1)[0])


async def test_split_sends_the_group_in_numbered_parts(emu: tuple[NtfyEmulator, str],
                                                       session: aiohttp.ClientSession) -> None:
    e, url = emu
    text = group_text(100)
    result = await channel(url, session).send(message(text=text, overflow="split"))
    shown = e.current("alerts")
    n = len(shown)
    assert n >= 2 and result.provider_ref is not None and result.provider_ref["parts"] == n
    assert all(s.attachment is None and len(s.message.encode()) <= 4096 for s in shown)
    assert [s.message.split("\n", 1)[0] for s in shown] == [f"({i}/{n})" for i in range(1, n + 1)]
    assert [line for s in shown for line in s.message.split("\n")[1:]] == text.split("\n")


async def test_a_multibyte_body_is_budgeted_in_bytes(emu: tuple[NtfyEmulator, str],
                                                     session: aiohttp.ClientSession) -> None:
    e, url = emu
    await channel(url, session).send(message(text="\N{FIRE}é" * 2000))
    [shown] = e.current("alerts")
    assert shown.attachment is None and len(shown.message.encode()) <= 4096


# --- edit and retract -----------------------------------------------------------------------

async def test_a_later_message_edits_the_first_in_place(emu: tuple[NtfyEmulator, str],
                                                        session: aiohttp.ClientSession) -> None:
    e, url = emu
    ch = channel(url, session)
    first = await ch.send(message())
    second = await ch.send(message(text="db1 and db2 full", replaces=first.provider_ref))
    third = await ch.send(message(text="all clear", status="resolved",
                                  replaces=second.provider_ref))
    [shown] = e.current("alerts")
    assert (shown.message, shown.edits, shown.tags) == ("all clear", 2, ["white_check_mark"])
    assert first.provider_ref is not None and third.provider_ref is not None
    assert third.provider_ref["sequence_id"] == first.provider_ref["id"] == shown.id
    assert third.provider_ref["edited"] is True


@pytest.mark.parametrize("update", ["new", "thread"])
async def test_update_new_or_thread_posts_a_new_notification(
        emu: tuple[NtfyEmulator, str], session: aiohttp.ClientSession, update: Any) -> None:
    e, url = emu
    ch = channel(url, session)
    first = await ch.send(message())
    await ch.send(message(text="all clear", status="resolved", replaces=first.provider_ref,
                          update=update))
    assert [n.message for n in e.current("alerts")] == ["disk full on db1", "all clear"]


async def test_an_older_server_gets_a_follow_up(session: aiohttp.ClientSession) -> None:
    e = NtfyEmulator(sequences=False)
    async with e.serve() as url:
        ch = channel(url, session, token=None)
        first = await ch.send(message())
        second = await ch.send(message(text="all clear", status="resolved",
                                       replaces=first.provider_ref))
        assert second.provider_ref is not None and second.provider_ref["edited"] is False
        retracted = await ch.send(message(text="gone", status="resolved", retract=True,
                                          replaces=first.provider_ref))
    # No sequences: the resolve and the refused delete each arrive as a new notification.
    assert [n.message for n in e.current("alerts")] == ["disk full on db1", "all clear", "gone"]
    assert retracted.provider_ref is not None and "deleted" not in retracted.provider_ref
    assert [r.status for r in e.requests if r.method == "DELETE"] == [404]


async def test_retract_deletes_the_notification(emu: tuple[NtfyEmulator, str],
                                                session: aiohttp.ClientSession) -> None:
    e, url = emu
    ch = channel(url, session)
    first = await ch.send(message())
    result = await ch.send(message(text="all clear", status="resolved", retract=True,
                                   replaces=first.provider_ref))
    assert e.current("alerts") == [] and e.messages["alerts"][0].deleted
    assert result.provider_ref == {"topic": "alerts", "sequence_id": e.messages["alerts"][0].id,
                                   "deleted": True}
    assert e.events["alerts"][-1]["event"] == "message_delete"
    # A firing message does not retract, and a ref of another topic is not edited.
    await ch.send(message(retract=True, replaces=first.provider_ref))
    await ch.send(message(to="other", replaces=first.provider_ref))
    assert len(e.current("alerts")) == 1 and len(e.current("other")) == 1


# --- auth and failures ----------------------------------------------------------------------

async def test_auth_refusals_and_their_scope(emu: tuple[NtfyEmulator, str],
                                             session: aiohttp.ClientSession,
                                             logs: io.StringIO) -> None:
    e, url = emu
    with pytest.raises(PermanentDeliveryError) as anonymous:
        await channel(url, session, token=None).send(message(to="private"))
    assert anonymous.value.http_status == 403 and anonymous.value.scope is ErrorScope.RECIPIENT
    wrong = "tk_wrongtoken00000000000000000000"
    with pytest.raises(PermanentDeliveryError) as refused:
        await channel(url, session, token=wrong).send(message())
    # A refused token refuses every message: the channel pauses.
    assert refused.value.http_status == 401 and refused.value.scope is ErrorScope.CHANNEL
    assert wrong not in refused.value.details and wrong not in logs.getvalue()
    assert e.current("private") == [] and e.current("alerts") == []


async def test_failures_map_to_the_table_and_never_show_the_token(
        emu: tuple[NtfyEmulator, str], session: aiohttp.ClientSession,
        logs: io.StringIO) -> None:
    e, url = emu
    ch = channel(url, session, timeout=0.3)
    outcomes: list[DeliveryError] = []
    for kind in ("429", "5xx", "stall", "malformed"):
        e.failures.add(kind)
        with pytest.raises(DeliveryError) as exc:
            await ch.send(message())
        outcomes.append(exc.value)
    r429, r5xx, stall, malformed = outcomes
    assert isinstance(r429, RetryableDeliveryError) and r429.reason.value == "rate_limited"
    assert r429.retry_after is None and "42901" in r429.details  # ntfy names no delay
    assert isinstance(r5xx, RetryableDeliveryError) and r5xx.reason.value == "provider_unavailable"
    assert isinstance(stall, RetryableDeliveryError) and stall.reason.value == "timeout"
    assert isinstance(malformed, RetryableDeliveryError)
    assert malformed.reason.value == "network_error"
    for err in outcomes:
        assert TOKEN not in err.details and TOKEN not in str(err)
    assert TOKEN not in logs.getvalue()
    e.failures.add("429", seconds=60)
    with pytest.raises(RetryableDeliveryError):
        await ch.send(message())
    e.failures.clear()
    await ch.send(message())
    assert len(e.current("alerts")) == 1


async def test_the_emulator_refuses_what_ntfy_would(session: aiohttp.ClientSession) -> None:
    e = NtfyEmulator(attachment_limit=None)
    async with e.serve() as url:
        async with session.post(f"{url}/alerts", data=b"x" * 4097) as r:
            assert (r.status, (await r.json())["code"]) == (400, 40014)
        e.attachment_limit = 5000
        async with session.post(f"{url}/alerts", data=b"x" * 5001) as r:
            assert (r.status, (await r.json())["code"]) == (413, 41301)
        async with session.post(f"{url}/alerts", data=b"x" * 4097) as r:
            assert r.status == 200 and (await r.json())["attachment"]["size"] == 4097
        async with session.post(f"{url}/alerts", data=b"m", headers={"Priority": "9"}) as r:
            assert (r.status, (await r.json())["code"]) == (400, 40007)
        async with session.post(f"{url}/bad.topic", data=b"m") as r:
            assert r.status == 404
        async with session.post(f"{url}/alerts", data=b"m", headers={"p": "urgent"}) as r:
            assert (await r.json())["priority"] == 5
    assert [n.message for n in e.current("alerts")] == [
        "You received a file: attachment.txt", "m"]


async def test_an_acknowledge_link_is_a_one_tap_http_action(
        emu: tuple[NtfyEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    ack = "https://agent.example/ack/token.sig"
    await channel(url, session).send(message(ack_url=ack, ack_form="csrf=c5rf-_"))
    [action] = e.current("alerts")[-1].actions
    assert (action.action, action.label, action.url, action.method, action.body) == (
        "http", "Acknowledge", ack, "POST", "csrf=c5rf-_")
    assert action.headers == {"Content-Type": "application/x-www-form-urlencoded"}
