"""Delivery rate per channel against always-OK emulators, next to the webhook channel in the
same run, and how long a storm to one Slack channel takes under the default rate limits.

    .venv/bin/python bench/bench_channels.py      # 2,000 per channel, webhook first and last
    .venv/bin/python bench/bench_channels.py --n 5000 --only slack,telegram
    .venv/bin/python bench/bench_channels.py --slack-storm 1000 --only none   # ~17 min at 1/s

One daemon (``bench_api.Daemon``, pinned to ``--server-cpu``) with Slack, Telegram, Teams, ntfy,
email (a real aiosmtpd server), SMS and WhatsApp (Twilio), FCM and Apprise (``json://``) pointed
at the test suite's emulators (``tests/emulators``), which run in this process on 127.0.0.1
beside the webhook sink. SMS and WhatsApp count as delivered when the Twilio emulator's signed
status callback says so (it posts them right after its ``201``), as in production. Each phase
queues ``--n`` notifications through
``/v1/notifications/send-batch`` spread over many destinations (so the providers' per-destination
buckets do not decide the figure: Slack and Telegram get their rate settings raised, Teams gets
400 webhook aliases at its fixed 0.5/s with bursts of 5), waits until the metrics count them
delivered or failed, and reads the delivery times from the database. The rate is notifications
delivered per second from the first to the last delivery of the phase. The storm phase starts a
second daemon with the default settings and sends ``--slack-storm`` notifications to one Slack
channel. Every loop is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.emulators
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import (  # noqa: E402
    MESSAGE,
    Daemon,
    Sink,
    fmt,
    headers,
    log,
    span_rates,
    wait_outcomes,
)
from emulator_thread import EmulatorThread  # noqa: E402

from tests.emulators.apprise_json import AppriseJsonEmulator  # noqa: E402
from tests.emulators.fcm import FcmEmulator, ServiceAccountKey  # noqa: E402
from tests.emulators.ntfy import NtfyEmulator  # noqa: E402
from tests.emulators.slack import SlackEmulator  # noqa: E402
from tests.emulators.smtp import SmtpEmulator  # noqa: E402
from tests.emulators.teams import TeamsEmulator  # noqa: E402
from tests.emulators.telegram import TOKEN as TELEGRAM_TOKEN  # noqa: E402
from tests.emulators.telegram import TelegramEmulator  # noqa: E402
from tests.emulators.twilio import TwilioEmulator  # noqa: E402

SLACK_TOKEN = "xoxb-bench-0000-SlackBotTokenForTheBench"
CHANNELS = ("slack", "telegram", "teams", "push", "email", "sms", "whatsapp", "fcm", "apprise")
# A phase's name -> the API channel it sends on (FCM is the push channel's fcm: addresses).
API_CHANNEL = {"fcm": "push"}
SLACK_DESTINATIONS = 200
TEAMS_ALIASES = 400
APPRISE_ALIASES = 50


class Emulators(EmulatorThread):
    """The four provider emulators, served from a thread of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.slack = SlackEmulator(token=SLACK_TOKEN)
        for i in range(SLACK_DESTINATIONS):
            self.slack.add_channel(f"b{i}", f"C0BENCH{i:04d}")
        self.telegram = TelegramEmulator(open_chats=True)
        self.teams = TeamsEmulator()
        self.ntfy = NtfyEmulator()
        self.smtp = SmtpEmulator()
        # Callbacks right after each 201, as Twilio posts them: delivered means receipted.
        self.twilio = TwilioEmulator(callback_delay=0.0)
        # Inside WhatsApp's 24-hour window: free text is allowed (else a template is needed).
        self.twilio.whatsapp_sessions.update(whatsapp_number(i) for i in range(5000))
        self.fcm = FcmEmulator(ServiceAccountKey(token_uri=""))
        self.apprise = AppriseJsonEmulator()
        self.key_dir = Path(tempfile.mkdtemp(prefix="bench-fcm-"))
        self.teams_hooks: dict[str, str] = {}

    async def serve(self, stack: AsyncExitStack) -> None:
        self.urls["slack"] = await stack.enter_async_context(self.slack.running())
        self.urls["telegram"] = await stack.enter_async_context(self.telegram.serve())
        await stack.enter_async_context(self.teams.serve())
        self.urls["push"] = await stack.enter_async_context(self.ntfy.serve())
        self.teams_hooks = {f"t{i}": self.teams.add_webhook(f"t{i}")
                            for i in range(TEAMS_ALIASES)}
        self.urls["smtp_port"] = str(await stack.enter_async_context(self.smtp.serve()))
        self.urls["twilio"] = await stack.enter_async_context(self.twilio.serve())
        self.urls["fcm"] = await stack.enter_async_context(self.fcm.serve())
        self.fcm.account.token_uri = self.urls["fcm"] + "/token"
        self.urls["apprise"] = await stack.enter_async_context(self.apprise.serve())

    def env(self, raised: bool) -> dict[str, str]:
        """The daemon's channel settings; ``raised``: provider buckets out of the way."""
        env = {
            "ALERT_AGENT_CHANNELS__SLACK__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__SLACK__BOT_TOKEN": SLACK_TOKEN,
            "ALERT_AGENT_CHANNELS__SLACK__API_URL": self.urls["slack"],
            "ALERT_AGENT_CHANNELS__TELEGRAM__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TELEGRAM__BOT_TOKEN": TELEGRAM_TOKEN,
            "ALERT_AGENT_CHANNELS__TELEGRAM__API_URL": self.urls["telegram"],
            "ALERT_AGENT_CHANNELS__TEAMS__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TEAMS__WEBHOOKS": json.dumps(self.teams_hooks),
            "ALERT_AGENT_CHANNELS__PUSH__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__PUSH__NTFY_URL": self.urls["push"],
            "ALERT_AGENT_CHANNELS__EMAIL__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__EMAIL__HOST": "127.0.0.1",
            "ALERT_AGENT_CHANNELS__EMAIL__PORT": self.urls["smtp_port"],
            "ALERT_AGENT_CHANNELS__EMAIL__FROM_ADDRESS": "bench@example.com",
            "ALERT_AGENT_CHANNELS__TWILIO__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__TWILIO__ACCOUNT_SID": self.twilio.account_sid,
            "ALERT_AGENT_CHANNELS__TWILIO__AUTH_TOKEN": self.twilio.auth_token,
            "ALERT_AGENT_CHANNELS__TWILIO__FROM_NUMBER": "+15017122661",
            "ALERT_AGENT_CHANNELS__TWILIO__WHATSAPP_FROM": "+14155238886",
            "ALERT_AGENT_CHANNELS__TWILIO__API_URL": self.urls["twilio"],
            "ALERT_AGENT_CHANNELS__FCM__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__FCM__SERVICE_ACCOUNT_FILE": str(
                self.fcm.account.write(self.key_dir / "key.json")),
            "ALERT_AGENT_CHANNELS__FCM__API_URL": self.urls["fcm"],
            "ALERT_AGENT_CHANNELS__APPRISE__ENABLED": "true",
            "ALERT_AGENT_CHANNELS__APPRISE__URLS": json.dumps({
                f"a{i}": f"json://{self.urls['apprise'].removeprefix('http://')}/a{i}"
                for i in range(APPRISE_ALIASES)}),
            # The bench sends to generated addresses, not a directory's members.
            "ALERT_AGENT_RECIPIENTS__ALLOW_UNLISTED": "true",
        }
        if raised:
            env.update({
                "ALERT_AGENT_CHANNELS__SLACK__RATE_PER_SECOND": "100000",
                "ALERT_AGENT_CHANNELS__TELEGRAM__RATE_PER_SECOND": "100000",
                "ALERT_AGENT_CHANNELS__TELEGRAM__CHAT_RATE_PER_SECOND": "100000",
                "ALERT_AGENT_CHANNELS__TWILIO__RATE_PER_SECOND": "100000",
                "ALERT_AGENT_CHANNELS__TWILIO__WHATSAPP_RATE_PER_SECOND": "100000",
            })
        return env


