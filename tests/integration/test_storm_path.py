"""The new-alert path in a storm (issue 11): what one payload of new alerts and one flush of a
big group cost in statements, and that the bulk path keeps the per-alert semantics."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from agent.domain import Alert, AlertIntake, GroupRef, fingerprint_of, now
from agent.store import Store

ROUTE = {"id": "r", "name": "r", "notify": [{"channel": "console", "to": "ops"}],
         "group_wait": 0.0, "group_interval": 300.0, "repeat_interval": 3600.0}


def new_alert(i: int, groups: int = 10, status: str = "firing",
              starts_at: float | None = None) -> AlertIntake:
    labels = {"alertname": "Down", "group": f"g{i % groups}", "instance": f"host-{i}"}
    a = Alert("alertmanager", fingerprint_of(labels), status, labels,
              {"summary": f"host-{i} is down"}, starts_at=starts_at)
    ref = GroupRef(key=f"key-{i % groups}", route_id="r", labels={"group": f"g{i % groups}"},
                   route=ROUTE, group_wait=0.0, group_interval=300.0)
    severity = "critical" if i % 2 else "warning"
    return AlertIntake(a, severity, "custom", labels["instance"], f"host-{i} is down", [ref])


@asynccontextmanager
async def traced(store: Store) -> AsyncIterator[list[str]]:
    """Every statement the writer connection runs meanwhile (executemany: once per row)."""
    seen: list[str] = []

    def on(c: sqlite3.Connection) -> None:
        c.set_trace_callback(seen.append)

    def off(c: sqlite3.Connection) -> None:
        c.set_trace_callback(None)

    await store.db.write(on)
    try:
        yield seen
    finally:
        await store.db.write(off)


def count(statements: Sequence[str], pattern: str) -> int:
    rx = re.compile(pattern, re.I | re.S)
    return sum(1 for s in statements if rx.search(s))


async def test_a_payload_of_new_alerts_costs_statements_per_group_not_per_alert(
    store: Store,
) -> None:
    items = [new_alert(i) for i in range(1000)]
    async with traced(store) as stmts:
        out = await store.alerts.ingest(items, now())
    assert out.outcomes == ["created"] * 1000 and out.created == 1000
    assert out.groups_touched == 1000
    # Before: an UPDATE that missed and a SELECT for every alert, a group upsert for every
    # alert. Now: two lookups (active, ended) per 500 keys, one upsert per group of the payload.
    assert count(stmts, r"^\s*INSERT INTO alert_groups") == 10
    assert count(stmts, r"^\s*UPDATE alerts") == 0
    assert count(stmts, r"^\s*SELECT .* FROM alerts (INDEXED BY \w+ )?WHERE source") == 4
    rows = await store.db.read(lambda c: c.execute(
        "SELECT count(*), count(DISTINCT group_id), sum(severity = 'critical') "
        "FROM group_members").fetchone())
    assert tuple(rows) == (1000, 10, 500)


async def test_new_alert_ids_are_unique_and_in_payload_order(store: Store) -> None:
    first = await store.alerts.ingest([new_alert(i) for i in range(500)], now())
    second = await store.alerts.ingest([new_alert(i) for i in range(500, 1000)], now())
    ids = [i for i in first.ids + second.ids if i is not None]
    assert len(ids) == 1000 and all(re.fullmatch(r"alt_[0-9a-f]{20}", i) for i in ids)
    assert ids == sorted(ids), "ids of new alerts follow their creation order"
    stored = await store.db.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM alerts ORDER BY seq")])
    assert stored == ids


async def test_the_bulk_path_keeps_the_order_of_a_mixed_payload(store: Store) -> None:
    t = now()
    a0 = new_alert(0, starts_at=t - 60)
    again = new_alert(0, starts_at=t - 60)  # the same alert once more, in the same payload
    resolved = new_alert(0, status="resolved")
    late_copy = new_alert(0, starts_at=t - 60)  # fired before it was resolved: stale
    b = new_alert(1)
    out = await store.alerts.ingest([a0, again, b, resolved, late_copy], t)
    assert out.outcomes == ["created", "updated", "created", "resolved", "stale"]
    assert out.ids[0] == out.ids[1] == out.ids[3] and out.ids[4] is None
    refire = new_alert(0, starts_at=t + 1)  # began after the resolve: a new alert
    out2 = await store.alerts.ingest([refire, new_alert(1)], t + 2)
    assert out2.outcomes == ["created", "updated"]
    rows = await store.db.read(lambda c: c.execute(
        "SELECT fingerprint, status, receive_count FROM alerts ORDER BY seq").fetchall())
    fp0, fp1 = a0.alert.fingerprint, b.alert.fingerprint
    assert [tuple(r) for r in rows] == [(fp0, "resolved", 2), (fp1, "active", 2),
                                        (fp0, "active", 1)]


async def _claim(store: Store) -> tuple[int, list[str]]:
    async with traced(store) as stmts:
        [g] = await store.alerts.claim_groups(now() + 1, 10)
    assert g.error is None
    return len(g.members), stmts


async def test_a_flush_reads_a_big_group_without_a_query_per_member(store: Store) -> None:
    await store.alerts.ingest([new_alert(i, groups=1) for i in range(1000)], now())
    members, stmts = await _claim(store)
    assert members == 1000
    # Before: the members joined with alerts, then one SELECT per listable alert (200).
    assert count(stmts, r"FROM alerts WHERE seq") == 1
    assert count(stmts, r"JOIN alerts") == 0


async def test_members_stored_before_the_severity_column_read_it_from_the_alert(
    store: Store,
) -> None:
    await store.alerts.ingest([new_alert(i, groups=1) for i in range(4)], now())
    await store.db.write(lambda c: c.execute("UPDATE group_members SET severity = NULL"))
    [g] = await store.alerts.claim_groups(now() + 1, 10)
    assert [m.severity for m in g.members] == ["warning", "critical", "warning", "critical"]
    assert all(m.alert is not None and m.alert.severity == m.severity for m in g.members)


async def test_the_writer_caches_a_storms_index_pages(store: Store) -> None:
    from agent.store.db import WRITER_CACHE_KIB

    def read(c: sqlite3.Connection) -> int:
        return int(c.execute("PRAGMA cache_size").fetchone()[0])

    assert await store.db.write(read) == -WRITER_CACHE_KIB
