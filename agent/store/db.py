"""SQLite (WAL) access: one writer thread with group commit, one reader thread.

Group commit: callers hand the writer an *operation* (a function of a ``sqlite3.Connection``) and
await its result. One task takes every operation pending, runs them in one transaction on the
writer thread (each inside a SAVEPOINT, so one failing operation doesn't sink its neighbours),
commits, then resolves every waiter. A caller is answered only after the commit that holds its
rows, and a burst of N requests costs one commit instead of N.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from agent.observability import Metrics, get_logger
from agent.private_files import create_private_file, open_private, private_dir
from agent.store.schema import MIGRATIONS

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], T]
log = get_logger("store")


LOCK_FILE = "lock"
WRITER_CACHE_KIB = 16 * 1024


class StoreError(Exception):
    """The database failed (disk full, corruption, locked beyond the busy timeout)."""


def try_lock_data_dir(data_dir: Path) -> IO[str] | None:
    """The exclusive lock a running daemon holds on its data dir, or None when it is held.

    A second daemon on the same data would release the first one's claims and deliver its rows
    twice. ``alert-agent keys`` takes it only to migrate a database no daemon is using.
    """
    private_dir(data_dir)
    fh = os.fdopen(open_private(data_dir / LOCK_FILE, os.O_RDWR), "r+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        return None
    return fh


def connect(path: Path, synchronous: str = "NORMAL",
            busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, rows by name."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply pending migrations. Only the holder of the data dir lock may call this."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path}: schema version {version} is newer than this build knows "
            f"({len(MIGRATIONS)}); refusing to touch it"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits implicitly, so the version bump lives inside the script.
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        log.info("store_migrated", version=number, path=str(path))


@dataclass
class _Pending:
    op: Operation[Any]
    future: asyncio.Future[Any]


class Database:
    """The connections, the group-commit writer and the migrations of one SQLite file."""

    def __init__(
        self,
        path: Path,
        metrics: Metrics,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = path
        self._metrics = metrics
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create the file if needed, apply pending migrations, start the group committer."""
        private_dir(self.path.parent)
        create_private_file(self.path)  # 0600 before SQLite creates it (its -wal/-shm follow)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self._migrate)
        await loop.run_in_executor(self._reader_pool, self._conn)
        self._flusher = asyncio.create_task(self._flush_loop(), name="store-group-commit")

    async def close(self) -> None:
        """Commit what is pending, stop the committer, close both connections."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        for pool in (self._writer_pool, self._reader_pool):
            await loop.run_in_executor(pool, self._close_conn)
            pool.shutdown(wait=True)

    # --- the two entry points ------------------------------------------------------------

    async def write(self, op: Operation[T]) -> T:
        """Run ``op`` in the next group-commit transaction; return after that commit."""
        if self._closed:
            raise StoreError("store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(op, fut))
        self._wakeup.set()
        return await fut

    async def read(self, op: Operation[T]) -> T:
        """Run a read-only ``op`` on the reader connection (a WAL snapshot)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader_pool, self._run_read, op)
        except sqlite3.Error as exc:
            self._metrics.store_errors.inc()
            raise StoreError(str(exc)) from exc

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            return await self.read(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except StoreError:
            return False

    # --- internals -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._synchronous, self._busy_timeout_ms)
            self._local.conn = conn
        return conn

    def _close_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        conn = self._conn()
        migrate(conn, self.path)
        # The writer's page cache holds the indexes a storm inserts into at random places
        # (alert fingerprints, memberships by alert): at SQLite's default 2 MB they spill by
        # ~100,000 alerts and every insert re-reads pages. Allocated only as pages are used.
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # Not temp_store=MEMORY, though every operation's SAVEPOINT copies each page it first
        # changes to a statement journal (a temp file past 64 KiB): in memory, a storm's
        # journals (an index page per alert) raised the daemon's peak RSS by ~70 MB.

    def _run_read(self, op: Operation[T]) -> T:
        return op(self._conn())

    def _run_batch(self, ops: list[Operation[Any]]) -> list[tuple[bool, Any]]:
        conn = self._conn()
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op(conn)))
                except Exception as exc:  # one bad operation must not sink the batch
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (disk full, I/O error):
                        # the batch is lost with it; report why, not the missing savepoint.
                        raise
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    def _failed(self, exc: BaseException) -> BaseException:
        """What the caller of a failed operation gets: a database error becomes a StoreError
        (the API answers 503, retry later); an operation's own exception passes through."""
        if not isinstance(exc, sqlite3.Error):
            return exc
        self._metrics.store_errors.inc()
        log.error("store_write_failed", error=str(exc))
        err = StoreError(str(exc))
        err.__cause__ = exc
        return err

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending:
                if self._closed:
                    return
                continue
            batch, self._pending = self._pending, []
            try:
                results = await loop.run_in_executor(
                    self._writer_pool, self._run_batch, [p.op for p in batch]
                )
            except Exception as exc:
                self._metrics.store_errors.inc()
                log.error("store_commit_failed", error=str(exc), operations=len(batch))
                err = StoreError(f"commit failed: {exc}")
                err.__cause__ = exc
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            self._metrics.store_commits.inc()
            self._metrics.store_commit_size.observe(len(batch))
            for p, (ok, value) in zip(batch, results, strict=True):
                if p.future.done():  # the caller went away (client disconnect)
                    continue
                if ok:
                    p.future.set_result(value)
                else:
                    p.future.set_exception(self._failed(value))
            if self._pending:
                self._wakeup.set()
