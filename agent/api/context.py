"""What API handlers may use, stored once on the application under a typed key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from agent.api.auth import KeyRing
from agent.api.ratelimit import RateLimiter
from agent.observability import Metrics
from agent.settings import ApiSettings
from agent.store import Store


@dataclass(slots=True)
class ApiContext:
    store: Store
    metrics: Metrics
    settings: ApiSettings
    keyring: KeyRing
    limiter: RateLimiter | None
    wake_dispatcher: Callable[[], None]
    dispatcher_running: Callable[[], bool]
    clock: Callable[[], float]


CTX = web.AppKey("api_context", ApiContext)


def ctx(request: web.Request) -> ApiContext:
    return request.app[CTX]
