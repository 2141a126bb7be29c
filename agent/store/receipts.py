"""Delivery receipts: a provider that reports the outcome later (Twilio's status callbacks)
moves a ``sent`` notification, found by the provider's message id (``provider_id``), to
``delivered`` or ``failed``.

Each move is one conditional statement on the row's status, so a repeated receipt or a late one
(``sent`` after ``delivered``) changes nothing, and a receipt never moves a row back.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.domain import Status
from agent.store import deadletters, fanout
from agent.store.db import Database


@dataclass(frozen=True, slots=True)
class ReceiptChange:
    """What a receipt changed on notification ``id``: ``status`` is its new status; ``read``
    says the read time was set (WhatsApp) although the status may not have moved."""

    id: str
    channel: str
    status: Status
    due_at: float
    moved: bool = True
    read: bool = False


@dataclass(frozen=True, slots=True)
class Awaiting:
    """A notification due to be looked up at its provider (``status`` is ``sent`` unless it
    moved another way since)."""

    id: str
    channel: str
    provider_id: str
    sent_at: float
    status: str


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def delivered(self, provider_id: str, at: float,
                        read: bool = False) -> ReceiptChange | None:
        """``sent`` -> ``delivered`` at ``at``; with ``read``, also the read time (once). None
        when nothing changed (unknown id, already delivered and read, failed)."""

        def op(conn: sqlite3.Connection) -> ReceiptChange | None:
            moved = conn.execute(
                "UPDATE notifications SET status = ?, delivered_at = ?, receipt_check_at = NULL "
                "WHERE provider_id = ? AND status = ? RETURNING id, channel, due_at, parent_id",
                (Status.DELIVERED, at, provider_id, Status.SENT)).fetchone()
            if moved is not None and moved[3] is not None:
                fanout.settle(conn, [moved[3]], at)  # a team send's status follows its members
            seen = conn.execute(
                "UPDATE notifications SET read_at = ? WHERE provider_id = ? AND status = ? "
                "AND read_at IS NULL RETURNING id, channel, due_at",
                (at, provider_id, Status.DELIVERED)).fetchone() if read else None
            row = moved or seen
            if row is None:
                return None
            return ReceiptChange(row[0], row[1], Status.DELIVERED, row[2],
                                 moved=moved is not None, read=seen is not None)

        return await self._db.write(op)

    async def failed(self, provider_id: str, at: float, reason: str, details: str,
                     failure_class: str) -> ReceiptChange | None:
        """``sent`` -> ``failed`` (a dead letter); None when nothing changed."""

        def op(conn: sqlite3.Connection) -> ReceiptChange | None:
            r = conn.execute("SELECT id FROM notifications WHERE provider_id = ? AND status = ?",
                             (provider_id, Status.SENT)).fetchone()
            if r is None:
                return None
            deadletters.failing(conn, "id", [r[0]])
            row = conn.execute(
                "UPDATE notifications SET status = ?, failed_at = ?, failure_reason = ?, "
                "failure_details = ?, failure_class = ?, receipt_check_at = NULL WHERE id = ? "
                "RETURNING id, channel, due_at, parent_id",
                (Status.FAILED, at, reason, details, failure_class, r[0])).fetchone()
            if row[3] is not None:
                fanout.settle(conn, [row[3]], at)
            return ReceiptChange(row[0], row[1], Status.FAILED, row[2])

        return await self._db.write(op)

    async def known(self, provider_id: str) -> bool:
        """Whether a notification was sent under ``provider_id``."""

        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("SELECT 1 FROM notifications WHERE provider_id = ?",
                                (provider_id,)).fetchone() is not None

        return await self._db.read(op)

    async def due_checks(self, now: float, limit: int) -> list[Awaiting]:
        """Rows whose provider should be asked now (no receipt came), soonest first, at most
        ``limit``; a row no longer ``sent`` is among them once, to be cleared."""

        def op(conn: sqlite3.Connection) -> list[Awaiting]:
            rows = conn.execute(
                "SELECT id, channel, provider_id, sent_at, status FROM notifications INDEXED BY "
                "notifications_receipt_check WHERE receipt_check_at IS NOT NULL "
                "AND receipt_check_at <= ? ORDER BY receipt_check_at LIMIT ?",
                (now, limit)).fetchall()
            return [Awaiting(*r) for r in rows]

        return await self._db.read(op)

    async def check_again(self, notification_id: str, at: float | None) -> None:
        """When to ask about this row next (None: never). A row a receipt moved meanwhile
        keeps the NULL the move gave it."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE notifications SET receipt_check_at = ? WHERE id = ? "
                         "AND (status = ? OR ? IS NULL)", (at, notification_id, Status.SENT, at))

        await self._db.write(op)
