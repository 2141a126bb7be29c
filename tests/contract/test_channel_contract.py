"""The channel contract: every registered channel maps each row of the failure table to the same
outcome class, and leaks no secret of its settings into failure details or log lines.

A channel joins by registering (agent/channels/registry.py) and adding a ``Fixture`` below: how
to configure it against a local emulator URL, the address to send to, and which values are
secrets. Channels that deliver locally (no HTTP) skip the HTTP rows, saying why.
The emulator is an aiohttp server on 127.0.0.1 with a random port, answering per row.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from agent.channels.base import (
    ChannelSender,
    DeliveryError,
    DeliveryResult,
    Message,
    RetryableDeliveryError,
)
from agent.channels.registry import REGISTRY, SPECS, ChannelDeps
from agent.domain import InboxItem
from agent.observability import get_logger
from tests.emulators.failure_plan import truncated
from tests.helpers import not_http_server, serve

TIMEOUT = 0.3  # the channel's request timeout in these tests; the emulator stalls longer
STALL = 5.0


@dataclass(frozen=True)
class Fixture:
    """What the contract needs to know of one channel."""

    # emulator base URL -> the channel's settings (``channels.<setting>``)
    settings: Callable[[str], dict[str, Any]]
    # emulator base URL -> the ``to`` of the test message
    address: Callable[[str], str]
    # values that must never show in a failure detail or a log line
    secrets: tuple[str, ...] = ()
    # None: the channel speaks HTTP; else why the HTTP rows do not apply
    local: str | None = None
    # request path -> the JSON a success answers with, as the provider would (Slack's ``ts``,
    # Telegram's ``result``); None: ``{"ok": true, "path": ...}``
    ok_body: Callable[[str], Any] | None = None


WEBHOOK_SIGNING = "whsec_contract_signing_secret_123456"
WEBHOOK_PATH_TOKEN = "XyZpathTokenThatIsSecret42"  # Slack-style webhook URLs carry one
TEAMS_SIG = "wOrKfLoWsIgNaTuReThatIsSecret0123456789abc"  # a Workflows URL's sig=
TEAMS_FLOW = "5f0c2a9b1d7e4c3a8b6f0e1d2c3b4a59"
NTFY_TOKEN = "tk_contractntfytoken0123456789ab"
SLACK_TOKEN = "xoxb-contract-1111-SecretSlackBotToken"
TELEGRAM_TOKEN = "987654321:AAContractBotToken_secret-42"  # in the URL path of every call
TELEGRAM_CHAT = -1001234567890
TWILIO_SID = "AC" + "c0417ac7" * 4
TWILIO_TOKEN = "contractTwilioAuthToken0123456789"
TWILIO_BASIC = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
TWILIO_TO = "+351912345678"


def _twilio(url: str, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
            "from_number": "+15017122661", "api_url": url, "timeout_seconds": TIMEOUT, **extra}


def _twilio_message(path: str, to: str) -> dict[str, Any]:
    """Twilio's 201 message resource (Messages API, "Create a Message")."""
    sid = "SM" + "3f1e0b9a" * 4
    return {"account_sid": TWILIO_SID, "api_version": "2010-04-01", "body": "db1\ndisk full",
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "date_sent": None,
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": "+15017122661",
            "messaging_service_sid": None, "num_media": "0", "num_segments": "1",
            "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": f"{path[:-5]}/{sid}/Media.json"}, "to": to,
            "uri": f"{path[:-5]}/{sid}.json"}

