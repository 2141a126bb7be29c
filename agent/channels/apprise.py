"""The apprise channel: any service an Apprise URL describes (``discord://``, ``mailto://``,
``json://`` ...), through the ``apprise`` library.

``to`` is an alias of ``channels.apprise.urls`` (or of the file ``urls_file``), never a URL: the
URLs carry credentials, so the whole URL is a secret, kept out of rule files, the API, failure
details and logs. Each URL is loaded with Apprise when the channel is built, so one Apprise
cannot parse is a config error naming its alias.

Apprise blocks (``requests`` underneath; its own async helper uses the loop's default
executor): every call runs on the channel's own bounded pool (channels/blocking.py) with
``timeout_seconds``. Apprise answers true or false and nothing else, so there are no provider
receipts and no reasons: true is delivered, false is a retryable ``provider_unavailable``
(a 400 or a refused connection look the same from here), an exception from Apprise is a
technical failure, and a call past the timeout is a retryable ``timeout``.

Apprise logs URLs and request details (debug and info, and some warnings name hosts and
paths), so its logger is silenced, and so is every ``urllib3`` record made on this channel's
worker threads: nothing Apprise does can reach the agent's log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprise import Apprise, AppriseAsset, NotifyFormat, NotifyType
from pydantic import Field, SecretStr

from agent.channels import budget
from agent.channels.aliasfile import named, parse_alias_file
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    ChannelSettings,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    Rate,
    RetryableDeliveryError,
    require_text_address,
)
from agent.channels.blocking import BlockingPool
from agent.domain import FailureReason

ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
WORKER_PREFIX = "apprise"
# Apprise's own per-request socket timeouts (``cto``/``rto``) are capped a little above ours:
# our deadline, not Apprise's, ends a stalled call (a clear ``timeout``), and the worker it
# holds is free again a moment later.
SOCKET_GRACE_SECONDS = 1.0
_NOTIFY_TYPE = {"critical": NotifyType.FAILURE, "warning": NotifyType.WARNING,
                "info": NotifyType.INFO}


class AppriseSettings(ChannelSettings):
    """``channels.apprise``."""

    enabled: bool = False
    # alias -> Apprise URL (a secret: the URL carries the service's credentials)
    urls: dict[str, SecretStr] = {}
    # A YAML or JSON file mapping alias -> URL (mode 0600), beside or instead of ``urls``.
    urls_file: Path | None = None
    # Apprise calls in flight at once (threads of the channel's own pool).
    max_workers: int = Field(default=4, ge=1, le=64)
    # Per call, and again at most this long waiting for a free worker.
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class AppriseFailed(Exception):
    """Apprise itself raised: a technical failure. The message names the exception's type
    only (its text can hold the URL)."""


# (inline value, file, setting) -> the secret or None; raises ChannelConfigError naming the
# setting (the registry's SecretResolver).
Secret = Callable[[SecretStr | None, Path | None, str], str | None]


@dataclass(frozen=True, slots=True)
class Target:
    """One alias as Apprise loaded it."""

    url: str
    body_maxlen: int  # 0: no limit
    title_maxlen: int  # 0: the service has no title (Apprise puts it in the body)
    seconds_between: float  # Apprise's own spacing of requests to the service (0: none)


@dataclass(frozen=True, slots=True)
class Call:
    """One notification for Apprise to send."""

    url: str
    title: str
    body: str
    notify_type: NotifyType


# Runs on a worker thread: Apprise's verdict for one call. Tests swap it.
Notifier = Callable[[Call], bool]


class _NoSecretsLogged(logging.Filter):
    """Drops records made on the channel's worker threads (a library's URL-bearing lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.threadName or not record.threadName.startswith(WORKER_PREFIX)


_FILTER = _NoSecretsLogged()


def quiet_apprise_logging() -> None:
    """Silence Apprise's logger, and urllib3's records from Apprise's worker threads (urllib3
    may serve other code: only ours are dropped). Idempotent."""
    log = logging.getLogger("apprise")
    log.propagate = False
    log.setLevel(logging.CRITICAL + 1)
    names = [n for n in logging.Logger.manager.loggerDict
             if n == "urllib3" or n.startswith("urllib3.")] or ["urllib3"]
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _asset() -> AppriseAsset:
    # In this thread, in order (no async_mode); no deadline of Apprise's own, which would run
    # the call on its shared executor (ours already bounds it); no state written to disk.
    return AppriseAsset(async_mode=False, service_timeout=0, storage_mode="memory",
                        secure_logging=True)


