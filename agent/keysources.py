"""Where API keys come from, for the daemon and ``alert-agent keys`` alike: the settings
(``configured_keys``), the ``api_keys`` table, and the signal that carries a change of the table
to a running daemon at once.

``alert-agent keys`` commits to the table, then appends one byte to
``data_dir/api-keys.changed`` and waits ``2 * CHECK_INTERVAL_S`` before it returns. The daemon's
key ring stats that file at most once per ``CHECK_INTERVAL_S`` (a clock read per request, a
system call only every 10 ms) and, when the file's identity or size changed, re-reads the table
before it answers (``agent.api.auth.KeyRing`` has the argument why that is exact). The size
grows with every change, so no change is missed however close two come (timestamp granularity
plays no part), and the commit precedes the append, so the re-read sees it: once ``alert-agent
keys revoke`` has returned, no request authenticates with that key, and a created key works for
the next request.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agent.apikeys import ApiKey, active_keys, parse_keys
from agent.private_files import open_private
from agent.settings import ConfigError, Settings, resolve_secret
from agent.store.keys import KeyStore

CHANGED_FILE = "api-keys.changed"
# How stale the daemon's view of the change file may be; the command waits twice as long.
CHECK_INTERVAL_S = 0.01

Stamp = tuple[int, int, int] | None


def configured_keys(settings: Settings) -> list[ApiKey] | None:
    """Keys from settings (``api_keys`` or ``api_keys_file``, not both), or None when none are
    configured. Raises ConfigError naming the setting, never a key."""
    inline = "\n".join(k.get_secret_value() for k in settings.api_keys) or None
    text = resolve_secret(inline, settings.api_keys_file, "api_keys")
    if text is None:
        return None
    try:
        return parse_keys(text)
    except ValueError as exc:
        where = "api_keys" if inline is not None else f"api_keys_file ({settings.api_keys_file})"
        raise ConfigError(f"{where}: {exc}") from exc


def stamp_of(path: Path) -> Stamp:
    """The identity of the change file: inode, size, mtime (None while it does not exist)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def signal_change(data_dir: Path) -> None:
    """Tell a running daemon that the ``api_keys`` table changed (call after the commit).

    Returns once every lookup the daemon starts from now on sees the change.
    """
    fd = open_private(data_dir / CHANGED_FILE, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"\n")
    finally:
        os.close(fd)
    time.sleep(2 * CHECK_INTERVAL_S)  # the proof needs one interval; the second is margin


class DaemonKeys:
    """The daemon's key source: configured keys (set at start and on SIGHUP) plus the table."""

    def __init__(self, store: KeyStore, data_dir: Path) -> None:
        self._store = store
        self._changed = data_dir / CHANGED_FILE
        self.configured: list[ApiKey] | None = None

    def stamp(self) -> Stamp:
        return stamp_of(self._changed)

    async def load(self) -> list[ApiKey]:
        return active_keys(self.configured, await self._store.all())
