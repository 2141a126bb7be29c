"""Unauthenticated operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.api.context import ctx
from agent.api.errors import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    c = ctx(request)
    checks = {"store": await c.store.db.ping(), "dispatcher": c.dispatcher_running()}
    ready = all(checks.values())
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                         200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(ctx(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
