"""Escalation steps: durable rows due at a time. A group's new incident stores its policy's
steps (unless it escalates already); the grouper fires them when due, as notifications made then
(so ``oncall:`` resolves to whoever is on call at that moment); an acknowledgment or a resolve
cancels the group's pending steps in the transaction that records it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from agent.domain import NewNotification
from agent.store.db import Database
from agent.store.notifications import insert_notification

PENDING, FIRED, CANCELLED = "pending", "fired", "cancelled"


@dataclass(slots=True)
class DueStep:
    id: int
    group_id: int
    run: int
    step: int
    steps: int
    targets: list[dict[str, Any]]
    notification: dict[str, Any]
    until: str = "acknowledged"


# A due step -> the notifications it sends (fan-out through the directory at that moment).
Expand = Callable[[DueStep], list[NewNotification]]


def start(conn: sqlite3.Connection, group_id: int, plan: Sequence[dict[str, Any]],
          now: float) -> int:
    """Store a new incident's steps unless the group has pending ones; how many were stored."""
    if conn.execute("SELECT 1 FROM escalation_steps WHERE group_id = ? AND status = ?",
                    (group_id, PENDING)).fetchone():
        return 0
    conn.executemany(
        "INSERT INTO escalation_steps (group_id, run, step, steps, until, due_at, status, "
        "notification, targets, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [(group_id, s["run"], s["step"], s["steps"], s["until"], s["due_at"], PENDING,
          orjson.dumps(s["notification"]).decode(), orjson.dumps(s["targets"]).decode(), now)
         for s in plan])
    return len(plan)


def cancel(conn: sqlite3.Connection, group_ids: Iterable[int], now: float, why: str,
           acknowledged: bool) -> int:
    """Cancel the pending steps of these groups: all of them on a resolve, those that run
    ``until: acknowledged`` on an acknowledgment. How many."""
    ids = list(set(group_ids))
    if not ids:
        return 0
    only = " AND until = 'acknowledged'" if acknowledged else ""
    return conn.execute(
        "UPDATE escalation_steps SET status = ?, cancelled_at = ?, cancelled_by = ? "
        f"WHERE status = ? AND group_id IN ({','.join('?' * len(ids))}){only}",
        (CANCELLED, now, why, PENDING, *ids)).rowcount


def rearm(conn: sqlite3.Connection, group_ids: Iterable[int], now: float) -> int:
    """Pending again: the steps an acknowledgment cancelled that are still ahead, in groups
    with an alert firing and no policy running already (a new alert may have started one
    since: its steps stand, the old ones stay cancelled). How many."""
    ids = [g for g in set(group_ids) if quiet(conn, [g], acknowledged=False) == [] and not
           conn.execute("SELECT 1 FROM escalation_steps WHERE group_id = ? AND status = ?",
                        (g, PENDING)).fetchone()]
    # Only the group's latest policy: an older one an acknowledgment cancelled stays so.
    return sum(conn.execute(
        "UPDATE escalation_steps SET status = ?, cancelled_at = NULL, cancelled_by = NULL "
        "WHERE status = ? AND cancelled_by = 'acknowledged' AND due_at > ? AND group_id = ? "
        "AND created_at = (SELECT max(created_at) FROM escalation_steps WHERE group_id = ?)",
        (PENDING, CANCELLED, now, g, g)).rowcount for g in ids)


def quiet(conn: sqlite3.Connection, group_ids: Iterable[int], acknowledged: bool) -> list[int]:
    """The groups among these with nothing left to escalate: no alert firing, or (with
    ``acknowledged``) none firing that nobody has acknowledged."""
    unacked = " AND acknowledged = 0" if acknowledged else ""
    return [g for g in set(group_ids) if not conn.execute(
        f"SELECT 1 FROM group_members WHERE group_id = ? AND status = 'firing'{unacked}",
        (g,)).fetchone()]


def groups_of(conn: sqlite3.Connection, alert_seqs: Sequence[int]) -> list[int]:
    if not alert_seqs:
        return []
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT group_id FROM group_members WHERE alert_seq IN "
        f"({','.join('?' * len(alert_seqs))})", list(alert_seqs))]


class EscalationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def fire_due(self, now: float, limit: int, expand: Expand) -> tuple[int, int, int]:
        """Fire up to ``limit`` due steps: each becomes its notifications (linked to the
        group's firing alerts), in one transaction. A step whose group has nothing left to
        escalate (every alert resolved, or acknowledged for ``until: acknowledged``) is
        cancelled instead. (steps fired, steps cancelled, notifications queued)."""

        def op(conn: sqlite3.Connection) -> tuple[int, int, int]:
            fired = cancelled = queued = 0
            for r in conn.execute(
                    "SELECT id, group_id, run, step, steps, until, targets, notification "
                    # A literal status: SQLite proves the partial index's condition from it.
                    "FROM escalation_steps INDEXED BY escalation_steps_due WHERE status = "
                    "'pending' AND due_at <= ? ORDER BY due_at LIMIT ?", (now, limit)).fetchall():
                unacked = " AND acknowledged = 0" if r["until"] == "acknowledged" else ""
                seqs = [x[0] for x in conn.execute(
                    "SELECT alert_seq FROM group_members WHERE group_id = ? AND status = "
                    f"'firing'{unacked}", (r["group_id"],))]
                if not seqs:
                    cancelled += cancel(conn, [r["group_id"]], now, "nothing to escalate",
                                        acknowledged=False)
                    continue
                step = DueStep(r["id"], r["group_id"], r["run"], r["step"], r["steps"],
                               orjson.loads(r["targets"]), orjson.loads(r["notification"]),
                               r["until"])
                links = orjson.dumps(seqs).decode()
                for n in expand(step):
                    insert_notification(conn, n)
                    conn.execute("INSERT OR IGNORE INTO alert_notifications (alert_seq, "
                                 "notification_id) SELECT value, ? FROM json_each(?)",
                                 (n.id, links))
                    queued += 1
                conn.execute("UPDATE escalation_steps SET status = ?, fired_at = ? WHERE id = ?",
                             (FIRED, now, r["id"]))
                fired += 1
            return fired, cancelled, queued

        return await self._db.write(op)

    async def next_due(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            r = conn.execute("SELECT min(due_at) FROM escalation_steps INDEXED BY "
                             "escalation_steps_due WHERE status = 'pending'").fetchone()
            return None if r is None or r[0] is None else float(r[0])

        return await self._db.read(op)

    async def of_group(self, group_id: int) -> list[tuple[int, int, str, float]]:
        """(run, step, status, due_at) of a group's steps, in order (tests, tools)."""

        def op(conn: sqlite3.Connection) -> list[tuple[int, int, str, float]]:
            return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
                "SELECT run, step, status, due_at FROM escalation_steps WHERE group_id = ? "
                "ORDER BY due_at, id", (group_id,))]

        return await self._db.read(op)
