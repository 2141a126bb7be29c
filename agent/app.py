"""``create_app(settings)``: wires store, keys, channels, dispatcher, scheduler and the API.

Long-lived resources live in aiohttp ``cleanup_ctx`` generators: started in order, torn down in
reverse (the dispatcher drains before channels close, channels close before the store).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent import api
from agent.alerts import Inhibition, Intake
from agent.api.auth import KeyRing
from agent.api.context import CTX, ApiContext
from agent.api.hookauth import hooks_from, insecure_sources
from agent.api.ratelimit import RateLimiter
from agent.apikeys import ApiKey, describe, generate_key
from agent.channels.base import ChannelSender
from agent.channels.console import ConsoleChannel
from agent.channels.inapp import InAppChannel
from agent.channels.webhook import WebhookChannel, WebhookConfig
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.grouper import Grouper
from agent.delivery.retry import RetryPolicy
from agent.domain import now
from agent.observability import Metrics, get_logger
from agent.routing.holder import RulesHolder
from agent.routing.loader import RulesError
from agent.routing.ruleset import RuleSet
from agent.settings import ConfigError, Settings, SourceSettings, SourcesSettings, read_secret_file
from agent.store import Store
from agent.store.retention import prune

log = get_logger("app")
WEBHOOK_SECRET_FILE = "webhook-signing-secret"


@dataclass
class Runtime:
    """What the process around the app needs to reach: reload hooks, first-run keys."""

    settings: Settings
    metrics: Metrics
    clock: Callable[[], float] = now
    new_keys: list[str] = field(default_factory=list)
    store: Store | None = None
    dispatcher: Dispatcher | None = None
    grouper: Grouper | None = None
    rules: RulesHolder | None = None
    keyring: KeyRing = field(default_factory=lambda: KeyRing([]))
    background: set[asyncio.Task[None]] = field(default_factory=set)


RUNTIME = web.AppKey("runtime", Runtime)


def configured_keys(settings: Settings) -> list[ApiKey] | None:
    """Keys from settings (env/config/file), or None when none are configured."""
    plain = [k.get_secret_value() for k in settings.api_keys]
    if settings.api_keys_file is not None:
        text = read_secret_file(settings.api_keys_file)
        plain += [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()]
    if not plain:
        return None
    try:
        return [describe(k) for k in plain]
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


async def _load_keys(rt: Runtime, store: Store) -> list[ApiKey]:
    keys = configured_keys(rt.settings)
    if keys is not None:
        return keys
    stored = await store.keys.active()
    if stored:
        return stored
    # First start without configured keys: make one of each mode, keep only their hashes.
    rt.new_keys = [generate_key("live"), generate_key("test")]
    created = [describe(k) for k in rt.new_keys]
    await store.keys.add(created, rt.clock())
    log.info("api_keys_generated", hints=[k.hint for k in created])
    return created


def webhook_secret(settings: Settings) -> bytes:
    """The webhook signing secret: configured, from its file, or generated once in the data dir."""
    cfg = settings.channels.webhook
    if cfg.signing_secret is not None:
        return cfg.signing_secret.get_secret_value().encode()
    if cfg.signing_secret_file is not None:
        return read_secret_file(cfg.signing_secret_file).encode()
    path = settings.data_dir / WEBHOOK_SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("whsec_" + secrets.token_urlsafe(32) + "\n")
        log.info("webhook_signing_secret_generated", path=str(path))
    return read_secret_file(path).encode()


def build_channels(settings: Settings, store: Store) -> dict[str, ChannelSender]:
    """One explicit registry: channel name -> constructed channel, for the enabled ones."""
    ch = settings.channels
    out: dict[str, ChannelSender] = {}
    if ch.console.enabled:
        out["console"] = ConsoleChannel(get_logger("channel.console"))
    if ch.in_app.enabled:
        out["in-app"] = InAppChannel(store.inbox.add)
    if ch.webhook.enabled:
        out["webhook"] = WebhookChannel(
            WebhookConfig(
                signing_secret=webhook_secret(settings),
                timeout_seconds=ch.webhook.timeout_seconds,
                connect_timeout_seconds=ch.webhook.connect_timeout_seconds,
                max_connections=ch.webhook.max_connections,
            )
        )
    return out


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive lock on the data dir, held while running: a second agent on the same data
    would release this one's claims and deliver its rows twice."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(data_dir / "lock", "a+")  # noqa: SIM115 - held open for the process lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        raise ConfigError(f"{data_dir} is in use by another alert-agent process") from exc
    return fh


def _spawn(rt: Runtime, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    rt.background.add(task)  # a reference until done, or the task may be collected
    task.add_done_callback(rt.background.discard)


def source_settings(s: Settings, rules: RuleSet) -> list[tuple[str, SourceSettings]]:
    """Every hook source and its settings, generic ones from the rules included."""
    out: list[tuple[str, SourceSettings]] = [("alertmanager", s.sources.alertmanager),
                                             ("grafana", s.sources.grafana)]
    for name in sorted(rules.generic_sources):
        out.append((f"generic.{name}", s.sources.generic.get(name, SourceSettings())))
    return out


async def _refresh_outbox_gauges(rt: Runtime) -> None:
    if rt.store is None:
        return
    t = rt.clock()
    active, groups = await rt.store.alerts.active_counts()
    rt.metrics.active_alerts.set(active)
    rt.metrics.alert_groups.set(groups)
    due, scheduled, oldest = await rt.store.notifications.outbox_stats(t)
    rt.metrics.outbox_depth.labels("due").set(due)
    rt.metrics.outbox_depth.labels("scheduled").set(scheduled)
    rt.metrics.outbox_oldest_due_age.set(0.0 if oldest is None else t - oldest)
    db = rt.settings.database_path
    rt.metrics.store_size.set(sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"))
                                  if p.exists()))


async def _apply_retention(rt: Runtime) -> None:
    days = rt.settings.store.retention_days
    if rt.store is None or days <= 0:
        return
    removed = await prune(rt.store.db, rt.clock() - days * 86400)
    for table, n in removed.items():
        if n:
            rt.metrics.rows_pruned.labels(table).inc(n)
    if any(removed.values()):
        log.info("retention_pruned", **removed)


async def _purge_idempotency(rt: Runtime) -> None:
    if rt.store is None:
        return
    removed = await rt.store.idempotency.purge(rt.clock() - rt.settings.api.idempotency_ttl_seconds)
    if removed:
        rt.metrics.idempotency_expired.inc(removed)
        log.info("idempotency_keys_expired", count=removed)


def create_app(settings: Settings, metrics: Metrics | None = None,
               clock: Callable[[], float] = now) -> web.Application:
    """Build the whole daemon as an aiohttp application; nothing touches disk until startup."""
    s = settings
    rt = Runtime(settings=s, metrics=metrics or Metrics(), clock=clock)
    store = Store(s.database_path, rt.metrics, synchronous=s.store.synchronous,
                  busy_timeout_ms=s.store.busy_timeout_ms,
                  idempotency_ttl=s.api.idempotency_ttl_seconds)
    channels: dict[str, ChannelSender] = {}  # filled at startup (secrets are read there)
    d = s.delivery
    dispatcher = Dispatcher(
        store.notifications, channels, rt.metrics,
        retry=RetryPolicy(d.max_attempts, d.backoff_base_seconds, d.backoff_max_seconds),
        max_in_flight=d.max_in_flight, claim_batch=d.claim_batch,
        poll_interval=d.poll_interval_seconds, claim_lease=d.claim_lease_seconds, clock=clock,
    )
    holder = RulesHolder(s.rules_dir, rt.metrics)
    inhibition = Inhibition(store.alerts)
    grouper = Grouper(store.alerts, holder.get, rt.metrics, dispatcher.wake,
                      lambda: inhibition.current,
                      batch=d.claim_batch, poll_interval=d.poll_interval_seconds,
                      claim_lease=d.claim_lease_seconds, clock=clock)
    intake = Intake(store.alerts, holder.get, rt.metrics, clock, grouper.wake, inhibition)
    rt.store, rt.dispatcher, rt.grouper, rt.rules = store, dispatcher, grouper, holder
    app = web.Application(middlewares=list(api.MIDDLEWARES), client_max_size=s.api.max_body_bytes)
    app[RUNTIME] = rt
    ctx = ApiContext(
        store=store, metrics=rt.metrics, settings=s.api, keyring=rt.keyring,
        limiter=RateLimiter(s.api.rate_limit.requests_per_minute, clock)
        if s.api.rate_limit.enabled else None,
        wake_dispatcher=dispatcher.wake,
        dispatcher_running=lambda: dispatcher.running and grouper.running,
        clock=clock,
        intake=intake,
        rules_holder=holder, hooks=hooks_from(SourcesSettings()), wake_grouper=grouper.wake,
    )
    app[CTX] = ctx

    def check_sources(rules: RuleSet) -> list[str]:
        return insecure_sources(s.host, source_settings(s, rules))

    holder.checks.append(lambda rules: [
        f"generic source '{name.removeprefix('generic.')}' has no auth configured while "
        f"listening on {s.host} (set sources.generic.<name>.auth)" for name in
        check_sources(rules)])

    async def resources(app: web.Application) -> AsyncIterator[None]:
        try:
            rules = holder.load_initial()
        except RulesError as exc:
            raise ConfigError(f"rules in {s.rules_dir}: {exc}") from exc
        ctx.hooks = hooks_from(s.sources, s.host)
        open_sources = check_sources(rules)
        if open_sources:
            raise ConfigError(
                f"listening on {s.host} (not loopback) but these sources have no auth: "
                f"{', '.join(open_sources)}; configure sources.<name>.auth or set "
                "auth.type: none explicitly")
        lock = _lock_data_dir(s.data_dir)
        try:
            await store.open()
        except BaseException:
            lock.close()
            raise
        watcher: asyncio.Task[None] | None = None
        try:
            rt.keyring.replace(await _load_keys(rt, store))
            channels.update(build_channels(s, store))
            await dispatcher.start()
            await inhibition.rebuild(rules)
            await intake.load()
            holder.on_swap.append(lambda new: _spawn(rt, inhibition.rebuild(new)))
            await grouper.start()
            watcher = asyncio.create_task(holder.watch(), name="rules-watcher")
            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.add_job(_refresh_outbox_gauges, "interval", seconds=5, args=[rt],
                              id="outbox_gauges", coalesce=True, max_instances=1)
            scheduler.add_job(intake.flush_receipts, "interval", seconds=1,
                              id="receipts_flush", coalesce=True, max_instances=1)
            scheduler.add_job(_apply_retention, "interval", hours=1, args=[rt],
                              id="retention", coalesce=True, max_instances=1)
            scheduler.add_job(_purge_idempotency, "interval", minutes=10, args=[rt],
                              id="idempotency_purge", coalesce=True, max_instances=1)
            scheduler.start()
            await _refresh_outbox_gauges(rt)
            yield
            scheduler.shutdown(wait=False)
            await intake.flush_receipts()
            watcher.cancel()
            await grouper.stop()
            await dispatcher.stop(s.delivery.shutdown_grace_seconds)
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
            for channel in channels.values():
                await channel.close()
            await store.close()
            lock.close()

    app.cleanup_ctx.append(resources)
    api.add_routes(app)
    return app


def reload_keys(app: web.Application) -> int:
    """Re-read configured API keys (SIGHUP); returns how many are active. Raises ConfigError."""
    rt = app[RUNTIME]
    keys = configured_keys(rt.settings)
    if keys is not None:
        rt.keyring.replace(keys)
    return len(rt.keyring)
