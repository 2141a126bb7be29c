"""Rate buckets a channel declares: a backlog to one destination goes out at the declared rate,
waiting spends no attempt, high priority goes first, and the last wait ends at retry_for."""

from __future__ import annotations

from collections.abc import Sequence

from agent.channels.base import Rate, RetryableDeliveryError
from agent.delivery.retry import RetryPolicy
from agent.domain import FailureReason
from agent.store import Store
from tests.unit.test_dispatcher import Clock, FakeChannel, dispatcher, row


class Throttled(FakeChannel):
    """One bucket per recipient, one message per second."""

    def rates(self, to: str) -> Sequence[Rate]:
        return [Rate(f"fake:{to}", per_second=1.0)]


async def test_a_backlog_goes_out_one_per_token_and_spends_no_attempt(store: Store) -> None:
    clock = Clock()
    chan = Throttled()
    rows = [row(clock) for _ in range(5)]
    await store.notifications.create(rows)
    d = dispatcher(store, clock, chan)
    await d.run_until_idle()
    assert len(chan.sent) == 1
    waiting = [await store.notifications.get(r.id) for r in rows[1:]]
    assert {(n.status, n.attempts, n.failure_reason) for n in waiting if n} == {
        ("queued", 0, "throttled")}
    # Spread one token apart: each second exactly one more goes out, none is turned away twice.
    for second in range(1, 5):
        clock.advance(1.0)
        await d.run_until_idle()
        assert len(chan.sent) == 1 + second
    done = [await store.notifications.get(r.id) for r in rows]
    # The agent's own waits are not the far side's: they space out nothing later.
    assert [(n.status, n.attempts, n.deferrals) for n in done if n] == [
        ("delivered", 1, 0)] * 5


async def test_other_destinations_are_not_held_up(store: Store) -> None:
    clock = Clock()
    chan = Throttled()
    await store.notifications.create([row(clock, to="a") for _ in range(3)]
                                     + [row(clock, to="b")])
    await dispatcher(store, clock, chan).run_until_idle()
    assert sorted(m.to for m in chan.sent) == ["a", "b"]


async def test_high_priority_goes_before_the_backlog(store: Store) -> None:
    clock = Clock()
    chan = Throttled()
    normal = [row(clock) for _ in range(6)]
    await store.notifications.create(normal)
    d = dispatcher(store, clock, chan)
    await d.run_until_idle()
    clock.advance(0.5)
    urgent = row(clock, priority="high")
    await store.notifications.create([urgent])
    await d.run_until_idle()  # no token yet: it waits for the next one
    clock.advance(0.5)
    await d.run_until_idle()
    assert [m.notification_id for m in chan.sent] == [normal[0].id, urgent.id]


async def test_a_wait_past_retry_for_fails_the_row(store: Store) -> None:
    clock = Clock()
    chan = Throttled()
    rows = [row(clock) for _ in range(3)]
    await store.notifications.create(rows)
    await dispatcher(store, clock, chan, retry=RetryPolicy(retry_for=1.5)).run_until_idle()
    got = [await store.notifications.get(r.id) for r in rows]
    # The second waits 1 s (within 1.5 s), the third would wait 2 s: past the deadline.
    assert [n.status for n in got if n] == ["delivered", "queued", "failed"]
    assert got[2] is not None and got[2].failure_reason == "rate_limited"
    assert got[2].failure_class == "temporary"  # the deadline passed while it waited


async def test_a_provider_429_holds_the_destination_instead_of_asking_again(
        store: Store) -> None:
    clock = Clock()
    chan = Throttled(script=[RetryableDeliveryError(FailureReason.RATE_LIMITED, "429",
                                                    retry_after=5.0)])
    rows = [row(clock) for _ in range(4)]
    await store.notifications.create(rows)
    d = dispatcher(store, clock, chan)
    await d.run_until_idle()
    assert len(chan.sent) == 1  # the others wait in the store, the provider is not asked
    clock.advance(4.9)
    await d.run_until_idle()
    assert len(chan.sent) == 1
    for _ in range(10):  # bounded: one a second after the hold
        clock.advance(1.0)
        await d.run_until_idle()
    got = [await store.notifications.get(r.id) for r in rows]
    assert [n.status for n in got if n] == ["delivered"] * 4
    assert len(chan.sent) == 5 and all(n.attempts == 1 for n in got if n)
