#!/usr/bin/env python3
"""Alert ingest, routing, reload and storm figures of alert-agent (issue 4).

    .venv/bin/python bench/bench_ingest.py [--only ingest,routing,reload,storm] [--quick]
                                           [--out FILE] [--compare]

Phases (see bench/README.md, "Alert ingest benchmarks", for the method and the figures):

  ingest   wrk -t1 -c32 -d10s --latency with the shared post.lua: one Alertmanager webhook v4
           body (payload.py -n 10, 6.2 KB) POSTed to /hooks/alertmanager over and over; median of
           3 fresh daemons; afterwards the database (read-only, daemon stopped) must hold the 10
           alerts with receive_count summing to >= 10 x the 2xx answers
  compare  (--compare, right after ingest) the shared floors (group commit, parse only) and
           Alertmanager 0.25 with the same wrk settings, for the ratios
  routing  in-process: 10,000 routes (equality + regex matcher each, some nested, some
           continue), route_alert over 100,000 alerts; and the same routes regex-only
  reload   load_rules of the 10,000-route directory, and POST /-/reload on a running daemon
  storm    100,000 distinct alerts in payloads of 1,000 (8 in flight), 100 groups with
           group_wait 1s: wall time, all stored, groups flushed, daemon RSS before/after/peak;
           end to end (first POST -> every alert in a delivered notification) alerts/s and
           daemon CPU per alert; with --compare also Alertmanager's unique-alert ingest
           (am_bench.py (a2)) and the ratio; --pyspy FILE profiles the daemon meanwhile

The daemon runs pinned to --server-cpu (0); wrk, the storm client and this process to
--client-cpu (1), except the in-process routing/reload measurements, which run on --server-cpu.
Every process started here is stopped by its PID (also on Ctrl-C / SIGTERM).
Reuses bench_api.py's helpers (Daemon, /proc readers, table formatting).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from bench_api import (
    SHARED,
    Daemon,
    collect_runs,
    common_parser,
    cpu_set,
    finish_common,
    fmt,
    log,
    median,
    metric,
    proc_cpu_s,
    proc_kb,
    quantile,
    run_each,
    short,
    table,
)

CLK = os.sysconf("SC_CLK_TCK")
POST_LUA = SHARED / "post.lua"
PAYLOAD = SHARED / "payload.py"
HOOK = "/hooks/alertmanager"
PHASES = ("ingest", "routing", "reload", "storm")
FLOOR_CONFIGS = ("c-ii group orjson / uvloop", "b parse orjson / uvloop")
ALERTS_PER_POST = 10
# Shared README (2026-11-24, same machine, quiet): Alertmanager 0.25, same alerts re-posted.
AM_REFERENCE_RPS = 2312.0
TARGET_VS_AM = 1.5
TARGET_P99_MS = 50.0
TARGET_ROUTE_US = 50.0
TARGET_RELOAD_S = 1.0
TARGET_RSS_MB = 200.0
SERVICES = ["api-gateway", "payments", "search", "checkout", "db-primary", "auth"]


def request(url: str, method: str = "GET", key: str | None = None, timeout: float = 30.0,
            data: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request (stdlib), optionally with ``Authorization: Bearer key``."""
    req = urllib.request.Request(url, method=method, data=data)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def pinned(cpus: str) -> Iterator[None]:
    """Run this process on ``cpus`` for the block (in-process measurements)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def self_rss_mb() -> float:
    return proc_kb(os.getpid(), "VmRSS") / 1024


def run_child(cmd: list[str], timeout: float) -> tuple[int, str]:
    """Run a helper script; on timeout or interruption SIGINT it (so it stops its own servers),
    then SIGKILL after 20 s. Returns (exit status, stdout+stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)
        raise


def thread_cpu_s(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) utime + stime of a process, seconds."""
    main = other = 0.0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
                cpu = (int(parts[11]) + int(parts[12])) / CLK
                if int(tid) == pid:
                    main += cpu
                else:
                    other += cpu
    return main, other


def wrk_post(a: argparse.Namespace, url: str, body: Path, seconds: float) -> dict[str, Any]:
    """wrk with the shared post.lua; 2xx = requests - errors_status (wrk counts status > 399)."""
    cmd = ["taskset", "-c", a.client_cpu, "wrk", "-t1", f"-c{a.connections}", f"-d{seconds:g}s",
           "--latency", "--timeout", "5s", "-s", str(POST_LUA), url]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(cmd, env=dict(os.environ, BODY=str(body)), capture_output=True,
                           text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills wrk itself
        raise RuntimeError("wrk did not finish in time") from exc
    m = re.search(r"^WRKJSON (\{.*\})$", p.stdout, re.M)
    if not m:
        raise RuntimeError(f"no WRKJSON line in wrk output:\n{p.stdout}\n{p.stderr}")
    res: dict[str, Any] = json.loads(m.group(1))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res["wrk_cpu"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / res[
        "duration_s"]
    res["non_2xx"] = res["errors_status"]
    res["ok_2xx"] = res["requests"] - res["errors_status"]
    res["socket_errors"] = sum(res[k] for k in ("errors_connect", "errors_read", "errors_write",
                                                "errors_timeout"))
    return res


class IngestDaemon(Daemon):
    """bench_api's Daemon with a longer readiness wait (10,000 routes load at start)."""

    ready_timeout = 120.0

    def start(self) -> None:
        env = dict(
            os.environ,
            ALERT_AGENT_HOST="127.0.0.1",
            ALERT_AGENT_PORT=str(self.port),
            ALERT_AGENT_DATA_DIR=str(self.dir / "data"),
            ALERT_AGENT_API_KEYS=self.key,
            ALERT_AGENT_API__RATE_LIMIT__ENABLED="false",
            ALERT_AGENT_LOG__LEVEL="warning",
            **self.extra_env,
        )
        self._log = open(self.dir / "daemon.log", "ab")
        cmd = ["taskset", "-c", self.a.server_cpu, str(self.a.agent), "run"]
        # taskset execs the daemon: the PID is the daemon's own.
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + self.ready_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alert-agent exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            with contextlib.suppress(OSError):
                if request(self.url + "/readyz", timeout=1)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"alert-agent not ready in {self.ready_timeout:g} s:\n"
                           + self.log_tail())


# --- rule directories ------------------------------------------------------------------------


DEFAULTS_YAML = """\
defaults:
  notify: [{{channel: in-app, to: ops}}]
  group_by: [{group_by}]
  group_wait: {group_wait}
  group_interval: 5m
  repeat_interval: 4h
"""


