"""SMS and WhatsApp through the whole agent: the API sends, Twilio (the emulator) answers 201,
the notification is ``sent``; Twilio's signed status callbacks to ``/hooks/twilio/status`` move
it to ``delivered`` or ``failed``, and nothing else does (a bad signature is 403)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import Settings
from tests.emulators.twilio import ACCOUNT_SID, AUTH_TOKEN, StoredMessage, TwilioEmulator
from tests.helpers import auth, wait_status, wait_until

Client = TestClient[Any, Any]
TO = "+351912345678"
OTHER = "+351912345679"
UNAPPROVED = "+351912345671"
WA_FROM = "+14155238886"
CONTENT_SID = "HX" + "0f1e2d3c" * 4
RULES = f"""
defaults:
  group_wait: 0s
  group_interval: 0s
  notify: [{{channel: console, to: ops}}]
templates:
  - name: wa-alert
    channel: whatsapp
    body: "{{{{ alerts[0].message }}}}"
    content_sid: {CONTENT_SID}
teams:
  - {{id: team_oncall, name: On-call, members: [mem_ana, mem_raj, mem_bo]}}
members:
  - {{id: mem_ana, approved: true, addresses: {{sms: "{TO}"}}}}
  - {{id: mem_raj, approved: true, addresses: {{sms: "{OTHER}"}}}}
  - {{id: mem_bo, approved: false, addresses: {{sms: "{UNAPPROVED}"}}}}
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    notify:
      - {{channel: whatsapp, to: "whatsapp:{TO}", template: wa-alert}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def emu() -> AsyncIterator[tuple[TwilioEmulator, str]]:
    e = TwilioEmulator()
    async with e.serve() as url:
        yield e, url


@pytest.fixture
async def app(settings: Settings, emu: tuple[TwilioEmulator, str]) -> AsyncIterator[Client]:
    # The callbacks go to public_url (settings.base_url): the agent's real address here.
    port = _free_port()
    settings.port = port
    # Literal numbers here; the directory's members are tested below.
    settings.recipients = settings.recipients.model_validate({"allow_unlisted": True})
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.channels.twilio = settings.channels.twilio.model_validate({
        "enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
        "from_number": "+15017122661", "whatsapp_from": WA_FROM, "api_url": emu[1],
        "timeout_seconds": 2.0, "rate_per_second": 100.0})
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port)) as c:
        yield c


