"""Acknowledge (issue 14): the API endpoints record the first acknowledgment, answer 200 on
repeats, stop the group's repeats, and edit the delivered messages to say who acknowledged;
unacknowledge re-arms the repeats. Chat and link actors are checked against the directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.api.context import CTX
from agent.app import create_app
from agent.clock import FakeClock
from agent.services.acknowledge import Actor
from agent.services.errors import Forbidden
from agent.settings import Settings
from tests.emulators.telegram import TOKEN, TelegramEmulator
from tests.helpers import LIVE_KEY, TEST_KEY, auth, runtime

Client = TestClient[Any, Any]
CHAT = 4242
GROUP = -1001234567  # a group chat: nobody's own, so only who the route allows may click
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
    notify:
      - {{channel: telegram, to: "{CHAT}"}}
      - {{channel: in-app, to: team_db}}
teams:
  - id: team_db
    name: DB
    members: [mem_ana, mem_raj]
members:
  - id: mem_ana
    name: Ana
    approved: true
    addresses: {{telegram: "{CHAT}"}}
  - id: mem_raj
    name: Raj
    approved: true
  - id: mem_eve
    name: Eve
    approved: true
    addresses: {{telegram: "777"}}
"""


@pytest.fixture
async def emu() -> AsyncIterator[tuple[TelegramEmulator, str]]:
    e = TelegramEmulator()
    e.add_chat(CHAT)
    async with e.serve() as url:
        yield e, url


@pytest.fixture
async def agent(settings: Settings, clock: FakeClock,
                emu: tuple[TelegramEmulator, str]) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.channels.telegram = settings.channels.telegram.model_validate({
        "enabled": True, "bot_token": TOKEN, "api_url": emu[1], "timeout_seconds": 2.0})
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def fire(c: Client, key: str | None = None) -> str:
    resp = await c.post("/v1/alerts", headers=auth(key) if key else auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical", "message": "disk full"})
    assert resp.status == 201, await resp.text()
    await runtime(c).run_until_idle()
    return str((await resp.json())["data"]["id"])


async def alert(c: Client, aid: str) -> dict[str, Any]:
    resp = await c.get(f"/v1/alerts/{aid}", headers=auth())
    assert resp.status == 200
    return dict((await resp.json())["data"])


async def test_acknowledging_an_alert_records_the_first_and_edits_its_messages(
        agent: Client, emu: tuple[TelegramEmulator, str], clock: FakeClock) -> None:
    e, _ = emu
    aid = await fire(agent)
    [message] = e.visible(CHAT)
    clock.advance(90)
    resp = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth(),
                            json={"by": "mem_ana"})
    assert resp.status == 200, await resp.text()
    got = (await resp.json())["data"]
    assert (got["acknowledged"], got["acknowledged_by"], got["acknowledged_via"]) == (
        True, "mem_ana", "api")
    first_at = got["acknowledged_at"]
    # A repeat is 200 and changes nothing: the first acknowledgment is the one recorded.
    clock.advance(5)
    again = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth(),
                             json={"by": "someone else"})
    assert again.status == 200
    assert ((await again.json())["data"]["acknowledged_by"],
            (await again.json())["data"]["acknowledged_at"]) == ("mem_ana", first_at)
    await runtime(agent).run_until_idle()
    # The delivered Telegram message is edited in place to say who acknowledged.
    assert message.edits == 1 and "Acknowledged by Ana at" in message.text
    assert len(e.messages[CHAT]) == 1
    detail = await alert(agent, aid)
    delivered = [n for n in detail["notifications"] if n["channel"] == "telegram"]
    assert {n["status"] for n in delivered} == {"acknowledged"}
    assert delivered[0]["acknowledged_by"] == "mem_ana"
    metrics = await (await agent.get("/metrics")).text()
    assert 'alert_agent_acknowledgments_total{channel="api"} 1.0' in metrics
    assert "alert_agent_time_to_acknowledge_seconds_count 1.0" in metrics


