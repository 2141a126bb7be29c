"""Fixtures shared by the integration suites: the agent with the hook rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.integration.test_hooks import RULES


@pytest.fixture
def rules_settings(settings: Settings) -> Settings:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "10-test.yaml").write_text(RULES)
    return settings


@pytest.fixture
async def hclient(rules_settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(rules_settings), host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def hmanual(rules_settings: Settings,
                  clock: FakeClock) -> AsyncIterator[TestClient[Any, Any]]:
    """The agent with the hook rules on a fake clock, without loops (see ``manual``)."""
    app = create_app(rules_settings, clock=clock, loops=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c

