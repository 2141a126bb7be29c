#!/usr/bin/env python3
"""Fan-out of alert-agent next to Alertmanager's, in the same run (issue 11).

    .venv/bin/python bench/bench_fanout.py [--groups 1000] [--large 10000] [--runs 3]
                                           [--base-pythonpath DIR] [--skip-am] [--out FILE]

What ../shared/bench/am_bench.py ``fanout()`` does for Alertmanager, done for the agent:
``--groups`` alerts, each with a distinct ``group`` label, rules with ``group_by: [alertname,
group]`` and ``group_wait: 0s`` (one notification per alert) to the webhook channel, posted as
Alertmanager webhooks of 10 alerts to ``/hooks/alertmanager`` one after the other from one
client; the time from the first POST to the last webhook the sink received, and webhooks/s in
the burst (first to last webhook). Alertmanager's figure comes from am_bench.fanout itself
(group_wait 0s, its alerts POSTed to /api/v2/alerts), run alternately with the agent's in the
same invocation, against the same sink process (the shared sink.py). ``--large`` repeats both
with more groups for a steadier rate (0 skips it). ``--base-pythonpath DIR`` adds a third
variant, the agent with PYTHONPATH=DIR (e.g. ``git archive main | tar -x -C DIR``), so old and
new code run in the same invocation.

The daemon and Alertmanager are pinned to --server-cpu (0), the sink and this client to
--client-cpu (1). Every process started here is stopped by its PID; ports are free ports on
127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_api import SHARED, Daemon, free_port, log, metric, proc_cpu_s
from bench_ingest import thread_cpu_s

sys.path.insert(0, str(SHARED))
import am_bench  # noqa: E402  (the Alertmanager side: start_am, fanout, Proc)
import payload  # noqa: E402

RULES = """\
defaults:
  notify: [{{channel: webhook, to: "{sink}/hook"}}]
  group_by: [alertname, group]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  send_resolved: true
"""


def post(url: str, body: bytes, timeout: float = 30.0) -> int:
    req = urllib.request.Request(url, method="POST", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()
        return int(r.status)


def sink_stats(sink_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(sink_url + "/stats", timeout=10) as r:
        return dict(json.loads(r.read()))


def agent_bodies(groups: int) -> list[bytes]:
    """The alerts of am_bench.fanout (same seed, fresh), as webhook v4 bodies of 10."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    alerts = payload.make_alerts(groups, 11, True, now, fresh=True)
    return [json.dumps(payload.webhook(alerts[i:i + 10]), separators=(",", ":")).encode()
            for i in range(0, len(alerts), 10)]


