"""Hot reload survives whatever the rule files hold (issue 10, item 5).

The three inputs that raised ValueError/RecursionError out of ``load_rules`` killed the watcher
(later good edits were ignored), left ``alert_agent_rules_last_reload_successful`` at 1 and made
``POST /-/reload`` answer 500. Each is now a reported failure; the watcher lives on, also when
its directory is removed and re-created; ``POST /-/reload`` is rate limited.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app
from agent.settings import ConfigError, Settings
from tests.helpers import auth, runtime, wait_until

Client = TestClient[Any, Any]
GOOD = """\
routes:
  - name: first
    matchers: ['team="a"']
    notify: [{channel: in-app, to: team-a}]
"""
DEEP = "{% if x %}" * 2000 + "y" + "{% endif %}" * 2000

# (file text, line of the problem, words of the problem): each raised out of load_rules before.
CRASHERS = [
    pytest.param("routes:\n  - name: r\n    group_wait: 2024-13-45\n", 3,
                 "invalid duration '2024-13-45'", id="impossible-date"),
    pytest.param("routes: &r\n  - name: a\n    routes: *r\n", 3, "recursive alias",
                 id="recursive-alias"),
    pytest.param(f"templates:\n  - name: deep\n    body: '{DEEP}'\n", 3,
                 "nested too deeply", id="template-2000-deep"),
]


@asynccontextmanager
async def _agent(settings: Settings, reload_interval: float) -> AsyncIterator[Client]:
    """The agent on the GOOD rules with this reload rate limit."""
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "main.yaml").write_text(GOOD)
    settings.api.reload_min_interval_seconds = reload_interval
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


@pytest.fixture
async def rclient(settings: Settings) -> AsyncIterator[Client]:
    async with _agent(settings, 0.0) as c:  # the rate limit has its own tests
        yield c


async def rules_status(client: Client) -> dict[str, Any]:
    resp = await client.get("/v1/rules/status", headers=auth())
    assert resp.status == 200
    return dict(await resp.json())


async def reload_metric(client: Client) -> str:
    text = await (await client.get("/metrics")).text()
    return next(line for line in text.splitlines()
                if line.startswith("alert_agent_rules_last_reload_successful "))


async def edit_until(path: Path, text: str, done: Callable[[], Any], timeout: float = 20.0
                     ) -> None:
    """Write ``text`` and wait for ``done``; write it again every 3 s until the deadline, since
    an edit made while the watch is (re)starting may precede it and go unseen."""
    deadline = time.monotonic() + timeout
    while True:
        path.write_text(text)
        try:
            await wait_until(done, timeout=min(3.0, max(0.1, deadline - time.monotonic())))
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


@pytest.mark.parametrize(("text", "line", "needle"), CRASHERS)
async def test_post_reload_reports_the_problem_in_the_envelope(
    rclient: Client, settings: Settings, text: str, line: int, needle: str
) -> None:
    holder = runtime(rclient).rules
    before = holder.current
    (settings.rules_dir / "zz-bad.yaml").write_text(text)
    resp = await rclient.post("/-/reload", headers=auth())
    body = await resp.json()
    assert resp.status == 422, body  # was 500 internal_error
    err = body["error"]
    assert (err["type"], err["code"]) == ("validation_error", "invalid_rules")
    assert f"zz-bad.yaml:{line}" in err["message"] and needle in err["message"]
    assert holder.current is before
    st = await rules_status(rclient)
    assert st["last_reload_successful"] is False
    assert st["errors"][0]["file"] == "zz-bad.yaml" and st["errors"][0]["line"] == line
    assert needle in st["errors"][0]["message"]
    assert await reload_metric(rclient) == "alert_agent_rules_last_reload_successful 0.0"


@pytest.mark.parametrize(("text", "line", "needle"), CRASHERS)
async def test_the_watcher_survives_a_bad_edit_and_applies_the_next_good_one(
    rclient: Client, settings: Settings, text: str, line: int, needle: str
) -> None:
    holder = runtime(rclient).rules
    before = holder.current

    async def failed() -> bool:
        st = await rules_status(rclient)
        return any(e["file"] == "main.yaml" and needle in e["message"] for e in st["errors"])

    await edit_until(settings.rules_dir / "main.yaml", text, failed)
    st = await rules_status(rclient)
    assert st["last_reload_successful"] is False and st["errors"][0]["line"] == line
    assert await reload_metric(rclient) == "alert_agent_rules_last_reload_successful 0.0"
    assert holder.current is before  # the old rules keep serving
    resp = await rclient.post("/v1/alerts", headers=auth(),
                              json={"monitor_id": "m1", "type": "down", "labels": {"team": "a"}})
    assert resp.status == 201

    # Before the fix the watcher task had died: this edit was never applied.
    await edit_until(settings.rules_dir / "main.yaml", GOOD.replace("team-a", "team-b"),
                     lambda: holder.current.routes_by_id.get("first") is not None
                     and holder.current.routes_by_id["first"].notify[0].to == "team-b")
    assert (await rules_status(rclient))["last_reload_successful"] is True
    assert await reload_metric(rclient) == "alert_agent_rules_last_reload_successful 1.0"


async def test_the_watcher_survives_its_directory_being_removed_and_recreated(
    rclient: Client, settings: Settings
) -> None:
    holder = runtime(rclient).rules
    before = holder.current
    shutil.rmtree(settings.rules_dir)
    # While the directory is gone the running rules stay (no switch to the default rules).
    settings.rules_dir.mkdir()
    await edit_until(settings.rules_dir / "main.yaml", GOOD.replace("team-a", "team-c"),
                     lambda: holder.current.routes_by_id.get("first") is not None
                     and holder.current.routes_by_id["first"].notify[0].to == "team-c")
    assert holder.current is not before
    # ...and it still watches the new directory.
    await edit_until(settings.rules_dir / "main.yaml", GOOD.replace("team-a", "team-d"),
                     lambda: holder.current.routes_by_id["first"].notify[0].to == "team-d")


@pytest.mark.parametrize(("text", "line", "needle"), CRASHERS)
async def test_start_up_with_a_crashing_file_is_a_clear_config_error(
    settings: Settings, text: str, line: int, needle: str
) -> None:
    settings.rules_dir.mkdir(parents=True)
    (settings.rules_dir / "bad.yaml").write_text(text)
    server = TestServer(create_app(settings), host="127.0.0.1")
    with pytest.raises(ConfigError) as info:  # was a ValueError/RecursionError traceback
        await server.start_server()
    await server.close()
    assert f"bad.yaml:{line}" in str(info.value) and needle in str(info.value)


async def test_check_reports_the_crashing_inputs_without_a_traceback(tmp_path: Path) -> None:
    from tests.integration.test_cli import run_cli

    rules = tmp_path / "rules"
    rules.mkdir()
    for i, case in enumerate(CRASHERS):
        (rules / f"{i}.yaml").write_text(case.values[0])
    code, _, err = await run_cli("check", "--rules", str(rules), env={"PATH": "/usr/bin"})
    assert code == 1 and "Traceback" not in err, err
    for i, case in enumerate(CRASHERS):
        assert f"rules error: {i}.yaml:{case.values[1]}: " in err and case.values[2] in err


# --- rate limit ---------------------------------------------------------------------------


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[Client]:
    async with _agent(settings, 3600.0) as c:  # the second POST is surely within it
        yield c


async def test_a_second_reload_within_the_interval_is_429(limited: Client) -> None:
    assert (await limited.post("/-/reload")).status == 401  # no key: not counted
    first = await limited.post("/-/reload", headers=auth())
    assert first.status == 200
    attempts = runtime(limited).rules.last_attempt_at
    second = await limited.post("/-/reload", headers=auth())
    body = await second.json()
    assert second.status == 429, body
    assert (body["error"]["type"], body["error"]["code"]) == ("rate_limit_error",
                                                              "reload_rate_limited")
    assert "api.reload_min_interval_seconds" in body["error"]["message"]
    assert 3500 <= int(second.headers["Retry-After"]) <= 3600
    assert runtime(limited).rules.last_attempt_at == attempts  # nothing was reloaded


def test_the_default_interval_is_one_second() -> None:
    assert Settings().api.reload_min_interval_seconds == 1.0
