"""End to end (issue 13's "done means"): a team of three approved members and one who is not;
one `POST /v1/notifications/send-batch` with a notification per person-reaching channel to the
team reaches each approved member on each channel (mail in a real SMTP server, SMS and WhatsApp
through the Twilio emulator with `delivered` from its signed status callbacks, FCM and Apprise
requests received) and never the unapproved member; and every simulator address ends in its
documented state through the running daemon.

The agent is a child process (killed by PID at teardown); the emulators run in the test's event
loop. Every wait polls against a deadline.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.channels.simulator import SIMULATOR_ADDRESSES, Outcome
from tests.e2e.processes import Child, tails
from tests.e2e.test_alertmanager import API_KEY, agent_env, free_port, poll, wait_http_ok
from tests.emulators.apprise_json import AppriseJsonEmulator
from tests.emulators.fcm import FcmEmulator, ServiceAccountKey
from tests.emulators.smtp import SmtpEmulator
from tests.emulators.twilio import TwilioEmulator

TEST_KEY = "sk_test_e2epeople0000000000000000001"
FROM_NUMBER = "+15005550006"
WHATSAPP_FROM = "+14155238886"
# name -> (approved, email, phone, device token)
PEOPLE = {
    "ana": (True, "ana@example.com", "+351912345678", "dev_ana:APA91b-e2e"),
    "raj": (True, "raj@example.com", "+14155552671", "dev_raj:APA91b-e2e"),
    "lee": (True, "lee@example.com", "+447911123456", "dev_lee:APA91b-e2e"),
    "out": (False, "out@example.com", "+12025550123", "dev_out:APA91b-e2e"),
}
CHANNELS = ("email", "sms", "whatsapp", "push", "apprise")


def directory() -> str:
    members = "\n".join(
        f"  - id: mem_{name}\n    approved: {str(ok).lower()}\n"
        f"    addresses: {{email: {mail}, sms: \"{phone}\", whatsapp: \"{phone}\", "
        f"push: \"fcm:{device}\", apprise: {name}-json}}"
        for name, (ok, mail, phone, device) in PEOPLE.items())
    return (f"teams:\n  - id: team_oncall\n    members: [{', '.join('mem_' + n for n in PEOPLE)}]\n"
            f"members:\n{members}\n")


@dataclass
class Stack:
    http: aiohttp.ClientSession
    url: str
    agent: Child
    smtp: SmtpEmulator
    twilio: TwilioEmulator
    fcm: FcmEmulator
    apprise: AppriseJsonEmulator

    async def api(self, method: str, path: str, key: str = API_KEY, **kw: Any) -> Any:
        async with self.http.request(method, f"{self.url}{path}", **kw,
                                     headers={"Authorization": f"Bearer {key}"}) as r:
            body = await r.json()
            assert r.status < 300, (r.status, body, tails([self.agent]))
            return body


@pytest.fixture
async def stack(tmp_path: Path, children: Callable[[str, list[str], dict[str, str]], Child]
                ) -> AsyncIterator[Stack]:
    smtp, twilio = SmtpEmulator(), TwilioEmulator()
    fcm, apprise = FcmEmulator(ServiceAccountKey(token_uri="")), AppriseJsonEmulator()
    twilio.whatsapp_sessions.update(phone for _, _, phone, _ in PEOPLE.values())
    async with AsyncExitStack() as es:
        smtp_port = await es.enter_async_context(smtp.serve())
        twilio_url = await es.enter_async_context(twilio.serve())
        fcm_url = await es.enter_async_context(fcm.serve())
        apprise_url = await es.enter_async_context(apprise.serve())
        fcm.account.token_uri = f"{fcm_url}/token"
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "people.yaml").write_text(directory())
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = agent_env(tmp_path, port)
        aliases = {f"{n}-json": f"json://{apprise_url.removeprefix('http://')}/{n}"
                   for n in PEOPLE}
        env.update({
            "ALERT_AGENT_API_KEYS": f"{API_KEY},{TEST_KEY}",
            "ALERT_AGENT_PUBLIC_URL": url,  # where Twilio's status callbacks go
            "ALERT_AGENT_CHANNELS__EMAIL__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__EMAIL__HOST": "127.0.0.1",
            "ALERT_AGENT_CHANNELS__EMAIL__PORT": str(smtp_port),
            "ALERT_AGENT_CHANNELS__EMAIL__FROM_ADDRESS": "alerts@example.com",
            "ALERT_AGENT_CHANNELS__TWILIO__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TWILIO__ACCOUNT_SID": twilio.account_sid,
            "ALERT_AGENT_CHANNELS__TWILIO__AUTH_TOKEN": twilio.auth_token,
            "ALERT_AGENT_CHANNELS__TWILIO__FROM_NUMBER": FROM_NUMBER,
            "ALERT_AGENT_CHANNELS__TWILIO__WHATSAPP_FROM": WHATSAPP_FROM,
            "ALERT_AGENT_CHANNELS__TWILIO__API_URL": twilio_url,
            "ALERT_AGENT_CHANNELS__FCM__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__FCM__SERVICE_ACCOUNT_FILE": str(
                fcm.account.write(tmp_path / "fcm-key.json")),
            "ALERT_AGENT_CHANNELS__FCM__API_URL": fcm_url,
            "ALERT_AGENT_CHANNELS__APPRISE__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__APPRISE__URLS": json.dumps(aliases),
        })
        agent = children("agent", [sys.executable, "-m", "agent", "run"], env)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await wait_http_ok(http, f"{url}/readyz", agent)
            yield Stack(http, url, agent, smtp, twilio, fcm, apprise)


@pytest.mark.timeout(180)
async def test_a_team_batch_reaches_every_approved_member_on_every_channel(stack: Stack) -> None:
    batch = await stack.api("POST", "/v1/notifications/send-batch", json={"notifications": [
        {"channel": ch, "to": "team_oncall", "message": f"db1 disk full ({ch})",
         "subject": "db1 disk full", "severity": "critical"} for ch in CHANNELS]})
    parents = {n["channel"]: n["id"] for n in batch["notifications"]}
    assert sorted(parents) == sorted(CHANNELS)

    async def statuses() -> dict[str, str]:
        out = {}
        for ch, pid in parents.items():
            kids = await stack.api("GET", "/v1/notifications",
                                   params={"parent_id": pid, "limit": "100"})
            for k in kids["data"]:
                out[f"{ch}/{k['member_id']}"] = k["status"]
        return out

    # Twilio's callbacks come when the emulator reports: first everything is sent or delivered.
    async def handed_over() -> bool:
        got = await statuses()
        return len(got) == 15 and all(
            s == ("sent" if key.split("/")[0] in ("sms", "whatsapp") else "delivered")
            for key, s in got.items())

    await poll(handed_over, "every member notification handed over", timeout=60,
               diagnostics=lambda: tails([stack.agent]))
    await stack.twilio.report_all()  # queued, sent, delivered: signed as Twilio signs

    async def all_delivered() -> bool:
        got = await statuses()
        return len(got) == 15 and set(got.values()) == {"delivered"}

    await poll(all_delivered, "every member notification delivered", timeout=30,
               diagnostics=lambda: tails([stack.agent]))
    for ch, pid in parents.items():
        parent = await stack.api("GET", f"/v1/notifications/{pid}")
        assert (parent["status"], parent["recipients"]) == ("delivered", 3), (ch, parent)
    approved = [n for n, p in PEOPLE.items() if p[0]]
    # Each approved member reached once on each channel; the unapproved one never.
    assert sorted(stack.smtp.messages) == sorted(PEOPLE[n][1] for n in approved)
    assert all(len(stack.smtp.messages[PEOPLE[n][1]]) == 1 for n in approved)
    sms = sorted(m.to for m in stack.twilio.all_messages() if m.channel == "sms")
    whatsapp = sorted(m.to for m in stack.twilio.all_messages() if m.channel == "whatsapp")
    assert sms == whatsapp == sorted(PEOPLE[n][2] for n in approved)
    assert all(all(c.http_status == 200 for c in m.callbacks)
               for m in stack.twilio.all_messages())
    assert sorted(stack.fcm.messages) == sorted(PEOPLE[n][3] for n in approved)
    assert sorted(stack.apprise.messages) == sorted(f"/{n}" for n in approved)


@pytest.mark.timeout(120)
async def test_every_simulator_address_ends_in_its_documented_state(stack: Stack) -> None:
    ends = {Outcome.DELIVERED: ("delivered", None), Outcome.TEMPORARY_FAILURE: ("delivered", None),
            Outcome.RATE_LIMITED: ("delivered", None),
            Outcome.PERMANENT_FAILURE: ("failed", "permanent"),
            Outcome.TECHNICAL_FAILURE: ("failed", "technical")}
    channel = {"@": "telegram", "+": "sms"}
    sent = {}
    for address, outcome in SIMULATOR_ADDRESSES.items():
        n = await stack.api("POST", "/v1/notifications/send", key=TEST_KEY, json={
            "channel": channel.get(address[0], "email"), "to": address, "message": "sim"})
        sent[n["id"]] = outcome

    async def settled() -> bool:
        for nid, outcome in sent.items():
            n = await stack.api("GET", f"/v1/notifications/{nid}", key=TEST_KEY)
            if (n["status"], n["failure_class"]) != ends[outcome]:
                return False
        return True

    await poll(settled, "every simulator notification settled", timeout=60,
               diagnostics=lambda: tails([stack.agent]))
    # Nothing left the host.
    assert not stack.smtp.messages and not stack.twilio.all_messages()
