"""Bearer authentication against the key ring.

A presented key is hashed and compared against every known hash with ``hmac.compare_digest`` (no
early exit), so timing reveals nothing about which key is close.

The ring follows a source that other processes change (``agent.keysources``: ``alert-agent
keys`` commits to the key table, then touches a change file and waits ``2 * interval``). The
ring stats that file at most once per ``interval`` (a clock read per request instead of a
system call) and re-reads the source before answering when it changed. That is exact: a lookup
that starts at least ``interval`` after the change file was touched either stats it itself or
relies on a stat that started after the touch, so once the command has returned no lookup
answers with the keys from before it.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Protocol

from agent.apikeys import ApiKey, hash_key


class KeySource(Protocol):
    def stamp(self) -> object:
        """Cheap (no I/O beyond a stat): changes whenever ``load`` may answer differently."""

    async def load(self) -> list[ApiKey]:
        """Every key the API accepts now."""


_NEVER = object()


class KeyRing:
    """The set of keys the API accepts; replaced as a whole on reload."""

    def __init__(self, keys: list[ApiKey], source: KeySource | None = None,
                 interval: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = list(keys)
        self._source = source
        self._interval = interval
        self._clock = clock
        self._stamp: object = _NEVER
        self._checked_at = float("-inf")  # when the last stat of the source began
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def replace(self, keys: list[ApiKey]) -> None:
        self._keys = list(keys)

    async def reload(self) -> None:
        """Re-read the source now (start-up, SIGHUP)."""
        async with self._lock:
            if self._source is not None:
                self._checked_at = float("-inf")
                checked_at = self._clock()
                await self._load(self._source.stamp())
                self._checked_at = checked_at

    async def _load(self, stamp: object) -> None:
        assert self._source is not None
        self._keys = await self._source.load()
        self._stamp = stamp  # taken before the load: a change during it is seen next time

    async def _catch_up(self, started: float) -> None:
        assert self._source is not None
        async with self._lock:  # a load in progress finishes before anyone answers
            if started - self._checked_at < self._interval:
                return  # a stat that began after any change this lookup must see was done
            self._checked_at = self._clock()
            stamp = self._source.stamp()
            if stamp != self._stamp:
                try:
                    await self._load(stamp)
                except BaseException:
                    self._checked_at = float("-inf")  # the next lookup tries again
                    raise

    async def lookup(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is (None: unknown or revoked), after catching up with any
        change of the source.

        Async, and deliberately not called ``authenticate`` as the synchronous method it
        replaces was: an un-awaited call would be a coroutine, never None, so every key would
        pass; a caller still written against the old name fails loudly instead.
        """
        if self._source is not None:
            started = self._clock()
            if started - self._checked_at >= self._interval or self._lock.locked():
                await self._catch_up(started)
        digest = hash_key(presented).encode()
        found: ApiKey | None = None
        for k in self._keys:
            if hmac.compare_digest(digest, k.key_hash.encode()):
                found = k
        return found
