"""Secrets and keys through the real app and the real command line: empty secrets refused,
first-run keys in a 0600 file, private data dir, and ``alert-agent keys`` beside a running
app (created and revoked keys take effect at once, across SIGHUP and restart)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from agent.app import FIRST_RUN_KEYS_FILE, create_app, reload_hook_secrets, reload_keys
from agent.settings import ConfigError, Settings, SourceSettings
from tests.helpers import LIVE_KEY, TEST_KEY, auth, runtime
from tests.integration.test_cli import run_cli
from tests.integration.test_hooks import RULES, sample

Client = TestClient[Any, Any]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual login umask: 0755 dirs and 0644 files unless told
    try:
        yield
    finally:
        os.umask(old)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `keys` command gets: the app's data dir and configured keys."""
    env = {"PATH": "/usr/bin", "ALERT_AGENT_DATA_DIR": str(settings.data_dir)}
    if settings.api_keys:
        env["ALERT_AGENT_API_KEYS"] = ",".join(k.get_secret_value() for k in settings.api_keys)
    env.update(extra)
    return env


async def status_with(client: Client, key: str) -> int:
    return (await client.get("/v1/notifications?limit=1", headers=auth(key))).status


async def keys(settings: Settings, *args: str) -> tuple[int, str, str]:
    return await run_cli("keys", *args, env=cli_env(settings))


# --- empty secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
@pytest.mark.parametrize("field", ["password", "bearer_token"])
async def test_an_empty_hook_secret_refuses_to_start(settings: Settings, host: str,
                                                     field: str) -> None:
    # Before: the app started and an unauthenticated POST /hooks/alertmanager answered 200,
    # off loopback too (a username counted as "secured").
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    settings.host = host
    # Every other source opened on purpose: only the empty secret stands between a sender and
    # the alertmanager hook.
    settings.sources.grafana.auth.type = "none"
    settings.sources.generic["shell"] = SourceSettings.model_validate({"auth": {"type": "none"}})
    a = settings.sources.alertmanager.auth
    if field == "password":
        a.username = "am"
    setattr(a, field, SecretStr(""))
    server = TestServer(create_app(settings), host="127.0.0.1")
    with pytest.raises(ConfigError, match=rf"sources\.alertmanager\.auth\.{field} is empty"):
        await server.start_server()
    await server.close()


async def test_hook_secret_files_are_reread_on_sighup(settings: Settings) -> None:
    settings.rules_dir.mkdir(parents=True, exist_ok=True)
    (settings.rules_dir / "r.yaml").write_text(RULES)
    token = settings.data_dir.parent / "am-token"
    token.write_text("first-token\n")
    settings.sources.alertmanager.auth.bearer_token_file = token
    body = sample("alertmanager-firing.json")
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        async def post(t: str) -> int:
            r = await c.post("/hooks/alertmanager", json=body, headers=auth(t))
            return r.status

        assert await post("first-token") == 200
        token.write_text("second-token\n")
        reload_hook_secrets(c.app)
        assert (await post("first-token"), await post("second-token")) == (401, 200)
        token.write_text("  \n")  # emptied by mistake: refused, the second token stays
        with pytest.raises(ConfigError, match="bearer_token_file"):
            reload_hook_secrets(c.app)
        assert (await post(""), await post("second-token")) == (401, 200)


# --- first start, file modes -------------------------------------------------------------------


async def test_first_start_keys_go_to_a_private_file(tmp_path: Path, umask_022: None) -> None:
    s = Settings(data_dir=tmp_path / "data", rules_dir=tmp_path / "rules")
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")) as c:
        rt = runtime(c)
        path = s.data_dir / FIRST_RUN_KEYS_FILE
        assert rt.new_keys_file == path
        text = path.read_text()
        live = re.findall(r"^live: (sk_live_\S+)$", text, re.M)
        test = re.findall(r"^test: (sk_test_\S+)$", text, re.M)
        assert [live, test] == [rt.new_keys[:1], rt.new_keys[1:]]
        assert await status_with(c, live[0]) == 200 and await status_with(c, test[0]) == 200
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in s.data_dir.iterdir()}
    assert stat.S_IMODE(s.data_dir.stat().st_mode) == 0o700
    # Before: the data dir was 0755 and the database 0644 under this umask.
    assert {modes[n] for n in ("alert-agent.db", "lock", FIRST_RUN_KEYS_FILE,
                               "api-keys.changed")} == {0o600}
    assert all(m == 0o600 for n, m in modes.items()), modes
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")) as c:
        assert runtime(c).new_keys == [] and path.read_text() == text  # made once
        assert await status_with(c, live[0]) == 200


# --- alert-agent keys beside a running app -----------------------------------------------------


