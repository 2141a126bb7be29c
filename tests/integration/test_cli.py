"""The command line: `check` validates, `send` is a thin client of a running API."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from tests.helpers import LIVE_KEY, auth

CLI = [sys.executable, "-m", "agent"]


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_send_goes_through_the_api(client: TestClient[Any, Any]) -> None:
    url = str(client.make_url("")).rstrip("/")
    code, out, err = await run_cli(
        "send", "--url", url, "--api-key", LIVE_KEY, "--channel", "console", "--to", "ops",
        "--message", "from the cli", "--severity", "critical", "--meta", "host=db1",
    )
    assert code == 0, err
    created = orjson.loads(out)
    assert created["status"] == "queued" and created["severity"] == "critical"
    assert created["metadata"] == {"host": "db1"}
    got = await client.get(f"/v1/notifications/{created['id']}", headers=auth())
    assert (await got.json())["message"] == "from the cli"


async def test_send_reports_api_errors_and_missing_key(client: TestClient[Any, Any]) -> None:
    url = str(client.make_url("")).rstrip("/")
    code, _, err = await run_cli("send", "--url", url, "--api-key", LIVE_KEY, "--channel",
                                 "pager", "--to", "x", "--message", "m")
    assert code == 1 and "invalid_channel" in err
    code, _, err = await run_cli("send", "--url", url, "--api-key", "", "--channel", "console",
                                 "--to", "x", "--message", "m", env={"PATH": "/usr/bin"})
    assert code == 2 and "no API key" in err


async def test_check_names_the_file_and_the_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("port: 9100\ndelivery:\n  max_attempts: 3\n")
    code, out, _ = await run_cli("check", "--config", str(good), env={"PATH": "/usr/bin"})
    assert code == 0 and "9100" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("delivery:\n  max_atempts: 3\n")
    code, _, err = await run_cli("check", "--config", str(bad), env={"PATH": "/usr/bin"})
    assert code == 2 and str(bad) in err and "delivery.max_atempts" in err
    keys = tmp_path / "keys"
    keys.write_text("not_a_key_123456789\n")
    code, _, err = await run_cli("check", env={"PATH": "/usr/bin",
                                               "ALERT_AGENT_API_KEYS_FILE": str(keys)})
    assert code == 2 and "sk_live_" in err and "not_a_key_123456789" not in err


async def test_check_validates_rules_like_the_reloader(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text("routes:\n  - name: ok\n")
    (rules / "b.yaml").write_text("routes:\n  - name: bad\n    matchers: ['x=~\"(\"']\n")
    env = {"PATH": "/usr/bin"}
    code, _, err = await run_cli("check", "--rules", str(rules), env=env)
    assert code == 1 and "b.yaml:3" in err and "bad matcher" in err
    (rules / "b.yaml").unlink()
    code, out, _ = await run_cli("check", "--rules", str(rules), env=env)
    assert code == 0 and "rules ok: 1 file(s)" in out


async def test_routes_test_shows_routes_and_rendered_text(tmp_path: Path) -> None:
    repo_rules = Path(__file__).resolve().parents[2] / "rules"
    code, out, err = await run_cli(
        "routes", "test", "--rules", str(repo_rules), "alertname=PGDown", "severity=critical",
        "service=postgres", "cluster=eu", "instance=db1:5432", "--annotation",
        "summary=Postgres is down", env={"PATH": "/usr/bin"})
    assert code == 0, err
    assert "route: critical-db" in out and "route: critical-default" in out
    assert "-> in-app dba:" in out and "Postgres is down" in out
    code, _, err = await run_cli("routes", "test", "--rules", str(repo_rules), "novalue",
                                 env={"PATH": "/usr/bin"})
    assert code == 2 and "NAME=VALUE" in err


async def test_check_reports_slack_enabled_without_a_token() -> None:
    code, _, err = await run_cli("check", env={"PATH": "/usr/bin",
                                               "ALERT_AGENT_CHANNELS__SLACK__ENABLED": "true"})
    assert code == 2 and "channels.slack.bot_token" in err
