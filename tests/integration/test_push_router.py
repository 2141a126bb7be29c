"""The push channel with two providers: `fcm:` addresses go to FCM, topics to ntfy; FCM enabled
alone enables push; ntfy alone is the ntfy channel as before; and through the whole agent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.channels.base import AddressError
from agent.channels.push import PushChannel
from agent.channels.push_router import PushRouter
from agent.channels.registry import (
    ChannelBuildError,
    ChannelsSettings,
    build_channels,
    target_problem,
)
from agent.clock import FakeClock
from agent.settings import Settings
from tests.emulators.fcm import FcmEmulator, ServiceAccountKey
from tests.emulators.ntfy import NtfyEmulator
from tests.helpers import auth, runtime, wait_status
from tests.integration.test_fcm import DEVICE, message
from tests.integration.test_teams import deps

Client = TestClient[Any, Any]


@pytest.fixture
async def emus() -> AsyncIterator[tuple[FcmEmulator, str, NtfyEmulator, str]]:
    f, n = FcmEmulator(ServiceAccountKey(token_uri="")), NtfyEmulator()
    async with f.serve() as fcm_url, n.serve() as ntfy_url:
        f.account.token_uri = f"{fcm_url}/token"
        yield f, fcm_url, n, ntfy_url


def fcm_section(f: FcmEmulator, url: str, tmp_path: Path) -> dict[str, Any]:
    return {"enabled": True, "service_account_file": f.account.write(tmp_path / "key.json"),
            "api_url": url, "timeout_seconds": 2.0}


async def test_addresses_go_to_the_provider_they_name(
        emus: tuple[FcmEmulator, str, NtfyEmulator, str], tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    f, fcm_url, n, ntfy_url = emus
    push = build_channels(ChannelsSettings(
        push={"enabled": True, "ntfy_url": ntfy_url},
        fcm=fcm_section(f, fcm_url, tmp_path)), deps(session))["push"]
    assert isinstance(push, PushRouter)
    # Both replace a group's earlier message; FCM cannot delete, so the channel does not claim it.
    assert (push.limits.can_edit, push.limits.can_delete) == (True, False)
    assert push.validate_address("alerts") == "alerts"
    assert push.validate_address("fcm:" + DEVICE) == "fcm:" + DEVICE
    await push.send(message(to="alerts", channel="push"))
    ref = (await push.send(message())).provider_ref
    assert [x.message for x in n.current("alerts")] == ["disk full on db1"]
    assert [x.body for x in f.messages[DEVICE]] == ["disk full on db1"]
    assert ref is not None and ref["name"].startswith("projects/")
    assert push.destination_key("alerts") == "push:alerts"
    assert push.destination_key("fcm:a") != push.destination_key("fcm:b")
    assert list(push.rates("fcm:" + DEVICE)) == []
    await push.close()


async def test_fcm_enabled_alone_enables_push_for_fcm_addresses(
        emus: tuple[FcmEmulator, str, NtfyEmulator, str], tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    f, fcm_url, _, _ = emus
    built = build_channels(ChannelsSettings(fcm=fcm_section(f, fcm_url, tmp_path)),
                           deps(session))
    push = built["push"]
    await push.send(message())
    assert len(f.messages[DEVICE]) == 1
    with pytest.raises(AddressError, match=r"channels\.push"):
        push.validate_address("alerts")
    assert target_problem(built, "push", "alerts") is not None
    assert target_problem(built, "push", "fcm:" + DEVICE) is None
    await push.close()


def test_ntfy_alone_is_the_ntfy_channel_and_says_what_fcm_needs() -> None:
    push = build_channels(ChannelsSettings(push={"enabled": True,
                                                 "ntfy_url": "https://ntfy.sh"}), deps())["push"]
    assert type(push) is PushChannel
    with pytest.raises(AddressError, match=r"channels\.fcm\.enabled"):
        push.validate_address("fcm:" + DEVICE)


def test_disabled_push_names_both_sections_and_errors_come_at_once(tmp_path: Path) -> None:
    built = build_channels(ChannelsSettings(), deps())
    assert "push" not in built
    assert target_problem(built, "push", "alerts") == (
        "channel 'push' is disabled (channels.push.enabled and channels.fcm.enabled: false)")
    with pytest.raises(ChannelBuildError) as caught:
        build_channels(ChannelsSettings(push={"enabled": True}, fcm={"enabled": True}), deps())
    assert [p.split(":")[0] for p in caught.value.problems] == ["channels.push",
                                                                 "channels.fcm"]


# --- through the whole agent ----------------------------------------------------------------

@pytest.fixture
async def app_client(settings: Settings, emus: tuple[FcmEmulator, str, NtfyEmulator, str],
                     tmp_path: Path) -> AsyncIterator[Client]:
    f, fcm_url, _, _ = emus
    settings.delivery.max_attempts = 1
    settings.channels.fcm = settings.channels.fcm.model_validate(
        fcm_section(f, fcm_url, tmp_path))
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def test_the_agent_delivers_to_a_device_with_fcm_alone(
        app_client: Client, emus: tuple[FcmEmulator, str, NtfyEmulator, str]) -> None:
    f = emus[0]
    resp = await app_client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "push", "to": "fcm:" + DEVICE, "message": "disk full on db1",
        "subject": "db1", "severity": "critical"})
    assert resp.status == 201, await resp.text()
    done = await wait_status(app_client, (await resp.json())["id"], "delivered")
    [sent] = f.messages[DEVICE]
    assert (sent.title, sent.body, sent.android_priority) == ("db1", "disk full on db1", "high")
    assert done["status"] == "delivered"
    for to in ("alerts", "fcm:bad token"):
        resp = await app_client.post("/v1/notifications/send", headers=auth(),
                                     json={"channel": "push", "to": to, "message": "m"})
        assert resp.status == 422, to
        assert (await resp.json())["error"]["code"] == "invalid_recipient"


async def test_refused_fcm_credentials_pause_fcm_only(
        settings: Settings, emus: tuple[FcmEmulator, str, NtfyEmulator, str],
        tmp_path: Path, clock: FakeClock) -> None:
    f, fcm_url, n, ntfy_url = emus
    settings.channels.fcm = settings.channels.fcm.model_validate(
        fcm_section(f, fcm_url, tmp_path))
    settings.channels.push = settings.channels.push.model_validate(
        {"enabled": True, "ntfy_url": ntfy_url})
    f.token_failures.add("invalid_grant", times=None)  # the key was revoked
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        ids = []
        for to in ("fcm:" + DEVICE, "fcm:" + DEVICE, "alerts"):
            if to == "alerts":  # after the pause began
                await runtime(c).run_until_idle()
            resp = await c.post("/v1/notifications/send", headers=auth(),
                                json={"channel": "push", "to": to, "message": "m"})
            ids.append((await resp.json())["id"])
        await runtime(c).run_until_idle()
        got = [await (await c.get(f"/v1/notifications/{i}", headers=auth())).json()
               for i in ids]
        # The topic went out through ntfy; both device sends wait for the paused provider
        # (queued, no attempt spent on the second), and only one token request was made.
        assert [g["status"] for g in got] == ["queued", "queued", "delivered"]
        assert [x.message for x in n.current("alerts")] == ["m"]
        assert got[1]["last_error"] == "channel_paused"
        metrics = await (await c.get("/metrics")).text()
        assert 'alert_agent_channel_paused{channel="push/fcm"} 1.0' in metrics
        assert 'alert_agent_channel_paused{channel="push"} 0.0' in metrics
