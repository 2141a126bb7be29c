"""Email through the whole agent: the API checks `to` with the channel, a notification sent with
a live key (to a member's address, or to the member) ends in a real SMTP server as delivered, a
refused recipient fails it, and the alert group's resolve is threaded under its first mail
through the stored provider ref."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.emulators.smtp import SmtpEmulator
from tests.helpers import auth, runtime, wait_status, wait_until

Client = TestClient[Any, Any]
TO = "ana@example.com"
RULES = f"""
members:
  - {{id: mem_ana, name: Ana, approved: true, addresses: {{email: "{TO}"}}}}
  - {{id: mem_gone, name: Gone, approved: true, addresses: {{email: nobody@example.com}}}}
defaults:
  group_wait: 0s
  group_interval: 0s
  notify: [{{channel: console, to: ops}}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    notify:
      - {{channel: email, to: mem_ana}}
"""


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[SmtpEmulator, int]]:
    emu = SmtpEmulator()
    async with emu.serve() as port:
        yield emu, port


@pytest.fixture
async def app_client(settings: Settings, smtp: tuple[SmtpEmulator, int]
                     ) -> AsyncIterator[Client]:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.public_url = "https://agent.example"
    settings.delivery.max_attempts = 1
    settings.channels.email = settings.channels.email.model_validate({
        "enabled": True, "host": "127.0.0.1", "port": smtp[1],
        "from_address": "alerts@example.com", "timeout_seconds": 2.0})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def send(client: Client, to: str, **kw: Any) -> str:
    resp = await client.post("/v1/notifications/send", headers=auth(), json={
        "channel": "email", "to": to, "message": "disk <full> on db1", "subject": "db1 disk",
        "severity": "critical", **kw})
    assert resp.status == 201, await resp.text()
    nid: str = (await resp.json())["id"]
    return nid


async def test_a_notification_sent_with_a_live_key_arrives_and_is_delivered(
        app_client: Client, smtp: tuple[SmtpEmulator, int]) -> None:
    emu, _ = smtp
    nid = await send(app_client, TO)
    got = await wait_status(app_client, nid, "delivered")
    assert got["attempts"][-1]["outcome"] == "delivered"
    [mail] = emu.messages[TO]
    m = mail.message
    assert (m["From"], m["To"], m["Subject"]) == ("alerts@example.com", TO, "db1 disk")
    assert "disk &lt;full&gt; on db1" in m.get_body(("html",)).get_content()
    assert f"https://agent.example/v1/notifications/{nid}" in m.get_body(
        ("plain",)).get_content()
    ref = await runtime(app_client).store.deliveries.provider_ref(nid)
    assert ref is not None and ref["message_id"] == m["Message-ID"]

    by_member = await send(app_client, "mem_ana")
    await wait_status(app_client, by_member, "delivered")
    assert len(emu.messages[TO]) == 2


async def test_a_malformed_address_is_refused_at_the_api(app_client: Client,
                                                         smtp: tuple[SmtpEmulator, int]) -> None:
    for to, code in (("ana", "invalid_email"), ("ana@", "invalid_email"),
                     ("ana@example.com\nBcc: x@example.net", "invalid_recipient")):
        resp = await app_client.post("/v1/notifications/send", headers=auth(),
                                     json={"channel": "email", "to": to, "message": "m"})
        assert resp.status == 422, to
        assert (await resp.json())["error"]["code"] == code
    assert smtp[0].connections == 0


async def test_a_recipient_the_server_refuses_fails_the_notification(
        app_client: Client, smtp: tuple[SmtpEmulator, int]) -> None:
    emu, _ = smtp
    emu.fail("RCPT", "550 5.1.1 No such user here")
    nid = await send(app_client, "nobody@example.com")
    got = await wait_status(app_client, nid, "failed")
    assert got["failure_reason"] == "invalid_recipient"
    assert "550" in got["attempts"][-1]["failure_details"]
    assert emu.messages == {}


async def test_an_alert_groups_resolve_is_threaded_under_its_first_mail(
        app_client: Client, smtp: tuple[SmtpEmulator, int]) -> None:
    emu, _ = smtp
    resp = await app_client.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical",
        "message": "disk 95% full"})
    assert resp.status == 201, await resp.text()
    aid = (await resp.json())["data"]["id"]
    await wait_until(lambda: len(emu.messages[TO]) == 1)
    resp = await app_client.put(f"/v1/alerts/{aid}", headers=auth(),
                                json={"status": "resolved", "message": "disk back to 60%"})
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: len(emu.messages[TO]) == 2)
    first, resolved = (r.message for r in emu.messages[TO])
    assert resolved["In-Reply-To"] == first["Message-ID"]
    assert resolved["References"] == first["Message-ID"]
    assert resolved["Subject"] == "Re: " + first["Subject"]
    assert "[RESOLVED]" in resolved.get_body(("plain",)).get_content()
