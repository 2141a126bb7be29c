"""Shared fixtures: settings on a temp data dir, a real HTTP client, a webhook sink, polling."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from agent.app import create_app
from agent.clock import FakeClock
from agent.observability import Metrics, configure_logging
from agent.settings import Settings
from agent.store import Store
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
def logs() -> Iterator[io.StringIO]:
    """Every log line (JSON, debug level) written during the test."""
    with captured_logs("debug") as out:
        yield out


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in a temporary directory, opened and migrated."""
    s = Store(tmp_path / "a.db", Metrics(CollectorRegistry()))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session for channels under test."""
    async with aiohttp.ClientSession() as s:
        yield s


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
