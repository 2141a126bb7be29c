"""SMTP throughput of the email channel: one connection reused across messages versus one
connection per message, against a local aiosmtpd sink, plain and with STARTTLS.

    .venv/bin/python bench/bench_email.py                  # --n 500, plain and starttls
    .venv/bin/python bench/bench_email.py --n 2000 --modes plain --concurrency 4

The sink is the test suite's SMTP emulator (tests/emulators/smtp.py: aiosmtpd, every message
parsed and stored) in the same process and event loop as the channel, on 127.0.0.1. "reused" is
the channel as configured by default (its connection pool, ``--concurrency`` connections at
most); "per message" opens, uses and QUITs a connection for each message, as a sender without a
pool does. Messages are sent ``--concurrency`` at a time. Every run is bounded by ``--n`` and
``--timeout``; the figures are messages accepted per second, first send to last acceptance,
and the process's CPU time per message (client and sink together: steadier than the rate on a
shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # agent, tests.emulators

import trustme  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from agent.channels.base import Message  # noqa: E402
from agent.channels.email import EmailChannel, EmailSettings, build_email  # noqa: E402
from agent.observability import configure_logging, get_logger  # noqa: E402
from tests.emulators.smtp import SmtpEmulator  # noqa: E402

TO = "ana@example.com"
TEXT = "[FIRING:1] DiskFull (instance=db1)\n- disk 95% full on /var (db1)\n" * 4


def _secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    return None if value is None else value.get_secret_value()


def _message(i: int) -> Message:
    return Message(notification_id=f"ntf_bench{i}", channel="email", to=TO, text=TEXT,
                   subject="[FIRING:1] DiskFull", severity="critical", priority="high",
                   created_at=time.time())


@asynccontextmanager
async def _sink(mode: str, tmp: Path) -> AsyncIterator[tuple[SmtpEmulator, dict[str, Any]]]:
    """The SMTP sink for ``mode`` and the channel settings that reach it."""
    settings: dict[str, Any] = {"enabled": True, "host": "127.0.0.1",
                                "from_address": "alerts@example.com", "timeout_seconds": 10.0}
    emu = SmtpEmulator()
    if mode == "starttls":
        ca = trustme.CA()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
        emu = SmtpEmulator(starttls=ctx)
        settings |= {"starttls": True, "ca_file": str(tmp / "ca.pem")}
    async with emu.serve() as port:
        yield emu, settings | {"port": port}


def _channel(settings: dict[str, Any], connections: int) -> EmailChannel:
    cfg = EmailSettings.model_validate(settings | {"max_connections": connections})
    return build_email(cfg, _secret, get_logger("channel.email"))


async def _drive(n: int, concurrency: int, send: Callable[[int], Awaitable[None]]
                 ) -> tuple[float, float]:
    """Send ``n`` messages ``concurrency`` at a time; (wall seconds, CPU seconds) taken."""
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await send(i)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, time.process_time() - cpu


async def run(mode: str, n: int, concurrency: int, tmp: Path) -> dict[str, float]:
    """msgs/s reused and per message, for one ``mode`` (plain or starttls)."""
    out: dict[str, float] = {}
    async with _sink(mode, tmp) as (emu, settings):
        pooled = _channel(settings, concurrency)
        try:
            took, cpu = await _drive(n, concurrency,
                                     lambda i: _discard(pooled.send(_message(i))))
        finally:
            await pooled.close()
        out["reused"] = n / took
        out["reused_cpu_ms"] = cpu / n * 1000
        out["reused_connections"] = emu.connections
        assert len(emu.messages[TO]) == n, "messages lost"

    async with _sink(mode, tmp) as (emu, settings):

        async def one_connection(i: int) -> None:
            channel = _channel(settings, 1)
            try:
                await channel.send(_message(i))
            finally:
                await channel.close()  # QUIT: the connection lives for one message

        took, cpu = await _drive(n, concurrency, one_connection)
        out["per_message"] = n / took
        out["per_message_cpu_ms"] = cpu / n * 1000
        out["per_message_connections"] = emu.connections
        assert len(emu.messages[TO]) == n, "messages lost"
    return out


async def _discard(coro: Awaitable[Any]) -> None:
    await coro


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500, help="messages per run (default 500)")
    ap.add_argument("--concurrency", type=int, default=1,
                    help="messages in flight (and pooled connections) at once")
    ap.add_argument("--modes", default="plain,starttls", help="plain,starttls")
    ap.add_argument("--timeout", type=float, default=300.0, help="bound on the whole bench")
    args = ap.parse_args()
    if not 1 <= args.n <= 100_000 or not 1 <= args.concurrency <= 100:
        ap.error("--n must be 1-100000 and --concurrency 1-100")
    configure_logging("warning", "json")
    print(f"n={args.n} concurrency={args.concurrency}")
    with tempfile.TemporaryDirectory() as tmp:
        async with asyncio.timeout(args.timeout):
            for mode in args.modes.split(","):
                r = await run(mode, args.n, args.concurrency, Path(tmp))
                print(f"{mode:9} reused: {r['reused']:7.1f} msgs/s "
                      f"{r['reused_cpu_ms']:5.2f} CPU ms/msg "
                      f"({int(r['reused_connections'])} conn)   "
                      f"per message: {r['per_message']:7.1f} msgs/s "
                      f"{r['per_message_cpu_ms']:5.2f} CPU ms/msg "
                      f"({int(r['per_message_connections'])} conn)   "
                      f"x{r['reused'] / r['per_message']:.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
