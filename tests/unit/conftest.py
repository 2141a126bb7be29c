"""Fixtures shared by the unit suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.observability import Metrics
from agent.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store in a temporary directory, opened and migrated."""
    s = Store(tmp_path / "d.db", Metrics(CollectorRegistry()))
    await s.open()
    try:
        yield s
    finally:
        await s.close()
