"""Simulator recipients (issue 13): with an sk_test_ key each documented address forces its
outcome through the whole pipeline (the dispatcher's real retry, deferral and failure paths);
a live key is refused."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent.channels.simulator import SIMULATOR_ADDRESSES, Outcome
from agent.clock import FakeClock
from tests.helpers import LIVE_KEY, TEST_KEY, auth, runtime

Client = TestClient[Any, Any]

# (channel, address) for each outcome: an email address, a phone number, a chat id.
BY_KIND = {
    "email": [a for a in SIMULATOR_ADDRESSES if "@simulator" in a],
    "sms": [a for a in SIMULATOR_ADDRESSES if a.startswith("+")],
    "telegram": [a for a in SIMULATOR_ADDRESSES if a.startswith("@")],
}
CASES = [(channel, address, SIMULATOR_ADDRESSES[address])
         for channel, addresses in BY_KIND.items() for address in addresses]
# The documented end state of each outcome: status, failure class, outcomes of the attempts.
EXPECTED: dict[Outcome, tuple[str, str | None, list[str]]] = {
    Outcome.DELIVERED: ("delivered", None, ["delivered"]),
    Outcome.PERMANENT_FAILURE: ("failed", "permanent", ["failed"]),
    Outcome.TEMPORARY_FAILURE: ("delivered", None, ["retry", "delivered"]),
    Outcome.RATE_LIMITED: ("delivered", None, ["deferred", "delivered"]),
    Outcome.TECHNICAL_FAILURE: ("failed", "technical", ["failed"]),
}


def test_every_outcome_has_an_email_a_phone_and_a_chat_id() -> None:
    for addresses in BY_KIND.values():
        assert sorted(SIMULATOR_ADDRESSES[a] for a in addresses) == sorted(Outcome)


@pytest.mark.parametrize(("channel", "address", "outcome"), CASES)
async def test_a_simulator_address_ends_in_its_documented_state(
        manual: Client, clock: FakeClock, channel: str, address: str, outcome: Outcome) -> None:
    resp = await manual.post("/v1/notifications/send", headers=auth(TEST_KEY), json={
        "channel": channel, "to": address, "message": "simulated"})
    assert resp.status == 201, await resp.text()
    nid = (await resp.json())["id"]
    for _ in range(5):  # a retry or deferral waits at most a few seconds of the fake clock
        await runtime(manual).run_until_idle()
        clock.advance(5.0)
    got = await (await manual.get(f"/v1/notifications/{nid}", headers=auth(TEST_KEY))).json()
    status, failure_class, attempts = EXPECTED[outcome]
    assert (got["status"], got["failure_class"]) == (status, failure_class), got
    assert [a["outcome"] for a in got["attempts"]] == attempts
    assert got["simulated"] is True


@pytest.mark.parametrize("address", ["simulate-delivered@simulator.invalid", "+447700900000",
                                     "@simulate_delivered"])
async def test_live_keys_cannot_send_to_simulator_addresses(manual: Client, address: str) -> None:
    resp = await manual.post("/v1/notifications/send", headers=auth(LIVE_KEY), json={
        "channel": "sms", "to": address, "message": "x"})
    body = await resp.json()
    assert resp.status == 422
    assert (body["error"]["code"], body["error"]["param"]) == ("simulator_recipient", "to")
    assert "sk_test_" in body["error"]["message"]
