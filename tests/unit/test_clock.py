"""The one clock (agent/clock.py): a fake clock's sleepers wake when it is advanced, never on
wall time, and the outbox loops' idle wait follows the clock it is given."""

from __future__ import annotations

import asyncio

import pytest

from agent.clock import SYSTEM_CLOCK, Clock, FakeClock, as_clock, wait_event
from agent.loops.waker import Waker


async def settle() -> None:
    for _ in range(5):  # a woken sleeper runs on a later turn of the loop
        await asyncio.sleep(0)


async def test_fake_clock_sleepers_wake_when_their_time_comes() -> None:
    clock = FakeClock(start=1000.0)
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(seconds)

    tasks = [asyncio.create_task(sleeper(s)) for s in (5.0, 1.0, 3.0)]
    await settle()
    assert clock.sleepers == 3 and woke == []
    assert clock.advance(2.0) == 1
    await settle()
    assert woke == [1.0] and clock.now() == 1002.0
    clock.advance(3.0)
    await settle()
    assert woke == [1.0, 3.0, 5.0] and clock.sleepers == 0
    await asyncio.gather(*tasks)
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_a_cancelled_fake_sleep_is_not_counted() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(10))
    await settle()
    task.cancel()
    await settle()
    assert clock.sleepers == 0 and clock.advance(10) == 0


async def test_waker_sleeps_on_the_clock_it_is_given() -> None:
    clock = FakeClock()
    waker = Waker(60.0, clock)

    async def next_due() -> float:
        return clock.now() + 30.0

    idle = asyncio.create_task(waker.idle(next_due))
    await settle()
    clock.advance(29.0)
    await settle()
    assert not idle.done()  # 29 s of the clock: the row is not due yet
    clock.advance(1.0)
    await settle()
    assert idle.done()
    # A wake-up ends the wait at once, whatever the clock.
    idle = asyncio.create_task(waker.idle(next_due))
    await settle()
    waker.wake()
    await asyncio.wait_for(idle, 1.0)


async def test_work_due_before_the_idle_wait_ends_wakes_it() -> None:
    clock = FakeClock()
    waker = Waker(1.0, clock)

    async def nothing() -> None:
        return None

    waker.wake_by(clock.now())  # not idle: the loop will look anyway
    idle = asyncio.create_task(waker.idle(nothing))
    await settle()
    waker.wake_by(clock.now() + 2.0)  # due after the wait ends: the poll comes first
    await settle()
    assert not idle.done()
    waker.wake_by(clock.now() + 0.02)  # a 20 ms throttle: sooner than the 1 s poll
    await asyncio.wait_for(idle, 1.0)


async def test_wait_event_reports_what_ended_it() -> None:
    event = asyncio.Event()
    clock = FakeClock()
    waiting = asyncio.create_task(wait_event(clock, event, 5.0))
    await settle()
    clock.advance(5.0)
    assert await asyncio.wait_for(waiting, 1.0) is False
    event.set()
    assert await wait_event(clock, event, 5.0) is True
    assert await wait_event(SYSTEM_CLOCK, asyncio.Event(), 0.001) is False


def test_a_bare_function_is_still_accepted_as_a_clock() -> None:
    # Constructors took `clock: Callable[[], float]`; they still do.
    clock = as_clock(lambda: 42.0)
    assert isinstance(clock, Clock) and clock.now() == 42.0
    fake = FakeClock()
    assert as_clock(fake) is fake
