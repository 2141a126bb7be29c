"""End to end: the real daemon (``python -m agent run``) as a child process.

- SIGKILL with scheduled work queued, restart: nothing accepted is lost, nothing is sent twice;
- SIGTERM: stop accepting, drain the in-flight delivery, exit 0, keep scheduled rows queued;
- first run without keys: one live and one test key in a 0600 file, its path (not the keys)
  on stdout, only hashes in the database;
- ``alert-agent keys`` beside the running daemon: created and revoked keys apply at once, and a
  revocation holds across SIGHUP and restart;
- sd_notify: READY, WATCHDOG, RELOADING + MONOTONIC_USEC on SIGHUP, STOPPING on SIGTERM.

Only 127.0.0.1. The webhook receiver is the ``sink`` fixture (an aiohttp server in this process).
Every child is killed by its PID at teardown; every wait polls against a deadline.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import LIVE_KEY, WEBHOOK_SECRET, Sink, auth, wait_until

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
SCHEDULE_AHEAD_S = 3.0
# sun_path holds 108 bytes including the terminating NUL.
MAX_SUN_PATH = 107
# Variables a test runner may itself have inherited from systemd; the child gets only ours.
_INHERITED_SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                           "LISTEN_PID", "LISTEN_FDNAMES")

Spawn = Callable[[dict[str, str]], "Daemon"]


# --- the daemon process ------------------------------------------------------------------------


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def events(self, strict: bool = False) -> list[dict[str, Any]]:
        """The JSON log lines written so far (a trailing partial line is ignored).

        ``strict``: every complete stderr line must be a JSON object (no stray tracebacks).
        """
        out: list[dict[str, Any]] = []
        for line in self.stderr().splitlines(keepends=True):
            if not line.endswith("\n") or not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                if strict:
                    raise AssertionError(f"non-JSON line on stderr: {line!r}") from None
                continue
            assert isinstance(ev, dict), line
            out.append(ev)
        return out

    def event_names(self) -> list[str]:
        return [str(ev.get("event")) for ev in self.events(strict=True)]


def daemon_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ALERT_AGENT_") and k not in _INHERITED_SYSTEMD_VARS}
    env.update({
        "ALERT_AGENT_HOST": "127.0.0.1",
        "ALERT_AGENT_PORT": "0",
        "ALERT_AGENT_DATA_DIR": str(data_dir),
        "ALERT_AGENT_CHANNELS__WEBHOOK__ALLOW_LOOPBACK": "true",  # the sinks are on 127.0.0.1
        "ALERT_AGENT_RULES_DIR": str(data_dir.parent / "rules"),
        "ALERT_AGENT_LOG__FORMAT": "json",
        "ALERT_AGENT_API__SCHEDULE_MIN_AHEAD_SECONDS": "1",
        "ALERT_AGENT_DELIVERY__POLL_INTERVAL_SECONDS": "0.05",
        "ALERT_AGENT_DELIVERY__SHUTDOWN_GRACE_SECONDS": "5",
    })
    env.update(overrides)
    return env


def configured_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    return daemon_env(data_dir, ALERT_AGENT_API_KEYS=LIVE_KEY,
                      ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET=WEBHOOK_SECRET, **overrides)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``python -m agent run`` children; whatever still runs at teardown is SIGKILLed."""
    started: list[Daemon] = []
    numbers = itertools.count()

    def start(env: dict[str, str]) -> Daemon:
        n = next(numbers)
        out, err = tmp_path / f"daemon{n}.stdout", tmp_path / f"daemon{n}.stderr"
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run"],
                env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
            )
        d = Daemon(proc, out, err)
        started.append(d)
        return d

    try:
        yield start
    finally:
        for d in started:
            if d.proc.poll() is None:
                os.kill(d.pid, signal.SIGKILL)
            d.proc.wait(timeout=10)


