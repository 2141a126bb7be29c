"""Concurrency caps per channel and per destination, so one slow destination (a webhook host
that times out) cannot hold every delivery slot while healthy ones wait behind it.

A claimed row whose channel or destination is at its cap waits here (parked) until a slot of
that key frees, at most ``per_destination`` rows per key. A key at its cap that finished nothing
for ``stuck_after`` seconds is stuck: its parked rows, and rows of it claimed later, go back to
the outbox for a while (the dispatcher moves their ``due_at``; nothing is counted), so the claim
reaches the rows of other destinations queued behind them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from agent.domain import Notification

Keys = tuple[str, str]  # (channel, destination)


class Slots:
    def __init__(self, per_channel: int, per_destination: int, stuck_after: float,
                 clock: Callable[[], float]) -> None:
        self._cap = {"c": per_channel, "d": per_destination}
        self._park_limit = per_destination
        self._stuck_after = stuck_after
        self._clock = clock
        self._busy: dict[str, int] = {}  # "c:<channel>" / "d:<destination>" -> running
        self._progress: dict[str, float] = {}  # key -> last start from idle or last finish
        self._parked: dict[Keys, deque[Notification]] = {}
        self.parked = 0

    @staticmethod
    def _ids(keys: Keys) -> tuple[str, str]:
        return "c:" + keys[0], "d:" + keys[1]

    def _full(self, key: str) -> bool:
        return self._busy.get(key, 0) >= self._cap[key[0]]

    def fits(self, keys: Keys) -> bool:
        return not any(self._full(k) for k in self._ids(keys))

    def stalled_for(self, keys: Keys) -> float:
        """Seconds the full key(s) of ``keys`` finished nothing; 0 when not stuck."""
        now = self._clock()
        stalled = [now - self._progress.get(k, now) for k in self._ids(keys) if self._full(k)]
        longest = max(stalled, default=0.0)
        return longest if longest >= self._stuck_after else 0.0

    def take(self, keys: Keys) -> None:
        for k in self._ids(keys):
            n = self._busy.get(k, 0)
            if n == 0:
                self._progress[k] = self._clock()
            self._busy[k] = n + 1

    def park(self, n: Notification, keys: Keys) -> bool:
        """Keep ``n`` until a slot frees; False when its key has enough waiting already."""
        queue = self._parked.get(keys)
        if queue is not None and len(queue) >= self._park_limit:
            return False
        if queue is None:
            queue = self._parked[keys] = deque()
        queue.append(n)
        self.parked += 1
        return True

    def release(self, keys: Keys) -> list[tuple[Notification, Keys]]:
        """A delivery of ``keys`` ended: free its slot; the parked rows that start now."""
        now = self._clock()
        for k in self._ids(keys):
            left = self._busy[k] - 1
            if left:
                self._busy[k] = left
                self._progress[k] = now
            else:
                del self._busy[k]
                self._progress.pop(k, None)
        if not self.parked:
            return []
        ready: list[tuple[Notification, Keys]] = []
        for waiting in [k for k in self._parked if k[0] == keys[0]]:
            queue = self._parked[waiting]
            while queue and self.fits(waiting):
                ready.append((queue.popleft(), waiting))
                self.take(waiting)
                self.parked -= 1
            if not queue:
                del self._parked[waiting]
        return ready

    def evict_stuck(self) -> list[tuple[Notification, float]]:
        """Parked rows of stuck keys, with how long their key is stuck; they stop waiting."""
        out: list[tuple[Notification, float]] = []
        for keys in list(self._parked):
            stalled = self.stalled_for(keys)
            if stalled:
                queue = self._parked.pop(keys)
                self.parked -= len(queue)
                out.extend((n, stalled) for n in queue)
        return out

    def drain(self) -> list[Notification]:
        """Every parked row (at shutdown: they go back to the outbox untried)."""
        rows = [n for queue in self._parked.values() for n in queue]
        self._parked.clear()
        self.parked = 0
        return rows
