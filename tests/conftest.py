"""Shared fixtures: settings on a temp data dir, a real HTTP client, a webhook sink, polling."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.observability import configure_logging
from agent.settings import Settings
from tests.helpers import LIVE_KEY, TEST_KEY, WEBHOOK_SECRET, Sink, captured_logs


@pytest.fixture(autouse=True)
def _logging() -> None:
    configure_logging("info", "json")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Log lines (JSON) captured for the test; logging is reconfigured afterwards."""
    with captured_logs("info") as out:
        yield out


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "rules",
        api_keys=[LIVE_KEY, TEST_KEY],
        api={"schedule_min_ahead_seconds": 1.0},
        delivery={"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2,
                  "poll_interval_seconds": 0.05, "max_attempts": 5},
        # Sinks listen on 127.0.0.1: loopback is refused by default (webhook network policy).
        channels={"webhook": {"signing_secret": WEBHOOK_SECRET, "timeout_seconds": 2.0,
                              "allow_loopback": True}},
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    # Near the real time (signed payload timestamps, cursors), on a whole second so that
    # millisecond timestamps in API answers compare exactly.
    return FakeClock(float(int(time.time())))


@pytest.fixture
async def manual(settings: Settings, clock: FakeClock) -> AsyncIterator[TestClient[Any, Any]]:
    """The agent on a fake clock, without grouper and dispatcher loops: a test advances
    ``clock`` and calls ``runtime(manual).run_until_idle()`` instead of waiting on wall time."""
    app = create_app(settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    app = web.Application()
    app.router.add_post("/{tail:.*}", s.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    s.url = str(server.make_url("/hook"))
    try:
        yield s
    finally:
        await server.close()