def write_small_rules(path: Path) -> int:
    """20 routes on the payload's labels (services, severities, clusters, nesting, continue)."""
    path.mkdir(parents=True, exist_ok=True)
    lines = [DEFAULTS_YAML.format(group_by="alertname", group_wait="30s"), "routes:"]
    n = 0
    for s in SERVICES:  # 6 x 2 = 12
        lines += [f"  - name: {s}-critical",
                  f"    matchers: ['service=\"{s}\"', 'severity=~\"critical|page\"']",
                  f"    notify: [{{channel: in-app, to: {s}-oncall}}]",
                  "    group_by: [alertname, cluster]",
                  "    group_wait: 10s",
                  f"  - name: {s}-warnings",
                  f"    matchers: ['service=\"{s}\"', 'severity=\"warning\"']",
                  f"    notify: [{{channel: in-app, to: {s}-team}}]"]
        n += 2
    lines += ["  - name: prod-eu",  # 1 + 4 children
              "    matchers: ['cluster=\"prod-eu-west-1\"']",
              "    continue: true",
              "    routes:"]
    for ns in ("default", "payments", "search", "monitoring"):
        lines += [f"      - name: prod-eu-{ns}",
                  f"        matchers: ['namespace=\"{ns}\"', 'job=~\"node-exporter|blackbox\"']",
                  f"        notify: [{{channel: in-app, to: eu-{ns}}}]"]
    n += 5
    lines += ["  - name: blackbox",
              "    matchers: ['job=\"blackbox\"']",
              "    notify: [{channel: in-app, to: probes}]",
              "  - name: info",
              "    matchers: ['severity=\"info\"']",
              "    notify: [{channel: in-app, to: ops}]",
              "    repeat_interval: 24h",
              "  - name: staging",
              "    matchers: ['env=~\"staging|dev\"']",
              "    notify: [{channel: in-app, to: dev}]"]
    n += 3
    (path / "10-routes.yaml").write_text("\n".join(lines) + "\n")
    return n


def big_route(i: int, equality: bool) -> list[str]:
    svc = f'service="svc-{i}"' if equality else f'service=~"svc-{i}"'
    out = [f"  - name: svc-{i}",
           f"    matchers: ['{svc}', 'severity=~\"critical|warning\"']",
           f"    notify: [{{channel: in-app, to: team-{i % 100}}}]"]
    if i % 25 == 5:
        out.append("    continue: true")
    if i % 10 == 0:  # nested: a continue child, then a catch-on-env child
        out += ["    routes:",
                f"      - name: svc-{i}-db",
                "        matchers: ['component=~\"db|cache\"']",
                f"        notify: [{{channel: in-app, to: dba-{i % 7}}}]",
                "        continue: true",
                f"      - name: svc-{i}-prod",
                "        matchers: ['env=\"production\"']",
                "        group_by: [alertname, instance]"]
    return out


