"""On-call through the running agent: ``GET /v1/teams/{id}/oncall``, ``to: oncall:team_x``
reaching whoever is on call when the send is accepted or the group flushes, and
``alert-agent oncall`` printing the coming shifts from the rule files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.cli import main
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import TEST_KEY, auth, runtime

Client = TestClient[Any, Any]

PEOPLE = """\
teams:
  - id: team_platform
    name: Platform
    members: [mem_ana, mem_raj, mem_lee]
    oncall:
      members: [mem_ana, mem_raj]
      length: 1w
      handoff: "2026-12-07T09:00:00"
      timezone: Europe/Lisbon
      overrides:
        - {member: mem_lee, start: "2026-12-10T18:00:00", end: "2026-12-11T09:00:00"}
  - id: team_plain
    members: [mem_ana]
members:
  - {id: mem_ana, name: Ana Lima, approved: true}
  - {id: mem_raj, name: Raj Rao, approved: true}
  - {id: mem_lee, name: Lee Park, approved: true}
"""


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    # Tuesday of Ana's first week (Lisbon is UTC+0 in December).
    return FakeClock(utc("2026-12-08T12:00:00"))


def write_rules(settings: Settings, text: str) -> None:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "people.yaml").write_text(text)


@pytest.fixture
async def agent(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    write_rules(settings, PEOPLE)
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def oncall(client: Client, team: str, key: str | None = None, **query: str
                 ) -> tuple[int, Any]:
    resp = await client.get(f"/v1/teams/{team}/oncall", params=query,
                            headers=auth(key) if key else auth())
    return resp.status, await resp.json()


async def test_who_is_on_call_now_by_the_agents_clock(agent: Client, clock: FakeClock) -> None:
    assert await oncall(agent, "team_platform") == (200, {
        "on_call": ["mem_ana"], "next": ["mem_lee"], "until": "2026-12-10T18:00:00.000Z"})
    clock.advance(utc("2026-12-10T20:00:00") - clock.now())
    assert await oncall(agent, "team_platform", TEST_KEY) == (200, {
        "on_call": ["mem_lee"], "next": ["mem_ana"], "until": "2026-12-11T09:00:00.000Z"})


@pytest.mark.parametrize(("at", "answer"), [
    ("2026-12-14T09:00:00Z", {"on_call": ["mem_raj"], "next": ["mem_ana"],
                              "until": "2026-12-21T09:00:00.000Z"}),
    # The instant before the handoff is still Ana's; a naive `at` is UTC, as everywhere.
    ("2026-12-14T08:59:59", {"on_call": ["mem_ana"], "next": ["mem_raj"],
                             "until": "2026-12-14T09:00:00.000Z"}),
    # Summer time, Raj's 26th week: the handoff stays 09:00 in Lisbon, 08:00Z.
    ("2027-06-01T10:00:00+01:00", {"on_call": ["mem_raj"], "next": ["mem_ana"],
                                   "until": "2027-06-07T08:00:00.000Z"}),
])
async def test_on_call_at_a_given_instant(agent: Client, at: str, answer: dict[str, Any]
                                          ) -> None:
    assert await oncall(agent, "team_platform", at=at) == (200, answer)


@pytest.mark.parametrize(("team", "query", "status", "code", "words"), [
    ("team_platform", {"at": "yesterday"}, 400, "invalid_value", "ISO 8601"),
    ("team_platform", {"at": "9999-12-31T00:00:00Z"}, 400, "invalid_value", "outside"),
    ("team_nope", {}, 404, "resource_missing", "No such team: 'team_nope'"),
    ("team_plain", {}, 404, "resource_missing", "has no on-call rotation"),
])
async def test_on_call_errors(agent: Client, team: str, query: dict[str, str], status: int,
                              code: str, words: str) -> None:
    got, body = await oncall(agent, team, **query)
    assert (got, body["error"]["code"]) == (status, code), body
    assert words in body["error"]["message"], body
    assert (await agent.get("/v1/teams/team_platform/oncall")).status == 401


async def send_oncall(client: Client) -> list[str]:
    """Send to ``oncall:team_platform`` now; the member ids it reached."""
    resp = await client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "in-app", "to": "oncall:team_platform", "message": "db down"})
    assert resp.status == 201, await resp.text()
    parent = await resp.json()
    assert parent["to"] == "oncall:team_platform"
    listed = await client.get("/v1/notifications", headers=auth(),
                              params={"parent_id": parent["id"], "limit": 100})
    return sorted(n["member_id"] for n in (await listed.json())["data"])


async def inbox(client: Client, member: str) -> int:
    resp = await client.get("/v1/inbox", params={"to": member}, headers=auth())
    return len((await resp.json())["data"])


async def test_oncall_target_reaches_who_is_on_call_when_sent(agent: Client,
                                                              clock: FakeClock) -> None:
    assert await send_oncall(agent) == ["mem_ana"]
    clock.advance(7 * 86400)  # Tuesday of Raj's week
    assert await send_oncall(agent) == ["mem_raj"]
    await runtime(agent).run_until_idle()
    assert [await inbox(agent, m) for m in ("mem_ana", "mem_raj", "mem_lee")] == [1, 1, 0]


async def test_oncall_target_of_a_team_without_rotation_is_422(agent: Client) -> None:
    for to in ("oncall:team_plain", "oncall:team_nope"):
        resp = await agent.post("/v1/notifications/send", headers=auth(), json={
            "channel": "in-app", "to": to, "message": "db down"})
        body = await resp.json()
        assert (resp.status, body["error"]["code"], body["error"]["param"]) == (
            422, "recipient_not_found", "to"), body


async def test_a_rule_target_reaches_who_is_on_call_at_the_flush(settings: Settings) -> None:
    # The alert comes in Ana's week; the group waits past the handoff and flushes in Raj's.
    write_rules(settings, PEOPLE + """\
