#!/usr/bin/env python3
"""The storm's new-alert path in one process, without HTTP: CPU per alert, load-immune enough
for A/B runs and small enough for callgrind.

    .venv/bin/python bench/storm_inproc.py [--n 20000] [--per-post 1000] [--groups 100]
    PYTHONPATH=/tmp/base-tree .venv/bin/python bench/storm_inproc.py      # another tree
    .venv/bin/python bench/storm_inproc.py --n 10000 --bodies /tmp/b.hex  # generate once
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python bench/storm_inproc.py --n 10000 --bodies /tmp/b.hex  # instructions

What runs, as in the daemon: each body (bench_ingest.py's storm bodies, distinct alerts) is
decoded and parsed (``alertmanager.parse``), then ``Intake.ingest`` routes it and stores it
through the real group-commit ``Database`` (a fresh file under /tmp, WAL, synchronous=NORMAL),
``--concurrency`` bodies at a time. A fake clock advances ``--post-s`` per body; whenever a
group is due, ``Grouper.run_until_idle`` flushes (group_wait 1 s, group_interval 5 s, as the
storm's rules), and after the last body the clock jumps past group_interval and the rest is
flushed. No dispatcher: the notifications stay queued (their delivery is the fan-out path).

Prints process CPU seconds (all threads: the loop and the SQLite writer) per alert for the
ingest and the flushes, and checks every alert is stored and linked to a notification.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from agent.api.bodies import parse_json_object
from agent.grouping.grouper import Grouper
from agent.ingest import alertmanager
from agent.observability import Metrics, configure_logging
from agent.routing.inhibit import Inhibitor
from agent.routing.loader import load_rules
from agent.services.ingest import Inhibition, Intake
from agent.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import DEFAULTS_YAML, STORM_RULES, storm_bodies  # noqa: E402


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def load_bodies(a: argparse.Namespace) -> list[bytes]:
    """The storm's bodies; with --bodies FILE generated once and read back after (so a
    callgrind run counts the agent's instructions, not the generator's)."""
    if a.bodies is not None and a.bodies.exists():
        return [bytes.fromhex(line) for line in a.bodies.read_text().splitlines()]
    bodies = storm_bodies(a.n, a.per_post, a.groups)
    if a.bodies is not None:
        a.bodies.write_text("\n".join(b.hex() for b in bodies))
    return bodies


async def run(a: argparse.Namespace, work: Path) -> dict[str, float]:
    rules_dir = work / "rules"
    rules_dir.mkdir()
    (rules_dir / "00-defaults.yaml").write_text(
        DEFAULTS_YAML.format(group_by="alertname, group", group_wait="1s")
        .replace("group_interval: 5m", "group_interval: 5s"))
    (rules_dir / "10-storm.yaml").write_text(STORM_RULES)
    rules = load_rules(rules_dir)
    bodies = load_bodies(a)
    metrics = Metrics(CollectorRegistry())
    store = Store(work / "a.db", metrics)
    await store.open()
    clock = Clock(time.time())
    inhibition = Inhibition(store.alerts)
    grouper = Grouper(store.alerts, lambda: rules, metrics, lambda: None,
                      lambda: Inhibitor(()), clock=clock)
    intake = Intake(store.alerts, lambda: rules, metrics, clock, lambda: None, inhibition)
    ingest_cpu = flush_cpu = 0.0
    flushes = 0
    try:
        for first in range(0, len(bodies), a.concurrency):
            chunk = bodies[first:first + a.concurrency]
            c0 = time.process_time()
            await asyncio.gather(*(
                intake.ingest(alertmanager.parse(parse_json_object(b, 64), received_at=clock.t)
                              .alerts) for b in chunk))
            c1 = time.process_time()
            ingest_cpu += c1 - c0
            clock.t += a.post_s * len(chunk)
            due = await store.alerts.next_group_due()
            if due is not None and due <= clock.t:
                flushes += await grouper.run_until_idle()
                flush_cpu += time.process_time() - c1
        clock.t += 6.0  # past group_interval: the last tick
        c1 = time.process_time()
        flushes += await grouper.run_until_idle()
        last_flush_cpu = time.process_time() - c1
        flush_cpu += last_flush_cpu
        stored, linked, ntf = await store.db.read(lambda c: (
            c.execute("SELECT count(*) FROM alerts").fetchone()[0],
            c.execute("SELECT count(DISTINCT alert_seq) FROM alert_notifications").fetchone()[0],
            c.execute("SELECT count(*) FROM notifications").fetchone()[0]))
    finally:
        await store.close()
    return {"alerts": a.n, "stored": stored, "notified": linked, "notifications": ntf,
            "group_flushes": flushes, "ingest_cpu_s": ingest_cpu, "flush_cpu_s": flush_cpu,
            "last_flush_cpu_s": last_flush_cpu,
            "ingest_us_per_alert": ingest_cpu / a.n * 1e6,
            "flush_us_per_alert": flush_cpu / a.n * 1e6,
            "total_us_per_alert": (ingest_cpu + flush_cpu) / a.n * 1e6,
            "sqlite": sqlite3.sqlite_version}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--per-post", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--post-s", type=float, default=0.1, help="fake seconds per body (0.1)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--bodies", type=Path, help="cache the generated bodies in this file")
    a = ap.parse_args()
    configure_logging("warning")
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="storm-inproc-") as tmp:
            r = asyncio.run(run(a, Path(tmp)))
        print(json.dumps(r))
        ok = r["stored"] == a.n and r["notified"] == a.n
        print(f"ingest {r['ingest_us_per_alert']:.1f} us/alert, flush "
              f"{r['flush_us_per_alert']:.1f} us/alert, total {r['total_us_per_alert']:.1f} "
              f"us/alert CPU (the last flush, every group: {r['last_flush_cpu_s']:.2f} s); "
              f"stored {r['stored']}, notified {r['notified']}, "
              f"{r['notifications']} notifications: {'ok' if ok else 'INCOMPLETE'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
