"""The shared HTTP call of every HTTP channel: body hooks (Slack's ``200 {"ok": false}``,
Telegram's ``retry_after`` in the body), URLs and tokens redacted from details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.channels import http
from agent.channels.base import (
    DeliveryError,
    ErrorScope,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.domain import FailureReason
from tests.helpers import not_http_server, serve

BOT_TOKEN = "123456:ABC-DEF_secretBotToken"
TIMEOUT = aiohttp.ClientTimeout(total=2.0)


class Provider:
    """Answers with whatever the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"ok": True}
        self.headers: dict[str, str] = {}

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    p = Provider()
    async with serve(p.handle) as url:
        yield p, url


def slack_hook(reply: http.HttpReply) -> None:
    """Slack's way: HTTP 200 with ``ok: false`` and an error name."""
    data = reply.json()
    if reply.status != 200 or not isinstance(data, dict) or data.get("ok", True):
        return
    error = str(data.get("error"))
    if error == "ratelimited":
        raise RetryableDeliveryError(FailureReason.RATE_LIMITED, error, http_status=200)
    if error in ("invalid_auth", "token_revoked"):
        raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, error, http_status=200,
                                     scope=ErrorScope.CHANNEL)
    raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, error, http_status=200)


def telegram_hook(reply: http.HttpReply) -> None:
    """Telegram's way: ``parameters.retry_after`` in the body of a 429."""
    data = reply.json()
    if reply.status == 429 and isinstance(data, dict):
        after = (data.get("parameters") or {}).get("retry_after")
        raise RetryableDeliveryError(FailureReason.RATE_LIMITED, str(data.get("description")),
                                     float(after) if after is not None else None,
                                     http_status=429)


async def _call(url: str, hook: http.BodyHook | None = None,
                **kw: Any) -> http.HttpReply | DeliveryError:
    async with aiohttp.ClientSession() as session:
        try:
            return await http.call(session, "POST", url, data=b"{}", timeout=TIMEOUT,
                                   redact=http.Redactor([BOT_TOKEN]), body_hook=hook, **kw)
        except DeliveryError as exc:
            return exc


@pytest.mark.parametrize(("error", "cls", "scope"), [
    ("ratelimited", RetryableDeliveryError, ErrorScope.MESSAGE),
    ("invalid_auth", PermanentDeliveryError, ErrorScope.CHANNEL),
    ("channel_not_found", PermanentDeliveryError, ErrorScope.MESSAGE),
])
async def test_a_body_hook_classifies_a_200(provider: tuple[Provider, str], error: str,
                                            cls: type[DeliveryError], scope: ErrorScope) -> None:
    p, url = provider
    p.body = {"ok": False, "error": error}
    got = await _call(url + "/api/chat.postMessage", slack_hook)
    assert isinstance(got, cls) and got.scope is scope and got.details == error


async def test_without_a_hook_a_200_is_a_success(provider: tuple[Provider, str]) -> None:
    p, url = provider
    p.body = {"ok": False, "error": "ratelimited"}
    got = await _call(url)
    assert isinstance(got, http.HttpReply) and got.json() == p.body


async def test_retry_after_from_the_body(provider: tuple[Provider, str]) -> None:
    p, url = provider
    p.status, p.body = 429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 12",
                             "parameters": {"retry_after": 12}}
    got = await _call(f"{url}/bot{BOT_TOKEN}/sendMessage", telegram_hook)
    assert isinstance(got, RetryableDeliveryError) and got.retry_after == 12.0


async def test_a_401_takes_the_channel_auth_scope(provider: tuple[Provider, str]) -> None:
    p, url = provider
    p.status, p.body = 401, {"ok": False, "description": "Unauthorized"}
    got = await _call(url, auth_scope=ErrorScope.CHANNEL)
    assert isinstance(got, PermanentDeliveryError) and got.scope is ErrorScope.CHANNEL
    got = await _call(url)
    assert isinstance(got, PermanentDeliveryError) and got.scope is ErrorScope.MESSAGE


async def test_the_token_in_the_url_never_reaches_details(provider: tuple[Provider, str]) -> None:
    p, url = provider
    # A provider echoing the request (path and token) in an error body.
    p.status, p.body = 400, {"error": f"bad request to /bot{BOT_TOKEN}/sendMessage",
                             "url": f"{url}/bot{BOT_TOKEN}/sendMessage"}
    got = await _call(f"{url}/bot{BOT_TOKEN}/sendMessage")
    assert isinstance(got, PermanentDeliveryError)
    assert BOT_TOKEN not in got.details and "HTTP 400" in got.details

    async with not_http_server() as url:
        got = await _call(f"{url}/bot{BOT_TOKEN}/sendMessage")
    assert isinstance(got, RetryableDeliveryError) and got.reason is FailureReason.NETWORK_ERROR
    assert BOT_TOKEN not in got.details and "<url>" in got.details


def test_redactor_removes_urls_and_every_form_of_a_secret() -> None:
    r = http.Redactor(["p@ss word/1", b"bytes-secret", None, ""])
    assert r("x p@ss word/1 y") == "x [redacted] y"
    assert r("q=p%40ss%20word%2F1&b=bytes-secret") == "q=[redacted]&b=[redacted]"
    assert r("see https://api.test/bot1:2/x?y=1 now") == "see <url> now"


async def test_the_reply_body_is_read_bounded(provider: tuple[Provider, str]) -> None:
    p, url = provider
    p.body = {"pad": "x" * (http.MAX_REPLY_BYTES * 2)}
    got = await _call(url)
    assert isinstance(got, http.HttpReply) and len(got.body) == http.MAX_REPLY_BYTES
    assert got.json() is None  # cut JSON is not JSON
