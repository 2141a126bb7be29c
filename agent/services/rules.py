"""The current rule set and its reloads: parse and compile off to the side, swap one reference.

A failed reload keeps the running rules, logs every problem with file and line, and shows in
``/metrics`` and ``GET /v1/rules/status``. Whatever goes wrong (even a bug in the loader) is a
failed reload, never an exception that ends the watcher or answers 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from agent.clock import SYSTEM_CLOCK, Clock
from agent.observability import Metrics, get_logger
from agent.routing.loader import ParseCache, Problem, RulesError, TargetCheck, load_rules
from agent.routing.ruleset import RuleSet

log = get_logger("rules")

# Batches of changed paths; an empty batch is a periodic "nothing changed".
ChangeSource = Callable[[Path], AsyncGenerator[set[tuple[Any, str]], None]]
# Restarting a watch that failed or lost its directory: from the first to the last delay.
WATCH_BACKOFF = (0.1, 10.0)
# How often an idle watch checks that its directory is still the one it watches.
WATCH_CHECK_MS = 2000


def _watch_dir(path: Path) -> AsyncGenerator[set[tuple[Any, str]], None]:
    from watchfiles import awatch

    return awatch(path, debounce=200, recursive=False, rust_timeout=WATCH_CHECK_MS,
                  yield_on_timeout=True)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which directory ``path`` names now: a removed and re-created one is another."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class RulesHolder:
    def __init__(self, rules_dir: Path, metrics: Metrics, clock: Clock = SYSTEM_CLOCK,
                 check_target: TargetCheck | None = None,
                 allow_unlisted: frozenset[str] | None = None) -> None:
        self.rules_dir = rules_dir
        # recipients.allow_unlisted: which literal targets need not be directory addresses.
        self._allow_unlisted = allow_unlisted
        # Whether a `notify:` target can be delivered here (channel enabled, address valid).
        self._check_target = check_target
        self._metrics = metrics
        self._clock = clock
        self._current: RuleSet | None = None
        self._lock = asyncio.Lock()
        self.last_success_at: float | None = None
        self.last_attempt_at: float | None = None
        self.last_problems: list[Problem] = []
        self._parse_cache: ParseCache = {}
        self.on_swap: list[Callable[[RuleSet], None]] = []
        # Checks beyond the rules themselves (e.g. every hook source secured off loopback).
        self.checks: list[Callable[[RuleSet], list[str]]] = []

    @property
    def current(self) -> RuleSet:
        assert self._current is not None, "rules not loaded"
        return self._current

    def get(self) -> RuleSet:
        return self.current

    def load_initial(self) -> RuleSet:
        """Load at start; raises RulesError (the daemon refuses to run on broken rules)."""
        try:
            rules = load_rules(self.rules_dir, self._parse_cache, self._check_target,
                               self._allow_unlisted)
        except RulesError:
            raise
        except Exception as exc:  # a start-up error to report, not a traceback
            raise RulesError([_unexpected(self.rules_dir, exc)]) from exc
        self._swap(rules)
        return rules

    async def reload(self, trigger: str) -> bool:
        """Reload in a worker thread; True when the new rules are in force. Never raises."""
        async with self._lock:
            self.last_attempt_at = self._clock.now()
            started = time.perf_counter()
            try:
                rules = await asyncio.to_thread(load_rules, self.rules_dir, self._parse_cache,
                                                self._check_target, self._allow_unlisted)
                extra = [Problem("(config)", None, m) for check in self.checks
                         for m in check(rules)]
                if extra:
                    raise RulesError(extra)
            except RulesError as exc:
                self._failed(trigger, exc.problems)
                return False
            except Exception as exc:  # a bug: still a failed reload, the old rules stay
                log.exception("rules_reload_error", trigger=trigger)
                self._failed(trigger, [_unexpected(self.rules_dir, exc)])
                return False
            changed = self._current is None or rules.config_hash != self._current.config_hash
            self._swap(rules)
            log.info("rules_reloaded", trigger=trigger, changed=changed, files=list(rules.files),
                     routes=len(rules.routes_by_id) - 1,
                     seconds=round(time.perf_counter() - started, 3))
            return True

    def _failed(self, trigger: str, problems: list[Problem]) -> None:
        self.last_problems = problems
        self._metrics.rules_reload_success.set(0)
        self._metrics.rules_reloads.labels("failure").inc()
        for p in problems:
            log.error("rules_reload_failed", trigger=trigger, file=p.file, line=p.line,
                      reason=p.message)

    def _swap(self, rules: RuleSet) -> None:
        self._current = rules
        for callback in self.on_swap:
            callback(rules)
        self.last_problems = []
        self.last_success_at = self._clock.now()
        m = self._metrics
        m.rules_reload_success.set(1)
        m.rules_reload_timestamp.set(self.last_success_at)
        m.rules_config_hash.set(int(rules.config_hash[:13], 16))
        m.rules_reloads.labels("success").inc()

    def status(self) -> dict[str, Any]:
        from agent.domain import iso

        rules = self._current
        return {
            "object": "rules_status",
            "rules_dir": str(self.rules_dir),
            "last_reload_successful": not self.last_problems,
            "last_success_at": iso(self.last_success_at),
            "last_attempt_at": iso(self.last_attempt_at or self.last_success_at),
            "config_hash": rules.config_hash if rules else None,
            "files": list(rules.files) if rules else [],
            "routes": len(rules.routes_by_id) - 1 if rules else 0,
            "generic_sources": sorted(rules.generic_sources) if rules else [],
            "errors": [{"file": p.file, "line": p.line, "message": p.message}
                       for p in self.last_problems],
        }

    async def watch(self, changes: ChangeSource = _watch_dir) -> None:
        """Reload when a rule file changes, until cancelled.

        The watch never dies: when it fails, or its directory is removed or replaced, it is
        started again (with a growing delay while that keeps happening), and the rules are
        reloaded then, since changes may have been missed meanwhile. While the directory is
        missing the running rules stay (a deploy replacing it must not route to the defaults).
        """
        delay = WATCH_BACKOFF[0]
        missed = False  # whether changes may have gone unseen: reload once watching again
        while True:
            try:
                watched = _identity(self.rules_dir)
                if watched is None:
                    if not missed:
                        log.warning("rules_dir_not_watched", path=str(self.rules_dir),
                                    reason="not a directory; waiting for it")
                    missed = True
                else:
                    if missed:
                        log.info("rules_watch_started", path=str(self.rules_dir))
                        await self.reload("watch")
                    missed = True  # whatever ends the watch below may hide a change
                    if await self._watch_once(changes, watched):
                        delay = WATCH_BACKOFF[0]  # it ran well: start over with short delays
            except Exception as exc:  # the watch itself failed: log, wait, start it again
                log.warning("rules_watch_failed", path=str(self.rules_dir),
                            error=f"{type(exc).__name__}: {exc}", retry_seconds=delay)
                missed = True
            await self._clock.sleep(delay)
            delay = min(delay * 2, WATCH_BACKOFF[1])

    async def _watch_once(self, changes: ChangeSource, watched: tuple[int, int]) -> bool:
        """Watch until the directory goes or is replaced; True if the watch delivered."""
        delivered = False
        root = os.path.abspath(self.rules_dir)
        # Closed at once when left: a watch holds an inotify descriptor and a thread.
        async with contextlib.aclosing(changes(self.rules_dir)) as stream:
            async for batch in stream:
                # An event on the directory itself: removed (a new one may already have its
                # inode number), or renamed away. Either way this watch sees nothing more.
                if _identity(self.rules_dir) != watched or any(
                        os.path.abspath(p) == root for _, p in batch):
                    log.warning("rules_dir_replaced", path=str(self.rules_dir))
                    break
                delivered = True
                if any(Path(p).suffix in (".yaml", ".yml") for _, p in batch):
                    await self.reload("watch")
        return delivered


def _unexpected(rules_dir: Path, exc: Exception) -> Problem:
    return Problem(str(rules_dir), None, f"unexpected error: {type(exc).__name__}: {exc}")
