"""Teams and push through the whole agent: the API checks `to` with the channel, notifications
reach the emulators, and a refused webhook fails with a detail free of the URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.emulators.ntfy import NtfyEmulator
from tests.emulators.teams import TeamsEmulator
from tests.helpers import auth, wait_status

Client = TestClient[Any, Any]
TOKEN = "tk_apptesttoken0123456789abcdefgh"


@pytest.fixture
async def emulators() -> AsyncIterator[tuple[TeamsEmulator, NtfyEmulator, str]]:
    t, n = TeamsEmulator(answer="200-1"), NtfyEmulator(tokens={TOKEN}, protected={"oncall"})
    async with t.serve(), n.serve() as ntfy_url:
        yield t, n, ntfy_url


@pytest.fixture
async def app_client(settings: Settings, emulators: tuple[TeamsEmulator, NtfyEmulator, str]
                     ) -> AsyncIterator[Client]:
    teams_emu, _, ntfy_url = emulators
    settings.public_url = "https://agent.example"
    settings.delivery.max_attempts = 1
    settings.channels.teams = settings.channels.teams.model_validate({
        "enabled": True, "timeout_seconds": 2.0,
        "webhooks": {"ops": teams_emu.add_webhook("ops"), "db": teams_emu.add_webhook("db")}})
    settings.channels.push = settings.channels.push.model_validate({
        "enabled": True, "ntfy_url": ntfy_url, "token": TOKEN, "timeout_seconds": 2.0})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def send(client: Client, channel: str, to: str, **kw: Any) -> str:
    resp = await client.post("/v1/notifications/send", headers=auth(), json={
        "channel": channel, "to": to, "message": "disk full on db1", "subject": "db1",
        "severity": "critical", **kw})
    assert resp.status == 201, await resp.text()
    nid: str = (await resp.json())["id"]
    return nid


async def test_notifications_reach_teams_and_ntfy(
        app_client: Client, emulators: tuple[TeamsEmulator, NtfyEmulator, str]) -> None:
    teams_emu, ntfy_emu, _ = emulators
    to_teams = await send(app_client, "teams", "ops")
    to_ntfy = await send(app_client, "push", "oncall")
    await wait_status(app_client, to_teams, "delivered")
    await wait_status(app_client, to_ntfy, "delivered")
    [card] = teams_emu.cards["ops"]
    assert card.texts[2] == "disk full on db1" and teams_emu.cards["db"] == []
    [shown] = ntfy_emu.current("oncall")
    assert (shown.message, shown.title, shown.priority) == ("disk full on db1", "db1", 5)


@pytest.mark.parametrize(("channel", "to"), [("teams", "nobody"), ("push", "no/topic")])
async def test_the_api_refuses_an_address_the_channel_refuses(app_client: Client, channel: str,
                                                               to: str) -> None:
    resp = await app_client.post("/v1/notifications/send", headers=auth(),
                                 json={"channel": channel, "to": to, "message": "m"})
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "invalid_recipient"


async def test_a_deleted_flow_fails_without_showing_its_url(
        app_client: Client, emulators: tuple[TeamsEmulator, NtfyEmulator, str]) -> None:
    teams_emu, _, _ = emulators
    teams_emu.failures.add("not_found")
    nid = await send(app_client, "teams", "ops")
    done = await wait_status(app_client, nid, "failed")
    assert done["failure_reason"] == "provider_rejected"
    assert "WorkflowNotFound" in done["failure_details"]
    assert teams_emu.sig("ops") not in done["failure_details"]
    assert "workflows/" not in done["failure_details"]
