"""The apprise channel through the real Apprise library against a local ``json://`` receiver:
what arrives, each failure the receiver can answer, a stall past the timeout, the pool bound
under concurrent sends, URL credentials kept out of every detail and log line, and the whole
agent sending to an alias."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agent.app import _channel_secret, create_app
from agent.channels.apprise import AppriseChannel, AppriseSettings
from agent.channels.base import DeliveryError, DeliveryResult, Message, RetryableDeliveryError
from agent.observability import get_logger
from agent.settings import Settings
from tests.emulators.apprise_json import AppriseJsonEmulator
from tests.helpers import auth, wait_status, wait_until

USER, PASSWORD = "alerts", "Pa55wordInTheAppriseUrl"
PATH_TOKEN = "T0kenInThePathOfTheUrl0123"
SECRETS = (PASSWORD, PATH_TOKEN)

Client = TestClient[Any, Any]


def url_for(base: str, path: str = f"/hooks/{PATH_TOKEN}") -> str:
    """The json:// Apprise URL of the receiver at ``base`` (http://127.0.0.1:PORT)."""
    return f"json://{USER}:{PASSWORD}@{base.removeprefix('http://')}{path}"


def message(severity: str = "critical", **kw: Any) -> Message:
    fields: dict[str, Any] = dict(
        notification_id="ntf_1", channel="apprise", to="ops", text="disk full on db1",
        subject="db1 down", severity=severity, priority="high", created_at=0.0)
    fields.update(kw)
    return Message(**fields)


def build(base: str, **cfg: Any) -> AppriseChannel:
    settings = AppriseSettings.model_validate(
        {"enabled": True, "urls": {"ops": url_for(base)}, "timeout_seconds": 5.0, **cfg})
    return AppriseChannel.from_settings(settings, _channel_secret,
                                        get_logger("channel.apprise"))


@pytest.fixture
async def emu() -> AsyncIterator[tuple[AppriseJsonEmulator, str]]:
    e = AppriseJsonEmulator(credentials=(USER, PASSWORD))
    async with e.serve() as base:
        yield e, base


@pytest.fixture
def root_debug() -> Iterator[None]:
    """Stdlib logging at DEBUG everywhere: Apprise's debug lines (the URL it posts to) would
    reach our log unless the channel silences them. The receiver's own access log (the far
    side, which names the path it was posted to) stays at INFO."""
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    before = root.level, access.level
    root.setLevel(logging.DEBUG)
    access.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(before[0])
        access.setLevel(before[1])


@pytest.mark.parametrize(("severity", "status", "kind"), [
    ("critical", "firing", "failure"), ("warning", "firing", "warning"),
    ("info", "firing", "info"), ("warning", "resolved", "success")])
async def test_the_json_apprise_posts_arrives(emu: tuple[AppriseJsonEmulator, str],
                                              severity: str, status: str, kind: str) -> None:
    e, base = emu
    channel = build(base)
    try:
        result = await channel.send(message(severity, status=status))
    finally:
        await channel.close()
    assert result == DeliveryResult(provider_ref={"alias": "ops", "parts": 1})
    [got] = e.messages[f"/hooks/{PATH_TOKEN}"]
    assert (got.title, got.message, got.type, got.version) == (
        "db1 down", "disk full on db1", kind, "1.0")
    # The URL's credentials went as basic auth (the emulator refuses others with 401).
    [req] = e.requests
    assert (req.method, req.status) == ("POST", 200)


@pytest.mark.parametrize("fault", ["5xx", "404", "429", "malformed"])
async def test_a_failure_answer_is_retryable_without_secrets(
        emu: tuple[AppriseJsonEmulator, str], fault: str, logs: io.StringIO,
        root_debug: None) -> None:
    e, base = emu
    e.failures.add(fault, retry_after=30.0 if fault == "429" else None)
    channel = build(base)
    try:
        with pytest.raises(RetryableDeliveryError) as err:
            await channel.send(message())
    finally:
        await channel.close()
    assert (err.value.reason.value, err.value.retry_after) == ("provider_unavailable", None)
    assert len(e.requests) == 1 and e.messages == {}
    for secret in SECRETS:
        assert secret not in str(err.value) and secret not in logs.getvalue()


async def test_wrong_credentials_are_retryable_too(emu: tuple[AppriseJsonEmulator, str]) -> None:
    # Apprise answers false for a 401 as for anything else: no way to tell it apart here.
    e, base = emu
    e.credentials = (USER, "another")
    channel = build(base)
    try:
        with pytest.raises(RetryableDeliveryError):
            await channel.send(message())
    finally:
        await channel.close()
    assert [r.status for r in e.requests] == [401]


