"""SIGHUP on the real daemon (``python -m agent run``) with a stand-in notify socket (issue 10,
item 5): every ``RELOADING=1`` is followed by ``READY=1`` (a reload that raised used to leave it
out), also when the rules or the keys file are broken; overlapping SIGHUPs give
``RELOADING=1``/``READY=1`` pairs in order (they used to give RELOADING, RELOADING, READY, READY).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp

from tests.e2e.test_process import (  # noqa: F401 - spawn and notify_socket are fixtures
    START_TIMEOUT_S,
    NotifyReceiver,
    Spawn,
    daemon_env,
    free_port,
    notify_socket,
    spawn,
    wait_exit,
)
from tests.helpers import LIVE_KEY, WEBHOOK_SECRET, auth, wait_until

ROUTES = 1000  # enough that a reload takes a while: the second SIGHUP lands inside the first


def many_routes(n: int) -> str:
    return "routes:\n" + "".join(
        f"  - name: r{i}\n    matchers: ['service=\"s{i}\"']\n"
        f"    notify: [{{channel: console, to: team{i % 10}}}]\n" for i in range(n))


def is_watchdog(lines: list[str]) -> bool:
    return lines == ["WATCHDOG=1"]


async def test_every_reloading_is_followed_by_ready(
    spawn: Spawn, notify_socket: NotifyReceiver, tmp_path: Path  # noqa: F811
) -> None:
    rx = notify_socket
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "10-routes.yaml").write_text(many_routes(ROUTES))
    keys = tmp_path / "api_keys"
    keys.write_text(LIVE_KEY + "\n")
    port = free_port()
    d = spawn(daemon_env(tmp_path / "data", ALERT_AGENT_PORT=str(port), NOTIFY_SOCKET=rx.path,
                         ALERT_AGENT_API_KEYS_FILE=str(keys),
                         ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET=WEBHOOK_SECRET))
    url = f"http://127.0.0.1:{port}"

    async def next_state() -> str:
        lines = await rx.expect(lambda lines: not is_watchdog(lines), timeout=START_TIMEOUT_S)
        return lines[0]

    async def sighup_round() -> None:
        os.kill(d.pid, signal.SIGHUP)
        assert await next_state() == "RELOADING=1"
        assert await next_state() == "READY=1", rx.seen  # never came when the reload raised

    async with aiohttp.ClientSession() as http:
        assert await next_state() == "READY=1"

        # 1. Rules that raised RecursionError out of load_rules: a failed reload, then READY.
        (rules / "20-bad.yaml").write_text("routes: &r\n  - name: a\n    routes: *r\n")
        await sighup_round()
        async with http.get(f"{url}/v1/rules/status", headers=auth()) as r:
            status = await r.json()
        assert status["last_reload_successful"] is False
        assert status["errors"][0]["file"] == "20-bad.yaml", status
        assert "recursive alias" in status["errors"][0]["message"]
        assert any(e.get("event") == "rules_reload_failed" and e.get("trigger") == "sighup"
                   and e.get("file") == "20-bad.yaml" and "recursive alias" in e.get("reason", "")
                   for e in d.events())
        (rules / "20-bad.yaml").unlink()

        # 2. A keys file that is not UTF-8: the old keys stay, READY comes.
        keys.write_bytes(b"\xff\xfe" + LIVE_KEY.encode())
        await sighup_round()
        await wait_until(lambda: any(e.get("event") == "reload_failed"
                                     and e.get("what") == "api_keys" for e in d.events()),
                         timeout=5)
        keys.write_text(LIVE_KEY + "\n")
        async with http.get(f"{url}/v1/notifications", headers=auth()) as r:
            assert r.status == 200

        # 3. SIGHUPs while a reload runs: pairs in order, never two RELOADING in a row.
        os.kill(d.pid, signal.SIGHUP)
        assert await next_state() == "RELOADING=1"
        os.kill(d.pid, signal.SIGHUP)
        os.kill(d.pid, signal.SIGHUP)
        # SIGTERM waits for the reloads in progress: whatever they announce precedes STOPPING.
        await wait_until(lambda: sum(e.get("event") == "reloaded" for e in d.events()) >= 3,
                         timeout=30)
        os.kill(d.pid, signal.SIGTERM)
        burst = ["RELOADING=1"]
        while (state := await next_state()) != "STOPPING=1":
            burst.append(state)
        assert await wait_exit(d) == 0, d.stderr()

    assert len(burst) >= 4, burst  # the first reload, and at least one queued behind it
    assert burst == ["RELOADING=1", "READY=1"] * (len(burst) // 2), burst
    reloaded = [e for e in d.events(strict=True) if e.get("event") == "reloaded"]
    assert len(reloaded) == 2 + len(burst) // 2
    assert [e["rules_ok"] for e in reloaded[:2]] == [False, True]
