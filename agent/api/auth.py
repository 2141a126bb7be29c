"""Bearer authentication against the key ring.

A presented key is hashed and compared against every known hash with ``hmac.compare_digest`` (no
early exit), so timing reveals nothing about which key is close.

The ring re-reads its source whenever the source's stamp changes (``agent.keysources``: a key
created or revoked by ``alert-agent keys`` while the daemon runs), before it answers: a revoked
key never authenticates once the command has returned.
"""

from __future__ import annotations

import asyncio
import hmac
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

    def __init__(self, keys: list[ApiKey], source: KeySource | None = None) -> None:
        self._keys = list(keys)
        self._source = source
        self._stamp: object = _NEVER
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def replace(self, keys: list[ApiKey]) -> None:
        self._keys = list(keys)

    async def reload(self) -> None:
        """Re-read the source now (start-up, SIGHUP)."""
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        if self._source is None:
            return
        stamp = self._source.stamp()  # taken first: a change during the load is seen next time
        self._keys = await self._source.load()
        self._stamp = stamp

    async def lookup(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is (None: unknown or revoked), after catching up with any
        change of the source.

        Async, and deliberately not called ``authenticate`` as the synchronous method it
        replaces was: an un-awaited call would be a coroutine, never None, so every key would
        pass; a caller still written against the old name fails loudly instead.
        """
        if self._source is not None and self._source.stamp() != self._stamp:
            async with self._lock:
                if self._source.stamp() != self._stamp:
                    await self._load()
        digest = hash_key(presented).encode()
        found: ApiKey | None = None
        for k in self._keys:
            if hmac.compare_digest(digest, k.key_hash.encode()):
                found = k
        return found
