"""Acknowledgment: the first one of an alert is recorded, with who gave it and through what, in
one transaction with the notifications it quiets and the group members it stops repeating."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.domain import Notification, Status
from agent.store import escalations, pages
from agent.store.db import Database
from agent.store.notifications import COLUMNS as NTF_COLUMNS
from agent.store.notifications import notification_row

# A delivered message is answered for: acknowledged is its terminal status (seed 000).
_ANSWERED_FROM = (Status.SENT, Status.DELIVERED, Status.READ)


@dataclass(slots=True)
class Acked:
    """What an acknowledgment found and did."""

    alert_ids: list[str]  # the alerts it is about (all of them, acknowledged now or before)
    first: bool  # this call recorded the acknowledgment (of at least one alert or the message)
    by: str | None  # the recorded acknowledgment: the first one's
    at: float | None
    via: str | None
    # Delivered notifications of those alerts, newest first: their messages say "acknowledged".
    delivered: list[Notification] = field(default_factory=list)
    all_resolved: bool = False
    since: float | None = None  # when the earliest of the alerts was first seen
    escalations_cancelled: int = 0
    withdrawn: int = 0  # queued repeats and escalation pages about them, cancelled


@dataclass(slots=True)
class Unacked:
    alert_ids: list[str]
    cleared: bool  # an acknowledgment was there and is gone


class AckStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def acknowledge(self, *, notification_id: str | None, alert_id: str | None,
                          by: str, via: str, now: float, simulated: bool) -> Acked | None:
        """Acknowledge a notification (and the alerts it is about) or an alert, of this key
        mode; None when unknown. The first acknowledgment wins; repeats change nothing."""

        def op(conn: sqlite3.Connection) -> Acked | None:
            mode = "test" if simulated else "live"
            first, stopped, withdrawn = False, 0, 0
            if notification_id is not None:
                row = conn.execute(f"SELECT {NTF_COLUMNS} FROM notifications WHERE id = ? "
                                   "AND simulated = ?", (notification_id, int(simulated)))
                found = row.fetchone()
                if found is None:
                    return None
                n = notification_row(found)
                alert_ids = [a for a in n.metadata.get("alert_ids", []) if isinstance(a, str)]
            else:
                alert_ids = [alert_id] if alert_id is not None else []
            rows = _alerts(conn, alert_ids, mode)
            if notification_id is None and not rows:
                return None
            if rows and all(r[2] == "resolved" and r[4] is None for r in rows):
                # Nothing left to take: a click on a resolved alert's button records nothing.
                return Acked([r[1] for r in rows], False, None, None, None, all_resolved=True)
            if notification_id is not None:
                # About alerts: the first acknowledgment is theirs (a later message about an
                # acknowledged alert records who answered it, but is no new acknowledgment).
                first = _answer(conn, [n.id, *([n.parent_id] if n.parent_id else [])],
                                by, now) > 0 and not rows
            seqs = [seq for seq, *_ in rows]
            if seqs:
                marks = ",".join("?" * len(seqs))
                cur = conn.execute(
                    "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?, "
                    f"acknowledged_via = ?, updated_at = ? WHERE seq IN ({marks}) "
                    "AND acknowledged_at IS NULL", (now, by, via, now, *seqs))
                first = first or cur.rowcount > 0
                conn.execute(f"UPDATE group_members SET acknowledged = 1 WHERE alert_seq IN "
                             f"({marks})", seqs)
                # A group escalates while one of its firing alerts is unacknowledged.
                answered = escalations.quiet(conn, escalations.groups_of(conn, seqs),
                                             acknowledged=True)
                stopped = escalations.cancel(conn, answered, now, "acknowledged",
                                             acknowledged=True)
                withdrawn = pages.withdraw(conn, seqs, now)
                ids = [r[0] for r in conn.execute(
                    "SELECT DISTINCT notification_id FROM alert_notifications "
                    f"WHERE alert_seq IN ({marks})", seqs)]
                _answer(conn, ids, by, now)
            delivered = [notification_row(r) for r in conn.execute(
                f"SELECT {NTF_COLUMNS} FROM notifications WHERE id IN (SELECT notification_id "
                f"FROM alert_notifications WHERE alert_seq IN ({','.join('?' * len(seqs))})) "
                "AND status = ? ORDER BY seq DESC", (*seqs, Status.ACKNOWLEDGED))] if seqs else []
            recorded = rows[0] if rows else None
            if recorded is not None:  # read back: the first acknowledgment's values
                recorded = conn.execute(
                    "SELECT seq, id, status, acknowledged_at, acknowledged_by, acknowledged_via "
                    "FROM alerts WHERE seq = ?", (recorded[0],)).fetchone()
            if recorded is None:
                n2 = conn.execute("SELECT acknowledged_at, acknowledged_by FROM notifications "
                                  "WHERE id = ?", (notification_id,)).fetchone()
                return Acked([], first, n2[1], n2[0], via, [])
            return Acked([r[1] for r in rows], first, recorded[4], recorded[3], recorded[5],
                         delivered, all_resolved=all(r[2] == "resolved" for r in rows),
                         since=min(r[3] for r in rows), escalations_cancelled=stopped,
                         withdrawn=withdrawn)

        return await self._db.write(op)

    async def all_resolved(self, alert_ids: Sequence[str], simulated: bool) -> bool:
        """Every one of these alerts (of this key mode) that is stored is resolved, and one
        is: an acknowledge link about them has expired with them."""

        def op(conn: sqlite3.Connection) -> bool:
            rows = _alerts(conn, alert_ids, "test" if simulated else "live")
            return bool(rows) and all(r[2] == "resolved" for r in rows)

        return await self._db.read(op)

    async def open_to(self, channel: str, recipient: str, limit: int = 20,
                      scan: int = 2000) -> list[Notification]:
        """The newest notifications sent or delivered to ``recipient`` on ``channel`` about
        an alert still firing that nobody acknowledged (at most ``limit``, among the channel's
        newest ``scan`` rows: a reply answers a recent message). A resolved message, or one
        whose alerts are all answered, is no candidate for a bare "ACK"."""

        def op(conn: sqlite3.Connection) -> list[Notification]:
            return [notification_row(r) for r in conn.execute(
                f"SELECT {NTF_COLUMNS} FROM (SELECT * FROM notifications INDEXED BY "
                "notifications_channel_seq WHERE channel = ? ORDER BY seq DESC LIMIT ?) n "
                "WHERE recipient = ? AND status IN ('sent', 'delivered', 'read') "
                "AND acknowledged_at IS NULL AND EXISTS (SELECT 1 FROM alert_notifications a "
                "JOIN alerts x ON x.seq = a.alert_seq WHERE a.notification_id = n.id "
                "AND x.status = 'active' AND x.acknowledged_at IS NULL) "
                "ORDER BY seq DESC LIMIT ?", (channel, scan, recipient, limit))]

        return await self._db.read(op)

    async def unacknowledge(self, alert_id: str, now: float, simulated: bool) -> Unacked | None:
        """Clear an alert's acknowledgment (its group repeats again); None when unknown."""

        def op(conn: sqlite3.Connection) -> Unacked | None:
            rows = _alerts(conn, [alert_id], "test" if simulated else "live")
            if not rows:
                return None
            seq = rows[0][0]
            cur = conn.execute(
                "UPDATE alerts SET acknowledged_at = NULL, acknowledged_by = NULL, "
                "acknowledged_via = NULL, updated_at = ? WHERE seq = ? "
                "AND acknowledged_at IS NOT NULL", (now, seq))
            conn.execute("UPDATE group_members SET acknowledged = 0 WHERE alert_seq = ?", (seq,))
            escalations.rearm(conn, escalations.groups_of(conn, [seq]), now)
            return Unacked([alert_id], cur.rowcount > 0)

        return await self._db.write(op)