async def wait_listening(d: Daemon, timeout: float = START_TIMEOUT_S) -> str:
    """The URL of the ``listening`` log event; fails early (with the log) if the child died."""
    deadline = time.monotonic() + timeout
    while True:
        for ev in d.events():
            if ev.get("event") == "listening":
                d.url = str(ev["url"])
                return d.url
        rc = d.proc.poll()
        if rc is not None:
            raise AssertionError(f"daemon exited with {rc} before listening:\n{d.stderr()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"daemon not listening within {timeout}s:\n{d.stderr()}")
        await asyncio.sleep(0.02)


async def wait_ready(d: Daemon, http: aiohttp.ClientSession) -> str:
    url = await wait_listening(d)
    async with http.get(f"{url}/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"status": "ok"}
    async with http.get(f"{url}/readyz") as r:
        assert r.status == 200, await r.text()
    return url


async def wait_exit(d: Daemon, timeout: float = STOP_TIMEOUT_S) -> int:
    deadline = time.monotonic() + timeout
    while (rc := d.proc.poll()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {d.pid} still running after {timeout}s")
        await asyncio.sleep(0.02)
    return rc


async def terminate(d: Daemon) -> None:
    os.kill(d.pid, signal.SIGTERM)
    rc = await wait_exit(d)
    assert rc == 0, d.stderr()


# --- the API -----------------------------------------------------------------------------------


def iso_z(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def post_send(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                    key: str = LIVE_KEY) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/v1/notifications/send", json=body, headers=auth(key)) as r:
        return r.status, await r.json(content_type=None)


async def send_ok(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                  key: str = LIVE_KEY) -> str:
    status, out = await post_send(http, url, body, key)
    assert status == 201, out
    assert out["status"] == "queued", out
    assert out["id"].startswith("ntf_"), out
    return str(out["id"])


async def get_notification(http: aiohttp.ClientSession, url: str, nid: str) -> dict[str, Any]:
    async with http.get(f"{url}/v1/notifications/{nid}", headers=auth()) as r:
        body = await r.json(content_type=None)
        assert r.status == 200, body
        return dict(body)


async def statuses(http: aiohttp.ClientSession, url: str, ids: list[str]) -> dict[str, str]:
    return {nid: str((await get_notification(http, url, nid))["status"]) for nid in ids}


async def wait_delivered(http: aiohttp.ClientSession, url: str, ids: list[str],
                         timeout: float = 15.0) -> None:
    async def done() -> bool:
        return set((await statuses(http, url, ids)).values()) == {"delivered"}

    await wait_until(done, timeout=timeout, interval=0.05)


# --- the webhook sink --------------------------------------------------------------------------


def _headers(rec: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in rec["headers"].items()}


def received_ids(sink: Sink) -> list[str]:
    return [str(json.loads(rec["body"])["id"]) for rec in sink.received]


def assert_signed(sink: Sink, secret: str) -> None:
    for rec in sink.received:
        expected = "sha256=" + hmac.new(secret.encode(), rec["body"], hashlib.sha256).hexdigest()
        got = _headers(rec).get("x-alert-agent-signature", "")
        assert hmac.compare_digest(got, expected), f"bad signature {got!r} for {rec['body']!r}"


def data_dir_bytes(data_dir: Path) -> bytes:
    """Every file of the data dir (db, -wal, -shm, the generated secret...), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def db_bytes(data_dir: Path) -> bytes:
    """The database and its -wal and -shm, concatenated."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("alert-agent.db*")))


# --- 1. crash safety ---------------------------------------------------------------------------


async def test_sigkill_then_restart_delivers_each_accepted_notification_exactly_once(
    spawn: Spawn, sink: Sink, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = configured_env(data)
    first = spawn(env)
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(first, http)
        messages: dict[str, str] = {}
        due_at = time.time() + SCHEDULE_AHEAD_S
        scheduled: list[str] = []
        for i in range(20):
            body = {"channel": "webhook", "to": sink.url, "message": f"scheduled {i}",
                    "schedule_at": iso_z(due_at), "idempotency_key": f"crash-scheduled-{i}"}
            scheduled.append(await send_ok(http, url, body))
            messages[scheduled[-1]] = body["message"]
        immediate_bodies = [{"channel": "webhook", "to": sink.url, "message": f"now {i}",
                             "idempotency_key": f"crash-now-{i}"} for i in range(5)]
        immediate: list[str] = []
        for body in immediate_bodies:
            immediate.append(await send_ok(http, url, body))
            messages[immediate[-1]] = body["message"]

        await wait_until(lambda: len(sink.received) >= 5, timeout=10)
        # Sent, then recorded: a kill between the two re-sends by design (at-least-once), so
        # crash only once the store says delivered.
        await wait_delivered(http, url, immediate)
        assert set((await statuses(http, url, scheduled)).values()) == {"queued"}
        assert time.time() < due_at, "test too slow: scheduled rows came due before the crash"

        os.kill(first.pid, signal.SIGKILL)
        assert await wait_exit(first) == -signal.SIGKILL
        assert sorted(received_ids(sink)) == sorted(immediate), "scheduled rows sent early"

        second = spawn(env)
        url2 = await wait_ready(second, http)
        # Nothing accepted before the crash was lost.
        after = await statuses(http, url2, scheduled + immediate)
        assert {after[n] for n in immediate} == {"delivered"}
        assert {after[n] for n in scheduled} <= {"queued", "delivered"}
        # The idempotency record survived the crash too: a retried request is a replay.
        status, replay = await post_send(http, url2, immediate_bodies[0])
        assert (status, replay["id"]) == (200, immediate[0])

        await wait_until(lambda: len(sink.received) >= 25, timeout=15)
        await wait_delivered(http, url2, scheduled + immediate)
        final = {n: await get_notification(http, url2, n) for n in scheduled + immediate}
        await terminate(second)  # nothing can be sent after this: the counts below are final

    all_ids = scheduled + immediate
    expected = Counter(all_ids)
    assert Counter(received_ids(sink)) == expected
    assert Counter(_headers(r)["idempotency-key"] for r in sink.received) == expected
    assert_signed(sink, WEBHOOK_SECRET)
    for rec in sink.received:
        body = json.loads(rec["body"])
        assert _headers(rec)["idempotency-key"] == body["id"]
        assert body["object"] == "notification"
        assert body["message"] == messages[body["id"]]
    for n in final.values():
        assert n["status"] == "delivered", n
        assert n["delivered_at"] is not None, n
        assert n["attempt_count"] == 1, n
    for d in (first, second):
        log = d.stderr()
        assert LIVE_KEY not in log
        assert WEBHOOK_SECRET not in log
    assert "stopped" in second.event_names()
    at_rest = data_dir_bytes(data)
    assert LIVE_KEY.encode() not in at_rest
    assert WEBHOOK_SECRET.encode() not in at_rest


# --- 2. graceful stop --------------------------------------------------------------------------


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


async def test_sigterm_drains_in_flight_delivery_and_keeps_scheduled_one(
    spawn: Spawn, sink: Sink, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = configured_env(data, ALERT_AGENT_PORT=str(port))
    first = spawn(env)
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(first, http)
        assert url == f"http://127.0.0.1:{port}"
        later = await send_ok(http, url, {
            "channel": "webhook", "to": sink.url, "message": "later",
            # Far enough ahead that a slow restart on a loaded machine cannot reach it.
            "schedule_at": iso_z(time.time() + 120.0),
        })
        sink.delay = 3.0  # the receiver holds its answer: this delivery is in flight
        in_flight = await send_ok(http, url, {"channel": "webhook", "to": sink.url,
                                              "message": "in flight"})
        await wait_until(lambda: len(sink.received) == 1, timeout=10)

        os.kill(first.pid, signal.SIGTERM)
        await wait_until(lambda: connection_refused(port), timeout=2.5)
        assert first.proc.poll() is None, "exited without waiting for the in-flight delivery"
        assert await wait_exit(first) == 0, first.stderr()
        names = first.event_names()
        assert "stopping" in names and "stopped" in names, names
        assert names.index("stopping") < names.index("stopped")
        assert "deliveries_abandoned_at_shutdown" not in names
        stopping = next(e for e in first.events() if e["event"] == "stopping")
        assert stopping["grace_seconds"] == 5.0

        sink.delay = 0.0
        second = spawn(env)  # same port, same data dir
        url2 = await wait_ready(second, http)
        assert url2 == url
        drained = await get_notification(http, url2, in_flight)
        assert (drained["status"], drained["attempt_count"]) == ("delivered", 1), drained
        kept = await get_notification(http, url2, later)
        assert (kept["status"], kept["attempt_count"]) == ("queued", 0), kept
        await terminate(second)

    assert Counter(received_ids(sink)) == Counter([in_flight])
    assert_signed(sink, WEBHOOK_SECRET)


# --- 3. first-run keys -------------------------------------------------------------------------


def printed_curl(stdout: str) -> list[str]:
    """The ``curl ...`` command of the first-run banner (backslash continuations joined)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("curl "))
    parts = []
    for line in lines[start:]:
        parts.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(" ".join(parts))


def shell_expand(word: str) -> str:
    """What ``sh`` makes of a double-quoted word (the banner's ``$(sed ...)`` included)."""
    done = subprocess.run(["sh", "-c", f'printf %s "{word}"'], capture_output=True, text=True,
                          timeout=10, check=True)
    return done.stdout


async def run_curl(http: aiohttp.ClientSession, argv: list[str]) -> tuple[int, dict[str, Any]]:
    """Do what ``curl -s -X METHOD -H ... -d ... URL`` would do."""
    assert argv[0] == "curl"
    method, headers, data, target = "GET", {}, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-s":
            continue
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = shell_expand(next(args)).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(args)
            method = "POST" if method == "GET" else method
        elif arg.startswith("http"):
            target = arg
        else:
            raise AssertionError(f"unexpected curl argument {arg!r}")
    assert target is not None
    async with http.request(method, target, headers=headers, data=data) as r:
        return r.status, await r.json(content_type=None)


KEY_RE = r"sk_(?:live|test)_[A-Za-z0-9_-]+"


def first_run_keys(data: Path) -> tuple[str, str]:
    """The live and test keys of the first-run file, checked to be private."""
    path = data / "first-run-api-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    (live,) = re.findall(r"^live: (sk_live_\S+)$", text, re.M)
    (test,) = re.findall(r"^test: (sk_test_\S+)$", text, re.M)
    return live, test


async def test_first_run_writes_keys_to_a_private_file_and_stores_only_hashes(
    spawn: Spawn, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = daemon_env(data)
    first = spawn(env)
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(first, http)
        out = first.stdout()
        # Before: both keys were printed here, i.e. into the journal.
        assert re.findall(KEY_RE, out) == [], out
        assert str(data / "first-run-api-keys") in out
        live, test = first_run_keys(data)
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "alert-agent.db").stat().st_mode) == 0o600
        curl = printed_curl(out)
        assert any(a.startswith(f"{url}/v1/") for a in curl), curl

        status, body = await run_curl(http, curl)  # the banner's line works as printed
        assert status == 201, body
        assert body["simulated"] is True
        status, body = await post_send(http, url, {"channel": "console", "to": "ops",
                                                   "message": "live"}, key=live)
        assert status == 201 and body["simulated"] is False, body

        for plain in (live, test):
            digest = hashlib.sha256(plain.encode()).hexdigest().encode()
            at_rest = db_bytes(data)  # the db and its -wal, as they are while running
            assert plain.encode() not in at_rest
            assert digest in at_rest, "the key's hash is not where the key should be stored"
        await terminate(first)
        at_rest = db_bytes(data)
        assert live.encode() not in at_rest and test.encode() not in at_rest

        second = spawn(env)
        url2 = await wait_ready(second, http)
        assert "sk_live_" not in second.stdout() and "sk_test_" not in second.stdout()
        assert "curl" not in second.stdout()
        assert first_run_keys(data) == (live, test)  # made once, not again
        for key, simulated in ((live, False), (test, True)):
            status, body = await post_send(http, url2, {"channel": "console", "to": "ops",
                                                        "message": "again"}, key=key)
            assert status == 201 and body["simulated"] is simulated, body
        await terminate(second)

    for d in (first, second):
        log = d.stderr()
        assert live not in log and test not in log
        d.events(strict=True)
    generated = [e for e in first.events() if e["event"] == "api_keys_generated"]
    assert [e["path"] for e in generated] == [str(data / "first-run-api-keys")]
    assert "api_keys_generated" not in second.event_names()


async def test_first_run_keys_are_not_lost_when_the_port_is_taken(
    spawn: Spawn, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        first = spawn(daemon_env(data, ALERT_AGENT_PORT=str(taken.getsockname()[1])))
        assert await wait_exit(first, timeout=START_TIMEOUT_S) == 1
    assert "listen_failed" in first.event_names()
    assert str(data / "first-run-api-keys") in first.stdout()
    second = spawn(daemon_env(data))
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(second, http)
        live, _ = first_run_keys(data)  # stored as hashes, and readable by the operator
        status, body = await post_send(http, url, {"channel": "console", "to": "ops",
                                                   "message": "hi"}, key=live)
        assert status == 201, body
        await terminate(second)


# --- 4. sd_notify ------------------------------------------------------------------------------


class NotifyReceiver:
    """Stand-in for systemd's notify socket: an AF_UNIX datagram socket read from the loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.seen: list[str] = []

    async def recv(self, timeout: float) -> tuple[float, list[str]]:
        loop = asyncio.get_running_loop()
        try:
            raw = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except TimeoutError:
            raise AssertionError(f"no datagram within {timeout}s; seen: {self.seen}") from None
        text = raw.decode()
        self.seen.append(text)
        return time.monotonic(), text.split("\n")

    async def expect(self, predicate: Callable[[list[str]], bool],
                     timeout: float = 5.0) -> list[str]:
        """Read datagrams until one matches ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            _, lines = await self.recv(max(0.01, deadline - time.monotonic()))
            if predicate(lines):
                return lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyReceiver]:
    path = str(tmp_path / "notify.sock")
    short_dir = None
    if len(path) > MAX_SUN_PATH:
        short_dir = tempfile.TemporaryDirectory(prefix="sd-", dir="/tmp")
        path = os.path.join(short_dir.name, "n.sock")
    rx = NotifyReceiver(path)
    try:
        yield rx
    finally:
        rx.close()
        if short_dir is not None:
            short_dir.cleanup()


def _is_watchdog(lines: list[str]) -> bool:
    return lines == ["WATCHDOG=1"]


async def test_sd_notify_ready_watchdog_reload_stopping(
    spawn: Spawn, notify_socket: NotifyReceiver, tmp_path: Path
) -> None:
    rx = notify_socket
    port = free_port()
    env = configured_env(tmp_path / "data", ALERT_AGENT_PORT=str(port),
                         NOTIFY_SOCKET=rx.path, WATCHDOG_USEC="400000")
    d = spawn(env)
    async with aiohttp.ClientSession() as http:
        _, first = await rx.recv(START_TIMEOUT_S)
        url = f"http://127.0.0.1:{port}"
        assert first == ["READY=1", f"STATUS=listening on {url}"]
        # READY means ready: no retry here.
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200 and await r.json() == {"status": "ok"}
        async with http.get(f"{url}/readyz") as r:
            assert r.status == 200
        assert await wait_listening(d, timeout=1.0) == url

        pings: list[float] = []
        deadline = time.monotonic() + 5.0
        while len(pings) < 3:
            at, lines = await rx.recv(max(0.01, deadline - time.monotonic()))
            assert _is_watchdog(lines), lines
            pings.append(at)
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        # Half of WATCHDOG_USEC (0.2 s): well inside the 0.4 s timeout, and not a busy loop.
        assert min(gaps) > 0.1, gaps
        assert sum(gaps) / len(gaps) < 0.4, gaps

        os.kill(d.pid, signal.SIGHUP)
        reloading = await rx.expect(lambda lines: not _is_watchdog(lines))
        assert reloading[0] == "RELOADING=1", reloading
        usec = [line for line in reloading if line.startswith("MONOTONIC_USEC=")]
        assert len(usec) == 1, reloading
        ours = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert abs(int(usec[0].removeprefix("MONOTONIC_USEC=")) - ours) < 5_000_000, usec
        again = await rx.expect(lambda lines: not _is_watchdog(lines))
        assert again[0] == "READY=1", again
        await wait_until(lambda: "reloaded" in d.event_names(), timeout=5)
        async with http.get(f"{url}/v1/notifications", headers=auth()) as r:
            assert r.status == 200, "the configured key must survive a reload"

        os.kill(d.pid, signal.SIGTERM)
        stopping = await rx.expect(lambda lines: not _is_watchdog(lines))
        assert stopping == ["STOPPING=1"]
        assert await wait_exit(d) == 0, d.stderr()

    names = d.event_names()
    assert names.index("listening") < names.index("reloaded") < names.index("stopping")
    assert "stopped" in names
    assert LIVE_KEY not in d.stderr() and WEBHOOK_SECRET not in d.stderr()


# --- 5. alert-agent keys beside the running daemon ---------------------------------------------


def keys_cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """``alert-agent keys ...`` as an operator would run it: the daemon's environment, its own
    process, no lock of the daemon's taken."""
    done = subprocess.run([sys.executable, "-m", "agent", "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


async def status_with(http: aiohttp.ClientSession, url: str, key: str) -> int:
    async with http.get(f"{url}/v1/notifications?limit=1", headers=auth(key)) as r:
        return r.status


async def test_keys_command_applies_to_the_running_daemon_at_once(
    spawn: Spawn, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = configured_env(data)
    d = spawn(env)
    async with aiohttp.ClientSession() as http:
        url = await wait_ready(d, http)
        code, out, err = keys_cli(env, "create", "--test", "--name", "e2e")
        assert code == 0, err
        new = out.strip()
        new_id = re.search(r"created (key_[0-9a-f]{12})", err)
        assert new_id is not None, err
        assert await status_with(http, url, new) == 200  # no SIGHUP, no restart

        code, out, err = keys_cli(env, "revoke", new_id[1])
        assert code == 0, err
        assert await status_with(http, url, new) == 401  # the first request after it returned

        code, out, _ = keys_cli(env, "list")
        live_id = next(line.split()[0] for line in out.splitlines() if " config " in line)
        code, out, err = keys_cli(env, "revoke", live_id)  # a key still in ALERT_AGENT_API_KEYS
        assert code == 0 and "still configured" in out, err
        assert await status_with(http, url, LIVE_KEY) == 401

        os.kill(d.pid, signal.SIGHUP)
        await wait_until(lambda: "reloaded" in d.event_names(), timeout=10)
        assert await status_with(http, url, LIVE_KEY) == 401
        assert await status_with(http, url, new) == 401
        await terminate(d)

        code, out, err = keys_cli(env, "create", "--name", "while-stopped")
        assert code == 0, err
        stopped_key = out.strip()
        again = spawn(env)
        url = await wait_ready(again, http)
        assert await status_with(http, url, LIVE_KEY) == 401
        assert await status_with(http, url, new) == 401
        assert await status_with(http, url, stopped_key) == 200
        await terminate(again)
    for proc in (d, again):
        log = proc.stderr()
        assert new not in log and stopped_key not in log and LIVE_KEY not in log
