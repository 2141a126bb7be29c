"""SystemdNotifier against real AF_UNIX datagram sockets (filesystem and abstract)."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.systemd import SystemdNotifier, watchdog_interval

RECV_TIMEOUT_S = 2.0
# sun_path holds 108 bytes including the terminating NUL.
MAX_SUN_PATH = 107


def _socket_path(tmp_path: Path) -> str:
    path = str(tmp_path / "notify.sock")
    if len(path) <= MAX_SUN_PATH:
        return path
    # A long $TMPDIR/basetemp would overflow sun_path; fall back to a short private dir.
    return os.path.join(tempfile.mkdtemp(prefix="sd-", dir="/tmp"), "n.sock")


class Receiver:
    """Stand-in for systemd's notify socket."""

    def __init__(self, address: str, bind_address: str) -> None:
        self.address = address  # as written in $NOTIFY_SOCKET
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(RECV_TIMEOUT_S)
        self.sock.bind(bind_address)

    def recv(self) -> bytes:
        return self.sock.recv(65536)

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        try:
            with pytest.raises(BlockingIOError):
                self.sock.recv(65536)
        finally:
            self.sock.settimeout(RECV_TIMEOUT_S)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Receiver]:
    if request.param == "path":
        path = _socket_path(tmp_path)
        rx = Receiver(path, path)
    else:
        name = f"alert-agent-test-{secrets.token_hex(8)}"
        rx = Receiver("@" + name, "\0" + name)
    try:
        yield rx
    finally:
        rx.sock.close()
        if not rx.address.startswith("@"):
            Path(rx.address).unlink(missing_ok=True)


@pytest.fixture
def notifier(receiver: Receiver) -> Iterator[SystemdNotifier]:
    n = SystemdNotifier(receiver.address)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test run itself might be under systemd; never talk to the real manager.
    for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(var, raising=False)


def test_ready(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.enabled
    assert notifier.ready() is True
    assert receiver.recv() == b"READY=1"


def test_ready_with_status(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.ready("serving 3 routes") is True
    assert receiver.recv() == b"READY=1\nSTATUS=serving 3 routes"


def test_reloading_sends_monotonic_usec(notifier: SystemdNotifier, receiver: Receiver) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = receiver.recv().decode().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert value.isdigit()
    assert before <= int(value) <= after


def test_stopping_watchdog_status(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.stopping() is True
    assert receiver.recv() == b"STOPPING=1"
    assert notifier.watchdog() is True
    assert receiver.recv() == b"WATCHDOG=1"
    assert notifier.status("draining 2 deliveries") is True
    assert receiver.recv() == b"STATUS=draining 2 deliveries"
    receiver.assert_empty()


def test_status_cannot_inject_assignments(notifier: SystemdNotifier, receiver: Receiver) -> None:
    assert notifier.status("oops\nREADY=1") is True
    assert receiver.recv() == b"STATUS=oops READY=1"


def test_notify_joins_states_into_one_datagram(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    assert notifier.notify("STATUS=a", "ERRNO=0") is True
    assert receiver.recv() == b"STATUS=a\nERRNO=0"
    receiver.assert_empty()
    assert notifier.notify() is False


def test_socket_reused_and_reopened_after_close(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    for _ in range(3):
        assert notifier.watchdog() is True
    assert [receiver.recv() for _ in range(3)] == [b"WATCHDOG=1"] * 3
    notifier.close()
    notifier.close()  # idempotent
    assert notifier.watchdog() is True
    assert receiver.recv() == b"WATCHDOG=1"


def test_default_socket_from_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.address)
    n = SystemdNotifier()
    try:
        assert n.enabled
        assert n.ready() is True
        assert receiver.recv() == b"READY=1"
    finally:
        n.close()


@pytest.mark.parametrize("value", [None, "", "relative/notify.sock"])
def test_disabled_notifier_returns_false(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is not None:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    n = SystemdNotifier()
    try:
        assert not n.enabled
        assert n.ready() is False
        assert n.reloading() is False
        assert n.stopping() is False
        assert n.watchdog() is False
        assert n.status("x") is False
    finally:
        n.close()


def test_missing_socket_returns_false(tmp_path: Path) -> None:
    for address in (
        _socket_path(tmp_path),  # never bound: ENOENT
        f"@alert-agent-test-missing-{secrets.token_hex(8)}",  # ECONNREFUSED
    ):
        n = SystemdNotifier(address)
        try:
            assert n.enabled
            assert n.ready() is False
            assert n.watchdog() is False
        finally:
            n.close()


def test_dead_socket_returns_false(tmp_path: Path) -> None:
    # systemd went away: the socket file remains but nobody is listening.
    path = _socket_path(tmp_path)
    rx = Receiver(path, path)
    n = SystemdNotifier(rx.address)
    try:
        assert n.watchdog() is True
        assert rx.recv() == b"WATCHDOG=1"
        rx.sock.close()
        assert n.watchdog() is False
        assert n.stopping() is False
    finally:
        n.close()
        rx.sock.close()


def test_watchdog_interval_half_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 15.0


def test_watchdog_interval_other_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None


def test_watchdog_interval_unset() -> None:
    assert watchdog_interval() is None


@pytest.mark.parametrize(
    ("usec", "pid"), [("", None), ("abc", None), ("0", None), ("-5", None), ("1000", "x")]
)
def test_watchdog_interval_invalid(
    usec: str, pid: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", pid)
    assert watchdog_interval() is None
