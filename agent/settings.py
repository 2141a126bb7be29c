"""Typed settings: embedded defaults < YAML config file < ``ALERT_AGENT_*`` environment.

Every secret can also come from a ``*_file`` setting so systemd ``LoadCredential=`` works.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Each channel's settings model lives beside the channel (agent/channels/registry.py).
from agent.channels.registry import ChannelsSettings
from agent.directory import allow_unlisted_setting
from agent.domain import Channel
from agent.routing.schema import parse_duration


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: pretty on a TTY, JSON lines otherwise (journald, files, pipes).
    format: Literal["auto", "json", "console"] = "auto"
    access_log: bool = False


class RateLimitSettings(_Section):
    enabled: bool = True
    requests_per_minute: int = Field(default=60_000, ge=1)


class ApiSettings(_Section):
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Hook payloads carry many alerts (Alertmanager sends up to its max_alerts per group).
    max_hook_body_bytes: int = Field(default=16_777_216, ge=1024)
    max_batch_size: int = Field(default=1000, ge=1, le=1000)
    # Caps on what one request may carry, so one body cannot hold the event loop for long;
    # each is refused in the error envelope naming the setting.
    max_alerts_per_payload: int = Field(default=10_000, ge=1)
    max_labels_per_alert: int = Field(default=128, ge=1)  # annotations: the same count
    max_label_bytes: int = Field(default=4096, ge=16)  # a label's name or value, UTF-8
    max_annotation_bytes: int = Field(default=16_384, ge=16)  # an annotation's value (free text)
    max_metadata_bytes: int = Field(default=16_384, ge=16)  # metadata as JSON
    # Below what orjson encodes (254) and what the log processors walk, with room for the
    # envelope a response wraps around a stored value.
    max_json_depth: int = Field(default=64, ge=2, le=200)
    schedule_min_ahead_seconds: float = Field(default=60.0, ge=0)
    schedule_max_ahead_seconds: float = Field(default=30 * 86400.0, gt=0)
    idempotency_ttl_seconds: float = Field(default=86400.0, gt=0)
    cursor_ttl_seconds: float = Field(default=86400.0, gt=0)
    rate_limit: RateLimitSettings = RateLimitSettings()
    # POST /-/reload re-reads every rule file: at most one per interval (429 otherwise); 0: off.
    reload_min_interval_seconds: float = Field(default=1.0, ge=0)


class StoreSettings(_Section):
    # NORMAL survives a process crash (kill -9); FULL also survives a power cut, ~5 % slower.
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    busy_timeout_ms: int = Field(default=5000, ge=0)
    # Finished notifications, inbox items and resolved alerts older than this are deleted
    # (hourly). 0 keeps everything.
    retention_days: float = Field(default=30.0, ge=0)


class DeliverySettings(_Section):
    max_in_flight: int = Field(default=128, ge=1)
    # One channel, one destination (a webhook host) cannot take every slot.
    max_in_flight_per_channel: int = Field(default=96, ge=1)
    max_in_flight_per_destination: int = Field(default=64, ge=1)
    claim_batch: int = Field(default=256, ge=1)
    # Attempts that reached an outcome (waits the far side asked for do not count); critical
    # notifications are bound by retry_for only. 15 attempts with a 300 s cap outlast a
    # 10-minute outage even with the shortest jitter (~17 min).
    max_attempts: int = Field(default=15, ge=1)
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    # Seconds after creation when retries and waits end (the notification fails).
    retry_for: float = Field(default=86_400.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    # A delivery whose outcome could not be recorded (store error) is retried after this long.
    claim_lease_seconds: float = Field(default=300.0, gt=0)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    # Connections of the one HTTP client every channel shares, per destination host.
    max_connections_per_host: int = Field(default=100, ge=1)
    # A channel-scoped failure (a refused token) pauses the channel this long, doubling on each
    # failed probe up to the maximum; its rows wait instead of failing.
    channel_pause_seconds: float = Field(default=30.0, gt=0)
    channel_pause_max_seconds: float = Field(default=900.0, gt=0)


class HookAuthSettings(_Section):
    """How a hook source proves itself. Any configured method is accepted.

    Alertmanager's ``http_config`` sends either ``basic_auth`` or ``authorization`` (Bearer):
    configure both here to accept both. Generic senders can sign the body instead.
    """

    # "none" accepts unauthenticated requests even off loopback (explicit opt-out).
    type: Literal["none"] | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    # Lowercase hex HMAC-SHA256 of the raw body (an optional "sha256=" prefix is accepted).
    hmac_secret: SecretStr | None = None
    hmac_secret_file: Path | None = None
    hmac_header: str = "X-Signature"


class SourceSettings(_Section):
    enabled: bool = True
    auth: HookAuthSettings = HookAuthSettings()


# An HTTP header name (RFC 9110 token).
HeaderName = Annotated[str, Field(min_length=1, max_length=128,
                                  pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]


class GrafanaSourceSettings(SourceSettings):
    # Grafana's own webhook signature (the contact point's hmacConfig), verified when set.
    signing_secret: SecretStr | None = None
    signing_secret_file: Path | None = None
    # hmacConfig.header: where Grafana puts the hex HMAC-SHA256.
    signature_header: HeaderName = "X-Grafana-Alerting-Signature"
    # hmacConfig.timestampHeader: when Grafana sends one, it signs "<unix seconds>:<body>".
    timestamp_header: HeaderName = "X-Grafana-Alerting-Timestamp"
    # Refuse signed requests without a timestamp: a body signed alone can be replayed forever.
    require_timestamp: bool = False

    @model_validator(mode="after")
    def _timestamp_needs_a_signature(self) -> GrafanaSourceSettings:
        if self.require_timestamp and self.signing_secret is None \
                and self.signing_secret_file is None:
            raise ValueError("require_timestamp needs signing_secret or signing_secret_file "
                             "(only signed requests carry a timestamp)")
        return self


class SourcesSettings(_Section):
    alertmanager: SourceSettings = SourceSettings()
    grafana: GrafanaSourceSettings = GrafanaSourceSettings()
    # Per generic source name (the mapping itself lives in the rule files).
    generic: dict[str, SourceSettings] = {}


class AckSettings(_Section):
    """``ack:``: acknowledging from links and chat buttons."""

    # How long an acknowledge link or a Slack/Telegram button works after its message was sent
    # ("24h", "90m" or seconds); it stops working earlier when its alert resolves.
    link_ttl: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 86400.0


class RecipientsSettings(_Section):
    """``recipients:``: who may be sent to besides the directory's approved members."""

    # Whether a literal address nobody in the directory owns is accepted: one boolean for every
    # channel, or per channel over the defaults (refused for sms, whatsapp and email, accepted
    # for the channels that reach rooms, topics and endpoints).
    allow_unlisted: bool | dict[Channel, bool] = {}

    @property
    def unlisted_channels(self) -> frozenset[str]:
        value = self.allow_unlisted
        return allow_unlisted_setting(
            value if isinstance(value, bool) else {c.value: ok for c, ok in value.items()})


