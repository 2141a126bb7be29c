"""The rules watcher outlives its own failures (issue 10, item 5): a change source that raises,
or ends, is started again after a backoff, and the rules are reloaded then. The source is a fake
at the seam (``RulesHolder.watch(changes=...)``); the real watchfiles source is exercised by the
integration tests (tests/integration/test_reload_robust.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from agent.observability import Metrics
from agent.services.rules import RulesHolder
from tests.helpers import wait_until

GOOD = "routes:\n  - name: first\n    notify: [{channel: console, to: %s}]\n"


def target(holder: RulesHolder) -> str:
    return holder.current.routes_by_id["first"].notify[0].to


async def test_a_watch_that_raises_or_ends_is_restarted_and_catches_up(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    main = rules_dir / "main.yaml"
    main.write_text(GOOD % "a")
    holder = RulesHolder(rules_dir, Metrics())
    holder.load_initial()
    starts = 0
    forever = asyncio.Event()

    async def flaky(path: Path) -> AsyncGenerator[set[tuple[Any, str]], None]:
        nonlocal starts
        starts += 1
        if starts == 1:
            raise OSError(28, "inotify watch limit reached")  # fails to start
        if starts == 2:
            main.write_text(GOOD % "b")  # changed while the watch was down: not reported
            yield set()
            raise RuntimeError("watch thread unexpectedly received a signal")
        if starts == 3:
            main.write_text(GOOD % "c")
            yield {(2, str(main))}
            return  # the source ends (as awatch does on its stop event)
        await forever.wait()
        yield set()

    task = asyncio.create_task(holder.watch(flaky))
    try:
        # Start 2 reloads what changed while start 1 was down; start 3 reports its own change.
        await wait_until(lambda: starts >= 4 and target(holder) == "c", timeout=10)
        assert not task.done()
        assert holder.last_problems == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def test_a_missing_directory_is_waited_for_and_the_running_rules_stay(
    tmp_path: Path
) -> None:
    rules_dir = tmp_path / "rules"
    holder = RulesHolder(rules_dir, Metrics())
    holder.load_initial()  # no directory: the embedded default rules
    default = holder.current

    async def quiet(path: Path) -> AsyncGenerator[set[tuple[Any, str]], None]:
        await asyncio.Event().wait()
        yield set()

    task = asyncio.create_task(holder.watch(quiet))
    try:
        await asyncio.sleep(0)  # the watch has looked once and found nothing
        assert holder.current is default and not task.done()
        rules_dir.mkdir()
        (rules_dir / "main.yaml").write_text(GOOD % "late")
        await wait_until(lambda: "first" in holder.current.routes_by_id, timeout=15)
        assert target(holder) == "late"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
