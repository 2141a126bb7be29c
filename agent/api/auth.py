"""Bearer authentication against the key ring.

A presented key is hashed and compared against every known hash with ``hmac.compare_digest`` (no
early exit), so timing reveals nothing about which key is close.
"""

from __future__ import annotations

import hmac

from agent.apikeys import ApiKey, hash_key


class KeyRing:
    """The set of keys the API accepts; replaced as a whole on reload."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = list(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def replace(self, keys: list[ApiKey]) -> None:
        self._keys = list(keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        digest = hash_key(presented).encode()
        found: ApiKey | None = None
        for k in self._keys:
            if hmac.compare_digest(digest, k.key_hash.encode()):
                found = k
        return found
