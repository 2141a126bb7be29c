"""Ingest through the hooks: store, dedup, group, route and deliver, with real HTTP and SQLite."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import auth, runtime, wait_until

SAMPLES = Path(__file__).resolve().parent.parent / "samples"  # copies of ../shared/samples

RULES = """
defaults:
  notify: [{channel: console, to: fallback}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
templates:
  - name: brief
    body: "{{ status }}:{% for a in alerts %} {{ a.labels.instance }}={{ a.status }}{% endfor %}"
routes:
  - name: cpu
    matchers: ['alertname="HighCPUUsage"']
    group_by: [alertname, cluster]
    notify: [{channel: in-app, to: ops, template: brief}]
    routes:
      - name: cpu-api
        matchers: ['service="api-gateway"']
        continue: true
        notify: [{channel: in-app, to: api-team, template: brief}]
      - name: cpu-rest
  - name: memory
    sources: [grafana]
    notify: [{channel: in-app, to: grafana-team}]
generic_sources:
  shell:
    alertname: "{{ alertname }}"
    status: "{{ status }}"
    labels: {host: "{{ host }}"}
    annotations: {summary: "{{ text }}"}
"""


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / name).read_text()))


Client = TestClient[Any, Any]


async def inbox(client: Client, to: str) -> list[dict[str, Any]]:
    page = await (await client.get(f"/v1/inbox?to={to}&limit=100", headers=auth())).json()
    return list(page["data"])


async def alerts(client: Client, query: str = "") -> dict[str, Any]:
    return dict(await (await client.get(f"/v1/alerts?{query}", headers=auth())).json())


async def test_alertmanager_firing_then_resolved(hmanual: Client, clock: FakeClock) -> None:
    hclient = hmanual
    resp = await hclient.post("/hooks/alertmanager", json=sample("alertmanager-firing.json"))
    assert resp.status == 200
    body = await resp.json()
    assert (body["received"], body["created"]) == (2, 2)
    listed = await alerts(hclient, "status=active")
    assert listed["meta"]["total"] == 2
    a = listed["data"][0]
    assert a["source"] == "alertmanager" and a["status"] == "active"
    assert a["labels"]["cluster"] == "prod-eu" and a["severity"] == "warning"
    assert a["fingerprint"] in ("3f2a9c1b7d4e5a60", "9b0e61d2c8a4f713")
    assert a["ends_at"] is None and a["starts_at"].startswith("2026-04-14T10:2")

    # Nested route with continue: both the api team and the rest of the cpu route hear it.
    await runtime(hclient).run_until_idle()
    assert len(await inbox(hclient, "api-team")) == 1
    [item] = await inbox(hclient, "ops")
    assert item["body"] == "firing: prod-server-3:9100=firing prod-server-4:9100=firing"

    # The same alerts again: stored as re-received, nobody is notified twice.
    again = await (await hclient.post("/hooks/alertmanager",
                                      json=sample("alertmanager-firing.json"))).json()
    assert (again["created"], again["updated"]) == (0, 2)
    clock.advance(1.0)  # group_interval: the group is looked at again, has nothing new
    await runtime(hclient).run_until_idle()
    assert len(await inbox(hclient, "ops")) == 1
    # Repeats are counted in batches (written every second and at shutdown).
    from agent.api.context import CTX

    await hclient.app[CTX].intake.flush_receipts()
    counts = {x["id"]: x["receive_count"] for x in (await alerts(hclient))["data"]}
    assert counts[a["id"]] == 2
    # A changed repeat (new annotations) is stored at once.
    changed = sample("alertmanager-firing.json")
    changed["alerts"][0]["annotations"]["summary"] = "CPU at 99%"
    await hclient.post("/hooks/alertmanager", json=changed)
    got = {x["fingerprint"]: x for x in (await alerts(hclient))["data"]}
    assert got["3f2a9c1b7d4e5a60"]["message"] == "CPU at 99%"

    resp = await hclient.post("/hooks/alertmanager", json=sample("alertmanager-resolved.json"))
    assert (await resp.json())["resolved"] >= 1
    # Told at the group's next look, one group_interval after the last notification.
    await runtime(hclient).run_until_idle()
    clock.advance(1.0)
    await runtime(hclient).run_until_idle()
    assert len(await inbox(hclient, "ops")) == 2
    resolved_note = (await inbox(hclient, "ops"))[0]
    # One of the two resolved: the group still fires, and says which one recovered.
    assert "prod-server-3:9100=resolved" in resolved_note["body"]
    assert "prod-server-4:9100=firing" in resolved_note["body"]
    detail = await (await hclient.get(f"/v1/alerts/{a['id']}", headers=auth())).json()
    assert len(detail["data"]["notifications"]) >= 1
    assert all(n["channel"] == "in-app" for n in detail["data"]["notifications"])


async def _has(client: Client, to: str, n: int) -> bool:
    return len(await inbox(client, to)) >= n


async def test_invalid_payloads_are_400_with_param(hclient: Client) -> None:
    bad = sample("alertmanager-firing.json")
    bad["alerts"][1]["labels"] = "oops"
    resp = await hclient.post("/hooks/alertmanager", json=bad)
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert err["code"] == "invalid_payload" and err["param"] == "alerts[1].labels"
    for raw in (b"{", b"[]", b'{"version": "4", "alerts": 5}'):
        assert (await hclient.post("/hooks/alertmanager", data=raw)).status == 400
    metrics = await (await hclient.get("/metrics")).text()
    assert 'alert_agent_alerts_invalid_total{source="alertmanager"} 4.0' in metrics
    assert (await alerts(hclient))["meta"]["total"] == 0


async def test_lenient_on_unknown_fields(hclient: Client) -> None:
    payload = sample("alertmanager-firing.json")
    payload["notification_reason"] = "new"
    payload["routeLabels"] = {"x": "y"}
    payload["alerts"][0]["somethingNew"] = 1
    assert (await hclient.post("/hooks/alertmanager", json=payload)).status == 200


async def test_grafana_and_generic_sources(hmanual: Client) -> None:
    hclient = hmanual
    resp = await hclient.post("/hooks/grafana", json=sample("grafana-firing.json"))
    assert resp.status == 200
    await runtime(hclient).run_until_idle()
    [note] = await inbox(hclient, "grafana-team")
    assert "High memory usage" in note["body"]
    stored = (await alerts(hclient))["data"][0]
    assert stored["extra"]["dashboardURL"].startswith("https://grafana.example.com/d/")

    resp = await hclient.post("/hooks/generic/shell", json={
        "alertname": "BackupFailed", "status": "firing", "host": "db1", "text": "exit 2"})
    assert resp.status == 200, await resp.text()
    await runtime(hclient).run_until_idle()
    found = await alerts(hclient, "status=active&per_page=100")
    backup = [a for a in found["data"] if a["alertname"] == "BackupFailed"]
    assert backup and backup[0]["source"] == "generic:shell"
    assert backup[0]["labels"]["host"] == "db1"
    assert (await hclient.post("/hooks/generic/nope", json={})).status == 404


async def test_a_thousand_alerts_are_one_transaction(hclient: Client) -> None:
    base = sample("alertmanager-firing.json")
    one = base["alerts"][0]
    payload = copy.deepcopy(base)
    payload["alerts"] = []
    for i in range(1000):
        a = copy.deepcopy(one)
        a["labels"]["instance"] = f"host-{i}"
        a["fingerprint"] = f"{i:016x}"
        payload["alerts"].append(a)
    m = runtime(hclient).metrics
    before = m.store_commits._value.get()
    resp = await hclient.post("/hooks/alertmanager", json=payload)
    assert resp.status == 200 and (await resp.json())["created"] == 1000
    # The ingest transaction, plus at most the grouper's and dispatcher's own.
    assert m.store_commits._value.get() - before <= 4
    assert (await alerts(hclient, "per_page=1"))["meta"]["total"] == 1000


async def test_hook_auth_bearer_and_basic(rules_settings: Settings) -> None:
    rules_settings.sources.alertmanager.auth.bearer_token = SecretStr("s3cret-token")
    rules_settings.sources.alertmanager.auth.username = "am"
    rules_settings.sources.alertmanager.auth.password = SecretStr("pw")
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        body = sample("alertmanager-firing.json")
        ok_basic = "Basic " + base64.b64encode(b"am:pw").decode()
        for headers, status in (({}, 401), ({"Authorization": "Bearer nope"}, 401),
                                ({"Authorization": "Bearer s3cret-token"}, 200),
                                ({"Authorization": ok_basic}, 200),
                                ({"Authorization": "Basic " + base64.b64encode(b"am:x").decode()},
                                 401)):
            resp = await c.post("/hooks/alertmanager", json=body, headers=headers)
            assert resp.status == status, headers
            if status == 401:
                assert (await resp.json())["error"]["type"] == "authentication_error"


async def test_grafana_signature_is_verified(rules_settings: Settings) -> None:
    rules_settings.sources.grafana.signing_secret = SecretStr("gsecret")
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        raw = json.dumps(sample("grafana-firing.json")).encode()
        good = hmac.new(b"gsecret", raw, hashlib.sha256).hexdigest()
        h = {"Content-Type": "application/json"}
        assert (await c.post("/hooks/grafana", data=raw, headers=h)).status == 401
        bad = {**h, "X-Grafana-Alerting-Signature": "0" * 64}
        assert (await c.post("/hooks/grafana", data=raw, headers=bad)).status == 401
        ok = {**h, "X-Grafana-Alerting-Signature": good}
        assert (await c.post("/hooks/grafana", data=raw, headers=ok)).status == 200
        ts = str(int(time.time()))
        signed = hmac.new(b"gsecret", ts.encode() + b":" + raw, hashlib.sha256).hexdigest()
        with_ts = {**h, "X-Grafana-Alerting-Signature": signed,
                   "X-Grafana-Alerting-Timestamp": ts}
        assert (await c.post("/hooks/grafana", data=raw, headers=with_ts)).status == 200
        old = str(int(time.time()) - 3600)  # a captured request replayed an hour later
        replay = hmac.new(b"gsecret", old.encode() + b":" + raw, hashlib.sha256).hexdigest()
        stale = {**h, "X-Grafana-Alerting-Signature": replay,
                 "X-Grafana-Alerting-Timestamp": old}
        resp = await c.post("/hooks/grafana", data=raw, headers=stale)
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "stale_signature"


INHIBIT_RULES = """
defaults:
  notify: [{channel: in-app, to: ops}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  group_by: [alertname, severity]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, cluster]
"""


def am_alert(name: str, severity: str, cluster: str, status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "cluster": cluster}
    return {"status": status, "labels": labels, "annotations": {"summary": f"{severity}"},
            "startsAt": "2026-04-14T10:25:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-04-14T10:30:00Z"}


async def test_inhibition_mutes_then_releases(settings: Settings, clock: FakeClock) -> None:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(INHIBIT_RULES)
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
            return {"version": "4", "status": "firing", "receiver": "x", "alerts": list(alerts)}

        crit = am_alert("Disk", "critical", "eu")
        assert (await c.post("/hooks/alertmanager", json=payload(crit))).status == 200
        await runtime(c).run_until_idle()
        assert len(await inbox(c, "ops")) == 1
        # A warning of the same alert and cluster is muted; another cluster's is not.
        await c.post("/hooks/alertmanager", json=payload(am_alert("Disk", "warning", "eu"),
                                                          am_alert("Disk", "warning", "us")))
        await runtime(c).run_until_idle()
        notes = await inbox(c, "ops")
        assert len(notes) == 2 and "warning" in notes[0]["body"]
        metrics = await (await c.get("/metrics")).text()
        assert "alert_agent_groups_muted_total 0.0" not in metrics
        # The critical one resolves: the muted warning is told at the group's next look.
        await c.post("/hooks/alertmanager", json=payload(am_alert("Disk", "critical", "eu",
                                                                  "resolved")))
        await runtime(c).run_until_idle()
        assert len(await inbox(c, "ops")) == 2
        clock.advance(1.0)  # group_interval
        await runtime(c).run_until_idle()
        bodies = [n["body"] for n in await inbox(c, "ops")]
        # Oldest last: the critical; the us warning alone (eu muted); then, the critical gone,
        # its resolution and the warning group with eu told at last.
        assert bodies[2:] == ["[FIRING:1] Disk (severity=warning)\n- warning",
                              "[FIRING:1] Disk (severity=critical)\n- critical"]
        assert set(bodies[:2]) == {"[RESOLVED] Disk (severity=critical)\n- [resolved] critical",
                                   "[FIRING:2] Disk (severity=warning)\n- warning\n- warning"}


async def test_off_loopback_every_source_needs_auth(rules_settings: Settings) -> None:
    from agent.settings import ConfigError

    rules_settings.host = "0.0.0.0"
    server = TestServer(create_app(rules_settings), host="127.0.0.1")
    with pytest.raises(ConfigError) as exc:
        await server.start_server()
    await server.close()
    assert "alertmanager" in str(exc.value) and "generic.shell" in str(exc.value)
    rules_settings.sources.alertmanager.auth.bearer_token = SecretStr("t")
    rules_settings.sources.grafana.auth.type = "none"
    from agent.settings import SourceSettings

    rules_settings.sources.generic["shell"] = SourceSettings.model_validate(
        {"auth": {"hmac_secret": "k"}})
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        body = json.dumps({"alertname": "X", "status": "firing", "host": "h"}).encode()
        sig = hmac.new(b"k", body, hashlib.sha256).hexdigest()
        assert (await c.post("/hooks/generic/shell", data=body)).status == 401
        resp = await c.post("/hooks/generic/shell", data=body,
                            headers={"X-Signature": f"sha256={sig}"})
        assert resp.status == 200


MUTE_RULES = """
defaults:
  notify: [{channel: in-app, to: ops}]
  group_wait: 0s
  group_interval: 1s
time_intervals:
  - name: always
    time_intervals: [{}]
routes:
  - name: muted
    matchers: ['alertname="Muted"']
    mute_time_intervals: [always]
"""


async def test_mute_time_intervals_suppress(settings: Settings, clock: FakeClock) -> None:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(MUTE_RULES)
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        payload = {"version": "4", "alerts": [am_alert("Muted", "critical", "eu"),
                                              am_alert("Loud", "critical", "eu")]}
        assert (await c.post("/hooks/alertmanager", json=payload)).status == 200
        await runtime(c).run_until_idle()
        [note] = await inbox(c, "ops")
        assert "Loud" in note["body"]
        assert runtime(c).metrics.groups_muted._value.get() >= 1


async def test_reload_cannot_open_an_unsecured_source(rules_settings: Settings) -> None:
    from agent.settings import SourceSettings

    rules_settings.host = "0.0.0.0"
    rules_settings.sources.alertmanager.auth.bearer_token = SecretStr("t")
    rules_settings.sources.grafana.auth.type = "none"
    rules_settings.sources.generic["shell"] = SourceSettings.model_validate(
        {"auth": {"bearer_token": "s"}})
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        (rules_settings.rules_dir / "20-ci.yaml").write_text(
            "generic_sources:\n  ci:\n    alertname: '{{ name }}'\n")
        resp = await c.post("/-/reload", headers=auth())
        assert resp.status == 422
        assert "generic source 'ci' has no auth" in (await resp.json())["error"]["message"]
        assert "ci" not in runtime(c).rules.current.generic_sources
        assert (await c.post("/hooks/generic/ci", json={"name": "x"})).status == 404


async def test_a_late_firing_copy_of_a_resolved_alert_is_ignored(hclient: Client) -> None:
    firing = sample("alertmanager-firing.json")
    assert (await hclient.post("/hooks/alertmanager", json=firing)).status == 200
    resolved = sample("alertmanager-resolved.json")
    assert (await hclient.post("/hooks/alertmanager", json=resolved)).status == 200
    # The other Alertmanager peer's copy of the firing alert arrives late.
    late = await (await hclient.post("/hooks/alertmanager", json=firing)).json()
    assert late["created"] == 0 and late["ignored"] >= 1
    # A real re-fire starts after the resolution and opens a new alert.
    refire = sample("alertmanager-firing.json")
    for a in refire["alerts"]:
        a["startsAt"] = "2099-01-01T00:00:00Z"
    assert (await (await hclient.post("/hooks/alertmanager", json=refire)).json())["created"] >= 1


async def test_a_huge_group_is_told_in_one_capped_notification(settings: Settings) -> None:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(
        "defaults: {notify: [{channel: in-app, to: ops}], group_wait: 0s, group_by: [alertname]}\n")
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        alerts_ = []
        for i in range(300):
            a = am_alert("Storm", "critical", "eu")
            a["labels"]["instance"] = f"host-{i}"
            alerts_.append(a)
        resp = await c.post("/hooks/alertmanager", json={"version": "4", "alerts": alerts_})
        assert (await resp.json())["created"] == 300
        await wait_until(lambda: _has(c, "ops", 1))
        [note] = await inbox(c, "ops")
        lines = note["body"].splitlines()
        assert lines[0] == "[FIRING:300] Storm"
        assert len(lines) == 1 + 50 + 1 and lines[-1] == "... and 250 more"
        detail = await (await c.get("/v1/alerts?per_page=1", headers=auth())).json()
        one = detail["data"][0]["id"]
        got = await (await c.get(f"/v1/alerts/{one}", headers=auth())).json()
        assert len(got["data"]["notifications"]) == 1  # every alert links to the notification
        ntf = await (await c.get(f"/v1/notifications/{note['notification_id']}",
                                 headers=auth())).json()
        # Every alert of the group is counted; the ids listed are capped.
        assert ntf["metadata"]["alert_count"] == 300
        assert len(ntf["metadata"]["alert_ids"]) == 100
