"""The team directory (issue 13): `to: team_x` fans out to approved members, `to: mem_x` reaches
one, literal addresses are checked against the directory and `recipients.allow_unlisted`, and
`/v1/teams`, `/v1/members` show it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import LIVE_KEY, TEST_KEY, auth, runtime

Client = TestClient[Any, Any]

DIRECTORY = """\
teams:
  - id: team_platform
    name: Platform
    members: [mem_ana, mem_raj, mem_lee, mem_out]
  - id: team_ghosts
    members: [mem_out]
members:
  - id: mem_ana
    name: Ana
    approved: true
    timezone: Europe/Lisbon
    addresses: {email: ana@example.com, sms: "+351 912 345 678", telegram: "123456789"}
  - id: mem_raj
    name: Raj
    approved: true
    addresses: {email: raj@example.com, sms: "+14155552671"}
  - id: mem_lee
    name: Lee
    approved: true
    addresses: {email: lee@example.com}
  - id: mem_out
    name: Out
    approved: false
    addresses: {email: out@example.com, sms: "+12025550123"}
"""


def write_rules(settings: Settings, text: str, name: str = "people.yaml") -> None:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / name).write_text(text)


@pytest.fixture
async def agent(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    write_rules(settings, DIRECTORY)
    settings.api.reload_min_interval_seconds = 0.0
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


async def send(client: Client, key: str = LIVE_KEY, **body: Any) -> tuple[int, Any]:
    resp = await client.post("/v1/notifications/send", json={"message": "disk full", **body},
                             headers=auth(key))
    return resp.status, await resp.json()


async def children(client: Client, parent: str, key: str = LIVE_KEY) -> list[dict[str, Any]]:
    resp = await client.get("/v1/notifications", params={"parent_id": parent, "limit": 100},
                            headers=auth(key))
    assert resp.status == 200
    return list((await resp.json())["data"])


async def get(client: Client, nid: str, key: str = LIVE_KEY) -> dict[str, Any]:
    resp = await client.get(f"/v1/notifications/{nid}", headers=auth(key))
    assert resp.status == 200
    return dict(await resp.json())


async def test_a_team_send_reaches_each_approved_member_once(agent: Client) -> None:
    status, parent = await send(agent, channel="in-app", to="team_platform")
    assert status == 201
    assert (parent["to"], parent["status"], parent["recipients"]) == ("team_platform", "queued", 3)
    kids = await children(agent, parent["id"])
    # In-app reaches a member by id; the unapproved member is never contacted.
    assert sorted((k["to"], k["member_id"]) for k in kids) == [
        ("mem_ana", "mem_ana"), ("mem_lee", "mem_lee"), ("mem_raj", "mem_raj")]
    assert {k["parent_id"] for k in kids} == {parent["id"]}
    await runtime(agent).run_until_idle()
    assert {k["status"] for k in await children(agent, parent["id"])} == {"delivered"}
    done = await get(agent, parent["id"])
    assert done["status"] == "delivered" and done["delivered_at"] is not None
    for mid in ("mem_ana", "mem_raj", "mem_lee", "mem_out"):
        resp = await agent.get("/v1/inbox", params={"to": mid}, headers=auth())
        assert len((await resp.json())["data"]) == (0 if mid == "mem_out" else 1), mid


async def test_members_without_an_address_on_the_channel_are_left_out(agent: Client) -> None:
    _, parent = await send(agent, channel="telegram", to="team_platform")
    assert parent["recipients"] == 1
    assert [(k["to"], k["member_id"]) for k in await children(agent, parent["id"])] == [
        ("123456789", "mem_ana")]


async def test_a_member_send_resolves_the_address(agent: Client) -> None:
    status, parent = await send(agent, channel="sms", to="mem_raj")
    assert status == 201 and parent["to"] == "mem_raj"
    [kid] = await children(agent, parent["id"])
    assert (kid["to"], kid["member_id"]) == ("+14155552671", "mem_raj")


@pytest.mark.parametrize(("channel", "to", "code"), [
    ("sms", "team_nobody", "recipient_not_found"),
    ("sms", "mem_nobody", "recipient_not_found"),
    ("sms", "mem_out", "recipient_not_approved"),
    ("sms", "team_ghosts", "recipient_not_approved"),
    ("email", "mem_ana@example.com", "recipient_not_approved"),  # syntax fine, unlisted
    ("email", "out@example.com", "recipient_not_approved"),  # listed, but not approved
    ("sms", "+12025550123", "recipient_not_approved"),
    ("push", "mem_lee", "recipient_has_no_address"),
    ("sms", "0912345678", "invalid_phone"),
    ("whatsapp", "+1555", "invalid_phone"),
    ("email", "ana@", "invalid_email"),
])
async def test_unreachable_recipients_are_422_at_the_edge(agent: Client, channel: str, to: str,
                                                          code: str) -> None:
    status, body = await send(agent, channel=channel, to=to)
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["param"]) == (code, "to")
    listed = await agent.get("/v1/notifications", headers=auth())
    assert (await listed.json())["data"] == []


async def test_a_listed_address_is_accepted_and_names_its_member(agent: Client) -> None:
    status, n = await send(agent, channel="sms", to="+351912345678")
    assert status == 201 and n["member_id"] == "mem_ana" and n["parent_id"] is None


async def test_malformed_addresses_are_refused_even_where_unlisted_ones_are_allowed(
        settings: Settings, clock: FakeClock) -> None:
    settings.recipients.allow_unlisted = True
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        assert (await send(c, channel="email", to="nobody@example.org"))[0] == 201
        status, body = await send(c, channel="email", to="nobody@@example.org")
        assert (status, body["error"]["code"]) == (422, "invalid_email")
        status, body = await send(c, channel="sms", to="+44 12")
        assert (status, body["error"]["code"]) == (422, "invalid_phone")


async def test_a_batch_with_a_team_lists_what_was_asked(agent: Client) -> None:
    resp = await agent.post("/v1/notifications/send-batch", headers=auth(), json={
        "notifications": [{"channel": "in-app", "to": "team_platform", "message": "a"},
                          {"channel": "console", "to": "ops", "message": "b"}]})
    assert resp.status == 200
    body = await resp.json()
    assert [(n["channel"], n["status"]) for n in body["notifications"]] == [
        ("in-app", "queued"), ("console", "queued")]
    assert len(await children(agent, body["notifications"][0]["id"])) == 3


async def test_a_replayed_team_send_makes_no_second_set_of_children(agent: Client) -> None:
    body = {"channel": "in-app", "to": "team_platform", "idempotency_key": "k-1"}
    first = await send(agent, **body)
    again = await send(agent, **body)
    assert (first[0], again[0]) == (201, 200) and first[1]["id"] == again[1]["id"]
    listed = await agent.get("/v1/notifications", params={"limit": 100}, headers=auth())
    assert len((await listed.json())["data"]) == 4  # the parent and its three children


async def test_cancelling_a_team_send_cancels_its_children(agent: Client) -> None:
    _, parent = await send(agent, channel="in-app", to="team_platform")
    resp = await agent.delete(f"/v1/notifications/{parent['id']}", headers=auth())
    assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
    assert {k["status"] for k in await children(agent, parent["id"])} == {"cancelled"}
    assert await runtime(agent).run_until_idle() == 0


async def test_a_member_unapproved_after_queueing_is_not_contacted(
        agent: Client, settings: Settings) -> None:
    _, parent = await send(agent, channel="in-app", to="team_platform")
    write_rules(settings, DIRECTORY.replace("name: Raj\n    approved: true",
                                            "name: Raj\n    approved: false"))
    assert (await agent.post("/-/reload", headers=auth())).status == 200
    await runtime(agent).run_until_idle()
    kids = {k["member_id"]: k for k in await children(agent, parent["id"])}
    assert kids["mem_raj"]["status"] == "failed"
    assert kids["mem_raj"]["failure_reason"] == "recipient_not_approved"
    assert kids["mem_raj"]["failure_class"] == "permanent"
    assert {kids[m]["status"] for m in ("mem_ana", "mem_lee")} == {"delivered"}
    # Reached two of three: the send is delivered, the failed one is listed under it.
    assert (await get(agent, parent["id"]))["status"] == "delivered"
    resp = await agent.get("/v1/inbox", params={"to": "mem_raj"}, headers=auth())
    assert (await resp.json())["data"] == []


async def test_a_team_send_fails_when_every_child_fails_and_retry_redrives_them(
        agent: Client, settings: Settings) -> None:
    _, parent = await send(agent, channel="in-app", to="mem_ana")
    write_rules(settings, DIRECTORY.replace("name: Ana\n    approved: true",
                                            "name: Ana\n    approved: false"))
    assert (await agent.post("/-/reload", headers=auth())).status == 200
    await runtime(agent).run_until_idle()
    failed = await get(agent, parent["id"])
    assert (failed["status"], failed["failure_reason"]) == ("failed", "recipient_not_approved")
    assert failed["failure_details"] == "1 of 1 recipients failed: recipient_not_approved (1)"
    metrics = await (await agent.get("/metrics")).text()
    # The member's notification is the dead letter; the send that made it is not a second.
    assert 'alert_agent_dead_letters{channel="in-app"} 1.0' in metrics
    write_rules(settings, DIRECTORY)
    assert (await agent.post("/-/reload", headers=auth())).status == 200
    resp = await agent.post(f"/v1/notifications/{parent['id']}/retry", headers=auth())
    assert resp.status == 200 and (await resp.json())["status"] == "queued"
    await runtime(agent).run_until_idle()
    assert (await get(agent, parent["id"]))["status"] == "delivered"


async def test_the_directory_endpoints(agent: Client) -> None:
    resp = await agent.get("/v1/teams", headers=auth())
    assert resp.status == 200
    teams = {t["id"]: t for t in (await resp.json())["data"]}
    assert teams["team_platform"]["approved_count"] == 3
    assert teams["team_platform"]["member_ids"] == ["mem_ana", "mem_raj", "mem_lee", "mem_out"]
    resp = await agent.get("/v1/teams/team_platform", headers=auth())
    team = await resp.json()
    ana = team["members"][0]
    assert ana["addresses"] == {"email": "ana@example.com", "sms": "+351912345678",
                                "telegram": "123456789"}
    assert ana["timezone"] == "Europe/Lisbon" and ana["approved"] is True
    resp = await agent.get("/v1/members/mem_out", headers=auth())
    member = await resp.json()
    assert member["approved"] is False and member["team_ids"] == ["team_ghosts", "team_platform"]
    for path in ("/v1/teams/team_nope", "/v1/members/mem_nope"):
        resp = await agent.get(path, headers=auth())
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "resource_missing"
    assert (await agent.get("/v1/teams")).status == 401


async def test_test_keys_see_personal_addresses_masked(agent: Client) -> None:
    resp = await agent.get("/v1/members/mem_ana", headers=auth(TEST_KEY))
    addresses = (await resp.json())["addresses"]
    assert addresses["email"] == "a***@example.com"
    assert addresses["sms"].startswith("+351") and "912345" not in addresses["sms"]
    assert addresses["telegram"] == "123456789"  # a chat id is not a personal address


async def test_rule_file_targets_fan_out_at_flush(settings: Settings, clock: FakeClock) -> None:
    write_rules(settings, DIRECTORY + """\