def _alerts(conn: sqlite3.Connection, ids: Sequence[str],
            mode: str) -> list[tuple[int, str, str, float, float | None]]:
    """(seq, id, status, created_at, acknowledged_at) of the alerts of this mode among
    ``ids``, in the order given."""
    if not ids:
        return []
    found = {r[1]: (r[0], r[1], r[2], r[3], r[4]) for r in conn.execute(
        "SELECT seq, id, status, created_at, acknowledged_at FROM alerts WHERE id IN "
        f"({','.join('?' * len(ids))}) AND mode = ?", (*ids, mode))}
    return [found[i] for i in ids if i in found]


def _answer(conn: sqlite3.Connection, ids: Sequence[str], by: str, now: float) -> int:
    """Record the acknowledgment on these notifications where none is yet; a delivered one
    becomes ``acknowledged``. How many had none."""
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    conn.execute(
        f"UPDATE notifications SET status = ? WHERE id IN ({marks}) AND status IN "
        f"({','.join('?' * len(_ANSWERED_FROM))}) AND acknowledged_at IS NULL",
        (Status.ACKNOWLEDGED, *ids, *_ANSWERED_FROM))
    return conn.execute(
        f"UPDATE notifications SET acknowledged_at = ?, acknowledged_by = ? "
        f"WHERE id IN ({marks}) AND acknowledged_at IS NULL", (now, by, *ids)).rowcount