FIXTURES: dict[str, Fixture] = {
    "console": Fixture(settings=lambda url: {}, address=lambda url: "ops",
                       local="writes a log line; no HTTP"),
    "in-app": Fixture(settings=lambda url: {}, address=lambda url: "ops",
                      local="writes the local inbox; no HTTP"),
    "webhook": Fixture(
        settings=lambda url: {"signing_secret": WEBHOOK_SIGNING, "timeout_seconds": TIMEOUT,
                              "connect_timeout_seconds": TIMEOUT, "allow_loopback": True},
        address=lambda url: f"{url}/services/T000/B000/{WEBHOOK_PATH_TOKEN}",
        secrets=(WEBHOOK_SIGNING, WEBHOOK_PATH_TOKEN),
    ),
    "teams": Fixture(
        settings=lambda url: {"enabled": True, "timeout_seconds": TIMEOUT, "webhooks": {
            "ops": f"{url}/workflows/{TEAMS_FLOW}/triggers/manual/paths/invoke"
                   f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"}},
        address=lambda url: "ops",
        secrets=(TEAMS_SIG, TEAMS_FLOW),
    ),
    "push": Fixture(
        settings=lambda url: {"enabled": True, "ntfy_url": url, "token": NTFY_TOKEN,
                              "timeout_seconds": TIMEOUT},
        address=lambda url: "alerts",
        secrets=(NTFY_TOKEN,),
        ok_body=lambda path: {"id": "hY3kQ2xWm9aZ", "time": 1_700_000_000,
                              "expires": 1_700_043_200, "event": "message",
                              "topic": path.strip("/"), "message": "disk full"},
    ),
    "slack": Fixture(
        settings=lambda url: {"enabled": True, "bot_token": SLACK_TOKEN,
                              "api_url": f"{url}/api", "timeout_seconds": TIMEOUT},
        address=lambda url: "#alerts",
        secrets=(SLACK_TOKEN,),
        ok_body=lambda path: {"ok": True, "channel": "C0ALERTS01", "ts": "1700000000.000100",
                              "message": {"type": "message", "text": "disk full"}},
    ),
    "telegram": Fixture(
        settings=lambda url: {"enabled": True, "bot_token": TELEGRAM_TOKEN, "api_url": url,
                              "timeout_seconds": TIMEOUT},
        address=lambda url: str(TELEGRAM_CHAT),
        secrets=(TELEGRAM_TOKEN, TELEGRAM_TOKEN.split(":", 1)[1]),
        ok_body=lambda path: {"ok": True, "result": {
            "message_id": 1, "date": 1_700_000_000, "text": "db1\ndisk full",
            "chat": {"id": TELEGRAM_CHAT, "type": "supergroup", "title": "ops"}}},
    ),
    "sms": Fixture(
        settings=_twilio, address=lambda url: TWILIO_TO, secrets=(TWILIO_TOKEN, TWILIO_BASIC),
        ok_body=lambda path: _twilio_message(path, TWILIO_TO),
    ),
    "whatsapp": Fixture(
        settings=lambda url: _twilio(url, whatsapp_from="+14155238886"),
        address=lambda url: TWILIO_TO, secrets=(TWILIO_TOKEN, TWILIO_BASIC),
        ok_body=lambda path: _twilio_message(path, f"whatsapp:{TWILIO_TO}"),
    ),
}


@dataclass(frozen=True)
class Row:
    """One row of the failure table and the outcome every channel must map it to."""

    id: str
    outcome: str  # "delivered", or the failure class
    reason: str | None = None
    retry_after: float | None = None


ROWS = [
    Row("2xx", "delivered"),
    Row("429-retry-after", "retryable", "rate_limited", retry_after=7.0),
    Row("429", "retryable", "rate_limited"),
    Row("5xx", "retryable", "provider_unavailable"),
    Row("timeout", "retryable", "timeout"),
    Row("refused", "retryable", "network_error"),
    Row("malformed", "retryable", "network_error"),
    # Not HTTP at all: aiohttp's error names the whole URL (and so any token in its path).
    Row("garbage", "retryable", "network_error"),
    Row("4xx", "permanent", "provider_rejected"),
]


@dataclass
class Emulator:
    """Answers each request as the current row says."""

    row: str = "2xx"
    ok_body: Callable[[str], Any] | None = None
    requests: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append(request.path)
        if self.row == "timeout":
            # Bounded: released at teardown, and never longer than STALL.
            await asyncio.wait([asyncio.ensure_future(self.release.wait())], timeout=STALL)
            return web.Response(status=200)
        if self.row == "malformed":
            return await truncated(request, b'{"ok"')  # a 200 whose body is cut short
        status, headers = {
            "2xx": (200, {}),
            "429-retry-after": (429, {"Retry-After": "7"}),
            "429": (429, {}),
            "5xx": (503, {}),
            "4xx": (400, {}),
        }[self.row]
        # The body echoes the path, as some providers do: it must not reach details.
        body = ({"ok": status < 300, "path": request.path}
                if status >= 300 or self.ok_body is None else self.ok_body(request.path))
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[Emulator, str]]:
    emu = Emulator()
    try:
        async with serve(emu.handle) as url:
            yield emu, url
    finally:
        emu.release.set()


@pytest.fixture
async def garbage_server() -> AsyncIterator[str]:
    """A server that answers every request with a line that is not HTTP."""
    async with not_http_server() as url:
        yield url



def _closed_port_url() -> str:
    with socket.socket() as s:  # bound, never listening, closed: nobody answers there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def _build(name: str, base_url: str, session: aiohttp.ClientSession,
                 inbox: list[InboxItem]) -> ChannelSender:
    spec = SPECS[name]
    cfg = spec.settings_model.model_validate(FIXTURES[name].settings(base_url))

    def secret(value: SecretStr | None, file: object, what: str) -> str | None:
        return None if value is None else value.get_secret_value()

    async def write(item: InboxItem) -> None:
        inbox.append(item)

    deps = ChannelDeps(secret=secret, generated_secret=lambda n: "generated-" + n,
                       logger=get_logger, session=lambda: session, inbox=write)
    channel = spec.build(cfg, deps)
    assert channel is not None and channel.name == name
    return channel


