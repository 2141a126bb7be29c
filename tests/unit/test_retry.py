"""Retry policy: attempt budget and backoff bounds (agent.delivery.retry)."""

from __future__ import annotations

import pytest

from agent.delivery.retry import RetryPolicy


def test_should_retry_until_max_attempts() -> None:
    p = RetryPolicy(max_attempts=3)
    assert [p.should_retry(n) for n in (1, 2, 3, 4)] == [True, True, False, False]


def test_single_attempt_policy_never_retries() -> None:
    assert not RetryPolicy(max_attempts=1).should_retry(1)


@pytest.mark.parametrize(
    ("attempts_done", "cap"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (30, 10.0)],
)
def test_delay_bounds_half_fixed_half_jitter(attempts_done: int, cap: float) -> None:
    p = RetryPolicy(max_attempts=50, base_seconds=1.0, max_seconds=10.0)
    assert p.delay(attempts_done, None, rand=0.0) == pytest.approx(cap / 2)
    assert p.delay(attempts_done, None, rand=1.0) == pytest.approx(cap)
    assert p.delay(attempts_done, None, rand=0.5) == pytest.approx(cap * 0.75)


def test_delay_never_exceeds_max_seconds() -> None:
    p = RetryPolicy(base_seconds=2.0, max_seconds=300.0)
    assert p.delay(1000, None, rand=1.0) == pytest.approx(300.0)


def test_random_delay_within_bounds() -> None:
    p = RetryPolicy(base_seconds=1.0, max_seconds=300.0)
    for _ in range(200):
        assert 4.0 <= p.delay(4, None) <= 8.0


def test_retry_after_dominates_when_larger() -> None:
    p = RetryPolicy(base_seconds=1.0, max_seconds=10.0)
    assert p.delay(1, 30.0, rand=1.0) == 30.0
    # Even past max_seconds: the far side named the delay.
    assert p.delay(1, 3600.0, rand=0.0) == 3600.0


def test_backoff_wins_when_retry_after_is_smaller_or_zero() -> None:
    p = RetryPolicy(base_seconds=1.0, max_seconds=10.0)
    assert p.delay(3, 1.0, rand=0.0) == pytest.approx(2.0)
    assert p.delay(3, 0.0, rand=1.0) == pytest.approx(4.0)


def test_delay_returns_float() -> None:
    assert isinstance(RetryPolicy().delay(1, None, rand=0.0), float)