routes:
  - name: db
    matchers: ['service="db"']
    group_wait: 0s
    notify: [{channel: in-app, to: team_platform}]
""")
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        resp = await c.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "db-1", "type": "down", "message": "db down",
            "labels": {"service": "db"}})
        assert resp.status in (200, 201), await resp.text()
        await runtime(c).run_until_idle()
        listed = await c.get("/v1/notifications", params={"limit": 100}, headers=auth())
        rows = (await listed.json())["data"]
        parents = [n for n in rows if n["recipients"]]
        assert len(parents) == 1 and parents[0]["to"] == "team_platform"
        assert parents[0]["status"] == "delivered"
        assert sorted(n["member_id"] for n in rows if n["parent_id"]) == [
            "mem_ana", "mem_lee", "mem_raj"]


@pytest.mark.parametrize(("text", "line", "words"), [
    ("members:\n  - id: mem_a\n    addresses: {sms: '12'}\n", 3, "not a valid phone number"),
    ("members:\n  - id: mem_a\n    addresses: {email: 'a@@b'}\n", 3, "not a valid email"),
    ("members:\n  - id: mem_a\n    timezone: Mars/Base\n", 3, "unknown time zone"),
    ("members:\n  - id: ana\n", 2, "should match pattern"),
    ("teams:\n  - id: team_a\n    members: [mem_x]\n", 3, "unknown member 'mem_x'"),
    ("members:\n  - id: mem_a\n  - id: mem_a\n", 3, "defined twice"),
    ("members:\n  - id: mem_a\n    addresses: {email: a@example.com}\n"
     "  - id: mem_b\n    addresses: {email: a@example.com}\n", 5, "already member 'mem_a''s"),
    ("routes:\n  - notify: [{channel: sms, to: team_nope}]\n", 2, "No such team"),
    ("routes:\n  - notify: [{channel: email, to: x@example.com}]\n", 2,
     "recipients.allow_unlisted"),
])
def test_directory_problems_name_file_and_line(tmp_path: Path, text: str, line: int,
                                               words: str) -> None:
    from agent.routing.loader import RulesError, load_rules

    (tmp_path / "d.yaml").write_text(text)
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    [problem] = info.value.problems
    assert (problem.file, problem.line) == ("d.yaml", line), problem
    assert words in problem.message, problem
