"""The channel contract: every registered channel maps each row of the failure table to the same
outcome class, and leaks no secret of its settings into failure details or log lines.

A channel joins by registering (agent/channels/registry.py) and adding a ``Fixture`` below: how
to configure it against a local emulator URL, the address to send to, and which values are
secrets. Channels that deliver locally (no HTTP) skip the HTTP rows, saying why.
The emulator is an aiohttp server on 127.0.0.1 with a random port, answering per row.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import io
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
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
from agent.channels.registry import REGISTRY, SPECS, ChannelDeps, ChannelsSettings, build_channels
from agent.domain import InboxItem
from agent.observability import get_logger
from tests.emulators import smtp as smtp_emulator
from tests.emulators.failure_plan import truncated
from tests.emulators.fcm import ServiceAccountKey
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
    # A provider behind a registered channel (push's fcm): that channel's name; the key is
    # then the provider's settings section, which ``settings`` fill.
    behind: str | None = None
    # Requests one success takes (FCM: the access token, then the message).
    requests: int = 1
    # The channel speaks SMTP: ``settings`` gets "host:port" of an SMTP server and the SMTP
    # flavour of the table (test_smtp_failure_table) applies instead of the HTTP one.
    smtp: bool = False
    # Rows this channel maps otherwise than the table (row id -> the failure class and reason
    # it gives, no Retry-After), only when its provider library tells it less than HTTP does;
    # ``overrides_why`` says why.
    overrides: dict[str, tuple[str, str]] = field(default_factory=dict)
    overrides_why: str = ""
    # The DeliveryResult carries the far side's HTTP status (False: the channel never sees it).
    http_status: bool = True


WEBHOOK_SIGNING = "whsec_contract_signing_secret_123456"
WEBHOOK_PATH_TOKEN = "XyZpathTokenThatIsSecret42"  # Slack-style webhook URLs carry one
TEAMS_SIG = "wOrKfLoWsIgNaTuReThatIsSecret0123456789abc"  # a Workflows URL's sig=
TEAMS_FLOW = "5f0c2a9b1d7e4c3a8b6f0e1d2c3b4a59"
NTFY_TOKEN = "tk_contractntfytoken0123456789ab"
SLACK_TOKEN = "xoxb-contract-1111-SecretSlackBotToken"
TELEGRAM_TOKEN = "987654321:AAContractBotToken_secret-42"  # in the URL path of every call
TELEGRAM_CHAT = -1001234567890
FCM_ACCESS_TOKEN = "ya29.contractAccessToken_SecretFcm42"
FCM_KEY = ServiceAccountKey(token_uri="", project_id="contract")


@cache
def _key_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="contract-fcm-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _fcm_key_file(url: str) -> Path:
    """The throwaway service-account key with the emulator as its token endpoint."""
    FCM_KEY.token_uri = f"{url}/token"
    return FCM_KEY.write(_key_dir() / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}.json")

SMTP_USER, SMTP_PASSWORD = "ops-mailer", "Smtp-Contract-Pa55word!"
APPRISE_PASSWORD = "ApPrIsEcontractPassw0rd"  # basic auth in the json:// URL
APPRISE_PATH_TOKEN = "ApPrIsEcontractPathToken42"
# Apprise's notify() answers true or false, nothing else: no status, no Retry-After, no
# reason. Every failure it reports is one retryable provider_unavailable (a 400 or a refused
# connection look the same); only the channel's own deadline is told apart (timeout).
APPRISE_WHY = ("Apprise answers only true/false: every failure it reports is retryable "
               "provider_unavailable, without Retry-After")
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
    "fcm": Fixture(
        settings=lambda url: {"enabled": True, "service_account_file": _fcm_key_file(url),
                              "api_url": url, "timeout_seconds": TIMEOUT},
        address=lambda url: "fcm:dEvIcE_contract:APA91b-token",
        # The access token, and a line of the private key.
        secrets=(FCM_ACCESS_TOKEN, FCM_KEY.pem.splitlines()[3]),
        ok_body=lambda path: (
            {"access_token": FCM_ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"}
            if path == "/token" else {"name": "projects/contract/messages/0:1700000000%emu"}),
        behind="push", requests=2,
    ),
    "email": Fixture(
        settings=lambda hostport: {
            "enabled": True, "host": hostport.rpartition(":")[0],
            "port": int(hostport.rpartition(":")[2]), "from_address": "alerts@example.com",
            "username": SMTP_USER, "password": SMTP_PASSWORD, "timeout_seconds": TIMEOUT},
        address=lambda hostport: "ana@example.com",
        secrets=(SMTP_PASSWORD,),
        local="speaks SMTP: see test_smtp_failure_table", smtp=True,
    ),
    "apprise": Fixture(
        settings=lambda url: {"enabled": True, "timeout_seconds": TIMEOUT, "urls": {
            "ops": f"json://alerts:{APPRISE_PASSWORD}@{url.removeprefix('http://')}"
                   f"/hooks/{APPRISE_PATH_TOKEN}"}},
        address=lambda url: "ops",
        secrets=(APPRISE_PASSWORD, APPRISE_PATH_TOKEN),
        overrides={row: ("retryable", "provider_unavailable") for row in (
            "429-retry-after", "429", "refused", "malformed", "garbage", "4xx")},
        overrides_why=APPRISE_WHY,
        http_status=False,
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
    fixture = FIXTURES[name]
    spec = SPECS[fixture.behind or name]

    def secret(value: SecretStr | None, file: object, what: str) -> str | None:
        return None if value is None else value.get_secret_value()

    async def write(item: InboxItem) -> None:
        inbox.append(item)

    deps = ChannelDeps(secret=secret, generated_secret=lambda n: "generated-" + n,
                       logger=get_logger, session=lambda: session, inbox=write)
    if fixture.behind is None:
        channel = spec.build(spec.settings_model.model_validate(fixture.settings(base_url)), deps)
    else:  # built as the daemon builds it, from the provider's section alone
        sections = ChannelsSettings.model_validate({name: fixture.settings(base_url)})
        channel = build_channels(sections, deps, (spec,))[spec.name]
    assert channel is not None and channel.name == spec.name
    return channel


def _message(name: str, to: str) -> Message:
    return Message(notification_id="ntf_contract", channel=name, to=to, text="disk full",
                   subject="db1", severity="critical", priority="high",
                   created_at=1_700_000_000.0, metadata={"host": "db1"},
                   thread_key="grp_1", status="firing", attempt=1)


def test_every_registered_channel_has_a_fixture() -> None:
    # A channel that registers without a fixture would escape the contract.
    assert {f.behind or n for n, f in FIXTURES.items()} == {spec.name for spec in REGISTRY}
    assert {n for n, f in FIXTURES.items() if f.behind} == {
        p for spec in REGISTRY for p in spec.providers}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_overrides_name_table_rows_and_say_why(name: str) -> None:
    fixture = FIXTURES[name]
    table = {r.id: r for r in ROWS}
    assert set(fixture.overrides) <= set(table)
    assert bool(fixture.overrides) == bool(fixture.overrides_why)
    # Only failures are mapped otherwise: never a delivery, never a success made a failure.
    assert all(table[rid].outcome != "delivered" and outcome in ("retryable", "permanent")
               for rid, (outcome, _) in fixture.overrides.items())


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
@pytest.mark.parametrize("name", sorted(FIXTURES))
async def test_failure_table(name: str, row: Row, emulator: tuple[Emulator, str],
                             garbage_server: str, logs: io.StringIO) -> None:
    fixture = FIXTURES[name]
    if fixture.local is not None and (row.id != "2xx" or fixture.smtp):
        pytest.skip(f"{name} {fixture.local}: the HTTP rows do not apply")
    expected = Row(row.id, *fixture.overrides[row.id]) if row.id in fixture.overrides else row
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
            outcome = await asyncio.wait_for(
                channel.send(_message(fixture.behind or name, to)), STALL)
        except DeliveryError as exc:
            outcome = exc
        await channel.close()

    if expected.outcome == "delivered":
        assert isinstance(outcome, DeliveryResult), outcome
        if fixture.local is None:
            assert len(emu.requests) == fixture.requests
            assert outcome.http_status == (200 if fixture.http_status else None)
    else:
        assert isinstance(outcome, DeliveryError), outcome
        assert (outcome.failure_class.value, outcome.reason.value) == (
            expected.outcome, expected.reason)
        if isinstance(outcome, RetryableDeliveryError):
            assert outcome.retry_after == expected.retry_after
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


# -- the same table over SMTP -------------------------------------------------------------

# Each row: (stage, what the server does there) and the outcome, in the HTTP table's classes:
# 421 is SMTP's "slow down" (429), a 4xx its 5xx, a 5xx its 4xx.
SMTP_ROWS = [
    (Row("250", "delivered"), None),
    (Row("421", "retryable", "rate_limited"), ("MAIL", "421 4.7.0 Try again later")),
    (Row("451", "retryable", "provider_unavailable"), ("RCPT", "451 4.3.0 Local error")),
    (Row("timeout", "retryable", "timeout"), ("DATA", "stall")),
    (Row("refused", "retryable", "network_error"), None),
    (Row("dropped", "retryable", "network_error"), ("MAIL", "close")),
    (Row("garbage", "retryable", "network_error"), None),
    (Row("550-rcpt", "permanent", "invalid_recipient"), ("RCPT", "550 5.1.1 No such user")),
    (Row("554-data", "permanent", "provider_rejected"), ("DATA", "554 5.6.0 Rejected")),
    (Row("535-auth", "permanent", "provider_rejected"),
     ("AUTH", "535 5.7.8 Authentication credentials invalid")),
]


@pytest.mark.parametrize(("row", "fault"), SMTP_ROWS, ids=[r.id for r, _ in SMTP_ROWS])
@pytest.mark.parametrize("name", sorted(n for n, f in FIXTURES.items() if f.smtp))
async def test_smtp_failure_table(name: str, row: Row, fault: tuple[str, str] | None,
                                  logs: io.StringIO) -> None:
    fixture = FIXTURES[name]
    emu = smtp_emulator.SmtpEmulator(users={SMTP_USER: SMTP_PASSWORD})
    if fault is not None:
        emu.fail(*fault, times=5)  # AUTH tries each mechanism; a drop is tried once more
    async with emu.serve() as port, smtp_emulator.garbage_server() as garbage, \
            aiohttp.ClientSession() as session:
        if row.id == "refused":
            port = int(_closed_port_url().rpartition(":")[2])
        elif row.id == "garbage":
            port = garbage
        channel = await _build(name, f"127.0.0.1:{port}", session, [])
        to = fixture.address("")
        assert channel.validate_address(to) == to
        outcome: DeliveryResult | DeliveryError
        try:
            outcome = await asyncio.wait_for(channel.send(_message(name, to)), STALL)
        except DeliveryError as exc:
            outcome = exc
        await channel.close()

    if row.outcome == "delivered":
        assert isinstance(outcome, DeliveryResult), outcome
        assert [m.rcpt_tos for m in emu.messages[to]] == [[to]]
    else:
        assert isinstance(outcome, DeliveryError), outcome
        assert (outcome.failure_class.value, outcome.reason.value) == (row.outcome, row.reason)
        assert emu.messages == {}
        for secret in fixture.secrets:
            assert secret not in outcome.details and secret not in str(outcome)
    for secret in fixture.secrets:
        assert secret not in logs.getvalue()