async def test_created_and_revoked_keys_apply_at_once(client: Client,
                                                      settings: Settings) -> None:
    code, out, err = await keys(settings, "create", "--test", "--name", "ci runner")
    assert code == 0, err
    new = out.strip()
    assert re.fullmatch(r"sk_test_[A-Za-z0-9_-]{32}", new), out
    key_id = re.search(r"created (key_[0-9a-f]{12}) \(test, 'ci runner'\)", err)
    assert key_id is not None, err
    assert await status_with(client, new) == 200  # no SIGHUP, no restart

    code, out, err = await keys(settings, "revoke", key_id[1])
    assert code == 0 and "revoked" in out, err
    assert await status_with(client, new) == 401  # the very next request
    code, out, _ = await keys(settings, "revoke", key_id[1])
    assert code == 0 and out.startswith("already revoked")

    await reload_keys(client.app)  # SIGHUP
    assert await status_with(client, new) == 401
    assert await status_with(client, LIVE_KEY) == 200


async def test_a_revoked_configured_key_stays_revoked(client: Client, settings: Settings) -> None:
    code, out, _ = await keys(settings, "list")
    assert code == 0
    live_id = next(line.split()[0] for line in out.splitlines() if "sk_live_...0001" in line)
    code, out, err = await keys(settings, "revoke", live_id)
    assert code == 0, err
    assert "still configured in api_keys" in out and "across SIGHUP and restarts" in out
    assert await status_with(client, LIVE_KEY) == 401
    await reload_keys(client.app)  # SIGHUP re-reads the configured keys: still revoked
    assert await status_with(client, LIVE_KEY) == 401
    assert await status_with(client, TEST_KEY) == 200
    code, out, _ = await keys(settings, "list")
    row = next(line for line in out.splitlines() if line.startswith(live_id))
    assert row.split()[-2:] == ["config", "no"], row
    await client.close()
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as again:
        assert await status_with(again, LIVE_KEY) == 401  # restart: still revoked
        assert await status_with(again, TEST_KEY) == 200


