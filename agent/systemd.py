"""Minimal sd_notify(3) client: readiness, reload, stop, status and watchdog pings."""

from __future__ import annotations

import os
import socket
import threading
import time

__all__ = ["SystemdNotifier", "watchdog_interval"]

# A stuck notify socket must never stall the event loop for long; systemd drains it promptly.
_SEND_TIMEOUT_S = 1.0


def _resolve_address(path: str | None) -> str | None:
    """Map $NOTIFY_SOCKET to a socket address, or None when it is unusable."""
    if not path:
        return None
    if path.startswith("@"):
        # Linux abstract namespace: the name starts with a NUL byte instead of '@'.
        return "\0" + path[1:]
    # sd_notify(3) only accepts absolute paths (or '@'); anything else is ignored.
    if path.startswith("/"):
        return path
    return None


class SystemdNotifier:
    """Send state notifications to the service manager; a no-op outside systemd."""

    def __init__(self, socket_path: str | None = None) -> None:
        if socket_path is None:
            socket_path = os.environ.get("NOTIFY_SOCKET")
        self._address = _resolve_address(socket_path)
        self._sock: socket.socket | None = None
        # The watchdog may ping from another thread than the one sending READY/STOPPING.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured."""
        return self._address is not None

    def notify(self, *states: str) -> bool:
        """Send ``states`` as one datagram; return False instead of raising on any failure."""
        if self._address is None or not states:
            return False
        payload = "\n".join(states).encode("utf-8", errors="replace")
        with self._lock:
            try:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    sock.settimeout(_SEND_TIMEOUT_S)
                    self._sock = sock
                # sendto (not connect) so a notify socket re-created by systemd keeps working.
                self._sock.sendto(payload, self._address)
            except OSError:
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up (or a reload) has finished."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", _status_line(status))

    def reloading(self) -> bool:
        """Announce a reload; systemd >= 253 (Type=notify-reload) requires MONOTONIC_USEC."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Announce that shutdown (draining) has begun."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Keep-alive ping for WatchdogSec=."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Set the free-form status shown by ``systemctl status``."""
        return self.notify(_status_line(text))

    def close(self) -> None:
        """Close the socket; a later notify() reopens it."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _status_line(text: str) -> str:
    # A newline would let status text inject extra assignments such as READY=1.
    return "STATUS=" + text.replace("\r", " ").replace("\n", " ")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of $WATCHDOG_USEC), or None if not requested."""
    raw_usec = os.environ.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = os.environ.get("WATCHDOG_PID")
    if raw_pid:
        try:
            pid = int(raw_pid)
        except ValueError:
            return None
        # The variables may be inherited from a parent that is the real watchdog target.
        if pid != os.getpid():
            return None
    return usec / 2 / 1_000_000
