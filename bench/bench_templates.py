#!/usr/bin/env python3
"""Template rendering: the hostile worst cases, the cost of a normal render, and what rendering
in a separate worker process would cost instead (issue 10, item 2).

    .venv/bin/python bench/bench_templates.py [--only worst,overhead,worker] [--source DIR]
                                              [--max-gb 8] [--timeout 120] [--out FILE]

Phases:

  worst     each hostile template rendered by ``agent.rendering.render`` in a fresh
            child process: wall time, the child's peak RSS (``os.wait4`` rusage ``ru_maxrss``,
            the per-child form of getrusage(RUSAGE_CHILDREN)) and how it ended. The child has
            an address-space limit (--max-gb) and a wall-clock limit (--timeout), so a case that
            would eat the machine ends as MemoryError or "killed".
  overhead  in a child: microseconds per render of everyday templates (the rule template of
            rules/00-common.yaml over 1 and 20 alerts, the README's CPU alert API template),
            wall and CPU time: medians of 5 runs of 2,000 renders each, and the least CPU of
            a run (the steadiest figure when other processes share the cores).
  worker    the alternative design: one persistent worker process (multiprocessing, fork) that
            renders with the same ``render`` under RLIMIT_AS and RLIMIT_CPU; microseconds per
            render as seen by the caller (pickle + pipe + render + reply) and CPU of both
            processes, same templates and runs as overhead, and the time to start a worker and
            get its first render back (a worker killed by a limit must be replaced).

``--source DIR`` renders with another checkout's ``agent`` package (e.g. a worktree of main, for
the figures before a change). Stdlib only in this process; every child is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIG = '("a"*60000)'
WORST: list[tuple[str, str]] = [
    ("replace (issue 10)", '{{ ("a"*60000).replace("a", "a"*60000) }}'),
    ("center width", '{{ "a".center(2000000000) }}'),
    ("ljust width", '{{ "a".ljust(2000000000) }}'),
    ("format width", '{{ "{:>2000000000}".format(1) }}'),
    ("% width", '{{ "%02000000000d" % 1 }}'),
    ("format fields", '{{ ("{0}"*20000).format("a"*60000) }}'),
    ("'~' doubling", '{% set ns = namespace(s="a"*1000) %}{% for i in range(30) %}'
     '{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}'),
    ("shared-list graph printed", '{% set ns = namespace(v="a"*100) %}{% for i in range(30) %}'
     '{% set ns.v = [ns.v, ns.v] %}{% endfor %}{{ ns.v|length }}{{ ns.v }}'),
    ("macro buffer", '{% macro m() %}{% for i in range(1000) %}{% for j in range(1000) %}'
     f'{{{{ {BIG} ~ i }}}}{{% endfor %}}{{% endfor %}}{{% endmacro %}}{{{{ m()|length }}}}'),
    ("indent filter", '{{ ("a\\n"*30000)|indent(60000) }}'),
    ("join filter", f'{{{{ range(1000)|join({BIG}) }}}}'),
    ("squaring", '{% set ns = namespace(x=2**64) %}{% for i in range(28) %}'
     '{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}'),
]

CPU_BODY = ("CPU Alert on {{server}}\nCurrent: {{value}}% | Threshold: {{threshold}}%\n"
            "Duration: {{duration}}\nDashboard: {{dashboard_url}}")
CPU_VARS = {"server": "prod-web-3", "value": 92, "threshold": 80, "duration": "5m",
            "dashboard_url": "https://grafana.example.com/d/cpu"}

# Runs inside a child: one render, the outcome on stdout as JSON.
WORST_CHILD = """
import json, resource, sys, time
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from agent.rendering import render
body = sys.argv[1]
t = time.perf_counter()
try:
    out = render(body, {})
    outcome = f"rendered {len(out):,} characters"
except MemoryError:
    outcome = "MemoryError"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"seconds": time.perf_counter() - t, "outcome": outcome[:160]}))
"""

# Runs inside a child: everyday renders in-process and through a worker process.
TIMING_CHILD = r"""
import json, multiprocessing as mp, os, resource, statistics, sys, time
import yaml
from agent.rendering import render

cfg = json.loads(sys.argv[1])
rules = yaml.safe_load(open(cfg["rules"]))
rule_body = next(t["body"] for t in rules["templates"] if "{% for" in t["body"])

def alert(i):
    return {"status": "firing", "labels": {"alertname": "HighCPU", "instance": f"web-{i}:9100",
            "severity": "warning", "cluster": "prod-eu"},
            "annotations": {"summary": f"CPU above 90% on web-{i}"}, "severity": "warning",
            "generatorURL": f"https://prometheus.example.com/graph?g0.expr=cpu&i={i}"}

def group(n):
    alerts = [alert(i) for i in range(n)]
    return {"status": "firing", "alerts": alerts, "labels": alerts[0]["labels"],
            "annotations": {}, "groupLabels": {"alertname": "HighCPU"},
            "commonLabels": {"alertname": "HighCPU"}, "commonAnnotations": {},
            "receiver": "ops", "severity": "warning", "firing": alerts, "resolved": []}

CASES = [("API template (README CPU alert)", cfg["cpu_body"], cfg["cpu_vars"]),
         ("rule template, 1 alert", rule_body, group(1)),
         ("rule template, 20 alerts", rule_body, group(20))]