async def test_an_acknowledged_alert_stops_repeating_until_unacknowledged(
        agent: Client, emu: tuple[TelegramEmulator, str], clock: FakeClock) -> None:
    e, _ = emu
    aid = await fire(agent)
    sends = e.count("sendMessage")
    assert (await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
    await runtime(agent).run_until_idle()
    clock.advance(11 * 60)  # past repeat_interval
    await runtime(agent).run_until_idle()
    assert e.count("sendMessage") == sends  # no repeat
    resp = await agent.post(f"/v1/alerts/{aid}/unacknowledge", headers=auth())
    assert resp.status == 200 and (await resp.json())["data"]["acknowledged"] is False
    clock.advance(11 * 60)
    await runtime(agent).run_until_idle()
    assert e.count("sendMessage") == sends + 1  # the repeat is back


async def test_acknowledging_a_notification_acknowledges_its_alert(
        agent: Client, emu: tuple[TelegramEmulator, str]) -> None:
    aid = await fire(agent)
    detail = await alert(agent, aid)
    [tg] = [n for n in detail["notifications"] if n["channel"] == "telegram"]
    resp = await agent.post(f"/v1/notifications/{tg['id']}/acknowledge", headers=auth(),
                            json={"by": "the night shift"})
    assert resp.status == 200, await resp.text()
    n = await resp.json()
    assert (n["status"], n["acknowledged"], n["acknowledged_by"]) == (
        "acknowledged", True, "the night shift")
    assert (await alert(agent, aid))["acknowledged_by"] == "the night shift"


async def test_acknowledging_without_a_body_and_unknown_ids(agent: Client) -> None:
    aid = await fire(agent)
    resp = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())
    assert resp.status == 200 and (await resp.json())["data"]["acknowledged_by"] == "api"
    for path in ("/v1/alerts/alt_nope/acknowledge", "/v1/notifications/ntf_nope/acknowledge",
                 "/v1/alerts/alt_nope/unacknowledge"):
        resp = await agent.post(path, headers=auth())
        assert resp.status == 404, path
    resp = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth(),
                            json={"by": ""})
    assert resp.status in (400, 422)
    # A test key sees only test-mode alerts.
    resp = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth(TEST_KEY))
    assert resp.status == 404


async def test_chat_actors_must_be_members_allowed_for_the_alert(agent: Client) -> None:
    aid = await fire(agent)
    detail = await alert(agent, aid)
    # The in-app notifications went to team_db: its members may acknowledge them.
    kids = [n for n in detail["notifications"] if n["channel"] == "in-app" and n["parent_id"]]
    acks = agent.app[CTX].acks
    with pytest.raises(Forbidden):  # Eve is approved, but not on team_db
        await acks.acknowledge_notification(kids[0]["id"], Actor("telegram", user_id="777"))
    with pytest.raises(Forbidden):  # nobody in the directory
        await acks.acknowledge_notification(kids[0]["id"], Actor("telegram", user_id="999"))
    assert (await alert(agent, aid))["acknowledged"] is False
    done = await acks.acknowledge_notification(kids[0]["id"],
                                               Actor("telegram", user_id=str(CHAT)))
    assert done.first and done.acknowledged_by == "mem_ana"
    metrics = await (await agent.get("/metrics")).text()
    assert 'alert_agent_ack_refused_total{channel="telegram",reason="not_allowed"} 2.0' in metrics


async def test_the_cli_acknowledges_through_the_api(settings: Settings) -> None:
    from tests.integration.test_cli import run_cli

    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        resp = await c.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "web-1", "type": "down", "message": "web down"})
        aid = (await resp.json())["data"]["id"]
        url = str(c.make_url("")).rstrip("/")
        code, out, err = await run_cli("ack", aid, "--by", "ana", "--url", url, "--api-key",
                                       LIVE_KEY)
        assert code == 0, err
        assert '"acknowledged_by":"ana"' in out.replace(" ", "")
        assert (await alert(c, aid))["acknowledged_via"] == "cli"
        metrics = await (await c.get("/metrics")).text()
        assert 'alert_agent_acknowledgments_total{channel="cli"} 1.0' in metrics
        code, _, err = await run_cli("ack", "alt_nope", "--url", url, "--api-key", LIVE_KEY)
        assert code == 1 and "alert_not_found" in err
        code, _, _ = await run_cli("ack", aid, "--undo", "--url", url, "--api-key", LIVE_KEY)
        assert code == 0 and (await alert(c, aid))["acknowledged"] is False


