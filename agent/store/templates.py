"""Templates: named bodies with ``{{variable}}`` placeholders and usage statistics."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from agent.domain import Template
from agent.store.db import Database
from agent.store.idempotency import IdemRequest, check_key, remember_key

_COLUMNS = (
    "seq, id, name, channel, body, variables, description, metadata, usage_count, last_used_at, "
    "created_at, updated_at"
)


class TemplateNameTaken(Exception):
    """Another template already has this name."""


def _row(r: sqlite3.Row) -> Template:
    d = dict(r)
    d["variables"] = orjson.loads(d["variables"])
    d["metadata"] = orjson.loads(d["metadata"])
    return Template(**d)


@dataclass(slots=True)
class TemplateChanges:
    name: str | None = None
    body: str | None = None
    variables: list[str] | None = None
    description: str | None = None
    metadata: dict[str, Any] | None = None
    channel: str | None = None


class TemplateStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, t: Template, idem: IdemRequest | None = None
                     ) -> tuple[Template, bool]:
        """Insert; returns (template, replayed). Raises TemplateNameTaken, IdempotencyConflict.

        With ``idem``, a repeat of the same request returns the template it created.
        """

        def op(conn: sqlite3.Connection) -> tuple[Template, bool]:
            if idem is not None:
                original = check_key(conn, idem.api_key_id, idem.key, idem.request_hash,
                                     idem.valid_after)
                if original is not None:
                    r = conn.execute(f"SELECT {_COLUMNS} FROM templates WHERE id = ?",
                                     (original,)).fetchone()
                    if r is not None:
                        return _row(r), True
                    # Deleted since: the request creates it again, under the same key.
                    conn.execute("DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ?",
                                 (idem.api_key_id, idem.key))
            try:
                cur = conn.execute(
                    "INSERT INTO templates (id, name, channel, body, variables, description, "
                    "metadata, usage_count, last_used_at, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (t.id, t.name, t.channel, t.body, orjson.dumps(t.variables).decode(),
                     t.description, orjson.dumps(t.metadata).decode(), t.usage_count,
                     t.last_used_at, t.created_at, t.updated_at),
                )
            except sqlite3.IntegrityError as exc:
                raise TemplateNameTaken(t.name) from exc
            t.seq = cur.lastrowid or 0
            if idem is not None:
                remember_key(conn, idem.api_key_id, idem.key, idem.request_hash, t.id,
                             t.created_at)
            return t, False

        return await self._db.write(op)

    async def get(self, template_id: str) -> Template | None:
        def op(conn: sqlite3.Connection) -> Template | None:
            r = conn.execute(
                f"SELECT {_COLUMNS} FROM templates WHERE id = ?", (template_id,)
            ).fetchone()
            return _row(r) if r else None

        return await self._db.read(op)

    async def page(
        self, channel: str | None, before_seq: int | None, limit: int
    ) -> tuple[list[Template], bool]:
        where: list[str] = []
        args: list[Any] = []
        if channel is not None:
            where.append("channel = ?")
            args.append(channel)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        sql = f"SELECT {_COLUMNS} FROM templates"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = await self._db.read(lambda c: [_row(r) for r in c.execute(sql, args)])
        return rows[:limit], len(rows) > limit

    async def update(self, template_id: str, ch: TemplateChanges, now: float) -> Template | None:
        """Apply the given fields only; None when the template does not exist."""
        sets: list[str] = ["updated_at = ?"]
        args: list[Any] = [now]
        for column, value in (
            ("name", ch.name),
            ("body", ch.body),
            ("channel", ch.channel),
            ("description", ch.description),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        for column, obj in (("variables", ch.variables), ("metadata", ch.metadata)):
            if obj is not None:
                sets.append(f"{column} = ?")
                args.append(orjson.dumps(obj).decode())
        args.append(template_id)

        def op(conn: sqlite3.Connection) -> Template | None:
            try:
                conn.execute(f"UPDATE templates SET {', '.join(sets)} WHERE id = ?", args)
            except sqlite3.IntegrityError as exc:
                raise TemplateNameTaken(ch.name or "") from exc
            r = conn.execute(
                f"SELECT {_COLUMNS} FROM templates WHERE id = ?", (template_id,)
            ).fetchone()
            return _row(r) if r else None

        return await self._db.write(op)

    async def delete(self, template_id: str) -> bool:
        return await self._db.write(
            lambda c: c.execute("DELETE FROM templates WHERE id = ?", (template_id,)).rowcount == 1
        )
