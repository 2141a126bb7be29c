"""Fixed-window per-key rate limiting with an injected clock (agent.api.ratelimit)."""

from __future__ import annotations

import pytest

from agent.api.ratelimit import RateLimiter

WINDOW_START = 60.0 * 28_333_334  # 1_700_000_040: the start of a one-minute window


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_allows_up_to_the_limit_and_counts_down() -> None:
    clock = FakeClock(WINDOW_START + 10)
    rl = RateLimiter(3, clock)
    decisions = [rl.hit("k") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert {d.limit for d in decisions} == {3}
    assert {d.reset_at for d in decisions} == {int(WINDOW_START + 60)}


def test_allowed_headers_have_no_retry_after() -> None:
    rl = RateLimiter(5, FakeClock(WINDOW_START + 1))
    headers = rl.hit("k").headers()
    assert headers == {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "4",
        "X-RateLimit-Reset": str(int(WINDOW_START + 60)),
    }


def test_over_the_limit_is_refused_with_retry_after() -> None:
    clock = FakeClock(WINDOW_START + 45.5)
    rl = RateLimiter(2, clock)
    rl.hit("k")
    rl.hit("k")
    d = rl.hit("k")
    assert not d.allowed
    assert d.remaining == 0
    h = d.headers()
    assert h["X-RateLimit-Reset"] == str(int(WINDOW_START + 60))
    assert h["X-RateLimit-Remaining"] == "0"
    assert int(h["Retry-After"]) == 15  # ceil(60 - 45.5)
    # A refused request does not consume more of the window.
    assert not rl.hit("k").allowed


def test_retry_after_is_at_least_one_second_at_window_end() -> None:
    clock = FakeClock(WINDOW_START + 59.999)
    rl = RateLimiter(1, clock)
    rl.hit("k")
    d = rl.hit("k")
    assert not d.allowed
    assert d.retry_after >= 1
    assert int(d.headers()["Retry-After"]) >= 1


def test_retry_after_at_window_start_is_full_window() -> None:
    clock = FakeClock(WINDOW_START)
    rl = RateLimiter(1, clock)
    rl.hit("k")
    assert rl.hit("k").retry_after == 60


def test_new_window_resets_the_count() -> None:
    clock = FakeClock(WINDOW_START + 30)
    rl = RateLimiter(2, clock)
    rl.hit("k")
    rl.hit("k")
    assert not rl.hit("k").allowed
    clock.t = WINDOW_START + 60  # first instant of the next window
    d = rl.hit("k")
    assert d.allowed
    assert d.remaining == 1
    assert d.reset_at == int(WINDOW_START + 120)


def test_window_is_fixed_not_sliding() -> None:
    clock = FakeClock(WINDOW_START + 59)
    rl = RateLimiter(1, clock)
    assert rl.hit("k").allowed
    clock.t = WINDOW_START + 61  # two seconds later, but a new window
    assert rl.hit("k").allowed


def test_keys_are_independent() -> None:
    clock = FakeClock(WINDOW_START + 5)
    rl = RateLimiter(1, clock)
    assert rl.hit("a").allowed
    assert not rl.hit("a").allowed
    b = rl.hit("b")
    assert b.allowed
    assert b.remaining == 0
    assert not rl.hit("a").allowed


# --- IntervalGate (POST /-/reload) ----------------------------------------------------------


def test_interval_gate_allows_one_pass_per_interval() -> None:
    from agent.api.ratelimit import IntervalGate

    t = [100.0]
    gate = IntervalGate(1.0, lambda: t[0])
    assert gate.attempt() == 0.0
    t[0] = 100.25
    assert gate.attempt() == pytest.approx(0.75)
    t[0] = 100.99
    assert gate.attempt() == pytest.approx(0.01)  # refused passes do not extend the wait
    t[0] = 101.0
    assert gate.attempt() == 0.0
    assert gate.attempt() == pytest.approx(1.0)


def test_interval_gate_of_zero_never_refuses() -> None:
    from agent.api.ratelimit import IntervalGate

    gate = IntervalGate(0.0, lambda: 5.0)
    assert [gate.attempt() for _ in range(3)] == [0.0, 0.0, 0.0]
