"""Cost of the per-request key check: ``KeyRing.lookup`` with and without following the source.

    .venv/bin/python bench/bench_keyring.py [--n 200000] [--repeat 5]

A lookup hashes the presented key and compares it with every active key. Following the daemon's
source (agent/keysources.py, what lets ``alert-agent keys revoke`` take effect at once) adds a
stat of ``data_dir/api-keys.changed``: on every lookup (interval 0), or at most once per
``CHECK_INTERVAL_S`` as the daemon does. Best of ``--repeat`` runs of ``--n`` lookups, in
microseconds per lookup, against three active keys.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from agent.api.auth import KeyRing
from agent.apikeys import ApiKey, describe, generate_key
from agent.keysources import CHANGED_FILE, CHECK_INTERVAL_S, stamp_of


class _Source:
    def __init__(self, keys: list[ApiKey], changed: Path) -> None:
        self.keys, self.changed = keys, changed

    def stamp(self) -> object:
        return stamp_of(self.changed)

    async def load(self) -> list[ApiKey]:
        return self.keys


async def _best(ring: KeyRing, key: str, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            await ring.lookup(key)
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    plain = generate_key("live")
    keys = [describe(generate_key("live")), describe(generate_key("test")), describe(plain)]
    with tempfile.TemporaryDirectory() as d:
        changed = Path(d) / CHANGED_FILE
        changed.touch()
        figures = {}
        for name, ring in (
            ("no source", KeyRing(keys)),
            ("stat every lookup", KeyRing([], _Source(keys, changed))),
            (f"stat per {CHECK_INTERVAL_S * 1000:g} ms (the daemon)",
             KeyRing([], _Source(keys, changed), interval=CHECK_INTERVAL_S)),
        ):
            await ring.reload()
            figures[name] = await _best(ring, plain, a.n, a.repeat)
    print("; ".join(f"{name}: {us:.2f} us/lookup" for name, us in figures.items()))


if __name__ == "__main__":
    asyncio.run(main())
