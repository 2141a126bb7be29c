"""Hot reload: a bad file leaves the running rules untouched and says where and why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.helpers import auth, runtime, wait_until

Client = TestClient[Any, Any]
GOOD = """
routes:
  - name: first
    matchers: ['team="a"']
    notify: [{channel: in-app, to: team-a}]
"""


@pytest.fixture
async def rclient(settings: Settings) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "main.yaml").write_text(GOOD)
    settings.api.reload_min_interval_seconds = 0.0  # these tests reload back to back
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def reload(client: Client) -> tuple[int, Any]:
    resp = await client.post("/-/reload", headers=auth())
    return resp.status, await resp.json()


async def test_bad_file_keeps_running_rules(rclient: Client, settings: Settings) -> None:
    holder = runtime(rclient).rules
    before = holder.current
    (settings.rules_dir / "zz-bad.yaml").write_text(
        "routes:\n  - name: broken\n    matchers: ['team=~\"(\"']\n")
    status, body = await reload(rclient)
    assert status == 422
    err = body["error"]
    assert err["code"] == "invalid_rules" and "zz-bad.yaml:3" in err["message"]
    assert holder.current is before
    st = await (await rclient.get("/v1/rules/status", headers=auth())).json()
    assert st["last_reload_successful"] is False
    assert st["errors"][0]["file"] == "zz-bad.yaml" and st["errors"][0]["line"] == 3
    metrics = await (await rclient.get("/metrics")).text()
    assert "alert_agent_rules_last_reload_successful 0.0" in metrics
    assert 'alert_agent_rules_reloads_total{outcome="failure"} 1.0' in metrics

    # The old rules still route.
    resp = await rclient.post("/v1/alerts", headers=auth(),
                              json={"monitor_id": "m1", "type": "down", "labels": {"team": "a"}})
    assert resp.status == 201

    (settings.rules_dir / "zz-bad.yaml").unlink()
    status, body = await reload(rclient)
    assert status == 200 and body["last_reload_successful"] is True
    assert holder.current is not before


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("routes: [\n  {name: x\n", None, "invalid YAML"),
        ("routes:\n  - name: x\n    matchrs: []\n", 3, "matchrs"),
        ("routes:\n  - notify: [{channel: console, to: ops, template: nope}]\n", 2,
         "unknown template 'nope'"),
        # A channel this agent does not build (or has disabled) is a rule error too.
        ("routes:\n  - notify: [{channel: slack, to: '#x'}]\n", 2,
         "channel 'slack' is disabled (channels.slack.enabled: false)"),
        ("routes:\n  - mute_time_intervals: [nights]\n", 2, "unknown time interval 'nights'"),
        ("routes:\n  - group_wait: soon\n", 2, "invalid duration"),
        ("routes:\n  - notify: [{channel: pager, to: x}]\n", 2, "channel"),
        ("templates:\n  - {name: t, body: '{{ x'}\n", 2, "template 't'"),
    ],
)
async def test_every_kind_of_problem_names_file_and_line(
    rclient: Client, settings: Settings, content: str, line: int | None, needle: str
) -> None:
    (settings.rules_dir / "bad.yaml").write_text(content)
    status, _ = await reload(rclient)
    assert status == 422
    st = await (await rclient.get("/v1/rules/status", headers=auth())).json()
    problem = st["errors"][0]
    assert problem["file"] == "bad.yaml" and needle in problem["message"]
    if line is not None:
        assert problem["line"] == line


async def test_reload_needs_a_key(rclient: Client) -> None:
    assert (await rclient.post("/-/reload")).status == 401


async def test_the_directory_is_watched(rclient: Client, settings: Settings) -> None:
    holder = runtime(rclient).rules
    before = holder.current.config_hash
    (settings.rules_dir / "main.yaml").write_text(GOOD.replace("team-a", "team-b"))
    await wait_until(lambda: holder.current.config_hash != before, timeout=15)
    assert holder.current.routes_by_id["first"].notify[0].to == "team-b"


async def test_firing_alerts_follow_new_routes_after_a_reload(
    rclient: Client, settings: Settings
) -> None:
    payload = {"version": "4", "alerts": [{
        "status": "firing", "labels": {"alertname": "DBDown", "team": "db"},
        "annotations": {"summary": "db down"}, "startsAt": "2026-04-14T10:25:00Z"}]}
    assert (await rclient.post("/hooks/alertmanager", json=payload)).status == 200
    (settings.rules_dir / "main.yaml").write_text(GOOD + """
  - name: db
    matchers: ['team="db"']
    group_wait: 0s
    notify: [{channel: in-app, to: db-oncall}]
""")
    assert (await rclient.post("/-/reload", headers=auth())).status == 200
    # The next repeat (Alertmanager re-sends firing alerts) joins the new route's group.
    assert (await rclient.post("/hooks/alertmanager", json=payload)).status == 200

    async def paged() -> bool:
        page = await (await rclient.get("/v1/inbox?to=db-oncall", headers=auth())).json()
        return len(page["data"]) == 1

    await wait_until(paged)