async def test_keys_list_shows_every_source(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", rules_dir=tmp_path / "rules")
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")):
        pass  # a first start: two first-run keys
    code, _, err = await keys(s, "create", "--name", "deploy")
    assert code == 0, err
    code, out, _ = await keys(s, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "MODE", "HINT", "CREATED", "REVOKED", "SOURCE",
                                "ACTIVE"]
    rows = [line.split() for line in lines[1:]]
    assert sorted((r[1], r[2], r[6], r[7]) for r in rows) == [
        ("-", "live", "first-run", "yes"), ("-", "test", "first-run", "yes"),
        ("deploy", "live", "cli", "yes")]
    # Configuring keys retires the first-run ones (as before); CLI keys stay.
    code, out, _ = await run_cli("keys", "list", "--json",
                                 env=cli_env(s, ALERT_AGENT_API_KEYS=LIVE_KEY))
    import json

    listed = {(r["source"], r["mode"]): r["active"] for r in json.loads(out)}
    assert listed == {("config", "live"): True, ("first-run", "live"): False,
                      ("first-run", "test"): False, ("cli", "live"): True}


async def test_keys_create_before_the_first_start(tmp_path: Path, umask_022: None) -> None:
    s = Settings(data_dir=tmp_path / "fresh" / "data", rules_dir=tmp_path / "rules")
    code, out, err = await keys(s, "create")
    assert code == 0, err
    assert stat.S_IMODE(s.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(s.database_path.stat().st_mode) == 0o600
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")) as c:
        assert runtime(c).new_keys == []  # a key exists: no first-run keys
        assert not (s.data_dir / FIRST_RUN_KEYS_FILE).exists()
        assert await status_with(c, out.strip()) == 200


async def test_revoking_every_key_does_not_mint_new_ones(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", rules_dir=tmp_path / "rules")
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")) as c:
        first = list(runtime(c).new_keys)
        _, out, _ = await keys(s, "list")
        for key_id in [line.split()[0] for line in out.splitlines()[1:]]:
            assert (await keys(s, "revoke", key_id))[0] == 0
        assert [await status_with(c, k) for k in first] == [401, 401]
    async with TestClient(TestServer(create_app(s), host="127.0.0.1")) as c:
        assert runtime(c).new_keys == []
        assert [await status_with(c, k) for k in first] == [401, 401]


async def test_keys_command_errors(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data")
    code, _, err = await keys(s, "revoke", "key_000000000000")
    assert code == 1 and "no key key_000000000000" in err
    assert not s.data_dir.exists()  # a failed revoke creates nothing
    code, _, err = await keys(s, "create", "--name", "x" * 65)
    assert code == 1 and "--name" in err
    code, _, err = await run_cli("keys", "list", env=cli_env(s, ALERT_AGENT_API_KEYS="sk_live_"))
    assert code == 2 and "at least 16 characters after sk_live_" in err


# --- alert-agent check -------------------------------------------------------------------------


async def test_check_resolves_every_secret(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin", "ALERT_AGENT_RULES_DIR": str(tmp_path / "rules")}
    (tmp_path / "rules").mkdir()
    code, _, err = await run_cli("check", env={**env, "ALERT_AGENT_API_KEYS": "sk_live_"})
    assert code == 2 and "at least 16 characters after sk_live_" in err  # before: "ok"
    empty = tmp_path / "pw"
    empty.write_text("\n")
    code, _, err = await run_cli("check", env={
        **env, "ALERT_AGENT_SOURCES__ALERTMANAGER__AUTH__USERNAME": "am",
        "ALERT_AGENT_SOURCES__ALERTMANAGER__AUTH__PASSWORD_FILE": str(empty)})
    assert code == 2 and "sources.alertmanager.auth.password_file" in err
    code, _, err = await run_cli("check", env={
        **env, "ALERT_AGENT_HOST": "0.0.0.0",
        "ALERT_AGENT_SOURCES__ALERTMANAGER__AUTH__BEARER_TOKEN": "t0ken",
        "ALERT_AGENT_SOURCES__GRAFANA__AUTH__TYPE": "none",
        "ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET": "s",
        "ALERT_AGENT_CHANNELS__WEBHOOK__SIGNING_SECRET_FILE": str(empty)})
    assert code == 2 and "channels.webhook.signing_secret and " in err
    code, out, err = await run_cli("check", env={
        **env, "ALERT_AGENT_HOST": "0.0.0.0",
        "ALERT_AGENT_SOURCES__ALERTMANAGER__AUTH__BEARER_TOKEN": "t0ken"})
    assert code == 2 and "no auth: grafana" in err


async def test_keys_finds_the_data_dir_from_config_or_flag(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(f"data_dir: {tmp_path / 'from-config'}\n")
    env = {"PATH": "/usr/bin"}
    code, _, err = await run_cli("keys", "create", "--config", str(config), env=env)
    assert code == 0, err
    assert (tmp_path / "from-config" / "alert-agent.db").is_file()
    code, out, _ = await run_cli("keys", "list", "--config", str(config), env=env)
    assert len(out.splitlines()) == 2  # the header and the key
    other = tmp_path / "flag"
    code, out, _ = await run_cli("keys", "list", "--config", str(config), "--data-dir",
                                 str(other), env=env)
    assert code == 0 and len(out.splitlines()) == 1 and not other.exists()


async def test_keys_never_migrates_under_a_running_daemon(tmp_path: Path) -> None:
    import sqlite3

    from agent.store.db import try_lock_data_dir
    from agent.store.schema import MIGRATIONS

    s = Settings(data_dir=tmp_path / "data")
    s.data_dir.mkdir()
    with sqlite3.connect(s.database_path) as conn:  # a database an older daemon made
        for n, script in enumerate(MIGRATIONS[:-1], start=1):
            conn.executescript(f"{script}\nPRAGMA user_version={n};")
    daemon_lock = try_lock_data_dir(s.data_dir)  # what a running daemon holds
    assert daemon_lock is not None
    try:
        code, _, err = await keys(s, "create")
        assert code == 1 and "restart the daemon" in err
    finally:
        daemon_lock.close()
    code, _, err = await keys(s, "create")  # no daemon: the command migrates, then writes
    assert code == 0, err


async def test_no_request_started_after_revoke_returned_authenticates(
    client: Client, settings: Settings
) -> None:
    import asyncio
    import time

    key = LIVE_KEY  # configured, so active from the start whatever the change signal does
    _, out, _ = await keys(settings, "list")
    key_id = re.search(r"^(key_[0-9a-f]{12}) .* sk_live_\.\.\.0001 ", out, re.M)
    assert key_id is not None, out
    seen: list[tuple[float, int]] = []
    returned: list[float] = []

    async def hammer() -> None:
        deadline = time.monotonic() + 60
        # Requests back to back while the command runs, then 200 more after it returned.
        while time.monotonic() < deadline and (not returned or len(
                [1 for t, _ in seen if t >= returned[0]]) < 200):
            started = time.monotonic()
            seen.append((started, await status_with(client, key)))

    task = asyncio.create_task(hammer())
    code, _, err = await keys(settings, "revoke", key_id[1])
    returned.append(time.monotonic())
    await task
    assert code == 0, err
    after = [status for started, status in seen if started >= returned[0]]
    assert len(after) >= 200 and set(after) == {401}
    assert seen[0][1] == 200  # the key worked while the command started
