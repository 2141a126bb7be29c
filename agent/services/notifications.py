"""The notification use cases: send one, send a batch, cancel, re-drive dead letters. The API
handlers, the CLI and a chat button call these; they only translate their own input and output.

Input arrives shape-checked (types, lengths) at the caller's edge; the checks here are the ones
that need other fields, other resources or the time. Refusals raise ``services.errors`` classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.apikeys import ApiKey
from agent.channels.base import AddressError, ChannelSender
from agent.channels.simulator import simulated_outcome
from agent.clock import Clock
from agent.directory import Directory, Refused, fan_out, is_reference
from agent.domain import (
    Channel,
    NewNotification,
    Notification,
    Priority,
    Severity,
    Status,
    Template,
    new_id,
)
from agent.observability import Metrics, get_logger
from agent.services.errors import Conflict, Invalid, MissingField, NotFound, ServiceError
from agent.settings import ApiSettings
from agent.store import IdempotencyConflict, Store
from agent.store.idempotency import ReplayExpired
from agent.store.notifications import ListFilter

log = get_logger("notifications")
# A bulk re-drive touches at most this many rows per call (the default, and the most a caller
# may ask for): one write transaction, bounded in time; ``has_more`` says to call again.
REDRIVE_DEFAULT_LIMIT = 1_000
REDRIVE_MAX_LIMIT = 10_000


@dataclass(slots=True)
class SendCommand:
    """One notification to send, as the caller asked for it."""

    channel: Channel
    to: str
    message: str | None = None
    subject: str | None = None
    template_id: str | None = None
    severity: Severity = Severity.INFO
    priority: Priority = Priority.NORMAL
    metadata: dict[str, Any] = field(default_factory=dict)
    schedule_at: datetime | None = None
    idempotency_key: str | None = None
    # A stable hash of the caller's request, to tell a replay of the key from a reuse of it.
    request_hash: str | None = None


@dataclass(slots=True)
class Sent:
    notification: Notification
    replayed: bool  # the idempotency key was honoured: an earlier request's notification


@dataclass(slots=True)
class BatchSent:
    id: str
    created_at: float
    notifications: list[Notification]


@dataclass(slots=True)
class RedriveFilter:
    """Which dead letters to re-drive: the list filters (failed rows only), oldest first."""

    channel: str | None = None
    created_from: float | None = None
    created_to: float | None = None
    failure_reason: str | None = None
    failure_class: str | None = None
    limit: int = REDRIVE_DEFAULT_LIMIT


@dataclass(slots=True)
class Redriven:
    ids: list[str]  # re-driven, oldest first
    has_more: bool  # failed rows matching the filter remain (past the limit)


async def refresh_dead_letters(store: Store, metrics: Metrics) -> None:
    """Set ``alert_agent_dead_letters`` from the store's per-channel count of failed rows."""
    counts = await store.notifications.dead_letter_counts()
    for channel in {*counts, *(c.value for c in Channel)}:
        metrics.dead_letters.labels(channel).set(counts.get(channel, 0))


def _conflict(exc: IdempotencyConflict) -> Conflict:
    return Conflict("idempotency_key_reused",
                    f"Idempotency key '{exc.key}' was already used with a different request "
                    "body.", "idempotency_key")