def write_big_rules(path: Path, n: int, equality: bool, per_file: int = 1000) -> dict[str, Any]:
    """``n`` top-level routes in files of ``per_file``; every 10th with 2 children."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "00-defaults.yaml").write_text(
        DEFAULTS_YAML.format(group_by="alertname", group_wait="30s"))
    size = 0
    for f, start in enumerate(range(0, n, per_file)):
        lines = ["routes:"]
        for i in range(start, min(n, start + per_file)):
            lines += big_route(i, equality)
        text = "\n".join(lines) + "\n"
        size += len(text)
        (path / f"10-routes-{f:03d}.yaml").write_text(text)
    return {"dir": str(path), "top_routes": n, "routes": n + 2 * len(range(0, n, 10)),
            "bytes": size, "files": len(range(0, n, per_file)) + 1}


def big_rules(a: argparse.Namespace, work: Path, equality: bool = True) -> dict[str, Any]:
    """The 10,000-route directory (generated once per suite)."""
    key = "eq" if equality else "re"
    cache = a.big_rules_cache
    if key not in cache:
        cache[key] = write_big_rules(work / f"rules-{key}-{a.routes}", a.routes, equality)
    return dict(cache[key])


# --- ingest ----------------------------------------------------------------------------------


def make_body(work: Path) -> Path:
    body = work / "body.json"
    subprocess.run([sys.executable, str(PAYLOAD), "-n", str(ALERTS_PER_POST), "-o", str(body)],
                   check=True, capture_output=True, timeout=30)
    return body


def ingest_run(a: argparse.Namespace, body: Path, rules_dir: Path) -> dict[str, Any]:
    with IngestDaemon(a, {"ALERT_AGENT_RULES_DIR": str(rules_dir)}) as d:
        url = d.url + HOOK
        warm = wrk_post(a, url, body, a.warmup)
        c0, (m0, o0) = proc_cpu_s(d.pid), thread_cpu_s(d.pid)
        r = wrk_post(a, url, body, a.duration)
        m1, o1 = thread_cpu_s(d.pid)
        r["server_cpu"] = (proc_cpu_s(d.pid) - c0) / r["duration_s"]
        r["main_thread_cpu"] = (m1 - m0) / r["duration_s"]
        r["other_threads_cpu"] = (o1 - o0) / r["duration_s"]
        r["cpu_us_per_post"] = r["server_cpu"] / r["rps"] * 1e6 if r["rps"] else None
        r["rss_mb"] = d.rss_mb()
        text = d.metrics()
        commits = metric(text, "alert_agent_store_commits_total")
        ops = metric(text, "alert_agent_store_commit_operations_sum")
        r["posts_per_commit"] = ops / commits if commits else None
        r["metrics_received"] = metric(text, "alert_agent_alerts_received_total",
                                       source="alertmanager")
        r["metrics_created"] = metric(text, "alert_agent_alerts_stored_total", outcome="created")
        r["metrics_updated"] = metric(text, "alert_agent_alerts_stored_total", outcome="updated")
        (rows, distinct, receipts), = d.query(
            "SELECT count(*), count(DISTINCT fingerprint), coalesce(sum(receive_count), 0) "
            "FROM alerts")
        r["stop_s"] = d.stop_s
    acked = (warm["ok_2xx"] + r["ok_2xx"]) * ALERTS_PER_POST
    r.update(alerts_per_s=r["rps"] * ALERTS_PER_POST, warmup_ok_2xx=warm["ok_2xx"],
             rows=rows, distinct=distinct, receive_count_sum=receipts, acked_alerts=acked,
             db_ok=rows == ALERTS_PER_POST and distinct == ALERTS_PER_POST and receipts >= acked)
    log(f"  ingest: {r['rps']:,.0f} req/s = {r['alerts_per_s']:,.0f} alerts/s  p50 "
        f"{r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  non-2xx {r['non_2xx']}  sock-err "
        f"{r['socket_errors']}  cpu {r['server_cpu']:.2f} (main {r['main_thread_cpu']:.2f}, "
        f"others {r['other_threads_cpu']:.2f})  POSTs/commit "
        f"{fmt(r['posts_per_commit'], 1)}  rows {rows} ({distinct} distinct), receive_count "
        f"{receipts:,} >= 10 x 2xx {acked:,}: {fmt(r['db_ok'])}")
    return r


def ingest_costs(a: argparse.Namespace, body: Path, rules_dir: Path,
                 posts: int = 2000) -> dict[str, float]:
    """In-process CPU per POST of the handler's pure-Python steps on the same body and rules
    (median of 5 x ``posts``): JSON decode, Alertmanager parse, routing (intake per alert)."""
    from agent.api.bodies import parse_json_object
    from agent.ingest import alertmanager
    from agent.routing.loader import load_rules
    from agent.services.ingest import intake
    from agent.settings import ApiSettings

    raw = body.read_bytes()
    depth = ApiSettings().max_json_depth  # the daemon's default, as a POST is parsed
    rules = load_rules(rules_dir)
    steps: dict[str, Callable[[], object]] = {
        "json_decode": lambda: parse_json_object(raw, depth),
        "parse": lambda: alertmanager.parse(parse_json_object(raw, depth)),
    }
    alerts = alertmanager.parse(parse_json_object(raw, depth)).alerts
    steps["route"] = lambda: [intake(rules, al) for al in alerts]
    out: dict[str, float] = {}
    with pinned(a.server_cpu):
        for name, fn in steps.items():
            reps = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(posts):
                    fn()
                reps.append((time.perf_counter() - t0) / posts * 1e6)
            out[name] = statistics.median(reps)
    out["parse"] -= out["json_decode"]  # parse alone
    return out


def ingest_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    body = a.body
    if a.ingest_rules:
        rules_dir, nroutes = a.ingest_rules, None
    else:
        rules_dir = work / "rules-small"
        nroutes = write_small_rules(rules_dir)
    log(f"ingest: {body} ({body.stat().st_size:,} B), rules {rules_dir} "
        f"({nroutes if nroutes is not None else '?'} routes)")
    runs, errors = collect_runs(a, "ingest", a.runs, lambda: ingest_run(a, body, rules_dir))
    if not runs:
        raise RuntimeError(f"every ingest run failed: {errors[0] if errors else '?'}")
    try:
        costs: dict[str, Any] = ingest_costs(a, body, rules_dir)
    except Exception as exc:  # internals moved: the split is optional
        costs = {"error": f"{type(exc).__name__}: {exc}"}
    log(f"  in-process us per POST: {costs}")
    rps = [r["rps"] for r in runs]
    summary = {
        "runs": len(runs), "rps": median(rps), "rps_min": min(rps), "rps_max": max(rps),
        "alerts_per_s": median([r["alerts_per_s"] for r in runs]),
        **{k: median([r[k] for r in runs]) for k in (
            "p50_ms", "p99_ms", "server_cpu", "wrk_cpu", "posts_per_commit", "rss_mb",
            "main_thread_cpu", "other_threads_cpu", "cpu_us_per_post")},
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "db_ok": all(r["db_ok"] for r in runs),
    }
    return {"summary": summary, "runs": runs, "errors": errors, "costs_us": costs,
            "rules_dir": str(rules_dir),
            "routes": nroutes, "body_bytes": body.stat().st_size}


# --- compare (floors + Alertmanager) ---------------------------------------------------------


def floors_compare(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    py = Path(a.floor_python)
    if not py.exists():
        return {"error": f"{py} missing (bash {SHARED}/setup.sh)"}
    out = work / "floors.json"
    cmd = [str(py), str(SHARED / "bench_floors.py"), "--only", *FLOOR_CONFIGS,
           "--runs", str(a.runs), "--duration", str(int(a.duration)), "--body", str(a.body),
           "--server-cpu", a.server_cpu, "--client-cpu", a.client_cpu, "--out", str(out)]
    log("compare: " + " ".join(f"'{c}'" if " " in c else c for c in cmd))
    rc, text = run_child(cmd, timeout=600)
    for line in text.splitlines():
        if " run " in line:
            log("  " + line)
    if rc != 0 or not out.exists():
        log(text[-2000:])
        return {"error": f"bench_floors.py exited with {rc}"}
    return {"rows": json.loads(out.read_text())["rows"]}


def _am_bench(a: argparse.Namespace, work: Path, phase: str,
              runs: int) -> list[dict[str, Any]] | str:
    """Run ../shared/bench/am_bench.py for one phase ("ingest" or "unique"): its runs, or why
    there are none."""
    if shutil.which("prometheus-alertmanager") is None:
        return "prometheus-alertmanager missing (bash setup.sh)"
    out = work / f"am-{phase}.json"
    # am_bench's webhook sink needs aiohttp: the bench venv, else this (the agent's) venv.
    python = a.floor_python if Path(a.floor_python).exists() else sys.executable
    skip = ["--skip-unique"] if phase == "ingest" else ["--skip-ingest"]
    cmd = [shutil.which("python3") or sys.executable, str(SHARED / "am_bench.py"),
           *skip, "--skip-fanout", "--runs", str(runs),
           "--duration", str(int(a.duration)), "--python", python,
           "--am-cpu", a.server_cpu, "--client-cpu", a.client_cpu, "--sink-cpu", a.client_cpu,
           "--out", str(out)]
    log("compare: " + " ".join(cmd))
    rc, text = run_child(cmd, timeout=600)
    marker, word = ("(a)", "ingest:") if phase == "ingest" else ("(a2)", "unique:")
    for line in text.splitlines():
        if line.startswith(marker) or word in line:
            log("  " + line.strip())
    if rc != 0 or not out.exists():
        log(text[-2000:])
        return f"am_bench.py exited with {rc}"
    found: list[dict[str, Any]] = json.loads(out.read_text()).get(phase, [])
    return found or f"am_bench.py reported no {phase} runs"


def am_compare(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    runs = _am_bench(a, work, "ingest", a.runs)
    if isinstance(runs, str):
        return {"error": runs}
    data = json.loads((work / "am-ingest.json").read_text())
    rps = [r["rps"] for r in runs]
    return {"version": data.get("version"), "runs": len(runs), "rps": median(rps),
            "rps_min": min(rps), "rps_max": max(rps),
            "alerts_per_s": median([r["alerts_per_s"] for r in runs]),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "cpu": median([r.get("am_cpu") for r in runs]),
            "errors": sum(r.get("errors_status", 0) for r in runs)}


def am_unique_compare(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Alertmanager's unique-alert ingest (am_bench.py (a2): every alert of every POST new),
    the peer figure for the storm's end-to-end rate."""
    runs = _am_bench(a, work, "unique", 1)
    if isinstance(runs, str):
        return {"error": runs}
    r = runs[0]
    return {"alerts_per_s": r["alerts_per_s"], "cpu": r.get("am_cpu"),
            "errors": r.get("errors_status", 0), "p99_ms": r.get("p99_ms")}


def am_unique_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "alerts_per_s" in r]
    if not ok:
        return {"error": "; ".join(r.get("error", "?") for r in runs) or "not run"}
    aps = [r["alerts_per_s"] for r in ok]
    return {"runs": len(ok), "failed": len(runs) - len(ok), "alerts_per_s": median(aps),
            "alerts_per_s_min": min(aps), "alerts_per_s_max": max(aps),
            "each": aps, "cpu": median([r.get("cpu") for r in ok])}


def compare_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "ingest" in a.phases:
        out.update(floors=floors_compare(a, work), alertmanager=am_compare(a, work))
    return out  # the storm's Alertmanager runs alternate with its own (storm_phase)


# --- routing (in-process) --------------------------------------------------------------------


def route_labels(rnd: random.Random, n_routes: int) -> dict[str, str]:
    """8 labels; service svc-0 .. svc-(1.2 n): ~1/6 match no route, the rest early to late."""
    k = rnd.randrange(int(n_routes * 1.2))
    return {
        "alertname": rnd.choice(["HighCPUUsage", "HighMemoryUsage", "DiskWillFillIn4Hours"]),
        "cluster": rnd.choice(["prod-eu-west-1", "prod-us-east-1"]),
        "component": rnd.choice(["db", "web", "cache", "queue"]),
        "env": rnd.choice(["production", "staging"]),
        "instance": f"10.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}:9100",
        "job": rnd.choice(["node-exporter", "blackbox"]),
        "service": f"svc-{k}",
        "severity": rnd.choice(["critical", "warning", "info"]),
    }


