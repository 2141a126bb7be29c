"""Token buckets: the declared rate holds, waits are spread, a waiting row takes nothing."""

from __future__ import annotations

from agent.channels.base import Rate
from agent.delivery.ratelimit import RateLimiter


def test_a_burst_then_one_per_interval() -> None:
    rl = RateLimiter()
    rate = [Rate("slack:C1", per_second=2.0, burst=3)]
    assert [rl.take(rate, 100.0) for _ in range(3)] == [None, None, None]
    later = rl.take(rate, 100.0)
    assert later is not None and abs(later - 100.5) < 1e-9
    assert rl.take(rate, 100.5) is None  # a token came back after 1/rate
    assert rl.take(rate, 100.5) is not None


def test_rows_turned_away_are_spread_one_interval_apart() -> None:
    rl = RateLimiter()
    rate = [Rate("slack:C1", per_second=1.0)]
    assert rl.take(rate, 0.0) is None
    waits = [rl.take(rate, 0.0, "normal") for _ in range(5)]
    assert waits == [1.0, 2.0, 3.0, 4.0, 5.0]
    # Each comes back at its time and gets its token: nobody is deferred twice.
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert rl.take(rate, t) is None


def test_a_line_per_priority_and_a_second_wait_is_for_the_next_token() -> None:
    # The backlog's places are not reservations: a new (high-priority) row asks right after a
    # token went out and is told the next token time, where the claim's priority order wins.
    rl = RateLimiter()
    rate = [Rate("slack:C1", per_second=1.0)]
    rl.take(rate, 0.0)
    for _ in range(10):
        rl.take(rate, 0.0, "normal")
    assert rl.take(rate, 0.5, "high") == 1.0  # its own line is empty: the next token
    assert rl.take(rate, 0.5, "normal") == 11.0  # the end of the normal line
    assert rl.take(rate, 1.0) is None  # the first of the backlog
    assert rl.take(rate, 1.2) == 2.0  # turned away again: the next token


def test_every_bucket_must_have_a_token_and_none_is_taken_otherwise() -> None:
    rl = RateLimiter()
    bot = Rate("telegram", per_second=30.0, burst=30)
    chat_a = Rate("telegram:1", per_second=1.0)
    chat_b = Rate("telegram:2", per_second=1.0)
    assert rl.take([bot, chat_a], 0.0) is None
    assert rl.take([bot, chat_a], 0.0) == 1.0  # chat 1 is empty
    # The bot bucket gave nothing to the row that waited: 29 more fit this instant.
    assert all(rl.take([bot, Rate(f"telegram:x{i}", 1.0)], 0.0) is None for i in range(29))
    assert rl.take([bot, chat_b], 0.0) is not None  # now the bot bucket is empty


def test_no_rates_no_wait() -> None:
    assert RateLimiter().take([], 0.0) is None


def test_a_hold_keeps_the_destination_bucket_empty_until_then() -> None:
    rl = RateLimiter()
    bot = Rate("telegram", per_second=30.0, burst=30)
    chat = Rate("telegram:1", per_second=1.0)
    rl.hold([bot, chat], until=10.0, now=0.0)
    assert rl.take([bot, chat], 5.0) == 10.0
    assert rl.take([bot, Rate("telegram:2", 1.0)], 5.0) is None  # other chats go on
    assert rl.take([bot, chat], 10.0) is None