def _message(name: str, to: str) -> Message:
    return Message(notification_id="ntf_contract", channel=name, to=to, text="disk full",
                   subject="db1", severity="critical", priority="high",
                   created_at=1_700_000_000.0, metadata={"host": "db1"},
                   thread_key="grp_1", status="firing", attempt=1)


def test_every_registered_channel_has_a_fixture() -> None:
    # A channel that registers without a fixture would escape the contract.
    assert set(FIXTURES) == {spec.name for spec in REGISTRY}


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
@pytest.mark.parametrize("name", sorted(FIXTURES))
async def test_failure_table(name: str, row: Row, emulator: tuple[Emulator, str],
                             garbage_server: str, logs: io.StringIO) -> None:
    fixture = FIXTURES[name]
    if fixture.local is not None and row.id != "2xx":
        pytest.skip(f"{name} {fixture.local}: the HTTP rows do not apply")
    emu, base_url = emulator
    emu.row = row.id
    emu.ok_body = fixture.ok_body
    if row.id == "refused":
        base_url = _closed_port_url()
    elif row.id == "garbage":
        base_url = garbage_server
    inbox: list[InboxItem] = []
    async with aiohttp.ClientSession() as session:
        channel = await _build(name, base_url, session, inbox)
        to = fixture.address(base_url)
        assert channel.validate_address(to) == to
        outcome: DeliveryResult | DeliveryError
        try:
            outcome = await asyncio.wait_for(channel.send(_message(name, to)), STALL)
        except DeliveryError as exc:
            outcome = exc
        await channel.close()

    if row.outcome == "delivered":
        assert isinstance(outcome, DeliveryResult), outcome
        if fixture.local is None:
            assert outcome.http_status == 200 and len(emu.requests) == 1
    else:
        assert isinstance(outcome, DeliveryError), outcome
        assert (outcome.failure_class.value, outcome.reason.value) == (row.outcome, row.reason)
        if isinstance(outcome, RetryableDeliveryError):
            assert outcome.retry_after == row.retry_after
        texts = [outcome.details, str(outcome)]
        for secret in fixture.secrets:
            assert not any(secret in t for t in texts), (secret, texts)
    lines = logs.getvalue()
    for secret in fixture.secrets:
        assert secret not in lines


async def test_the_timeout_row_ends_within_the_channel_timeout(
        emulator: tuple[Emulator, str]) -> None:
    # The row above would pass if the channel waited for the stalled emulator and then got a
    # 200 late; this one shows that the timeout, not the emulator, ended the call.
    emu, base_url = emulator
    emu.row = "timeout"
    async with aiohttp.ClientSession() as session:
        channel = await _build("webhook", base_url, session, [])
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(RetryableDeliveryError):
                await channel.send(_message("webhook", FIXTURES["webhook"].address(base_url)))
        finally:
            await channel.close()
        assert loop.time() - started < STALL / 2