def _load(url: str, timeout: float) -> Any:
    """The Apprise plugin for ``url`` (None when Apprise cannot load it), its socket timeouts
    capped just above ours."""
    plugin = Apprise.instantiate(url, asset=_asset())
    if plugin is None:
        return None
    cap = timeout + SOCKET_GRACE_SECONDS
    for attr in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(plugin, attr, None)
        if isinstance(current, int | float) and current > cap:
            setattr(plugin, attr, cap)
    return plugin


def make_notifier(timeout: float) -> Notifier:
    """The real notifier: a fresh plugin per call (plugins keep per-request state and are not
    made for concurrent use), sent through Apprise.notify."""

    def notify(call: Call) -> bool:
        plugin = _load(call.url, timeout)
        if plugin is None:  # loaded at build: only a plugin that changed its mind
            return False
        apobj = Apprise(asset=_asset())
        apobj.add(plugin)
        return bool(apobj.notify(body=call.body, title=call.title,
                                 notify_type=call.notify_type, body_format=NotifyFormat.TEXT))

    return notify


def resolve_urls(cfg: AppriseSettings, secret: Secret) -> dict[str, tuple[str, str]]:
    """alias -> (URL, the setting it came from), from ``urls`` and ``urls_file`` together.
    Raises ChannelConfigError naming the setting and alias, never a URL."""
    found: dict[str, tuple[str, str]] = {}
    for alias, value in cfg.urls.items():
        url = secret(value, None, f"channels.apprise.urls.{alias}")
        if url is not None:
            found[alias] = (url, "channels.apprise.urls")
    if cfg.urls_file is not None:
        where = "channels.apprise.urls_file"
        text = secret(None, cfg.urls_file, "channels.apprise.urls")
        for alias, url in parse_alias_file(text or "", where, "Apprise URL").items():
            if alias in found:
                raise ChannelConfigError(f"alias {named(alias)} is in both "
                                         "channels.apprise.urls and channels.apprise.urls_file")
            found[alias] = (url, where)
    if not found:
        raise ChannelConfigError("enabled without a URL: set channels.apprise.urls "
                                 "(alias: Apprise URL) or channels.apprise.urls_file")
    for alias, (_, where) in found.items():
        if not ALIAS.fullmatch(alias):
            raise ChannelConfigError(f"{where}: alias {named(alias)} must be 1-64 letters, "
                                     "digits, '_', '.' or '-'")
    return {alias: (url.strip(), where) for alias, (url, where) in found.items()}


def load_targets(urls: dict[str, tuple[str, str]], timeout: float) -> dict[str, Target]:
    """Each URL loaded with Apprise; raises ChannelConfigError naming the alias of one it
    cannot load (never the URL)."""
    quiet_apprise_logging()  # before loading: Apprise logs a URL it cannot load
    targets: dict[str, Target] = {}
    for alias, (url, where) in urls.items():
        plugin = _load(url, timeout)
        if plugin is None:
            raise ChannelConfigError(f"{where}: Apprise cannot load the URL of alias "
                                     f"'{alias}' (unknown scheme, or a part it refuses)")
        targets[alias] = Target(
            url=url,
            body_maxlen=max(int(getattr(plugin, "body_maxlen", 0) or 0), 0),
            title_maxlen=max(int(getattr(plugin, "title_maxlen", 0) or 0), 0),
            seconds_between=max(float(getattr(plugin, "request_rate_per_sec", 0) or 0), 0.0),
        )
    return targets


def _texts(message: Message, target: Target) -> tuple[str, list[str]]:
    """The title and the body parts for ``target``'s size limits (a marker and the link on a
    truncated one; numbered parts when the route says split)."""
    title = message.subject or ""
    body = message.text if message.text.strip() else "(no text)"
    if target.title_maxlen and len(title) > target.title_maxlen:
        title = budget.truncate(title, target.title_maxlen)
    limit: int | None = target.body_maxlen or None
    if limit is not None and title and not target.title_maxlen:
        limit = max(limit - len(title) - 2, 1)  # Apprise puts the title in the body
    return title, budget.fit(body, limit, message.overflow or AppriseChannel.limits.overflow,
                             link=message.link)


