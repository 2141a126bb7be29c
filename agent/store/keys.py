"""API keys at rest: hashes only.

The statements are plain functions of a connection so that the daemon (through the group
committer) and ``alert-agent keys`` (a short transaction of its own, while the daemon may run)
share them.
"""

from __future__ import annotations

import sqlite3

from agent.apikeys import SOURCE_CONFIG, ApiKey, KeyRecord
from agent.store.db import Database

_COLUMNS = "id, mode, key_hash, hint, created_at, revoked_at, name, source"


def _record(r: sqlite3.Row) -> KeyRecord:
    return KeyRecord(ApiKey(r["id"], r["mode"], r["key_hash"], r["hint"]), r["source"],
                     r["created_at"], r["name"], r["revoked_at"])


def all_keys(conn: sqlite3.Connection) -> list[KeyRecord]:
    """Every row, revoked ones included, oldest first."""
    return [_record(r) for r in
            conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])


def insert(conn: sqlite3.Connection, records: list[KeyRecord]) -> None:
    conn.executemany(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
        [(r.key.id, r.key.mode, r.key.key_hash, r.key.hint, r.created_at, r.revoked_at, r.name,
          r.source) for r in records],
    )


def revoke(conn: sqlite3.Connection, key_id: str, at: float) -> KeyRecord | None:
    """Mark the row revoked (once: a second revoke keeps the first time); None if no such id."""
    conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                 (at, key_id))
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else _record(row)


def revoke_configured(conn: sqlite3.Connection, key: ApiKey, at: float) -> KeyRecord:
    """Record the revocation of a configured key (it has no row of its own until now)."""
    conn.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,NULL,?) "
        "ON CONFLICT (key_hash) DO UPDATE "
        "SET revoked_at = COALESCE(revoked_at, excluded.revoked_at)",
        (key.id, key.mode, key.key_hash, key.hint, at, at, SOURCE_CONFIG),
    )
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?",
                       (key.key_hash,)).fetchone()
    return _record(row)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[KeyRecord]:
        return await self._db.read(all_keys)

    async def count(self) -> int:
        return await self._db.read(count)

    async def add(self, records: list[KeyRecord]) -> None:
        await self._db.write(lambda c: insert(c, records))
