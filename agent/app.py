"""``create_app(settings)``: wires store, keys, channels, dispatcher, scheduler and the API.

Long-lived resources live in aiohttp ``cleanup_ctx`` generators: started in order, torn down in
reverse (the dispatcher drains before channels close, channels close before the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from agent import api
from agent.api.auth import KeyRing
from agent.api.context import CTX, ApiContext
from agent.api.hookauth import Hooks, hooks_from, insecure_sources
from agent.api.ratelimit import IntervalGate, RateLimiter
from agent.apikeys import SOURCE_FIRST_RUN, KeyRecord, describe, generate_key
from agent.channels import registry
from agent.channels.base import ChannelConfigError, ChannelSender
from agent.clock import SYSTEM_CLOCK, Clock
from agent.delivery.dispatcher import Dispatcher
from agent.delivery.pause import ChannelPause
from agent.delivery.retry import RetryPolicy
from agent.delivery.threads import replaces_lookup
from agent.directory import still_approved
from agent.grouping.grouper import Grouper
from agent.keysources import CHANGED_FILE, CHECK_INTERVAL_S, DaemonKeys, configured_keys
from agent.observability import Metrics, get_logger
from agent.private_files import create_private_file, private_dir, write_private_file
from agent.routing.loader import RulesError
from agent.routing.ruleset import RuleSet
from agent.services.acklinks import AckLinks
from agent.services.acknowledge import AcknowledgeService
from agent.services.chatacks import ChatAcks
from agent.services.ingest import Inhibition, Intake
from agent.services.notifications import NotificationService, refresh_dead_letters
from agent.services.receipts import POLL_INTERVAL_SECONDS, ReceiptService
from agent.services.rules import RulesHolder
from agent.settings import ConfigError, Settings, SourcesSettings, read_secret_file, resolve_secret
from agent.store import Store
from agent.store.db import try_lock_data_dir
from agent.store.retention import prune

log = get_logger("app")
WEBHOOK_SECRET_FILE = "webhook-signing-secret"
ACK_LINK_SECRET_FILE = "ack-link-secret"  # signs acknowledge links (services/acklinks.py)
# Plaintext of the keys made on a first start: 0600, the only copy (the database has hashes).
FIRST_RUN_KEYS_FILE = "first-run-api-keys"


@dataclass
class Runtime:
    """What the process around the app needs to reach: reload hooks, first-run keys."""

    settings: Settings
    metrics: Metrics
    clock: Clock = SYSTEM_CLOCK
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

    async def run_until_idle(self, max_rounds: int = 100) -> int:
        """Flush the groups and deliver the notifications due now, until neither has any left
        (a flush queues notifications; a delivery may not): for tests and tools driving the
        pipeline by hand, with a FakeClock and ``create_app(..., loops=False)``. Returns how
        many groups and notifications were processed."""
        assert self.grouper is not None and self.dispatcher is not None
        total = 0
        for _ in range(max_rounds):
            n = await self.grouper.run_until_idle()
            n += await self.dispatcher.run_until_idle()
            if not n:
                return total
            total += n
        raise RuntimeError(f"still busy after {max_rounds} rounds of run_until_idle")


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
        write_private_file(path, _first_run_text(rt.new_keys, rt.clock.now()))
        rt.new_keys_file = path
        at = rt.clock.now()
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
    return _generated_secret(settings.data_dir, WEBHOOK_SECRET_FILE).encode()


def _generated_secret(data_dir: Path, name: str) -> str:
    """A secret the agent made itself, kept in the data dir; made on first use."""
    path = data_dir / name
    if not path.exists():
        private_dir(path.parent)
        prefix = "whsec_" if name == WEBHOOK_SECRET_FILE else ""
        write_private_file(path, prefix + secrets.token_urlsafe(32) + "\n")
        log.info("secret_generated", name=name, path=str(path))
    text = read_secret_file(path)
    if not text:
        raise ChannelConfigError(f"{path}: the generated secret is empty; delete the file to "
                                 "generate a new one")
    return text


def _channel_secret(value: Any, file: Path | None, what: str) -> str | None:
    try:
        return resolve_secret(value, file, what)
    except ConfigError as exc:
        raise ChannelConfigError(str(exc)) from exc


def _channel_deps(settings: Settings, store: Store | None = None,
                  session: Callable[[], aiohttp.ClientSession] | None = None
                  ) -> registry.ChannelDeps:
    if store is None:  # checking only: resolve every secret, make and write nothing
        return registry.ChannelDeps(secret=_channel_secret,
                                    generated_secret=lambda name: "(generated)",
                                    logger=get_logger, listen=(settings.host, settings.port),
                                    public_url=settings.base_url)
    assert session is not None
    return registry.ChannelDeps(
        secret=_channel_secret,
        generated_secret=lambda name: _generated_secret(settings.data_dir, name),
        logger=get_logger, session=session, inbox=store.inbox.add,
        listen=(settings.host, settings.port),
        private_session=lambda resolver: http_session(settings, resolver),
        public_url=settings.base_url)


def check_channels(settings: Settings) -> dict[str, ChannelSender]:
    """Every enabled channel built for checking (addresses, secrets), touching nothing.
    Raises ConfigError naming every channel setting that is wrong, all at once."""
    try:
        return registry.build_channels(settings.channels, _channel_deps(settings))
    except registry.ChannelBuildError as exc:
        raise ConfigError("; ".join(exc.problems)) from exc


def check_secrets(settings: Settings) -> Hooks:
    """Resolve every configured secret as the daemon would (``alert-agent check``), generating
    nothing. Raises ConfigError naming the setting."""
    configured_keys(settings)
    check_channels(settings)
    return hooks_from(settings.sources, settings.host)


def build_channels(settings: Settings, store: Store,
                   session: Callable[[], aiohttp.ClientSession]) -> dict[str, ChannelSender]:
    """The enabled channels of the registry (agent/channels/registry.py), built on the shared
    HTTP session. Raises ConfigError naming every channel that cannot be built."""
    try:
        return registry.build_channels(settings.channels, _channel_deps(settings, store, session))
    except registry.ChannelBuildError as exc:
        raise ConfigError("; ".join(exc.problems)) from exc


def http_session(settings: Settings,
                 resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The one HTTP client of every channel: per-host connection limits, so one slow host
    cannot take the connections the others need. Timeouts are per channel, per request.
    With ``resolver``: a channel's private client alike (webhook: its network policy)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0, limit_per_host=settings.delivery.max_connections_per_host,
            resolver=resolver),
        headers={"User-Agent": "alert-agent"},
    )


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """An exclusive lock on the data dir, held while running: a second agent on the same data
    would release this one's claims and deliver its rows twice."""
    fh = try_lock_data_dir(data_dir)
    if fh is None:
        raise ConfigError(f"{data_dir} is in use by another alert-agent process")
    return fh