def whatsapp_number(i: int) -> str:
    return f"+1415{3_000_000 + i % 5000}"


def destinations(channel: str, sink_url: str) -> Callable[[int], str]:
    """The ``to`` of the i-th notification of a phase."""
    return {
        "webhook": lambda i: sink_url + "/hook",
        "slack": lambda i: f"#b{i % SLACK_DESTINATIONS}",
        "telegram": lambda i: str(100_000 + i % 500),
        "teams": lambda i: f"t{i % TEAMS_ALIASES}",
        "push": lambda i: "bench",
        "email": lambda i: f"u{i % 1000}@example.com",
        # Distinct valid numbers: Twilio's per-recipient bucket (1/s) does not decide the rate.
        "sms": lambda i: f"+1415{2_000_000 + i % 5000}",
        "whatsapp": whatsapp_number,
        "fcm": lambda i: f"fcm:bench{i % 1000}:APA91b",
        "apprise": lambda i: f"a{i % APPRISE_ALIASES}",
    }[channel]


async def queue(d: Daemon, channel: str, to: Callable[[int], str], n: int,
                timeout: float) -> int:
    """Queue ``n`` notifications of ``channel`` in batches of 1,000; how many were accepted."""
    accepted = 0
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=headers(d.key),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        for start in range(0, n, 1000):
            if time.monotonic() > deadline:
                break
            items = [{"channel": API_CHANNEL.get(channel, channel), "to": to(i),
                      "message": MESSAGE,
                      "severity": "warning"} for i in range(start, min(n, start + 1000))]
            async with session.post(d.url + "/v1/notifications/send-batch",
                                    json={"notifications": items}) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"send-batch {channel}: {r.status} {body[:300]!r}")
                accepted += int(json.loads(body)["accepted"])
    return accepted


