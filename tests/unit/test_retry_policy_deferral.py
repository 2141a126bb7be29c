"""How long a deferral waits: the far side's Retry-After when it named one (never a growing
backoff on top: a provider that says 2 s means 2 s), else a backoff on its earlier waits."""

from __future__ import annotations

from agent.delivery.retry import RetryPolicy


def test_a_named_retry_after_is_honoured_whatever_came_before() -> None:
    p = RetryPolicy()
    assert p.deferral(1, 2.0, rand=0.0) == 2.0
    assert p.deferral(12, 2.0, rand=0.0) == 2.0
    assert p.deferral(12, 2.0, rand=1.0) == 2.2  # a tenth of jitter at most


def test_without_retry_after_the_waits_grow_up_to_the_cap() -> None:
    p = RetryPolicy(base_seconds=1.0, max_seconds=300.0)
    assert p.deferral(1, None, rand=1.0) == 1.0
    assert p.deferral(4, None, rand=1.0) == 8.0
    assert p.deferral(30, None, rand=1.0) == 300.0
