"""The Teams channel against the Workflows emulator: settings and secrets, the card, the size
budget (a 200-alert group arrives whole), follow-ups instead of edits, the failure modes, and
webhook URLs kept out of every detail and log line."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from agent.channels import teams
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    DeliveryError,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.registry import (
    ChannelBuildError,
    ChannelDeps,
    ChannelsSettings,
    build_channels,
    target_problem,
)
from agent.observability import get_logger
from agent.settings import ConfigError, resolve_secret
from tests.emulators.teams import MAX_BYTES, TeamsEmulator

LINK = "https://agent.example/v1/notifications/ntf_1"


def secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    """The daemon's resolver (agent/app.py): resolve_secret, errors as ChannelConfigError."""
    try:
        return resolve_secret(value, file, what)
    except ConfigError as exc:
        raise ChannelConfigError(str(exc)) from exc


def deps(session: aiohttp.ClientSession | None = None) -> ChannelDeps:
    def no_session() -> aiohttp.ClientSession:
        raise RuntimeError("no session")

    return ChannelDeps(secret=secret, generated_secret=lambda n: n, logger=get_logger,
                       session=(lambda: session) if session is not None else no_session)


def message(to: str = "ops", text: str = "disk full on db1", **kw: Any) -> Message:
    base: dict[str, Any] = dict(
        notification_id="ntf_1", channel="teams", to=to, text=text, subject="db1 down",
        severity="critical", priority="high", created_at=1_700_000_000.0, thread_key="grp_1",
        link=LINK)
    base.update(kw)
    return Message(**base)


@pytest.fixture
async def emu() -> AsyncIterator[TeamsEmulator]:
    e = TeamsEmulator()
    async with e.serve():
        yield e




def channel(emu: TeamsEmulator, session: aiohttp.ClientSession, *names: str,
            timeout: float = 2.0) -> teams.TeamsChannel:
    hooks = {n: emu.add_webhook(n) for n in names or ("ops",)}
    cfg = teams.TeamsSettings(enabled=True, webhooks=hooks,  # type: ignore[arg-type]
                              timeout_seconds=timeout)
    return teams.TeamsChannel.from_settings(cfg, secret, lambda: session)


# --- settings -------------------------------------------------------------------------------

def test_disabled_by_default_and_enabled_needs_a_webhook() -> None:
    assert build_channels(ChannelsSettings(), deps()).get("teams") is None
    with pytest.raises(ChannelBuildError) as exc:
        build_channels(ChannelsSettings(teams={"enabled": True}), deps())
    assert "channels.teams" in str(exc.value) and "without a webhook" in str(exc.value)


@pytest.mark.parametrize(("url", "problem"), [
    ("http://teams.example/hook?sig=SeCrEt123", "must be https"),
    ("ftp://teams.example/hook?sig=SeCrEt123", "not an http(s) URL"),
    ("https:///hook?sig=SeCrEt123", "not an http(s) URL"),
])
def test_a_webhook_url_must_be_https_and_the_error_names_the_alias_only(url: str,
                                                                        problem: str) -> None:
    with pytest.raises(ChannelBuildError) as exc:
        build_channels(ChannelsSettings(teams={"enabled": True, "webhooks": {"ops": url}}),
                       deps())
    assert problem in str(exc.value) and "'ops'" in str(exc.value)
    assert "SeCrEt123" not in str(exc.value)


def test_http_is_allowed_on_loopback_only() -> None:
    for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/hook", "http://localhost/h"):
        built = build_channels(ChannelsSettings(teams={"enabled": True,
                                                       "webhooks": {"ops": url}}), deps())
        assert built["teams"].validate_address("ops") == "ops"


def test_the_webhooks_file_is_yaml_or_json_and_exclusive(tmp_path: Path) -> None:
    yml = tmp_path / "hooks.yaml"
    yml.write_text("ops: https://a.example/x?sig=S1\ndb-team: https://b.example/y?sig=S2\n")
    js = tmp_path / "hooks.json"
    js.write_text(json.dumps({"ops": "https://a.example/x?sig=S1"}))
    for path, aliases in ((yml, {"ops", "db-team"}), (js, {"ops"})):
        built = build_channels(ChannelsSettings(teams={"enabled": True,
                                                       "webhooks_file": path}), deps())
        for alias in aliases:
            assert built["teams"].validate_address(alias) == alias
    with pytest.raises(ChannelBuildError, match="both set"):
        build_channels(ChannelsSettings(teams={
            "enabled": True, "webhooks_file": yml,
            "webhooks": {"x": "https://c.example/?sig=S3"}}), deps())


