"""What an emulator answers instead of a success, for the next N requests or for a while.

Shared by the provider emulators of this package: each maps a fault's ``kind`` to the answer its
provider gives (``429`` with or without ``Retry-After``, a ``5xx``, a stall, a truncated body, or a
provider-specific refusal such as ``not_found``). The common kinds are answered here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

# Longest a stalled request is held (it is released at once when the emulator stops).
STALL_SECONDS = 5.0


@dataclass
class Fault:
    """One scheduled failure: ``kind`` for the next ``times`` requests, or until ``until``
    (monotonic seconds) when set."""

    kind: str
    times: int | None = 1
    until: float | None = None
    retry_after: float | None = None
    status: int | None = None  # the 5xx to answer (default per emulator)

    def live(self, now: float) -> bool:
        if self.until is not None:
            return now < self.until
        return self.times is None or self.times > 0


@dataclass
class FailurePlan:
    """The faults still to answer, first scheduled first."""

    faults: list[Fault] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, kind: str, *, times: int | None = 1, seconds: float | None = None,
            retry_after: float | None = None, status: int | None = None) -> None:
        """Answer ``kind`` for the next ``times`` requests, or for ``seconds`` from now."""
        until = None if seconds is None else time.monotonic() + seconds
        self.faults.append(Fault(kind, None if seconds is not None else times, until,
                                 retry_after, status))

    def clear(self) -> None:
        self.faults.clear()

    def take(self) -> Fault | None:
        """The fault this request gets (counting it), or None for a normal answer."""
        now = time.monotonic()
        self.faults = [f for f in self.faults if f.live(now)]
        if not self.faults:
            return None
        fault = self.faults[0]
        if fault.until is None and fault.times is not None:
            fault.times -= 1
        return fault


async def stall(plan: FailurePlan) -> web.Response:
    """Hold the request (bounded) so the client's timeout ends it."""
    await asyncio.wait([asyncio.ensure_future(plan.release.wait())], timeout=STALL_SECONDS)
    return web.Response(status=200)


async def truncated(request: web.Request, head: bytes = b'{"id"') -> web.StreamResponse:
    """A 200 that promises 100 bytes, sends ``head`` and hangs up."""
    resp = web.StreamResponse(status=200, headers={"Content-Length": "100",
                                                   "Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(head)
    if request.transport is not None:
        request.transport.close()
    return resp
