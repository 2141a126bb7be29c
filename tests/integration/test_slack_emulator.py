"""The Slack emulator checks requests as Slack does, so a channel bug shows as Slack's error."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.emulators.slack import SlackEmulator

TOKEN = "xoxb-emu-4444"


@pytest.fixture
async def api() -> AsyncIterator[tuple[SlackEmulator, str, aiohttp.ClientSession]]:
    emu = SlackEmulator(token=TOKEN)
    async with emu.running() as url, aiohttp.ClientSession() as session:
        yield emu, url, session


async def call(session: aiohttp.ClientSession, url: str, method: str, body: dict[str, Any],
               token: str | None = TOKEN) -> tuple[int, dict[str, Any], Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with session.post(f"{url}/{method}", json=body, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read()), resp.headers


def section(n: int) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": "x" * n}}


async def test_auth_and_size_checks(api: tuple[SlackEmulator, str, Any]) -> None:
    emu, url, s = api
    post = "chat.postMessage"
    ok = {"channel": "#alerts", "text": "hi"}
    assert (await call(s, url, post, ok, token=None))[1] == {"ok": False, "error": "not_authed"}
    assert (await call(s, url, post, ok, token="xoxb-no"))[1]["error"] == "invalid_auth"
    assert (await call(s, url, post, {**ok, "text": "x" * 40_001}))[1]["error"] == "msg_too_long"
    for blocks in ([section(1)] * 51, [section(3_001)], [section(0)],
                   [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
                   [{"type": "video"}]):
        got = await call(s, url, post, {**ok, "blocks": blocks})
        assert got[1]["error"] == "invalid_blocks", blocks[0]
    assert (await call(s, url, post, {"channel": "#alerts"}))[1]["error"] == "no_text"
    status, body, _ = await call(s, url, post, {**ok, "text": "x" * 40_000,
                                                "blocks": [section(3_000)] * 50})
    assert status == 200 and body["ok"] is True and list(body)[:3] == ["ok", "channel", "ts"]
    assert emu.messages_in("#alerts")[0].text == "x" * 40_000


async def test_update_and_delete_take_channel_ids_only(api: tuple[SlackEmulator, str, Any]
                                                       ) -> None:
    emu, url, s = api
    _, posted, _ = await call(s, url, "chat.postMessage", {"channel": "#ops", "text": "a"})
    by_name = {"channel": "#ops", "ts": posted["ts"], "text": "b"}
    assert (await call(s, url, "chat.update", by_name))[1]["error"] == "channel_not_found"
    by_id = {**by_name, "channel": posted["channel"]}
    assert (await call(s, url, "chat.update", by_id))[1]["ok"] is True
    assert emu.messages_in("#ops")[0].edits == 1
    assert (await call(s, url, "chat.delete", by_id))[1]["ok"] is True
    assert (await call(s, url, "chat.delete", by_id))[1]["error"] == "message_not_found"
    assert (await call(s, url, "chat.update", by_id))[1]["error"] == "message_not_found"


async def test_form_encoded_calls_with_a_token_field(api: tuple[SlackEmulator, str, Any]
                                                     ) -> None:
    emu, url, s = api
    form = {"token": TOKEN, "channel": "C0OPS00001", "text": "t",
            "blocks": orjson.dumps([section(5)]).decode()}
    async with s.post(f"{url}/chat.postMessage", data=form) as resp:
        assert (await resp.json())["ok"] is True
    assert emu.messages_in("#ops")[0].block_texts() == ["xxxxx"]
    async with s.post(f"{url}/chat.postMessage", data=b"x",
                      headers={"Content-Type": "text/csv"}) as resp:
        assert (await resp.json())["error"] == "invalid_post_type"
    async with s.post(f"{url}/chat.nothing", json={}) as resp:
        assert resp.status == 404


async def test_failures_for_a_count_or_a_duration(api: tuple[SlackEmulator, str, Any]) -> None:
    emu, url, s = api
    ok = {"channel": "#alerts", "text": "hi"}
    emu.fail("ratelimited", times=2, retry_after=2)
    for _ in range(2):
        status, body, headers = await call(s, url, "chat.postMessage", ok)
        assert (status, body["error"], headers["Retry-After"]) == (429, "ratelimited", "2")
    assert (await call(s, url, "chat.postMessage", ok))[0] == 200
    emu.fail("is_archived", times=None, seconds=0.3)
    started = time.monotonic()
    while time.monotonic() - started < 0.2:  # bounded: every call inside the window fails
        assert (await call(s, url, "chat.postMessage", ok))[1]["error"] == "is_archived"
    deadline = time.monotonic() + 2.0
    while (await call(s, url, "chat.postMessage", ok))[1].get("ok") is not True:
        assert time.monotonic() < deadline
    ats = [r.at for r in emu.requests]
    assert ats == sorted(ats) and emu.count(answered="ratelimited") == 2