async def test_a_stall_past_the_timeout_is_retryable_and_the_channel_stays_usable(
        emu: tuple[AppriseJsonEmulator, str]) -> None:
    e, base = emu
    e.failures.add("stall")
    channel = build(base, timeout_seconds=0.5, max_workers=2)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(RetryableDeliveryError) as err:
            await channel.send(message())
        assert err.value.reason.value == "timeout" and loop.time() - started < 2.0
        # The stalled call still holds one worker; the other delivers meanwhile.
        assert channel.pool.overrun == 1
        assert isinstance(await channel.send(message(text="second")), DeliveryResult)
        e.failures.release.set()  # the receiver answers the stalled request
        await wait_until(lambda: channel.pool.running == 0, timeout=5.0)
        assert isinstance(await channel.send(message(text="third")), DeliveryResult)
    finally:
        await channel.close()
    texts = [m.message for m in e.messages[f"/hooks/{PATH_TOKEN}"]]
    assert texts == ["second", "third"]
    # The stalled request was answered (200) once released, after the channel gave up on it:
    # a retry of it would be a duplicate (at least once).
    assert [r.status for r in e.requests] == [200, 200, 200]


async def test_the_pool_bounds_concurrent_requests(
        emu: tuple[AppriseJsonEmulator, str]) -> None:
    e, base = emu
    e.delay = 0.1  # each request held, so that sends overlap at the receiver
    channel = build(base, max_workers=3, timeout_seconds=10.0)
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(channel.send(message(text=f"m{i}")) for i in range(12))), 30.0)
    finally:
        await channel.close()
    assert all(isinstance(r, DeliveryResult) for r in results)
    assert e.max_in_flight == 3
    assert len(e.messages[f"/hooks/{PATH_TOKEN}"]) == 12


async def test_no_secret_in_any_log_line_even_at_debug(
        emu: tuple[AppriseJsonEmulator, str], logs: io.StringIO, root_debug: None) -> None:
    e, base = emu
    channel = build(base)
    try:
        await channel.send(message())
        e.failures.add("5xx")
        with pytest.raises(DeliveryError):
            await channel.send(message())
    finally:
        await channel.close()
    assert len(e.requests) == 2
    for secret in SECRETS:
        assert secret not in logs.getvalue()


# --- through the agent ----------------------------------------------------------------------


@pytest.fixture
async def app_client(settings: Settings, emu: tuple[AppriseJsonEmulator, str]
                     ) -> AsyncIterator[Client]:
    _, base = emu
    settings.delivery.max_attempts = 1
    settings.channels.apprise = AppriseSettings(
        enabled=True, urls={"ops": SecretStr(url_for(base))}, timeout_seconds=5.0)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def test_the_agent_sends_to_an_alias(app_client: Client,
                                           emu: tuple[AppriseJsonEmulator, str]) -> None:
    e, _ = emu
    resp = await app_client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "apprise", "to": "ops", "message": "disk full on db1", "subject": "db1",
        "severity": "warning"})
    assert resp.status == 201, await resp.text()
    await wait_status(app_client, (await resp.json())["id"], "delivered")
    [got] = e.messages[f"/hooks/{PATH_TOKEN}"]
    assert (got.title, got.message, got.type) == ("db1", "disk full on db1", "warning")


@pytest.mark.parametrize("to", ["nobody", url_for("http://127.0.0.1:9")])
async def test_the_api_refuses_a_url_or_an_unknown_alias(app_client: Client, to: str) -> None:
    resp = await app_client.post("/v1/notifications/send", headers=auth(),
                                 json={"channel": "apprise", "to": to, "message": "m"})
    assert resp.status == 422
    body = await resp.text()
    assert "invalid_recipient" in body
    for secret in SECRETS:
        assert secret not in body


async def test_a_failed_delivery_shows_no_secret(app_client: Client,
                                                 emu: tuple[AppriseJsonEmulator, str]) -> None:
    e, _ = emu
    e.failures.add("5xx")
    resp = await app_client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "apprise", "to": "ops", "message": "m"})
    done = await wait_status(app_client, (await resp.json())["id"], "failed")
    assert done["failure_reason"] == "provider_unavailable"
    text = str(done)
    for secret in SECRETS:
        assert secret not in text
