"""Provider emulators (the test suite's, ``tests/emulators``) served from a thread of their own,
so a benchmark's blocking client code can run beside them."""

from __future__ import annotations

import asyncio
import threading
from contextlib import AsyncExitStack
from typing import Self


class EmulatorThread:
    """Subclasses start their emulators in ``serve(stack)`` (entering each into ``stack``);
    ``with`` runs them until the block ends."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def serve(self, stack: AsyncExitStack) -> None:
        raise NotImplementedError

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            await self.serve(stack)
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("emulators did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