async def test_a_routes_ack_by_names_who_may_acknowledge(
        settings: Settings, clock: FakeClock, emu: tuple[TelegramEmulator, str]) -> None:
    emu[0].add_chat(GROUP)
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES.replace(
        "    group_by: [monitor_id]\n", "    group_by: [monitor_id]\n    ack_by: [mem_eve]\n"
    ).replace(f'to: "{CHAT}"', f'to: "{GROUP}"'))
    settings.channels.telegram = settings.channels.telegram.model_validate({
        "enabled": True, "bot_token": TOKEN, "api_url": emu[1], "timeout_seconds": 2.0})
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        aid = await fire(c)
        [tg] = [n for n in (await alert(c, aid))["notifications"] if n["channel"] == "telegram"]
        [team] = [n for n in (await alert(c, aid))["notifications"]
                  if n["channel"] == "in-app" and n["to"] == "team_db"]
        acks = c.app[CTX].acks
        with pytest.raises(Forbidden):  # on team_db, but the route names Eve for the group chat
            await acks.acknowledge_notification(tg["id"], Actor("telegram", user_id=str(CHAT)))
        done = await acks.acknowledge_notification(tg["id"], Actor("telegram", user_id="777"))
        assert done.acknowledged_by == "mem_eve"
        # What was sent to team_db may be answered by its members as well as by ack_by's.
        ana = await acks.acknowledge_notification(team["id"], Actor("link", member_id="mem_ana"))
        assert not ana.first  # acknowledged already (by Eve): allowed, nothing new recorded


def test_ack_by_must_name_the_directory(tmp_path: Any) -> None:
    from agent.routing.loader import RulesError, load_rules

    (tmp_path / "r.yaml").write_text("routes:\n  - name: x\n    ack_by: [team_nobody]\n")
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    [problem] = info.value.problems
    assert problem.line == 3 and "no team or member 'team_nobody'" in problem.message


async def test_a_resolved_alert_cannot_be_acknowledged_but_a_repeat_is_still_200(
        agent: Client) -> None:
    aid = await fire(agent)
    await agent.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
    resp = await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "alert_resolved"
    assert (await alert(agent, aid))["acknowledged"] is False
    other = await fire(agent)
    assert (await agent.post(f"/v1/alerts/{other}/acknowledge", headers=auth())).status == 200
    await agent.put(f"/v1/alerts/{other}", headers=auth(), json={"status": "resolved"})
    again = await agent.post(f"/v1/alerts/{other}/acknowledge", headers=auth())
    assert again.status == 200 and (await again.json())["data"]["acknowledged"] is True


async def test_ack_by_oncall_follows_the_rotation_at_the_click(
        settings: Settings, clock: FakeClock, emu: tuple[TelegramEmulator, str]) -> None:
    rules = RULES.replace("    group_by: [monitor_id]\n",
                          "    group_by: [monitor_id]\n    ack_by: ['oncall:team_db']\n")
    rules = rules.replace("    members: [mem_ana, mem_raj]\n", (
        "    members: [mem_ana, mem_raj]\n"
        "    oncall: {members: [mem_ana, mem_raj], length: 1w, handoff: '2020-01-06T09:00:00',"
        " timezone: UTC}\n"))
    rules = rules.replace("  - id: mem_raj\n    name: Raj\n    approved: true\n",
                          "  - id: mem_raj\n    name: Raj\n    approved: true\n"
                          "    addresses: {telegram: '888'}\n")
    rules = rules.replace(f'to: "{CHAT}"', f'to: "{GROUP}"')
    emu[0].add_chat(GROUP)
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(rules)
    settings.channels.telegram = settings.channels.telegram.model_validate({
        "enabled": True, "bot_token": TOKEN, "api_url": emu[1], "timeout_seconds": 2.0})
    settings.ack.link_ttl = 8 * 86400  # the button still works at the handoff, a week on
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        acks = c.app[CTX].acks
        d = c.app[CTX].rules().directory
        from agent.directory import on_call

        shift = on_call(d, "team_db", clock.now())
        assert shift is not None and shift.until is not None
        on, off = ("4242", "888") if shift.members == ("mem_ana",) else ("888", "4242")
        aid = await fire(c)
        [tg] = [n for n in (await alert(c, aid))["notifications"] if n["channel"] == "telegram"]
        with pytest.raises(Forbidden):  # on the team, but not on call now
            await acks.acknowledge_notification(tg["id"], Actor("telegram", user_id=off))
        clock.advance(shift.until - clock.now() + 1)  # the handoff: the other one is on call
        with pytest.raises(Forbidden):
            await acks.acknowledge_notification(tg["id"], Actor("telegram", user_id=on))
        done = await acks.acknowledge_notification(tg["id"], Actor("telegram", user_id=off))
        assert done.first


def test_ack_by_oncall_needs_a_rotation(tmp_path: Any) -> None:
    from agent.routing.loader import RulesError, load_rules

    (tmp_path / "r.yaml").write_text("teams:\n  - id: team_x\nroutes:\n  - name: x\n"
                                     "    ack_by: ['oncall:team_x']\n")
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    [problem] = info.value.problems
    assert problem.line == 5 and "no team with an on-call rotation" in problem.message