class NotificationService:
    """Queues notifications on the outbox and cancels queued ones; wakes the dispatcher."""

    def __init__(self, store: Store, settings: ApiSettings, metrics: Metrics,
                 clock: Clock, on_due: Callable[[], None],
                 channels: Mapping[str, ChannelSender],
                 directory: Callable[[], Directory] = Directory) -> None:
        self._store = store
        # The team directory as loaded with the rules now: who `to` may be.
        self._directory = directory
        # The enabled channels (filled at start-up): each checks its own `to` addresses.
        self._channels = channels
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._on_due = on_due

    async def send(self, key: ApiKey, cmd: SendCommand) -> Sent:
        """Queue one notification (or find the one an idempotency key already made)."""
        now = self._clock.now()
        replays = await self._replays(key, [cmd], now)
        rows = self._rows(await self._build(key, cmd, now, {}, replay=bool(replays)))
        try:
            try:
                out = await self._store.notifications.create(rows)
            except ReplayExpired:  # the key expired between our look and the write: a new one
                rows = self._rows(await self._build(key, cmd, now, {}))
                out = await self._store.notifications.create(rows)
        except IdempotencyConflict as exc:
            raise _conflict(exc) from exc
        self._accepted(out.items, out.replayed)
        return Sent(out.notifications[0], out.replayed[0])

    async def send_batch(self, key: ApiKey, cmds: Sequence[SendCommand]) -> BatchSent:
        """Queue all of ``cmds`` or none; a refusal names the offending item (``exc.item``)."""
        now, batch_id = self._clock.now(), new_id("bat")
        templates: dict[str, Template | None] = {}
        replays = await self._replays(key, cmds, now)
        try:
            try:
                items = await self._build_batch(key, cmds, now, templates, batch_id, replays)
                out = await self._store.notifications.create(items)
            except ReplayExpired:  # a key expired between our look and the write: check all
                items = await self._build_batch(key, cmds, now, templates, batch_id, set())
                out = await self._store.notifications.create(items)
        except IdempotencyConflict as exc:
            raise _conflict(exc) from exc
        self._accepted(out.items, out.replayed)
        # The batch lists what was asked for: a team's parent, not its per-member children.
        return BatchSent(batch_id, now, [n for n in out.notifications if n.parent_id is None])

    async def cancel(self, key: ApiKey, nid: str) -> Notification:
        """Cancel a queued notification of the key's mode; returns it cancelled."""
        n, cancelled = await self._store.notifications.cancel(nid, self._clock.now(), key.simulated)
        if n is None:
            raise NotFound("resource_missing", f"No such notification: '{nid}'.", "id")
        if not cancelled:
            # Seed 000: only queued notifications can be cancelled, a cancelled one included.
            if n.status == Status.QUEUED:
                raise Conflict("notification_in_flight",
                               "The notification is being delivered right now; it cannot be "
                               "cancelled.", "id")
            raise Conflict("notification_not_cancellable",
                           f"Only queued notifications can be cancelled; this one is "
                           f"'{n.status}'.", "id")
        self._metrics.notifications.labels(n.channel, "cancelled").inc()
        log.info("notification_cancelled", notification_id=n.id, channel=n.channel)
        return n

    async def retry(self, key: ApiKey, nid: str) -> Notification:
        """Re-drive a failed notification of the key's mode: queued again under the same id
        (the receiver's idempotency key stays), due now, with a new retry budget; its
        attempts so far stay in the history and numbering goes on. Returns it queued."""
        n, redriven = await self._store.notifications.redrive(nid, self._clock.now(),
                                                              key.simulated)
        if n is None:
            raise NotFound("resource_missing", f"No such notification: '{nid}'.", "id")
        if not redriven:
            raise Conflict("notification_not_retryable",
                           f"Only failed notifications can be retried; this one is "
                           f"'{n.status}'.", "id")
        log.info("notification_redriven", notification_id=n.id, channel=n.channel,
                 attempts=n.attempts)
        await self._redriven()
        return n

    async def retry_many(self, key: ApiKey, f: RedriveFilter) -> Redriven:
        """Re-drive up to ``f.limit`` failed notifications of the key's mode that match ``f``,
        oldest first (each as ``retry``)."""
        if not 1 <= f.limit <= REDRIVE_MAX_LIMIT:
            raise Invalid("invalid_value",
                          f"'limit' must be between 1 and {REDRIVE_MAX_LIMIT}.", "limit")
        done, more = await self._store.notifications.redrive_many(ListFilter(
            channel=f.channel, created_from=f.created_from, created_to=f.created_to,
            failure_reason=f.failure_reason, failure_class=f.failure_class, limit=f.limit,
            simulated=key.simulated), self._clock.now())
        if done:
            by_channel: dict[str, int] = {}
            for _, channel in done:
                by_channel[channel] = by_channel.get(channel, 0) + 1
            log.info("notifications_redriven", count=len(done), channels=by_channel,
                     more=more)
            await self._redriven()
        return Redriven([i for i, _ in done], more)

    async def _redriven(self) -> None:
        try:
            await refresh_dead_letters(self._store, self._metrics)
        except Exception as exc:  # the re-drive is committed; the gauge catches up later
            log.warning("dead_letters_gauge_failed", error=str(exc))
        self._on_due()

    async def _build_batch(self, key: ApiKey, cmds: Sequence[SendCommand], now: float,
                           templates: dict[str, Template | None], batch_id: str,
                           replays: set[str]) -> list[NewNotification]:
        items = []
        for i, cmd in enumerate(cmds):
            try:
                item = await self._build(key, cmd, now, templates,
                                         replay=cmd.idempotency_key in replays)
                item.batch_id = batch_id
                items.extend(self._rows(item))
            except ServiceError as exc:
                exc.item = i
                raise
        return items

    async def _build(self, key: ApiKey, cmd: SendCommand, now: float,
                     templates: dict[str, Template | None],
                     replay: bool = False) -> NewNotification:
        """Cross-field and cross-resource checks, then the row to queue.

        A ``replay`` (idempotency key already honoured for this body) skips the checks: its
        original passed them, and time or template changes since must not turn a retry into an
        error.
        """
        if replay:
            row = _row(key, cmd, now, None, None)
            row.replay_only = True
            return row
        if cmd.message is None and cmd.template_id is None:
            raise MissingField("missing_required_field",
                               "The 'message' field is required unless 'template_id' is given.",
                               "message")
        simulator = simulated_outcome(cmd.to) is not None
        if simulator and not key.simulated:
            raise Invalid("simulator_recipient",
                          f"'{cmd.to}' is a simulator address: it reaches nobody, so only "
                          "sk_test_ keys may send to it.", "to")
        channel = self._channels.get(cmd.channel.value)
        if channel is not None and not simulator and not is_reference(cmd.to):
            # A channel not enabled fails later: channel_not_configured.
            try:
                cmd.to = channel.validate_address(cmd.to)
            except AddressError as exc:
                raise Invalid(exc.code, exc.message, "to") from None
        template_body = None
        if cmd.template_id is not None:
            template_body = await self._template_body(cmd, templates)
        return _row(key, cmd, now, template_body, self._schedule(cmd, now))

    def _rows(self, item: NewNotification) -> list[NewNotification]:
        """``item`` as the rows to store: one per recipient of a team or member (with their
        parent), checked against the directory. Raises Invalid (``to``)."""
        if item.replay_only or (item.simulated and simulated_outcome(item.recipient)):
            return [item]
        try:
            # `oncall:team_x` reaches whoever is on call when the send is accepted (also
            # for a scheduled one: its rows are made now).
            rows = fan_out(self._directory(), item, new_id, at=self._clock.now())
        except (Refused, AddressError) as exc:
            raise Invalid(exc.code, exc.message, "to") from None
        channel = self._channels.get(item.channel)
        if channel is None:
            return rows
        for row in rows[1:]:
            try:  # the directory checked the syntax; the channel knows its own rules too
                row.recipient = channel.validate_address(row.recipient)
            except AddressError as exc:
                raise Invalid(exc.code, f"{row.member_id}: {exc.message}", "to") from None
        return rows

    async def _template_body(self, cmd: SendCommand,
                             templates: dict[str, Template | None]) -> str:
        assert cmd.template_id is not None
        if cmd.template_id not in templates:
            templates[cmd.template_id] = await self._store.templates.get(cmd.template_id)
        tpl = templates[cmd.template_id]
        if tpl is None:
            raise Invalid("template_not_found", f"No such template: '{cmd.template_id}'.",
                          "template_id")
        if tpl.channel != cmd.channel:
            raise Invalid("template_channel_mismatch",
                          f"Template '{tpl.name}' is for channel '{tpl.channel}', "
                          f"not '{cmd.channel}'.", "template_id")
        missing = [v for v in tpl.variables if v not in cmd.metadata]
        if missing:
            raise Invalid("missing_template_variables",
                          "metadata lacks template variables: " + ", ".join(missing) + ".",
                          "metadata")
        return tpl.body

    def _schedule(self, cmd: SendCommand, now: float) -> float | None:
        if cmd.schedule_at is None:
            return None
        if cmd.schedule_at.tzinfo is None:
            raise Invalid("invalid_schedule_at",
                          "'schedule_at' needs a timezone (e.g. '2026-04-14T10:30:00Z').",
                          "schedule_at")
        schedule_at = cmd.schedule_at.timestamp()
        lo = self._settings.schedule_min_ahead_seconds
        hi = self._settings.schedule_max_ahead_seconds
        if not lo <= schedule_at - now <= hi:
            raise Invalid("invalid_schedule_at",
                          f"'schedule_at' must be between {lo:g} seconds and {hi / 86400:g} "
                          "days in the future.", "schedule_at")
        return schedule_at

    async def _replays(self, key: ApiKey, cmds: Sequence[SendCommand], now: float) -> set[str]:
        wanted = {c.idempotency_key: c.request_hash or "" for c in cmds if c.idempotency_key}
        if not wanted:
            return set()
        try:
            return await self._store.idempotency.replays(
                key.id, wanted, now - self._settings.idempotency_ttl_seconds)
        except IdempotencyConflict as exc:
            raise _conflict(exc) from exc

    def _accepted(self, rows: list[NewNotification], replayed: list[bool]) -> None:
        now = self._clock.now()
        for it, again in zip(rows, replayed, strict=True):
            if again or it.fanout:  # a parent is not delivered: its children are counted
                continue
            self._metrics.notifications_accepted.labels(it.channel).inc()
            log.info("notification_queued", notification_id=it.id, channel=it.channel,
                     severity=it.severity, scheduled=it.schedule_at is not None,
                     simulated=it.simulated)
        if any(r.due_at <= now for r in rows):
            self._on_due()


def _row(key: ApiKey, cmd: SendCommand, now: float, template_body: str | None,
         schedule_at: float | None) -> NewNotification:
    return NewNotification(
        id=new_id("ntf"), channel=cmd.channel.value, recipient=cmd.to, message=cmd.message,
        subject=cmd.subject, template_id=cmd.template_id, template_body=template_body,
        severity=cmd.severity.value, priority=cmd.priority.value, metadata=cmd.metadata,
        idempotency_key=cmd.idempotency_key,
        request_hash=cmd.request_hash if cmd.idempotency_key else None,
        simulated=key.simulated, api_key_id=key.id, schedule_at=schedule_at,
        due_at=schedule_at if schedule_at is not None else now, created_at=now,
    )
