"""Which earlier message a group's notification edits or replies to (delivery/threads.py),
through the dispatcher and the deliveries table: the latest for an edit, the first for a thread
reply, none for a repeat, a new incident or a channel that cannot edit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agent.channels.base import Limits, RetryableDeliveryError
from agent.delivery.threads import replaces_lookup
from agent.domain import FailureReason
from agent.store import Store
from tests.unit.test_dispatcher import Clock, FakeChannel, dispatcher, row


class Editable(FakeChannel):
    limits = Limits(can_edit=True)


def meta(gid: int = 7, **kw: Any) -> dict[str, Any]:
    return {"group_key": "gk_db", "group_id": gid, "status": "firing", "reason": "new", **kw}


async def _deliver(store: Store, clock: Clock, chan: FakeChannel, metadata: dict[str, Any],
                   **kw: Any) -> None:
    await store.notifications.create([replace(row(clock, **kw), metadata=metadata)])
    await dispatcher(store, clock, chan, replaces=replaces_lookup(store.deliveries),
                     link_base="https://agent.example/").run_until_idle()
    clock.advance(1.0)


async def test_edit_thread_new_and_repeat(store: Store) -> None:
    clock = Clock()
    chan = Editable()  # answers provider_ref {"n": <how many sent so far>}
    await _deliver(store, clock, chan, meta())
    await _deliver(store, clock, chan, meta(reason="repeat"))  # a reminder: a new message
    await _deliver(store, clock, chan, meta(status="resolved", reason="resolved"))
    await _deliver(store, clock, chan, meta(update="thread"))
    await _deliver(store, clock, chan, meta(update="new", retract=True, overflow="split"))
    got = [(m.replaces, m.update) for m in chan.sent]
    assert got == [
        (None, "edit"),  # nothing delivered yet
        (None, "new"),
        ({"n": 2}, "edit"),  # the latest message: the repeat
        ({"n": 1}, "thread"),  # under the first message
        (None, "new"),
    ]
    assert [m.status for m in chan.sent][2] == "resolved"
    assert (chan.sent[4].retract, chan.sent[4].overflow) == (True, "split")
    first = chan.sent[0]
    assert first.link == f"https://agent.example/v1/notifications/{first.notification_id}"
    assert {m.thread_key for m in chan.sent} == {"gk_db#7"}


async def test_a_new_incident_of_the_same_labels_starts_a_new_message(store: Store) -> None:
    clock = Clock()
    chan = Editable()
    await _deliver(store, clock, chan, meta(gid=7))
    await _deliver(store, clock, chan, meta(gid=8))  # the group was dropped and made again
    await _deliver(store, clock, chan, meta(gid=7), to="dev")  # another recipient
    assert [m.replaces for m in chan.sent] == [None, None, None]


async def test_a_channel_that_cannot_edit_is_not_asked(store: Store) -> None:
    clock = Clock()
    chan = FakeChannel()
    chan.limits = Limits()  # type: ignore[attr-defined]
    await _deliver(store, clock, chan, meta())
    await _deliver(store, clock, chan, meta(status="resolved", reason="resolved"))
    assert [m.replaces for m in chan.sent] == [None, None]


async def test_a_later_message_waits_for_the_first_and_then_edits_it(store: Store) -> None:
    # The firing message fails once; the resolved one, claimed in the same round, must not
    # post a second message: it waits until the first is out and then edits it.
    clock = Clock()
    chan = Editable(script=[RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE, "503")])
    firing = replace(row(clock), metadata=meta())
    resolved = replace(row(clock), metadata=meta(status="resolved", reason="resolved"))
    other = replace(row(clock), metadata=meta(gid=9))  # another group is not held up
    await store.notifications.create([firing, resolved, other])
    d = dispatcher(store, clock, chan, replaces=replaces_lookup(store.deliveries))
    await d.run_until_idle()
    waiting = await store.notifications.get(resolved.id)
    assert waiting is not None and (waiting.status, waiting.attempts,
                                    waiting.failure_reason) == ("queued", 0, "waiting_for_earlier")
    assert [m.notification_id for m in chan.sent] == [firing.id, other.id]
    for _ in range(10):  # bounded: the retry backoff, then the poll interval
        clock.advance(5.0)
        await d.run_until_idle()
    assert [(m.notification_id, m.replaces) for m in chan.sent][2:] == [
        (firing.id, None), (resolved.id, {"n": 3})]
    done = await store.notifications.get(resolved.id)
    assert done is not None and done.status == "delivered"
