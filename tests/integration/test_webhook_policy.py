"""The webhook network policy end to end: 422 at the API edge, a refused destination as a failed
notification whose details and attempts say only the policy, the check on the address actually
connected to (a host name resolving to loopback, DNS rebinding, the agent's own port), and
failure details for caller-chosen receivers that carry no address, port or OS error."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.channels.base import (
    DeliveryError,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.netpolicy import REFUSED_DETAIL, PolicyResolver
from agent.channels.webhook import WebhookChannel, WebhookSettings
from agent.clock import FakeClock
from agent.observability import get_logger
from agent.settings import Settings
from tests.helpers import Sink, auth, not_http_server, runtime, serve
from tests.unit.test_netpolicy import Answers

Client = TestClient[Any, Any]
EDGE_MESSAGE = "'to' is refused by the webhook network policy (channels.webhook)."


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refusals(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [e for e in lines if e.get("event") == "webhook_destination_refused"]


async def _send(client: Client, to: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/notifications/send", headers=auth(),
                             json={"channel": "webhook", "to": to, "message": "m"})
    return resp.status, await resp.json()


@pytest.mark.parametrize("to", [
    "http://169.254.169.254/latest/meta-data/iam/", "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/", "http://0.0.0.0:8080/", "http://[::]/", "http://[fe80::1]/",
])
async def test_always_refused_addresses_are_a_422_even_with_loopback_allowed(
        client: Client, to: str) -> None:
    status, body = await _send(client, to)
    assert status == 422
    assert body["error"]["type"] == "validation_error"
    assert (body["error"]["code"], body["error"]["param"]) == ("invalid_recipient", "to")
    assert body["error"]["message"] == EDGE_MESSAGE
    batch = {"notifications": [{"channel": "console", "to": "ops", "message": "m"},
                               {"channel": "webhook", "to": to, "message": "m"}]}
    resp = await client.post("/v1/notifications/send-batch", headers=auth(), json=batch)
    assert resp.status == 422
    err = (await resp.json())["error"]
    assert (err["code"], err["param"], err["message"]) == (
        "invalid_recipient", "notifications[1].to", EDGE_MESSAGE)


async def test_loopback_is_a_422_by_default(settings: Settings, sink: Sink) -> None:
    settings.channels.webhook.allow_loopback = False
    port = _port(sink.url)
    async with TestClient(TestServer(create_app(settings, loops=False),
                                     host="127.0.0.1")) as client:
        for to in (sink.url, f"http://2130706433:{port}/hook", f"http://0177.0.0.1:{port}/",
                   f"http://[::ffff:127.0.0.1]:{port}/", f"http://localhost:{port}/",
                   f"http://[::1]:{port}/"):
            status, body = await _send(client, to)
            assert (status, body["error"]["code"], body["error"]["message"]) == (
                422, "invalid_recipient", EDGE_MESSAGE), to
        # Host names are resolved at connect, not at the edge.
        status, _ = await _send(client, "http://hooks.example.invalid/x")
        assert status == 201
    assert sink.received == []


async def test_the_agents_own_address_is_refused_with_loopback_allowed(
        settings: Settings, sink: Sink) -> None:
    port = _free_port()
    settings.port = port
    assert settings.channels.webhook.allow_loopback
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
        for to in (f"http://127.0.0.1:{port}/v1/notifications/send", f"http://localhost:{port}/",
                   f"http://[::ffff:127.0.0.1]:{port}/"):
            status, body = await _send(client, to)
            assert (status, body["error"]["code"]) == (422, "invalid_recipient"), to
        status, _ = await _send(client, sink.url)  # loopback, another port: allowed
        assert status == 201


@pytest.fixture
async def queued_then_refused(settings: Settings, sink: Sink,
                              clock: FakeClock) -> AsyncIterator[tuple[Client, str]]:
    """A webhook to the 127.0.0.1 sink accepted while loopback was allowed, then delivered by
    an agent restarted with ``allow_loopback: false`` (an operator tightening the policy)."""
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as client:
        status, body = await _send(client, sink.url)
        assert status == 201
    settings.channels.webhook.allow_loopback = False
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as client:
        yield client, body["id"]


async def test_a_refused_destination_fails_with_only_the_policy_detail(
        queued_then_refused: tuple[Client, str], sink: Sink, stream: io.StringIO) -> None:
    client, nid = queued_then_refused
    await runtime(client).run_until_idle()
    resp = await client.get(f"/v1/notifications/{nid}", headers=auth())
    n = await resp.json()
    assert (n["status"], n["failure_reason"], n["failure_details"]) == (
        "failed", "invalid_recipient", REFUSED_DETAIL)
    assert [(a["outcome"], a["failure_class"], a["failure_details"], a["http_status"])
            for a in n["attempts"]] == [("failed", "permanent", REFUSED_DETAIL, None)]
    # Only `to` names the address.
    port = str(_port(sink.url))
    n.pop("to")
    assert "127.0.0.1" not in json.dumps(n) and port not in json.dumps(n)
    assert sink.received == []
    assert [(r["rule"], r["stage"], r["notification_id"]) for r in _refusals(stream)] == [
        ("loopback", "literal", nid)]


async def test_webhook_failure_details_carry_no_address_or_os_error(
        settings: Settings, sink: Sink) -> None:
    settings.delivery.max_attempts = 1
    sink.script = [(418, {"X-Internal": "db1.corp:5432"})]
    closed = f"http://127.0.0.1:{_free_port()}/hook"
    async with TestClient(TestServer(create_app(settings, loops=False),
                                     host="127.0.0.1")) as client:
        ids = [(await _send(client, to))[1]["id"] for to in (sink.url, closed)]
        await runtime(client).run_until_idle()
        got = [await (await client.get(f"/v1/notifications/{i}", headers=auth())).json()
               for i in ids]
    teapot, refused = got
    assert (teapot["failure_reason"], teapot["failure_details"]) == ("provider_rejected",
                                                                     "HTTP 418")
    assert [a["failure_details"] for a in teapot["attempts"]] == ["HTTP 418"]
    assert refused["failure_reason"] == "network_error"
    assert [a["failure_details"] for a in refused["attempts"]] == ["connection failed"]
    assert refused["failure_details"].endswith(": connection failed")
    for n in got:
        n.pop("to")
        text = json.dumps(n)
        assert "127.0.0.1" not in text and "refused" not in text.lower() \
            and "teapot" not in text.lower() and "Errno" not in text


# --- The channel on its own: what it connects to --------------------------------------------


def _message(to: str) -> Message:
    return Message(notification_id="ntf_policy", channel="webhook", to=to, text="disk full",
                   subject=None, severity="critical", priority="high", created_at=1.7e9)


def _channel(resolver: Answers | None = None, listen: tuple[str, int] | None = None,
             **settings: Any) -> WebhookChannel:
    cfg = WebhookSettings.model_validate({"timeout_seconds": 2.0, **settings})
    return WebhookChannel(cfg, b"secret", listen=listen, resolver=resolver, logger=get_logger)


async def _outcome(channel: WebhookChannel, to: str) -> Any:
    try:
        return await asyncio.wait_for(channel.send(_message(to)), 10)
    except DeliveryError as exc:
        return exc
    finally:
        await channel.close()


class NoSuchName(Answers):
    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def _is_refusal(outcome: object) -> bool:
    return (isinstance(outcome, PermanentDeliveryError)
            and (outcome.reason.value, outcome.details, outcome.scope)
            == ("invalid_recipient", REFUSED_DETAIL, ErrorScope.RECIPIENT))


async def test_a_host_name_resolving_to_loopback_is_refused_at_connect(
        sink: Sink, stream: io.StringIO) -> None:
    to = f"http://hooks.example.test:{_port(sink.url)}/hook"
    channel = _channel(Answers(["127.0.0.1"]))
    assert channel.validate_address(to) == to  # not known without DNS
    assert _is_refusal(await _outcome(channel, to))
    assert sink.received == []
    assert [(r["rule"], r["stage"]) for r in _refusals(stream)] == [("loopback", "connect")]


async def test_the_same_name_is_delivered_when_loopback_is_allowed(sink: Sink) -> None:
    # The control for the test above: the connect really goes through the checking resolver.
    resolver = Answers(["127.0.0.1"])
    outcome = await _outcome(_channel(resolver, allow_loopback=True),
                             f"http://hooks.example.test:{_port(sink.url)}/hook")
    assert not isinstance(outcome, DeliveryError), outcome
    assert len(sink.received) == 1 and resolver.calls == 1


async def test_dns_rebinding_is_refused_at_connect(sink: Sink) -> None:
    # The name answers a public address first (what a check before the request would see),
    # then loopback: the connect resolves again and is refused.
    rebinding = Answers(["203.0.113.7"], ["127.0.0.1"])
    channel = _channel(rebinding)
    to = f"http://rebind.example.test:{_port(sink.url)}/hook"
    early = await PolicyResolver(WebhookSettings().policy(None), rebinding).resolve(
        "rebind.example.test", _port(sink.url))
    assert early[0]["host"] == "203.0.113.7"
    assert _is_refusal(await _outcome(channel, to))
    assert rebinding.calls == 2 and sink.received == []


@pytest.mark.parametrize("listen_host", ["127.0.0.1", "0.0.0.0"])
async def test_the_agents_own_port_is_refused_at_connect(sink: Sink, listen_host: str) -> None:
    port = _port(sink.url)  # the sink stands in for the agent's API
    for to, resolver in ((f"http://agent.example.test:{port}/v1/alerts", Answers(["127.0.0.1"])),
                         (f"http://[::ffff:127.0.0.1]:{port}/", None)):
        channel = _channel(resolver, listen=(listen_host, port), allow_loopback=True)
        assert _is_refusal(await _outcome(channel, to)), to
    assert sink.received == []


async def test_literals_queued_before_the_policy_are_checked_before_connecting(
        sink: Sink) -> None:
    port = _port(sink.url)
    for to in (sink.url, f"http://[::ffff:127.0.0.1]:{port}/", f"http://localhost:{port}/",
               f"http://2130706433:{port}/"):
        assert _is_refusal(await _outcome(_channel(), to)), to
    assert sink.received == []


async def test_redirects_are_not_followed(sink: Sink) -> None:
    sink.script = [(302, {"Location": "http://169.254.169.254/latest/meta-data/"})]
    outcome = await _outcome(_channel(allow_loopback=True), sink.url)
    assert isinstance(outcome, PermanentDeliveryError) and outcome.details == "HTTP 302"
    assert len(sink.received) == 1


async def test_connection_failures_say_only_connection_failed() -> None:
    closed = f"http://127.0.0.1:{_free_port()}/x"
    outcome = await _outcome(_channel(allow_loopback=True), closed)
    assert isinstance(outcome, RetryableDeliveryError)
    assert (outcome.reason.value, outcome.details) == ("network_error", "connection failed")
    unresolvable = await _outcome(_channel(NoSuchName(), allow_loopback=True),
                                  "http://nothing.example.test/x")
    assert isinstance(unresolvable, RetryableDeliveryError)
    assert unresolvable.details == "connection failed"
    async with not_http_server() as url:
        garbage = await _outcome(_channel(allow_loopback=True), url + "/x")
    assert isinstance(garbage, RetryableDeliveryError) and garbage.details == "connection failed"


async def test_a_stalled_receiver_says_only_request_timed_out() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await asyncio.wait([asyncio.ensure_future(release.wait())], timeout=5)
        return web.Response(text="late")

    try:
        async with serve(stall) as url:
            outcome = await _outcome(_channel(allow_loopback=True, timeout_seconds=0.2),
                                     url + "/x")
    finally:
        release.set()
    assert isinstance(outcome, RetryableDeliveryError)
    assert (outcome.reason.value, outcome.details) == ("timeout", "request timed out")
