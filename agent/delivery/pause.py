"""Channel pauses: a channel-scoped failure (a refused token) holds back the whole channel.

Without it every due row of the channel would be sent, refused and failed one by one. Instead
the channel is paused: rows claimed meanwhile wait (deferred, no attempt spent), one probe is let
through when the pause ends, and the pause doubles after each probe that fails the same way, up
to a cap. One log line and a gauge say when a channel is paused and when it resumes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.channels.base import DeliveryError, ErrorScope
from agent.observability import Metrics, get_logger

log = get_logger("dispatcher")
# While the probe is out, the channel's other rows look again this soon.
PROBE_WAIT = 1.0


@dataclass(slots=True)
class _Pause:
    until: float
    failures: int
    probing: bool = False


class ChannelPause:
    def __init__(self, metrics: Metrics, base: float = 30.0, cap: float = 900.0) -> None:
        self._metrics = metrics
        self._base = base
        self._cap = cap
        self._paused: dict[str, _Pause] = {}

    def track(self, channels: Iterable[str]) -> None:
        """Show every channel in the metrics, paused or not."""
        for name in channels:
            self._metrics.channel_paused.labels(name).set(0)
            self._metrics.channel_pauses.labels(name)

    def paused(self, channel: str) -> bool:
        return channel in self._paused

    def hold(self, channel: str, now: float) -> float | None:
        """None: send now (this may be the probe). Else when to look again."""
        p = self._paused.get(channel)
        if p is None:
            return None
        if p.probing:
            return now + PROBE_WAIT
        if now >= p.until:
            p.probing = True
            return None
        return p.until

    def observe(self, channel: str, error: BaseException | None, now: float) -> float | None:
        """Record how a send went. Returns when the channel resumes if ``error`` pauses it."""
        if isinstance(error, DeliveryError) and error.scope is ErrorScope.CHANNEL:
            return self._failed(channel, error, now)
        p = self._paused.pop(channel, None)
        if p is not None:  # the probe got an answer about its message: the channel works
            self._metrics.channel_paused.labels(channel).set(0)
            log.info("channel_resumed", channel=channel, failed_probes=p.failures - 1)
        return None

    def _failed(self, channel: str, error: DeliveryError, now: float) -> float:
        p = self._paused.get(channel)
        if p is not None and not p.probing and now < p.until:
            return p.until  # a send that started before the pause: no new evidence
        failures = 1 if p is None else p.failures + 1
        delay = min(self._base * 2.0 ** min(failures - 1, 30), self._cap)
        self._paused[channel] = _Pause(now + delay, failures)
        if p is None:
            self._metrics.channel_paused.labels(channel).set(1)
            self._metrics.channel_pauses.labels(channel).inc()
            log.error("channel_paused", channel=channel, reason=error.reason.value,
                      http_status=error.http_status, details=error.details,
                      probe_in=round(delay, 3))
        return now + delay


class ChannelPaused(Exception):
    """The send failed with a channel-scoped error: the channel is paused until ``resume_at``."""

    def __init__(self, error: DeliveryError, resume_at: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.resume_at = resume_at
