"""The OpenAPI document fuzzed against a live daemon with schemathesis.

One real ``python -m agent run`` on 127.0.0.1 (webhook channel off, so no generated URL is ever
contacted; the repo's rules, so generic sources exist), and two ``st run`` processes at once,
one per key kind (sk_live_ and sk_test_): every operation of ``/openapi.json``, generated valid
and invalid requests. It fails on any 5xx, any answer the document does not describe (status,
content type, body schema, headers), any schemathesis error, fewer than ``MIN_CASES`` cases,
a traceback or error event in the daemon's log, or the daemon exiting.

Two processes, not ``--workers``: hypothesis describes lambdas with ``ast.parse``, which is not
thread-safe on CPython 3.11 ("AST constructor recursion depth mismatch"). Each run is random
(its seed is in the failure message: ``st run ... --seed N`` replays it).
Budget: ``FUZZ_MAX_EXAMPLES`` per operation and key kind; the printed line gives cases, wall and
CPU time (the README's Development section has the figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.test_process import (  # noqa: F401 - spawn is a fixture
    Daemon,
    Spawn,
    daemon_env,
    spawn,
    wait_exit,
    wait_ready,
)
from tests.helpers import LIVE_KEY, TEST_KEY

REPO = Path(__file__).resolve().parents[2]
MIN_CASES = 10_000
# Per operation and key kind; schemathesis adds its coverage-phase cases on top.
FUZZ_MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "250"))
# A fixed seed keeps CI reproducible (a red run replays exactly); FUZZ_SEED=random explores.
FUZZ_SEED = os.environ.get("FUZZ_SEED", "20261201")
FUZZ_TIMEOUT_S = 540.0
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")
# Generic sources of rules/30-generic.yaml: most generated {name}s should reach a mapping.
CONFIG = """
[dictionaries.generic-sources]
values = ["shell", "uptime-kuma"]

[parameters]
"path.name" = { dictionary = "generic-sources", probability = 0.8 }

# The links are explicit in the document. Location-header inference also scans 2xx bodies for
# URLs, and schemathesis 4.32 crashes on one it cannot split ("http://[": "Invalid IPv6 URL"),
# which our API legitimately echoes back (an alert's generatorURL).
[phases.stateful.inference]
algorithms = ["dependency-analysis"]
"""


def st_command(url: str, key: str, report_dir: Path, config: Path) -> list[str]:
    st = Path(sys.executable).with_name("st")
    return [
        str(st), "--config-file", str(config), "run", f"{url}/openapi.json",
        "-H", f"Authorization: Bearer {key}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(FUZZ_MAX_EXAMPLES),
        "--workers", "1",
        "--generation-database", "none",
        *([] if FUZZ_SEED == "random" else ["--seed", FUZZ_SEED]),
        "--request-timeout", "10",
        "--no-color",
        "--report", "json", "--report-dir", str(report_dir),
    ]


async def run_st(argv: list[str], cwd: Path, log: Path) -> int:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=asyncio.subprocess.STDOUT)
        try:
            return await asyncio.wait_for(proc.wait(), FUZZ_TIMEOUT_S)
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()


async def watch_daemon(d: Daemon, runs: asyncio.Future[Any]) -> None:
    """Fail as soon as the daemon exits while the fuzzers run."""
    while not runs.done():
        if d.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {d.proc.returncode} during the fuzz")
        await asyncio.sleep(0.2)


def report(report_dir: Path) -> dict[str, Any]:
    (path,) = report_dir.glob("*.json")
    return dict(json.loads(path.read_text()))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def log_problems(d: Daemon) -> list[dict[str, Any]]:
    """Events with a traceback, or at error level (an unhandled error is logged that way)."""
    return [e for e in d.events(strict=True)
            if "exception" in e or e.get("level") in ("error", "critical")]


@pytest.mark.timeout(FUZZ_TIMEOUT_S + 120)
async def test_schemathesis_finds_nothing(spawn: Spawn, tmp_path: Path) -> None:  # noqa: F811
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    env = daemon_env(
        tmp_path / "data",
        ALERT_AGENT_API_KEYS=f"{LIVE_KEY},{TEST_KEY}",
        ALERT_AGENT_RULES_DIR=str(rules),
        ALERT_AGENT_CHANNELS__WEBHOOK__ENABLED="false",
        # High enough that 429 stays rare (it is documented, and checked when it happens).
        ALERT_AGENT_API__RATE_LIMIT__REQUESTS_PER_MINUTE="1000000",
    )
    d = spawn(env)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(d, http)
        async with http.get(f"{url}/openapi.json") as r:
            assert r.status == 200 and (await r.json())["openapi"].startswith("3.1")

    started, cpu_before, daemon_before = time.monotonic(), children_cpu(), cpu_seconds(d.pid)
    kinds = {"live": LIVE_KEY, "test": TEST_KEY}
    for kind in kinds:
        (tmp_path / kind).mkdir()
    runs = asyncio.gather(*(
        run_st(st_command(url, key, tmp_path / kind / "report", config), tmp_path / kind,
               tmp_path / kind / "st.log")
        for kind, key in kinds.items()))
    await asyncio.gather(runs, watch_daemon(d, runs))
    codes = runs.result()
    elapsed = time.monotonic() - started
    st_cpu, daemon_cpu = children_cpu() - cpu_before, cpu_seconds(d.pid) - daemon_before

    outcomes = {kind: report(tmp_path / kind / "report") for kind in kinds}
    cases = {kind: o["test_cases"]["generated"] for kind, o in outcomes.items()}
    total = sum(cases.values())
    # CPU time tells what an idle machine would take; wall time here depends on the neighbours.
    print(f"fuzz: {total} cases in {elapsed:.0f}s ({total / elapsed:.0f}/s) {cases}; "
          f"CPU: schemathesis {st_cpu:.0f}s, daemon {daemon_cpu:.0f}s")
    for (kind, o), code in zip(outcomes.items(), codes, strict=True):
        log = (tmp_path / kind / "st.log").read_text(errors="replace")
        summary = {k: o[k] for k in ("seed", "failures", "errors", "phases", "test_cases")}
        assert code == 0 and not o["failures"] and not o["errors"], (
            f"{kind} key: schemathesis exit {code}: {json.dumps(summary)}\n{log[-20000:]}")
    assert total >= MIN_CASES, cases
    assert log_problems(d) == []

    os.kill(d.pid, signal.SIGTERM)
    assert await wait_exit(d) == 0, d.stderr()[-5000:]