def notify_type(message: Message) -> NotifyType:
    """Apprise's notification type: a resolved message is a success, else by severity."""
    if message.status == "resolved":
        return NotifyType.SUCCESS
    return _NOTIFY_TYPE.get(message.severity, NotifyType.INFO)


class AppriseChannel:
    name = "apprise"
    local = False
    # Apprise answers true/false: no message id to edit, delete or reply to.
    limits = Limits(can_edit=False, can_delete=False, can_thread=False, overflow="truncate")

    def __init__(self, targets: dict[str, Target], *, max_workers: int = 4,
                 timeout_seconds: float = 30.0, notifier: Notifier | None = None,
                 logger: Any = None) -> None:
        self._targets = dict(targets)
        self._pool = BlockingPool(max_workers, timeout_seconds, WORKER_PREFIX)
        self._notify = notifier or make_notifier(timeout_seconds)
        self._log = logger

    @classmethod
    def from_settings(cls, cfg: AppriseSettings, secret: Secret,
                      logger: Any = None) -> AppriseChannel:
        """Built from ``channels.apprise``; raises ChannelConfigError naming the setting."""
        targets = load_targets(resolve_urls(cfg, secret), cfg.timeout_seconds)
        return cls(targets, max_workers=cfg.max_workers, timeout_seconds=cfg.timeout_seconds,
                   logger=logger)

    @property
    def pool(self) -> BlockingPool:
        return self._pool

    def validate_address(self, to: str) -> str:
        """An alias of ``channels.apprise.urls``; a URL is refused without being echoed."""
        require_text_address(to, max_chars=2048)
        if ":" in to or "/" in to:
            raise AddressError("For the apprise channel 'to' must be an alias of "
                               "channels.apprise.urls, never a URL.")
        if to not in self._targets:
            known = ", ".join(sorted(self._targets))
            raise AddressError("For the apprise channel 'to' must be an alias of "
                               f"channels.apprise.urls (one of: {known}).")
        return to

    def destination_key(self, to: str) -> str:
        """One destination per alias: one slow service must not hold every slot."""
        return f"apprise:{to}"

    def rates(self, to: str) -> Sequence[Rate]:
        """Apprise's own spacing of requests to the service, where its plugin has one (a
        plugin made per call would not apply it)."""
        target = self._targets.get(to)
        if target is None or target.seconds_between <= 0:
            return ()
        return (Rate(f"apprise:{to}", 1.0 / target.seconds_between, 1.0),)

    async def send(self, message: Message) -> DeliveryResult:
        target = self._targets.get(message.to)
        if target is None:  # queued before the alias left the settings
            raise PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                         f"no apprise alias '{message.to[:64]}'",
                                         scope=ErrorScope.RECIPIENT)
        title, parts = _texts(message, target)
        kind = notify_type(message)
        # In order, one at a time: a failure on a later part retries the whole message.
        for part in parts:
            await self._one(message, Call(target.url, title, part, kind))
        # No provider receipt exists: delivered means Apprise's plugin reported success.
        return DeliveryResult(provider_ref={"alias": message.to, "parts": len(parts)})

    async def _one(self, message: Message, call: Call) -> None:
        try:
            ok = await self._pool.run(lambda: self._notify(call))
        except (RetryableDeliveryError, PermanentDeliveryError):
            raise
        except Exception as exc:
            if self._log is not None:
                self._log.error("apprise_raised", alias=message.to,
                                notification_id=message.notification_id,
                                error=type(exc).__name__)
            # from None: the cause's text (and so the traceback logged for it) can hold the URL.
            raise AppriseFailed(f"Apprise raised {type(exc).__name__}") from None
        if not ok:
            raise RetryableDeliveryError(
                FailureReason.PROVIDER_UNAVAILABLE,
                f"Apprise reported failure for alias '{message.to}' (Apprise gives no reason "
                "and no receipt; its log is not kept, as it can name the URL)")

    async def close(self) -> None:
        self._pool.close()
