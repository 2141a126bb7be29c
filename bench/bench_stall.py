"""How long one big Alertmanager body holds the daemon's event loop (issue 10, item 3).

Starts one ``alert-agent`` (pinned to --server-cpu), then POSTs a payload of --alerts alerts
three times (new alerts, the same again as repeats, another set of new ones) while probing
``GET /healthz`` every 5 ms from this process (pinned to --client-cpu). The worst probe latency
is how long other requests waited behind the payload.

    .venv/bin/python bench/bench_stall.py [--alerts 10000] [--labels 10] [--agent PATH]

``--agent`` runs another executable (e.g. a wrapper around an older tree) for a before/after.
Bounded: three POSTs, every wait has a deadline; the daemon is stopped by its PID and its data
dir removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import orjson
from aiohttp import ClientSession, ClientTimeout

ROOT = Path(__file__).resolve().parent.parent


def payload(n: int, labels: int, tag: int) -> bytes:
    """An Alertmanager v4 body of ``n`` alerts with ``labels`` labels each (~490 bytes)."""
    alerts = []
    for i in range(n):
        ls = {"alertname": f"Storm{i % 20}", "instance": f"host-{tag}-{i}:9100",
              "cluster": "prod-eu"}
        ls.update({f"l{j}": f"value-{j}" for j in range(labels - 3)})
        alerts.append({"status": "firing", "labels": ls,
                       "annotations": {"summary": f"CPU high on host-{i}",
                                       "description": "x" * 80},
                       "startsAt": "2026-04-14T10:25:00Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://prom:9090/graph",
                       "fingerprint": f"{tag}{i:015x}"})
    return orjson.dumps({"version": "4", "status": "firing", "receiver": "x",
                         "groupKey": "{}", "alerts": alerts})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(http: ClientSession, base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"alert-agent exited with {proc.returncode}")
        try:
            async with http.get(base + "/healthz") as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("alert-agent did not answer /healthz within 30 s")


async def one_post(http: ClientSession, base: str, body: bytes) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            async with http.get(base + "/healthz") as r:
                await r.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    async with http.post(base + "/hooks/alertmanager", data=body,
                         headers={"Content-Type": "application/json"}) as r:
        await r.read()
        status = r.status
    took = time.perf_counter() - started
    await asyncio.sleep(0.05)
    done.set()
    await task
    return status, took, latencies


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--alerts", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=10)
    ap.add_argument("--agent", default=str(ROOT / ".venv/bin/alert-agent"))
    ap.add_argument("--rules", default=str(ROOT / "rules"))
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", type=int, default=1)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})
    data = tempfile.mkdtemp(prefix="alert-agent-stall-")
    port = free_port()
    env = dict(os.environ, ALERT_AGENT_HOST="127.0.0.1", ALERT_AGENT_PORT=str(port),
               ALERT_AGENT_DATA_DIR=data, ALERT_AGENT_RULES_DIR=args.rules,
               ALERT_AGENT_API_KEYS="sk_live_" + "a" * 32, ALERT_AGENT_LOG__LEVEL="warning",
               ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET="whsec_" + "b" * 24)
    with open(Path(data) / "agent.log", "wb") as log:
        proc = subprocess.Popen(["taskset", "-c", args.server_cpu, args.agent, "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession(timeout=ClientTimeout(total=120)) as http:
            await wait_ready(http, base, proc)
            for tag, label in ((1, "new"), (1, "repeat"), (2, "new")):
                body = payload(args.alerts, args.labels, tag)
                status, took, lat = await one_post(http, base, body)
                lat.sort()
                print(f"{label:6s} {args.alerts} alerts, {len(body) / 1e6:.1f} MB: {status} in "
                      f"{took * 1000:.0f} ms; /healthz during it: max {lat[-1] * 1000:.0f} ms, "
                      f"p50 {lat[len(lat) // 2] * 1000:.1f} ms ({len(lat)} probes)", flush=True)
                await asyncio.sleep(1.0)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
