"""Pages still waiting in the outbox that an answer makes pointless: a group's repeats and its
escalation pages (held by a rate limit, a retry or a paused channel). The transaction that
records an acknowledgment or a resolve cancels those whose alerts are all answered; the first
message and the resolved one still go: they inform, they do not page.

A page is still wanted while one alert it is linked to is firing and, unless the page belongs
to an escalation that runs ``until: resolved``, unacknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from agent.domain import Status
from agent.store import fanout

_PAGES = ("repeat", "escalation")


def withdraw(conn: sqlite3.Connection, alert_seqs: Sequence[int], now: float) -> int:
    """Cancel the queued, unclaimed pages about these alerts that nothing wants any more; a
    team send's parent follows its members. How many were cancelled."""
    if not alert_seqs:
        return 0
    marks = ",".join("?" * len(alert_seqs))
    return _withdraw(conn, conn.execute(
        f"SELECT DISTINCT {_COLUMNS} "
        "FROM alert_notifications a JOIN notifications n ON n.id = a.notification_id "
        f"WHERE a.alert_seq IN ({marks}) AND {_QUEUED_PAGE}",
        (*alert_seqs, Status.QUEUED, *_PAGES)).fetchall(), now)


def withdraw_requeued(conn: sqlite3.Connection, ids: Sequence[str], now: float) -> int:
    """The same for rows just put back on the outbox (a retry, a deferral): an answer that
    came while they were claimed could not withdraw them then."""
    if not ids:
        return 0
    return _withdraw(conn, conn.execute(
        f"SELECT {_COLUMNS} FROM notifications n WHERE n.id IN ({','.join('?' * len(ids))}) "
        f"AND {_QUEUED_PAGE}", (*ids, Status.QUEUED, *_PAGES)).fetchall(), now)


_COLUMNS = "n.id, n.parent_id, json_extract(n.metadata, '$.escalation.until') = 'resolved'"
_QUEUED_PAGE = ("n.status = ? AND n.claimed_at IS NULL AND n.fanout = 0 "
                "AND json_extract(n.metadata, '$.reason') IN (?, ?)")


def _withdraw(conn: sqlite3.Connection, rows: Sequence[Any], now: float) -> int:
    stop: list[str] = []
    parents: set[str] = set()
    for nid, parent_id, until_resolved in rows:
        unanswered = "" if until_resolved else " AND x.acknowledged_at IS NULL"
        if conn.execute(
                "SELECT 1 FROM alert_notifications a JOIN alerts x ON x.seq = a.alert_seq "
                f"WHERE a.notification_id = ? AND x.status = 'active'{unanswered} LIMIT 1",
                (nid,)).fetchone():
            continue  # still about an alert nobody answered
        stop.append(nid)
        if parent_id is not None:
            parents.add(parent_id)
    if not stop:
        return 0
    done = conn.execute(
        f"UPDATE notifications SET status = ?, cancelled_at = ? WHERE id IN "
        f"({','.join('?' * len(stop))}) AND status = ? AND claimed_at IS NULL",
        (Status.CANCELLED, now, *stop, Status.QUEUED)).rowcount
    fanout.settle(conn, sorted(parents), now)
    return done
