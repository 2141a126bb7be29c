"""The process around the app: listener, signals, sd_notify readiness and watchdog, drain."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import shlex
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from agent.app import RUNTIME, create_app, reload_hook_secrets, reload_keys
from agent.observability import get_logger
from agent.reloading import Reloads
from agent.settings import ConfigError, Settings
from agent.systemd import SystemdNotifier, watchdog_interval

log = get_logger("daemon")


def _print_first_run_keys(keys: list[str], path: Path, base_url: str, out: TextIO) -> None:
    # stdout of a service is the journal, readable far more widely than the data dir: only the
    # path of the 0600 file goes there. A person at a terminal sees the keys once.
    live = next(k for k in keys if k.startswith("sk_live_"))
    test = next(k for k in keys if k.startswith("sk_test_"))
    shown = out.isatty()
    where = shlex.quote(str(path.absolute()))
    lines = ["", "alert-agent created one live and one test API key. They are in",
             f"  {where}",
             "(mode 0600, the only copy: the database holds their hashes). Copy them somewhere "
             "safe, then delete that file."]
    if shown:
        lines += [f"  live: {live}",
                  f"  test: {test}   (simulates delivery: nothing leaves the host)"]
    bearer = test if shown else f"$(sed -n 's/^test: //p' {where})"
    lines += ["", "Try it:",
              f"  curl -s -X POST {base_url}/v1/notifications/send \\",
              f"    -H \"Authorization: Bearer {bearer}\" -H 'Content-Type: application/json' \\",
              "    -d '{\"channel\": \"console\", \"to\": \"ops\", "
              "\"message\": \"hello from alert-agent\"}'", "", ""]
    out.write("\n".join(lines))
    out.flush()


async def _reload_secrets(app: web.Application) -> int | None:
    """SIGHUP: re-read API keys and hook secrets; on failure the ones in use stay (logged).

    Returns how many API keys are active, None when they could not be re-read.
    """
    count = None
    try:
        count = await reload_keys(app)
    except ConfigError as exc:
        log.error("reload_failed", what="api_keys", error=str(exc))
    except Exception as exc:  # the store: the keys in use stay, READY=1 still follows
        log.error("reload_failed", what="api_keys", error=str(exc),
                  error_type=type(exc).__name__)
    try:
        reload_hook_secrets(app)
    except ConfigError as exc:
        log.error("reload_failed", what="hook_secrets", error=str(exc))
    except Exception as exc:  # the secrets in use stay; the rules reload still runs
        log.error("reload_failed", what="hook_secrets", error=str(exc),
                  error_type=type(exc).__name__)
    return count


async def _watchdog(notifier: SystemdNotifier, interval: float) -> None:
    # Pinged from the event loop itself: a blocked loop is exactly what should trip it.
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


# The cyclic collector's young generation at Python's default (700 allocations) runs every
# few alerts of a storm and walks each one's fresh objects again and again: ~12 % of the CPU
# of 100,000 new alerts (bench/storm_inproc.py). Collect young objects less often instead.
GC_THRESHOLD = (50_000, 20, 20)


def tune_gc() -> None:
    """Start-up objects (modules, rules, settings) leave the collector's sight for good, and
    young collections run every GC_THRESHOLD[0] allocations."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def serve(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Run until SIGTERM/SIGINT; drain; return the exit code."""
    notifier = SystemdNotifier()
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    ready = False
    rt = app[RUNTIME]

    async def run_reload() -> None:
        count = await _reload_secrets(app)
        rules_ok = await rt.rules.reload("sighup") if rt.rules is not None else True
        log.info("reloaded", api_keys=count, rules_ok=rules_ok)

    reloads = Reloads(notifier, run_reload)

    def reload() -> None:
        if not ready:  # READY=1 from a reload must never precede the first one
            log.warning("reload_ignored_during_startup")
            return
        reloads.request()

    def show_new_keys(base_url: str) -> None:
        # Generated keys are stored before the listener binds: show them on every path, or a
        # failed first start would leave keys nobody ever saw.
        if rt.new_keys and rt.new_keys_file is not None:
            _print_first_run_keys(rt.new_keys, rt.new_keys_file, base_url, out)
            rt.new_keys = []

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await runner.setup()
    except Exception as exc:  # config, disk, schema: say what and exit, no traceback
        log.error("startup_failed", error=str(exc), error_type=type(exc).__name__)
        show_new_keys(settings.base_url)
        await runner.cleanup()
        return 1
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        log.error("listen_failed", host=settings.host, port=settings.port, error=str(exc))
        show_new_keys(settings.base_url)
        await runner.cleanup()
        return 1
    port = settings.port
    server: Any = site._server  # aiohttp has no public accessor for the bound port (port 0)
    if server is not None and getattr(server, "sockets", None):
        port = server.sockets[0].getsockname()[1]
    base_url = settings.public_url or f"http://{settings.host}:{port}"
    show_new_keys(base_url)
    log.info("listening", url=base_url, data_dir=str(settings.data_dir))
    tune_gc()
    notifier.ready(status=f"listening on {base_url}")
    ready = True
    wd_interval = watchdog_interval()
    wd = asyncio.create_task(_watchdog(notifier, wd_interval)) if wd_interval else None
    await stop.wait()
    await reloads.idle()  # its READY=1 must come before STOPPING=1
    log.info("stopping", grace_seconds=settings.delivery.shutdown_grace_seconds)
    notifier.stopping()
    if wd is not None:
        wd.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wd
    await runner.cleanup()
    log.info("stopped")
    notifier.close()
    return 0