Resource = Callable[[web.Application], AsyncIterator[None]]


def _logged_teardown(step: Resource) -> Resource:
    """``step`` as a cleanup_ctx entry whose failing teardown is logged with the step's name
    (aiohttp goes on with the other teardowns and raises them all at the end)."""
    name = step.__name__

    async def entry(app: web.Application) -> AsyncIterator[None]:
        it = step(app)
        await anext(it)
        yield
        try:
            await anext(it, None)
        except Exception as exc:
            log.error("teardown_failed", step=name, error=str(exc),
                      error_type=type(exc).__name__)
            raise

    entry.__name__ = name
    return entry


def _spawn(rt: Runtime, coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    rt.background.add(task)  # a reference until done, or the task may be collected
    task.add_done_callback(rt.background.discard)


async def _refresh_outbox_gauges(rt: Runtime) -> None:
    if rt.store is None:
        return
    t = rt.clock.now()
    active, groups = await rt.store.alerts.active_counts()
    rt.metrics.active_alerts.set(active)
    rt.metrics.alert_groups.set(groups)
    due, scheduled, oldest = await rt.store.notifications.outbox_stats(t)
    rt.metrics.outbox_depth.labels("due").set(due)
    rt.metrics.outbox_depth.labels("scheduled").set(scheduled)
    rt.metrics.outbox_oldest_due_age.set(0.0 if oldest is None else t - oldest)
    # Here too (not only on a re-drive or retention): rows fail in the dispatcher.
    await refresh_dead_letters(rt.store, rt.metrics)
    db = rt.settings.database_path
    rt.metrics.store_size.set(sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"))
                                  if p.exists()))