async def _send(client: Client, to: str = TO, channel: str = "sms",
                **extra: Any) -> str:
    resp = await client.post("/v1/notifications/send", headers=auth(), json={
        "channel": channel, "to": to, "message": "disk full on db1", "severity": "critical",
        **extra})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _get(client: Client, nid: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/notifications/{nid}", headers=auth())
    return dict(await resp.json())


async def _metric(client: Client, line: str) -> float:
    text = await (await client.get("/metrics")).text()
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    raise AssertionError(f"no {line}")


def _sent_message(e: TwilioEmulator, to: str = TO) -> StoredMessage:
    [m] = e.messages[to]
    return m


async def test_sent_then_delivered_by_the_signed_receipt(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    nid = await _send(app)
    sent = await wait_status(app, nid, "sent")
    assert sent["sent_at"] is not None and sent["delivered_at"] is None
    m = _sent_message(e)
    assert m.status_callback == f"http://127.0.0.1:{app.server.port}/hooks/twilio/status"
    # Intermediate statuses change nothing.
    assert await e.report(m, [("queued", None), ("sent", None)]) == [200, 200]
    assert (await _get(app, nid))["status"] == "sent"
    assert await e.report(m, [("delivered", None)]) == [200]
    done = await _get(app, nid)
    assert done["status"] == "delivered" and done["delivered_at"] is not None
    # A repeat, and a late "sent", leave it as it is.
    assert await e.report(m, [("delivered", None), ("sent", None)]) == [200, 200]
    assert await _get(app, nid) == done
    assert await _metric(app, 'alert_agent_notifications_total{channel="sms",outcome="sent"}') \
        == 1.0
    assert await _metric(
        app, 'alert_agent_notifications_total{channel="sms",outcome="delivered"}') == 1.0


async def test_a_receipt_posted_right_after_the_201_still_finds_its_message(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    # The emulator reports before its 201 reaches the agent: the receipts come for a sid the
    # agent does not know yet, and find it once the send is recorded.
    e, _ = emu
    e.callback_delay, e.answer_delay = 0.0, 0.2
    nids = [await _send(app, to) for to in (TO, OTHER)]
    for nid in nids:
        await wait_status(app, nid, "delivered")
    assert [c.http_status for m in e.all_messages() for c in m.callbacks] == [200] * 6


async def test_a_team_send_follows_its_members_receipts(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    e.undeliverable[OTHER] = ("undelivered", 30003)
    parent = await _send(app, "team_oncall")
    resp = await app.get("/v1/notifications", params={"parent_id": parent}, headers=auth())
    kids = {k["to"]: k["id"] for k in (await resp.json())["data"]}
    assert set(kids) == {TO, OTHER}  # the unapproved member is never contacted
    for kid in kids.values():
        await wait_status(app, kid, "sent")
    assert (await _get(app, parent))["status"] == "sent"
    await e.report_all()
    assert (await _get(app, kids[TO]))["status"] == "delivered"
    assert (await _get(app, kids[OTHER]))["status"] == "failed"
    done = await _get(app, parent)
    assert done["status"] == "delivered" and done["delivered_at"] is not None
    assert UNAPPROVED not in e.messages


async def test_undelivered_with_an_error_code_fails_the_notification(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    e.undeliverable[TO] = ("undelivered", 30003)
    nid = await _send(app)
    await wait_status(app, nid, "sent")
    assert await e.report(_sent_message(e)) == [200, 200, 200]
    failed = await _get(app, nid)
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert failed["failure_class"] == "permanent"
    assert failed["failure_reason"] == "provider_rejected"
    assert "30003" in failed["failure_details"] and "undelivered" in failed["failure_details"]
    assert await _metric(
        app, 'alert_agent_notifications_total{channel="sms",outcome="failed"}') == 1.0
    # A dead letter like any other: listed, and re-drivable.
    resp = await app.get("/v1/notifications?status=failed", headers=auth())
    assert [n["id"] for n in (await resp.json())["data"]] == [nid]


@pytest.mark.parametrize("how", ["wrong_token", "missing", "other_url", "tampered"])
async def test_a_bad_signature_is_refused_and_changes_nothing(
        app: Client, emu: tuple[TwilioEmulator, str], how: str) -> None:
    e, _ = emu
    nid = await _send(app)
    await wait_status(app, nid, "sent")
    m = _sent_message(e)
    if how == "wrong_token":
        e.sign_token = "not-the-auth-token"
        assert await e.report(m, [("delivered", None)]) == [403]
    elif how == "other_url":
        e.signed_url = lambda url: url.replace("/hooks/", "/other/")
        assert await e.report(m, [("delivered", None)]) == [403]
    else:
        data = {"MessageSid": m.sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
        headers = ({} if how == "missing"
                   else {"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="})
        resp = await app.post("/hooks/twilio/status", data=data, headers=headers)
        assert resp.status == 403
        body = await resp.json()
        assert body["error"]["code"] == "invalid_signature"
        assert body["error"]["type"] == "forbidden"
    assert (await _get(app, nid))["status"] == "sent"


async def test_a_signature_over_the_url_with_its_default_port_is_accepted(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    # The agent's URL has its port: Twilio may sign it without (as for 443 and 80).
    e, _ = emu
    nid = await _send(app)
    await wait_status(app, nid, "sent")
    port = app.server.port
    e.signed_url = lambda url: url.replace(f":{port}/", "/")
    assert await e.report(_sent_message(e), [("delivered", None)]) == [200]
    assert (await _get(app, nid))["status"] == "delivered"


async def test_a_receipt_for_an_unknown_message_is_answered_and_ignored(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    nid = await _send(app)
    await wait_status(app, nid, "sent")
    m = _sent_message(e)
    stranger = StoredMessage("SM" + "9" * 32, OTHER, "+15017122661", "sms", "x", None, None,
                             1, m.status_callback, None)
    assert await e.report(stranger, [("delivered", None)]) == [200]
    assert (await _get(app, nid))["status"] == "sent"


async def test_whatsapp_free_text_outside_the_window_fails_saying_to_use_a_template(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    nid = await _send(app, f"whatsapp:{TO}", "whatsapp")
    await wait_status(app, nid, "sent")
    m = _sent_message(e)
    assert m.channel == "whatsapp" and m.body is not None
    assert await e.report(m) == [200, 200]  # queued, failed 63016
    failed = await _get(app, nid)
    assert failed["status"] == "failed" and failed["failure_class"] == "permanent"
    assert "63016" in failed["failure_details"] and "content_sid" in failed["failure_details"]


async def test_whatsapp_read_receipt_delivers_and_records_the_read_time(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    nid = await _send(app, TO, "whatsapp", metadata={"content_sid": CONTENT_SID})
    await wait_status(app, nid, "sent")
    m = _sent_message(e)
    assert m.content_sid == CONTENT_SID and m.body is None
    assert await e.report(m, [("read", None)]) == [200]
    done = await _get(app, nid)
    assert done["status"] == "delivered" and done["read_at"] is not None
    assert done["delivered_at"] == done["read_at"]


async def test_a_rule_file_template_sends_its_content_sid(
        app: Client, emu: tuple[TwilioEmulator, str]) -> None:
    e, _ = emu
    resp = await app.post("/v1/alerts", headers=auth(), json={
        "monitor_id": "db-1", "type": "down", "severity": "critical", "message": "disk full"})
    assert resp.status == 201, await resp.text()
    await wait_until(lambda: len(e.messages.get(TO, [])) == 1)
    m = _sent_message(e)
    assert m.channel == "whatsapp" and m.content_sid == CONTENT_SID
    assert m.content_variables is not None and m.content_variables["2"] == "critical"
    await e.report(m)
    assert [c.http_status for c in m.callbacks] == [200, 200, 200]


async def test_the_api_refuses_a_number_that_is_not_e164(app: Client) -> None:
    for channel, to in (("sms", "912345678"), ("whatsapp", "whatsapp:ops")):
        resp = await app.post("/v1/notifications/send", headers=auth(),
                              json={"channel": channel, "to": to, "message": "m"})
        assert resp.status == 422
        assert (await resp.json())["error"]["code"] == "invalid_phone"


async def test_without_public_url_a_warning_says_where_callbacks_go(
        logs: io.StringIO, app: Client) -> None:
    [line] = [json.loads(x) for x in logs.getvalue().splitlines()
              if "twilio_callbacks_to_listen_address" in x]
    assert line["url"] == f"http://127.0.0.1:{app.server.port}" and line["level"] == "warning"


async def test_the_hook_is_not_found_without_twilio(client: Client) -> None:
    resp = await client.post("/hooks/twilio/status", data={"MessageSid": "SM" + "0" * 32})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_configured"
