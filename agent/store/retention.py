"""Retention: finished notifications (with their delivery attempts), inbox items and resolved
alerts older than N days go away.

Deleted in small batches (one group-commit transaction each) so ingest never waits long.
"""

from __future__ import annotations

import sqlite3

from agent.store import deadletters
from agent.store.db import Database

BATCH = 5000
_FINISHED = ("delivered", "failed", "cancelled", "read", "acknowledged")


def _prune_batch(conn: sqlite3.Connection, cutoff: float) -> dict[str, int]:
    marks = ",".join("?" * len(_FINISHED))
    ids = [r[0] for r in conn.execute(
        f"SELECT id FROM notifications WHERE status IN ({marks}) AND created_at < ? LIMIT ?",
        (*_FINISHED, cutoff, BATCH))]
    conn.executemany("DELETE FROM alert_notifications WHERE notification_id = ?",
                     [(i,) for i in ids])
    conn.executemany("DELETE FROM deliveries WHERE notification_id = ?", [(i,) for i in ids])
    deadletters.leaving(conn, "id", ids)
    conn.executemany("DELETE FROM notifications WHERE id = ?", [(i,) for i in ids])
    inbox = conn.execute(
        "DELETE FROM inbox WHERE seq IN (SELECT seq FROM inbox WHERE created_at < ? LIMIT ?)",
        (cutoff, BATCH)).rowcount
    seqs = [r[0] for r in conn.execute(
        "SELECT seq FROM alerts a WHERE status = 'resolved' AND resolved_at < ? AND NOT EXISTS "
        "(SELECT 1 FROM group_members m WHERE m.alert_seq = a.seq) LIMIT ?", (cutoff, BATCH))]
    conn.executemany("DELETE FROM alert_notifications WHERE alert_seq = ?", [(s,) for s in seqs])
    conn.executemany("DELETE FROM alerts WHERE seq = ?", [(s,) for s in seqs])
    return {"notifications": len(ids), "inbox": inbox, "alerts": len(seqs)}


async def prune(db: Database, cutoff: float, max_batches: int = 100) -> dict[str, int]:
    """Delete what ended before ``cutoff``; returns rows removed per table."""
    total = {"notifications": 0, "inbox": 0, "alerts": 0}
    for _ in range(max_batches):
        done = await db.write(lambda c: _prune_batch(c, cutoff))
        for k, v in done.items():
            total[k] += v
        if not any(done.values()):
            break
    return total
