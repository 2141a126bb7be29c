"""A few open SMTP connections, reused across messages.

SMTP is sequential on a connection (one transaction at a time), and opening one costs a TCP
connect, the greeting, EHLO, often a TLS handshake and AUTH: several round trips before the first
byte of mail. So the pool keeps up to ``size`` connections, each used by one send at a time
(a semaphore), the most recently used first (the others age out); a connection idle for
``idle_seconds`` is closed with QUIT, and all of them are on ``close()``.

A kept connection the server dropped meanwhile (its idle timeout, a restart) is noticed when its
socket closes, or, when that races the next send, by ``SMTPServerDisconnected`` in the middle of
it: the send is then tried once more on a new connection. A new connection that drops fails the
send (the dispatcher retries later). Every try (connect and transaction) is bounded by
``timeout``; waiting for a free connection is not, since every holder is.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiosmtplib

T = TypeVar("T")
Connect = Callable[[], Awaitable[aiosmtplib.SMTP]]
# QUIT on an idle connection is a courtesy: never wait long for it.
QUIT_TIMEOUT = 2.0


class SmtpPool:
    def __init__(self, connect: Connect, *, size: int, idle_seconds: float, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)
        self._idle_seconds = idle_seconds
        self._timeout = timeout
        self._clock = clock
        # (connection, idle since): the most recently used last.
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self.opened = 0  # connections opened so far (for tests and the bench)
        self.reconnects = 0  # sends tried again after a kept connection dropped

    async def run(self, job: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        """``job`` on a connection of the pool (a kept one when there is one); raises what the
        job or the connect raised (TimeoutError when the try ran over ``timeout``)."""
        async with self._slots:
            conn = self._take()
            if conn is not None:
                try:
                    return await self._try(conn, job)
                except aiosmtplib.SMTPServerDisconnected:
                    self.reconnects += 1  # dropped while idle: once more on a new connection
            return await self._try(None, job)

    async def _try(self, conn: aiosmtplib.SMTP | None,
                   job: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                if conn is None:
                    conn = await self._connect()
                    self.opened += 1
                result = await job(conn)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            # A refusal leaves the connection usable (aiosmtplib sent RSET) unless the server
            # closed it (421).
            if conn is not None:
                self._give_back(conn)
            raise
        except BaseException:
            # A timeout or a cancellation mid-command leaves the protocol out of step.
            if conn is not None:
                conn.close()
            raise
        self._give_back(conn)
        return result

    def _take(self) -> aiosmtplib.SMTP | None:
        now = self._clock()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.is_connected and now - since < self._idle_seconds:
                return conn
            conn.close()
        return None

    def _give_back(self, conn: aiosmtplib.SMTP) -> None:
        if self._closed or not conn.is_connected:
            conn.close()
            return
        self._idle.append((conn, self._clock()))
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Close connections idle for ``idle_seconds``, until none is left."""
        while self._idle:
            oldest = self._idle[0][1]
            await asyncio.sleep(max(0.0, oldest + self._idle_seconds - self._clock()))
            now = self._clock()
            expired = [c for c, since in self._idle if now - since >= self._idle_seconds]
            self._idle = [(c, s) for c, s in self._idle if now - s < self._idle_seconds]
            for conn in expired:
                await _quit(conn)

    @property
    def idle(self) -> int:
        """Connections open and waiting for a message."""
        return len(self._idle)

    async def close(self) -> None:
        """QUIT every idle connection; one in use is closed when its send ends."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(conn) for conn, _ in idle))


async def _quit(conn: aiosmtplib.SMTP) -> None:
    try:
        async with asyncio.timeout(QUIT_TIMEOUT):
            await conn.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        conn.close()
