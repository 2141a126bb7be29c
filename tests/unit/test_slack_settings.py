"""channels.slack: off by default, a token required when on, in either of its forms."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.app import check_channels
from agent.channels.slack import SlackChannel, SlackSettings
from agent.settings import ConfigError, Settings

TOKEN = "xoxb-settings-3333-SlackBotTokenValue"


def test_defaults() -> None:
    s = SlackSettings()
    assert (s.enabled, s.bot_token, s.bot_token_file, s.api_url, s.timeout_seconds,
            s.rate_per_second) == (False, None, None, "https://slack.com/api", 10.0, 1.0)
    assert "slack" not in check_channels(Settings())


def test_enabled_without_a_token_names_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        check_channels(Settings(channels={"slack": {"enabled": True}}))
    assert str(info.value) == ("channels.slack: enabled without a bot token: set "
                               "channels.slack.bot_token or channels.slack.bot_token_file")


def test_the_token_inline_or_from_a_file(tmp_path: Path) -> None:
    built = check_channels(Settings(channels={"slack": {"enabled": True, "bot_token": TOKEN}}))
    assert isinstance(built["slack"], SlackChannel)
    path = tmp_path / "slack-token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    built = check_channels(Settings(channels={"slack": {"enabled": True,
                                                        "bot_token_file": str(path)}}))
    assert isinstance(built["slack"], SlackChannel)
    empty = tmp_path / "empty"
    empty.write_text("")
    empty.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        check_channels(Settings(channels={"slack": {"enabled": True,
                                                    "bot_token_file": str(empty)}}))
    assert "channels.slack.bot_token_file" in str(info.value)


def test_both_forms_at_once_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text(TOKEN)
    path.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        check_channels(Settings(channels={"slack": {
            "enabled": True, "bot_token": TOKEN, "bot_token_file": str(path)}}))
    assert "channels.slack.bot_token and channels.slack.bot_token_file" in str(info.value)
    assert TOKEN not in str(info.value)


def test_api_url_must_be_http_and_loses_its_trailing_slash() -> None:
    assert SlackSettings(api_url="http://127.0.0.1:9/api/").api_url == "http://127.0.0.1:9/api"
    with pytest.raises(ValidationError):
        SlackSettings(api_url="slack.com/api")
    with pytest.raises(ValidationError):
        SlackSettings(rate_per_second=0)
