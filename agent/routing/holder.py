"""The current rule set and its reloads: parse and compile off to the side, swap one reference.

A failed reload keeps the running rules, logs every problem with file and line, and shows in
``/metrics`` and ``GET /v1/rules/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.observability import Metrics, get_logger
from agent.routing.loader import ParseCache, Problem, RulesError, load_rules
from agent.routing.ruleset import RuleSet

log = get_logger("rules")


class RulesHolder:
    def __init__(self, rules_dir: Path, metrics: Metrics) -> None:
        self.rules_dir = rules_dir
        self._metrics = metrics
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
        rules = load_rules(self.rules_dir, self._parse_cache)
        self._swap(rules)
        return rules

    async def reload(self, trigger: str) -> bool:
        """Reload in a worker thread; True when the new rules are in force."""
        async with self._lock:
            self.last_attempt_at = time.time()
            started = time.perf_counter()
            try:
                rules = await asyncio.to_thread(load_rules, self.rules_dir, self._parse_cache)
                extra = [Problem("(config)", None, m) for check in self.checks
                         for m in check(rules)]
                if extra:
                    raise RulesError(extra)
            except RulesError as exc:
                self.last_problems = exc.problems
                self._metrics.rules_reload_success.set(0)
                self._metrics.rules_reloads.labels("failure").inc()
                for p in exc.problems:
                    log.error("rules_reload_failed", trigger=trigger, file=p.file, line=p.line,
                              reason=p.message)
                return False
            changed = self._current is None or rules.config_hash != self._current.config_hash
            self._swap(rules)
            log.info("rules_reloaded", trigger=trigger, changed=changed, files=list(rules.files),
                     routes=len(rules.routes_by_id) - 1,
                     seconds=round(time.perf_counter() - started, 3))
            return True

    def _swap(self, rules: RuleSet) -> None:
        self._current = rules
        for callback in self.on_swap:
            callback(rules)
        self.last_problems = []
        self.last_success_at = time.time()
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

    async def watch(self) -> None:
        """Reload when a file of the rules directory changes (watchfiles, debounced)."""
        from watchfiles import awatch

        if not self.rules_dir.is_dir():
            log.warning("rules_dir_not_watched", path=str(self.rules_dir),
                        reason="not a directory")
            return
        with contextlib.suppress(asyncio.CancelledError):
            async for changes in awatch(self.rules_dir, debounce=200, recursive=False):
                if any(Path(p).suffix in (".yaml", ".yml") for _, p in changes):
                    await self.reload("watch")