def make_alerts(n: int, n_routes: int, seed: int = 4) -> list[Any]:
    from agent.domain import Alert

    rnd = random.Random(seed)
    return [Alert(source="alertmanager", fingerprint=f"{i:016x}", status="firing",
                  labels=route_labels(rnd, n_routes), annotations={}) for i in range(n)]


def time_routing(rules: Any, alerts: list[Any], reps: int) -> dict[str, Any]:
    """Median over ``reps`` of routing every alert (batch timing), plus one per-alert pass."""
    from agent.routing.router import route_alert

    per_rep = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for al in alerts:
            route_alert(rules, al)
        per_rep.append((time.perf_counter() - t0) / len(alerts) * 1e6)
    each = []
    pc = time.perf_counter
    for al in alerts:
        t0 = pc()
        route_alert(rules, al)
        each.append((pc() - t0) * 1e6)
    return {"alerts": len(alerts), "reps": reps, "us_per_alert": statistics.median(per_rep),
            "us_min": min(per_rep), "us_max": max(per_rep),
            "p50_us": quantile(each, 0.5), "p99_us": quantile(each, 0.99), "max_us": max(each)}


def classify(rules: Any, alerts: list[Any], n_routes: int) -> dict[str, Any]:
    """How the sample routes: none (root), first/middle/last third of the routes, decisions."""
    from agent.routing.router import route_alert

    counts = {"none": 0, "early": 0, "middle": 0, "late": 0}
    decisions = 0
    for al in alerts:
        ds = route_alert(rules, al)
        decisions += len(ds)
        top = ds[0].route.id
        if top == "root":
            counts["none"] += 1
            continue
        i = int(top.split("-")[1])
        counts["early" if i < n_routes / 3 else "middle" if i < 2 * n_routes / 3 else "late"] += 1
    return {**counts, "decisions_per_alert": decisions / len(alerts)}


def routing_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from agent.routing.loader import load_rules
    from agent.routing.router import route_alert

    eq, rx = big_rules(a, work, True), big_rules(a, work, False)
    log(f"routing: {eq['routes']:,} routes ({eq['top_routes']:,} top-level, {eq['files']} files, "
        f"{eq['bytes'] / 1e6:.1f} MB YAML); {a.route_alerts:,} alerts x {a.route_reps} reps; "
        f"regex-only {a.regex_alerts:,} alerts")
    with pinned(a.server_cpu):
        rss0 = self_rss_mb()
        rules_eq = load_rules(Path(eq["dir"]))
        rss1 = self_rss_mb()
        alerts = make_alerts(a.route_alerts, a.routes)
        mix = classify(rules_eq, alerts, a.routes)
        res_eq = time_routing(rules_eq, alerts, a.route_reps)
        log(f"  equality+regex: {res_eq['us_per_alert']:.2f} us/alert (p99 "
            f"{res_eq['p99_us']:.1f} us); mix {mix}")
        rules_rx = load_rules(Path(rx["dir"]))
        sample = alerts[: a.regex_alerts]
        res_rx = time_routing(rules_rx, sample, max(1, min(3, a.route_reps)))
        log(f"  regex only: {res_rx['us_per_alert']:,.0f} us/alert (p99 {res_rx['p99_us']:,.0f})")
        same = sum([d.route.id for d in route_alert(rules_eq, al)]
                   == [d.route.id for d in route_alert(rules_rx, al)] for al in sample)
    return {"rules": eq, "ruleset_rss_mb": rss1 - rss0, "mix": mix, "equality": res_eq,
            "regex_only": res_rx, "same_decisions": same, "compared": len(sample)}


# --- reload ----------------------------------------------------------------------------------


def load_profile(rules_dir: Path, top: int = 8) -> dict[str, float]:
    """Where load_rules spends its time: one call under cProfile, the ``top`` functions by
    own time (seconds, inflated by the profiler). Generic, so it follows loader changes."""
    import cProfile
    import pstats

    from agent.routing.loader import load_rules

    prof = cProfile.Profile()
    prof.runcall(load_rules, rules_dir)
    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)
    out = {"total (profiled)": float(st.total_tt)}
    for (file, line, func), (_, _, tottime, _, _) in rows[:top]:
        where = "/".join(Path(file).parts[-2:]) if file != "~" else "builtin"
        out[f"{func} ({where}:{line})"] = tottime
    return out


def daemon_reload(a: argparse.Namespace, rules_dir: Path, n: int) -> dict[str, Any]:
    t0 = time.monotonic()
    # Back-to-back reloads on purpose: no reload rate limit.
    with IngestDaemon(a, {"ALERT_AGENT_RULES_DIR": str(rules_dir),
                          "ALERT_AGENT_API__RELOAD_MIN_INTERVAL_SECONDS": "0"}) as d:
        ready_s = time.monotonic() - t0
        rss = d.rss_mb()
        times, statuses, routes = [], [], None
        for _ in range(n):
            t1 = time.perf_counter()
            status, body = request(d.url + "/-/reload", "POST", d.key, timeout=60)
            times.append(time.perf_counter() - t1)
            statuses.append(status)
            if status == 200:
                routes = json.loads(body).get("routes")
        rss_after = d.rss_mb()
    return {"ready_s": ready_s, "reload_s": statistics.median(times), "reload_min_s": min(times),
            "reload_max_s": max(times), "statuses": statuses, "routes": routes,
            "rss_mb": rss, "rss_after_mb": rss_after}


def reload_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from agent.routing.loader import load_rules

    eq = big_rules(a, work, True)
    rules_dir = Path(eq["dir"])
    log(f"reload: load_rules x {a.reload_reps} of {eq['routes']:,} routes, then POST /-/reload "
        f"x {a.reload_reps} on a daemon")
    with pinned(a.server_cpu):
        loads = []
        for _ in range(a.reload_reps):
            t0 = time.perf_counter()
            load_rules(rules_dir)
            loads.append(time.perf_counter() - t0)
        try:
            parts: dict[str, Any] = load_profile(rules_dir)
        except Exception as exc:  # the profile is optional
            parts = {"error": f"{type(exc).__name__}: {exc}"}
    log(f"  load_rules: {statistics.median(loads):.2f} s (min {min(loads):.2f}); profile {parts}")
    d = daemon_reload(a, rules_dir, a.reload_reps)
    log(f"  daemon: ready in {d['ready_s']:.1f} s; POST /-/reload {d['reload_s']:.2f} s "
        f"(statuses {d['statuses']}, routes {d['routes']}); RSS {d['rss_mb']:.0f} -> "
        f"{d['rss_after_mb']:.0f} MB")
    return {"rules": eq, "load_s": statistics.median(loads), "load_min_s": min(loads),
            "load_max_s": max(loads), "profile_s": parts, "daemon": d}


# --- storm -----------------------------------------------------------------------------------