class Settings(BaseSettings):
    """The daemon's whole configuration. Unknown keys are errors, not silently ignored."""

    model_config = SettingsConfigDict(
        env_prefix="ALERT_AGENT_",  # ENV_PREFIX
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=9095, ge=0, le=65535)
    data_dir: Path = Path("data")
    rules_dir: Path = Path("rules")
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    api_keys_file: Path | None = None
    public_url: str | None = None
    log: LogSettings = LogSettings()
    api: ApiSettings = ApiSettings()
    store: StoreSettings = StoreSettings()
    delivery: DeliverySettings = DeliverySettings()
    channels: ChannelsSettings = ChannelsSettings()
    sources: SourcesSettings = SourcesSettings()
    recipients: RecipientsSettings = RecipientsSettings()
    ack: AckSettings = AckSettings()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment overrides it.
        return env_settings, init_settings

    @property
    def database_path(self) -> Path:
        return self.data_dir / "alert-agent.db"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class ConfigError(Exception):
    """The configuration cannot be loaded; the message names the file and the problem."""


ENV_PREFIX = "ALERT_AGENT_"
# Read by the `alert-agent send` client, not by the daemon.
_CLIENT_ENV = frozenset({"ALERT_AGENT_URL", "ALERT_AGENT_API_KEY"})


def _env_names(model: type[BaseModel], prefix: str, open_prefixes: set[str]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        env = f"{prefix}{name.upper()}"
        names.add(env)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            names |= _env_names(ann, env + "__", open_prefixes)
        elif getattr(ann, "__origin__", None) is dict:
            open_prefixes.add(env + "__")  # keys are user-chosen names
    return names


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """``ALERT_AGENT_*`` variables that configure nothing (typos a unit file would hide)."""
    open_prefixes: set[str] = set()
    known = _env_names(Settings, ENV_PREFIX, open_prefixes) | _CLIENT_ENV
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known
                  and not k.startswith(tuple(open_prefixes)))


def load_settings(config_file: Path | None = None) -> Settings:
    """Build settings from an optional YAML file plus the environment. Raises ConfigError."""
    import os

    from pydantic import ValidationError

    unknown = unknown_env_vars(os.environ)
    if unknown:
        raise ConfigError(f"environment: unknown setting(s) {', '.join(unknown)}")

    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{config_file}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file}: invalid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: top level must be a mapping")
        data = loaded
    try:
        return Settings(**data)
    except ValidationError as exc:
        where = str(config_file) if config_file else "environment"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from exc


def read_secret_file(path: Path) -> str:
    """The stripped contents of a secret file. Raises ConfigError naming the file, not the value."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{path}: cannot read secret file: {reason}") from exc


def resolve_secret(value: SecretStr | str | None, file: Path | None, what: str) -> str | None:
    """The secret set inline (``what``) or in a file (``what``_file), or None when neither is.

    The one rule for every secret, at start-up, on SIGHUP and in ``alert-agent check``: exactly
    one of the pair may be set, and what it holds must not be empty (surrounding whitespace is
    dropped, so whitespace only is empty): an empty password or token would otherwise switch
    off the check it guards. Raises ConfigError naming the setting, never the value.
    """
    if value is not None and file is not None:
        raise ConfigError(f"{what} and {what}_file are both set; set only one of them")
    if value is not None:
        text = (value.get_secret_value() if isinstance(value, SecretStr) else value).strip()
        if not text:
            raise ConfigError(f"{what} is empty")
        return text
    if file is not None:
        try:
            text = read_secret_file(file)
        except ConfigError as exc:
            raise ConfigError(f"{what}_file: {exc}") from exc
        if not text:
            raise ConfigError(f"{what}_file: {file} is empty")
        return text
    return None
