"""Fixtures of the end-to-end suites."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import Child


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Callable[[str, list[str], dict[str, str]], Child]]:
    """Start child processes (output to a file); each still running is SIGKILLed by PID."""
    started: list[Child] = []

    def start(name: str, argv: list[str], env: dict[str, str]) -> Child:
        log_path = tmp_path / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        child = Child(name, proc, log_path)
        started.append(child)
        return child

    try:
        yield start
    finally:
        for c in started:
            if c.proc.poll() is None:
                os.kill(c.proc.pid, signal.SIGKILL)
            c.proc.wait(timeout=10)