def phase(d: Daemon, channel: str, sink_url: str, n: int, timeout: float,
          done_before: dict[str, int]) -> dict[str, Any]:
    t0 = time.time()
    accepted = asyncio.run(queue(d, channel, destinations(channel, sink_url), n, timeout))
    api = API_CHANNEL.get(channel, channel)
    out = wait_outcomes(d, api, done_before.get(api, 0) + accepted, time.monotonic() + timeout)
    delivered = out["delivered"] - done_before.get(api, 0)
    done_before[api] = out["delivered"] + out["failed"]
    return {"channel": channel, "api": api, "accepted": accepted, "delivered": delivered,
            "failed": out["failed"], "t0": t0, "t1": out["t"]}


def rates(d: Daemon, phases: list[dict[str, Any]]) -> None:
    """Per phase: delivered/s between its first and last delivery (from the database)."""
    for p in phases:
        rows = d.query("SELECT delivered_at FROM notifications WHERE channel = ? AND "
                       "status = 'delivered' AND created_at BETWEEN ? AND ?",
                       (p["api"], p["t0"] - 1, p["t1"] + 1))
        r = span_rates([row[0] for row in rows])
        p.update(rate=r["rate"], steady_rate=r["steady_rate"], span_s=r["span_s"])


def storm(a: argparse.Namespace, emu: Emulators) -> dict[str, Any]:
    """``--slack-storm`` notifications to one Slack channel (the emulator's ``#alerts``)
    under the default limits."""
    n = a.slack_storm
    with Daemon(a, emu.env(raised=False)) as d:
        before = emu.slack.count("chat.postMessage", "ok")
        t0 = time.time()
        accepted = asyncio.run(queue(d, "slack", lambda i: "#alerts", n, a.timeout))
        out = wait_outcomes(d, "slack", accepted, time.monotonic() + a.storm_timeout,
                            stall_s=a.storm_timeout)
        took = out["t"] - t0
        posted = emu.slack.count("chat.postMessage", "ok") - before
        status = dict(d.query("SELECT status, count(*) FROM notifications GROUP BY status"))
    log(f"  slack storm: {accepted} queued, {out['delivered']} delivered, {out['failed']} "
        f"failed, {posted} posts in {took:.1f} s ({accepted / took:.2f}/s); status {status}")
    return {"n": n, "accepted": accepted, "delivered": out["delivered"],
            "failed": out["failed"], "seconds": took, "status": status}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default=str(Path(sys.executable).with_name("alert-agent")))
    p.add_argument("--server-cpu", default="0")
    p.add_argument("--client-cpu", default="1")
    p.add_argument("--n", type=int, default=2000, help="notifications per phase")
    p.add_argument("--only", default=",".join(CHANNELS),
                   help="chat channels to measure (comma list; 'none' for the storm alone)")
    p.add_argument("--slack-storm", type=int, default=0,
                   help="also time N notifications to one Slack channel at default limits")
    p.add_argument("--timeout", type=float, default=300.0, help="per phase")
    p.add_argument("--storm-timeout", type=float, default=1500.0)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    chosen = [c for c in a.only.split(",") if c in CHANNELS]
    results: dict[str, Any] = {"phases": [], "storm": None}
    emu = Emulators().__enter__()
    try:
        if chosen:
            daemon = Daemon(a, emu.env(raised=True))
            # Where Twilio's status callbacks go.
            daemon.extra_env["ALERT_AGENT_PUBLIC_URL"] = daemon.url
            with Sink(a) as sink, daemon as d:
                done: dict[str, int] = {}
                for channel in ["webhook", *chosen, "webhook"]:
                    log(f"phase {channel}: {a.n} notifications")
                    results["phases"].append(phase(d, channel, sink.url, a.n, a.timeout, done))
                rates(d, results["phases"])
            log("channel     delivered  failed   rate/s  steady/s   span s")
            for r in results["phases"]:
                log(f"{r['channel']:<10} {r['delivered']:>10} {r['failed']:>7} "
                    f"{fmt(r['rate']):>8} {fmt(r['steady_rate']):>9} {fmt(r['span_s']):>8}")
        if a.slack_storm:
            results["storm"] = storm(a, emu)
    finally:
        emu.__exit__()
    if a.out:
        a.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