TICK = os.sysconf("SC_CLK_TCK")

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def per_render_us(fn, body, variables, worker_pid=None):
    # (wall us, CPU us of this process plus the worker) per render: medians of the runs, and
    # the least CPU of a run (the steadiest figure on a shared machine)
    for _ in range(200):
        fn(body, variables)
    walls, cpus = [], []
    for _ in range(cfg["runs"]):
        c0 = time.process_time() + (cpu_seconds(worker_pid) if worker_pid else 0.0)
        t = time.perf_counter()
        for _ in range(cfg["n"]):
            fn(body, variables)
        walls.append((time.perf_counter() - t) / cfg["n"] * 1e6)
        c1 = time.process_time() + (cpu_seconds(worker_pid) if worker_pid else 0.0)
        cpus.append((c1 - c0) / cfg["n"] * 1e6)
    return statistics.median(walls), statistics.median(cpus), min(cpus)

def worker(conn, limit_bytes, cpu_seconds):
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        try:
            conn.send(("ok", render(*msg)))
        except Exception as exc:
            conn.send(("error", str(exc)))

def start_worker():
    here, there = mp.Pipe()
    p = mp.get_context("fork").Process(target=worker, args=(there, 1 << 30, 60), daemon=True)
    p.start()
    return p, here

def via_worker(conn):
    def call(body, variables):
        conn.send((body, variables))
        kind, value = conn.recv()
        if kind != "ok":
            raise RuntimeError(value)
        return value
    return call

out = {"inprocess": {}, "worker": {}}
for name, body, variables in CASES:
    out["inprocess"][name] = per_render_us(render, body, variables)
if cfg["worker"]:
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        p, conn = start_worker()
        via_worker(conn)(cfg["cpu_body"], cfg["cpu_vars"])
        starts.append((time.perf_counter() - t) * 1e3)
        conn.send(None)
        p.join(5)
    out["worker_start_ms"] = statistics.median(starts)
    p, conn = start_worker()
    for name, body, variables in CASES:
        out["worker"][name] = per_render_us(via_worker(conn), body, variables, p.pid)
    conn.send(None)
    p.join(5)
print(json.dumps(out))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def child_env(source: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}


def run_child(args: list[str], source: Path, timeout: float) -> tuple[str, float, int, int]:
    """(stdout, wall seconds, peak RSS in KiB, exit status); killed by PID at the timeout."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, *args], cwd=source, env=child_env(source),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = started + timeout
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.monotonic() - started
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
    return out, wall, usage.ru_maxrss, proc.returncode


def phase_worst(a: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name, body in WORST:
        out, wall, rss_kb, code = run_child(
            ["-c", WORST_CHILD, body, str(int(a.max_gb * (1 << 30)))], a.source, a.timeout)
        try:
            result = json.loads(out)
            outcome, render_s = result["outcome"], result["seconds"]
        except ValueError:
            outcome, render_s = f"killed (exit {code}, limit {a.timeout:g} s)", wall
        rows.append({"case": name, "render_s": render_s, "wall_s": wall,
                     "peak_rss_mb": rss_kb / 1024, "outcome": outcome})
        log(f"  {name}: {render_s:.2f} s, {rss_kb / 1024:,.0f} MB, {outcome[:70]}")
    return rows


def phase_timing(a: argparse.Namespace, worker: bool) -> dict[str, Any]:
    cfg = {"rules": str(ROOT / "rules" / "00-common.yaml"), "cpu_body": CPU_BODY,
           "cpu_vars": CPU_VARS, "runs": a.runs, "n": a.n, "worker": worker}
    out, wall, _, code = run_child(["-c", TIMING_CHILD, json.dumps(cfg)], a.source, a.timeout)
    if code != 0:
        raise RuntimeError(f"timing child exited {code}")
    return dict(json.loads(out))


def print_worst(rows: list[dict[str, Any]]) -> None:
    print(f"\nworst cases (fresh process each; limits {ARGS.max_gb:g} GB address space, "
          f"{ARGS.timeout:g} s)")
    print(f"{'case':28} {'render s':>9} {'peak RSS MB':>12}  outcome")
    for r in rows:
        print(f"{r['case']:28} {r['render_s']:9.3f} {r['peak_rss_mb']:12,.0f}  "
              f"{r['outcome'][:90]}")


def print_timing(t: dict[str, Any]) -> None:
    print(f"\neveryday renders, microseconds per render: wall / CPU medians and the least CPU "
          f"of {ARGS.runs} runs of {ARGS.n:,} (CPU of the worker included)")
    print(f"{'template':34} {'in-process':>22} {'via worker process':>24}")
    for name, (wall, cpu, least) in t["inprocess"].items():
        w = t["worker"].get(name)
        ws = f"{w[0]:7.1f} / {w[1]:6.1f} ({w[2]:.1f})" if w else "-"
        print(f"{name:34} {wall:7.1f} / {cpu:6.1f} ({least:.1f}) {ws:>24}")
    if "worker_start_ms" in t:
        print(f"worker start to first render: {t['worker_start_ms']:.1f} ms (median of 5)")


def main() -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="worst,overhead,worker")
    ap.add_argument("--source", type=Path, default=ROOT,
                    help="checkout whose agent package renders (default: this one)")
    ap.add_argument("--max-gb", type=float, default=8.0, help="address space of a worst case")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per child process")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000, help="renders per timing run")
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    ARGS = a = ap.parse_args()
    a.source = a.source.resolve()
    phases = set(a.only.split(","))
    result: dict[str, Any] = {"source": str(a.source)}
    log(f"rendering with {a.source}/agent")
    if "worst" in phases:
        result["worst"] = phase_worst(a)
        print_worst(result["worst"])
    if phases & {"overhead", "worker"}:
        result["timing"] = phase_timing(a, worker="worker" in phases)
        print_timing(result["timing"])
    if a.out:
        a.out.write_text(json.dumps(result, indent=2))
    return 0


ARGS: argparse.Namespace
if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a killed child leaves no core file
    sys.exit(main())
