"""Acknowledge links (issue 14): an alert's email to a member carries a signed link; opening it
(GET) changes nothing; only the page's form (POST with its CSRF value) acknowledges, as that
member; a forged, tampered or expired link does nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.emulators.ntfy import NtfyEmulator
from tests.emulators.smtp import SmtpEmulator
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]
RULES = """
members:
  - {id: mem_ana, name: Ana, approved: true, addresses: {email: ana@example.com}}
defaults:
  group_wait: 0s
  group_interval: 1m
  notify: [{channel: console, to: ops}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    notify: [{channel: email, to: mem_ana}]
"""


@pytest.fixture
async def agent(settings: Settings, clock: FakeClock) -> AsyncIterator[tuple[Client, SmtpEmulator]]:
    emu = SmtpEmulator()
    async with emu.serve() as port:
        settings.rules_dir.mkdir(parents=True)
        (settings.rules_dir / "r.yaml").write_text(RULES)
        settings.public_url = "https://agent.example"
        settings.channels.email = settings.channels.email.model_validate({
            "enabled": True, "host": "127.0.0.1", "port": port,
            "from_address": "alerts@example.com", "timeout_seconds": 2.0})
        async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                         host="127.0.0.1")) as c:
            yield c, emu


async def fire(c: Client) -> str:
    """Fire the alert and deliver its mail; the alert's id."""
    resp = await c.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical", "message": "db down"})
    assert resp.status == 201
    await runtime(c).run_until_idle()
    return str((await resp.json())["data"]["id"])


def link_of(emu: SmtpEmulator) -> str:
    [mail] = emu.messages["ana@example.com"]
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"Acknowledge: (\S+)", text)
    assert found is not None, text
    url = urlsplit(found.group(1))
    assert (url.scheme, url.netloc) == ("https", "agent.example")
    return url.path


async def alert(c: Client, aid: str) -> dict[str, Any]:
    return dict((await (await c.get(f"/v1/alerts/{aid}", headers=auth())).json())["data"])


async def test_get_shows_the_page_and_only_the_form_acknowledges(
        agent: tuple[Client, SmtpEmulator]) -> None:
    c, emu = agent
    aid = await fire(c)
    path = link_of(emu)
    page = await c.get(path)
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    assert "<form method=\"post\"" in html
    assert (await alert(c, aid))["acknowledged"] is False  # a GET changes nothing
    csrf = re.search(r'name="csrf" value="([^"]+)"', html)
    assert csrf is not None
    # Without the page's value (a cross-site form, a replay of the bare URL): refused.
    for data in ({}, {"csrf": "forged"}):
        resp = await c.post(path, data=data)
        assert resp.status == 403
    assert (await alert(c, aid))["acknowledged"] is False
    resp = await c.post(path, data={"csrf": csrf.group(1)})
    assert resp.status == 200 and "acknowledged" in (await resp.text()).lower()
    got = await alert(c, aid)
    assert (got["acknowledged_by"], got["acknowledged_via"]) == ("mem_ana", "link")
    again = await c.post(path, data={"csrf": csrf.group(1)})
    assert again.status == 200 and "already" in (await again.text()).lower()


@pytest.mark.parametrize(("content_type", "body"), [
    ("multipart/form-data", b"no boundary"),
    ("multipart/form-data; boundary=zz", b"--zz\r\nnot a header\r\n"),
    ("application/x-www-form-urlencoded", b"\xff\xfe=%%%"),
])
async def test_a_body_that_is_no_form_is_a_400_page(agent: tuple[Client, SmtpEmulator],
                                                    content_type: str, body: bytes) -> None:
    c, emu = agent
    aid = await fire(c)
    resp = await c.post(link_of(emu), data=body, headers={"Content-Type": content_type})
    assert resp.status == 400 and resp.content_type == "text/html"
    assert (await alert(c, aid))["acknowledged"] is False


async def test_tampered_and_expired_links_do_nothing(agent: tuple[Client, SmtpEmulator],
                                                    clock: FakeClock) -> None:
    c, emu = agent
    aid = await fire(c)
    path = link_of(emu)
    body, mac = path.removeprefix("/ack/").split(".")
    for bad in (f"/ack/{body}.{mac[:-2]}xx", f"/ack/{body[:-2]}xx.{mac}", "/ack/nonsense"):
        assert (await c.get(bad)).status == 404, bad
        assert (await c.post(bad, data={"csrf": "x"})).status == 404, bad
    clock.advance(86400 + 1)  # ack.link_ttl
    assert (await c.get(path)).status == 410
    assert (await alert(c, aid))["acknowledged"] is False


async def test_a_resolved_alerts_link_does_not_acknowledge(
        agent: tuple[Client, SmtpEmulator], clock: FakeClock) -> None:
    c, emu = agent
    aid = await fire(c)
    path = link_of(emu)
    csrf = re.search(r'name="csrf" value="([^"]+)"', await (await c.get(path)).text())
    assert csrf is not None
    await c.put(f"/v1/alerts/{aid}", headers=auth(), json={"status": "resolved"})
    page = await c.get(path)  # the link expired with its alert: no button any more
    assert page.status == 410 and "<form" not in await page.text()
    resp = await c.post(path, data={"csrf": csrf.group(1)})
    assert resp.status == 409
    assert (await alert(c, aid))["acknowledged"] is False
    clock.advance(61)
    await runtime(c).run_until_idle()
    resolved = emu.messages["ana@example.com"][-1].message
    text = resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Acknowledge:" not in text  # no link on the resolved mail


async def test_an_ntfy_tap_acknowledges_in_one_request(settings: Settings,
                                                       clock: FakeClock) -> None:
    """ntfy's Acknowledge button is an ``http`` action: one tap makes the request it describes
    (as the ntfy app does), with the link's form, and acknowledges as the member."""
    ntfy = NtfyEmulator()
    async with ntfy.serve() as ntfy_url:
        settings.rules_dir.mkdir(parents=True)
        (settings.rules_dir / "r.yaml").write_text(RULES.replace(
            "addresses: {email: ana@example.com}", "addresses: {push: ana-phone}").replace(
            "channel: email, to: mem_ana", "channel: push, to: mem_ana"))
        settings.public_url = "https://agent.example"
        settings.channels.push = settings.channels.push.model_validate(
            {"enabled": True, "ntfy_url": ntfy_url, "timeout_seconds": 2.0})
        async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                         host="127.0.0.1")) as c:
            aid = await fire(c)
            [shown] = ntfy.current("ana-phone")
            [tap] = shown.actions
            assert (tap.action, tap.clear) == ("http", True)
            url = urlsplit(tap.url)
            assert (url.scheme, url.netloc) == ("https", "agent.example")
            resp = await c.request(tap.method, url.path, headers=tap.headers, data=tap.body)
            assert resp.status == 200
            got = await alert(c, aid)
            assert (got["acknowledged_by"], got["acknowledged_via"]) == ("mem_ana", "link")
            # The bare URL, as a link preview would fetch it, changes nothing and has no form.
            assert (await c.post(url.path)).status == 403
