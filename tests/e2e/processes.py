"""Child processes of the end-to-end suites (the agent, Alertmanager), each with its log file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The agent's JSON log lines (anything else is skipped)."""
        out = []
        for line in self.log().splitlines():
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(ev, dict):
                out.append(ev)
        return out


def tails(children: Iterable[Child], chars: int = 6000) -> str:
    """The end of each child's log, for a failing wait's message."""
    return "\n".join(f"--- {c.name} (pid {c.proc.pid}) ---\n{c.log()[-chars:]}"
                     for c in children)
