"""Rules operations: ``GET /v1/rules/status`` and ``POST /-/reload`` (Alertmanager's path)."""

from __future__ import annotations

import math

from aiohttp import web

from agent.api.context import ctx
from agent.api.errors import ApiError, json_response
from agent.api.middleware import require_live

routes = web.RouteTableDef()


@routes.get("/v1/rules/status")
async def status(request: web.Request) -> web.Response:
    return json_response(ctx(request).rules_holder.status())


@routes.post("/-/reload")
async def reload(request: web.Request) -> web.Response:
    c = ctx(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    key = await c.keyring.lookup(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        c.metrics.auth_failures.inc()
        raise ApiError(401, "invalid_api_key", "Reloading needs a valid API key.")
    require_live(key, "Reloading the rules")
    wait = c.reload_gate.attempt()
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise ApiError(429, "reload_rate_limited",
                       f"Rules were reloaded less than {c.reload_gate.interval:g} s ago "
                       f"(api.reload_min_interval_seconds). Retry after {retry} seconds.",
                       headers={"Retry-After": str(retry)})
    ok = await c.rules_holder.reload("api")
    body = c.rules_holder.status()
    if not ok:
        first = body["errors"][0]
        raise ApiError(422, "invalid_rules",
                       f"Rules not reloaded (the running rules stay): {first['file']}"
                       f"{':' + str(first['line']) if first['line'] else ''}: {first['message']}"
                       + (f" (+{len(body['errors']) - 1} more)" if len(body["errors"]) > 1 else ""),
                       "rules")
    return json_response(body)
