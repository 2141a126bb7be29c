"""``alert-agent keys create | list | revoke``: API keys, on the data dir's database directly.

The daemon may be stopped, so the command needs no API. It may also be running: the command
does not take the daemon's data dir lock (it would have to wait for the daemon to stop); it
opens the database for one short write transaction (SQLite WAL lets it run beside the daemon's
connections; the busy timeout covers the daemon's commits), then signals the change through
``agent.keysources`` so the running daemon applies it before its next authentication. The lock is
taken only to create or migrate a database no daemon is using.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.apikeys import (
    SOURCE_CLI,
    SOURCE_CONFIG,
    ApiKey,
    KeyRecord,
    active_keys,
    describe,
    generate_key,
)
from agent.keysources import configured_keys, signal_change
from agent.observability import configure_logging
from agent.private_files import create_private_file, private_dir
from agent.settings import ConfigError, Settings, load_settings
from agent.store import keys as keystore
from agent.store.db import StoreError, connect, migrate, schema_version, try_lock_data_dir
from agent.store.schema import MIGRATIONS

MAX_NAME = 64


class KeysError(Exception):
    """The command cannot do what was asked; the message says why (exit 1)."""


def add_parser(sub: Any) -> None:
    """The ``keys`` subcommands, on the top-level parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path,
                        help="YAML config file: its data_dir and configured keys")
    common.add_argument("--data-dir", type=Path, help="data dir (default: from the config)")
    keys = sub.add_parser("keys", help="create, list and revoke API keys (the daemon may run)")
    ks = keys.add_subparsers(dest="keys_command", required=True)
    create = ks.add_parser("create", parents=[common],
                           help="make a key; prints it once on stdout (only its hash is kept)")
    create.add_argument("--test", action="store_true",
                        help="an sk_test_ key (simulated delivery) instead of sk_live_")
    create.add_argument("--name", help=f"what the key is for (at most {MAX_NAME} characters)")
    lst = ks.add_parser("list", parents=[common],
                        help="configured and stored keys, revoked ones included")
    lst.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    revoke = ks.add_parser("revoke", parents=[common],
                           help="revoke a key by id: it answers 401 at once, also in a "
                                "running daemon, across SIGHUP and restarts")
    revoke.add_argument("id", help="the key's id (key_...), as `keys list` shows it")


