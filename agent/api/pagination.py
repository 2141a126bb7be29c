"""Opaque, expiring cursors: ``cur_`` + base64url of the position, the resource kind and expiry.

Cursors are not signed: a forged one only selects another page of what the caller may read anyway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from agent.api.errors import ApiError

PREFIX = "cur_"


def encode(kind: str, seq: int, expires_at: float) -> str:
    raw = orjson.dumps({"k": kind, "s": seq, "e": int(expires_at)})
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: str, cursor: str, now: float) -> int:
    """The position in a cursor of ``kind``; ApiError 400 when invalid or expired."""
    bad = ApiError(400, "invalid_cursor", "The cursor is invalid; start from the first page.",
                   "cursor")
    if not cursor.startswith(PREFIX):
        raise bad
    body = cursor[len(PREFIX):]
    try:
        data = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("s"), int):
        raise bad
    if not isinstance(data.get("e"), int) or data["e"] < now:
        raise ApiError(400, "cursor_expired",
                       "The cursor has expired (24 h); start from the first page.", "cursor")
    return int(data["s"])


def parse_limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return 25
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_type", "'limit' must be an integer.", "limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(422, "invalid_value", "'limit' must be between 1 and 100.", "limit")
    return limit


class _Positioned(Protocol):
    seq: int


def position(query: Mapping[str, str], kind: str, now: float) -> int | None:
    """The ``cursor`` query parameter decoded, or None on the first page."""
    return decode(kind, query["cursor"], now) if "cursor" in query else None


def page(
    kind: str,
    rows: Sequence[_Positioned],
    has_more: bool,
    render: Callable[[Any], dict[str, Any]],
    expires_at: float,
) -> dict[str, Any]:
    """The seed's list object, with a cursor after the last row when more exist."""
    cursor = encode(kind, rows[-1].seq, expires_at) if has_more and rows else None
    return {"object": "list", "data": [render(r) for r in rows], "has_more": has_more,
            "next_cursor": cursor}
