"""One rule for every secret (resolve_secret), key strength, which keys are active, hook
credentials judged as resolved, private file modes, and what a first start prints."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent.api.hookauth import credentials_from, hooks_from, insecure_sources
from agent.apikeys import (
    MIN_KEY_CHARS,
    SOURCE_CLI,
    SOURCE_CONFIG,
    SOURCE_FIRST_RUN,
    KeyRecord,
    active_keys,
    describe,
    generate_key,
    parse_keys,
)
from agent.app import check_secrets, configured_keys, webhook_secret
from agent.daemon import _print_first_run_keys
from agent.private_files import create_private_file, private_dir, write_private_file
from agent.settings import ConfigError, Settings, SourceSettings, SourcesSettings, resolve_secret
from tests.helpers import LIVE_KEY, TEST_KEY

SECRET = "s3cret-value-never-shown"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ALERT_AGENT_"):
            monkeypatch.delenv(name)


@pytest.fixture
def umask_022() -> Iterator[None]:
    # The usual login umask: without explicit modes, files would be 0644 and dirs 0755.
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _file(tmp_path: Path, text: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- resolve_secret ----------------------------------------------------------------------------


def test_resolve_inline_file_or_neither(tmp_path: Path) -> None:
    assert resolve_secret(SecretStr(SECRET), None, "x.token") == SECRET
    assert resolve_secret(f"  {SECRET}\n", None, "x.token") == SECRET
    assert resolve_secret(None, _file(tmp_path, f"{SECRET}\n\n"), "x.token") == SECRET
    assert resolve_secret(None, None, "x.token") is None


def test_resolve_both_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(SecretStr(SECRET), _file(tmp_path, "other"), "sources.grafana.token")
    msg = str(info.value)
    assert "sources.grafana.token and sources.grafana.token_file are both set" in msg
    assert SECRET not in msg and "other" not in msg


@pytest.mark.parametrize("value", ["", "   ", "\n\t"])
def test_resolve_empty_inline_is_an_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^sources\.am\.auth\.password is empty$"):
        resolve_secret(SecretStr(value), None, "sources.am.auth.password")


@pytest.mark.parametrize("text", ["", "  \n\n \t\n"])
def test_resolve_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_secret(None, path, "sources.am.auth.password")
    assert str(info.value) == f"sources.am.auth.password_file: {path} is empty"


def test_resolve_unreadable_file_names_setting_and_path(tmp_path: Path) -> None:
    path = tmp_path / "missing"
    with pytest.raises(ConfigError) as info:
        resolve_secret(None, path, "channels.webhook.signing_secret")
    assert str(info.value).startswith(f"channels.webhook.signing_secret_file: {path}: cannot read")


# --- every secret goes through it --------------------------------------------------------------


def test_webhook_secret_both_set_is_an_error(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, channels={"webhook": {
        "signing_secret": SECRET, "signing_secret_file": _file(tmp_path, "from-file")}})
    with pytest.raises(ConfigError, match="channels.webhook.signing_secret and "):
        webhook_secret(s)


def test_webhook_secret_empty_inline_is_an_error(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, channels={"webhook": {"signing_secret": " "}})
    with pytest.raises(ConfigError, match="channels.webhook.signing_secret is empty"):
        webhook_secret(s)
    assert not (tmp_path / "webhook-signing-secret").exists()  # no silent fallback


def test_webhook_secret_generated_once_0600(tmp_path: Path, umask_022: None) -> None:
    s = Settings(data_dir=tmp_path / "d")
    first = webhook_secret(s)
    assert first.startswith(b"whsec_") and webhook_secret(s) == first
    path = tmp_path / "d" / "webhook-signing-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("field", ["password", "bearer_token", "hmac_secret"])
def test_empty_hook_secret_is_an_error(field: str) -> None:
    # Before: an empty password or token left the source with no credentials, i.e. open.
    auth: dict[str, str] = {field: ""}
    if field == "password":
        auth["username"] = "am"
    s = SourceSettings.model_validate({"auth": auth})
    with pytest.raises(ConfigError, match=rf"^sources\.alertmanager\.auth\.{field} is empty$"):
        credentials_from(s, "sources.alertmanager")


def test_empty_hook_secret_file_is_an_error(tmp_path: Path) -> None:
    path = _file(tmp_path, "\n")
    sources = SourcesSettings.model_validate(
        {"generic": {"ci": {"auth": {"bearer_token_file": str(path)}}}})
    with pytest.raises(ConfigError, match=r"sources\.generic\.ci\.auth\.bearer_token_file"):
        hooks_from(sources)


def test_hook_secret_both_forms_is_an_error(tmp_path: Path) -> None:
    s = SourceSettings.model_validate({"auth": {
        "hmac_secret": SECRET, "hmac_secret_file": str(_file(tmp_path, "other"))}})
    with pytest.raises(ConfigError, match="hmac_secret and sources.x.auth.hmac_secret_file"):
        credentials_from(s, "sources.x")


def test_basic_auth_needs_both_halves() -> None:
    s = SourceSettings.model_validate({"auth": {"username": "am"}})
    with pytest.raises(ConfigError, match=r"sources\.x\.auth: basic auth needs both"):
        credentials_from(s, "sources.x")
    s = SourceSettings.model_validate({"auth": {"username": " ", "password": SECRET}})
    with pytest.raises(ConfigError, match=r"sources\.x\.auth\.username is empty"):
        credentials_from(s, "sources.x")


def test_check_secrets_resolves_all_of_them(tmp_path: Path) -> None:
    ok = Settings(api_keys=[LIVE_KEY], sources={"grafana": {"signing_secret": SECRET}})
    assert check_secrets(ok).grafana_signing_secret == SECRET.encode()
    bad = Settings(sources={"grafana": {"signing_secret_file": str(_file(tmp_path, ""))}})
    with pytest.raises(ConfigError, match="sources.grafana.signing_secret_file"):
        check_secrets(bad)


# --- secured means resolved credentials --------------------------------------------------------


def test_insecure_sources_from_resolved_credentials() -> None:
    h = hooks_from(SourcesSettings.model_validate({
        "alertmanager": {"auth": {"username": "am", "password": SECRET}},
        "grafana": {"signing_secret": SECRET},  # verified on every request: secured
        "generic": {"ci": {"auth": {"type": "none"}}, "off": {"enabled": False}},
    }), "0.0.0.0")
    assert insecure_sources("0.0.0.0", h, ["ci", "off", "undeclared"]) == ["generic.undeclared"]
    assert insecure_sources("127.0.0.1", h, ["undeclared"]) == []
    bare = hooks_from(SourcesSettings(), "::")
    assert insecure_sources("::", bare, []) == ["alertmanager", "grafana"]


# --- keys: strength, parsing, which are active --------------------------------------------------


@pytest.mark.parametrize("key", ["sk_live_", "sk_test_", "sk_live_" + "a" * (MIN_KEY_CHARS - 1)])
def test_short_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_KEY_CHARS} characters after sk_"):
        describe(key)
    assert describe(key[:8] + "b" * MIN_KEY_CHARS).mode in ("live", "test")


def test_key_with_whitespace_inside_is_refused() -> None:
    with pytest.raises(ValueError, match="whitespace"):
        describe("sk_live_0123456789\tabcdefghij")


def test_bare_prefix_configured_key_is_a_config_error() -> None:
    # Before: "sk_live_" was a valid key, i.e. a well-known password.
    with pytest.raises(ConfigError) as info:
        configured_keys(Settings(api_keys=[LIVE_KEY, "sk_live_"]))
    assert str(info.value).startswith("api_keys: key 2: API key **** is too short: "
                                      f"it needs at least {MIN_KEY_CHARS} characters")


def test_short_key_in_file_names_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, f"{TEST_KEY}\nsk_test_short\n", "keys")
    with pytest.raises(ConfigError, match=rf"^api_keys_file \({path}\): key 2: "):
        configured_keys(Settings(api_keys_file=path))


def test_empty_keys_file_is_a_config_error(tmp_path: Path) -> None:
    path = _file(tmp_path, "\n", "keys")
    with pytest.raises(ConfigError, match=rf"api_keys_file: {path} is empty"):
        configured_keys(Settings(api_keys_file=path))


def test_parse_keys_lines_and_commas() -> None:
    assert [k.mode for k in parse_keys(f"{LIVE_KEY},{TEST_KEY}\n\n")] == ["live", "test"]


def _record(key: str, source: str, revoked: float | None = None) -> KeyRecord:
    return KeyRecord(describe(key), source, 1.0, None, revoked)


def test_active_keys() -> None:
    live, test, cli, first = (describe(LIVE_KEY), describe(TEST_KEY), generate_key("live"),
                              generate_key("live"))
    stored = [_record(first, SOURCE_FIRST_RUN), _record(cli, SOURCE_CLI),
              _record(TEST_KEY, SOURCE_CONFIG, revoked=2.0)]
    # Configured keys retire first-run ones; a revoked configured key stays revoked.
    assert active_keys([live, test], stored) == [live, describe(cli)]
    assert active_keys(None, stored) == [describe(first), describe(cli)]
    revoked_cli = [_record(cli, SOURCE_CLI, revoked=3.0)]
    assert active_keys([describe(cli)], revoked_cli) == []  # configured again: still revoked
    assert active_keys([live, live], []) == [live]


# --- private files -----------------------------------------------------------------------------


def test_private_dir_and_files(tmp_path: Path, umask_022: None) -> None:
    d = tmp_path / "a" / "data"
    private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert create_private_file(d / "db") is True
    assert create_private_file(d / "db") is False
    assert stat.S_IMODE((d / "db").stat().st_mode) == 0o600
    write_private_file(d / "keys", "one\n")
    write_private_file(d / "keys", "two\n")
    assert (d / "keys").read_text() == "two\n"
    assert stat.S_IMODE((d / "keys").stat().st_mode) == 0o600
    assert sorted(p.name for p in d.iterdir()) == ["db", "keys"]  # no temp file left


# --- what a first start prints -----------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_first_run_banner_off_a_terminal_has_the_path_not_the_keys(tmp_path: Path) -> None:
    keys, path = [LIVE_KEY, TEST_KEY], tmp_path / "first-run-api-keys"
    out = io.StringIO()  # the journal
    _print_first_run_keys(keys, path, "http://127.0.0.1:9095", out)
    text = out.getvalue()
    assert str(path) in text
    assert LIVE_KEY not in text and TEST_KEY not in text
    assert f"Bearer $(sed -n 's/^test: //p' {path})" in text


def test_first_run_banner_on_a_terminal_shows_the_keys_once(tmp_path: Path) -> None:
    out = _Terminal()
    _print_first_run_keys([LIVE_KEY, TEST_KEY], tmp_path / "k", "http://127.0.0.1:9095", out)
    text = out.getvalue()
    assert text.count(LIVE_KEY) == 1 and f"Bearer {TEST_KEY}" in text
