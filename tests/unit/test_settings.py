"""Settings precedence (defaults < YAML < env), errors, secret files, configured API keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.app import configured_keys
from agent.settings import ConfigError, Settings, load_settings, read_secret_file
from tests.helpers import LIVE_KEY, TEST_KEY


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ALERT_AGENT_"):
            monkeypatch.delenv(name)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alert-agent.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- load_settings -----------------------------------------------------------------------------


def test_defaults_without_file() -> None:
    s = load_settings(None)
    assert s.host == "127.0.0.1"
    assert s.port == 9095
    assert s.base_url == "http://127.0.0.1:9095"
    assert s.api_keys == []
    assert s.delivery.max_attempts == 15
    assert s.database_path == Path("data") / "alert-agent.db"


def test_yaml_sets_values(tmp_path: Path) -> None:
    path = _yaml(tmp_path, """
host: 0.0.0.0
port: 8000
data_dir: /var/lib/alert-agent
delivery:
  max_attempts: 3
channels:
  in_app:
    enabled: false
  webhook:
    timeout_seconds: 2.5
""")
    s = load_settings(path)
    assert (s.host, s.port) == ("0.0.0.0", 8000)
    assert s.database_path == Path("/var/lib/alert-agent/alert-agent.db")
    assert s.delivery.max_attempts == 3
    assert s.channels.in_app.enabled is False
    assert s.channels.webhook.timeout_seconds == 2.5


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(_yaml(tmp_path, "")).port == 9095


def test_env_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _yaml(tmp_path, "port: 8000\ndelivery:\n  max_attempts: 3\n  max_in_flight: 10\n")
    monkeypatch.setenv("ALERT_AGENT_PORT", "9999")
    monkeypatch.setenv("ALERT_AGENT_DELIVERY__MAX_ATTEMPTS", "7")
    s = load_settings(path)
    assert s.port == 9999
    assert s.delivery.max_attempts == 7
    assert s.delivery.max_in_flight == 10  # a nested env var keeps its YAML siblings


def test_env_api_keys_split_into_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_AGENT_API_KEYS", "sk_live_a, sk_test_b,")
    s = load_settings(None)
    assert [k.get_secret_value() for k in s.api_keys] == ["sk_live_a", "sk_test_b"]
    assert "sk_live_a" not in repr(s.api_keys)


def test_invalid_env_value_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_AGENT_PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"^environment: port"):
        load_settings(None)


def test_unknown_yaml_key_names_file_and_key(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "port: 8000\nbogus_key: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert "bogus_key" in str(info.value)


def test_unknown_nested_yaml_key_names_its_path(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "delivery:\n  max_attempt: 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert "delivery.max_attempt" in str(info.value)


def test_out_of_range_yaml_value_is_config_error(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "delivery:\n  max_attempts: 0\n")
    with pytest.raises(ConfigError, match="delivery.max_attempts"):
        load_settings(path)


def test_invalid_yaml_is_config_error(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "port: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert "invalid YAML" in str(info.value)


def test_non_mapping_yaml_is_config_error(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(path)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)


# --- read_secret_file --------------------------------------------------------------------------


def test_read_secret_file_strips(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  whsec_value \n\n", encoding="utf-8")
    assert read_secret_file(path) == "whsec_value"


def test_missing_secret_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing-secret"
    with pytest.raises(ConfigError) as info:
        read_secret_file(path)
    assert str(path) in str(info.value)


# --- configured_keys ---------------------------------------------------------------------------


def test_no_configured_keys_is_none(tmp_path: Path) -> None:
    assert configured_keys(Settings(data_dir=tmp_path)) is None


def test_keys_from_settings() -> None:
    keys = configured_keys(Settings(api_keys=[LIVE_KEY, TEST_KEY]))
    assert keys is not None
    assert [k.mode for k in keys] == ["live", "test"]


def test_keys_file_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{LIVE_KEY}\n\n  {TEST_KEY}  \n", encoding="utf-8")
    keys = configured_keys(Settings(api_keys_file=path))
    assert keys is not None
    assert [k.mode for k in keys] == ["live", "test"]


def test_keys_file_comma_separated(tmp_path: Path) -> None:
    extra_live = "sk_live_extra000000000000000000000003"
    path = tmp_path / "keys"
    path.write_text(f"{TEST_KEY}, {extra_live}\n", encoding="utf-8")
    keys = configured_keys(Settings(api_keys_file=path))
    assert keys is not None
    assert [k.mode for k in keys] == ["test", "live"]
    assert len({k.id for k in keys}) == 2


def test_api_keys_and_api_keys_file_together_is_config_error(tmp_path: Path) -> None:
    # Before, the file's keys were silently added to the inline ones; now one source of keys.
    path = tmp_path / "keys"
    path.write_text(f"{TEST_KEY}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="api_keys and api_keys_file are both set") as info:
        configured_keys(Settings(api_keys=[LIVE_KEY], api_keys_file=path))
    assert LIVE_KEY not in str(info.value) and TEST_KEY not in str(info.value)


def test_missing_keys_file_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "no-keys"
    with pytest.raises(ConfigError, match=str(path)):
        configured_keys(Settings(api_keys_file=path))


def test_key_without_known_prefix_is_rejected_without_leaking_it(tmp_path: Path) -> None:
    bad = "pk_live_0123456789abcdefghij"
    path = tmp_path / "keys"
    path.write_text(f"{LIVE_KEY}\n{bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        configured_keys(Settings(api_keys_file=path))
    msg = str(info.value)
    assert bad not in msg
    assert "sk_live_" in msg and "sk_test_" in msg


def test_short_bad_key_is_not_leaked_in_error(tmp_path: Path) -> None:
    bad = "hunter2"
    path = tmp_path / "keys"
    path.write_text(f"{bad}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        configured_keys(Settings(api_keys_file=path))
    assert bad not in str(info.value)
