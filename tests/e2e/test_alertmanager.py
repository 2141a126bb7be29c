"""End to end with a real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``).

Alertmanager runs on 127.0.0.1 with a ``webhook_config`` that points at a running ``alert-agent``
(``python -m agent run``) and authenticates the way a real deployment does
(``http_config.authorization``, Bearer). Alerts are posted to Alertmanager's API; the test asserts
that the agent stored them, routed them by its rules and delivered them in-app and to a local
webhook sink, resolved notifications included; an alert that matches no route goes to the
default (console) target.

Skipped only when the binary is not installed (``.ci/run`` installs it). Every child is killed
by its PID at teardown; every wait polls against a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.e2e.processes import Child, tails
from tests.helpers import Sink

T = TypeVar("T")

AM_PACKAGE_BINARY = "/usr/bin/prometheus-alertmanager"
AM_BINARY = shutil.which("prometheus-alertmanager") or (
    AM_PACKAGE_BINARY if os.access(AM_PACKAGE_BINARY, os.X_OK) else None)

API_KEY = "sk_live_e2eAlertmanager0000000000000001"
HOOK_TOKEN = "am-hook-token-0123456789abcdef"
SIGNING_SECRET = "whsec_x"
START_TIMEOUT_S = 20.0
# Alertmanager flushes a group every group_interval (1 s here); generous but polled.
DELIVERY_TIMEOUT_S = 30.0
ALERTNAME = "E2EDiskFull"


def am_binary() -> str:
    """The Alertmanager binary; skipped where it is not installed, but never silently in CI."""
    if AM_BINARY is None:
        why = ("prometheus-alertmanager is not installed "
               "(apt-get install prometheus-alertmanager; .ci/run installs it)")
        if os.environ.get("CI"):
            pytest.fail(f"CI must install it: {why}")
        pytest.skip(why)
    return AM_BINARY

RULES = """\
defaults:
  notify: [{{channel: console, to: fallback}}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
templates:
  - name: brief
    body: "{{{{ status }}}}:{{% for a in alerts %}} {{{{ a.labels.instance }}}}={{{{ a.status }}}}{{% endfor %}}"
routes:
  - name: e2e
    sources: [alertmanager]
    matchers: ['alertname="{alertname}"']
    group_by: [alertname]
    notify:
      - {{channel: in-app, to: oncall, template: brief}}
      - {{channel: webhook, to: "{sink}", template: brief}}
"""  # noqa: E501


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Stack:
    http: aiohttp.ClientSession
    agent: Child
    am: Child
    agent_url: str
    am_url: str
    sink: Sink
    children: list[Child] = field(default_factory=list)

    def logs(self) -> str:
        return tails(self.children)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def agent_env(tmp: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ALERT_AGENT_")
           and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                         "LISTEN_PID", "LISTEN_FDNAMES")}
    env.update({
        "ALERT_AGENT_HOST": "127.0.0.1",
        "ALERT_AGENT_PORT": str(port),
        "ALERT_AGENT_DATA_DIR": str(tmp / "data"),
        "ALERT_AGENT_RULES_DIR": str(tmp / "rules"),
        "ALERT_AGENT_API_KEYS": API_KEY,
        "ALERT_AGENT_LOG__FORMAT": "json",
        "ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET": SIGNING_SECRET,
        "ALERT_AGENT_CHANNELS__WEBHOOK__ALLOW_LOOPBACK": "true",  # the sink is on 127.0.0.1
        "ALERT_AGENT_DELIVERY__POLL_INTERVAL_SECONDS": "0.1",
        "ALERT_AGENT_SOURCES__ALERTMANAGER__AUTH__BEARER_TOKEN": HOOK_TOKEN,
    })
    return env


def am_config(agent_port: int) -> dict[str, Any]:
    return {
        "route": {"receiver": "agent", "group_wait": "0s", "group_interval": "1s",
                  "repeat_interval": "1h", "group_by": ["alertname"]},
        "receivers": [{"name": "agent", "webhook_configs": [{
            "url": f"http://127.0.0.1:{agent_port}/hooks/alertmanager",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": HOOK_TOKEN}},
        }]}],
    }


async def poll(fetch: Callable[[], Awaitable[T | None]], what: str, *,
               timeout: float = DELIVERY_TIMEOUT_S, interval: float = 0.1,
               diagnostics: Callable[[], str] = lambda: "") -> T:
    """Call ``fetch`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = await fetch()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}\n{diagnostics()}")
        await asyncio.sleep(interval)


async def wait_http_ok(http: aiohttp.ClientSession, url: str, child: Child) -> None:
    async def ok() -> bool | None:
        if child.proc.poll() is not None:
            raise AssertionError(f"{child.name} exited with {child.proc.returncode} before "
                                 f"ready:\n{child.log()}")
        try:
            async with http.get(url) as r:
                return r.status == 200
        except aiohttp.ClientConnectionError:
            return None

    await poll(ok, f"{url} answers 200", timeout=START_TIMEOUT_S, interval=0.05,
               diagnostics=child.log)


def start_alertmanager(binary: str, tmp_path: Path, agent_port: int,
                       children: Callable[[str, list[str], dict[str, str]], Child]
                       ) -> tuple[Child, str]:
    """Alertmanager on a free loopback port, sending to the agent; the child and its URL."""
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(json.dumps(am_config(agent_port), indent=2))  # JSON is YAML
    am_port = free_port()
    am = children("alertmanager", [
        binary, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
        "--log.level=debug",
    ], {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)})
    return am, f"http://127.0.0.1:{am_port}"


@pytest.fixture
async def stack(
    tmp_path: Path, sink: Sink, children: Callable[[str, list[str], dict[str, str]], Child]
) -> AsyncIterator[Stack]:
    binary = am_binary()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-e2e.yaml").write_text(RULES.format(alertname=ALERTNAME, sink=sink.url))

    agent_port = free_port()
    agent = children("agent", [sys.executable, "-m", "agent", "run"],
                     agent_env(tmp_path, agent_port))
    agent_url = f"http://127.0.0.1:{agent_port}"

    am, am_url = start_alertmanager(binary, tmp_path, agent_port, children)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await wait_http_ok(http, f"{agent_url}/readyz", agent)
        await wait_http_ok(http, f"{am_url}/-/ready", am)
        yield Stack(http, agent, am, agent_url, am_url, sink, [agent, am])


# --- the two APIs ------------------------------------------------------------------------------


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


async def agent_get(s: Stack, path: str, **params: str) -> dict[str, Any]:
    async with s.http.get(f"{s.agent_url}{path}", params=params, headers=_auth()) as r:
        body = await r.json(content_type=None)
        assert r.status == 200, (path, r.status, body)
        return dict(body)


async def alerts(s: Stack, status: str) -> list[dict[str, Any]]:
    body = await agent_get(s, "/v1/alerts", status=status, per_page="100")
    assert body["meta"]["total"] == len(body["data"]), body["meta"]
    return list(body["data"])


async def inbox(s: Stack, to: str = "oncall") -> list[str]:
    return [str(i["body"]) for i in (await agent_get(s, "/v1/inbox", to=to))["data"]]


def sink_messages(s: Stack) -> list[str]:
    return [str(json.loads(rec["body"])["message"]) for rec in s.sink.received]


async def am_post(s: Stack, alerts: list[dict[str, Any]]) -> None:
    async with s.http.post(f"{s.am_url}/api/v2/alerts", json=alerts) as r:
        assert r.status == 200, (r.status, await r.text())


def am_alert(labels: dict[str, str], starts_at: float, ends_at: float | None = None
             ) -> dict[str, Any]:
    a: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": f"disk full on {labels.get('instance', '?')}"},
        "startsAt": rfc3339(starts_at),
        "generatorURL": "http://127.0.0.1:9/graph?g0.expr=disk_free%3C1",
    }
    if ends_at is not None:
        a["endsAt"] = rfc3339(ends_at)
    return a


def disk_labels(instance: str) -> dict[str, str]:
    return {"alertname": ALERTNAME, "instance": instance, "severity": "critical"}


def firing_text(text: str) -> bool:
    return text.startswith("firing:") and " host-a=firing" in text and " host-b=firing" in text


def metric_value(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the test ----------------------------------------------------------------------------------


async def test_alertmanager_webhook_is_stored_routed_delivered_and_resolved(
    stack: Stack,
) -> None:
    s = stack
    started = time.time() - 60

    # Bearer auth is enforced on the hook: without Alertmanager's credentials, nothing goes in.
    async with s.http.post(f"{s.agent_url}/hooks/alertmanager",
                           json={"version": "4", "alerts": []}) as r:
        assert r.status == 401, await r.text()

    await am_post(s, [am_alert(disk_labels("host-a"), started),
                      am_alert(disk_labels("host-b"), started)])
    ids = await stored_and_delivered_firing(s)
    await unrouted_goes_to_fallback(s, started)
    await resolved_one_then_all(s, started, ids)

    # Every webhook delivery is signed and carries the notification id.
    for rec in s.sink.received:
        body = json.loads(rec["body"])
        assert body["id"].startswith("ntf_"), body
        headers = {k.lower(): v for k, v in rec["headers"].items()}
        assert headers.get("x-alert-agent-signature", "").startswith("sha256="), headers

    # The intake metric counts what Alertmanager sent.
    async with s.http.get(f"{s.agent_url}/metrics") as r:
        assert r.status == 200
        metrics = await r.text()
    received = metric_value(metrics, "alert_agent_alerts_received_total",
                            'source="alertmanager"')
    assert received >= 4, f"alert_agent_alerts_received_total{{source=alertmanager}} = {received}"

    # No hook call from Alertmanager was refused (the one rejection is the probe above).
    rejected = [e for e in s.agent.events() if e.get("event") == "hook_rejected"]
    assert len(rejected) == 1, rejected
    assert "level=error" not in s.am.log(), s.am.log()
    assert API_KEY not in s.agent.log() and HOOK_TOKEN not in s.agent.log()


async def stored_and_delivered_firing(s: Stack) -> dict[str, str]:
    """Both alerts stored as active, told in-app and by webhook; their ids by instance."""

    async def both_active() -> list[dict[str, Any]] | None:
        mine = [a for a in await alerts(s, "active") if a["labels"].get("alertname") == ALERTNAME]
        return mine if len(mine) == 2 else None

    active = await poll(both_active, "both alerts active in the agent", diagnostics=s.logs)
    assert {a["labels"]["instance"] for a in active} == {"host-a", "host-b"}
    for a in active:
        assert a["source"] == "alertmanager", a
        assert a["status"] == "active", a
        assert a["labels"]["severity"] == "critical", a
        assert a["annotations"]["summary"] == f"disk full on {a['labels']['instance']}", a
    ids = {a["labels"]["instance"]: str(a["id"]) for a in active}

    # Routed by the "e2e" route and delivered in-app and to the webhook sink.
    async def inbox_firing() -> list[str] | None:
        return [m for m in await inbox(s) if firing_text(m)] or None

    async def sink_firing() -> list[str] | None:
        return [m for m in sink_messages(s) if firing_text(m)] or None

    await poll(inbox_firing, "in-app 'firing' notification naming host-a and host-b",
               diagnostics=s.logs)
    await poll(sink_firing, "webhook 'firing' notification naming host-a and host-b",
               diagnostics=s.logs)
    assert all(rec["path"] == "/hook" for rec in s.sink.received)

    async def detail_lists_notifications() -> list[dict[str, Any]] | None:
        d = (await agent_get(s, f"/v1/alerts/{ids['host-a']}"))["data"]
        channels = {n["channel"] for n in d["notifications"] if firing_text(n["message"])}
        return list(d["notifications"]) if {"in-app", "webhook"} <= channels else None

    ns = await poll(detail_lists_notifications,
                    "alert detail lists the in-app and webhook notifications",
                    diagnostics=s.logs)
    for n in ns:
        assert n["id"].startswith("ntf_"), n
        assert n["channel"] in ("in-app", "webhook"), f"alert routed elsewhere too: {n}"
    return ids


async def unrouted_goes_to_fallback(s: Stack, started: float) -> None:
    """An alert that no route matches goes to the defaults' console target."""
    await am_post(s, [am_alert({"alertname": "Unrouted", "instance": "host-z"}, started)])

    async def console_fallback() -> list[dict[str, Any]] | None:
        body = await agent_get(s, "/v1/notifications", limit="100", channel="console")
        return [n for n in body["data"]
                if n["to"] == "fallback" and "Unrouted" in n["message"]] or None

    fallback = await poll(console_fallback, "console notification to 'fallback' for Unrouted",
                          diagnostics=s.logs)
    assert all("host-a" not in n["message"] for n in fallback)


async def resolved_one_then_all(s: Stack, started: float, ids: dict[str, str]) -> None:
    """Resolve host-a, then host-b, via Alertmanager; each told in-app and by webhook."""
    await am_post(s, [am_alert(disk_labels("host-a"), started, ends_at=time.time() - 1)])

    async def host_a_resolved() -> dict[str, Any] | None:
        done = [a for a in await alerts(s, "resolved") if a["id"] == ids["host-a"]]
        return done[0] if done else None

    resolved = await poll(host_a_resolved, "host-a resolved in the agent", diagnostics=s.logs)
    assert resolved["resolved_at"] is not None, resolved
    still = {a["id"] for a in await alerts(s, "active")}
    assert ids["host-b"] in still and ids["host-a"] not in still

    def one_resolved(text: str) -> bool:
        # host-b still fires, so the group as a whole is still firing.
        return text.startswith("firing:") and " host-a=resolved" in text \
            and " host-b=firing" in text

    def all_resolved(text: str) -> bool:
        return text.startswith("resolved:") and " host-b=resolved" in text

    async def in_inbox(match: Callable[[str], bool]) -> list[str] | None:
        return [m for m in await inbox(s) if match(m)] or None

    async def in_sink(match: Callable[[str], bool]) -> list[str] | None:
        return [m for m in sink_messages(s) if match(m)] or None

    await poll(lambda: in_inbox(one_resolved), "in-app 'host-a=resolved'", diagnostics=s.logs)
    await poll(lambda: in_sink(one_resolved), "webhook 'host-a=resolved'", diagnostics=s.logs)

    await am_post(s, [am_alert(disk_labels("host-b"), started, ends_at=time.time() - 1)])
    await poll(lambda: in_inbox(all_resolved), "in-app 'resolved: ... host-b=resolved'",
               diagnostics=s.logs)
    await poll(lambda: in_sink(all_resolved), "webhook 'resolved: ... host-b=resolved'",
               diagnostics=s.logs)
    assert not [a for a in await alerts(s, "active") if a["labels"].get("alertname") == ALERTNAME]
    newest = await inbox(s)
    assert all_resolved(newest[0]), newest