async def _apply_retention(rt: Runtime) -> None:
    days = rt.settings.store.retention_days
    if rt.store is None or days <= 0:
        return
    removed = await prune(rt.store.db, rt.clock.now() - days * 86400)
    for table, n in removed.items():
        if n:
            rt.metrics.rows_pruned.labels(table).inc(n)
    if any(removed.values()):
        log.info("retention_pruned", **removed)
    if removed["notifications"]:
        await refresh_dead_letters(rt.store, rt.metrics)


async def _purge_idempotency(rt: Runtime) -> None:
    if rt.store is None:
        return
    ttl = rt.settings.api.idempotency_ttl_seconds
    removed = await rt.store.idempotency.purge(rt.clock.now() - ttl)
    if removed:
        rt.metrics.idempotency_expired.inc(removed)
        log.info("idempotency_keys_expired", count=removed)


@dataclass
class _Parts:
    """The long-lived resources, each with one start-and-stop step for aiohttp's cleanup_ctx.

    The steps run in start order; aiohttp tears them down in reverse and runs every teardown
    even when one raises, so a failing step cannot leave the dispatcher or the grouper running
    on a closed store.
    """

    rt: Runtime
    store: Store
    channels: dict[str, ChannelSender]
    dispatcher: Dispatcher
    grouper: Grouper
    holder: RulesHolder
    inhibition: Inhibition
    intake: Intake
    key_source: DaemonKeys
    ctx: ApiContext
    check_sources: Callable[[RuleSet], list[str]]
    loops: bool
    # The enabled channels built for checking rule-file targets (filled before the rules load).
    rule_targets: dict[str, ChannelSender]

    @property
    def s(self) -> Settings:
        return self.rt.settings

    def steps(self) -> list[Resource]:
        return [self.rules_and_sources, self.data_dir_lock, self.open_store, self.keys,
                self.open_channels, self.chat_buttons, self.run_dispatcher, self.load_intake,
                self.run_grouper, self.watch_rules, self.housekeeping]

    async def rules_and_sources(self, app: web.Application) -> AsyncIterator[None]:
        self.rule_targets.update(check_channels(self.s))  # every channel's config error, at once
        try:
            rules = self.holder.load_initial()
        except RulesError as exc:
            raise ConfigError(f"rules in {self.s.rules_dir}: {exc}") from exc
        self.ctx.hooks = hooks_from(self.s.sources, self.s.host)
        open_sources = self.check_sources(rules)
        if open_sources:
            raise ConfigError(
                f"listening on {self.s.host} (not loopback) but these sources have no auth: "
                f"{', '.join(open_sources)}; configure sources.<name>.auth or set "
                "auth.type: none explicitly")
        yield

    async def data_dir_lock(self, app: web.Application) -> AsyncIterator[None]:
        lock = _lock_data_dir(self.s.data_dir)
        yield
        lock.close()

    async def open_store(self, app: web.Application) -> AsyncIterator[None]:
        await self.store.open()
        yield
        await self.store.close()

    async def keys(self, app: web.Application) -> AsyncIterator[None]:
        create_private_file(self.s.data_dir / CHANGED_FILE)  # owned by the daemon's user
        await _load_keys(self.rt, self.store, self.key_source)
        yield

    async def open_channels(self, app: web.Application) -> AsyncIterator[None]:
        session = shared = http_session(self.s)
        try:
            self.channels.update(build_channels(self.s, self.store, lambda: shared))
        except BaseException:
            await session.close()
            raise
        if self.s.public_url is None and {"sms", "whatsapp"} & set(self.channels):
            # Twilio posts its status callbacks to the listen address then: rarely reachable.
            log.warning("twilio_callbacks_to_listen_address", url=self.s.base_url,
                        hint="set public_url to where Twilio can reach this agent; until a "
                        "status callback arrives, sms and whatsapp notifications stay sent")
        yield
        try:
            await self._close_channels()
        finally:
            await session.close()

    async def _close_channels(self) -> None:
        failed = []
        for name, channel in self.channels.items():  # each one closes, whatever the others do
            try:
                await channel.close()
            except Exception as exc:
                log.error("channel_close_failed", channel=name, error=str(exc))
                failed.append(name)
        if failed:
            raise RuntimeError(f"channels failed to close: {', '.join(failed)}")

    async def chat_buttons(self, app: web.Application) -> AsyncIterator[None]:
        """Acknowledge buttons: the Telegram webhook registered; replies in flight finished
        before the channels close."""
        chat_acks = self.ctx.chat_acks
        if chat_acks is not None:
            chat_acks.start()
        yield
        if chat_acks is not None:
            await chat_acks.drain()

    async def run_dispatcher(self, app: web.Application) -> AsyncIterator[None]:
        if self.loops:
            await self.dispatcher.start()
        else:  # what start() would release, without the loop
            await self.store.notifications.release_claims()
        yield
        await self.dispatcher.stop(self.s.delivery.shutdown_grace_seconds)

    async def load_intake(self, app: web.Application) -> AsyncIterator[None]:
        await self.inhibition.rebuild(self.holder.current)
        await self.intake.load()
        self.holder.on_swap.append(lambda new: _spawn(self.rt, self.inhibition.rebuild(new)))
        yield
        await self.intake.flush_receipts()  # the repeats counted since the last periodic write

    async def run_grouper(self, app: web.Application) -> AsyncIterator[None]:
        if self.loops:
            await self.grouper.start()
        else:
            await self.store.alerts.release_group_claims()
        yield
        await self.grouper.stop()

    async def watch_rules(self, app: web.Application) -> AsyncIterator[None]:
        watcher = asyncio.create_task(self.holder.watch(), name="rules-watcher")
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    async def housekeeping(self, app: web.Application) -> AsyncIterator[None]:
        scheduler = AsyncIOScheduler(timezone="UTC")
        scheduler.add_job(_refresh_outbox_gauges, "interval", seconds=5, args=[self.rt],
                          id="outbox_gauges", coalesce=True, max_instances=1)
        scheduler.add_job(self.intake.flush_receipts, "interval", seconds=1,
                          id="receipts_flush", coalesce=True, max_instances=1)
        scheduler.add_job(_apply_retention, "interval", hours=1, args=[self.rt],
                          id="retention", coalesce=True, max_instances=1)
        scheduler.add_job(_purge_idempotency, "interval", minutes=10, args=[self.rt],
                          id="idempotency_purge", coalesce=True, max_instances=1)
        if self.ctx.receipts is not None:
            scheduler.add_job(self.ctx.receipts.poll, "interval",
                              seconds=POLL_INTERVAL_SECONDS, id="receipt_poll", coalesce=True,
                              max_instances=1)
        scheduler.start()
        await self.store.notifications.recount_dead_letters()
        await _refresh_outbox_gauges(self.rt)
        yield
        scheduler.shutdown(wait=False)


