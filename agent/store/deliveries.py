"""Deliveries: one row per delivery attempt of a notification, never overwritten.

Rows are written by ``NotificationStore.complete`` in the same transaction as the outcome they
belong to (so the group commit batches them with it); this module reads them back: the attempt
history for the API, and the provider's message ref of a delivered notification (by notification,
or the first one of an alert group on a channel and recipient) for a later edit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from agent.store.db import Database

AttemptOutcome = Literal["delivered", "retry", "deferred", "failed"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt: what was tried, when, and what came of it."""

    attempt: int
    channel: str
    started_at: float
    finished_at: float
    outcome: AttemptOutcome
    failure_reason: str | None = None
    failure_class: str | None = None
    failure_details: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    provider_ref: dict[str, Any] | None = None
    # Where the message went, for finding it again (not listed by the API): the group key of
    # an alert group's notification, and the address.
    thread_key: str | None = None
    recipient: str | None = None


_INSERT = (
    "INSERT INTO deliveries (notification_id, attempt, channel, started_at, finished_at, "
    "outcome, failure_reason, failure_class, failure_details, http_status, retry_after, "
    "provider_ref, thread_key, recipient) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_COLUMNS = (
    "attempt, channel, started_at, finished_at, outcome, failure_reason, failure_class, "
    "failure_details, http_status, retry_after, provider_ref, thread_key, recipient"
)


def insert(conn: sqlite3.Connection, rows: Iterable[tuple[str, Attempt]]) -> None:
    """Append attempt rows ``(notification_id, attempt)`` inside the caller's transaction."""
    conn.executemany(_INSERT, [
        (nid, a.attempt, a.channel, a.started_at, a.finished_at, a.outcome, a.failure_reason,
         a.failure_class, a.failure_details, a.http_status, a.retry_after,
         None if a.provider_ref is None else orjson.dumps(a.provider_ref).decode(),
         a.thread_key, a.recipient)
        for nid, a in rows
    ])


def _attempt(r: sqlite3.Row) -> Attempt:
    d = dict(r)
    ref = d.pop("provider_ref")
    return Attempt(**d, provider_ref=None if ref is None else orjson.loads(ref))


class DeliveryStore:
    """Reads of the attempt history."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def attempts(self, notification_id: str) -> list[Attempt]:
        """Every recorded attempt of the notification, oldest first."""

        def op(conn: sqlite3.Connection) -> list[Attempt]:
            return [_attempt(r) for r in conn.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE notification_id = ? "
                "ORDER BY attempt, rowid", (notification_id,))]

        return await self._db.read(op)

    async def provider_ref(self, notification_id: str) -> dict[str, Any] | None:
        """The far side's ref of the notification's delivered message (for an edit); None
        when it was not delivered or the channel keeps no ref."""

        def op(conn: sqlite3.Connection) -> dict[str, Any] | None:
            r = conn.execute(
                "SELECT provider_ref FROM deliveries WHERE notification_id = ? "
                "AND outcome = 'delivered' AND provider_ref IS NOT NULL "
                "ORDER BY attempt DESC, rowid DESC LIMIT 1", (notification_id,)).fetchone()
            return None if r is None else dict(orjson.loads(r[0]))

        return await self._db.read(op)

    async def first_ref(self, thread_key: str, channel: str,
                        recipient: str) -> dict[str, Any] | None:
        """The provider ref of the first delivered message of a group (``thread_key``) on a
        channel to a recipient: the message later ones reply to in its thread. None when none
        was delivered yet or the channel keeps no ref."""
        return await self._thread_ref(thread_key, channel, recipient, "ASC")

    async def latest_ref(self, thread_key: str, channel: str,
                         recipient: str) -> dict[str, Any] | None:
        """The provider ref of the latest delivered message of a group on a channel to a
        recipient: the message a later notification edits (an edit returns the same message's
        ref, a refused edit the new message's)."""
        return await self._thread_ref(thread_key, channel, recipient, "DESC")

    async def _thread_ref(self, thread_key: str, channel: str, recipient: str,
                          order: str) -> dict[str, Any] | None:
        sql = ("SELECT provider_ref FROM deliveries INDEXED BY deliveries_thread "
               "WHERE thread_key = ? AND channel = ? AND recipient = ? "
               "AND outcome = 'delivered' AND thread_key IS NOT NULL "
               f"ORDER BY rowid {'DESC' if order == 'DESC' else 'ASC'} LIMIT 1")

        def op(conn: sqlite3.Connection) -> dict[str, Any] | None:
            r = conn.execute(sql, (thread_key, channel, recipient)).fetchone()
            return None if r is None or r[0] is None else dict(orjson.loads(r[0]))

        return await self._db.read(op)
