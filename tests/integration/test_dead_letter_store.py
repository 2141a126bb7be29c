"""The store's side of dead letters: its migration classes the rows that failed before it and
counts them; the per-channel count stays exact on every path that fails, re-drives or deletes a
row (a claim limit included); a re-drive restarts the retry budget."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from prometheus_client import CollectorRegistry

from agent.domain import now
from agent.observability import Metrics
from agent.store import Store
from agent.store.notifications import ListFilter
from agent.store.retention import prune
from agent.store.schema import MIGRATIONS
from tests.integration.test_store import item

# The migration that adds failure_class: a database one migration before it is the old release.
DEAD_LETTERS = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE dead_letters" in m)

_INSERT = (
    "INSERT INTO notifications (id, status, channel, recipient, severity, priority, metadata, "
    "due_at, created_at, failure_reason, failure_details) "
    "VALUES (?, ?, ?, 'x', 'info', 'normal', '{}', 0, 0, ?, ?)"
)


async def test_migration_classes_rows_that_failed_before_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database of the release before dead letters
        for number, script in enumerate(MIGRATIONS[:DEAD_LETTERS], start=1):
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        rows = [
            ("n1", "failed", "slack", "channel_not_configured", "channel 'slack' is not ..."),
            ("n2", "failed", "webhook", "template_render_error", "undefined variable"),
            ("n3", "failed", "webhook", "provider_rejected", "internal channel error: KeyError"),
            ("n4", "failed", "webhook", "retries_exhausted",
             "claimed too often without an outcome"),
            ("n5", "failed", "webhook", "provider_unavailable", "gave up after 15 attempts: x"),
            ("n6", "failed", "webhook", "rate_limited", "gave up after 86400 s: x"),
            ("n7", "failed", "webhook", "provider_rejected", "HTTP 404: no"),
            ("n8", "failed", "webhook", "timeout", "timed out"),
            ("n9", "delivered", "webhook", None, None),
        ]
        conn.executemany(_INSERT, rows)
        # n8's last attempt was retryable (its outcome record said why it stopped): temporary.
        conn.execute("INSERT INTO deliveries (notification_id, attempt, channel, started_at, "
                     "finished_at, outcome, failure_class) "
                     "VALUES ('n8', 1, 'webhook', 0, 0, 'failed', 'retryable')")
    store = Store(path, Metrics(CollectorRegistry()))
    await store.open()
    try:
        got = {}
        for nid, *_ in rows:
            n = await store.notifications.get(nid)
            assert n is not None
            got[nid] = n.failure_class
        assert got == {"n1": "technical", "n2": "technical", "n3": "technical",
                       "n4": "technical", "n5": "temporary", "n6": "temporary",
                       "n7": "permanent", "n8": "temporary", "n9": None}
        assert await store.notifications.dead_letter_counts() == {"slack": 1, "webhook": 7}
    finally:
        await store.close()


async def test_the_count_follows_claim_limits_redrives_and_retention(store: Store) -> None:
    notifications = store.notifications
    created = await notifications.create([item(), item()])
    first, second = (n.id for n in created.notifications)
    t = now()
    for attempt in range(1, 3):  # claims that die before an outcome, until the limit
        await notifications.claim_due(t + attempt * 400, 10, lease=300, max_attempts=2)
    assert await notifications.claim_due(t + 1200, 10, lease=300, max_attempts=2) == []
    failed = await notifications.get(first)
    assert failed is not None and failed.failure_class == "technical"  # ours: no outcome ever
    assert await notifications.dead_letter_counts() == {"console": 2}

    row, done = await notifications.redrive(first, t + 2000, simulated=False)
    assert done and row is not None and row.status == "queued"
    assert (row.redriven_at, row.redrive_attempts, row.retry_from) == (t + 2000, 0, t + 2000)
    assert await notifications.dead_letter_counts() == {"console": 1}
    # The claim limit restarts too: the re-driven row is claimed again, not failed at once.
    [again] = await notifications.claim_due(t + 2000, 10, lease=300, max_attempts=2)
    assert again.id == first
    row, done = await notifications.redrive(second, t + 2000, simulated=True)
    assert not done and row is None  # the other mode's row is unknown
    assert await notifications.redrive_many(ListFilter(limit=10), t + 2000) == (
        [(second, "console")], False)
    assert await notifications.dead_letter_counts() == {"console": 0}

    for attempt in range(1, 4):
        await notifications.claim_due(t + 2000 + attempt * 400, 10, lease=300, max_attempts=2)
    assert await notifications.dead_letter_counts() == {"console": 2}
    await prune(store.db, t + 10_000)
    assert await notifications.dead_letter_counts() == {"console": 0}


async def test_a_recount_repairs_the_counts(store: Store) -> None:
    created = await store.notifications.create([item()])
    nid = created.notifications[0].id

    def fail_behind_its_back(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE notifications SET status = 'failed' WHERE id = ?", (nid,))
        conn.execute("INSERT INTO dead_letters VALUES ('webhook', 5)")

    await store.db.write(fail_behind_its_back)
    assert await store.notifications.dead_letter_counts() == {"webhook": 5}
    assert await store.notifications.recount_dead_letters() == {"console": 1}
    assert await store.notifications.dead_letter_counts() == {"console": 1}
