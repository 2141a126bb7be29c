"""Static checks of the shipped systemd unit (syntax, hardening score, required settings)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "alert-agent.service"
UNIT_NAME = UNIT.name
MAX_EXPOSURE = 2.0
TIMEOUT_S = 30

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not on PATH (install the 'systemd' package)",
)

# Executables referenced by the unit that may legitimately be absent on a test machine.
# `verify` checks every Exec*= binary and reports a missing one with a message whose
# wording differs between systemd versions, so instead of filtering that message we
# point the binary at /bin/true in a temporary copy; any other output still fails.
# - the console script is only installed by the deployment, never on CI;
# - /bin/kill comes from procps, which the 'systemd' package does not depend on
#   (slim containers lack it), so it is replaced only when it really is missing.
_DEPLOY_ONLY_BINARIES = ["/usr/local/bin/alert-agent"]
if not os.access("/bin/kill", os.X_OK):
    _DEPLOY_ONLY_BINARIES.append("/bin/kill")


def _env() -> dict[str, str]:
    # Plain, pager-free, uncoloured output so it can be parsed and compared.
    return {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LESS": ""}


def _parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Parse unit syntax into section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _verifiable_copy(text: str, directory: Path) -> Path:
    """Write the unit to ``directory`` (same file name) with deploy-only binaries replaced."""
    for binary in _DEPLOY_ONLY_BINARIES:
        pattern = re.compile(rf"^(Exec\w+=[-@:+!]*){re.escape(binary)}(?=\s|$)", re.MULTILINE)
        text, count = pattern.subn(r"\g<1>/bin/true", text)
        assert count, f"{binary} is not used by any Exec*= line"
    path = directory / UNIT_NAME
    path.write_text(text, encoding="utf-8")
    return path


def _verify_problems(unit_path: Path) -> list[str]:
    """Run `systemd-analyze verify`; return every diagnostic (empty list == clean).

    verify exits 0 on unknown/misspelled keys and only warns, so any output line
    at all is treated as a problem, as is a non-zero exit status.
    """
    # --man=no: checking Documentation=man: pages depends on man-db, not on the unit.
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT_S,
        env=_env(),
        check=False,
    )
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    if proc.returncode != 0:
        problems.append(f"systemd-analyze verify exited with status {proc.returncode}")
    return problems


def test_unit_has_required_settings() -> None:
    unit = _parse_unit(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]

    def one(key: str) -> str:
        values = service.get(key, [])
        assert len(values) == 1, f"{key} must be set exactly once, got {values}"
        return values[0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec") == "30"
    assert re.fullmatch(r"/bin/kill (-HUP|-s HUP|--signal HUP) \$MAINPID", one("ExecReload"))
    assert one("ExecStart").startswith("/usr/local/bin/alert-agent run ")
    assert one("StateDirectory") == "alert-agent"
    assert one("ConfigurationDirectory") == "alert-agent"
    assert one("ProtectSystem") == "strict"
    assert one("NoNewPrivileges") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("DynamicUser") == "yes"
    assert one("Restart") == "on-failure"
    assert one("TimeoutStopSec") == "30"
    # Ceilings for a runaway (issue 10): memory in bytes with a unit suffix, tasks a count.
    assert re.fullmatch(r"[1-9][0-9]*[KMG]", one("MemoryMax"))
    assert 16 <= int(one("TasksMax")) <= 256
    assert "ALERT_AGENT_DATA_DIR=%S/alert-agent" in service["Environment"]
    assert "ALERT_AGENT_RULES_DIR=%E/alert-agent/rules" in service["Environment"]
    # sd_notify needs AF_UNIX; deliveries need IP networking.
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "PrivateNetwork" not in service
    # Link-local and the metadata address only: loopback and the providers stay reachable.
    assert set(one("IPAddressDeny").split()) == {"169.254.0.0/16", "fe80::/10",
                                                 "fd00:ec2::254/128"}
    assert "IPAddressAllow" not in service
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@needs_systemd_analyze
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    path = _verifiable_copy(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert _verify_problems(path) == []


@needs_systemd_analyze
def test_verify_check_catches_misspelled_key(tmp_path: Path) -> None:
    # Proves the helper above can fail: verify itself exits 0 here and only warns.
    text = UNIT.read_text(encoding="utf-8")
    assert "\nProtectSystem=strict\n" in text
    bad = text.replace("\nProtectSystem=strict\n", "\nProtectSytem=strict\n")
    problems = _verify_problems(_verifiable_copy(bad, tmp_path))
    assert any("ProtectSytem" in line for line in problems), problems


@needs_systemd_analyze
def test_security_exposure_is_low() -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--no-pager", "--offline=yes", str(UNIT)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT_S,
        env=_env(),
        check=False,
    )
    output = proc.stdout + proc.stderr
    match = re.search(
        rf"Overall exposure level for {re.escape(UNIT_NAME)}:\s*(\d+(?:\.\d+)?)", output
    )
    assert match, f"no exposure score in output (exit {proc.returncode}):\n{output}"
    exposure = float(match.group(1))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}:\n{output}"
