"""The channel table: name -> channel class, its settings model, and how to build it.

One explicit table (as Alertmanager's ``config/receiver``), no import by string. A channel joins
by adding its module (class + settings model beside it), one ``ChannelSpec`` below and one field
of ``ChannelsSettings``; tests/contract/test_channel_contract.py then runs the failure table
against it. Building collects every channel's error and fails once, naming each setting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver
from pydantic import BaseModel, ConfigDict, SecretStr

from agent.channels.apprise import AppriseChannel, AppriseSettings
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    ChannelSender,
    ChannelSettings,
)
from agent.channels.console import ConsoleChannel, ConsoleSettings
from agent.channels.email import EmailChannel, EmailSettings, build_email
from agent.channels.fcm import FcmSender, FcmSettings
from agent.channels.inapp import InAppChannel, InAppSettings
from agent.channels.push import PushChannel, PushSettings
from agent.channels.push_router import PushRouter
from agent.channels.slack import SlackChannel, SlackSettings
from agent.channels.sms import SmsChannel, build_sms
from agent.channels.teams import TeamsChannel, TeamsSettings
from agent.channels.telegram import TelegramChannel, TelegramSettings, build_telegram
from agent.channels.twilio import TwilioSettings
from agent.channels.webhook import WebhookChannel, WebhookSettings
from agent.channels.whatsapp import WhatsAppChannel, build_whatsapp
from agent.domain import InboxItem


class ChannelsSettings(BaseModel):
    """``channels:``, one section per registered channel (the field is the spec's ``setting``)."""

    model_config = ConfigDict(extra="forbid")

    console: ConsoleSettings = ConsoleSettings()
    in_app: InAppSettings = InAppSettings()  # the "in-app" channel
    webhook: WebhookSettings = WebhookSettings()
    teams: TeamsSettings = TeamsSettings()
    push: PushSettings = PushSettings()  # ntfy
    slack: SlackSettings = SlackSettings()
    telegram: TelegramSettings = TelegramSettings()
    fcm: FcmSettings = FcmSettings()  # mobile push behind "push": fcm:<device token>
    email: EmailSettings = EmailSettings()
    apprise: AppriseSettings = AppriseSettings()
    twilio: TwilioSettings = TwilioSettings()  # the "sms" and "whatsapp" channels


# (inline value, file, setting path) -> the secret, or None when neither is set; raises
# ChannelConfigError naming the setting (the one rule of agent.settings.resolve_secret).
SecretResolver = Callable[[SecretStr | None, Path | None, str], str | None]


def _no_session() -> aiohttp.ClientSession:
    raise RuntimeError("no HTTP session: channels built for checking only")


async def _no_inbox(item: InboxItem) -> None:
    raise RuntimeError("no inbox: channels built for checking only")


@dataclass(frozen=True, slots=True)
class ChannelDeps:
    """What channels are built with: nothing global, everything handed in."""

    secret: SecretResolver
    # A secret the agent keeps in its data dir, made on first use (name -> value).
    generated_secret: Callable[[str], str]
    logger: Callable[[str], Any]
    # The one shared session (per-host connection limits), made at start-up: channels call
    # this when they send, so they can be built (and checked) before it exists.
    session: Callable[[], aiohttp.ClientSession] = _no_session
    inbox: Callable[[InboxItem], Awaitable[None]] = _no_inbox
    # The agent's own API address (host, port): webhooks must not reach it (netpolicy.py).
    listen: tuple[str, int] | None = None
    # A session of a channel's own, with the shared one's limits, resolving through the
    # channel's resolver (webhook: the network policy); the channel closes it. None: aiohttp's
    # defaults.
    private_session: Callable[[AbstractResolver], aiohttp.ClientSession] | None = None
    # Where the far side reaches the agent (``settings.base_url``): Twilio posts its status
    # callbacks there. None: no callbacks asked for.
    public_url: str | None = None


S = TypeVar("S", bound=ChannelSettings)


@dataclass(frozen=True, slots=True)
class ChannelSpec(Generic[S]):
    name: str  # as the API and rule files spell it
    setting: str  # the field of ChannelsSettings
    settings_model: type[S]
    channel_class: type[Any]
    # None: the settings leave this channel unconfigured (whatsapp without whatsapp_from).
    build: Callable[[S, ChannelDeps], ChannelSender | None]
    # Sections of further providers behind this channel (push: ``fcm`` beside ntfy's own):
    # enabling any of them builds the channel, through ``build_all``, which reads them all and
    # raises ChannelBuildError naming each section that is wrong. ``build`` alone builds the
    # channel from its own section.
    providers: tuple[str, ...] = ()
    build_all: Callable[[ChannelsSettings, ChannelDeps], ChannelSender] | None = None
    # A setting without which ``build`` leaves the channel unconfigured although its section is
    # enabled (whatsapp: channels.twilio.whatsapp_from), for the rule error that says so.
    needs: str | None = None

    def enabled_in(self, channels: ChannelsSettings) -> bool:
        """Its own section or a provider's is enabled."""
        return any(getattr(channels, s).enabled for s in (self.setting, *self.providers))

    def settings_of(self, channels: ChannelsSettings) -> S:
        value = getattr(channels, self.setting)
        assert isinstance(value, self.settings_model)
        return value


def _webhook(cfg: WebhookSettings, deps: ChannelDeps) -> ChannelSender:
    secret = deps.secret(cfg.signing_secret, cfg.signing_secret_file,
                         "channels.webhook.signing_secret")
    if secret is None:
        secret = deps.generated_secret("webhook-signing-secret")
    return WebhookChannel(cfg, secret.encode(), listen=deps.listen, logger=deps.logger,
                          new_session=deps.private_session)


def _slack(cfg: SlackSettings, deps: ChannelDeps) -> ChannelSender:
    token = deps.secret(cfg.bot_token, cfg.bot_token_file, "channels.slack.bot_token")
    if token is None:
        raise ChannelConfigError("enabled without a bot token: set channels.slack.bot_token "
                                 "or channels.slack.bot_token_file")
    signing = deps.secret(cfg.signing_secret, cfg.signing_secret_file,
                          "channels.slack.signing_secret")
    return SlackChannel(cfg, token, deps.session, deps.logger("channel.slack"),
                            signing_secret=signing)


def _push(channels: ChannelsSettings, deps: ChannelDeps) -> ChannelSender:
    """ntfy alone: the ntfy channel as it was; with FCM: the router over both."""
    problems: list[str] = []
    ntfy: PushChannel | None = None
    fcm: FcmSender | None = None
    if channels.push.enabled:
        try:
            ntfy = PushChannel.from_settings(channels.push, deps.secret, deps.session)
        except ChannelConfigError as exc:
            problems.append(f"channels.push: {exc}")
    if channels.fcm.enabled:
        try:
            fcm = FcmSender.from_settings(channels.fcm, deps.session, deps.logger("channel.fcm"))
        except ChannelConfigError as exc:
            problems.append(f"channels.fcm: {exc}")
    if problems:
        raise ChannelBuildError(problems)
    if fcm is None:
        assert ntfy is not None
        return ntfy
    return PushRouter(ntfy, fcm)


REGISTRY: tuple[ChannelSpec[Any], ...] = (
    ChannelSpec("console", "console", ConsoleSettings, ConsoleChannel,
                lambda cfg, deps: ConsoleChannel(deps.logger("channel.console"))),
    ChannelSpec("in-app", "in_app", InAppSettings, InAppChannel,
                lambda cfg, deps: InAppChannel(deps.inbox)),
    ChannelSpec("webhook", "webhook", WebhookSettings, WebhookChannel, _webhook),
    ChannelSpec("teams", "teams", TeamsSettings, TeamsChannel,
                lambda cfg, deps: TeamsChannel.from_settings(cfg, deps.secret, deps.session)),
    ChannelSpec("push", "push", PushSettings, PushChannel,
                lambda cfg, deps: PushChannel.from_settings(cfg, deps.secret, deps.session),
                providers=("fcm",), build_all=_push),
    ChannelSpec("slack", "slack", SlackSettings, SlackChannel, _slack),
    ChannelSpec("telegram", "telegram", TelegramSettings, TelegramChannel,
                lambda cfg, deps: build_telegram(cfg, deps.secret, deps.session,
                                                 deps.logger("channel.telegram"))),
    ChannelSpec("email", "email", EmailSettings, EmailChannel,
                lambda cfg, deps: build_email(cfg, deps.secret, deps.logger("channel.email"))),
    ChannelSpec("apprise", "apprise", AppriseSettings, AppriseChannel,
                lambda cfg, deps: AppriseChannel.from_settings(cfg, deps.secret,
                                                               deps.logger("channel.apprise"))),
    ChannelSpec("sms", "twilio", TwilioSettings, SmsChannel,
                lambda cfg, deps: build_sms(cfg, deps.secret, deps.session, deps.public_url)),
    ChannelSpec("whatsapp", "twilio", TwilioSettings, WhatsAppChannel,
                lambda cfg, deps: build_whatsapp(cfg, deps.secret, deps.session,
                                                 deps.public_url),
                needs="channels.twilio.whatsapp_from"),
)
SPECS: Mapping[str, ChannelSpec[Any]] = {s.name: s for s in REGISTRY}


class ChannelBuildError(Exception):
    """One or more enabled channels cannot be built; ``problems`` names each setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def build_channels(settings: ChannelsSettings, deps: ChannelDeps,
                   table: Sequence[ChannelSpec[Any]] = REGISTRY) -> dict[str, ChannelSender]:
    """Every enabled channel, built. Raises ChannelBuildError listing all that failed."""
    out: dict[str, ChannelSender] = {}
    problems: list[str] = []
    for spec in table:
        if not spec.enabled_in(settings):
            continue
        try:
            built = (spec.build(spec.settings_of(settings), deps)
                     if spec.build_all is None else spec.build_all(settings, deps))
        except ChannelConfigError as exc:
            problem = f"channels.{spec.setting}: {exc}"
            if problem not in problems:  # two channels of one section (twilio) say it once
                problems.append(problem)
            continue
        except ChannelBuildError as exc:
            problems.extend(exc.problems)
            continue
        if built is not None:
            out[spec.name] = built
    if problems:
        raise ChannelBuildError(problems)
    return out


def target_problem(channels: Mapping[str, ChannelSender], channel: str, to: str) -> str | None:
    """Why a rule-file ``notify:`` target cannot be delivered here, or None when it can."""
    spec = SPECS.get(channel)
    if spec is None:
        return (f"channel '{channel}' is not available on this agent (one of: "
                f"{', '.join(s.name for s in REGISTRY)})")
    built = channels.get(channel)
    if built is None:
        sections = " and ".join(f"channels.{s}.enabled" for s in (spec.setting, *spec.providers))
        if spec.needs is not None:
            return (f"channel '{channel}' is not configured ({sections}: false, or "
                    f"{spec.needs} is not set)")
        return f"channel '{channel}' is disabled ({sections}: false)"
    try:
        built.validate_address(to)
    except AddressError as exc:
        return f"channel '{channel}': {exc.message}"
    return None
