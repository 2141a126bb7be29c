"""The channels seen from outside: addresses checked at the API edge by each channel, failure
details free of URLs and tokens, one shared HTTP client with per-host connection limits, and
`alert-agent check` reporting channel build errors and undeliverable rule targets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.helpers import auth, not_http_server, wait_status, wait_until
from tests.integration.test_cli import run_cli

Client = TestClient[Any, Any]
PATH_TOKEN = "T0KENinTHEpath1234567890"


@pytest.mark.parametrize(("channel", "to"), [
    ("console", "a\x07b"), ("in-app", "bob\x00"), ("webhook", "ftp://x.test/hook"),
    ("webhook", "http:///no-host"),
])
async def test_a_bad_to_is_a_422_from_the_channel(client: Client, channel: str, to: str) -> None:
    resp = await client.post("/v1/notifications/send", headers=auth(),
                             json={"channel": channel, "to": to, "message": "m"})
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert (err["type"], err["code"], err["param"]) == (
        "validation_error", "invalid_recipient", "to")
    batch = {"notifications": [{"channel": "console", "to": "ops", "message": "m"},
                               {"channel": channel, "to": to, "message": "m"}]}
    resp = await client.post("/v1/notifications/send-batch", headers=auth(), json=batch)
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert (err["code"], err["param"]) == ("invalid_recipient", "notifications[1].to")


@pytest.fixture
async def garbage_url() -> AsyncIterator[str]:
    async with not_http_server() as url:
        yield f"{url}/services/T/B/{PATH_TOKEN}"


async def test_failure_details_never_carry_the_url(settings: Settings, garbage_url: str,
                                                   stream: Any) -> None:
    settings.delivery.max_attempts = 1
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        resp = await client.post("/v1/notifications/send", headers=auth(),
                                 json={"channel": "webhook", "to": garbage_url, "message": "m"})
        assert resp.status == 201
        nid = (await resp.json())["id"]
        done = await wait_status(client, nid, "failed")
    assert done["failure_reason"] == "network_error"
    assert PATH_TOKEN not in done["failure_details"]
    assert all(PATH_TOKEN not in (a["failure_details"] or "") for a in done["attempts"])
    assert PATH_TOKEN not in stream.getvalue()


class SlowHost:
    """Holds every request until released; counts how many it holds at once."""

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await asyncio.wait_for(self.release.wait(), 10)
        finally:
            self.open -= 1
        return web.Response(text="ok")


async def test_connections_are_limited_per_host(settings: Settings) -> None:
    slow, fast_hits = SlowHost(), []

    async def fast(request: web.Request) -> web.Response:
        fast_hits.append(request.path)
        return web.Response(text="ok")

    apps = []
    for handler in (slow.handle, fast):
        app = web.Application()
        app.router.add_post("/{tail:.*}", handler)
        apps.append(TestServer(app, host="127.0.0.1"))
    for s in apps:
        await s.start_server()
    settings.delivery.max_connections_per_host = 2
    settings.channels.webhook.timeout_seconds = 10.0
    try:
        async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
            async def send(url: str) -> str:
                resp = await client.post("/v1/notifications/send", headers=auth(),
                                         json={"channel": "webhook", "to": url, "message": "m"})
                assert resp.status == 201
                return str((await resp.json())["id"])

            slow_ids = [await send(str(apps[0].make_url("/x"))) for _ in range(6)]
            await wait_until(lambda: slow.open == 2)
            # The slow host holds both of its connections; another host is not held up.
            fast_id = await send(str(apps[1].make_url("/y")))
            await wait_status(client, fast_id, "delivered")
            assert slow.open == 2 and slow.peak == 2
            slow.release.set()
            for nid in slow_ids:
                await wait_status(client, nid, "delivered")
            assert slow.peak == 2
    finally:
        slow.release.set()
        for s in apps:
            await s.close()


async def test_check_reports_channel_errors_and_undeliverable_targets(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin"}
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(
        "routes:\n  - name: hook\n    notify:\n      - {channel: webhook, to: 'https://h.test/'}\n")
    code, out, err = await run_cli("check", "--rules", str(rules), env=env)
    assert code == 0, err
    code, _, err = await run_cli("check", "--rules", str(rules),
                                 env=env | {"ALERT_AGENT_CHANNELS__WEBHOOK__ENABLED": "false"})
    assert code == 1
    assert "a.yaml:4" in err and "channel 'webhook' is disabled" in err
    secret = tmp_path / "secret"
    secret.write_text("whsec_from_a_file_0123456789\n")
    code, _, err = await run_cli(
        "check", "--rules", str(rules),
        env=env | {"ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET": "whsec_inline_0123456789",
                   "ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET_FILE": str(secret)})
    assert code == 2 and "channels.webhook" in err and "both set" in err
    assert "whsec_inline_0123456789" not in err and "whsec_from_a_file" not in err
