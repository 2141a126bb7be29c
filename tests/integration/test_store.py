"""The SQLite store: migrations, group commit, isolation of failing operations, claim leases."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.domain import NewNotification, new_id, now
from agent.observability import Metrics
from agent.store import Store, StoreError
from agent.store.notifications import ListFilter
from agent.store.schema import MIGRATIONS


def item(due_at: float | None = None) -> NewNotification:
    t = now()
    return NewNotification(
        id=new_id("ntf"), channel="console", recipient="ops", message="m", subject=None,
        template_id=None, template_body=None, severity="info", priority="normal", metadata={},
        idempotency_key=None, request_hash=None, simulated=False, api_key_id="key_x",
        schedule_at=None, due_at=t if due_at is None else due_at, created_at=t,
    )


async def test_wal_and_schema_version(store: Store, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "a.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_reopen_keeps_data_and_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    s = Store(path, Metrics(CollectorRegistry()))
    await s.open()
    created = await s.notifications.create([item()])
    await s.close()
    s = Store(path, Metrics(CollectorRegistry()))
    await s.open()  # migrations already applied: a no-op
    assert await s.notifications.get(created.notifications[0].id) is not None
    await s.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    s = Store(path, Metrics(CollectorRegistry()))
    with pytest.raises(StoreError, match="newer than this build"):
        await s.open()


async def test_concurrent_writes_share_commits(store: Store) -> None:
    metrics = store.db._metrics
    await asyncio.gather(*(store.notifications.create([item()]) for _ in range(200)))
    commits = metrics.store_commits._value.get()
    assert 1 <= commits < 200  # group commit: far fewer transactions than writers
    rows, more = await store.notifications.page(ListFilter(limit=100))
    assert len(rows) == 100 and more


async def test_a_failing_operation_does_not_sink_its_batch(store: Store) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO secrets_that_do_not_exist VALUES (1)")

    ok = store.notifications.create([item()])
    bad = store.db.write(boom)
    results = await asyncio.gather(ok, bad, return_exceptions=True)
    assert isinstance(results[1], StoreError)
    assert isinstance(results[1].__cause__, sqlite3.OperationalError)
    created = results[0]
    assert not isinstance(created, BaseException)
    assert await store.notifications.get(created.notifications[0].id) is not None


async def test_claims_are_exclusive_and_leased(store: Store) -> None:
    await store.notifications.create([item(), item()])
    t = now()
    first = await store.notifications.claim_due(t, 10, lease=300)
    assert len(first) == 2
    assert await store.notifications.claim_due(t + 10, 10, lease=300) == []
    # An outcome that was never recorded: after the lease, the rows are due again.
    again = await store.notifications.claim_due(t + 301, 10, lease=300)
    assert {n.id for n in again} == {n.id for n in first}
    assert await store.notifications.release_claims() == 2


async def test_scheduled_rows_are_not_claimed_early(store: Store) -> None:
    t = now()
    await store.notifications.create([item(due_at=t + 60)])
    assert await store.notifications.claim_due(t, 10) == []
    assert len(await store.notifications.claim_due(t + 61, 10)) == 1


async def test_a_second_agent_on_the_same_data_dir_refuses_to_start(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer

    from agent.app import create_app
    from agent.settings import ConfigError, Settings

    s = Settings(data_dir=tmp_path / "d", rules_dir=tmp_path / "r",
                 api_keys=["sk_live_0123456789abcdefghijkl"])
    first = TestServer(create_app(s), host="127.0.0.1")
    await first.start_server()
    try:
        second = TestServer(create_app(s), host="127.0.0.1")
        with pytest.raises(ConfigError, match="in use by another alert-agent"):
            await second.start_server()
        await second.close()
    finally:
        await first.close()
    third = TestServer(create_app(s), host="127.0.0.1")  # released on stop
    await third.start_server()
    await third.close()


async def test_a_row_claimed_too_often_without_an_outcome_fails(store: Store) -> None:
    created = await store.notifications.create([item()])
    nid = created.notifications[0].id
    t = now()
    for attempt in range(1, 4):  # each claim dies (lease expires) before any outcome
        [row] = await store.notifications.claim_due(t + attempt * 400, 10, lease=300,
                                                    max_attempts=3)
        assert row.attempts == 0  # counted on outcome; the abandoned claims count apart
    assert await store.notifications.claim_due(t + 4 * 400, 10, lease=300, max_attempts=3) == []
    failed = await store.notifications.get(nid)
    assert failed is not None and failed.status == "failed"
    assert failed.failure_reason == "retries_exhausted"


async def test_a_replay_whose_key_expired_is_never_inserted(store: Store) -> None:
    from agent.store.idempotency import ReplayExpired

    stray = item()
    stray.idempotency_key, stray.request_hash, stray.replay_only = "k", "h", True
    with pytest.raises(ReplayExpired):
        await store.notifications.create([stray])
    assert await store.notifications.get(stray.id) is None


async def test_retention_prunes_only_what_ended_long_ago(store: Store) -> None:
    from agent.domain import Alert, AlertIntake
    from agent.store.notifications import Delivered
    from agent.store.retention import prune

    old, queued = item(), item()
    await store.notifications.create([old, queued])
    t = now()
    [claimed] = await store.notifications.claim_due(t, 1)
    await store.notifications.complete([Delivered(claimed.id, t, t, None)])
    alert = Alert("api", "fp1", "firing", {"alertname": "A"}, {})
    await store.alerts.ingest([AlertIntake(alert, "info", "custom", None, None, [])], t)
    alert.status = "resolved"
    await store.alerts.ingest([AlertIntake(alert, "info", "custom", None, None, [])], t)

    assert await prune(store.db, t - 10) == {"notifications": 0, "inbox": 0, "alerts": 0}
    removed = await prune(store.db, t + 10)
    assert removed == {"notifications": 1, "inbox": 0, "alerts": 1}
    assert await store.notifications.get(claimed.id) is None
    remaining = old.id if claimed.id != old.id else queued.id
    assert await store.notifications.get(remaining) is not None  # still queued: kept



async def _outbox_steps(store: Store, queued: int, due: bool) -> tuple[int, int]:
    """SQLite VM steps (in hundreds) of one ``claim_due(limit=1)`` and of one ``next_due_at``
    (the dispatcher's idle wait) with ``queued`` rows on the outbox."""
    t = now()
    for first in range(0, queued, 1000):
        await store.notifications.create([item(due_at=t - 1 if due else t + 3600)
                                          for _ in range(min(1000, queued - first))])
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    def install(conn: sqlite3.Connection) -> None:
        conn.set_progress_handler(count, 100)

    def uninstall(conn: sqlite3.Connection) -> None:
        conn.set_progress_handler(None, 100)

    await store.db.write(install)
    await store.db.read(install)
    steps = 0
    await store.notifications.claim_due(t, 1, max_attempts=5)
    claim, steps = steps, 0
    await store.notifications.next_due_at()
    idle = steps
    await store.db.write(uninstall)
    await store.db.read(uninstall)
    return claim, idle


@pytest.mark.parametrize("due", [True, False])
async def test_a_claim_costs_the_same_with_a_deep_outbox(tmp_path: Path, due: bool) -> None:
    # The dispatcher claims a few rows each time a delivery ends: a claim that scans the whole
    # outbox (the planner picking the status index and sorting, the exhausted-rows check over
    # every due row) cost milliseconds of the writer's time per delivery with 30,000 queued.
    costs = []
    for queued in (100, 10_000):
        s = Store(tmp_path / f"c{queued}{due}.db", Metrics(CollectorRegistry()))
        await s.open()
        try:
            costs.append(await _outbox_steps(s, queued, due))
        finally:
            await s.close()
    (claim_small, idle_small), (claim_deep, idle_deep) = costs
    assert claim_deep <= 2 * claim_small + 5, costs
    assert idle_deep <= 2 * idle_small + 5, costs
