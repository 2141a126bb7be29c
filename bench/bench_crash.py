#!/usr/bin/env python3
"""Crash safety under load: SIGKILL the daemon again and again while it accepts webhook
notifications, restart it on the same data dir, and count what reached the sink.

    .venv/bin/python bench/bench_crash.py [--sends 10000] [--kills 20] [--concurrency 16]
                                          [--max-seconds 300] [--keep] [--out figures.json]

The real daemon (``python -m agent run``) on 127.0.0.1, a webhook sink on 127.0.0.1 in this
process. ``--concurrency`` clients post ``--sends`` notifications (``channel: webhook``, ``to``:
the sink, each with its own ``idempotency_key``) to ``/v1/notifications/send``; a request that
fails (the daemon was killed under it) is retried with the same key until it gets a 2xx, so a
request whose answer was lost is a replay (200), not a second notification. Each time the
accepted count crosses ``sends * k / (kills + 1)`` the daemon is SIGKILLed and restarted on the
same data dir; the clients wait for it. Then the last daemon drains its outbox and is stopped
with SIGTERM.

Figures: accepted (2xx), delivered (accepted ids the sink received at least once), lost
(accepted, never received: must be 0), duplicates (extra receipts of accepted ids; at-least-once
re-sends a delivery a kill interrupted between send and record), unexpected (received ids no
client got a 2xx for), replays (2xx answered 200: a retried request whose first answer was lost).

The same scenario with small numbers is tests/e2e/test_crash.py. Every process started here is
stopped by its PID; every wait has a deadline; only 127.0.0.1 is used. Stdlib + aiohttp only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

KEY = "sk_live_crash" + secrets.token_hex(12)
WEBHOOK_SECRET = "whsec_crash_" + secrets.token_hex(8)
START_TIMEOUT_S = 30.0
_SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                 "LISTEN_FDNAMES")


@dataclass
class CrashConfig:
    sends: int = 10_000
    kills: int = 20
    concurrency: int = 16
    max_seconds: float = 300.0  # the whole run, restarts and drain included


@dataclass
class CrashFigures:
    sends: int
    kills: int = 0
    accepted: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    unexpected: int = 0
    replays: int = 0
    retried_requests: int = 0  # attempts that failed in transport (a kill) and were retried
    non_2xx: dict[str, int] = field(default_factory=dict)
    restart_seconds: list[float] = field(default_factory=list)  # SIGKILL -> ready again
    elapsed_seconds: float = 0.0
    final_exit_code: int | None = None
    over_budget: str | None = None  # what was still going on at --max-seconds
    lost_ids: list[str] = field(default_factory=list)

    @property
    def duplicate_pct(self) -> float:
        return 100.0 * self.duplicates / self.accepted if self.accepted else 0.0


class Sink:
    """Counts every POST by notification id (the ``Idempotency-Key`` header)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.received[request.headers.get("Idempotency-Key", "")] += 1
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Daemons:
    """``python -m agent run`` children on one data dir; at most one alive at a time."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.data = work / "data"
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.current: subprocess.Popen[bytes] | None = None
        self.url = ""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("ALERT_AGENT_") and k not in _SYSTEMD_VARS}
        env.update({
            "ALERT_AGENT_HOST": "127.0.0.1", "ALERT_AGENT_PORT": "0",
            "ALERT_AGENT_DATA_DIR": str(self.data),
            "ALERT_AGENT_RULES_DIR": str(self.work / "rules"),
            "ALERT_AGENT_API_KEYS": KEY,
            "ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET": WEBHOOK_SECRET,
            "ALERT_AGENT_CHANNELS__WEBHOOK__ALLOW_LOOPBACK": "true",  # the sink is on 127.0.0.1
            "ALERT_AGENT_API__RATE_LIMIT__ENABLED": "false",
            "ALERT_AGENT_LOG__FORMAT": "json",
            "ALERT_AGENT_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
            "ALERT_AGENT_DELIVERY__SHUTDOWN_GRACE_SECONDS": "5",
        })
        return env

    async def start(self, http: aiohttp.ClientSession) -> str:
        n = len(self.started)
        err = self.work / f"daemon{n}.stderr"
        with (self.work / f"daemon{n}.stdout").open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen([sys.executable, "-m", "agent", "run"], env=self.env(),
                                    cwd=self.work, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        self.started.append(proc)
        self.logs.append(err)
        self.current = proc
        self.url = await _wait_ready(proc, err, http)
        return self.url

    async def kill(self) -> None:
        proc = self.current
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        await _wait_exit(proc, 10.0)
        self.current = None

    async def terminate(self, timeout: float = 15.0) -> int:
        proc = self.current
        assert proc is not None
        os.kill(proc.pid, signal.SIGTERM)
        rc = await _wait_exit(proc, timeout)
        self.current = None
        return rc

    def reap(self) -> None:
        """Kill (by PID) whatever we started that still runs."""
        for proc in self.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


async def _wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (rc := proc.poll()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {proc.pid} still running after {timeout:.0f} s")
        await asyncio.sleep(0.01)
    return rc


async def _wait_ready(proc: subprocess.Popen[bytes], err: Path,
                      http: aiohttp.ClientSession) -> str:
    """The URL of the ``listening`` event, once ``/readyz`` answers 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    url = ""
    while True:
        if not url:
            for line in err.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    with contextlib.suppress(ValueError):
                        url = str(json.loads(line)["url"])
        if url:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return url
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{err.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"daemon not ready within {START_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.01)


class OverBudget(Exception):
    """The run took longer than --max-seconds: stop and report what was reached."""


class Run:
    def __init__(self, cfg: CrashConfig, daemons: Daemons, sink: Sink) -> None:
        self.cfg = cfg
        self.daemons = daemons
        self.sink = sink
        self.fig = CrashFigures(sends=cfg.sends)
        self.accepted: dict[int, str] = {}
        self.next_index = 0
        self.up = asyncio.Event()
        self.deadline = time.monotonic() + cfg.max_seconds
        self.non_2xx: Counter[int] = Counter()

    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise OverBudget(f"{what}: over the {self.cfg.max_seconds:.0f} s budget")

    async def client(self, http: aiohttp.ClientSession, tag: str) -> None:
        timeout = aiohttp.ClientTimeout(total=10.0)
        while self.next_index < self.cfg.sends:
            i = self.next_index
            self.next_index += 1
            body = {"channel": "webhook", "to": self.sink.url, "message": f"crash {i}",
                    "idempotency_key": f"{tag}-{i}"}
            while i not in self.accepted:
                self.check_deadline("sending")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.up.wait(),
                                           max(0.01, self.deadline - time.monotonic()))
                if not self.up.is_set():
                    continue  # the deadline check above ends it
                try:
                    async with http.post(f"{self.daemons.url}/v1/notifications/send", json=body,
                                         headers={"Authorization": f"Bearer {KEY}"},
                                         timeout=timeout) as r:
                        status, out = r.status, await r.json(content_type=None)
                except (aiohttp.ClientError, OSError, TimeoutError):
                    self.fig.retried_requests += 1  # killed under us: the same key again
                    await asyncio.sleep(0.005)
                    continue
                if 200 <= status < 300:
                    self.accepted[i] = str(out["id"])
                    self.fig.replays += status == 200
                else:
                    self.non_2xx[status] += 1
                    await asyncio.sleep(0.05)

    async def killer(self, http: aiohttp.ClientSession) -> None:
        for k in range(1, self.cfg.kills + 1):
            threshold = self.cfg.sends * k // (self.cfg.kills + 1)
            while len(self.accepted) < threshold:
                self.check_deadline("waiting to kill")
                await asyncio.sleep(0.002)
            self.up.clear()
            t0 = time.monotonic()
            await self.daemons.kill()
            self.fig.kills += 1
            await self.daemons.start(http)
            self.fig.restart_seconds.append(round(time.monotonic() - t0, 3))
            self.up.set()

    async def drain(self, http: aiohttp.ClientSession) -> None:
        """Until every accepted id reached the sink and nothing is left queued."""
        wanted = set(self.accepted.values())
        while True:
            self.check_deadline("draining")
            if wanted.issubset(self.sink.received):
                async with http.get(f"{self.daemons.url}/v1/notifications?status=queued&limit=1",
                                    headers={"Authorization": f"Bearer {KEY}"}) as r:
                    if r.status == 200 and not (await r.json())["data"]:
                        return
            await asyncio.sleep(0.05)

    def figures(self) -> CrashFigures:
        f = self.fig
        ids = set(self.accepted.values())
        f.accepted = len(self.accepted)
        f.delivered = sum(1 for n in ids if self.sink.received[n] > 0)
        f.lost_ids = sorted(n for n in ids if self.sink.received[n] == 0)
        f.lost = len(f.lost_ids)
        f.duplicates = sum(self.sink.received[n] - 1 for n in ids if self.sink.received[n] > 1)
        f.unexpected = sum(c for n, c in self.sink.received.items() if n not in ids)
        f.non_2xx = {str(k): v for k, v in sorted(self.non_2xx.items())}
        return f