def run(args: argparse.Namespace) -> int:
    """Run a ``keys`` subcommand; 0 done, 1 refused, 2 config error."""
    try:
        settings = load_settings(args.config)
        if args.data_dir is not None:
            settings.data_dir = args.data_dir
        configure_logging(settings.log.level, settings.log.format)  # stderr: stdout is the key
        handler = {"create": _create, "list": _list, "revoke": _revoke}[args.keys_command]
        return handler(args, settings)
    except ConfigError as exc:
        print(f"alert-agent: config error: {exc}", file=sys.stderr)
        return 2
    except (KeysError, StoreError) as exc:
        print(f"alert-agent keys: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"alert-agent keys: database {settings.database_path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the data dir: permissions (run as the daemon's user or root)
        print(f"alert-agent keys: {exc}", file=sys.stderr)
        return 1


@contextmanager
def _database(settings: Settings, create: bool) -> Iterator[sqlite3.Connection | None]:
    """A connection to the data dir's database with the current schema (None: no database
    and ``create`` is false)."""
    path = settings.database_path
    if not path.exists() and not create:
        yield None
        return
    private_dir(settings.data_dir)
    lock = try_lock_data_dir(settings.data_dir)  # None: a daemon runs; never wait for it
    conn: sqlite3.Connection | None = None
    try:
        create_private_file(path)
        conn = connect(path, settings.store.synchronous, settings.store.busy_timeout_ms)
        version = schema_version(conn)
        if version < len(MIGRATIONS) and lock is None:
            raise KeysError(
                f"{path} has schema version {version} and the daemon using it is running; "
                f"this alert-agent needs version {len(MIGRATIONS)}: restart the daemon with "
                "this version first (it migrates the database)")
        migrate(conn, path)  # a no-op when current; refuses a newer schema
        if lock is not None:
            lock.close()
            lock = None
        yield conn
    finally:
        if lock is not None:
            lock.close()
        if conn is not None:
            conn.close()


def _signal(settings: Settings) -> None:
    try:
        signal_change(settings.data_dir)
    except OSError as exc:
        raise KeysError(
            f"the change is committed, but a running daemon could not be told "
            f"({settings.data_dir}: {exc.strerror}); send it SIGHUP to apply it") from exc


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create(args: argparse.Namespace, settings: Settings) -> int:
    name = args.name
    if name is not None and not (0 < len(name) <= MAX_NAME and name.isprintable()
                                 and name.strip() == name):
        raise KeysError(f"--name must be 1 to {MAX_NAME} printable characters, "
                        "without leading or trailing spaces")
    plain = generate_key("test" if args.test else "live")
    record = KeyRecord(describe(plain), SOURCE_CLI, time.time(), name)
    with _database(settings, create=True) as conn:
        assert conn is not None
        with _transaction(conn):
            keystore.insert(conn, [record])
    _signal(settings)
    k = record.key
    print(f"created {k.id} ({k.mode}{', ' + repr(name) if name else ''}): the key is on stdout, "
          "shown this once; only its hash is stored.", file=sys.stderr)
    print(plain)  # alone on stdout: KEY=$(alert-agent keys create ...)
    return 0


def _time(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(configured: list[ApiKey] | None, stored: list[KeyRecord]) -> list[dict[str, Any]]:
    active = {k.key_hash for k in active_keys(configured, stored)}
    by_hash = {r.key.key_hash: r for r in stored}
    out: list[dict[str, Any]] = []
    for k in configured or []:
        r = by_hash.pop(k.key_hash, None)
        out.append({"id": k.id, "name": None if r is None else r.name, "mode": k.mode,
                    "hint": k.hint, "created": None, "revoked": None if r is None else r.revoked_at,
                    "source": SOURCE_CONFIG, "active": k.key_hash in active})
    for r in stored:
        if r.key.key_hash in by_hash:
            out.append({"id": r.key.id, "name": r.name, "mode": r.key.mode, "hint": r.key.hint,
                        "created": r.created_at, "revoked": r.revoked_at, "source": r.source,
                        "active": r.key.key_hash in active})
    return out


def _list(args: argparse.Namespace, settings: Settings) -> int:
    configured = configured_keys(settings)
    with _database(settings, create=False) as conn:
        stored = [] if conn is None else keystore.all_keys(conn)
    rows = _rows(configured, stored)
    if args.json:
        print(json.dumps([{**r, "created": r["created"] and _time(r["created"]),
                           "revoked": r["revoked"] and _time(r["revoked"])} for r in rows]))
        return 0
    head = ("ID", "NAME", "MODE", "HINT", "CREATED", "REVOKED", "SOURCE", "ACTIVE")
    table = [head] + [(r["id"], r["name"] or "-", r["mode"], r["hint"], _time(r["created"]),
                       _time(r["revoked"]), r["source"], "yes" if r["active"] else "no")
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(r["source"] == "first-run" and not r["active"] and r["revoked"] is None
           for r in rows):
        print("first-run keys are inactive while keys are configured (api_keys, api_keys_file)",
              file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    key_id = args.id.strip()
    configured = {k.id: k for k in configured_keys(settings) or []}
    with _database(settings, create=key_id in configured) as conn:
        if conn is None:
            raise KeysError(f"no key {key_id} (no database in {settings.data_dir} yet)")
        at = time.time()
        with _transaction(conn):
            record = keystore.revoke(conn, key_id, at)
            if record is None and key_id in configured:
                record = keystore.revoke_configured(conn, configured[key_id], at)
        if record is None:
            raise KeysError(f"no key {key_id}: see `alert-agent keys list` (with the daemon's "
                            "--config and environment, for configured keys)")
    _signal(settings)
    again = record.revoked_at is not None and record.revoked_at < at
    print(f"{'already revoked' if again else 'revoked'} {record.key.id} ({record.key.mode}, "
          f"{record.key.hint}, revoked at {_time(record.revoked_at)}): it answers 401 now, "
          "in a running daemon too.")
    if key_id in configured:
        where = "api_keys_file" if settings.api_keys_file is not None else "api_keys"
        print(f"It is still configured in {where}; the revocation is recorded in the data dir, "
              "so it stays revoked across SIGHUP and restarts. Remove it from there too.")
    return 0
