"""SIGHUP reloads, one at a time, each announced to systemd as ``RELOADING=1`` ... ``READY=1``.

systemd (``Type=notify-reload``, ``systemctl reload``) waits for ``READY=1`` after
``RELOADING=1``: a reload that raised and never said READY would leave the unit "reloading"
until it times out. So READY follows every RELOADING, whatever the reload did. A SIGHUP that
arrives while a reload runs is not started beside it (two could finish, and say READY, in either
order): it is remembered, and one more reload, announced on its own, runs after the current one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agent.observability import get_logger
from agent.systemd import SystemdNotifier

log = get_logger("daemon")


class Reloads:
    """Serialises reload requests and brackets each run with RELOADING=1 and READY=1."""

    def __init__(self, notifier: SystemdNotifier, work: Callable[[], Awaitable[None]]) -> None:
        self._notifier = notifier
        self._work = work
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.runs = 0  # completed reloads (for logs and tests)

    def request(self) -> None:
        """Ask for a reload (from a signal handler: returns at once)."""
        if self._task is not None and not self._task.done():
            self._again = True  # requests during a run coalesce into one more run
            return
        self._task = asyncio.create_task(self._run(), name="reload")

    async def idle(self) -> None:
        """Wait until no reload runs or is queued (at shutdown: STOPPING comes after READY)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while True:
            self._again = False
            self._notifier.reloading()
            try:
                await self._work()
            except Exception:  # the reload steps report their own failures; this is a bug
                log.exception("reload_error")
            finally:
                self._notifier.ready()
                self.runs += 1
            if not self._again:
                return
