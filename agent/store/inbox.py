"""The in-app inbox: what the in-app channel delivered, per recipient."""

from __future__ import annotations

import sqlite3

import orjson

from agent.domain import InboxItem
from agent.store.db import Database

_COLUMNS = ("seq, notification_id, recipient, title, body, severity, metadata, created_at, "
            "read_at, mode")


def _row(r: sqlite3.Row) -> InboxItem:
    d = dict(r)
    d["metadata"] = orjson.loads(d["metadata"])
    return InboxItem(**d)


class InboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, item: InboxItem) -> None:
        """Store an item; a redelivery of the same notification is a no-op (at-least-once)."""
        await self._db.write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO inbox (notification_id, recipient, title, body, severity, "
                "metadata, created_at, mode) VALUES (?,?,?,?,?,?,?,?)",
                (item.notification_id, item.recipient, item.title, item.body, item.severity,
                 orjson.dumps(item.metadata).decode(), item.created_at, item.mode),
            )
        )

    async def page(
        self, recipient: str, mode: str, before_seq: int | None, limit: int
    ) -> tuple[list[InboxItem], bool]:
        """A recipient's items of one key mode, newest first."""
        sql = f"SELECT {_COLUMNS} FROM inbox WHERE recipient = ? AND mode = ?"
        args: list[object] = [recipient, mode]
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self._db.read(lambda c: [_row(r) for r in c.execute(sql, args)])
        return rows[:limit], len(rows) > limit
