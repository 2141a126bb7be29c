"""The channel table: settings beside each channel, every build error reported at once, and the
rule-file targets checked against the enabled channels (routing itself imports no channel)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from agent.channels.base import AddressError, ChannelConfigError, ChannelSettings
from agent.channels.console import ConsoleChannel, ConsoleSettings
from agent.channels.registry import (
    REGISTRY,
    ChannelBuildError,
    ChannelDeps,
    ChannelSpec,
    ChannelsSettings,
    build_channels,
    target_problem,
)
from agent.observability import get_logger
from agent.routing.loader import RulesError, load_rules


def _secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    if value is not None and file is not None:
        raise ChannelConfigError(f"{what} and {what}_file are both set; set only one of them")
    return None if value is None else value.get_secret_value()


DEPS = ChannelDeps(secret=_secret, generated_secret=lambda name: "gen", logger=get_logger)


def test_every_spec_has_its_settings_section_and_back() -> None:
    fields = ChannelsSettings.model_fields
    # A provider's section (push's fcm) belongs to the channel it is behind.
    assert {s.setting for s in REGISTRY} | {p for s in REGISTRY for p in s.providers} \
        == set(fields)
    for spec in REGISTRY:
        assert fields[spec.setting].annotation is spec.settings_model
        assert issubclass(spec.settings_model, ChannelSettings)
        # The model lives beside the channel it configures; a section several channels share
        # (twilio: sms and whatsapp) lives in the provider module each of them builds on.
        module = sys.modules[spec.channel_class.__module__]
        home = sys.modules[spec.settings_model.__module__]
        shared = [s.name for s in REGISTRY if s.setting == spec.setting]
        assert home is module or (len(shared) > 1 and home in vars(module).values())
    assert len({s.name for s in REGISTRY}) == len(REGISTRY)


def test_only_enabled_channels_are_built() -> None:
    cfg = ChannelsSettings.model_validate({"webhook": {"enabled": False}})
    assert sorted(build_channels(cfg, DEPS)) == ["console", "in-app"]


def test_every_build_error_is_reported_at_once() -> None:
    def fail(cfg: Any, deps: ChannelDeps) -> Any:
        raise ChannelConfigError("bot_token is empty")

    table = (ChannelSpec("console", "console", ConsoleSettings, ConsoleChannel, fail),
             *(s for s in REGISTRY if s.name != "console"))
    cfg = ChannelsSettings.model_validate(
        {"webhook": {"signing_secret": "a" * 20, "signing_secret_file": "/x"}})
    with pytest.raises(ChannelBuildError) as info:
        build_channels(cfg, DEPS, table)
    assert info.value.problems == [
        "channels.console: bot_token is empty",
        "channels.webhook: channels.webhook.signing_secret and channels.webhook."
        "signing_secret_file are both set; set only one of them",
    ]


def test_target_problems() -> None:
    built = build_channels(ChannelsSettings.model_validate({"webhook": {"enabled": False}}),
                           DEPS)
    assert target_problem(built, "console", "ops") is None
    assert "not available on this agent" in (target_problem(built, "pager", "#x") or "")
    assert target_problem(built, "webhook", "https://x.test/") == (
        "channel 'webhook' is disabled (channels.webhook.enabled: false)")
    everything = build_channels(ChannelsSettings(), DEPS)
    assert "http(s) URL" in (target_problem(everything, "webhook", "ftp://x.test/") or "")


@pytest.mark.parametrize(("channel", "to"), [
    ("webhook", "not-a-url"), ("webhook", "http://"), ("webhook", "mailto:x@y.test"),
    ("console", "   "), ("console", "a\x00b"), ("in-app", "x" * 1025),
])
def test_bad_addresses_are_refused(channel: str, to: str) -> None:
    built = build_channels(ChannelsSettings(), DEPS)
    with pytest.raises(AddressError) as info:
        built[channel].validate_address(to)
    assert info.value.code == "invalid_recipient"


def _rules(tmp_path: Path, text: str) -> Path:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_rules_naming_a_disabled_or_unknown_channel_are_rule_errors(tmp_path: Path) -> None:
    built = build_channels(ChannelsSettings.model_validate({"webhook": {"enabled": False}}),
                           DEPS)
    rules_dir = _rules(tmp_path, """\
        defaults:
          notify:
            - {channel: telegram, to: "123"}
        routes:
          - name: ok
            notify: [{channel: console, to: ops}]
          - name: web
            notify:
              - {channel: console, to: ops}
              - {channel: webhook, to: "https://hooks.test/x"}
          - name: later
            notify: [{channel: apprise, to: ops}]
        """)
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir, check_target=lambda ch, to: target_problem(built, ch, to))
    got = sorted((p.file, p.line, p.message) for p in info.value.problems)
    assert got == [
        ("r.yaml", 3, "notify[0]: channel 'telegram' is disabled "
                      "(channels.telegram.enabled: false)"),
        ("r.yaml", 10, "notify[1]: channel 'webhook' is disabled "
                       "(channels.webhook.enabled: false)"),
        ("r.yaml", 12, "notify[0]: channel 'apprise' is disabled "
                       "(channels.apprise.enabled: false)"),
    ]
    # A name the rule-file schema lets through but no module registers (the list grows with
    # each channel: checked by its start).
    assert (target_problem(built, "pager", "ops") or "").startswith(
        "channel 'pager' is not available on this agent (one of: console, in-app, webhook")
    # Without the check (routing alone), the same files load: routing knows no channel.
    assert load_rules(rules_dir).files == ("r.yaml",)


def test_whatsapp_without_its_sender_says_what_is_missing() -> None:
    # Twilio enabled for sms, no whatsapp_from: whatsapp is not built, and a rule naming it is
    # told why (not that Twilio is disabled, which it is not).
    built = build_channels(ChannelsSettings.model_validate({"twilio": {
        "enabled": True, "account_sid": "AC" + "0" * 32, "auth_token": "t" * 32,
        "from_number": "+15017122661"}}), DEPS)
    assert "sms" in built and "whatsapp" not in built
    assert target_problem(built, "whatsapp", "+351912345678") == (
        "channel 'whatsapp' is not configured (channels.twilio.enabled: false, or "
        "channels.twilio.whatsapp_from is not set)")
