"""Escalation (issue 14): a route's policy stores its steps as durable rows when an incident
starts; each fires on time as notifications made then; an acknowledgment or a resolve cancels
what is pending, in its own transaction; the steps survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]
RULES = """
defaults:
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
  notify: [{channel: console, to: ops}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    notify: [{channel: in-app, to: mem_ana}]
    escalation:
      until: acknowledged
      repeat: 1
      steps:
        - {after: 5m, notify: [{channel: in-app, to: mem_raj}]}
        - {after: 15m, notify: [{channel: in-app, to: team_db}]}
teams:
  - id: team_db
    members: [mem_ana, mem_raj]
members:
  - {id: mem_ana, name: Ana, approved: true}
  - {id: mem_raj, name: Raj, approved: true}
"""


def write(settings: Settings, text: str = RULES) -> None:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "r.yaml").write_text(text)


@pytest.fixture
async def agent(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    write(settings)
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        yield c


async def fire(c: Client) -> str:
    resp = await c.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical", "message": "db down"})
    assert resp.status == 201, await resp.text()
    await runtime(c).run_until_idle()
    return str((await resp.json())["data"]["id"])


async def inbox(c: Client, member: str) -> list[str]:
    resp = await c.get("/v1/inbox", params={"to": member}, headers=auth())
    return [i["body"] for i in (await resp.json())["data"]]


async def steps(c: Client) -> list[tuple[int, int, str, float]]:
    store = runtime(c).store
    groups = {r[0] for r in await store.db.read(
        lambda conn: conn.execute("SELECT DISTINCT group_id FROM escalation_steps").fetchall())}
    [gid] = groups
    return list(await store.escalations.of_group(gid))


async def test_steps_fire_on_time_until_acknowledged(agent: Client, clock: FakeClock) -> None:
    t0 = clock.now()
    await fire(agent)
    # Two steps, two runs (repeat: 1); a run lasts the last step's 15 minutes.
    assert [(run, step, status, due - t0) for run, step, status, due in await steps(agent)] == [
        (0, 0, "pending", 300.0), (0, 1, "pending", 900.0),
        (1, 0, "pending", 1200.0), (1, 1, "pending", 1800.0)]
    assert await inbox(agent, "mem_raj") == []
    clock.advance(299)
    await runtime(agent).run_until_idle()
    assert await inbox(agent, "mem_raj") == []  # not a second early
    clock.advance(1)
    await runtime(agent).run_until_idle()
    [first] = await inbox(agent, "mem_raj")
    assert first.startswith("[Escalation 1/2] ")
    clock.advance(600)
    await runtime(agent).run_until_idle()
    # Step 2 reaches the team: Ana and Raj.
    assert len(await inbox(agent, "mem_raj")) == 2 and len(await inbox(agent, "mem_ana")) == 2
    resp = await agent.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "message": "db down"})
    aid = (await resp.json())["data"]["id"]
    assert (await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
    assert [s[2] for s in await steps(agent)] == ["fired", "fired", "cancelled", "cancelled"]
    clock.advance(3600)
    await runtime(agent).run_until_idle()
    assert len(await inbox(agent, "mem_raj")) == 2
    metrics = await (await agent.get("/metrics")).text()
    assert 'alert_agent_escalation_steps_total{outcome="fired"} 2.0' in metrics
    assert 'alert_agent_escalation_steps_total{outcome="cancelled"} 2.0' in metrics


@pytest.mark.parametrize("how", ["put", "ingest"])
async def test_resolving_cancels_the_pending_steps(agent: Client, clock: FakeClock,
                                                   how: str) -> None:
    aid = await fire(agent)
    if how == "put":
        resp = await agent.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
    else:  # as a source resolves: the monitor is up again
        resp = await agent.post("/v1/alerts", headers=auth(), json={
            "monitor_id": "db-1", "type": "up", "message": "db up"})
    assert resp.status == 200
    assert [s[2] for s in await steps(agent)] == ["cancelled"] * 4
    clock.advance(3600)
    await runtime(agent).run_until_idle()
    assert await inbox(agent, "mem_raj") == []
    metrics = await (await agent.get("/metrics")).text()
    assert 'alert_agent_escalation_steps_total{outcome="cancelled"} 4.0' in metrics


async def test_unacknowledging_rearms_the_steps_still_ahead(agent: Client,
                                                            clock: FakeClock) -> None:
    aid = await fire(agent)
    await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())
    clock.advance(600)  # step 1 (5 min) passed while acknowledged: it stays cancelled
    await agent.post(f"/v1/alerts/{aid}/unacknowledge", headers=auth())
    assert [s[2] for s in await steps(agent)] == ["cancelled", "pending", "pending", "pending"]
    clock.advance(300)
    await runtime(agent).run_until_idle()
    assert len(await inbox(agent, "mem_raj")) == 1  # step 2, to the team


async def test_steps_survive_a_restart_and_fire_on_time(settings: Settings,
                                                        clock: FakeClock) -> None:
    write(settings)
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        await fire(c)
        clock.advance(300)
        await runtime(c).run_until_idle()
        assert len(await inbox(c, "mem_raj")) == 1
    clock.advance(599)  # the daemon is down; step 2 is due at 900 s
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        await runtime(c).run_until_idle()
        assert len(await inbox(c, "mem_raj")) == 1
        clock.advance(1)
        await runtime(c).run_until_idle()
        assert len(await inbox(c, "mem_raj")) == 2


@pytest.mark.parametrize(("text", "words"), [
    ("routes:\n  - escalation: {steps: [{after: 5m, notify: [{channel: console, to: a}]},"
     " {after: 1m, notify: [{channel: console, to: a}]}]}\n", "in the order they fire"),
    ("routes:\n  - escalation: {steps: []}\n", "at least 1"),
    ("routes:\n  - escalation: {until: never, steps: [{after: 1m, notify: "
     "[{channel: console, to: a}]}]}\n", "'acknowledged' or 'resolved'"),
    ("routes:\n  - escalation: {steps: [{after: 1m, notify: [{channel: sms, to: team_x}]}]}\n",
     "No such team"),
    ("routes:\n  - notify: [{to: ops}]\n", "a target without a channel names a team"),
])
def test_escalation_problems_are_rule_errors(tmp_path: Any, text: str, words: str) -> None:
    from agent.routing.loader import RulesError, load_rules

    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    assert any(words in p.message for p in info.value.problems), info.value.problems


async def test_rows_of_a_three_step_policy_run_three_times(settings: Settings,
                                                           clock: FakeClock) -> None:
    write(settings, RULES.replace("""      repeat: 1
      steps:
        - {after: 5m, notify: [{channel: in-app, to: mem_raj}]}
        - {after: 15m, notify: [{channel: in-app, to: team_db}]}""", """      repeat: 2
      steps:
        - {after: 5m, notify: [{channel: console, to: oncall}]}
        - {after: 10m, notify: [{channel: console, to: oncall}]}
        - {after: 15m, notify: [{channel: console, to: oncall}]}"""))
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        store = runtime(c).store

        def count(table: str) -> Any:
            return store.db.read(lambda conn: conn.execute(
                f"SELECT count(*) FROM {table}").fetchone()[0])

        await fire(c)
        before = await count("notifications")
        assert await count("escalation_steps") == 9  # 3 steps x 3 runs, stored at once
        for _ in range(10):
            clock.advance(300)
            await runtime(c).run_until_idle()
        assert [s[2] for s in await steps(c)] == ["fired"] * 9
        # Each fired step to one address is one notification.
        assert await count("notifications") - before == 9


async def test_a_step_without_a_channel_follows_each_members_preferences(
        settings: Settings, clock: FakeClock) -> None:
    write(settings, RULES.replace(
        "        - {after: 5m, notify: [{channel: in-app, to: mem_raj}]}\n",
        "        - {after: 5m, notify: [{to: team_db, channels: [in-app, email]}]}\n").replace(
        "  - {id: mem_raj, name: Raj, approved: true}\n",
        "  - {id: mem_raj, name: Raj, approved: true, addresses: {email: raj@example.com,"
        " sms: '+14155552671'},\n"
        "     preferences: {critical: [sms, email], warning: [in-app]}}\n"))
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        await fire(c)  # critical
        clock.advance(300)
        await runtime(c).run_until_idle()
        listed = await c.get("/v1/notifications", params={"limit": 100}, headers=auth())
        rows = [n for n in (await listed.json())["data"]
                if n["metadata"].get("reason") == "escalation" and n["parent_id"]]
        # Raj: his critical channels within the step's (sms is not allowed there); Ana: no
        # preferences, so her inbox.
        assert sorted((n["member_id"], n["channel"], n["to"]) for n in rows) == [
            ("mem_ana", "in-app", "mem_ana"), ("mem_raj", "email", "raj@example.com")]


def test_a_preferred_channel_needs_an_address(tmp_path: Any) -> None:
    from agent.routing.loader import RulesError, load_rules

    (tmp_path / "r.yaml").write_text(
        "members:\n  - id: mem_a\n    preferences: {critical: [sms]}\n")
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    [problem] = info.value.problems
    assert problem.line == 3 and "has no sms address" in problem.message


# One group for every db alert: two alerts share its escalation.
SHARED = RULES.replace("group_by: [monitor_id]", "group_by: [type]")


@pytest.fixture
async def shared(settings: Settings, clock: FakeClock) -> AsyncIterator[Client]:
    write(settings, SHARED)
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        yield c


async def fire_monitor(c: Client, monitor: str) -> str:
    resp = await c.post("/v1/alerts", headers=auth(), json={
        "monitor_id": monitor, "type": "down", "severity": "critical", "message": "down"})
    assert resp.status == 201, await resp.text()
    await runtime(c).run_until_idle()
    return str((await resp.json())["data"]["id"])


async def test_acknowledging_one_alert_leaves_the_group_escalating_for_the_other(
        shared: Client, clock: FakeClock) -> None:
    a = await fire_monitor(shared, "db-1")
    await fire_monitor(shared, "db-2")  # joins a's group before anything is acknowledged
    assert (await shared.post(f"/v1/alerts/{a}/acknowledge", headers=auth())).status == 200
    assert {s[2] for s in await steps(shared)} == {"pending"}  # db-2 is nobody's yet
    clock.advance(300)
    await runtime(shared).run_until_idle()
    [page] = await inbox(shared, "mem_raj")
    assert page.startswith("[Escalation 1/2] ")


async def test_each_step_fires_once_after_a_new_alert_restarted_the_policy(
        shared: Client, clock: FakeClock) -> None:
    a = await fire_monitor(shared, "db-1")
    assert (await shared.post(f"/v1/alerts/{a}/acknowledge", headers=auth())).status == 200
    clock.advance(61)
    await fire_monitor(shared, "db-2")  # a new incident of the group: its own policy runs
    assert (await shared.post(f"/v1/alerts/{a}/unacknowledge", headers=auth())).status == 200
    assert [s[2] for s in await steps(shared)].count("pending") == 4  # one policy, not two
    clock.advance(300)
    await runtime(shared).run_until_idle()
    assert len([m for m in await inbox(shared, "mem_raj")
                if m.startswith("[Escalation 1/2] ")]) == 1


async def test_an_acknowledgment_withdraws_a_page_still_in_the_outbox(
        agent: Client, clock: FakeClock) -> None:
    aid = await fire(agent)
    clock.advance(300)
    await runtime(agent).grouper.run_until_idle()  # step 1 fires; its page is not out yet
    assert (await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
    await runtime(agent).run_until_idle()
    assert await inbox(agent, "mem_raj") == []
    detail = (await (await agent.get(f"/v1/alerts/{aid}", headers=auth())).json())["data"]
    pages = [n for n in detail["notifications"] if n["metadata"].get("reason") == "escalation"]
    assert pages and {n["status"] for n in pages} == {"cancelled"}
    # The alert's first message (to mem_ana: a parent and its member's row) was out
    # already: it stays, and is acknowledged.
    assert {n["status"] for n in detail["notifications"]
            if n["metadata"].get("reason") == "new"} == {"acknowledged"}


async def test_unacknowledging_a_resolved_alert_rearms_nothing(agent: Client,
                                                               clock: FakeClock) -> None:
    aid = await fire(agent)
    assert (await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
    await agent.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
    assert (await agent.post(f"/v1/alerts/{aid}/unacknowledge", headers=auth())).status == 200
    assert {s[2] for s in await steps(agent)} == {"cancelled"}
    clock.advance(3600)
    await runtime(agent).run_until_idle()
    metrics = await (await agent.get("/metrics")).text()
    assert 'alert_agent_escalation_steps_total{outcome="cancelled"} 4.0' in metrics


async def test_only_the_latest_policy_is_rearmed(shared: Client, clock: FakeClock) -> None:
    a = await fire_monitor(shared, "db-1")
    assert (await shared.post(f"/v1/alerts/{a}/acknowledge", headers=auth())).status == 200
    clock.advance(61)
    b = await fire_monitor(shared, "db-2")  # a new incident: a second policy
    assert (await shared.post(f"/v1/alerts/{b}/acknowledge", headers=auth())).status == 200
    assert (await shared.post(f"/v1/alerts/{b}/unacknowledge", headers=auth())).status == 200
    assert [s[2] for s in await steps(shared)].count("pending") == 4
    clock.advance(300)
    await runtime(shared).run_until_idle()
    assert len([m for m in await inbox(shared, "mem_raj")
                if m.startswith("[Escalation 1/2] ")]) == 1


async def pages_of(c: Client, aid: str) -> list[str]:
    detail = (await (await c.get(f"/v1/alerts/{aid}", headers=auth())).json())["data"]
    return [n["status"] for n in detail["notifications"]
            if n["metadata"].get("reason") == "escalation"]


async def test_a_page_until_resolved_survives_an_acknowledgment_not_a_resolve(
        settings: Settings, clock: FakeClock) -> None:
    write(settings, RULES.replace("until: acknowledged", "until: resolved"))
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as c:
        aid = await fire(c)
        clock.advance(300)
        await runtime(c).grouper.run_until_idle()  # step 1 fires; its page is not out yet
        assert (await c.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
        assert set(await pages_of(c, aid)) == {"queued"}  # until: resolved: still wanted
        await c.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
        assert set(await pages_of(c, aid)) == {"cancelled"}
        await runtime(c).run_until_idle()
        assert await inbox(c, "mem_raj") == []


async def test_a_page_put_back_after_the_acknowledgment_is_withdrawn(
        agent: Client, clock: FakeClock) -> None:
    """The acknowledgment came while the page was out for delivery (claimed); the attempt then
    came back to the outbox (a rate limit): the page is withdrawn as it returns."""
    from agent.store.notifications import Deferred

    aid = await fire(agent)
    clock.advance(300)
    await runtime(agent).grouper.run_until_idle()  # step 1 fires; its page is queued
    store = runtime(agent).store
    claimed = [n for n in await store.notifications.claim_due(clock.now(), 10)
               if n.metadata.get("reason") == "escalation"]
    assert claimed
    assert (await agent.post(f"/v1/alerts/{aid}/acknowledge", headers=auth())).status == 200
    assert "queued" in set(await pages_of(agent, aid))  # out for delivery: left alone
    await store.notifications.complete(
        [Deferred(n.id, clock.now() + 1, "throttled", "rate limit") for n in claimed],
        clock.now())
    assert set(await pages_of(agent, aid)) == {"cancelled"}
    await runtime(agent).run_until_idle()
    assert await inbox(agent, "mem_raj") == []
