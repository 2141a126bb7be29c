"""API key generation, description and the authenticating key ring."""

from __future__ import annotations

import hashlib

import pytest

from agent.api.auth import KeyRing
from agent.apikeys import ApiKey, describe, generate_key
from tests.helpers import LIVE_KEY, TEST_KEY


@pytest.mark.parametrize(("mode", "prefix"), [("live", "sk_live_"), ("test", "sk_test_")])
def test_generate_key_prefix_and_length(mode: str, prefix: str) -> None:
    key = generate_key(mode)
    assert key.startswith(prefix)
    assert len(key) == len(prefix) + 32  # token_urlsafe(24): 32 url-safe characters
    assert describe(key).mode == mode


def test_generated_keys_are_unique() -> None:
    keys = {generate_key("live") for _ in range(200)}
    assert len(keys) == 200


def test_describe_live_key() -> None:
    k = describe(LIVE_KEY)
    assert k.mode == "live"
    assert not k.simulated
    assert k.key_hash == hashlib.sha256(LIVE_KEY.encode()).hexdigest()
    assert k.id == "key_" + k.key_hash[:12]
    assert k.hint == f"sk_live_...{LIVE_KEY[-4:]}"


def test_describe_test_key_is_simulated() -> None:
    k = describe(TEST_KEY)
    assert k.mode == "test"
    assert k.simulated


def test_describe_is_deterministic_and_distinct_per_key() -> None:
    assert describe(LIVE_KEY) == describe(LIVE_KEY)
    assert describe(LIVE_KEY).id != describe(TEST_KEY).id


@pytest.mark.parametrize("key", [LIVE_KEY, TEST_KEY, generate_key("live"), generate_key("test")])
def test_hint_never_contains_the_key(key: str) -> None:
    k = describe(key)
    assert key not in k.hint
    assert key not in repr(k)  # only the hash and the hint are kept
    assert key[8:-4] not in k.hint


@pytest.mark.parametrize("key", ["pk_live_abcdef0123456789", "sk_prod_abcdef0123456789", "", "x"])
def test_describe_rejects_unknown_prefix(key: str) -> None:
    with pytest.raises(ValueError, match="must start with"):
        describe(key)


# --- KeyRing -----------------------------------------------------------------------------------


async def test_lookup_right_key() -> None:
    ring = KeyRing([describe(LIVE_KEY), describe(TEST_KEY)])
    assert len(ring) == 2
    live = await ring.lookup(LIVE_KEY)
    test = await ring.lookup(TEST_KEY)
    assert live is not None and live.mode == "live"
    assert test is not None and test.mode == "test"


@pytest.mark.parametrize(
    "presented",
    ["", LIVE_KEY[:-1], LIVE_KEY + "x", LIVE_KEY.upper(), " " + LIVE_KEY, generate_key("live")],
)
async def test_lookup_wrong_or_empty_key(presented: str) -> None:
    ring = KeyRing([describe(LIVE_KEY)])
    assert await ring.lookup(presented) is None


async def test_empty_ring_accepts_nothing() -> None:
    ring = KeyRing([])
    assert len(ring) == 0
    assert await ring.lookup(LIVE_KEY) is None
    assert await ring.lookup("") is None


async def test_replace_swaps_the_whole_ring() -> None:
    new_key = generate_key("live")
    ring = KeyRing([describe(LIVE_KEY)])
    ring.replace([describe(new_key), describe(TEST_KEY)])
    assert len(ring) == 2
    assert await ring.lookup(LIVE_KEY) is None
    assert await ring.lookup(new_key) == describe(new_key)
    assert await ring.lookup(TEST_KEY) == describe(TEST_KEY)


async def test_ring_copies_its_input() -> None:
    keys = [describe(LIVE_KEY)]
    ring = KeyRing(keys)
    keys.clear()
    assert await ring.lookup(LIVE_KEY) is not None


class _Source:
    """A key source whose stamp the test moves, counting loads."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.version = 0
        self.loads = 0

    def stamp(self) -> object:
        return self.version

    async def load(self) -> list[ApiKey]:
        self.loads += 1
        return [describe(k) for k in self.keys]


async def test_ring_follows_its_source_before_answering() -> None:
    src = _Source([LIVE_KEY, TEST_KEY])
    ring = KeyRing([], src)
    assert await ring.lookup(LIVE_KEY) is not None  # the first lookup loads
    for _ in range(5):
        assert await ring.lookup(TEST_KEY) is not None
    assert src.loads == 1  # an unchanged stamp costs no load
    src.keys, src.version = [TEST_KEY], 1  # revoked elsewhere, then signalled
    assert await ring.lookup(LIVE_KEY) is None  # the very next lookup
    assert src.loads == 2
    await ring.reload()  # SIGHUP loads whatever the stamp says
    assert src.loads == 3


async def test_concurrent_lookups_after_a_change_load_once() -> None:
    import asyncio

    src = _Source([LIVE_KEY])
    ring = KeyRing([], src)
    await ring.reload()
    src.keys, src.version = [], 1
    results = await asyncio.gather(*(ring.lookup(LIVE_KEY) for _ in range(20)))
    assert results == [None] * 20 and src.loads == 2


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _CountingSource(_Source):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.stats = 0

    def stamp(self) -> object:
        self.stats += 1
        return self.version


async def test_ring_stats_its_source_once_per_interval() -> None:
    clock, src = _Clock(), _CountingSource([LIVE_KEY])
    ring = KeyRing([], src, interval=0.01, clock=clock)
    await ring.reload()
    stats = src.stats
    for _ in range(100):  # a burst inside one interval: clock reads, no stat
        assert await ring.lookup(LIVE_KEY) is not None
    assert src.stats == stats
    src.keys, src.version = [], 1  # revoked; the command waits two intervals before returning
    clock.now += 0.02
    assert await ring.lookup(LIVE_KEY) is None
    assert src.stats == stats + 1 and src.loads == 2


class _FailingSource(_Source):
    async def load(self) -> list[ApiKey]:
        if self.version == 1:
            self.version = 2  # fails once, as a store error would
            raise RuntimeError("store unavailable")
        return await super().load()


async def test_a_failed_reload_is_retried_by_the_next_lookup() -> None:
    clock, src = _Clock(), _FailingSource([LIVE_KEY])
    ring = KeyRing([], src, interval=0.01, clock=clock)
    await ring.reload()
    src.keys, src.version = [], 1
    clock.now += 0.02
    with pytest.raises(RuntimeError):
        await ring.lookup(LIVE_KEY)
    # Same interval, yet the stale keys are not used: the failure left the ring unchecked.
    assert await ring.lookup(LIVE_KEY) is None


async def test_lookups_wait_for_a_reload_in_progress() -> None:
    import asyncio

    gate = asyncio.Event()

    class Slow(_Source):
        async def load(self) -> list[ApiKey]:
            await gate.wait()
            return await super().load()

    clock, src = _Clock(), Slow([LIVE_KEY])
    ring = KeyRing([describe(LIVE_KEY)], src, interval=0.01, clock=clock)
    src.keys, src.version = [], 1
    first = asyncio.create_task(ring.lookup(LIVE_KEY))  # stats, starts the slow load
    await asyncio.sleep(0)
    second = asyncio.create_task(ring.lookup(LIVE_KEY))  # same instant: no stat of its own
    await asyncio.sleep(0)
    assert not second.done()  # not answered from the keys being replaced
    gate.set()
    assert await first is None and await second is None
