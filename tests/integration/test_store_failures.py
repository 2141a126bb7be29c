"""A write the database refuses is a 503 in the seed envelope, never a 500, and the daemon
answers normally once the database does again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from agent.delivery.dispatcher import Dispatcher
from agent.delivery.retry import RetryPolicy
from agent.observability import Metrics
from agent.store import StoreError
from tests.helpers import auth, runtime

Client = TestClient[Any, Any]


async def _write(client: Client, sql: str) -> None:
    # On the writer's own connection: max_page_count is a per-connection limit.
    await runtime(client).store.db.write(lambda c: c.execute(sql).fetchall())


async def _assert_unavailable(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    err = (await resp.json())["error"]
    assert (err["type"], err["code"]) == ("service_unavailable", "store_unavailable")
    assert "Traceback" not in err["message"]
    assert resp.headers["Retry-After"] == "1"


async def test_a_full_disk_answers_503_then_recovers(client: Client) -> None:
    body = {"channel": "console", "to": "ops", "message": "x" * 4000}
    assert (await client.post("/v1/notifications/send", json=body, headers=auth())).status == 201
    pages = runtime(client).store.db
    (count,) = await pages.write(lambda c: c.execute("PRAGMA page_count").fetchone())
    (free,) = await pages.write(lambda c: c.execute("PRAGMA freelist_count").fetchone())
    await _write(client, f"PRAGMA max_page_count = {count}")
    for _ in range(free + 20):  # use up the free pages: then the file would have to grow
        resp = await client.post("/v1/notifications/send", json=body, headers=auth())
        if resp.status != 201:
            break
    await _assert_unavailable(resp)
    metrics = await (await client.get("/metrics")).text()
    assert "alert_agent_store_errors_total 0.0" not in metrics

    await _write(client, "PRAGMA max_page_count = 1073741823")
    resp = await client.post("/v1/notifications/send", json=body, headers=auth())
    assert resp.status == 201, await resp.text()


async def test_a_write_refused_by_the_database_answers_503(client: Client) -> None:
    await _write(client, "CREATE TRIGGER refuse BEFORE INSERT ON alerts "
                         "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END")
    resp = await client.post("/v1/alerts", json={"monitor_id": "m", "type": "down"},
                             headers=auth())
    await _assert_unavailable(resp)
    hook = {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "A"},
                                        "startsAt": "2026-04-14T10:25:00Z"}]}
    await _assert_unavailable(await client.post("/hooks/alertmanager", json=hook))
    await _write(client, "DROP TRIGGER refuse")
    assert (await client.post("/hooks/alertmanager", json=hook)).status == 200


async def test_store_errors_keep_their_cause(client: Client) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    try:
        await runtime(client).store.db.write(boom)
    except StoreError as exc:
        assert isinstance(exc.__cause__, sqlite3.OperationalError)
    else:
        raise AssertionError("the write did not fail")


class RefusingOutbox:
    """The dispatcher's store while the database refuses every claim (rows stay due)."""

    def __init__(self) -> None:
        self.attempts: list[float] = []

    async def release_claims(self) -> int:
        return 0

    async def claim_due(self, *args: object) -> list[object]:
        self.attempts.append(time.monotonic())
        await asyncio.sleep(0)  # as the real store does: the loop is not starved, only busy
        raise StoreError("database or disk is full")

    async def next_due_at(self) -> float:
        return 0.0  # something is overdue


async def test_the_dispatcher_backs_off_while_claims_fail() -> None:
    outbox = RefusingOutbox()
    d = Dispatcher(outbox, {}, Metrics(CollectorRegistry()),  # type: ignore[arg-type]
                   retry=RetryPolicy(), poll_interval=0.1)
    await d.start()
    try:
        deadline = time.monotonic() + 5.0
        while len(outbox.attempts) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await d.stop(0.0)
    gaps = [b - a for a, b in zip(outbox.attempts, outbox.attempts[1:], strict=False)]
    assert len(gaps) >= 2 and gaps[0] >= 0.09 and gaps[1] >= 0.18, gaps