@pytest.mark.parametrize(("content", "problem"), [
    ("ops:\n  - https://a.example/x?sig=LEAKME\n", "mapping of alias to URL"),
    ("ops: https://a.example/x?sig=LEAKME\n  bad: : [\n", "not valid YAML"),
    ("", "is empty"),
    ("'bad alias': https://a.example/x?sig=LEAKME\n", "alias 'bad alias'"),
    ("'https://a.example/x?sig=LEAKME': ops\n", "alias of a URL's shape"),
])
def test_a_bad_webhooks_file_is_named_without_its_content(tmp_path: Path, content: str,
                                                          problem: str) -> None:
    path = tmp_path / "hooks.yaml"
    path.write_text(content)
    with pytest.raises(ChannelBuildError) as exc:
        build_channels(ChannelsSettings(teams={"enabled": True, "webhooks_file": path}), deps())
    assert problem in str(exc.value) and "channels.teams" in str(exc.value)
    assert "LEAKME" not in str(exc.value)


def test_to_is_an_alias_and_an_unknown_one_is_a_rule_error() -> None:
    built = build_channels(ChannelsSettings(teams={
        "enabled": True, "webhooks": {"ops": "https://a.example/x?sig=S1"}}), deps())
    with pytest.raises(AddressError, match="webhook alias"):
        built["teams"].validate_address("https://a.example/x?sig=S1")
    problem = target_problem(built, "teams", "db-team")
    assert problem is not None and "one of: ops" in problem and "S1" not in problem
    assert target_problem(built, "teams", "ops") is None


# --- the card -------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["202", "200", "200-1"])
async def test_a_card_is_posted_and_every_success_answer_is_delivered(
        emu: TeamsEmulator, session: aiohttp.ClientSession, answer: Any) -> None:
    emu.answer = answer
    result = await channel(emu, session).send(message())
    assert result.http_status == (202 if answer == "202" else 200)
    assert result.provider_ref == {"alias": "ops", "cards": 1, "http_status": result.http_status}
    [posted] = emu.cards["ops"]
    title, status, text = posted.texts
    assert title == "\N{LARGE RED CIRCLE} CRITICAL: db1 down"
    assert posted.content["body"][0]["color"] == "Attention"
    assert status == "Status: FIRING" and text == "disk full on db1"
    assert posted.urls == [LINK]
    assert posted.content["version"] == "1.4"


@pytest.mark.parametrize(("severity", "status", "marker", "colour"), [
    ("warning", "firing", "\N{LARGE ORANGE CIRCLE}", "Warning"),
    ("info", "firing", "\N{LARGE BLUE CIRCLE}", "Accent"),
    ("critical", "resolved", "\N{WHITE HEAVY CHECK MARK}", "Good"),
])
async def test_the_title_carries_the_severity(emu: TeamsEmulator, session: aiohttp.ClientSession,
                                              severity: str, status: Any, marker: str,
                                              colour: str) -> None:
    await channel(emu, session).send(message(severity=severity, status=status, link=None))
    [posted] = emu.cards["ops"]
    assert posted.texts[0].startswith(marker + " " + severity.upper())
    assert posted.content["body"][0]["color"] == colour
    assert posted.urls == []  # no link, no button


async def test_a_later_message_of_the_group_is_a_follow_up_card(
        emu: TeamsEmulator, session: aiohttp.ClientSession) -> None:
    ch = channel(emu, session)
    assert ch.limits.can_edit is False and ch.limits.can_delete is False
    first = await ch.send(message())
    await ch.send(message(text="all clear", status="resolved", replaces=first.provider_ref,
                          update="edit", retract=True))
    assert [p.texts[1] for p in emu.cards["ops"]] == ["Status: FIRING", "Status: RESOLVED"]
    assert emu.cards["ops"][1].texts[2] == "all clear"


# --- the size budget ------------------------------------------------------------------------

def group_text(n: int = 200) -> str:
    return "\n".join(
        f"[FIRING] alert {i:03d} DiskFull instance=db{i}.example:9100 severity=critical "
        f"summary='disk {i} on /var/lib/postgresql is 97% full' runbook=https://wiki/r/{i}"
        for i in range(n))


async def test_a_200_alert_group_arrives_whole_in_numbered_cards(
        emu: TeamsEmulator, session: aiohttp.ClientSession) -> None:
    text = group_text()
    assert len(text) > MAX_BYTES  # more than one card can hold
    result = await channel(emu, session).send(message(text=text))
    posted = emu.cards["ops"]
    n = len(posted)
    assert n >= 2 and result.provider_ref is not None and result.provider_ref["cards"] == n
    assert all(p.size <= teams.MAX_PAYLOAD_BYTES for p in posted)
    bodies = [p.texts[2] for p in posted]
    assert [b.split("\n", 1)[0] for b in bodies] == [f"({i}/{n})" for i in range(1, n + 1)]
    lines = [line for b in bodies for line in b.split("\n")[1:]]
    assert lines == text.split("\n")  # every alert, in order, none cut


async def test_truncate_gives_one_card_with_a_visible_marker_and_the_link(
        emu: TeamsEmulator, session: aiohttp.ClientSession) -> None:
    text = group_text()
    await channel(emu, session).send(message(text=text, overflow="truncate"))
    [posted] = emu.cards["ops"]
    body = posted.texts[2]
    assert posted.size <= teams.MAX_PAYLOAD_BYTES
    assert body.endswith(f"full text at {LINK}") and "… truncated, " in body
    assert text.startswith(body.split("\n…", 1)[0])


