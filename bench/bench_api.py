#!/usr/bin/env python3
"""Throughput, latency and memory of alert-agent's notification API (issue 3).

    .venv/bin/python bench/bench_api.py [--only accept,deliver,latency,rss] [--quick]
                                        [--floors] [--out results.json]

Phases (see bench/README.md for the method and what each figure means):

  accept   wrk -t1 -c32 POSTing one fixed notification to /v1/notifications/send:
           (a) scheduled 1 h ahead (pure accept), (b) in-app due now (accept while delivering)
  deliver  20,000 webhook notifications via send-batch to a local sink:
           (live) due now, enqueued while the dispatcher runs; (burst) all due at one instant
  latency  open loop, 500 webhook notifications/s for 20 s: 201 -> sink, created -> delivered
  rss      VmRSS before/after 100,000 in-app notifications accepted and delivered
  floors   (--floors) the shared group-commit and txn-per-POST floors, for the ratios

The daemon runs pinned to --server-cpu (0), every load generator and the sink to --client-cpu (1);
each run gets a fresh daemon and database. Every process started here is stopped by PID.
Stdlib + aiohttp only (uvloop in the sink when it is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = Path("/work/shared/bench")
LUA = HERE / "send.lua"
CLK = os.sysconf("SC_CLK_TCK")
ALNUM = string.ascii_letters + string.digits
PHASES = ("accept", "deliver", "latency", "rss")
FLOOR_CONFIGS = ("c-ii group orjson / uvloop", "c-i txn/POST orjson")
MESSAGE = "Disk usage above 90% on db-1.example.internal (bench)"
TARGET_DELIVER = 2000.0  # notifications/s
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 200.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- small helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def proc_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) if m else 0


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process and its threads, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK
    except OSError:
        return float("nan")


def quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolated quantile of ``values`` (0 <= q <= 1); None when empty."""
    if not values:
        return None
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values: list[Any]) -> Any:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def span_rates(times: list[float], start: float | None = None) -> dict[str, float | None]:
    """Rates over sorted event times: N / (last - start or first), and 10 %..90 % steady rate."""
    t = sorted(times)
    n = len(t)
    if n < 2:
        return {"n": n, "span_s": None, "rate": None, "steady_rate": None}
    first = t[0] if start is None else start
    span = t[-1] - first
    i10, i90 = int(0.1 * (n - 1)), int(0.9 * (n - 1))
    steady_span = t[i90] - t[i10]
    return {
        "n": n,
        "span_s": span,
        "rate": n / span if span > 0 else None,
        "steady_rate": (i90 - i10) / steady_span if steady_span > 0 else None,
    }


