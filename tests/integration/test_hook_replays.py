"""Real Alertmanager and Grafana payloads and hostile variants of them (issue 10, item 8):
times outside a sane window, values a render or a list cannot show, newer data on repeat and
resolve, ends_at of hook resolves, alerts without a status, alert_count, webhook version 3."""

from __future__ import annotations

import copy
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import auth, runtime
from tests.integration.test_hooks import Client, alerts, am_alert, inbox, sample


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


async def count(client: Client, to: str, n: int) -> bool:
    return len(await inbox(client, to)) >= n


# --- times outside a sane window -----------------------------------------------------------


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                   "9001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                   "0001-01-01T00:00:00-01:00"])
@pytest.mark.parametrize("field", ["startsAt", "endsAt"])
async def test_times_outside_the_window_are_400(hclient: Client, field: str, value: str) -> None:
    bad = am_alert("Bad", "warning", "eu")
    bad[field] = value
    payload = {"version": "4", "alerts": [am_alert("Fine", "warning", "eu"), bad]}
    resp = await hclient.post("/hooks/alertmanager", json=payload)
    assert resp.status == 400, await resp.text()
    err = (await resp.json())["error"]
    assert err["param"] == f"alerts[1].{field}" and "1970" in err["message"]
    assert (await alerts(hclient))["meta"]["total"] == 0


async def test_times_outside_the_window_on_grafana_and_generic(hclient: Client) -> None:
    payload = sample("grafana-firing.json")
    payload["alerts"][0]["startsAt"] = "9999-12-31T23:59:59-01:00"
    resp = await hclient.post("/hooks/grafana", json=payload)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "alerts[0].startsAt"
    # The generic mapping of the test rules has no time keys: use one that has.
    (runtime(hclient).settings.rules_dir / "20-timed.yaml").write_text(
        "generic_sources:\n  timed:\n    alertname: '{{ name }}'\n    starts_at: '{{ t }}'\n")
    assert (await hclient.post("/-/reload", headers=auth())).status == 200
    for t in ("9999-12-31T23:59:59-01:00", "-1", "9" * 20):
        resp = await hclient.post("/hooks/generic/timed", json={"name": "X", "t": t})
        assert resp.status == 400, t
        assert (await resp.json())["error"]["param"] == "starts_at"
    assert (await alerts(hclient))["meta"]["total"] == 0


async def test_the_zero_time_stays_unset(hclient: Client) -> None:
    a = am_alert("Zero", "warning", "eu")
    a["startsAt"] = a["endsAt"] = "0001-01-01T00:00:00Z"
    resp = await hclient.post("/hooks/alertmanager", json={"version": "4", "alerts": [a]})
    assert resp.status == 200
    [stored] = (await alerts(hclient))["data"]
    assert stored["starts_at"] is None and stored["ends_at"] is None
    assert stored["status"] == "active"


async def test_one_bad_alert_no_longer_stops_other_notifications(hmanual: Client) -> None:
    hclient = hmanual
    bad = am_alert("HighCPUUsage", "warning", "eu")
    bad["startsAt"] = "9999-12-31T23:59:59-01:00"
    resp = await hclient.post("/hooks/alertmanager", json={"version": "4", "alerts": [bad]})
    assert resp.status == 400
    critical = am_alert("HighCPUUsage", "critical", "us")
    critical["labels"]["instance"] = "db-1"
    resp = await hclient.post("/hooks/alertmanager", json={"version": "4", "alerts": [critical]})
    assert resp.status == 200
    await runtime(hclient).run_until_idle()
    assert await count(hclient, "ops", 1)


async def _set_times(client: Client, starts_at: float) -> None:
    """Give every stored alert a start the API refuses today (rows written before the fix)."""
    await runtime(client).store.db.write(
        lambda conn: conn.execute("UPDATE alerts SET starts_at = ?", (starts_at,)))


@pytest.mark.parametrize(("stored", "shown"), [
    (253402304399.0, "9999-12-31T23:59:59.999Z"),   # year 10000 in UTC
    (-62135600400.0, "0001-01-01T00:00:00.000Z"),   # year 0 in UTC
    (-46388678400.0, "0500-01-01T00:00:00.000Z"),   # four digits, as ISO 8601 wants
    (float("inf"), None),
])
async def test_no_stored_time_fails_a_list_or_a_render(
        settings: Settings, clock: FakeClock, stored: float, shown: str | None) -> None:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(
        "defaults: {notify: [{channel: in-app, to: ops}], group_wait: 1h}\n"
        "templates: [{name: t, body: '{% for a in alerts %}{{ a.startsAt }}{% endfor %}'}]\n"
        "routes: [{name: r, notify: [{channel: in-app, to: ops, template: t}]}]\n")
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        payload = {"version": "4", "alerts": [am_alert("Old", "warning", "eu")]}
        assert (await c.post("/hooks/alertmanager", json=payload)).status == 200
        await _set_times(c, stored)
        resp = await c.get("/v1/alerts", headers=auth())
        assert resp.status == 200, await resp.text()
        [a] = (await resp.json())["data"]
        assert a["starts_at"] == shown
        got = await c.get(f"/v1/alerts/{a['id']}", headers=auth())
        assert got.status == 200
        # The group's flush renders it: a notification, not a grouper stuck on the round.
        assert await runtime(c).run_until_idle() == 0
        clock.advance(3600)  # group_wait
        assert await runtime(c).run_until_idle() == 2  # the group, then its notification
        [note] = await inbox(c, "ops")
        assert note["body"] == (shown or "None")


# --- newer data on repeat and resolve --------------------------------------------------------


