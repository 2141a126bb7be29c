"""The one way handlers read a body: size-limited, parsed, a clear 4xx for anything wrong.

aiohttp enforces ``client_max_size`` only when a handler reads the body, so every handler reads it
here, where the limit is turned into a 413 in the seed's envelope. Nesting is limited here too
(``api.max_json_depth``): orjson parses 1,024 levels but encodes only 254, and the log processors
walk values recursively, so anything deeper would fail later, after it was stored.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from agent.api.context import ctx
from agent.api.errors import ApiError


async def read_raw(request: web.Request, limit: int | None = None) -> bytes:
    """The request body, at most ``limit`` bytes (the API limit by default). Raises 413."""
    limit = limit or ctx(request).settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_object(request: web.Request, raw: bytes | None = None) -> dict[str, Any]:
    """The request body as a JSON object. Raises ApiError 400/413."""
    if raw is None:
        raw = await read_raw(request)
    return parse_json_object(raw, ctx(request).settings.max_json_depth)


def parse_json_object(raw: bytes, max_depth: int) -> dict[str, Any]:
    """``raw`` as a JSON object nested at most ``max_depth`` levels. Raises ApiError 400."""
    if not raw.strip():
        raise ApiError(400, "missing_body", "The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops at 1,024 levels
            raise _too_deep(max_depth) from exc
        raise ApiError(400, "invalid_json", f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    # Fewer brackets than the limit cannot nest past it: most bodies skip the walk.
    if raw.count(b"{") + raw.count(b"[") > max_depth and too_deep(data, max_depth):
        raise _too_deep(max_depth)
    return data


def too_deep(value: object, limit: int) -> bool:
    """Whether JSON containers nest more than ``limit`` levels (a top-level object is 1)."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _too_deep(limit: int) -> ApiError:
    return ApiError(400, "json_too_deep",
                    f"The request body nests deeper than api.max_json_depth ({limit}) levels.")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"The request body exceeds {limit} bytes.")