STORM_RULES = """\
routes:
  - name: storm
    matchers: ['bench="storm"']
    notify: [{channel: in-app, to: oncall}]
  - name: elsewhere
    matchers: ['bench="other"']
"""


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def storm_bodies(n: int, per_post: int, groups: int) -> list[bytes]:
    """Webhook v4 bodies of ``per_post`` distinct alerts; alert N is in group N % groups."""
    from agent.domain import fingerprint_of

    starts = rfc3339(time.time())
    bodies = []
    for first in range(0, n, per_post):
        alerts = []
        for i in range(first, min(n, first + per_post)):
            g = i % groups
            labels = {"alertname": f"StormAlert{g % 10}", "bench": "storm", "group": f"g{g:03d}",
                      "instance": f"host-{i}", "job": "node-exporter",
                      "service": SERVICES[g % len(SERVICES)],
                      "severity": "critical" if i % 3 else "warning", "env": "production"}
            alerts.append({"status": "firing", "labels": labels,
                           "annotations": {"summary": f"host-{i} is down",
                                           "description": "No scrape for 5 minutes."},
                           "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
                           "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
                           "fingerprint": fingerprint_of(labels)})
        bodies.append(json.dumps({
            "version": "4", "groupKey": "{}:{bench=\"storm\"}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "alert-agent", "groupLabels": {"bench": "storm"},
            "commonLabels": {"bench": "storm"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": alerts},
            separators=(",", ":")).encode())
    return bodies


class RssSampler(threading.Thread):
    """Polls VmRSS of a PID every ``interval`` s until stopped; keeps the maximum."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.peak_at = 0.0  # time.time() of the peak sample
        self.samples = 0
        self._stop_ev = threading.Event()

    def run(self) -> None:
        while not self._stop_ev.wait(self.interval):
            with contextlib.suppress(OSError):
                kb = proc_kb(self.pid, "VmRSS")
                if kb > self.peak_kb:
                    self.peak_kb, self.peak_at = kb, time.time()
                self.samples += 1

    def stop(self) -> float:
        self._stop_ev.set()
        self.join(timeout=5)
        return self.peak_kb / 1024


async def post_all(url: str, bodies: list[bytes], concurrency: int,
                   timeout_s: float) -> dict[str, Any]:
    """POST every body, ``concurrency`` in flight; per-request latency and the answers."""
    queue = list(reversed(bodies))
    lat: list[float] = []
    out: dict[str, Any] = {"ok": 0, "failed": 0, "received": 0, "created": 0, "first_error": None}
    deadline = time.monotonic() + timeout_s
    hdrs = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue and time.monotonic() < deadline:
            body = queue.pop()
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=hdrs) as r:
                data = await r.read()
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status == 200:
                ans = json.loads(data)
                out["ok"] += 1
                out["received"] += ans["received"]
                out["created"] += ans["created"]
            else:
                out["failed"] += 1
                out["first_error"] = out["first_error"] or f"{r.status} {data[:300]!r}"

    t0 = time.time()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    out.update(t0=t0, t1=time.time(), seconds=time.time() - t0, not_sent=len(queue),
               p50_ms=quantile(lat, 0.5), p99_ms=quantile(lat, 0.99),
               max_ms=max(lat) if lat else None)
    return out


def notified(d: IngestDaemon) -> int:
    """Distinct alerts some notification is about (read-only, while the daemon runs)."""
    con = sqlite3.connect(f"file:{d.db}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute(
            "SELECT count(DISTINCT alert_seq) FROM alert_notifications").fetchone()[0])
    finally:
        con.close()


def wait_flushed(d: IngestDaemon, groups: int, n: int, timeout_s: float) -> dict[str, Any]:
    """Poll until every alert is in a delivered notification and the outbox is empty (or
    ``timeout_s``); note when the first ``groups`` notifications (group_wait) were delivered."""
    t0 = time.monotonic()
    st: dict[str, Any] = {"first_flush_s": None}
    while True:
        text = d.metrics()
        st.update(group_notifications=metric(text, "alert_agent_group_notifications_total"),
                  delivered=metric(text, "alert_agent_notifications_total", channel="in-app",
                                   outcome="delivered"),
                  outbox=metric(text, "alert_agent_outbox_depth"), alerts_notified=notified(d))
        now = time.monotonic() - t0
        if st["first_flush_s"] is None and st["delivered"] >= groups:
            st["first_flush_s"] = now
        done = (st["alerts_notified"] >= n and st["outbox"] == 0
                and st["delivered"] >= st["group_notifications"])
        if done or now > timeout_s:
            st.update(complete=done, waited_s=now)
            return st
        time.sleep(0.25)


def storm_phase(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    """--storm-runs runs; with --compare each is followed by one Alertmanager unique-ingest
    run (A/B/A/B); the run with the median end-to-end rate is reported, all are kept."""
    runs, am = [], []
    for i in range(a.storm_runs):
        try:
            runs.append(storm_run(a, work))
        except Exception as exc:  # keep the other runs
            log(f"storm run {i + 1} FAILED: {type(exc).__name__}: {exc}")
        if a.compare:
            am.append(am_unique_compare(a, work))
            log(f"  Alertmanager unique run {i + 1}: {am[-1]}")
    if not runs:
        raise RuntimeError("every storm run failed")
    runs.sort(key=lambda r: r["e2e_alerts_per_s"] or 0)
    r = dict(runs[(len(runs) - 1) // 2])  # of an even count, the lower middle run
    r["e2e_median_alerts_per_s"] = median([x["e2e_alerts_per_s"] or 0 for x in runs])
    r["runs"] = [{k: x[k] for k in ("e2e_s", "e2e_alerts_per_s", "alerts_per_s",
                                    "cpu_us_per_alert", "server_cpu", "rss_peak_mb")}
                 for x in runs]
    if a.compare:
        r["alertmanager_unique"] = am_unique_summary(am)
    return r


def storm_run(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    n, per, groups = a.storm_n, a.storm_batch, a.storm_groups
    rules_dir = work / "rules-storm"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "00-defaults.yaml").write_text(
        DEFAULTS_YAML.format(group_by="alertname, group", group_wait="1s")
        .replace("group_interval: 5m", f"group_interval: {a.storm_group_interval:g}s"))
    (rules_dir / "10-storm.yaml").write_text(STORM_RULES)
    bodies = storm_bodies(n, per, groups)
    log(f"storm: {n:,} distinct alerts in {len(bodies)} POSTs of {per:,} "
        f"({sum(map(len, bodies)) / len(bodies) / 1e3:,.0f} KB each), {a.storm_concurrency} in "
        f"flight, {groups} groups, group_wait 1s, group_interval {a.storm_group_interval:g}s")
    with IngestDaemon(a, {"ALERT_AGENT_RULES_DIR": str(rules_dir)}) as d:
        time.sleep(1.0)
        before = d.rss_mb()
        sampler = RssSampler(d.pid)
        sampler.start()
        spy = start_pyspy(a, d.pid)
        try:
            c0 = proc_cpu_s(d.pid)
            sent = asyncio.run(post_all(d.url + HOOK, bodies, a.storm_concurrency, 300))
            c1 = proc_cpu_s(d.pid)
            cpu = (c1 - c0) / sent["seconds"]
            after_posts = d.rss_mb()
            status, page = request(d.url + "/v1/alerts?per_page=1", key=d.key)
            total = json.loads(page)["meta"]["total"] if status == 200 else None
            flush = wait_flushed(d, groups, n, a.storm_drain)
            cpu_total = proc_cpu_s(d.pid) - c0
            after = d.rss_mb()
        finally:
            peak = sampler.stop()
            stop_pyspy(spy)
        hwm = d.hwm_mb()
        db = storm_db(d)
    r = {"n": n, "groups": groups, "posts": len(bodies), "per_post": per,
         "concurrency": a.storm_concurrency,
         "seconds": sent["seconds"], "alerts_per_s": sent["received"] / sent["seconds"],
         "server_cpu": cpu, **{k: sent[k] for k in ("ok", "failed", "received", "created",
                                                    "first_error", "p50_ms", "p99_ms",
                                                    "max_ms", "not_sent")},
         "meta_total": total, "flush": flush, "rss_before_mb": before,
         "rss_after_posts_mb": after_posts, "rss_after_mb": after, "rss_peak_mb": max(peak, after),
         "vm_hwm_mb": hwm, "rss_samples": sampler.samples, "db": db,
         "rss_peak_s": sampler.peak_at - sent["t0"] if sampler.peak_at else None}
    r["all_stored"] = db["alerts"] == n and db["distinct"] == n and r["created"] == n
    for key, at in (("first_notification_s", db["first_notification_at"]),
                    ("last_notification_s", db["last_notification_at"]),
                    ("last_delivered_s", db["last_delivered_at"])):
        r[key] = at - sent["t0"] if at is not None else None  # from the first POST
    # End to end: from the first POST to the delivery of the last notification, once every
    # alert is in a delivered notification (checked by wait_flushed). Includes the grouping
    # waits the rules impose (group_wait, then group_interval ticks).
    done = bool(flush["complete"]) and r["all_stored"] and r["last_delivered_s"] is not None
    r["e2e_s"] = r["last_delivered_s"] if done else None
    r["e2e_alerts_per_s"] = n / r["e2e_s"] if r["e2e_s"] else None
    # Daemon CPU (all threads) from the first POST until all was notified, per alert.
    r["cpu_s_total"] = cpu_total
    r["cpu_us_per_alert"] = cpu_total / n * 1e6
    r["cpu_us_per_alert_posts"] = (c1 - c0) / n * 1e6
    r["pyspy"] = str(a.pyspy) if a.pyspy else None
    # When the grouper's rounds created notifications, s from the first POST (how many).
    r["flush_rounds_s"] = [(round(at - sent["t0"], 2), k) for at, k in db.pop("flush_rounds")]
    r["posts_end_s"] = sent["t1"] - sent["t0"]
    log("  flush rounds (s from the first POST: notifications): "
        + ", ".join(f"{at:g}: {k}" for at, k in r["flush_rounds_s"])
        + f"; last POST answered at {r['posts_end_s']:.2f} s")
    log(f"  storm end to end: {fmt(r['e2e_s'], 2)} s = {fmt(r['e2e_alerts_per_s'])} alerts/s; "
        f"daemon CPU {cpu_total:.1f} s = {r['cpu_us_per_alert']:.0f} us/alert "
        f"({r['cpu_us_per_alert_posts']:.0f} during the POSTs)")
    log(f"  storm: {sent['received']:,} alerts in {sent['seconds']:.2f} s = "
        f"{r['alerts_per_s']:,.0f}/s (POST p50 {fmt(sent['p50_ms'])} ms, max "
        f"{fmt(sent['max_ms'])} ms; cpu {cpu:.2f}); meta.total {total}; db {db}; flush {flush}; "
        f"RSS {before:.0f} -> {after_posts:.0f} -> {after:.0f} MB (peak {r['rss_peak_mb']:.0f}, "
        f"VmHWM {hwm:.0f})")
    return r


def start_pyspy(a: argparse.Namespace, pid: int) -> subprocess.Popen[bytes] | None:
    """With --pyspy FILE: py-spy records the daemon (raw, all threads) until stop_pyspy."""
    if not a.pyspy:
        return None
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = ["taskset", "-c", a.client_cpu, exe, "record", "-r", "100", "--threads",
           "--nonblocking", "--format", "raw", "-o", str(a.pyspy), "--pid", str(pid)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the first POST
    return proc


def stop_pyspy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def storm_db(d: IngestDaemon) -> dict[str, Any]:
    (alerts, distinct), = d.query("SELECT count(*), count(DISTINCT fingerprint) FROM alerts")
    (groups, members), = d.query(
        "SELECT (SELECT count(*) FROM alert_groups), (SELECT count(*) FROM group_members)")
    by_status = dict(d.query("SELECT status, count(*) FROM notifications GROUP BY status"))
    (linked,), = d.query("SELECT count(DISTINCT alert_seq) FROM alert_notifications")
    (first, last, delivered, max_kb, sum_mb), = d.query(
        "SELECT min(created_at), max(created_at), max(delivered_at), "
        "max(length(message) + length(metadata)) / 1e3, "
        "sum(length(message) + length(metadata)) / 1e6 FROM notifications")
    rounds = d.query("SELECT created_at, count(*) FROM notifications GROUP BY created_at "
                     "ORDER BY created_at")
    return {"alerts": alerts, "distinct": distinct, "alert_groups": groups, "members": members,
            "flush_rounds": rounds,
            "notifications": by_status, "alerts_notified": linked,
            "first_notification_at": first, "last_notification_at": last,
            "last_delivered_at": delivered, "notification_max_kb": max_kb,
            "notifications_total_mb": sum_mb}


# --- report ----------------------------------------------------------------------------------


def report_ingest(res: dict[str, Any], cmp: dict[str, Any] | None) -> str:
    s = res["summary"]
    rows = [["alert-agent /hooks/alertmanager", str(s["runs"]),
             f"{fmt(s['rps'])} ({fmt(s['rps_min'])}-{fmt(s['rps_max'])})",
             fmt(s["alerts_per_s"]), fmt(s["p50_ms"], 2), fmt(s["p99_ms"], 2),
             str(s["non_2xx"]), fmt(s["server_cpu"], 2), fmt(s["posts_per_commit"], 1),
             fmt(s["rss_mb"]), fmt(s["db_ok"])]]
    for fr in (cmp or {}).get("floors", {}).get("rows", []):
        rows.append([f"floor {fr['name']}", str(fr["runs"]),
                     f"{fmt(fr['rps'])} ({fmt(fr['rps_min'])}-{fmt(fr['rps_max'])})",
                     fmt(fr["alerts_per_s"]), fmt(fr["p50_ms"], 2), fmt(fr["p99_ms"], 2),
                     str(fr["errors"]), fmt(fr["server_cpu"], 2), "-",
                     fmt(fr["server_rss_mb"]), fmt(fr["db_ok"])])
    am = (cmp or {}).get("alertmanager", {})
    if "rps" in am:
        rows.append(["Alertmanager /api/v2/alerts", str(am["runs"]),
                     f"{fmt(am['rps'])} ({fmt(am['rps_min'])}-{fmt(am['rps_max'])})",
                     fmt(am["alerts_per_s"]), fmt(am["p50_ms"], 2), fmt(am["p99_ms"], 2),
                     str(am["errors"]), fmt(am["cpu"], 2), "-", "-", "-"])
    head = ["server (one core)", "runs", "req/s median (min-max)", "alerts/s", "p50 ms",
            "p99 ms", "non-2xx", "server CPU", "POSTs/commit", "RSS MB", "db ok"]
    text = (f"ingest: wrk -t1 -c32, shared post.lua, {res['body_bytes']:,} B body of 10 alerts, "
            f"rules {res['routes'] or '?'} routes\n\n" + table(head, rows))
    for name, err in ((k, v.get("error")) for k, v in (cmp or {}).items()):
        if err:
            text += f"\n{name}: {err}"
    for label, value in ratios(res, cmp).items():
        text += f"\nratio {label}: {value:.2f}"
    if s["cpu_us_per_post"]:
        text += (f"\nagent CPU per POST: {s['cpu_us_per_post']:,.0f} us (main thread "
                 f"{s['main_thread_cpu']:.2f} core, other threads incl. the SQLite writer "
                 f"{s['other_threads_cpu']:.2f} core)")
    costs = res.get("costs_us", {})
    if "error" in costs:
        text += f"\nin-process split: {costs['error']}"
    elif costs:
        text += ("\nin-process, us per POST (same body and rules, no HTTP, no store): "
                 + ", ".join(f"{k} {v:,.0f}" for k, v in costs.items()))
    return text


def ratios(ing: dict[str, Any], cmp: dict[str, Any] | None) -> dict[str, float]:
    rps = ing["summary"]["rps"]
    out = {}
    for fr in (cmp or {}).get("floors", {}).get("rows", []):
        kind = "group-commit floor" if fr["name"].startswith("c-ii") else "parse-only floor"
        out[f"agent / {kind}"] = rps / fr["rps"]
    am = (cmp or {}).get("alertmanager", {})
    if "rps" in am:
        out["agent / Alertmanager (this run)"] = rps / am["rps"]
    else:
        out[f"agent / Alertmanager (README reference {AM_REFERENCE_RPS:,.0f} req/s, not this "
            "run)"] = rps / AM_REFERENCE_RPS
    return out


def report_routing(r: dict[str, Any]) -> str:
    rows = []
    for key, what in (("equality", "equality + regex matcher per route (indexed)"),
                      ("regex_only", "regex matchers only (unindexed worst case)")):
        t = r[key]
        rows.append([what, fmt(t["alerts"]), str(t["reps"]),
                     f"{fmt(t['us_per_alert'], 2)} ({fmt(t['us_min'], 2)}-{fmt(t['us_max'], 2)})",
                     fmt(t["p50_us"], 1), fmt(t["p99_us"], 1), fmt(t["max_us"], 1)])
    m = r["mix"]
    return (f"routing: route_alert in-process, {r['rules']['routes']:,} routes "
            f"({r['rules']['top_routes']:,} top-level), RuleSet ~{r['ruleset_rss_mb']:.0f} MB "
            f"RSS; alerts: {m['none']:,} no route, {m['early']:,} / {m['middle']:,} / "
            f"{m['late']:,} in the first / middle / last third, {m['decisions_per_alert']:.2f} "
            f"decisions per alert; same decisions indexed vs regex-only: {r['same_decisions']}"
            f"/{r['compared']}\n\n"
            + table(["routes", "alerts", "reps", "us/alert median (min-max)", "p50 us",
                     "p99 us", "max us"], rows))


def report_reload(r: dict[str, Any]) -> str:
    d = r["daemon"]
    parts = r["profile_s"]
    split = ("; ".join(f"{k} {v:.3f}" for k, v in parts.items()) if "error" not in parts
             else parts["error"])
    rows = [[f"load_rules, in-process ({r['rules']['routes']:,} routes)",
             f"{r['load_s']:.2f} ({r['load_min_s']:.2f}-{r['load_max_s']:.2f})"],
            ["POST /-/reload on the daemon",
             f"{d['reload_s']:.2f} ({d['reload_min_s']:.2f}-{d['reload_max_s']:.2f}), "
             f"statuses {d['statuses']}, routes {d['routes']}"],
            ["daemon start -> /readyz with these rules", f"{d['ready_s']:.2f}"],
            ["daemon RSS with these rules, before/after reloads, MB",
             f"{d['rss_mb']:.0f} / {d['rss_after_mb']:.0f}"]]
    return ("reload\n\n" + table(["what", "seconds median (min-max)"], rows)
            + f"\nload_rules under cProfile, own time s: {split}")


def report_storm(r: dict[str, Any]) -> str:
    f, db = r["flush"], r["db"]
    rows = [[fmt(r["received"]), f"{r['posts']} x {r['per_post']:,}, {r['concurrency']} in flight",
             f"{r['seconds']:.2f}", fmt(r["alerts_per_s"]),
             f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])} / {fmt(r['max_ms'])}",
             fmt(r["server_cpu"], 2), f"{db['alerts']:,} / {fmt(r['meta_total'])}",
             fmt(r["all_stored"]), str(r["failed"])]]
    text = "storm: distinct alerts POSTed to /hooks/alertmanager\n\n" + table(
        ["alerts", "POSTs", "seconds", "alerts/s", "POST p50/p99/max ms", "server CPU",
         "stored (db / meta.total)", "all stored", "failed POSTs"], rows)
    rows = [[fmt(db["alert_groups"]), fmt(db["members"]), str(db["notifications"]),
             f"{db['alerts_notified']:,} / {r['n']:,}",
             f"{fmt(r['first_notification_s'], 2)} / {fmt(r['last_notification_s'], 2)} / "
             f"{fmt(r['last_delivered_s'], 2)}",
             f"{fmt(f['complete'])} ({f['waited_s']:.1f} s)",
             f"{fmt(db['notification_max_kb'])} / {fmt(db['notifications_total_mb'], 1)}",
             f"{r['rss_before_mb']:.0f} / {r['rss_after_posts_mb']:.0f} / "
             f"{r['rss_after_mb']:.0f} / {r['rss_peak_mb']:.0f} at "
             f"{fmt(r['rss_peak_s'], 1)} s"]]
    text += ("\n\nend to end (first POST -> last notification delivered, every alert in a "
             f"delivered notification): {fmt(r['e2e_s'], 2)} s = "
             f"{fmt(r['e2e_alerts_per_s'])} alerts/s; daemon CPU {r['cpu_s_total']:.1f} s = "
             f"{r['cpu_us_per_alert']:.0f} us per alert ({r['cpu_us_per_alert_posts']:.0f} "
             "during the POSTs)")
    if len(r.get("runs", [])) > 1:
        text += "\nstorm runs, end to end alerts/s (CPU us/alert): " + ", ".join(
            f"{fmt(x['e2e_alerts_per_s'])} ({x['cpu_us_per_alert']:.0f})" for x in r["runs"])
    am = r.get("alertmanager_unique", {})
    if "alerts_per_s" in am:
        text += (f"\nAlertmanager unique-alert ingest (am_bench.py (a2)), alternating with the "
                 f"storm runs: {fmt(am['alerts_per_s'])} alerts/s median "
                 f"({', '.join(fmt(x) for x in am['each'])}; AM CPU {fmt(am['cpu'], 2)})")
        if r["e2e_median_alerts_per_s"]:
            text += ("\nratio storm end to end / Alertmanager unique ingest, medians of this "
                     f"run: {r['e2e_median_alerts_per_s'] / am['alerts_per_s']:.2f}")
    elif "error" in am:
        text += f"\nAlertmanager unique: {am['error']}"
    return text + "\n\n" + table(
        ["alert groups", "members", "notifications", "alerts notified",
         "first created / last created / last delivered, s from first POST",
         "all notified (poll, s after last POST)", "notification max KB / all MB",
         "RSS MB before / after POSTs / after notified / peak (s from first POST)"], rows)


def report_targets(res: dict[str, Any]) -> str:
    rows = []
    if "ingest" in res:
        s = res["ingest"]["summary"]
        for label, value in ratios(res["ingest"], res.get("compare")).items():
            if "Alertmanager" in label:
                rows.append([f"ingest {label}", f"{value:.2f}", f">= {TARGET_VS_AM:g}",
                             fmt(value >= TARGET_VS_AM)])
        rows.append(["ingest p99, ms", fmt(s["p99_ms"], 1), f"< {TARGET_P99_MS:g}",
                     fmt(s["p99_ms"] < TARGET_P99_MS)])
        rows.append(["ingest: every receipt durable", fmt(s["db_ok"]), "yes", fmt(s["db_ok"])])
    if "routing" in res:
        got = res["routing"]["equality"]["us_per_alert"]
        rows.append(["routing, us/alert (10k routes, indexed)", fmt(got, 2),
                     f"< {TARGET_ROUTE_US:g}", fmt(got < TARGET_ROUTE_US)])
    if "reload" in res:
        for what, got in (("load_rules", res["reload"]["load_s"]),
                          ("POST /-/reload", res["reload"]["daemon"]["reload_s"])):
            rows.append([f"{what}, s (10k routes)", fmt(got, 2), f"< {TARGET_RELOAD_S:g}",
                         fmt(got < TARGET_RELOAD_S)])
    if "storm" in res:
        st = res["storm"]
        rows.append(["storm: all stored", fmt(st["all_stored"]), "yes", fmt(st["all_stored"])])
        rows.append(["storm RSS peak, MB", fmt(st["rss_peak_mb"]), f"< {TARGET_RSS_MB:g}",
                     fmt(st["rss_peak_mb"] < TARGET_RSS_MB)])
        am = st.get("alertmanager_unique", {})
        if "alerts_per_s" in am and st.get("e2e_median_alerts_per_s"):
            ratio = st["e2e_median_alerts_per_s"] / am["alerts_per_s"]
            rows.append(["storm end to end / Alertmanager unique ingest", f"{ratio:.2f}",
                         ">= 1", fmt(ratio >= 1)])
    return "targets\n\n" + table(["figure", "got", "target", "met"], rows) if rows else ""


def report(res: dict[str, Any]) -> str:
    parts = []
    if "ingest" in res:
        parts.append(report_ingest(res["ingest"], res.get("compare")))
    for name, fn in (("routing", report_routing), ("reload", report_reload)):
        if name in res:
            parts.append(fn(res[name]))
    if "storm" in res:
        parts.append(report_storm(res["storm"]))
    parts.append(report_targets(res))
    return "\n\n".join(p for p in parts if p)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = common_parser(__doc__, PHASES, "ingest,routing,reload,storm",
                       "1 short run of each, smaller counts")
    ap.add_argument("--compare", action="store_true",
                    help="after ingest: the shared floors and Alertmanager, for the ratios")
    ap.add_argument("--runs", type=int, help="ingest (and compare) runs (3; --quick 1)")
    ap.add_argument("--ingest-rules", type=Path,
                    help="rules dir for ingest (default: a generated 20-route dir)")
    ap.add_argument("--routes", type=int, default=10_000, help="routes for routing/reload")
    ap.add_argument("--route-alerts", type=int, help="alerts routed (100,000; --quick 20,000)")
    ap.add_argument("--route-reps", type=int, help="routing repetitions (5; --quick 3)")
    ap.add_argument("--regex-alerts", type=int, help="alerts, regex-only (1,000; --quick 200)")
    ap.add_argument("--reload-reps", type=int, help="load_rules and /-/reload reps (3; quick 1)")
    ap.add_argument("--storm-n", type=int, help="storm alerts (100,000; --quick 20,000)")
    ap.add_argument("--storm-batch", type=int, default=1000, help="alerts per storm POST")
    ap.add_argument("--storm-groups", type=int, default=100)
    ap.add_argument("--storm-concurrency", type=int, default=8)
    ap.add_argument("--storm-group-interval", type=float, default=5.0,
                    help="storm rules' group_interval, s (alerts after the first flush wait it)")
    ap.add_argument("--storm-drain", type=float, default=60.0,
                    help="seconds to wait until every alert is notified")
    ap.add_argument("--storm-runs", type=int, default=1,
                    help="storm runs (with --compare each followed by an Alertmanager run)")
    ap.add_argument("--pyspy", type=Path,
                    help="storm: py-spy record (raw, --threads) the daemon into this file")
    a = ap.parse_args(argv)
    q = a.quick
    defaults = {"runs": (3, 1), "duration": (10.0, 5.0), "route_alerts": (100_000, 20_000),
                "route_reps": (5, 3), "regex_alerts": (1000, 200), "reload_reps": (3, 1),
                "storm_n": (100_000, 20_000)}
    for k, (full, quick) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, quick if q else full)
    finish_common(ap, a, PHASES)
    a.big_rules_cache = {}
    return a


def preflight(a: argparse.Namespace) -> None:
    needed = ["taskset"] + (["wrk"] if "ingest" in a.phases else [])
    missing = [t for t in needed if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install -y wrk)")
    if not a.agent.exists():
        sys.exit(f"no alert-agent at {a.agent}")
    if (os.cpu_count() or 1) < 2:
        log("warning: one CPU only; server and client share it")
        a.server_cpu = a.client_cpu = "0"


def run_phases(a: argparse.Namespace, work: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the chosen phases in order; a phase that fails is reported and the rest still run."""
    phases: dict[str, Callable[[], dict[str, Any]]] = {
        "ingest": lambda: ingest_phase(a, work),
        "compare": lambda: compare_phase(a, work),
        "routing": lambda: routing_phase(a, work),
        "reload": lambda: reload_phase(a, work),
        "storm": lambda: storm_phase(a, work),
    }
    compare = {"compare"} if a.compare and "ingest" in a.phases else set()
    return run_each(a, phases, set(a.phases) | compare)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    preflight(a)
    # A load generator too (the storm client): keep this process off the daemon's CPU.
    os.sched_setaffinity(0, cpu_set(a.client_cpu))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        a.body = make_body(work)
        res, errors = run_phases(a, work)
    meta = {"started": datetime.fromtimestamp(started, tz=UTC).isoformat(),
            "seconds": time.time() - started, "errors": errors,
            "settings": {k: str(v) for k, v in vars(a).items() if k != "big_rules_cache"}}
    print()
    print(report(res))
    for name, err in errors.items():
        print(f"\n{name}: FAILED ({short(err)})")
    for err in res.get("ingest", {}).get("errors", []):
        print(f"\ningest: a run FAILED ({short(err)})")
    print(f"\n(total {meta['seconds']:.0f} s)")
    if a.out:
        a.out.write_text(json.dumps({"results": res, "meta": meta}, indent=1, default=str))
        print(f"(results in {a.out})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