def create_app(settings: Settings, metrics: Metrics | None = None, clock: Clock | None = None,
               *, loops: bool = True) -> web.Application:
    """Build the whole daemon as an aiohttp application; nothing touches disk until startup.

    ``clock`` is the one clock every part reads. ``loops=False`` (tests) starts no grouper or
    dispatcher loop: nothing is flushed or delivered until ``Runtime.run_until_idle()``.
    """
    s = settings
    clock = clock or SYSTEM_CLOCK
    rt = Runtime(settings=s, metrics=metrics or Metrics(), clock=clock)
    store = Store(s.database_path, rt.metrics, synchronous=s.store.synchronous,
                  busy_timeout_ms=s.store.busy_timeout_ms,
                  idempotency_ttl=s.api.idempotency_ttl_seconds)
    rt.key_source = key_source = DaemonKeys(store.keys, s.data_dir)
    rt.keyring = KeyRing([], key_source, interval=CHECK_INTERVAL_S, clock=clock.monotonic)
    channels: dict[str, ChannelSender] = {}  # filled at startup (secrets are read there)
    d = s.delivery
    ack_links = AckLinks(lambda: _generated_secret(s.data_dir, ACK_LINK_SECRET_FILE).encode(),
                         s.base_url, s.ack.link_ttl, clock)
    dispatcher = Dispatcher(
        store.notifications, channels, rt.metrics,
        retry=RetryPolicy(d.max_attempts, d.backoff_base_seconds, d.backoff_max_seconds,
                          d.retry_for),
        max_in_flight=d.max_in_flight, claim_batch=d.claim_batch,
        max_in_flight_per_channel=d.max_in_flight_per_channel,
        max_in_flight_per_destination=d.max_in_flight_per_destination,
        poll_interval=d.poll_interval_seconds, claim_lease=d.claim_lease_seconds, clock=clock,
        pause=ChannelPause(rt.metrics, d.channel_pause_seconds, d.channel_pause_max_seconds),
        replaces=replaces_lookup(store.deliveries), link_base=s.base_url,
        ack_link=ack_links.link_for,
        recipient_problem=lambda n: still_approved(holder.get().directory, n.channel,
                                                   n.recipient, n.member_id),
    )
    # Rule-file targets are checked against the enabled channels (built for checking at start).
    rule_targets: dict[str, ChannelSender] = {}
    holder = RulesHolder(s.rules_dir, rt.metrics, clock=clock, check_target=lambda channel, to:
                         registry.target_problem(rule_targets, channel, to),
                         allow_unlisted=s.recipients.unlisted_channels)
    inhibition = Inhibition(store.alerts)
    grouper = Grouper(store.alerts, holder.get, rt.metrics, dispatcher.wake,
                      lambda: inhibition.current,
                      batch=d.claim_batch, poll_interval=d.poll_interval_seconds,
                      claim_lease=d.claim_lease_seconds, clock=clock,
                      escalations=store.escalations)
    intake = Intake(store.alerts, holder.get, rt.metrics, clock.now, grouper.wake, inhibition)
    rt.store, rt.dispatcher, rt.grouper, rt.rules = store, dispatcher, grouper, holder
    app = web.Application(middlewares=list(api.MIDDLEWARES), client_max_size=s.api.max_body_bytes)
    app[RUNTIME] = rt
    ctx = ApiContext(
        store=store, metrics=rt.metrics, settings=s.api, keyring=rt.keyring,
        limiter=RateLimiter(s.api.rate_limit.requests_per_minute, clock.now)
        if s.api.rate_limit.enabled else None,
        dispatcher_running=lambda: dispatcher.running and grouper.running,
        clock=clock,
        intake=intake,
        notifications=NotificationService(store, s.api, rt.metrics, clock, dispatcher.wake,
                                          channels, lambda: holder.get().directory),
        ack_links=ack_links,
        acks=AcknowledgeService(store, rt.metrics, clock, lambda: holder.get().directory,
                                channels, dispatcher.wake, button_ttl=s.ack.link_ttl),
        rules_holder=holder, hooks=hooks_from(SourcesSettings()),
        reload_gate=IntervalGate(s.api.reload_min_interval_seconds, clock.monotonic),
        channels=channels,
        receipts=ReceiptService(store, rt.metrics, clock, channels, s.base_url,
                                poll_after=s.channels.twilio.status_poll_after_seconds),
    )
    ctx.chat_acks = ChatAcks(channels, ctx.acks, rt.metrics, clock, s.public_url)
    app[CTX] = ctx
    rt.api = ctx

    def check_sources(rules: RuleSet) -> list[str]:
        return insecure_sources(s.host, ctx.hooks, rules.generic_sources)

    holder.checks.append(lambda rules: [
        f"generic source '{name.removeprefix('generic.')}' has no auth configured while "
        f"listening on {s.host} (set sources.generic.<name>.auth)" for name in
        check_sources(rules)])

    parts = _Parts(rt, store, channels, dispatcher, grouper, holder, inhibition, intake,
                   key_source, ctx, check_sources, loops, rule_targets)
    for step in parts.steps():
        app.cleanup_ctx.append(_logged_teardown(step))
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