routes:
  - name: db
    matchers: ['service="db"']
    group_wait: 1h
    notify: [{channel: in-app, to: "oncall:team_platform"}]
""")
    clock = FakeClock(utc("2026-12-14T08:30:00"))
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        resp = await c.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "db-1", "type": "down", "message": "db down",
            "labels": {"service": "db"}})
        assert resp.status in (200, 201), await resp.text()
        await runtime(c).run_until_idle()
        assert (await inbox(c, "mem_ana"), await inbox(c, "mem_raj")) == (0, 0)
        clock.advance(3600)
        await runtime(c).run_until_idle()
        assert (await inbox(c, "mem_ana"), await inbox(c, "mem_raj")) == (0, 1)


# --- alert-agent oncall -------------------------------------------------------------------------


def config_for(tmp_path: Path, rules: str = PEOPLE) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "people.yaml").write_text(rules)
    config = tmp_path / "agent.yaml"
    config.write_text(f"rules_dir: {tmp_path / 'rules'}\ndata_dir: {tmp_path / 'data'}\n")
    return config


def test_cli_prints_the_next_two_weeks(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    config = config_for(tmp_path)
    assert main(["oncall", "team_platform", "--config", str(config),
                 "--from", "2026-12-08T00:00:00Z"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("team_platform (Platform): on call from 2026-12-08 00:00 WET for 14 "
                      "day(s), times in Europe/Lisbon and UTC")
    assert out[1:] == [
        "2026-12-07 09:00 WET -> 2026-12-10 18:00 WET  (2026-12-07 09:00Z -> 2026-12-10 "
        "18:00Z)  shift     mem_ana  Ana Lima",
        "2026-12-10 18:00 WET -> 2026-12-11 09:00 WET  (2026-12-10 18:00Z -> 2026-12-11 "
        "09:00Z)  override  mem_lee  Lee Park",
        "2026-12-11 09:00 WET -> 2026-12-14 09:00 WET  (2026-12-11 09:00Z -> 2026-12-14 "
        "09:00Z)  shift     mem_ana  Ana Lima",
        "2026-12-14 09:00 WET -> 2026-12-21 09:00 WET  (2026-12-14 09:00Z -> 2026-12-21 "
        "09:00Z)  shift     mem_raj  Raj Rao",
        "2026-12-21 09:00 WET -> 2026-12-28 09:00 WET  (2026-12-21 09:00Z -> 2026-12-28 "
        "09:00Z)  shift     mem_ana  Ana Lima"]


def test_cli_shows_local_and_utc_across_dst(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rules = PEOPLE.replace("length: 1w", "length: 1d").replace(
        '      overrides:\n        - {member: mem_lee, start: "2026-12-10T18:00:00", '
        'end: "2026-12-11T09:00:00"}\n', "")
    assert "overrides" not in rules
    config = config_for(tmp_path, rules)
    assert main(["oncall", "team_platform", "--config", str(config), "--rules",
                 str(tmp_path / "rules"), "--from", "2027-03-27T12:00:00Z", "--days", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in out[1:]] == [
        "2027-03-27 09:00 WET -> 2027-03-28 09:00 WEST",
        "2027-03-28 09:00 WEST -> 2027-03-29 09:00 WEST",
        "2027-03-29 09:00 WEST -> 2027-03-30 09:00 WEST"]
    assert "(2027-03-27 09:00Z -> 2027-03-28 08:00Z)" in out[1]


@pytest.mark.parametrize(("args", "code", "words"), [
    (["team_nope"], 2, "no such team 'team_nope'"),
    (["team_plain"], 2, "team 'team_plain' has no on-call rotation"),
    (["team_platform", "--from", "soon"], 2, "--from must be an ISO 8601 timestamp"),
    (["team_platform", "--days", "0"], 2, "--days must be between 1 and 366"),
])
def test_cli_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                      code: int, words: str) -> None:
    config = config_for(tmp_path)
    assert main(["oncall", *args, "--config", str(config)]) == code
    assert words in capsys.readouterr().err


def test_cli_reports_rule_problems_with_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(tmp_path, PEOPLE.replace("Europe/Lisbon", "Europe/Lisboa"))
    assert main(["oncall", "team_platform", "--config", str(config)]) == 1
    assert "people.yaml:9: teams.0.oncall.timezone" in capsys.readouterr().err


async def test_an_escalation_step_reaches_who_is_on_call_when_it_fires(
        settings: Settings) -> None:
    # The alert comes ten minutes before Ana's week ends: the 5m step fires in her week, the
    # 15m step after the 09:00 handoff, in Raj's.
    write_rules(settings, PEOPLE + """\
routes:
  - name: db
    matchers: ['monitor_id="db-1"']
    group_wait: 0s
    notify: [{channel: console, to: ops}]
    escalation:
      until: acknowledged
      steps:
        - {after: 5m, notify: [{channel: in-app, to: "oncall:team_platform"}]}
        - {after: 15m, notify: [{channel: in-app, to: "oncall:team_platform"}]}
""")
    clock = FakeClock(utc("2026-12-14T08:50:00"))
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        resp = await c.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "db-1", "type": "down", "severity": "critical", "message": "db down"})
        assert resp.status == 201, await resp.text()
        await runtime(c).run_until_idle()
        assert (await inbox(c, "mem_ana"), await inbox(c, "mem_raj")) == (0, 0)
        clock.advance(300)
        await runtime(c).run_until_idle()
        assert (await inbox(c, "mem_ana"), await inbox(c, "mem_raj")) == (1, 0)
        clock.advance(600)
        await runtime(c).run_until_idle()
        assert (await inbox(c, "mem_ana"), await inbox(c, "mem_raj")) == (1, 1)