async def test_a_repeat_keeps_the_newest_grafana_values(hclient: Client) -> None:
    first = sample("grafana-firing.json")
    assert (await hclient.post("/hooks/grafana", json=first)).status == 200
    [stored] = (await alerts(hclient))["data"]
    assert stored["extra"]["values"]["B"] == pytest.approx(84.23943737541908)

    # Only values change (the in-memory repeat check must see it) ...
    second = copy.deepcopy(first)
    second["alerts"][0]["values"] = {"B": 91.5, "C": 1}
    second["alerts"][0]["valueString"] = "[ var='B' labels={team=blue, zone=us-1} value=91.5 ]"
    second["alerts"][0]["generatorURL"] = "https://grafana.example.com/alerting/grafana/new/view"
    assert (await hclient.post("/hooks/grafana", json=second)).status == 200
    [stored] = (await alerts(hclient))["data"]
    assert stored["extra"]["values"]["B"] == 91.5
    assert "value=91.5" in stored["extra"]["valueString"]
    assert stored["generator_url"].endswith("/grafana/new/view")

    # ... then values and annotations together (stored by the database path).
    third = copy.deepcopy(second)
    third["alerts"][0]["values"] = {"B": 97.0, "C": 1}
    third["alerts"][0]["annotations"]["summary"] = "Memory at 97%"
    assert (await hclient.post("/hooks/grafana", json=third)).status == 200
    [stored] = (await alerts(hclient))["data"]
    assert stored["extra"]["values"]["B"] == 97.0
    assert (stored["annotations"]["summary"], stored["message"]) == ("Memory at 97%",) * 2


async def test_a_resolve_tells_the_resolve_time_text(hmanual: Client, clock: FakeClock) -> None:
    hclient = hmanual
    firing = sample("grafana-firing.json")
    assert (await hclient.post("/hooks/grafana", json=firing)).status == 200
    await runtime(hclient).run_until_idle()
    assert await count(hclient, "grafana-team", 1)
    resolved = copy.deepcopy(firing)
    resolved["status"] = "resolved"
    a = resolved["alerts"][0]
    a["status"], a["endsAt"] = "resolved", "2026-04-14T10:30:00Z"
    a["annotations"]["summary"] = "Memory back to normal"
    a["values"], a["valueString"] = {"B": 41.0, "C": 0}, "[ var='B' value=41 ]"
    assert (await (await hclient.post("/hooks/grafana", json=resolved)).json())["resolved"] == 1
    clock.advance(1.0)  # group_interval
    await runtime(hclient).run_until_idle()
    assert await count(hclient, "grafana-team", 2)
    note = (await inbox(hclient, "grafana-team"))[0]
    assert "[resolved] Memory back to normal" in note["body"]
    assert "High memory usage in zone" not in note["body"]
    [stored] = (await alerts(hclient))["data"]
    assert stored["status"] == "resolved"
    assert stored["annotations"]["summary"] == "Memory back to normal"
    assert stored["extra"]["values"] == {"B": 41.0, "C": 0}
    assert stored["ends_at"] == "2026-04-14T10:30:00.000Z"


async def test_a_resolve_without_annotations_keeps_the_last_ones(hclient: Client) -> None:
    body = {"alertname": "Backup", "status": "firing", "host": "db1", "text": "exit 2"}
    assert (await hclient.post("/hooks/generic/shell", json=body)).status == 200
    body = {"alertname": "Backup", "status": "resolved", "host": "db1"}
    assert (await (await hclient.post("/hooks/generic/shell", json=body)).json())["resolved"] == 1
    [stored] = (await alerts(hclient))["data"]
    assert stored["annotations"] == {"summary": "exit 2"} and stored["message"] == "exit 2"
    assert stored["extra"] == body


# --- smaller ---------------------------------------------------------------------------------


async def test_a_hook_resolve_without_an_end_sets_ends_at(hclient: Client) -> None:
    body = {"alertname": "Backup", "status": "firing", "host": "db1", "text": "exit 2"}
    assert (await hclient.post("/hooks/generic/shell", json=body)).status == 200
    before = time.time()
    body["status"] = "resolved"
    assert (await (await hclient.post("/hooks/generic/shell", json=body)).json())["resolved"] == 1
    [stored] = (await alerts(hclient))["data"]
    assert stored["ends_at"] is not None and stored["ends_at"] == stored["resolved_at"]
    assert stored["ends_at"] >= rfc3339(before - 1)


async def test_no_status_and_a_future_end_is_firing(hclient: Client) -> None:
    a = am_alert("Pending", "warning", "eu")
    del a["status"]
    a["endsAt"] = rfc3339(time.time() + 3600)
    resp = await hclient.post("/hooks/alertmanager", json={"version": "4", "alerts": [a]})
    assert (await resp.json())["created"] == 1
    [stored] = (await alerts(hclient))["data"]
    assert stored["status"] == "active"
    b = am_alert("Over", "warning", "eu")
    del b["status"]
    b["endsAt"] = rfc3339(time.time() - 60)
    resp = await hclient.post("/hooks/alertmanager", json={"version": "4", "alerts": [b]})
    assert (await resp.json())["ignored"] == 1  # resolved, and nothing was open


async def test_webhook_version_3_is_accepted(hclient: Client) -> None:
    payload = sample("alertmanager-firing.json")
    payload["version"] = "3"
    resp = await hclient.post("/hooks/alertmanager", json=payload)
    assert resp.status == 200 and (await resp.json())["created"] == 2
    payload["version"] = "5"
    resp = await hclient.post("/hooks/alertmanager", json=payload)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "version"
