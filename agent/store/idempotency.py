"""Idempotency keys: scoped to an API key, bound to a request body hash, expire after a TTL."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.store.db import Database


@dataclass(frozen=True, slots=True)
class IdemRequest:
    """An idempotency key presented with a request, and what it must match."""

    api_key_id: str
    key: str
    request_hash: str
    valid_after: float  # keys created at or before this are expired


class ReplayExpired(Exception):
    """A request taken for a replay found its idempotency key gone (expired meanwhile)."""


class IdempotencyConflict(Exception):
    """The key was already used with a different request body."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def check_key(
    conn: sqlite3.Connection, api_key_id: str, key: str, request_hash: str, valid_after: float
) -> str | None:
    """The resource created under ``key`` for the same body, else None; raises on another body.

    An expired key is forgotten here, so it can be reused before the purge job runs.
    """
    r = _lookup(conn, api_key_id, key)
    if r is None:
        return None
    if r["created_at"] <= valid_after:
        conn.execute(
            "DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ?", (api_key_id, key)
        )
        return None
    if r["request_hash"] != request_hash:
        raise IdempotencyConflict(key)
    return str(r["resource_id"])


def _lookup(conn: sqlite3.Connection, api_key_id: str, key: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT request_hash, resource_id, created_at FROM idempotency_keys "
        "WHERE api_key_id = ? AND key = ?",
        (api_key_id, key),
    ).fetchone()
    return row


def remember_key(
    conn: sqlite3.Connection,
    api_key_id: str,
    key: str,
    request_hash: str,
    resource_id: str,
    created_at: float,
) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys (api_key_id, key, request_hash, resource_id, created_at) "
        "VALUES (?,?,?,?,?)",
        (api_key_id, key, request_hash, resource_id, created_at),
    )


class IdempotencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def replays(
        self, api_key_id: str, requests: dict[str, str], valid_after: float
    ) -> set[str]:
        """Of ``{key: request_hash}``, the keys a send would replay (read only).

        Raises IdempotencyConflict for a live key bound to another body. The write that follows
        checks again: this read only spares a replay the validation its original passed.
        """

        def op(conn: sqlite3.Connection) -> set[str]:
            found = set()
            for key, request_hash in requests.items():
                r = _lookup(conn, api_key_id, key)
                if r is None or r["created_at"] <= valid_after:
                    continue
                if r["request_hash"] != request_hash:
                    raise IdempotencyConflict(key)
                found.add(key)
            return found

        return await self._db.read(op)

    async def purge(self, older_than: float) -> int:
        """Delete keys created before ``older_than``; returns how many."""
        return await self._db.write(
            lambda c: c.execute(
                "DELETE FROM idempotency_keys WHERE created_at <= ?", (older_than,)
            ).rowcount
        )