def iso_in(seconds: float) -> str:
    dt = datetime.now(UTC) + timedelta(seconds=seconds)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_at(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def terminate(proc: subprocess.Popen[Any], timeout: float) -> float:
    """SIGTERM, wait ``timeout``, then SIGKILL; returns the seconds it took."""
    t0 = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"  PID {proc.pid} ignored SIGTERM for {timeout:.0f} s: SIGKILL")
            proc.kill()
            proc.wait(timeout=10)
    return time.monotonic() - t0


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name) and line[len(name): len(name) + 1] in ("{", " "):
            if all(w in line for w in want):
                total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_quantiles(text: str, name: str, **labels: str) -> dict[str, Any]:
    """Upper bucket bounds holding p50 and p99 of a Prometheus histogram (coarse)."""
    buckets: list[tuple[float, float]] = []
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(name + "_bucket{") and all(w in line for w in want):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets.append((float(le.group(1)), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    count = buckets[-1][1] if buckets else 0.0
    out: dict[str, Any] = {"count": count}
    for q in (0.5, 0.99):
        out[f"p{int(q * 100)}_le_ms"] = next(
            (le * 1000 for le, c in buckets if count and c >= q * count), None
        )
    return out


# --- the processes ---------------------------------------------------------------------------


class Daemon:
    """One ``alert-agent run`` pinned to a CPU, with a fresh data dir removed on exit."""

    def __init__(self, a: argparse.Namespace, extra_env: dict[str, str] | None = None) -> None:
        self.a = a
        self.extra_env = extra_env or {}
        self.dir = Path(tempfile.mkdtemp(prefix="alert-agent-bench-"))
        self.db = self.dir / "data" / "alert-agent.db"
        self.port = free_port()
        self.key = "sk_live_" + "".join(secrets.choice(ALNUM) for _ in range(32))
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_s: float | None = None
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Daemon:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        env = dict(
            os.environ,
            ALERT_AGENT_HOST="127.0.0.1",
            ALERT_AGENT_PORT=str(self.port),
            ALERT_AGENT_DATA_DIR=str(self.dir / "data"),
            ALERT_AGENT_API_KEYS=self.key,
            ALERT_AGENT_API__RATE_LIMIT__ENABLED="false",
            ALERT_AGENT_LOG__LEVEL="warning",
            ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET="whsec_x",
            ALERT_AGENT_CHANNELS__WEBHOOK__ALLOW_LOOPBACK="true",  # the sinks are on 127.0.0.1
        )
        env.update(self.extra_env)
        self._log = open(self.dir / "daemon.log", "ab")
        cmd = ["taskset", "-c", self.a.server_cpu, str(self.a.agent), "run"]
        # taskset execs the daemon: the PID is the daemon's own.
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alert-agent exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            with contextlib.suppress(OSError):
                if http(self.url + "/readyz", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("alert-agent not ready in 30 s:\n" + self.log_tail())

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            lines = (self.dir / "daemon.log").read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        return ""

    def rss_mb(self) -> float:
        return proc_kb(self.pid, "VmRSS") / 1024

    def hwm_mb(self) -> float:
        return proc_kb(self.pid, "VmHWM") / 1024

    def metrics(self) -> str:
        status, body = http(self.url + "/metrics", timeout=10)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode()

    def stop(self) -> None:
        if self.proc is not None and self.stop_s is None:
            self.stop_s = terminate(self.proc, 40)
            errors = [ln for ln in self.log_tail(200).splitlines() if '"error"' in ln]
            if errors:
                log(f"  daemon logged {len(errors)} error line(s), last: {errors[-1][:300]}")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the database, opened read-only, once the daemon is stopped."""
        self.stop()
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._log is not None:
                self._log.close()
            if self.a.keep:
                log(f"  kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)


class Sink:
    """The webhook sink (``bench_api.py --sink PORT``), a separate process pinned to a CPU."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sink:
        cmd = ["taskset", "-c", self.a.client_cpu, sys.executable, str(Path(__file__).resolve()),
               "--sink", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sink exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                if http(self.url + "/stats", timeout=1)[0] == 200:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("sink not ready in 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            terminate(self.proc, 10)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(http(self.url + "/stats", timeout=10)[1]))

    def dump(self) -> dict[str, float]:
        """notification id -> first arrival (unix seconds)."""
        return dict(json.loads(http(self.url + "/dump", timeout=30)[1]))

    def wait_for(self, n: int, deadline: float, stall_s: float = 20.0) -> dict[str, Any]:
        """Poll until ``n`` distinct notifications arrived, progress stalls, or the deadline."""
        last, last_change = -1, time.monotonic()
        while True:
            st = self.stats()
            now = time.monotonic()
            if st["distinct"] != last:
                last, last_change = st["distinct"], now
            if st["distinct"] >= n or now > deadline or now - last_change > stall_s:
                st["complete"] = st["distinct"] >= n
                return st
            time.sleep(0.2)


def sink_main(port: int) -> None:
    """The sink itself: POST /hook records (id, arrival); GET /stats, GET /dump, POST /reset."""
    from aiohttp import web

    ids: list[str] = []
    times: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        now = time.time()
        nid = request.headers.get("Idempotency-Key")
        if nid is None:
            try:
                nid = str(json.loads(raw).get("id"))
            except (ValueError, AttributeError):
                nid = "?"
        ids.append(nid)
        times.append(now)
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"posts": len(ids), "distinct": len(set(ids)),
                                  "first": times[0] if times else None,
                                  "last": times[-1] if times else None})

    async def dump(request: web.Request) -> web.Response:
        first: dict[str, float] = {}
        for nid, t in zip(ids, times, strict=True):
            first.setdefault(nid, t)
        return web.json_response(first)

    async def reset(request: web.Request) -> web.Response:
        ids.clear()
        times.clear()
        return web.json_response({"reset": True})

    async def main() -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/hook", hook)
        app.router.add_get("/stats", stats)
        app.router.add_get("/dump", dump)
        app.router.add_post("/reset", reset)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        stop = asyncio.Event()
        for s in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(s, stop.set)
        await stop.wait()
        await runner.cleanup()

    try:
        import uvloop  # optional: the agent's venv has it
    except ImportError:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())


# --- client side -----------------------------------------------------------------------------


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def notification(channel: str, to: str, schedule_at: str | None = None) -> dict[str, Any]:
    body = {"channel": channel, "to": to, "message": MESSAGE, "severity": "warning"}
    if schedule_at is not None:
        body["schedule_at"] = schedule_at
    return body


async def send_batches(d: Daemon, item: dict[str, Any], total: int, per_request: int = 1000,
                       concurrency: int = 1, timeout_s: float = 300) -> dict[str, Any]:
    """Queue ``total`` copies of ``item`` through /v1/notifications/send-batch."""
    url = d.url + "/v1/notifications/send-batch"
    sizes = [min(per_request, total - i) for i in range(0, total, per_request)]
    out: dict[str, Any] = {"accepted": 0, "errors": 0, "first_error": None}
    deadline = time.monotonic() + timeout_s
    timeout = aiohttp.ClientTimeout(total=120)

    async def worker(session: aiohttp.ClientSession) -> None:
        while sizes and time.monotonic() < deadline:
            n = sizes.pop()
            body = json.dumps({"notifications": [item] * n}).encode()
            async with session.post(url, data=body) as r:
                data = await r.read()
                if r.status == 200:
                    out["accepted"] += int(json.loads(data)["accepted"])
                else:
                    out["errors"] += n
                    out["first_error"] = out["first_error"] or f"{r.status} {data[:300]!r}"

    t0 = time.time()
    async with aiohttp.ClientSession(headers=headers(d.key), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    out.update(t0=t0, t1=time.time(), seconds=time.time() - t0)
    out["rate"] = out["accepted"] / out["seconds"] if out["seconds"] > 0 else None
    if out["first_error"]:
        log(f"  send-batch errors: {out['errors']}, first: {out['first_error']}")
    return out


def wait_outcomes(d: Daemon, channel: str, n: int, deadline: float,
                  stall_s: float = 20.0) -> dict[str, Any]:
    """Poll /metrics until ``n`` notifications of ``channel`` are delivered or failed."""
    last, last_change = -1.0, time.monotonic()
    while True:
        text = d.metrics()
        delivered = metric(text, "alert_agent_notifications_total", channel=channel,
                           outcome="delivered")
        failed = metric(text, "alert_agent_notifications_total", channel=channel,
                        outcome="failed")
        now = time.monotonic()
        if delivered + failed != last:
            last, last_change = delivered + failed, now
        if delivered + failed >= n or now > deadline or now - last_change > stall_s:
            return {"delivered": int(delivered), "failed": int(failed), "t": time.time(),
                    "complete": delivered >= n, "metrics": text}
        time.sleep(0.25)


# --- accept ----------------------------------------------------------------------------------


def wrk(a: argparse.Namespace, d: Daemon, body: Path, seconds: float) -> dict[str, Any]:
    cmd = ["taskset", "-c", a.client_cpu, "wrk", "-t1", f"-c{a.connections}", f"-d{seconds:g}s",
           "--latency", "--timeout", "5s", "-s", str(LUA), d.url + "/v1/notifications/send"]
    env = dict(os.environ, BODY=str(body), AUTH=d.key)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills wrk itself
        raise RuntimeError("wrk did not finish in time") from exc
    m = re.search(r"^WRKJSON (\{.*\})$", p.stdout, re.M)
    if not m:
        raise RuntimeError(f"no WRKJSON line in wrk output:\n{p.stdout}\n{p.stderr}")
    res: dict[str, Any] = json.loads(m.group(1))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["wrk_cpu"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / res[
        "duration_s"]
    res["socket_errors"] = sum(res[k] for k in ("errors_connect", "errors_read", "errors_write",
                                                "errors_timeout"))
    return res


ACCEPT_VARIANTS = {
    "a": "scheduled +1 h (pure accept)",
    "b": "in-app due now (accept + delivery)",
}


def accept_run(a: argparse.Namespace, variant: str, body: Path) -> dict[str, Any]:
    with Daemon(a) as d:
        warm = wrk(a, d, body, a.warmup)
        c0 = proc_cpu_s(d.pid)
        r = wrk(a, d, body, a.duration)
        r["server_cpu"] = (proc_cpu_s(d.pid) - c0) / r["duration_s"]
        r["rss_mb"] = d.rss_mb()
        text = d.metrics()
        commits = metric(text, "alert_agent_store_commits_total")
        ops = metric(text, "alert_agent_store_commit_operations_sum")
        r["ops_per_commit"] = ops / commits if commits else None
        d.stop()
        (rows, delivered), = d.query(
            "SELECT count(*), coalesce(sum(status = 'delivered'), 0) FROM notifications")
        r["stop_s"] = d.stop_s
    acked = warm["ok_2xx"] + r["ok_2xx"]
    r.update(warmup_ok_2xx=warm["ok_2xx"], rows_in_db=rows, delivered_in_db=delivered,
             acked_total=acked, db_ok=rows >= acked, variant=variant)
    log(f"  accept {variant}: {r['rps']:,.0f} req/s  p50 {r['p50_ms']:.2f} ms  "
        f"p99 {r['p99_ms']:.2f} ms  non-2xx {r['non_2xx']}  sock-err {r['socket_errors']}  "
        f"cpu {r['server_cpu']:.2f}  ops/commit {fmt(r['ops_per_commit'], 1)}  "
        f"rows {rows} >= 2xx {acked}: {r['db_ok']}  delivered {delivered}")
    return r


def accept_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    bodies = {
        "a": notification("in-app", "bench-user", schedule_at=iso_in(3600)),
        "b": notification("in-app", "bench-user"),
    }
    out: dict[str, Any] = {}
    for variant, item in bodies.items():
        path = work / f"accept-{variant}.json"
        path.write_text(json.dumps(item))
        runs, errors = collect_runs(a, f"accept ({variant})", a.runs,
                                    lambda v=variant, p=path: accept_run(a, v, p))
        if runs:
            out[variant] = {"summary": summarize_accept(runs), "runs": runs, "errors": errors}
        elif errors:
            raise RuntimeError(f"accept ({variant}): every run failed: {errors[0]}")
    return out


def collect_runs(a: argparse.Namespace, label: str, count: int,
                 run: Callable[[], dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to ``count`` runs; a failed run is logged and skipped, the others are kept."""
    runs, errors = [], []
    for i in range(count):
        if past_deadline(a):
            break
        log(f"{label} run {i + 1}/{count}")
        try:
            runs.append(run())
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            log(f"  {label} run {i + 1} FAILED: {errors[-1]}")
    return runs, errors


def summarize_accept(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rps = [r["rps"] for r in runs]
    return {
        "runs": len(runs),
        "rps": median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "server_cpu": median([r["server_cpu"] for r in runs]),
        "ops_per_commit": median([r["ops_per_commit"] for r in runs]),
        "rss_mb": median([r["rss_mb"] for r in runs]),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "db_ok": all(r["db_ok"] for r in runs),
        "delivered_in_db": median([r["delivered_in_db"] for r in runs]),
        "rows_in_db": median([r["rows_in_db"] for r in runs]),
    }


# --- deliver ---------------------------------------------------------------------------------


DELIVER_VARIANTS = {
    "live": "due now, enqueued while the dispatcher runs",
    "burst": "all queued first, due at one instant",
}


def deliver_run(a: argparse.Namespace, variant: str) -> dict[str, Any]:
    n = a.deliver_n
    env = {"ALERT_AGENT_API__SCHEDULE_MIN_AHEAD_SECONDS": "0"} if variant == "burst" else {}
    with Sink(a) as sink, Daemon(a, env) as d:
        hook = sink.url + "/hook"
        due_at = time.time() + a.burst_delay if variant == "burst" else None
        item = notification("webhook", hook, iso_at(due_at) if due_at else None)
        t0, c0, s0 = time.time(), proc_cpu_s(d.pid), proc_cpu_s(sink.pid)
        enq = asyncio.run(send_batches(d, item, n, timeout_s=a.deliver_timeout))
        if due_at is not None and time.time() < due_at:  # CPU use: count from the due time
            time.sleep(max(0.0, due_at - time.time() - 0.05))
            t0, c0, s0 = time.time(), proc_cpu_s(d.pid), proc_cpu_s(sink.pid)
        st = sink.wait_for(enq["accepted"], time.monotonic() + a.deliver_timeout)
        busy = (st["last"] or time.time()) - t0
        cpu = {"server_cpu": (proc_cpu_s(d.pid) - c0) / max(1e-9, busy),
               "sink_cpu": (proc_cpu_s(sink.pid) - s0) / max(1e-9, busy)}
        arrivals = sorted(sink.dump().values())
        outcome = wait_outcomes(d, "webhook", enq["accepted"], time.monotonic() + 30)
        rows = d.query("SELECT created_at, due_at, delivered_at FROM notifications "
                       "WHERE status = 'delivered'")
        by_status = dict(d.query("SELECT status, count(*) FROM notifications GROUP BY status"))
    return deliver_figures(variant, n, enq, st, arrivals, rows, by_status, outcome, due_at, cpu)


def deliver_figures(variant: str, n: int, enq: dict[str, Any], st: dict[str, Any],
                    arrivals: list[float], rows: list[tuple[Any, ...]],
                    by_status: dict[str, int], outcome: dict[str, Any], due_at: float | None,
                    cpu: dict[str, float]) -> dict[str, Any]:
    delivered_at = [r[2] for r in rows]
    start = min(r[0] for r in rows) if rows else None  # first created_at
    sink = span_rates(arrivals)
    db = span_rates(delivered_at, start)
    db_from_due = span_rates(delivered_at, due_at) if due_at else None
    r = {
        "variant": variant, "n": n, "enqueue_rate": enq["rate"], "enqueue_s": enq["seconds"],
        "accepted": enq["accepted"], "sink_posts": st["posts"], "sink_distinct": st["distinct"],
        "complete": st["complete"], "sink_rate": sink["rate"], "sink_steady_rate":
        sink["steady_rate"], "sink_span_s": sink["span_s"], "db_rate_from_created": db["rate"],
        "db_steady_rate": db["steady_rate"], "db_span_s": db["span_s"], "status": by_status,
        "metrics_delivered": outcome["delivered"], "metrics_failed": outcome["failed"], **cpu,
    }
    if db_from_due:
        r["db_rate_from_due"] = db_from_due["rate"]
        r["enqueue_overlapped"] = enq["t1"] > (due_at or 0)
        if r["enqueue_overlapped"]:
            log("  warning: enqueue ended after the due time; raise --burst-delay")
    log(f"  deliver {variant}: enqueue {enq['accepted']} in {enq['seconds']:.2f} s "
        f"({fmt(enq['rate'])}/s); sink {st['distinct']}/{n} distinct ({st['posts']} POSTs) "
        f"first->last {fmt(sink['rate'])}/s, steady {fmt(sink['steady_rate'])}/s; db "
        f"created->last {fmt(db['rate'])}/s, steady {fmt(db['steady_rate'])}/s; "
        f"status {by_status}")
    return r


def deliver_phase(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in DELIVER_VARIANTS:
        runs, errors = collect_runs(a, f"deliver ({variant}, {a.deliver_n} webhooks)",
                                    a.deliver_runs, lambda v=variant: deliver_run(a, v))
        if not runs and errors:
            raise RuntimeError(f"deliver ({variant}): every run failed: {errors[0]}")
        if runs:
            keys = ("sink_rate", "sink_steady_rate", "db_rate_from_created", "db_steady_rate",
                    "db_rate_from_due", "enqueue_rate", "server_cpu", "sink_cpu")
            summary = {k: median([r.get(k) for r in runs]) for k in keys}
            summary.update(runs=len(runs), complete=all(r["complete"] for r in runs),
                           duplicates=sum(r["sink_posts"] - r["sink_distinct"] for r in runs))
            out[variant] = {"summary": summary, "runs": runs, "errors": errors}
    return out


# --- latency ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    sched: float  # wall time the request was due to be sent (open loop)
    sent: float = 0.0
    answered: float = 0.0
    status: int = 0
    nid: str | None = None
    warmup: bool = False


async def open_loop(d: Daemon, item: dict[str, Any], rate: float, warmup: float,
                    duration: float) -> list[Sample]:
    """Send at fixed intervals, never waiting for answers to schedule the next request."""
    url = d.url + "/v1/notifications/send"
    body = json.dumps(item).encode()
    loop = asyncio.get_running_loop()
    n = int(rate * (warmup + duration))
    samples: list[Sample] = []
    tasks: list[asyncio.Task[None]] = []

    async def one(session: aiohttp.ClientSession, s: Sample) -> None:
        s.sent = time.time()
        try:
            async with session.post(url, data=body) as r:
                data = await r.read()
                s.answered, s.status = time.time(), r.status
                if r.status == 201:
                    s.nid = json.loads(data)["id"]
        except (aiohttp.ClientError, TimeoutError) as exc:
            s.answered, s.status = time.time(), -1
            log(f"  request failed: {type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers=headers(d.key)) as session:
        t0, w0 = loop.time() + 0.05, time.time() + 0.05
        for i in range(n):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            s = Sample(sched=w0 + i / rate, warmup=i < rate * warmup)
            samples.append(s)
            tasks.append(asyncio.create_task(one(session, s)))
        _, pending = await asyncio.wait(tasks, timeout=15)
        for t in pending:
            t.cancel()
    return samples


def latency_phase(a: argparse.Namespace) -> dict[str, Any]:
    log(f"latency: open loop {a.rate:g}/s for {a.latency_duration:g} s "
        f"(+{a.warmup:g} s warm-up), webhook to the sink")
    with Sink(a) as sink, Daemon(a) as d:
        item = notification("webhook", sink.url + "/hook")
        samples = asyncio.run(open_loop(d, item, a.rate, a.warmup, a.latency_duration))
        ok = [s for s in samples if s.status == 201]
        st = sink.wait_for(len(ok), time.monotonic() + 60)
        arrivals = sink.dump()
        hist = histogram_quantiles(d.metrics(), "alert_agent_delivery_latency_seconds",
                                   channel="webhook")
        rows = dict((r[0], (r[1], r[2])) for r in d.query(
            "SELECT id, created_at, delivered_at FROM notifications WHERE status = 'delivered'"))
    return latency_figures(a, samples, st, arrivals, rows, hist)


def latency_figures(a: argparse.Namespace, samples: list[Sample], st: dict[str, Any],
                    arrivals: dict[str, float], rows: dict[str, tuple[float, float]],
                    hist: dict[str, Any]) -> dict[str, Any]:
    measured = [s for s in samples if not s.warmup]
    ok = [s for s in measured if s.status == 201]
    e2e = [(arrivals[s.nid] - s.answered) * 1000 for s in ok if s.nid in arrivals]
    sched_e2e = [(arrivals[s.nid] - s.sched) * 1000 for s in ok if s.nid in arrivals]
    db = [(rows[s.nid][1] - rows[s.nid][0]) * 1000 for s in ok if s.nid in rows]
    req = [(s.answered - s.sched) * 1000 for s in ok]
    late = [(s.sent - s.sched) * 1000 for s in measured]
    span = (measured[-1].sched - measured[0].sched) if len(measured) > 1 else 0
    r = {
        "rate_target": a.rate, "sent": len(measured), "ok_201": len(ok),
        "non_201": len(measured) - len(ok), "offered_rate": (len(measured) - 1) / span
        if span else None, "delivered_to_sink": len(e2e), "missing": len(ok) - len(e2e),
        "sink_complete": st["complete"], "sender_late_p99_ms": quantile(late, 0.99),
        "sender_late_max_ms": max(late) if late else None, "metrics_hist": hist,
    }
    for name, vals in (("e2e", e2e), ("sched_e2e", sched_e2e), ("db", db), ("request", req)):
        for q in (0.5, 0.9, 0.99):
            r[f"{name}_p{int(q * 100)}_ms"] = quantile(vals, q)
        r[f"{name}_max_ms"] = max(vals) if vals else None
        r[f"{name}_min_ms"] = min(vals) if vals else None
    log(f"  latency: {len(ok)}/{len(measured)} accepted, {len(e2e)} at sink; 201->sink p50 "
        f"{fmt(r['e2e_p50_ms'], 1)} p99 {fmt(r['e2e_p99_ms'], 1)} ms; created->delivered p50 "
        f"{fmt(r['db_p50_ms'], 1)} p99 {fmt(r['db_p99_ms'], 1)} ms; request p99 "
        f"{fmt(r['request_p99_ms'], 1)} ms; sender late p99 {fmt(r['sender_late_p99_ms'], 1)} ms")
    return r


# --- rss -------------------------------------------------------------------------------------


def rss_phase(a: argparse.Namespace) -> dict[str, Any]:
    n = a.rss_n
    log(f"rss: {n} in-app notifications in batches of 1,000, accepted and delivered")
    with Daemon(a) as d:
        time.sleep(1.0)
        before, hwm_before = d.rss_mb(), d.hwm_mb()
        item = notification("in-app", "bench-user")
        enq = asyncio.run(send_batches(d, item, n, concurrency=2, timeout_s=a.rss_timeout))
        rss_accepted = d.rss_mb()
        out = wait_outcomes(d, "in-app", enq["accepted"],
                            time.monotonic() + a.rss_timeout, stall_s=30)
        after, hwm = d.rss_mb(), d.hwm_mb()
        (rows, delivered, inbox, first, last), = d.query(
            "SELECT count(*), coalesce(sum(status = 'delivered'), 0), "
            "(SELECT count(*) FROM inbox), min(created_at), max(delivered_at) "
            "FROM notifications")
    total_s = out["t"] - enq["t0"]
    db_s = (last - first) if first is not None and last is not None else None
    r = {
        "n": n, "accepted": enq["accepted"], "delivered": out["delivered"],
        "failed": out["failed"], "complete": out["complete"], "rss_before_mb": before,
        "hwm_before_mb": hwm_before, "rss_after_accept_mb": rss_accepted,
        "rss_after_mb": after, "rss_peak_mb": hwm, "accept_rate": enq["rate"],
        "accept_s": enq["seconds"], "total_s": total_s,
        "rows_per_s": out["delivered"] / total_s if total_s > 0 else None,
        "db_s": db_s, "db_rows_per_s": delivered / db_s if db_s else None,
        "rows_in_db": rows, "delivered_in_db": delivered, "inbox_rows": inbox,
    }
    log(f"  rss: {before:.0f} MB -> {after:.0f} MB (peak {hwm:.0f}); accepted "
        f"{enq['accepted']} at {fmt(enq['rate'])}/s; delivered {out['delivered']} in "
        f"{total_s:.1f} s ({fmt(r['rows_per_s'])}/s end to end)")
    return r


# --- floors ----------------------------------------------------------------------------------


def floors_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    py = Path(a.floor_python)
    if not py.exists():
        log(f"floors: {py} missing; run `bash {SHARED}/setup.sh` once (root), then rerun")
        return {"error": f"{py} missing"}
    out = work / "floors.json"
    cmd = [str(py), str(SHARED / "bench_floors.py"), "--only", *FLOOR_CONFIGS,
           "--runs", str(a.runs), "--duration", str(int(a.duration)),
           "--server-cpu", a.server_cpu, "--client-cpu", a.client_cpu, "--out", str(out)]
    log("floors: " + " ".join(f"'{c}'" if " " in c else c for c in cmd))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=600)
    except subprocess.TimeoutExpired:
        return {"error": "bench_floors.py timed out"}
    for line in p.stdout.splitlines():
        if " run " in line:
            log("  " + line)
    if p.returncode != 0 or not out.exists():
        log(p.stdout[-2000:])
        return {"error": f"bench_floors.py exited with {p.returncode}"}
    return {"rows": json.loads(out.read_text())["rows"]}


# --- report ----------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}"
    return str(v)


def short(err: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report_accept(res: dict[str, Any]) -> str:
    rows = []
    for variant, v in res.items():
        s = v["summary"]
        rows.append([f"({variant}) {ACCEPT_VARIANTS[variant]}", str(s["runs"]),
                     f"{fmt(s['rps'])} ({fmt(s['rps_min'])}-{fmt(s['rps_max'])})",
                     fmt(s["p50_ms"], 2), fmt(s["p99_ms"], 2), str(s["non_2xx"]),
                     str(s["socket_errors"]), fmt(s["server_cpu"], 2),
                     fmt(s["ops_per_commit"], 1), fmt(s["rss_mb"]),
                     fmt(s["db_ok"]), fmt(s["delivered_in_db"])])
    head = ["variant", "runs", "req/s median (min-max)", "p50 ms", "p99 ms", "non-2xx",
            "socket err", "server CPU", "ops/commit", "RSS MB", "rows >= 2xx", "delivered rows"]
    return ("accept: /v1/notifications/send, wrk -t1 -c32, one notification per request\n\n"
            + table(head, rows))


def report_deliver(res: dict[str, Any], n: int) -> str:
    rows = []
    for variant, v in res.items():
        s = v["summary"]
        rows.append([f"{variant}: {DELIVER_VARIANTS[variant]}", str(s["runs"]),
                     fmt(s["sink_rate"]), fmt(s["sink_steady_rate"]),
                     fmt(s["db_rate_from_created"]), fmt(s["db_steady_rate"]),
                     fmt(s["db_rate_from_due"]), fmt(s["enqueue_rate"]),
                     fmt(s["server_cpu"], 2), fmt(s["sink_cpu"], 2), fmt(s["complete"]),
                     str(s["duplicates"])])
    return (f"deliver: {n:,} webhooks to a local sink (send-batch x1,000), notifications/s, "
            "median of runs\n\n" + table(
                ["variant", "runs", "sink first->last", "sink 10-90 %", "db created->last",
                 "db 10-90 %", "db due->last", "enqueue/s", "server CPU", "sink CPU",
                 "all arrived", "dup POSTs"], rows))


def report_latency(r: dict[str, Any]) -> str:
    rows = []
    for name, what in (("e2e", "201 at client -> sink receipt"),
                       ("db", "created_at -> delivered_at (SQLite)"),
                       ("sched_e2e", "scheduled send -> sink receipt"),
                       ("request", "scheduled send -> 201 (open loop)")):
        rows.append([what] + [fmt(r[f"{name}_{k}_ms"], 1) for k in ("p50", "p90", "p99", "max")])
    h = r["metrics_hist"]
    rows.append(["daemon histogram (due -> delivered, bucket bound, incl. warm-up)",
                 fmt(h["p50_le_ms"], 1), "-", fmt(h["p99_le_ms"], 1), "-"])
    head = (f"latency: open loop {fmt(r['rate_target'])}/s (offered {fmt(r['offered_rate'])}/s), "
            f"{r['sent']} sent, {r['ok_201']} 201, {r['non_201']} other, "
            f"{r['delivered_to_sink']} at the sink, {r['missing']} missing; sender late p99 "
            f"{fmt(r['sender_late_p99_ms'], 1)} ms\n\n")
    return head + table(["ms", "p50", "p90", "p99", "max"], rows)


def report_rss(r: dict[str, Any]) -> str:
    rows = [[fmt(r["n"]), fmt(r["rss_before_mb"]), fmt(r["rss_after_accept_mb"]),
             fmt(r["rss_after_mb"]), fmt(r["rss_peak_mb"]), fmt(r["accept_rate"]),
             fmt(r["rows_per_s"]), fmt(r["db_rows_per_s"]), f"{r['delivered']}/{r['accepted']}",
             fmt(r["total_s"], 1)]]
    return "rss: in-app notifications accepted (send-batch x1,000) and delivered\n\n" + table(
        ["notifications", "RSS before MB", "after accept MB", "after delivery MB", "peak MB",
         "accepted/s", "delivered/s (client)", "delivered/s (db)", "delivered", "seconds"], rows)


def report_floors(res: dict[str, Any], accept: dict[str, Any] | None) -> str:
    if "rows" not in res:
        return f"floors: {res.get('error')}"
    rows = [[r["name"], f"{fmt(r['rps'])} ({fmt(r['rps_min'])}-{fmt(r['rps_max'])})",
             fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), fmt(r["server_cpu"], 2),
             str(r["errors"]), fmt(r["db_ok"])] for r in res["rows"]]
    text = ("floors (shared bench_floors.py, same wrk settings; 10 alerts = 10 rows per POST, "
            "6.2 KB body)\n\n" + table(["floor", "req/s median (min-max)", "p50 ms", "p99 ms",
                                         "server CPU", "errors", "db ok"], rows))
    group = next((r for r in res["rows"] if r["name"].startswith("c-ii group")), None)
    if accept and group:
        for variant, v in accept.items():
            ratio = v["summary"]["rps"] / group["rps"]
            text += (f"\nratio agent accept ({variant}) / group-commit floor: "
                     f"{v['summary']['rps']:,.0f} / {group['rps']:,.0f} = {ratio:.2f}")
    return text


def report_targets(res: dict[str, Any]) -> str:
    rows = []
    if "deliver" in res:
        for variant, v in res["deliver"].items():
            got = v["summary"]["sink_steady_rate"]
            rows.append([f"deliver ({variant}) steady, /s", fmt(got), f">= {TARGET_DELIVER:,.0f}",
                         fmt(got is not None and got >= TARGET_DELIVER)])
    if "latency" in res:
        for key, what in (("e2e_p99_ms", "201 -> sink"), ("db_p99_ms", "created -> delivered")):
            got = res["latency"][key]
            rows.append([f"latency p99 {what}, ms", fmt(got, 1), f"< {TARGET_P99_MS:g}",
                         fmt(got is not None and got < TARGET_P99_MS)])
    if "rss" in res:
        got = res["rss"]["rss_after_mb"]
        rows.append(["RSS after rss phase, MB", fmt(got), f"< {TARGET_RSS_MB:g}",
                     fmt(got < TARGET_RSS_MB)])
    return "targets\n\n" + table(["figure", "got", "target", "met"], rows) if rows else ""


def report(res: dict[str, Any], a: argparse.Namespace) -> str:
    parts = []
    if "accept" in res:
        parts.append(report_accept(res["accept"]))
    if "deliver" in res:
        parts.append(report_deliver(res["deliver"], a.deliver_n))
    if "latency" in res:
        parts.append(report_latency(res["latency"]))
    if "rss" in res:
        parts.append(report_rss(res["rss"]))
    if "floors" in res:
        parts.append(report_floors(res["floors"], res.get("accept")))
    parts.append(report_targets(res))
    return "\n\n".join(p for p in parts if p)


# --- main ------------------------------------------------------------------------------------


def past_deadline(a: argparse.Namespace) -> bool:
    if time.monotonic() > a.deadline:
        log(f"suite deadline ({a.max_minutes:g} min) reached: skipping the rest")
        return True
    return False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = common_parser(__doc__, PHASES, "accept,deliver,latency,rss (and floors)",
                       "1 run of 5 s per accept variant, 1 deliver run, short latency, 20k rss")
    ap.add_argument("--floors", action="store_true",
                    help="also run the shared floors (bench_floors.py) and print the ratios")
    ap.add_argument("--runs", type=int, help="accept runs per variant (3; --quick 1)")
    ap.add_argument("--deliver-n", type=int, default=20_000)
    ap.add_argument("--deliver-runs", type=int, help="deliver runs per variant (3; --quick 1)")
    ap.add_argument("--deliver-timeout", type=float, default=120.0)
    ap.add_argument("--burst-delay", type=float, default=8.0,
                    help="burst variant: seconds from the first send-batch to due time")
    ap.add_argument("--rate", type=float, default=500.0, help="latency: notifications/s")
    ap.add_argument("--latency-duration", type=float, help="latency seconds (20; --quick 5)")
    ap.add_argument("--rss-n", type=int, help="rss notifications (100,000; --quick 20,000)")
    ap.add_argument("--rss-timeout", type=float, default=300.0)
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    quick = a.quick
    a.runs = a.runs or (1 if quick else 3)
    a.duration = a.duration or (5.0 if quick else 10.0)
    a.deliver_runs = a.deliver_runs or (1 if quick else 3)
    a.latency_duration = a.latency_duration or (5.0 if quick else 20.0)
    a.rss_n = a.rss_n or (20_000 if quick else 100_000)
    finish_common(ap, a, (*PHASES, "floors"))
    if a.floors and "floors" not in a.phases:
        a.phases.append("floors")
    return a


def common_parser(doc: str | None, phases: tuple[str, ...], phases_help: str,
                  quick_help: str) -> argparse.ArgumentParser:
    """The options every bench script of this repo shares (CPUs, wrk, limits, output)."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(phases),
                    help=f"comma-separated phases: {phases_help}")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, help="write every figure and run as JSON here")
    ap.add_argument("--agent", type=Path, default=ROOT / ".venv" / "bin" / "alert-agent")
    ap.add_argument("--server-cpu", default="0", help="taskset CPU list for the daemon")
    ap.add_argument("--client-cpu", default="1", help="CPU list for wrk, clients, this process")
    ap.add_argument("--duration", type=float, help="wrk seconds (10; --quick 5)")
    ap.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--floor-python", default="/tmp/benchvenv/bin/python")
    ap.add_argument("--max-minutes", type=float, default=14.0, help="hard cap on the suite")
    ap.add_argument("--keep", action="store_true", help="keep the daemons' data dirs and logs")
    return ap


def finish_common(ap: argparse.ArgumentParser, a: argparse.Namespace,
                  known: tuple[str, ...]) -> None:
    """Parse ``--only`` into ``a.phases`` (rejecting unknown ones) and set the suite deadline."""
    a.phases = [p.strip() for p in a.only.split(",") if p.strip()]
    unknown = set(a.phases) - set(known)
    if unknown:
        ap.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    a.deadline = time.monotonic() + a.max_minutes * 60


def preflight(a: argparse.Namespace) -> None:
    missing = [t for t in ("taskset",) + (("wrk",) if "accept" in a.phases else ())
               if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install -y wrk)")
    if not a.agent.exists():
        sys.exit(f"no alert-agent at {a.agent}")
    if (os.cpu_count() or 1) < 2:
        log("warning: one CPU only; server and client share it")
        a.server_cpu = a.client_cpu = "0"


def cpu_set(spec: str) -> set[int]:
    out: set[int] = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def run_phases(a: argparse.Namespace, work: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the chosen phases in order; a phase that fails is reported and the rest still run."""
    phases = {
        "accept": lambda: accept_phase(a, work),
        "deliver": lambda: deliver_phase(a),
        "latency": lambda: latency_phase(a),
        "rss": lambda: rss_phase(a),
        "floors": lambda: floors_phase(a, work),
    }
    return run_each(a, phases, set(a.phases))


def run_each(a: argparse.Namespace, phases: dict[str, Callable[[], Any]],
             wanted: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the wanted phases in order; a failed phase is reported, the others still run."""
    res: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, run in phases.items():
        if name not in wanted or past_deadline(a):
            continue
        try:
            res[name] = run()
        except Exception as exc:  # keep the other phases' figures
            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {errors[name]}")
    return res, errors


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.sink is not None:
        sink_main(a.sink)
        return 0
    preflight(a)
    # This process is a load generator too (send-batch, the open loop): keep it off the
    # daemon's CPU. Children pinned explicitly with taskset are unaffected.
    os.sched_setaffinity(0, cpu_set(a.client_cpu))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        res, errors = run_phases(a, Path(tmp))
    meta = {"started": iso_at(started), "seconds": time.time() - started, "errors": errors,
            "settings": {k: str(v) for k, v in vars(a).items()}}
    print()
    print(report(res, a))
    for name, err in errors.items():
        print(f"\n{name}: FAILED ({short(err)})")
    for name in ("accept", "deliver"):
        for variant, v in res.get(name, {}).items():
            for err in v.get("errors", []):
                print(f"\n{name} ({variant}): a run FAILED ({short(err)})")
    print(f"\n(total {meta['seconds']:.0f} s)")
    if a.out:
        a.out.write_text(json.dumps({"results": res, "meta": meta}, indent=1, default=str))
        print(f"(results in {a.out})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
