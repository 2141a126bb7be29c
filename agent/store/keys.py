"""API keys at rest: hashes only."""

from __future__ import annotations

import sqlite3

from agent.apikeys import ApiKey
from agent.store.db import Database


class KeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def active(self) -> list[ApiKey]:
        def op(conn: sqlite3.Connection) -> list[ApiKey]:
            return [
                ApiKey(r["id"], r["mode"], r["key_hash"], r["hint"])
                for r in conn.execute(
                    "SELECT id, mode, key_hash, hint FROM api_keys WHERE revoked_at IS NULL "
                    "ORDER BY created_at"
                )
            ]

        return await self._db.read(op)

    async def add(self, keys: list[ApiKey], now: float) -> None:
        await self._db.write(
            lambda c: c.executemany(
                "INSERT INTO api_keys (id, mode, key_hash, hint, created_at) VALUES (?,?,?,?,?)",
                [(k.id, k.mode, k.key_hash, k.hint, now) for k in keys],
            )
        )
