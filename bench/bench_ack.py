"""Acknowledgment latency: from a signed Slack button click reaching the agent to every
delivered message of the alert edited ("Acknowledged by Ana at ...") in Slack and Telegram.

    .venv/bin/python bench/bench_ack.py             # 30 alerts, one click each
    .venv/bin/python bench/bench_ack.py --n 100

One daemon (``bench_api.Daemon``, pinned to ``--server-cpu``) with Slack and Telegram pointed at
the test suite's emulators, which run in a thread of this process on 127.0.0.1. For each alert
(one at a time): post it, wait until both messages are there, then post the click Slack would
send (signed with the app's signing secret) and poll both emulators until both messages are
edited. The figure is the time from sending the click to the last edit seen (polled every 2 ms,
so it is at most 2 ms late). Every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.emulators
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import Daemon, log  # noqa: E402
from emulator_thread import EmulatorThread  # noqa: E402

from tests.emulators.slack import SlackEmulator, SlackMessage  # noqa: E402
from tests.emulators.telegram import TOKEN as TELEGRAM_TOKEN  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402

SLACK_TOKEN = "xoxb-bench-0000-SlackBotTokenForTheBench"
ANA_SLACK, CHAT = "U0ANA00001", 4242
RULES = f"""
defaults:
  group_wait: 0s
  group_interval: 1h
  notify: [{{channel: console, to: ops}}]
routes:
  - name: db
    matchers: ['monitor_id=~"db-.*"']
    group_by: [monitor_id]
    ack_by: [team_db]
    notify:
      - {{channel: slack, to: "#alerts"}}
      - {{channel: telegram, to: "{CHAT}"}}
teams:
  - {{id: team_db, members: [mem_ana]}}
members:
  - id: mem_ana
    name: Ana
    approved: true
    addresses: {{slack: "{ANA_SLACK}", telegram: "{CHAT}"}}
"""


class Emulators(EmulatorThread):
    """Slack and Telegram, served from a thread of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.slack = SlackEmulator(token=SLACK_TOKEN)
        self.telegram = TelegramEmulator()
        self.telegram.add_chat(CHAT)

    async def serve(self, stack: AsyncExitStack) -> None:
        self.urls["slack"] = await stack.enter_async_context(self.slack.running())
        self.urls["telegram"] = await stack.enter_async_context(self.telegram.serve())


def post(url: str, data: bytes, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.002) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default=str(Path(sys.executable).with_name("alert-agent")))
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--n", type=int, default=30, help="alerts, one click each")
    p.add_argument("--timeout", type=float, default=30.0, help="per wait")
    p.add_argument("--keep", action="store_true", help="keep the daemon's data dir")
    a = p.parse_args()
    rules = Path(tempfile.mkdtemp(prefix="bench-ack-rules-"))
    (rules / "r.yaml").write_text(RULES)
    took: list[float] = []
    with Emulators() as emu:
        env = {
            "ALERT_AGENT_RULES_DIR": str(rules),
            "ALERT_AGENT_CHANNELS__SLACK__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__SLACK__BOT_TOKEN": SLACK_TOKEN,
            "ALERT_AGENT_CHANNELS__SLACK__API_URL": emu.urls["slack"],
            "ALERT_AGENT_CHANNELS__SLACK__SIGNING_SECRET": emu.slack.signing_secret,
            "ALERT_AGENT_CHANNELS__SLACK__RATE_PER_SECOND": "1000",
            "ALERT_AGENT_CHANNELS__TELEGRAM__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TELEGRAM__BOT_TOKEN": TELEGRAM_TOKEN,
            "ALERT_AGENT_CHANNELS__TELEGRAM__API_URL": emu.urls["telegram"],
            "ALERT_AGENT_CHANNELS__TELEGRAM__CHAT_RATE_PER_SECOND": "1000",
            "ALERT_AGENT_CHANNELS__TELEGRAM__WEBHOOK_SECRET": "bench-webhook-secret-0123",
        }
        with Daemon(a, env) as d:
            for i in range(a.n):
                status = post(d.url + "/v1/alerts", json.dumps({
                    "monitor_id": f"db-{i}", "type": "down", "message": f"disk full {i}"}).encode(),
                    {"Authorization": f"Bearer {d.key}", "Content-Type": "application/json"})
                if status != 201:
                    raise RuntimeError(f"POST /v1/alerts: {status}")
                slack: SlackMessage = wait(
                    lambda i=i: next((m for m in emu.slack.messages_in("#alerts")
                                      if f"disk full {i}" in m.text), None),
                    a.timeout, "the Slack message")
                tg = wait(lambda i=i: next((m for m in emu.telegram.messages.get(CHAT, [])
                                            if f"disk full {i}" in m.text), None),
                          a.timeout, "the Telegram message")
                body, headers = emu.slack.signed(emu.slack.interaction(slack, user_id=ANA_SLACK))
                t0 = time.perf_counter()
                status = post(d.url + "/hooks/slack/interactive", body, headers)
                if status != 200:
                    raise RuntimeError(f"click: {status}")
                wait(lambda s=slack, t=tg: s.edits >= 1 and t.edits >= 1, a.timeout,
                     "both messages edited")
                took.append(time.perf_counter() - t0)
    ms = sorted(t * 1000 for t in took)
    log(f"acknowledgment latency over {len(ms)} clicks (click sent -> Slack and Telegram "
        f"messages edited): p50 {statistics.median(ms):.1f} ms, "
        f"p90 {ms[int(len(ms) * 0.9) - 1]:.1f} ms, max {ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
