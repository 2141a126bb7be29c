"""A receiver for Apprise's ``json://`` service (the "Custom JSON" plugin) on 127.0.0.1.

What Apprise posts (apprise/plugins/custom_json.py, Apprise 2.x; wiki "Notify_Custom_JSON"):
``POST`` to the URL's path with ``Content-Type: application/json`` and the body
``{"version": "1.0", "title": ..., "message": ..., "attachments": [], "type": ...}``, ``type``
one of ``info``, ``success``, ``warning``, ``failure``; HTTP basic auth when the URL has
``user:password@``. The receiver checks those and answers ``400`` for a body that is not such
an object, ``401`` for wrong credentials, ``405`` for another method.

``emu.messages[path]`` holds what arrived at each path. Faults, for the next N requests or for
a while: ``429`` (with ``Retry-After`` when asked), ``5xx``, ``404``, ``stall``, ``malformed``.
``in_flight``/``max_in_flight`` count requests being answered at once (``delay`` holds each).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.failure_plan import FailurePlan, stall, truncated
from tests.helpers import serve

TYPES = ("info", "success", "warning", "failure")


@dataclass
class Received:
    """One notification as it arrived."""

    title: str
    message: str
    type: str
    version: str


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # monotonic


@dataclass
class AppriseJsonEmulator:
    # (user, password) a request must carry; None: no auth asked
    credentials: tuple[str, str] | None = None
    delay: float = 0.0  # seconds each request is held before its answer
    messages: dict[str, list[Received]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: FailurePlan = field(default_factory=FailurePlan)
    in_flight: int = 0
    max_in_flight: int = 0

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on 127.0.0.1 (random port); yields the base URL (``http://127.0.0.1:<port>``)."""
        async with serve(self.handle) as url:
            try:
                yield url
            finally:  # before the server closes: a stalled request ends now
                self.failures.release.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            if self.delay:
                await asyncio.sleep(self.delay)
            resp = await self._answer(request, body)
        finally:
            self.in_flight -= 1
        self.requests.append(Request(request.method, request.path, dict(request.headers), body,
                                     resp.status, time.monotonic()))
        return resp

    def _authorized(self, request: web.Request) -> bool:
        if self.credentials is None:
            return True
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == self.credentials

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if request.method != "POST":
            return web.json_response({"error": "method not allowed"}, status=405)
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        fault = self.failures.take()
        if fault is not None:
            return await self._fault(request, fault.kind, fault.retry_after, fault.status)
        if request.content_type != "application/json":
            return web.json_response({"error": "expected application/json"}, status=400)
        received = _parse(body)
        if received is None:
            return web.json_response({"error": "not an Apprise JSON notification"}, status=400)
        self.messages.setdefault(request.path, []).append(received)
        return web.json_response({"ok": True})

    async def _fault(self, request: web.Request, kind: str, retry_after: float | None,
                     status: int | None) -> web.StreamResponse:
        if kind == "429":
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return web.json_response({"error": "too many requests"}, status=429,
                                     headers=headers)
        if kind == "5xx":
            # The path echoed, as some receivers do: it must not reach a detail or a log.
            return web.json_response({"error": "internal error", "path": request.path},
                                     status=status or 500)
        if kind == "404":
            return web.json_response({"error": "not found", "path": request.path}, status=404)
        if kind == "stall":
            return await stall(self.failures)
        if kind == "malformed":
            return await truncated(request)
        raise ValueError(f"unknown fault {kind!r}")


def _parse(body: bytes) -> Received | None:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    title, message, kind = data.get("title"), data.get("message"), data.get("type")
    if not isinstance(title, str) or not isinstance(message, str) or kind not in TYPES:
        return None
    if not isinstance(data.get("attachments", []), list):
        return None
    return Received(title, message, kind, str(data.get("version", "")))
