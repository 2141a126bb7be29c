"""Idempotency-Key helpers shared by the handlers that create resources."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from agent.api.errors import ApiError
from agent.store import IdempotencyConflict


def request_hash(item: dict[str, Any]) -> str:
    """A stable hash of a request body, to tell a replay from a reuse of the key."""
    return hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def idempotency_conflict(exc: IdempotencyConflict) -> ApiError:
    """The 409 for an idempotency key already used with a different body."""
    return ApiError(409, "idempotency_key_reused",
                    f"Idempotency key '{exc.key}' was already used with a different request body.",
                    "idempotency_key")
