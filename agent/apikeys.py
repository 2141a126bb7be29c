"""API keys: ``sk_live_...`` delivers, ``sk_test_...`` simulates the channel step.

Only SHA-256 hashes are kept: keys are 190-bit random strings, so a slow hash adds nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

LIVE_PREFIX = "sk_live_"
TEST_PREFIX = "sk_test_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    mode: str  # "live" | "test"
    key_hash: str
    hint: str  # the prefix and last four characters, safe to log and show

    @property
    def simulated(self) -> bool:
        return self.mode == "test"


def key_mode(key: str) -> str | None:
    if key.startswith(LIVE_PREFIX):
        return "live"
    if key.startswith(TEST_PREFIX):
        return "test"
    return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def hint_of(key: str) -> str:
    """A recognisable fragment safe to log: the prefix and the last four characters.

    Short strings (a misconfigured key) show nothing of themselves.
    """
    if len(key) < 20:
        return "****"
    return f"{key[:8]}...{key[-4:]}"


def generate_key(mode: str) -> str:
    """A new random key of mode ``live`` or ``test`` (190 bits of entropy)."""
    prefixes = {"live": LIVE_PREFIX, "test": TEST_PREFIX}
    if mode not in prefixes:
        raise ValueError(f"unknown key mode {mode!r}")
    return prefixes[mode] + secrets.token_urlsafe(24)


def describe(key: str) -> ApiKey:
    """An ApiKey record for a plaintext key; raises ValueError on a key without a known prefix."""
    mode = key_mode(key)
    if mode is None:
        raise ValueError(f"API key {hint_of(key)} must start with {LIVE_PREFIX} or {TEST_PREFIX}")
    digest = hash_key(key)
    return ApiKey(id=f"key_{digest[:12]}", mode=mode, key_hash=digest, hint=hint_of(key))


