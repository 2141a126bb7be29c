"""Receipts in the store: a delivery with a receipt id is recorded ``sent`` with its provider
id, and only a receipt moves it on; the other channels' outcomes cost what they did."""

from __future__ import annotations

from agent.domain import NewNotification, new_id, now
from agent.store import Store
from agent.store.notifications import Delivered
from tests.integration.test_storm_path import count, traced


def _item(channel: str = "sms") -> NewNotification:
    t = now()
    return NewNotification(
        id=new_id("ntf"), channel=channel, recipient="+351912345678", message="m",
        subject=None, template_id=None, template_body=None, severity="info",
        priority="normal", metadata={}, idempotency_key=None, request_hash=None,
        simulated=False, api_key_id="key_x", schedule_at=None, due_at=t, created_at=t)


async def _claimed(store: Store, n: int, channel: str = "sms") -> list[str]:
    created = await store.notifications.create([_item(channel) for _ in range(n)])
    claimed = await store.notifications.claim_due(now(), n)
    assert len(claimed) == n
    return [c.id for c in created.notifications]


async def test_outcomes_without_a_receipt_cost_no_extra_statement(store: Store) -> None:
    ids = await _claimed(store, 20, "console")
    t = now()
    async with traced(store) as stmts:
        await store.notifications.complete([Delivered(i, t, t, None) for i in ids])
    assert count(stmts, r"provider_id") == 0
    assert count(stmts, r"^\s*UPDATE notifications") == 20  # executemany: one per row
    got = await store.notifications.get(ids[0])
    assert got is not None and got.status == "delivered" and got.delivered_at == t


async def test_a_receipt_id_makes_the_row_sent_and_a_receipt_moves_it(store: Store) -> None:
    [a, b, c] = await _claimed(store, 3)
    t = now()
    sids = ["SM" + str(d) * 32 for d in (1, 2, 3)]
    await store.notifications.complete(
        [Delivered(i, t, t, None, receipt_id=s) for i, s in zip((a, b, c), sids, strict=True)])
    for i in (a, b, c):
        row = await store.notifications.get(i)
        assert row is not None and row.status == "sent"
        assert row.sent_at == t and row.delivered_at is None

    change = await store.receipts.delivered(sids[0], t + 5)
    assert change is not None and (change.id, change.status, change.moved) == (a, "delivered",
                                                                              True)
    assert await store.receipts.delivered(sids[0], t + 6) is None  # a repeat changes nothing
    row = await store.notifications.get(a)
    assert row is not None and row.delivered_at == t + 5 and row.read_at is None
    read = await store.receipts.delivered(sids[0], t + 7, read=True)  # read after delivered
    assert read is not None and (read.moved, read.read) == (False, True)

    failed = await store.receipts.failed(sids[1], t + 5, "provider_rejected",
                                         "Twilio error 30003 (undelivered)", "permanent")
    assert failed is not None and failed.status == "failed"
    assert await store.notifications.dead_letter_counts() == {"sms": 1}
    # Nothing moves a failed or delivered row again, nor an unknown id.
    assert await store.receipts.delivered(sids[1], t + 6) is None
    assert await store.receipts.failed(sids[0], t + 6, "x", "y", "permanent") is None
    assert await store.receipts.delivered("SM" + "f" * 32, t) is None
    row = await store.notifications.get(b)
    assert row is not None and row.status == "failed" and row.failure_class == "permanent"
    assert (await store.notifications.get(c)).status == "sent"  # type: ignore[union-attr]


async def test_the_receipt_lookup_uses_the_provider_id_index(store: Store) -> None:
    plan = await store.db.read(lambda c: c.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM notifications WHERE provider_id = ? "
        "AND status = 'sent'", ("SM1",)).fetchall())
    assert any("notifications_provider_id" in str(tuple(r)) for r in plan), plan