def agent_fanout(a: argparse.Namespace, groups: int, sink_url: str, sink_pid: int,
                 pythonpath: str | None) -> dict[str, Any]:
    rules = Path(tempfile.mkdtemp(prefix="fanout-rules-"))
    try:
        (rules / "00-fanout.yaml").write_text(RULES.format(sink=sink_url))
        env = {"ALERT_AGENT_RULES_DIR": str(rules)}
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        bodies = agent_bodies(groups)
        with Daemon(a, env) as d:
            urllib.request.urlopen(urllib.request.Request(sink_url + "/reset", method="POST",
                                                          data=b""), timeout=10).read()
            spy = profile(a, d.pid, pythonpath)
            c0, s0, th0 = proc_cpu_s(d.pid), proc_cpu_s(sink_pid), thread_cpu_s(d.pid)
            t0 = time.time()
            for b in bodies:
                st = post(d.url + "/hooks/alertmanager", b)
                assert st == 200, st
            t_ingested = time.time()
            end = t0 + a.timeout
            s: dict[str, Any] = {}
            while time.time() < end:
                s = sink_stats(sink_url)
                if s["posts"] >= groups:
                    break
                time.sleep(0.05)
            time.sleep(1.5)  # as am_bench: anything after the expected count (duplicates)?
            s = sink_stats(sink_url)
            cpu, sink_cpu = proc_cpu_s(d.pid) - c0, proc_cpu_s(sink_pid) - s0
            th1 = thread_cpu_s(d.pid)
            text = d.metrics()
            commits = metric(text, "alert_agent_store_commits_total")
            ops = metric(text, "alert_agent_store_commit_operations_sum")
            if spy is not None:
                spy.wait(timeout=a.pyspy_seconds + 30)
            rss = d.rss_mb()
            by_status = dict(d.query("SELECT status, count(*) FROM notifications "
                                     "GROUP BY status"))
    finally:
        shutil.rmtree(rules, ignore_errors=True)
    res: dict[str, Any] = {
        "groups": groups, "posts": s.get("posts"), "ingest_s": t_ingested - t0,
        "first_webhook_s": (s["first"] - t0) if s.get("first") else None,
        "last_webhook_s": (s["last"] - t0) if s.get("last") else None,
        "agent_cpu_s": cpu, "main_thread_cpu_s": th1[0] - th0[0],
        "other_threads_cpu_s": th1[1] - th0[1], "commits": commits, "store_ops": ops,
        "sink_cpu_s": sink_cpu, "rss_mb": rss, "notifications": by_status,
    }
    if s.get("first") and s.get("last") and s["posts"] > 1:
        res["webhooks_per_s_in_burst"] = (s["posts"] - 1) / max(1e-6, s["last"] - s["first"])
    return res


