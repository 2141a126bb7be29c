"""``create_app(settings)``: wires store, keys, channels, dispatcher, scheduler and the API.

Long-lived resources live in aiohttp ``cleanup_ctx`` generators: started in order, torn down in
reverse (the dispatcher drains before channels close, channels close before the store).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent import api
from agent.api.auth import KeyRing
from agent.api.context import CTX, ApiContext
from agent.api.hookauth import Hooks, hooks_from, insecure_sources
from agent.api.ratelimit import IntervalGate, RateLimiter
from agent.apikeys import SOURCE_FIRST_RUN, KeyRecord, describe, generate_key
from agent.channels.base import ChannelSender
from agent.channels.console import ConsoleChannel
from agent.channels.inapp import InAppChannel
from agent.channels.webhook import WebhookChannel, WebhookConfig
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.retry import RetryPolicy
from agent.domain import now
from agent.grouping.grouper import Grouper
from agent.keysources import CHANGED_FILE, CHECK_INTERVAL_S, DaemonKeys, configured_keys
from agent.observability import Metrics, get_logger
from agent.private_files import create_private_file, private_dir, write_private_file
from agent.routing.loader import RulesError
from agent.routing.ruleset import RuleSet
from agent.services.ingest import Inhibition, Intake
from agent.services.rules import RulesHolder
from agent.settings import ConfigError, Settings, SourcesSettings, read_secret_file, resolve_secret
from agent.store import Store
from agent.store.db import try_lock_data_dir
from agent.store.retention import prune

log = get_logger("app")
WEBHOOK_SECRET_FILE = "webhook-signing-secret"
# Plaintext of the keys made on a first start: 0600, the only copy (the database has hashes).
FIRST_RUN_KEYS_FILE = "first-run-api-keys"


@dataclass
class Runtime:
    """What the process around the app needs to reach: reload hooks, first-run keys."""

    settings: Settings
    metrics: Metrics
    clock: Callable[[], float] = now
    new_keys: list[str] = field(default_factory=list)  # plaintext, for a terminal only
    new_keys_file: Path | None = None
    store: Store | None = None
    dispatcher: Dispatcher | None = None
    grouper: Grouper | None = None
    rules: RulesHolder | None = None
    keyring: KeyRing = field(default_factory=lambda: KeyRing([]))
    key_source: DaemonKeys | None = None
    api: ApiContext | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)


RUNTIME = web.AppKey("runtime", Runtime)


def _first_run_text(keys: list[str], at: float) -> str:
    live, test = keys
    when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"# alert-agent API keys made on the first start ({when}). The database holds only\n"
            "# their hashes: copy them somewhere safe, then delete this file.\n"
            "# sk_live_ delivers; sk_test_ simulates delivery (nothing leaves the host).\n"
            f"live: {live}\ntest: {test}\n")


async def _load_keys(rt: Runtime, store: Store, source: DaemonKeys) -> None:
    source.configured = configured_keys(rt.settings)
    if source.configured is None and await store.keys.count() == 0:
        # First start without configured keys: one of each mode. The plaintext goes to a 0600
        # file in the data dir (never to stdout, which is the journal), written before the
        # hashes are committed so that no stored key is one nobody can read.
        rt.new_keys = [generate_key("live"), generate_key("test")]
        path = rt.settings.data_dir / FIRST_RUN_KEYS_FILE
        write_private_file(path, _first_run_text(rt.new_keys, rt.clock()))
        rt.new_keys_file = path
        at = rt.clock()
        created = [KeyRecord(describe(k), SOURCE_FIRST_RUN, at) for k in rt.new_keys]
        await store.keys.add(created)
        log.info("api_keys_generated", hints=[r.key.hint for r in created], path=str(path))
    await rt.keyring.reload()
    if not len(rt.keyring):
        log.warning("no_active_api_keys",
                    hint="every /v1 request answers 401: alert-agent keys create")


def configured_webhook_secret(settings: Settings) -> str | None:
    cfg = settings.channels.webhook
    return resolve_secret(cfg.signing_secret, cfg.signing_secret_file,
                          "channels.webhook.signing_secret")


def webhook_secret(settings: Settings) -> bytes:
    """The webhook signing secret: configured, from its file, or generated once in the data dir."""
    configured = configured_webhook_secret(settings)
    if configured is not None:
        return configured.encode()
    path = settings.data_dir / WEBHOOK_SECRET_FILE
    if not path.exists():
        private_dir(path.parent)
        write_private_file(path, "whsec_" + secrets.token_urlsafe(32) + "\n")
        log.info("webhook_signing_secret_generated", path=str(path))
    text = read_secret_file(path)
    if not text:
        raise ConfigError(f"{path}: the generated webhook signing secret is empty; delete the "
                          "file to generate a new one")
    return text.encode()


def check_secrets(settings: Settings) -> Hooks:
    """Resolve every configured secret as the daemon would (``alert-agent check``), generating
    nothing. Raises ConfigError naming the setting."""
    configured_keys(settings)
    configured_webhook_secret(settings)
    return hooks_from(settings.sources, settings.host)


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
    fh = try_lock_data_dir(data_dir)
    if fh is None:
        raise ConfigError(f"{data_dir} is in use by another alert-agent process")
    return fh


def _spawn(rt: Runtime, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    rt.background.add(task)  # a reference until done, or the task may be collected
    task.add_done_callback(rt.background.discard)


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
    rt.key_source = key_source = DaemonKeys(store.keys, s.data_dir)
    rt.keyring = KeyRing([], key_source, interval=CHECK_INTERVAL_S)
    channels: dict[str, ChannelSender] = {}  # filled at startup (secrets are read there)
    d = s.delivery
    dispatcher = Dispatcher(
        store.notifications, channels, rt.metrics,
        retry=RetryPolicy(d.max_attempts, d.backoff_base_seconds, d.backoff_max_seconds,
                          d.retry_for),
        max_in_flight=d.max_in_flight, claim_batch=d.claim_batch,
        max_in_flight_per_channel=d.max_in_flight_per_channel,
        max_in_flight_per_destination=d.max_in_flight_per_destination,
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
        reload_gate=IntervalGate(s.api.reload_min_interval_seconds, time.monotonic),
    )
    app[CTX] = ctx
    rt.api = ctx

    def check_sources(rules: RuleSet) -> list[str]:
        return insecure_sources(s.host, ctx.hooks, rules.generic_sources)

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
            create_private_file(s.data_dir / CHANGED_FILE)  # owned by the daemon's user
            await _load_keys(rt, store, key_source)
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


async def reload_keys(app: web.Application) -> int:
    """Re-read configured API keys and the key table (SIGHUP); returns how many are active.

    Raises ConfigError, keeping the keys in use, when the configured ones cannot be read.
    """
    rt = app[RUNTIME]
    configured = configured_keys(rt.settings)
    source = rt.key_source
    if source is None:
        if configured is not None:
            rt.keyring.replace(configured)
        return len(rt.keyring)
    previous, source.configured = source.configured, configured
    try:
        await rt.keyring.reload()
    except BaseException:
        source.configured = previous  # all or nothing: the ring still holds the old keys
        raise
    return len(rt.keyring)


def reload_hook_secrets(app: web.Application) -> None:
    """Re-read the hook sources' secret files (SIGHUP), all or nothing.

    Raises ConfigError, keeping the credentials in use, when one cannot be read or the result
    would leave a source open off loopback.
    """
    rt = app[RUNTIME]
    if rt.api is None or rt.rules is None:
        return
    hooks = hooks_from(rt.settings.sources, rt.settings.host)
    open_sources = insecure_sources(rt.settings.host, hooks, rt.rules.current.generic_sources)
    if open_sources:
        raise ConfigError(f"sources without auth off loopback: {', '.join(open_sources)}")
    rt.api.hooks = hooks
