#!/usr/bin/env python3
"""Cost of one regex label matcher on hostile and ordinary label values (issue 10, item 4).

    .venv/bin/python bench/bench_regex.py [--cpu 0] [--max-match-seconds 2] [--json]
    .venv/bin/python bench/bench_regex.py --routing [--cpu 0] [--routes 10000] [--json]

Operators write `=~` matchers; senders choose label values. This times `Matcher.matches` (the
call the router and the inhibitor make) for

  hostile   instance=~".*prod.*:9100.*" against "prod" repeated to 1 KB .. 1 MB with no ":9100"
            (a backtracking engine tries every "prod" for the first .*, then scans the rest for
            ":9100": quadratic); a size is skipped once one match at the previous size took more
            than --max-match-seconds, so the old engine stays bounded
  ordinary  the patterns of real routing files on short values
  routing   (--routing instead of the two above) route_alert with bench_ingest.py's 10,000-route
            rules (equality + regex per route, and the same routes regex-only), timed in CPU
            time of this thread as well as wall time: on a shared machine the CPU time moves
            less when other processes take the core, so before/after runs compare better

Each figure is the median of several timed batches (us per match); the answer is printed too, so
a faster engine that answers differently shows. Works on any tree that has
agent.routing.matchers.Matcher (before and after the RE2 change).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from agent.routing.matchers import Matcher, MatchType

HOSTILE_PATTERN = ".*prod.*:9100.*"
HOSTILE_SIZES = [1 << 10, 4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 1 << 20]
ORDINARY = [  # (pattern, value, what it stands for)
    ("critical|warning", "warning", "literal alternation"),
    ("svc-42", "svc-4242", "one literal, no match"),
    (".*prod.*:9100.*", "10.0.3.7-prod-eu:9100", "the hostile pattern, normal value"),
    ("(?i)db-[0-9]+\\.example\\.(com|org)", "DB-17.example.org", "(?i), class, alternation"),
    ("5\\d\\d", "503", "Perl class"),
    ("[\\p{Greek}]+", "αβγ", "Unicode class (RE2 only)"),
]


def per_match_us(fn: Callable[[], bool], budget_s: float = 0.3, batches: int = 5) -> float:
    """Median over ``batches`` of the mean time of ``fn`` in us; each batch ~budget/batches."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    n = max(1, min(200_000, int(budget_s / batches / once)))
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


