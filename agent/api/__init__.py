"""The local HTTP API: handlers by resource, middlewares, error envelope."""

from __future__ import annotations

from aiohttp import web

from agent.api import (
    acklinks,
    acks,
    alerts,
    chathooks,
    directory,
    health,
    hooks,
    inbox,
    notifications,
    openapi,
    receipts,
    rules,
    templates,
)
from agent.api.errors import error_middleware
from agent.api.middleware import auth_middleware, metrics_middleware

MIDDLEWARES = (metrics_middleware, error_middleware, auth_middleware)


def add_routes(app: web.Application) -> None:
    for module in (health, notifications, acks, acklinks, templates, inbox, alerts, hooks,
                   rules, directory, receipts, chathooks, openapi):
        app.router.add_routes(module.routes)
    app[openapi.DOCUMENT_CACHE] = []
