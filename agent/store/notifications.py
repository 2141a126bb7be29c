"""Notifications and the outbox (queued rows): create, read, list, cancel, claim, complete."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.domain import FailureReason, NewNotification, Notification, Priority, Status
from agent.store import deadletters, deliveries, fanout, pages
from agent.store.db import Database
from agent.store.deliveries import Attempt, DeliveryStore
from agent.store.idempotency import (
    IdempotencyConflict,
    ReplayExpired,
    check_key,
    remember_key,
)

COLUMNS = (
    "seq, id, status, channel, recipient, message, subject, template_id, template_body, severity, "
    "priority, metadata, idempotency_key, simulated, attempts, schedule_at, due_at, created_at, "
    "sent_at, delivered_at, read_at, failed_at, cancelled_at, acknowledged_at, acknowledged_by, "
    "failure_reason, failure_details, batch_id, deferrals, failure_class, redriven_at, "
    "redrive_attempts, parent_id, member_id, fanout"
)
_INSERT = (
    "INSERT INTO notifications (id, status, channel, recipient, message, subject, template_id, "
    "template_body, severity, priority, metadata, idempotency_key, simulated, api_key_id, "
    "schedule_at, due_at, created_at, batch_id, parent_id, member_id, fanout) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def notification_row(r: sqlite3.Row) -> Notification:
    """A notification from a row selected with ``COLUMNS``."""
    d = dict(r)
    d["metadata"] = orjson.loads(d["metadata"])
    d["simulated"] = bool(d["simulated"])
    return Notification(**d)


@dataclass(slots=True)
class ListFilter:
    channel: str | None = None
    status: str | None = None
    created_from: float | None = None
    created_to: float | None = None
    before_seq: int | None = None
    limit: int = 25
    simulated: bool | None = None  # the key's mode: test keys list simulated rows only
    failure_reason: str | None = None
    failure_class: str | None = None
    parent_id: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition (``""`` for none) and its arguments; ``limit`` is not in it."""
        clauses: list[str] = []
        args: list[Any] = []
        for clause, value in (
            ("channel = ?", self.channel),
            ("status = ?", self.status),
            ("created_at >= ?", self.created_from),
            ("created_at <= ?", self.created_to),
            ("seq < ?", self.before_seq),
            ("simulated = ?", None if self.simulated is None else int(self.simulated)),
            ("failure_reason = ?", self.failure_reason),
            ("failure_class = ?", self.failure_class),
            ("parent_id = ?", self.parent_id),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        return " AND ".join(clauses), args


@dataclass(slots=True)
class CreateOutcome:
    """Per item: the stored notification, and whether it was an idempotent replay."""

    notifications: list[Notification]
    replayed: list[bool]
    # The items each entry stands for: the children of a replayed team send are not inserted
    # again (their parent's original children stand), so they have no entry.
    items: list[NewNotification] = field(default_factory=list)


@dataclass(slots=True)
class Delivered:
    """The channel delivered, or (``receipt_id`` set) handed the message to a provider that
    reports the outcome later: the row is then ``sent``, found again by ``receipt_id``."""

    id: str
    sent_at: float
    delivered_at: float
    message: str | None
    attempt: Attempt | None = None  # the row for the deliveries table, written with the outcome
    receipt_id: str | None = None
    # When to look the message up at its provider if no receipt came (store/receipts.py).
    receipt_check_at: float | None = None
    parent_id: str | None = field(default=None, kw_only=True)  # its parent is settled with it


@dataclass(slots=True)
class Failed:
    id: str
    failed_at: float
    reason: str
    details: str | None
    attempt: Attempt | None = None
    # A NotificationFailureClass; no default, so every place that fails a row decides it.
    failure_class: str = field(kw_only=True)
    parent_id: str | None = field(default=None, kw_only=True)


@dataclass(slots=True)
class Retry:
    id: str
    due_at: float
    reason: str
    details: str | None
    attempt: Attempt | None = None


@dataclass(slots=True)
class Deferred:
    """Waiting is not failing: due again at ``due_at``, and no attempt is spent (the far side
    asked to wait: a rate limit, ``Retry-After``; or the channel is paused, so nothing was
    tried, or it refused the channel's credentials, which says nothing about this
    notification). ``deferrals`` counts only those with an ``attempt`` (something was tried)."""

    id: str
    due_at: float
    reason: str
    details: str | None
    attempt: Attempt | None = None


Outcome = Delivered | Failed | Retry | Deferred


class NotificationStore:
    """Storage of notifications; queued rows with a ``due_at`` form the delivery outbox."""

    def __init__(self, db: Database, idempotency_ttl: float) -> None:
        self._db = db
        self._ttl = idempotency_ttl
        self.deliveries = DeliveryStore(db)

    async def create(self, items: Sequence[NewNotification]) -> CreateOutcome:
        """Queue all items in one transaction, honouring idempotency keys.

        Raises IdempotencyConflict (nothing is written) when a key was used for another body.
        """
        ttl = self._ttl

        def op(conn: sqlite3.Connection) -> CreateOutcome:
            out = CreateOutcome([], [])
            replayed_parents: set[str] = set()
            for it in items:
                if it.parent_id is not None and it.parent_id in replayed_parents:
                    continue
                if it.idempotency_key and it.api_key_id is not None and it.request_hash:
                    original = check_key(conn, it.api_key_id, it.idempotency_key,
                                         it.request_hash, it.created_at - ttl)
                    if original is not None:
                        row = conn.execute(
                            f"SELECT {COLUMNS} FROM notifications WHERE id = ?", (original,)
                        ).fetchone()
                        if row is not None:
                            out.notifications.append(notification_row(row))
                            out.replayed.append(True)
                            out.items.append(it)
                            replayed_parents.add(it.id)
                            continue
                if it.replay_only:
                    raise ReplayExpired(it.idempotency_key or "")
                seq = insert_notification(conn, it)
                if it.idempotency_key and it.api_key_id is not None and it.request_hash:
                    remember_key(conn, it.api_key_id, it.idempotency_key, it.request_hash, it.id,
                                 it.created_at)
                if it.template_id is not None:
                    conn.execute(
                        "UPDATE templates SET usage_count = usage_count + 1, last_used_at = ? "
                        "WHERE id = ?",
                        (it.created_at, it.template_id),
                    )
                out.notifications.append(_fresh(it, seq))
                out.replayed.append(False)
                out.items.append(it)
            return out

        return await self._db.write(op)

    async def get(self, notification_id: str,
                  simulated: bool | None = None) -> Notification | None:
        """The notification; None when unknown or (``simulated`` given) of the other mode."""

        def op(conn: sqlite3.Connection) -> Notification | None:
            r = conn.execute(
                f"SELECT {COLUMNS} FROM notifications WHERE id = ?", (notification_id,)
            ).fetchone()
            if r is None or (simulated is not None and bool(r["simulated"]) != simulated):
                return None
            return notification_row(r)

        return await self._db.read(op)

    async def page(self, f: ListFilter) -> tuple[list[Notification], bool]:
        """Newest first; returns up to ``f.limit`` rows and whether more exist."""
        where, args = f.where()
        sql = f"SELECT {COLUMNS} FROM notifications"
        if where:
            sql += " WHERE " + where
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(f.limit + 1)

        def op(conn: sqlite3.Connection) -> list[Notification]:
            return [notification_row(r) for r in conn.execute(sql, args)]

        rows = await self._db.read(op)
        return rows[: f.limit], len(rows) > f.limit

    async def cancel(self, notification_id: str, now: float,
                     simulated: bool) -> tuple[Notification | None, bool]:
        """Cancel a queued, unclaimed notification of this mode. Returns (row, cancelled_now);
        the row is None when unknown or of the other mode."""

        def op(conn: sqlite3.Connection) -> tuple[Notification | None, bool]:
            cur = conn.execute(
                "UPDATE notifications SET status = ?, cancelled_at = ? "
                "WHERE id = ? AND status = ? AND claimed_at IS NULL AND simulated = ? "
                "RETURNING fanout, parent_id",
                (Status.CANCELLED, now, notification_id, Status.QUEUED, int(simulated)),
            )
            done = cur.fetchone()
            if done is not None and done["fanout"]:
                # A team send: its children not yet out go with it; those in flight finish.
                conn.execute(
                    "UPDATE notifications SET status = ?, cancelled_at = ? "
                    "WHERE parent_id = ? AND status = ? AND claimed_at IS NULL",
                    (Status.CANCELLED, now, notification_id, Status.QUEUED))
                fanout.settle(conn, [notification_id], now)
            elif done is not None and done["parent_id"]:
                fanout.settle(conn, [done["parent_id"]], now)
            r = conn.execute(
                f"SELECT {COLUMNS} FROM notifications WHERE id = ? AND simulated = ?",
                (notification_id, int(simulated)),
            ).fetchone()
            return (notification_row(r) if r else None), done is not None

        return await self._db.write(op)

    # --- dead letters: failed rows, re-driven onto the outbox -----------------------------

    async def redrive(self, notification_id: str, now: float,
                      simulated: bool) -> tuple[Notification | None, bool]:
        """Queue a failed notification of this mode again, due ``now``, with a new retry
        budget (deadline and attempts count from now; attempt numbers go on). Returns
        (row, re-driven now); the row is None when unknown or of the other mode."""

        def op(conn: sqlite3.Connection) -> tuple[Notification | None, bool]:
            children = [r["channel"] for r in conn.execute(
                f"{_REDRIVE} WHERE parent_id = (SELECT id FROM notifications WHERE id = ? "
                "AND fanout > 0 AND status = 'failed' AND simulated = ?) AND status = 'failed' "
                "RETURNING channel", (now, now, notification_id, int(simulated)))]
            if children:  # a team send: its failed children go again, it sums them up
                deadletters.left(conn, children)
                fanout.settle(conn, [notification_id], now)
            done = conn.execute(
                f"{_REDRIVE} WHERE id = ? AND status = 'failed' AND simulated = ? "
                f"AND fanout = 0 RETURNING {COLUMNS}",
                (now, now, notification_id, int(simulated))).fetchone()
            if done is not None:
                deadletters.left(conn, [done["channel"]])
                if done["parent_id"]:
                    fanout.settle(conn, [done["parent_id"]], now)
                return notification_row(done), True
            r = conn.execute(
                f"SELECT {COLUMNS} FROM notifications WHERE id = ? AND simulated = ?",
                (notification_id, int(simulated))).fetchone()
            return (notification_row(r) if r else None), bool(children)

        return await self._db.write(op)

    async def redrive_many(self, f: ListFilter, now: float) -> tuple[list[tuple[str, str]], bool]:
        """Re-drive (as ``redrive``) up to ``f.limit`` failed rows matching ``f``, oldest
        first. Returns their (id, channel) and whether more failed rows match."""
        where, args = f.where()
        # Parents are not dead letters: their failed children are re-driven, and settle them.
        cond = "status = 'failed' AND fanout = 0" + (f" AND {where}" if where else "")

        def op(conn: sqlite3.Connection) -> tuple[list[tuple[str, str]], bool]:
            done: list[tuple[str, str, str | None]] = [(r[0], r[1], r[2]) for r in conn.execute(
                f"{_REDRIVE} WHERE seq IN (SELECT seq FROM notifications WHERE {cond} "
                "ORDER BY seq LIMIT ?) RETURNING id, channel, parent_id",
                (now, now, *args, f.limit))]
            deadletters.left(conn, (channel for _, channel, _ in done))
            fanout.settle(conn, (p for _, _, p in done if p), now)
            more = conn.execute(f"SELECT EXISTS (SELECT 1 FROM notifications WHERE {cond})",
                                args).fetchone()[0]
            return [(i, c) for i, c, _ in done], bool(more)

        return await self._db.write(op)

    async def recount_dead_letters(self) -> dict[str, int]:
        """Count failed rows again, by channel, and keep the counts (at start)."""
        return await self._db.write(deadletters.recount)

    async def dead_letter_counts(self) -> dict[str, int]:
        """Failed notifications still stored, by channel (a few rows: see deadletters.py)."""

        return await self._db.read(deadletters.counts)

    # --- the outbox, for the dispatcher ----------------------------------------------------

    async def release_claims(self) -> int:
        """Forget claims of a previous process (it is gone); their rows are due again."""

        def op(conn: sqlite3.Connection) -> int:
            # Each released claim ended without an outcome: it counts towards the limit that
            # keeps a row that crashes the process from being claimed forever.
            return conn.execute(
                "UPDATE notifications SET claimed_at = NULL, abandoned = abandoned + 1 "
                "WHERE status = ? AND claimed_at IS NOT NULL",
                (Status.QUEUED,),
            ).rowcount

        return await self._db.write(op)

    async def claim_due(
        self, now: float, limit: int, lease: float = 300.0, max_attempts: int = 1_000_000
    ) -> list[Notification]:
        """Atomically claim up to ``limit`` due rows and return them: priority ``high`` before
        ``normal`` before ``low``, oldest due first within a priority.

        A claim older than ``lease`` seconds is abandoned (its outcome could not be recorded)
        and the row is claimed again. Abandoned claims are counted, so a row that kills the
        process while being delivered (a runaway template) fails after ``max_attempts`` claims
        without an outcome instead of looping forever; attempts themselves are counted when
        their outcome is recorded.
        """

        def op(conn: sqlite3.Connection) -> list[Notification]:
            return _claim(conn, now, limit, now - lease, max_attempts)

        return await self._db.write(op)

    async def next_due_at(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            return min((r[0] for r in conn.execute(_NEXT_DUE)), default=None)

        return await self._db.read(op)

    async def earlier_queued_due(self, group_id: int, channel: str, recipient: str,
                                 seq: int) -> float | None:
        """When the earliest still-queued notification of alert group ``group_id`` to this
        channel and recipient created before ``seq`` is due (it may be in flight), or None
        when there is none."""

        def op(conn: sqlite3.Connection) -> float | None:
            r = conn.execute(
                "SELECT min(due_at) FROM notifications INDEXED BY notifications_thread_queued "
                "WHERE json_extract(metadata, '$.group_id') = ? AND channel = ? "
                "AND recipient = ? AND status = 'queued' AND seq < ?",
                (group_id, channel, recipient, seq)).fetchone()
            return None if r is None or r[0] is None else float(r[0])

        return await self._db.read(op)

    async def unclaim(self, ids: Sequence[str], due_at: float) -> None:
        """Give claimed rows back untried, due again at ``due_at`` (their destination was
        busy): no attempt, no deferral is counted."""

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE notifications SET claimed_at = NULL, due_at = ? "
                "WHERE id = ? AND status = ?", [(due_at, i, Status.QUEUED) for i in ids])

        await self._db.write(op)

    async def complete(self, outcomes: Sequence[Outcome], now: float | None = None) -> None:
        """Record the outcome of claimed rows and release them, in one transaction, with the
        attempt rows the outcomes carry (one write: the attempt history costs no commit).
        With ``now``, a page put back on the outbox whose alerts were answered meanwhile is
        withdrawn (store/pages.py)."""
        delivered = [(Status.DELIVERED, o.sent_at, o.delivered_at, o.message, o.id)
                     for o in outcomes if isinstance(o, Delivered) and o.receipt_id is None]
        sent = [(Status.SENT, o.sent_at, o.message, o.receipt_id, o.receipt_check_at, o.id)
                for o in outcomes if isinstance(o, Delivered) and o.receipt_id is not None]
        failed = [(Status.FAILED, o.failed_at, o.reason, o.details, o.failure_class, o.id)
                  for o in outcomes if isinstance(o, Failed)]
        retry = [(o.due_at, o.reason, o.details, o.id) for o in outcomes if isinstance(o, Retry)]
        # Only a wait the far side asked for counts as a deferral (it spaces out the next
        # ones); the agent's own waits (a rate bucket, an earlier message, a paused channel)
        # tried nothing.
        deferred = [(o.due_at, o.reason, o.details, int(o.attempt is not None), o.id)
                    for o in outcomes if isinstance(o, Deferred)]
        attempts = [(o.id, o.attempt) for o in outcomes if o.attempt is not None]
        parents = [o.parent_id for o in outcomes
                   if isinstance(o, Delivered | Failed) and o.parent_id is not None]

        def op(conn: sqlite3.Connection) -> None:
            deliveries.insert(conn, attempts)
            if delivered:
                conn.executemany(
                    "UPDATE notifications SET status = ?, sent_at = ?, delivered_at = ?, "
                    "message = COALESCE(?, message), claimed_at = NULL, attempts = attempts + 1, "
                    "failure_reason = NULL, failure_details = NULL WHERE id = ?", delivered)
            if sent:  # the provider reports later (store/receipts.py): no delivered_at yet
                conn.executemany(
                    "UPDATE notifications SET status = ?, sent_at = ?, delivered_at = NULL, "
                    "message = COALESCE(?, message), provider_id = ?, receipt_check_at = ?, "
                    "claimed_at = NULL, attempts = attempts + 1, failure_reason = NULL, "
                    "failure_details = NULL WHERE id = ?", sent)
            if failed:
                deadletters.failing(conn, "id", [f[-1] for f in failed])
                conn.executemany(
                    "UPDATE notifications SET status = ?, failed_at = ?, failure_reason = ?, "
                    "failure_details = ?, failure_class = ?, claimed_at = NULL, "
                    "attempts = attempts + 1 WHERE id = ?", failed)
            if retry:
                conn.executemany(
                    "UPDATE notifications SET due_at = ?, failure_reason = ?, "
                    "failure_details = ?, claimed_at = NULL, attempts = attempts + 1 "
                    "WHERE id = ?", retry)
            if deferred:
                conn.executemany(
                    "UPDATE notifications SET due_at = ?, failure_reason = ?, "
                    "failure_details = ?, claimed_at = NULL, deferrals = deferrals + ? "
                    "WHERE id = ?", deferred)
            if now is not None and (retry or deferred):
                pages.withdraw_requeued(
                    conn, [o.id for o in outcomes if isinstance(o, Retry | Deferred)], now)
            if parents:
                fanout.settle(conn, parents, max(
                    o.delivered_at if isinstance(o, Delivered) else o.failed_at
                    for o in outcomes if isinstance(o, Delivered | Failed)))

        await self._db.write(op)

    async def outbox_stats(self, now: float) -> tuple[int, int, float | None]:
        """(due rows, scheduled rows, oldest due_at among due rows)."""

        def op(conn: sqlite3.Connection) -> tuple[int, int, float | None]:
            r = conn.execute(
                "SELECT SUM(due_at <= ?), SUM(due_at > ?), MIN(due_at) "
                "FROM notifications WHERE status = ? AND fanout = 0",
                (now, now, Status.QUEUED),
            ).fetchone()
            oldest = r[2] if r[2] is not None and r[2] <= now else None
            return int(r[0] or 0), int(r[1] or 0), oldest

        return await self._db.read(op)


def insert_notification(conn: sqlite3.Connection, it: NewNotification) -> int:
    """Insert `it` on the outbox inside the caller's transaction; its ``seq``. A parent (team
    send) is never due; an item with a ``failure`` is stored failed, a dead letter."""
    cur = conn.execute(
        _INSERT,
        (
            it.id, Status.QUEUED, it.channel, it.recipient, it.message, it.subject,
            it.template_id, it.template_body, it.severity, it.priority,
            orjson.dumps(it.metadata).decode(), it.idempotency_key, int(it.simulated),
            it.api_key_id, it.schedule_at, fanout.PARENT_DUE_AT if it.fanout else it.due_at,
            it.created_at, it.batch_id, it.parent_id, it.member_id, it.fanout,
        ),
    )
    assert cur.lastrowid is not None
    if it.failure is not None:
        deadletters.failing(conn, "seq", [cur.lastrowid])
        conn.execute(
            "UPDATE notifications SET status = ?, failed_at = ?, failure_reason = ?, "
            "failure_details = ?, failure_class = 'permanent' WHERE seq = ?",
            (Status.FAILED, it.created_at, *it.failure, cur.lastrowid))
    return cur.lastrowid


# A re-drive: queued and due now, the retry budget restarted (deadline, attempts, deferral
# spacing and abandoned claims count from here); the last error stays as ``last_error``.
_REDRIVE = (
    "UPDATE notifications SET status = 'queued', due_at = ?, redriven_at = ?, "
    "redrive_attempts = attempts, deferrals = 0, abandoned = 0, claimed_at = NULL, "
    "failed_at = NULL, failure_class = NULL"
)

# The outbox queries name their index: without statistics SQLite prefers
# notifications_status_seq (status = 'queued') and then scans and sorts every queued row, which
# made each claim cost milliseconds with a deep outbox. The partial index holds queued rows
# only, by (priority, due time), so a claim reads the rows it takes plus the claimed ones it
# steps over, and the idle wait three rows.
_CANDIDATES = (
    "SELECT seq, abandoned, claimed_at FROM notifications INDEXED BY notifications_claim "
    "WHERE status = 'queued' AND priority = ? AND due_at <= ? "
    "AND (claimed_at IS NULL OR claimed_at < ?) ORDER BY due_at LIMIT ?"
)
CLAIM_ORDER = (Priority.HIGH, Priority.NORMAL, Priority.LOW)
_NEXT_DUE = " UNION ALL ".join(
    "SELECT * FROM (SELECT due_at FROM notifications INDEXED BY notifications_claim "
    f"WHERE status = 'queued' AND priority = '{p.value}' AND claimed_at IS NULL "
    "ORDER BY due_at LIMIT 1)" for p in CLAIM_ORDER
)


def _claim(conn: sqlite3.Connection, now: float, limit: int, stale: float,
           max_attempts: int) -> list[Notification]:
    """Claim up to ``limit`` due rows (unclaimed, or claimed before ``stale``) by priority; a
    candidate whose claims ended ``max_attempts`` times without an outcome fails instead."""
    out: list[Notification] = []
    for priority in CLAIM_ORDER:
        while len(out) < limit:
            want = limit - len(out)
            cands = conn.execute(_CANDIDATES, (priority, now, stale, want)).fetchall()
            # A candidate still claimed lost its lease: that claim is abandoned too.
            exhausted = [seq for seq, abandoned, claimed in cands
                         if abandoned + (claimed is not None) >= max_attempts]
            take = [seq for seq, abandoned, claimed in cands
                    if abandoned + (claimed is not None) < max_attempts]
            if exhausted:
                deadletters.failing(conn, "seq", exhausted)
                conn.execute(
                    "UPDATE notifications SET status = ?, failed_at = ?, failure_reason = ?, "
                    "failure_details = 'claimed too often without an outcome', "
                    # A delivery that never reaches an outcome (it kills the process) is ours.
                    "failure_class = 'technical', "
                    "claimed_at = NULL, abandoned = abandoned + (claimed_at IS NOT NULL) "
                    f"WHERE seq IN ({','.join('?' * len(exhausted))})",
                    (Status.FAILED, now, FailureReason.RETRIES_EXHAUSTED, *exhausted),
                )
                fanout.settle(conn, fanout.parents_of(conn, "seq", list(exhausted)), now)
            if take:
                out.extend(sorted((notification_row(r) for r in conn.execute(
                    "UPDATE notifications SET abandoned = abandoned + (claimed_at IS NOT NULL), "
                    f"claimed_at = ? WHERE seq IN ({','.join('?' * len(take))}) "
                    f"RETURNING {COLUMNS}",
                    (now, *take),
                )), key=lambda n: n.due_at))
            if len(cands) < want or not exhausted:
                break  # this priority has nothing more due, or every candidate was taken
    return out


def _fresh(it: NewNotification, seq: int) -> Notification:
    failed = it.failure is not None
    return Notification(
        id=it.id, seq=seq, status=Status.FAILED if failed else Status.QUEUED,
        failed_at=it.created_at if failed else None,
        failure_reason=it.failure[0] if it.failure else None,
        failure_details=it.failure[1] if it.failure else None,
        failure_class="permanent" if failed else None,
        parent_id=it.parent_id, member_id=it.member_id, fanout=it.fanout,
        channel=it.channel, recipient=it.recipient,
        message=it.message, subject=it.subject, template_id=it.template_id,
        template_body=it.template_body, severity=it.severity, priority=it.priority,
        metadata=it.metadata, idempotency_key=it.idempotency_key, simulated=it.simulated,
        attempts=0, schedule_at=it.schedule_at,
        due_at=fanout.PARENT_DUE_AT if it.fanout else it.due_at, created_at=it.created_at,
        batch_id=it.batch_id,
    )


__all__ = ["IdempotencyConflict", "NotificationStore", "ListFilter", "Delivered", "Failed",
           "Retry", "Deferred", "Outcome", "CreateOutcome"]