def profile(a: argparse.Namespace, pid: int, pythonpath: str | None
            ) -> subprocess.Popen[bytes] | None:
    """With --pyspy: record the first run of each agent variant (raw, for pyspy_summary.py)."""
    if a.pyspy is None or pythonpath in a.profiled:
        return None
    a.profiled.add(pythonpath)
    out = a.pyspy.with_suffix(f".{'base' if pythonpath else 'agent'}.txt")
    log(f"  py-spy -> {out}")
    return subprocess.Popen(
        [str(a.agent.parent / "py-spy"), "record", "-d", str(a.pyspy_seconds), "-r", "250",
         "--threads", "--nonblocking", "--format", "raw", "-o", str(out), "--pid", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def am_fanout(a: argparse.Namespace, groups: int, sink_pid: int, tag: str) -> dict[str, Any]:
    ns = argparse.Namespace(groups=groups)
    return dict(am_bench.fanout(ns, "0s", tag, sink_pid))


def line(name: str, r: dict[str, Any]) -> str:
    burst = r.get("webhooks_per_s_in_burst")
    last = r.get("last_webhook_s")
    cpu = r.get("agent_cpu_s", r.get("am_cpu_s"))
    threads = (f" (main {r['main_thread_cpu_s']:.2f}, SQLite {r['other_threads_cpu_s']:.2f}; "
               f"{r['commits']:.0f} commits of {r['store_ops']:.0f} store operations)"
               if "main_thread_cpu_s" in r else "")
    return (f"  {name:<12} {r['posts']:>6} webhooks for {r['groups']} groups; ingest "
            f"{r['ingest_s']:.3f} s, last webhook {last if last is None else round(last, 3)} s "
            f"after the first POST; {burst or 0:,.0f} webhooks/s in the burst; CPU "
            f"{cpu or 0:.2f} s{threads}; RSS {r.get('rss_mb') or 0:.0f} MB")


def run_size(a: argparse.Namespace, groups: int, sink_url: str, sink_pid: int
             ) -> dict[str, list[dict[str, Any]]]:
    variants: list[tuple[str, str | None]] = [("agent", None)]
    if a.base_pythonpath:
        variants.append(("agent@base", a.base_pythonpath))
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    if not a.skip_am:
        out["alertmanager"] = []
    for i in range(a.runs):  # alternate: agent, (base), AM, agent, ...
        if time.monotonic() > a.deadline:
            log("deadline reached; stopping")
            break
        for name, pp in variants:
            r = agent_fanout(a, groups, sink_url, sink_pid, pp)
            out[name].append(r)
            log(line(f"{name} #{i + 1}", r))
        if not a.skip_am:
            r = am_fanout(a, groups, sink_pid, f"fanout-{groups}-{i}")
            out["alertmanager"].append(r)
            log(line(f"AM #{i + 1}", r))
    return out


def summary(res: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, runs in res.items():
        rates = [r["webhooks_per_s_in_burst"] for r in runs if r.get("webhooks_per_s_in_burst")]
        lasts = [r["last_webhook_s"] for r in runs if r.get("last_webhook_s")]
        if rates:
            out[name] = {"burst_median": statistics.median(rates), "burst_min": min(rates),
                         "burst_max": max(rates), "last_median": statistics.median(lasts),
                         "complete": all(r["posts"] >= r["groups"] for r in runs)}
    am = out.get("alertmanager")
    for name, s in out.items():
        if am and name != "alertmanager":
            s["ratio_to_am"] = s["burst_median"] / am["burst_median"]
            s["ratio_to_am_end_to_end"] = am["last_median"] / s["last_median"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--large", type=int, default=10_000, help="a second size (0: skip)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base-pythonpath", help="also run the agent with this PYTHONPATH")
    ap.add_argument("--skip-am", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0, help="per run: wait for webhooks")
    ap.add_argument("--agent", type=Path,
                    default=Path(__file__).resolve().parent.parent / ".venv/bin/alert-agent")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=20.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--pyspy", type=Path, help="py-spy the first agent run(s) into FILE.*.txt")
    ap.add_argument("--pyspy-seconds", type=int, default=8)
    a = ap.parse_args()
    a.profiled = set()
    a.deadline = time.monotonic() + a.max_minutes * 60
    if not a.skip_am and not shutil.which("prometheus-alertmanager"):
        sys.exit("prometheus-alertmanager not found (apt-get install -y prometheus-alertmanager)")
    # Our own ports and directory: another am_bench run on the machine must not collide.
    base = Path(tempfile.mkdtemp(prefix="fanout-am-"))
    am_bench.BASE = str(base)
    am_bench.AM_CPU = a.server_cpu
    am_bench.AM_PORT, am_bench.SINK_PORT = free_port(), free_port()
    am_bench.AM_URL = f"http://127.0.0.1:{am_bench.AM_PORT}"
    am_bench.SINK_URL = sink_url = f"http://127.0.0.1:{am_bench.SINK_PORT}"
    sink = am_bench.Proc(["taskset", "-c", a.client_cpu, sys.executable,
                          str(SHARED / "sink.py"), "--port", str(am_bench.SINK_PORT)],
                         str(base / "sink.log"), sink_url + "/stats")
    os.sched_setaffinity(0, {int(c) for c in a.client_cpu.split(",")})
    results: dict[str, Any] = {}
    try:
        for groups in [g for g in (a.groups, a.large) if g]:
            log(f"fan-out: {groups} alerts in {groups} groups, group_wait 0")
            res = run_size(a, groups, sink_url, sink.pid)
            results[str(groups)] = {"runs": res, "summary": summary(res)}
    finally:
        sink.stop()
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
    for groups, r in results.items():
        print(f"\nfan-out, {groups} groups (median of runs; webhooks/s first->last webhook; "
              f"ratio = agent / Alertmanager in this run)")
        for name, s in r["summary"].items():
            ratio = s.get("ratio_to_am")
            print(f"  {name:<12} {s['burst_median']:>7,.0f} webhooks/s "
                  f"({s['burst_min']:,.0f}-{s['burst_max']:,.0f}), last webhook "
                  f"{s['last_median']:.3f} s after the first POST"
                  + (f", ratio {ratio:.2f} (end to end {s['ratio_to_am_end_to_end']:.2f})"
                     if ratio else "") + ("" if s["complete"] else "  INCOMPLETE"))
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
