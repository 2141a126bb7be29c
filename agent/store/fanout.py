"""Parent notifications of a send to a team or member: never delivered themselves, their status
sums up their children's, settled in the transaction that changes a child.

A parent stays on the outbox index as ``queued`` while any child is, so list filters and
``DELETE`` treat it like any queued notification; its ``due_at`` is past any real time so no
claim ever reaches it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from agent.domain import Status

# 9999-12-31T23:59:59Z: beyond what the API accepts as ``schedule_at``, so never due.
PARENT_DUE_AT = 253402300799.0


def settle(conn: sqlite3.Connection, parent_ids: Iterable[str], now: float) -> None:
    """Set each parent's status from its children's: queued while any child is queued, then
    sent while any awaits a receipt, then delivered when any child was delivered (failed
    children named in the details), cancelled when all were, else failed."""
    for pid in set(parent_ids):
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for status, reason, n in conn.execute(
                "SELECT status, failure_reason, COUNT(*) FROM notifications "
                "WHERE parent_id = ? GROUP BY status, failure_reason", (pid,)):
            counts[status] = counts.get(status, 0) + n
            if status == Status.FAILED:
                reasons[reason or "unknown"] = reasons.get(reason or "unknown", 0) + n
        total = sum(counts.values())
        failed = counts.get(Status.FAILED, 0)
        details = None if not failed else f"{failed} of {total} recipients failed: " + ", ".join(
            f"{r} ({n})" for r, n in sorted(reasons.items()))
        for status in (Status.QUEUED, Status.SENT, Status.DELIVERED):
            if counts.get(status):
                break
        else:
            status = Status.CANCELLED if counts.get(Status.CANCELLED) == total else Status.FAILED
        reason = max(reasons, key=lambda r: reasons[r]) if status == Status.FAILED else None
        conn.execute(
            "UPDATE notifications SET status = ?, failure_details = ?, failure_reason = ?, "
            "failure_class = ?, "
            "sent_at = CASE WHEN ? IN ('sent', 'delivered') THEN COALESCE(sent_at, ?) END, "
            "delivered_at = CASE WHEN ? = 'delivered' THEN COALESCE(delivered_at, ?) END, "
            "failed_at = CASE WHEN ? = 'failed' THEN COALESCE(failed_at, ?) END, "
            "cancelled_at = CASE WHEN ? = 'cancelled' THEN COALESCE(cancelled_at, ?) END "
            # An acknowledged send keeps its terminal status (seed 000).
            "WHERE id = ? AND fanout > 0 AND status != 'acknowledged'",
            (status, details, reason, "permanent" if reason else None,
             status, now, status, now, status, now, status, now, pid))


def parents_of(conn: sqlite3.Connection, key: str, keys: list[object]) -> list[str]:
    """The parents of the rows whose ``key`` (id or seq) is in ``keys``."""
    out: list[str] = []
    for i in range(0, len(keys), 10_000):
        chunk = keys[i:i + 10_000]
        out.extend(r[0] for r in conn.execute(
            f"SELECT DISTINCT parent_id FROM notifications WHERE {key} IN "
            f"({','.join('?' * len(chunk))}) AND parent_id IS NOT NULL", chunk))
    return out