async def run_crash(cfg: CrashConfig, work: Path) -> CrashFigures:
    """Run the scenario in ``work`` (data dir and daemon logs land there)."""
    started = time.monotonic()
    sink, daemons = Sink(), Daemons(work)
    await sink.start()
    try:
        async with aiohttp.ClientSession() as http:
            run = Run(cfg, daemons, sink)
            await daemons.start(http)
            run.up.set()
            tag = "crash-" + secrets.token_hex(4)
            clients = [asyncio.create_task(run.client(http, tag)) for _ in range(cfg.concurrency)]
            killer = asyncio.create_task(run.killer(http))
            try:
                await asyncio.gather(killer, *clients)
                await run.drain(http)
            except OverBudget as exc:
                run.fig.over_budget = str(exc)
            finally:
                for t in (killer, *clients):
                    t.cancel()
                await asyncio.gather(killer, *clients, return_exceptions=True)
            if daemons.current is not None:
                run.fig.final_exit_code = await daemons.terminate()
    finally:
        daemons.reap()
        await sink.stop()
    fig = run.figures()
    fig.elapsed_seconds = round(time.monotonic() - started, 1)
    return fig


def report(f: CrashFigures, cfg: CrashConfig) -> str:
    restarts = sorted(f.restart_seconds)
    median = restarts[len(restarts) // 2] if restarts else float("nan")
    lines = [
        f"{f.kills} SIGKILLs in {f.sends} sends ({cfg.concurrency} clients), "
        f"{f.elapsed_seconds:.1f} s",
        f"  accepted    {f.accepted}",
        f"  delivered   {f.delivered}",
        f"  lost        {f.lost}",
        f"  duplicates  {f.duplicates} ({f.duplicate_pct:.2f} % of accepted)",
        f"  unexpected  {f.unexpected}",
        f"  replays     {f.replays} (2xx = 200: a retried request whose first answer was lost)",
        f"  retried     {f.retried_requests} requests failed in transport and were retried",
        f"  non-2xx     {f.non_2xx or 'none'}",
        f"  restart     median {median:.2f} s (SIGKILL -> /readyz 200), max "
        f"{restarts[-1] if restarts else float('nan'):.2f} s",
        f"  last daemon exit code on SIGTERM: {f.final_exit_code}",
    ]
    if f.over_budget:
        lines.append(f"  STOPPED: {f.over_budget}")
    if f.lost_ids:
        lines.append(f"  LOST: {', '.join(f.lost_ids[:20])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sends", type=int, default=10_000)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--keep", action="store_true", help="keep the data dir and daemon logs")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    a = ap.parse_args(argv)
    cfg = CrashConfig(a.sends, a.kills, a.concurrency, a.max_seconds)
    work = Path(tempfile.mkdtemp(prefix="alert-agent-crash-"))
    try:
        fig = asyncio.run(run_crash(cfg, work))
    finally:
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(fig, cfg))
    if a.out:
        a.out.write_text(json.dumps(asdict(fig) | {"duplicate_pct": fig.duplicate_pct},
                                    indent=2))
    return 1 if fig.lost or fig.unexpected or fig.accepted != fig.sends or fig.over_budget \
        else 0


if __name__ == "__main__":
    sys.exit(main())