def hostile(max_match_s: float) -> list[dict[str, Any]]:
    matcher = Matcher("instance", MatchType.REGEX, HOSTILE_PATTERN)
    rows: list[dict[str, Any]] = []
    last_s = 0.0
    for size in HOSTILE_SIZES:
        value = "prod" * (size // 4)
        labels = {"instance": value}
        if last_s > max_match_s:
            rows.append({"bytes": size, "skipped": f"previous size took {last_s:.2f} s"})
            continue
        t0 = time.perf_counter()
        answer = matcher.matches(labels)
        last_s = time.perf_counter() - t0
        # One more timed match is enough when a match is slow; batch the fast ones.
        us = last_s * 1e6 if last_s > 0.05 else per_match_us(partial(matcher.matches, labels))
        rows.append({"bytes": size, "us_per_match": us, "matches": answer})
    return rows


def ordinary() -> list[dict[str, Any]]:
    rows = []
    for pattern, value, what in ORDINARY:
        try:
            matcher = Matcher("x", MatchType.REGEX, pattern)
        except ValueError as exc:
            rows.append({"pattern": pattern, "what": what, "error": str(exc)})
            continue
        labels = {"x": value}
        rows.append({"pattern": pattern, "value": value, "what": what,
                     "us_per_match": per_match_us(partial(matcher.matches, labels)),
                     "matches": matcher.matches(labels)})
    return rows


def time_routing(rules: Any, alerts: list[Any], reps: int) -> dict[str, float]:
    """us per alert over ``reps`` batches: CPU time of this thread and wall time, min and median."""
    from agent.routing.router import route_alert

    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.thread_time(), time.perf_counter()
        for al in alerts:
            route_alert(rules, al)
        cpu.append((time.thread_time() - c0) / len(alerts) * 1e6)
        wall.append((time.perf_counter() - w0) / len(alerts) * 1e6)
    return {"alerts": len(alerts), "reps": reps, "cpu_us_min": min(cpu),
            "cpu_us_median": statistics.median(cpu), "wall_us_min": min(wall),
            "wall_us_median": statistics.median(wall)}


def routing(a: argparse.Namespace) -> dict[str, Any]:
    """bench_ingest.py's routing phase, timed in CPU time too (see the module docstring)."""
    from bench_ingest import make_alerts, write_big_rules

    from agent.routing.loader import load_rules
    from agent.routing.router import route_alert

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-regex-") as tmp:
        eq = write_big_rules(Path(tmp) / "eq", a.routes, True)
        rx = write_big_rules(Path(tmp) / "rx", a.routes, False)
        t0 = time.perf_counter()
        rules_eq = load_rules(Path(eq["dir"]))
        out["load_eq_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rules_rx = load_rules(Path(rx["dir"]))
        out["load_rx_s"] = time.perf_counter() - t0
    alerts = make_alerts(a.alerts, a.routes)
    sample = alerts[: a.regex_alerts]
    same = sum([d.route.id for d in route_alert(rules_eq, al)]
               == [d.route.id for d in route_alert(rules_rx, al)] for al in sample)
    out["routes"] = eq["routes"]
    out["equality"] = time_routing(rules_eq, alerts, a.reps)
    out["regex_only"] = time_routing(rules_rx, sample, a.reps)
    out["same_decisions"] = f"{same}/{len(sample)}"
    return out


def print_routing(res: dict[str, Any]) -> None:
    print(f"routing: {res['routes']:,} routes; load_rules {res['load_eq_s']:.2f} s (equality), "
          f"{res['load_rx_s']:.2f} s (regex-only); same decisions {res['same_decisions']}\n")
    print("| rules | alerts x reps | CPU us/alert min / median | wall us/alert min / median |")
    print("|---|---|---|---|")
    for key, what in (("equality", "equality + regex per route (indexed)"),
                      ("regex_only", "regex only (unindexed)")):
        r = res[key]
        print(f"| {what} | {r['alerts']:,} x {r['reps']} | {r['cpu_us_min']:,.2f} / "
              f"{r['cpu_us_median']:,.2f} | {r['wall_us_min']:,.2f} / {r['wall_us_median']:,.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", type=int, help="pin this process to one CPU")
    ap.add_argument("--max-match-seconds", type=float, default=2.0,
                    help="skip larger hostile values once one match took longer (2)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument("--routing", action="store_true", help="time route_alert instead")
    ap.add_argument("--routes", type=int, default=10_000, help="top-level routes (10,000)")
    ap.add_argument("--alerts", type=int, default=20_000, help="alerts routed, indexed (20,000)")
    ap.add_argument("--regex-alerts", type=int, default=300,
                    help="alerts routed, regex-only (300)")
    ap.add_argument("--reps", type=int, default=5, help="timed batches per rule set (5)")
    a = ap.parse_args()
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    if a.routing:
        res = routing(a)
        if a.json:
            print(json.dumps(res, indent=2))
        else:
            print_routing(res)
        return
    res = {"hostile": hostile(a.max_match_seconds), "ordinary": ordinary()}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f'hostile: instance=~"{HOSTILE_PATTERN}" against "prod" * (bytes / 4)\n')
    print("| bytes | us per match | matches |\n|---|---|---|")
    for r in res["hostile"]:
        if "skipped" in r:
            print(f"| {r['bytes']:,} | skipped ({r['skipped']}) | |")
        else:
            print(f"| {r['bytes']:,} | {r['us_per_match']:,.1f} | {r['matches']} |")
    print("\nordinary patterns\n\n| pattern | value | us per match | matches |\n|---|---|---|---|")
    for r in res["ordinary"]:
        if "error" in r:
            print(f"| `{r['pattern']}` | | rejected: {r['error']} | |")
        else:
            print(f"| `{r['pattern']}` ({r['what']}) | `{r['value']}` | "
                  f"{r['us_per_match']:.2f} | {r['matches']} |")


if __name__ == "__main__":
    main()
