"""Test helpers shared by every suite: keys, polling with a deadline, a webhook sink."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

LIVE_KEY = "sk_live_testkey0000000000000000000001"
TEST_KEY = "sk_test_testkey0000000000000000000002"
WEBHOOK_SECRET = "whsec_test_secret_0123456789"


def auth(key: str = LIVE_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def wait_until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@dataclass
class Sink:
    """A local webhook receiver: records every POST, answers from a script of responses."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    # Each entry: (status, headers). Consumed in order; when empty, 200.
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body,
                              "path": request.path, "at": time.monotonic()})
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "no")


def runtime(client: Any) -> Any:
    """The app's Runtime (store, dispatcher, metrics) behind a test client."""
    from agent.app import RUNTIME

    return client.app[RUNTIME]


async def wait_status(client: Any, nid: str, status: str, key: str = LIVE_KEY) -> dict[str, Any]:
    """Poll GET /v1/notifications/{nid} until it has ``status``; return the notification."""
    got: dict[str, Any] = {}

    async def check() -> bool:
        resp = await client.get(f"/v1/notifications/{nid}", headers=auth(key))
        got.clear()
        got.update(await resp.json())
        return got.get("status") == status

    await wait_until(check)
    return got


@asynccontextmanager
async def not_http_server() -> AsyncIterator[str]:
    """A server on 127.0.0.1 that answers every request with a line that is not HTTP; yields
    its base URL (``http://127.0.0.1:PORT``)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                path: str = "/{tail:.*}") -> AsyncIterator[str]:
    """``handler`` for every method on ``path`` of a server on 127.0.0.1; yields its base URL
    (no trailing slash)."""
    app = web.Application()
    app.router.add_route("*", path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@contextmanager
def captured_logs(level: str = "info") -> Iterator[io.StringIO]:
    """The JSON log lines written meanwhile; logging is reconfigured (info) afterwards."""
    from agent.observability import configure_logging

    out = io.StringIO()
    configure_logging(level, "json", stream=out)
    try:
        yield out
    finally:
        structlog.reset_defaults()
        configure_logging("info", "json")
