"""With the default delivery settings, a webhook receiver that answers 503 for ten minutes (of
fake-clock time) and then 200 ends with every notification delivered, each attempt listed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.clock import FakeClock
from agent.settings import Settings
from tests.helpers import LIVE_KEY, WEBHOOK_SECRET, auth, runtime, serve

T0 = 1_800_000_000.0
OUTAGE = 600.0


@pytest.fixture
async def outage_sink(clock: FakeClock) -> AsyncIterator[tuple[str, list[float]]]:
    """A receiver that is down (503) for the first ten minutes of fake time."""
    seen: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(clock.now())
        return web.Response(status=503 if clock.now() < T0 + OUTAGE else 200)

    async with serve(handle, "/hook") as url:
        yield url + "/hook", seen


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


async def test_a_ten_minute_outage_ends_delivered(tmp_path: Path, clock: FakeClock,
                                                  outage_sink: tuple[str, list[float]]) -> None:
    url, seen = outage_sink
    settings = Settings(  # delivery settings: the defaults
        data_dir=tmp_path / "data", rules_dir=tmp_path / "rules", api_keys=[LIVE_KEY],
        channels={"webhook": {"signing_secret": WEBHOOK_SECRET, "allow_loopback": True}},
    )
    # No loops: this test drives the dispatcher, step by step of fake time.
    async with TestClient(TestServer(create_app(settings, clock=clock, loops=False),
                                     host="127.0.0.1")) as client:
        dispatcher = runtime(client).dispatcher
        assert dispatcher is not None
        items: list[dict[str, Any]] = [
            {"channel": "webhook", "to": url, "message": f"m{i}", "severity": sev}
            for i, sev in enumerate(["info", "warning", "critical"] * 4)]
        resp = await client.post("/v1/notifications/send-batch", json={"notifications": items},
                                 headers=auth())
        assert resp.status == 200, await resp.text()
        ids = [n["id"] for n in (await resp.json())["notifications"]]
        store = runtime(client).store.notifications
        for _ in range(1000):  # bounded: every step moves the clock to the next due row
            await dispatcher.run_until_idle()
            nxt = await store.next_due_at()
            if nxt is None:
                break
            clock.advance(max(0.0, nxt - clock.now()))
        got = [await (await client.get(f"/v1/notifications/{i}", headers=auth())).json()
               for i in ids]
    assert [n["status"] for n in got] == ["delivered"] * len(ids)
    assert max(seen) >= T0 + OUTAGE and min(seen) == T0
    for n in got:
        attempts = n["attempts"]
        assert [a["outcome"] for a in attempts] == ["retry"] * (len(attempts) - 1) + [
            "delivered"]
        assert [a["http_status"] for a in attempts] == [503] * (len(attempts) - 1) + [200]
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert len(attempts) == n["attempt_count"] <= settings.delivery.max_attempts
        last = datetime.fromisoformat(attempts[-1]["started_at"]).timestamp()
        assert last >= T0 + OUTAGE
