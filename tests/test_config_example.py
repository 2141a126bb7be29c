"""config/agent.yaml documents every setting, with the embedded default as its value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from agent.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "agent.yaml"


def _paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _paths(ann, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def _flatten(data: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALERT_AGENT_"):
            monkeypatch.delenv(name)


def test_every_setting_is_documented() -> None:
    documented = _flatten(yaml.safe_load(EXAMPLE.read_text()))
    assert documented == _paths(Settings)


def test_documented_values_are_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_AGENT_PORT", "9999")
    monkeypatch.setenv("ALERT_AGENT_CHANNELS__IN_APP__ENABLED", "false")
    monkeypatch.setenv("ALERT_AGENT_DELIVERY__MAX_ATTEMPTS", "2")
    s = load_settings(EXAMPLE)
    assert (s.port, s.channels.in_app.enabled, s.delivery.max_attempts) == (9999, False, 2)
    assert s.delivery.claim_batch == 256  # siblings of an overridden key keep the file's value


def test_unknown_environment_variables_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.settings import ConfigError

    monkeypatch.setenv("ALERT_AGENT_PROT", "1")
    monkeypatch.setenv("ALERT_AGENT_DELIVERY__MAX_ATEMPTS", "1")
    with pytest.raises(ConfigError) as exc:
        load_settings(None)
    assert "ALERT_AGENT_DELIVERY__MAX_ATEMPTS" in str(exc.value)
    assert "ALERT_AGENT_PROT" in str(exc.value)
    monkeypatch.delenv("ALERT_AGENT_PROT")
    monkeypatch.delenv("ALERT_AGENT_DELIVERY__MAX_ATEMPTS")
    monkeypatch.setenv("ALERT_AGENT_API__RATE_LIMIT__ENABLED", "false")
    monkeypatch.setenv("ALERT_AGENT_URL", "http://127.0.0.1:1")  # the send client's
    assert load_settings(None).api.rate_limit.enabled is False
