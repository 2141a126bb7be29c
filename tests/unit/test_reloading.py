"""SIGHUP reloads and sd_notify (issue 10, item 5): every RELOADING=1 is followed by READY=1,
also when the reload raised, and overlapping requests run one after the other, each announced
on its own, never two RELOADING=1 before a READY=1. A real AF_UNIX datagram socket listens."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.reloading import Reloads
from agent.systemd import SystemdNotifier
from tests.helpers import wait_until


@pytest.fixture
def rx(tmp_path: Path) -> Iterator[tuple[socket.socket, SystemdNotifier]]:
    """The listening socket and a notifier sending to it."""
    path = str(tmp_path / "n.sock")
    if len(path) > 107:  # sun_path
        path = os.path.join(tempfile.mkdtemp(prefix="sd-", dir="/tmp"), "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    notifier = SystemdNotifier(path)
    try:
        yield sock, notifier
    finally:
        notifier.close()
        sock.close()


def states(sock: socket.socket) -> list[str]:
    """The first line of every datagram received so far."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode().split("\n")[0])
        except BlockingIOError:
            return out


async def test_ready_follows_reloading_when_the_reload_raises(
    rx: tuple[socket.socket, SystemdNotifier]
) -> None:
    sock, notifier = rx

    async def broken() -> None:
        raise ValueError("month must be in 1..12")

    reloads = Reloads(notifier, broken)
    reloads.request()
    await reloads.idle()
    assert states(sock) == ["RELOADING=1", "READY=1"]
    reloads.request()  # and the next one still works
    await reloads.idle()
    assert states(sock) == ["RELOADING=1", "READY=1"]


async def test_overlapping_requests_run_in_turn_each_announced(
    rx: tuple[socket.socket, SystemdNotifier]
) -> None:
    sock, notifier = rx
    release = asyncio.Event()
    running = 0
    most = 0

    async def slow() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1

    reloads = Reloads(notifier, slow)
    reloads.request()
    await wait_until(lambda: running == 1)
    reloads.request()  # SIGHUPs while a reload runs: one more reload, after this one
    reloads.request()
    await asyncio.sleep(0)
    assert states(sock) == ["RELOADING=1"]
    release.set()
    await reloads.idle()
    assert states(sock) == ["READY=1", "RELOADING=1", "READY=1"]
    assert (reloads.runs, most) == (2, 1)