async def test_non_ascii_text_is_budgeted_as_escaped(emu: TeamsEmulator,
                                                     session: aiohttp.ClientSession) -> None:
    # Each emoji is 12 bytes escaped ("\ud83d\udd25"): a budget in characters or UTF-8 bytes
    # would overflow the card.
    text = "\n".join("\N{FIRE} " * 40 + f"line {i}" for i in range(300))
    await channel(emu, session).send(message(text=text))
    posted = emu.cards["ops"]
    assert len(posted) > 1 and all(p.size <= teams.MAX_PAYLOAD_BYTES for p in posted)
    assert [line for p in posted for line in p.texts[2].split("\n")[1:]] == text.split("\n")


async def test_the_emulator_refuses_what_teams_would(emu: TeamsEmulator,
                                                     session: aiohttp.ClientSession) -> None:
    url = emu.add_webhook("ops")
    big = teams.payload(teams.card(message(), "x" * MAX_BYTES))
    async with session.post(url, data=big, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "RequestEntityTooLarge"
    bad = json.dumps({"type": "message", "attachments": [
        {"contentType": "application/json", "content": {}}]})
    async with session.post(url, data=bad, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    async with session.post(url.replace("sig=", "sig=x"), json={}) as r:
        assert r.status == 401
    assert emu.cards["ops"] == []


# --- failures -------------------------------------------------------------------------------

async def test_failures_map_to_the_table_and_never_show_the_url(
        emu: TeamsEmulator, session: aiohttp.ClientSession, logs: io.StringIO) -> None:
    ch = channel(emu, session, timeout=0.3)
    sig = emu.sig("ops")
    outcomes: list[DeliveryError] = []
    for kind, kw in (("429", {"retry_after": 3}), ("5xx", {}), ("stall", {}),
                     ("malformed", {}), ("not_found", {}), ("unauthorized", {})):
        emu.failures.add(kind, **kw)
        with pytest.raises(DeliveryError) as exc:
            await ch.send(message())
        outcomes.append(exc.value)
    r429, r5xx, stall, malformed, gone, unauth = outcomes
    assert isinstance(r429, RetryableDeliveryError) and r429.retry_after == 3.0
    assert r429.reason.value == "rate_limited"
    assert isinstance(r5xx, RetryableDeliveryError) and r5xx.reason.value == "provider_unavailable"
    assert isinstance(stall, RetryableDeliveryError) and stall.reason.value == "timeout"
    assert isinstance(malformed, RetryableDeliveryError)
    assert malformed.reason.value == "network_error"
    for permanent in (gone, unauth):  # that webhook is gone or refused: the others still work
        assert isinstance(permanent, PermanentDeliveryError)
        assert permanent.scope is ErrorScope.RECIPIENT
    for err in outcomes:
        assert sig not in err.details and sig not in str(err) and "workflows/" not in err.details
    assert sig not in logs.getvalue()
    await ch.send(message())  # the plan is spent: a success again
    assert len(emu.cards["ops"]) == 1


async def test_a_missing_alias_fails_that_recipient(emu: TeamsEmulator,
                                                    session: aiohttp.ClientSession) -> None:
    with pytest.raises(PermanentDeliveryError) as exc:
        await channel(emu, session).send(message(to="gone"))
    assert exc.value.scope is ErrorScope.RECIPIENT
    assert exc.value.reason.value == "invalid_recipient"


def test_one_bucket_and_one_destination_per_webhook() -> None:
    ch = teams.TeamsChannel({"ops": "https://a.example/?sig=1", "db": "https://b.example/"},
                            1.0, lambda: None)  # type: ignore[arg-type,return-value]
    assert ch.destination_key("ops") != ch.destination_key("db")
    [rate] = ch.rates("ops")
    assert rate.key != ch.rates("db")[0].key
    assert (rate.per_second, rate.burst) == (teams.RATE_PER_SECOND, teams.RATE_BURST)
    faster = teams.TeamsChannel({"ops": "https://a.example/?sig=1"}, 1.0, lambda: None,  # type: ignore[arg-type,return-value]
                                rate_per_second=3.0)
    assert faster.rates("ops")[0].per_second == 3.0


async def test_parts_are_posted_in_order(emu: TeamsEmulator,
                                         session: aiohttp.ClientSession) -> None:
    ch = channel(emu, session)
    await ch.send(replace(message(text=group_text()), notification_id="ntf_2"))
    posted = emu.cards["ops"]
    assert [p.at for p in posted] == sorted(p.at for p in posted)


async def test_an_acknowledge_link_is_the_cards_first_action(
        emu: TeamsEmulator, session: aiohttp.ClientSession) -> None:
    ack = "https://agent.example/ack/token.sig"
    await channel(emu, session).send(message(ack_url=ack))
    [posted] = emu.cards["ops"]
    assert posted.urls == [ack, LINK]
    assert posted.content["actions"][0]["title"] == "Acknowledge"
