"""The one way handlers read a body: size-limited, parsed, a clear 4xx for anything wrong.

aiohttp enforces ``client_max_size`` only when a handler reads the body, so every handler reads it
here, where the limit is turned into a 413 in the seed's envelope.
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
    return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise ApiError(400, "missing_body", "The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    return data


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"The request body exceeds {limit} bytes.")
