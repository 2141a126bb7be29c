"""Middlewares: request metrics, authentication and rate limiting of ``/v1``."""

from __future__ import annotations

import time

from aiohttp import web

from agent.api.context import ctx
from agent.api.errors import ApiError, Handler, error_response
from agent.apikeys import ApiKey

API_KEY = web.RequestKey("api_key", ApiKey)


def require_live(key: ApiKey, action: str) -> None:
    """Shared configuration (templates, rules) changes only with a live key: 403 otherwise."""
    if key.simulated:
        raise ApiError(403, "live_key_required",
                       f"{action} needs an sk_live_ key; sk_test_ keys may only read and use "
                       "shared configuration.")


def _route_label(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        m = ctx(request).metrics
        route = _route_label(request)
        m.http_requests.labels(route, request.method, str(status)).inc()
        m.http_duration.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every ``/v1`` route needs ``Authorization: Bearer sk_live_...|sk_test_...``."""
    if not request.path.startswith("/v1/") and request.path != "/v1":
        return await handler(request)
    c = ctx(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        c.metrics.auth_failures.inc()
        raise ApiError(401, "missing_api_key",
                       "No API key provided. Send 'Authorization: Bearer sk_live_...'.")
    key = await c.keyring.lookup(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        c.metrics.auth_failures.inc()
        raise ApiError(401, "invalid_api_key", "The API key is invalid or revoked.")
    request[API_KEY] = key
    if c.limiter is None:
        return await handler(request)
    decision = c.limiter.hit(key.id)
    headers = decision.headers()
    if not decision.allowed:
        c.metrics.rate_limited.inc()
        raise ApiError(
            429, "rate_limit_exceeded",
            f"Rate limit exceeded. Retry after {decision.retry_after} seconds.",
            headers=headers,
        )
    try:
        resp = await handler(request)
    except ApiError as err:
        err.headers.update(headers)
        return error_response(err)
    resp.headers.update(headers)
    return resp
