"""API keys: ``sk_live_...`` delivers, ``sk_test_...`` simulates the channel step.

Only SHA-256 hashes are kept: keys are 190-bit random strings, so a slow hash adds nothing.
Keys come from two places: the settings (``api_keys``, ``api_keys_file``) and the ``api_keys``
table (first-run keys and ``alert-agent keys create``). A revocation is a table row too, also
for a configured key, so it holds across SIGHUP and restarts while the key is still configured.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

LIVE_PREFIX = "sk_live_"
TEST_PREFIX = "sk_test_"
# A configured key needs this many characters after its prefix: "sk_live_" alone, or a short
# guessable suffix, would be a password anyone could try. Generated keys have 32.
MIN_KEY_CHARS = 16

# Where a key comes from (the ``source`` column, ``alert-agent keys list``).
SOURCE_CONFIG = "config"  # api_keys / api_keys_file; a table row only records its revocation
SOURCE_CLI = "cli"  # alert-agent keys create
SOURCE_FIRST_RUN = "first-run"  # generated on a first start without configured keys


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    mode: str  # "live" | "test"
    key_hash: str
    hint: str  # the prefix and last four characters, safe to log and show

    @property
    def simulated(self) -> bool:
        return self.mode == "test"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A row of the ``api_keys`` table."""

    key: ApiKey
    source: str
    created_at: float
    name: str | None = None
    revoked_at: float | None = None


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
    """An ApiKey record for a plaintext key; raises ValueError (never quoting the key) on a key
    without a known prefix, a key too short to be secret, or one a header cannot carry."""
    mode = key_mode(key)
    if mode is None:
        raise ValueError(f"API key {hint_of(key)} must start with {LIVE_PREFIX} or {TEST_PREFIX}")
    prefix = key[: len(LIVE_PREFIX)]
    if len(key) - len(prefix) < MIN_KEY_CHARS:
        raise ValueError(f"API key {hint_of(key)} is too short: it needs at least "
                         f"{MIN_KEY_CHARS} characters after {prefix} "
                         "(`alert-agent keys create` makes one)")
    if not all(c.isprintable() and not c.isspace() for c in key):
        raise ValueError(f"API key {hint_of(key)} contains whitespace or control characters")
    digest = hash_key(key)
    return ApiKey(id=f"key_{digest[:12]}", mode=mode, key_hash=digest, hint=hint_of(key))


def parse_keys(text: str) -> list[ApiKey]:
    """The keys of a settings value or key file: one per line or comma-separated.

    Raises ValueError naming the key's position and hint, never the key.
    """
    plain = [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()]
    out = []
    for n, key in enumerate(plain, start=1):
        try:
            out.append(describe(key))
        except ValueError as exc:
            raise ValueError(f"key {n}: {exc}") from None
    return out


def active_keys(configured: list[ApiKey] | None, stored: list[KeyRecord]) -> list[ApiKey]:
    """The keys the API accepts.

    Configured keys that are not revoked, and the table's keys that are not revoked: those made
    by ``keys create`` always, first-run keys only while no key is configured (configuring your
    own keys retires the generated ones, as it always did). A revocation is by hash, so a
    revoked key stays revoked whichever source names it again.
    """
    revoked = {r.key.key_hash for r in stored if r.revoked_at is not None}
    out: list[ApiKey] = []
    seen: set[str] = set()
    for k in configured or []:
        if k.key_hash not in revoked and k.key_hash not in seen:
            out.append(k)
            seen.add(k.key_hash)
    for r in stored:
        if r.revoked_at is not None or r.key.key_hash in seen:
            continue
        if r.source == SOURCE_CLI or (r.source == SOURCE_FIRST_RUN and not configured):
            out.append(r.key)
            seen.add(r.key.key_hash)
    return out
