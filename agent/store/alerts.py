"""Alerts, their groups and memberships: the durable state behind deduplication and grouping."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent.domain import (
    Alert,
    AlertIntake,
    AlertStatus,
    FlushResult,
    GroupMember,
    GroupRef,
    GroupSnapshot,
    Notification,
    StoredAlert,
    new_id,
)
from agent.store import escalations, pages
from agent.store.db import Database
from agent.store.idempotency import IdemRequest, check_key, remember_key
from agent.store.notifications import COLUMNS as NTF_COLUMNS
from agent.store.notifications import insert_notification, notification_row

_COLUMNS = (
    "seq, id, source, fingerprint, status, type, monitor_id, alertname, message, severity, "
    "labels, annotations, extra, generator_url, starts_at, ends_at, created_at, updated_at, "
    "resolved_at, last_received_at, receive_count, mode, acknowledged_at, acknowledged_by, "
    "acknowledged_via"
)
ACTIVE, RESOLVED = "active", "resolved"
# Bound parameters per lookup statement (SQLite allows 32,766; fewer keeps each plan small).
_LOOKUP_CHUNK = 500
_INSERT_ALERT = (
    f"INSERT INTO alerts ({_COLUMNS}) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,NULL,NULL,NULL)"
)
_INSERT_MEMBER = (
    "INSERT INTO group_members (group_id, alert_seq, status, severity) VALUES (?,?,?,?) "
    "ON CONFLICT DO UPDATE SET status = excluded.status, severity = excluded.severity"
)
# With an inhibitor: the labels of every member, to ask it.
_MEMBER_STATES = (
    "SELECT m.alert_seq, m.status, m.notified, a.severity, m.acknowledged, a.source, "
    "a.fingerprint, a.labels "
    "FROM group_members m JOIN alerts a ON a.seq = m.alert_seq WHERE m.group_id = ? "
    "ORDER BY m.alert_seq"
)
# Without: group_members alone (its rows of one group are adjacent), the alert only for a
# membership stored before the severity column.
_MEMBER_STATES_ONLY = (
    "SELECT m.alert_seq, m.status, m.notified, COALESCE(m.severity, "
    "(SELECT a.severity FROM alerts a WHERE a.seq = m.alert_seq)), m.acknowledged "
    "FROM group_members m WHERE m.group_id = ? ORDER BY m.alert_seq"
)


Muted = Callable[[tuple[str, str], dict[str, str]], bool]


def _members(conn: sqlite3.Connection, group_id: int, display: int,
             muted: Muted | None) -> tuple[list[GroupMember], frozenset[int]]:
    """Every member's state, and the full alert for the first ``display`` a notification could
    list (firing, or told firing): a 100,000-alert group costs tuples, not alert objects."""
    members = []
    shown: list[GroupMember] = []
    inhibited = set()
    firing = AlertStatus.FIRING
    if muted is None:
        for seq, status, notified, severity, acked in conn.execute(_MEMBER_STATES_ONLY,
                                                                   (group_id,)):
            m = GroupMember(None, status, notified, seq=seq, severity=severity,
                            acknowledged=bool(acked))
            members.append(m)
            if len(shown) < display and (status == firing or notified == firing):
                shown.append(m)
    else:
        for seq, status, notified, severity, acked, source, fp, labels in conn.execute(
                _MEMBER_STATES, (group_id,)):
            # Labels are looked at here and dropped: a storm's group never holds them all.
            if status == firing and muted((source, fp), orjson.loads(labels)):
                inhibited.add(seq)
            m = GroupMember(None, status, notified, seq=seq, severity=severity, key=(source, fp),
                            acknowledged=bool(acked))
            members.append(m)
            if len(shown) < display and (status == firing or notified == firing):
                shown.append(m)
    # The alerts a notification can list, read in one query per chunk.
    for i in range(0, len(shown), _LOOKUP_CHUNK):
        chunk = {m.seq: m for m in shown[i:i + _LOOKUP_CHUNK]}
        for r in conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE seq IN "
                              f"({','.join('?' * len(chunk))})", tuple(chunk)):
            chunk[r["seq"]].alert = _alert(r)
    return members, frozenset(inhibited)


def _dumps(v: object) -> str:
    return orjson.dumps(v).decode()


def _alert(r: sqlite3.Row | tuple[Any, ...]) -> StoredAlert:
    """A stored alert from a row selected with ``_COLUMNS`` (the dataclass's field order)."""
    (seq, aid, source, fp, status, kind, monitor, alertname, message, severity, labels,
     annotations, extra, *rest) = r
    return StoredAlert(seq, aid, source, fp, status, kind, monitor, alertname, message, severity,
                       orjson.loads(labels), orjson.loads(annotations),
                       orjson.loads(extra) if extra else None, *rest)


@dataclass(slots=True)
class FlushOutcome:
    queued: int = 0  # notifications queued by the recorded flushes
    failed: dict[int, Exception] = field(default_factory=dict)  # group id -> why not recorded


@dataclass(slots=True)
class IngestResult:
    ids: list[str | None]  # per intake: the alert id (None: a resolve for no active alert)
    outcomes: list[str] = field(default_factory=list)  # per intake: created|updated|...
    created: int = 0
    updated: int = 0
    resolved: int = 0
    stale: int = 0
    groups_touched: int = 0
    escalations_cancelled: int = 0  # pending steps of groups the resolves left quiet
    replayed: bool = False  # an idempotency key's repeat: ids holds the original, nothing changed


_GROUP_UPSERT = (
    "INSERT INTO alert_groups (group_key, route_id, route, labels, pending, version, "
    "next_flush_at, created_at) VALUES (?,?,?,?,1,0,?,?) "
    "ON CONFLICT(group_key) DO UPDATE SET version = version + 1, route = excluded.route, "
    # A flush already pending takes the change along; otherwise the next one is due one
    # group_interval after the last (Alertmanager: new alerts of a group wait for its tick).
    "next_flush_at = CASE WHEN pending THEN next_flush_at "
    "ELSE MAX(?, COALESCE(last_flush_at + ?, ?)) END, pending = 1 "
    "RETURNING id"
)


def _touch_groups(conn: sqlite3.Connection, seq: int, it: AlertIntake, now: float,
                  only_missing: bool = False) -> int:
    """Put the alert in its groups; ``only_missing`` skips groups it is already in."""
    touched = 0
    for g in it.groups:
        if only_missing and conn.execute(
            "SELECT 1 FROM group_members m JOIN alert_groups g ON g.id = m.group_id "
            "WHERE g.group_key = ? AND m.alert_seq = ?", (g.key, seq)
        ).fetchone():
            continue
        touched += 1
        (gid,) = conn.execute(
            _GROUP_UPSERT,
            (g.key, g.route_id, _dumps(g.route), _dumps(g.labels), now + g.group_wait, now,
             now, g.group_interval, now),
        ).fetchone()
        conn.execute(_INSERT_MEMBER, (gid, seq, AlertStatus.FIRING, it.severity))
    return touched


def _resolve_memberships(conn: sqlite3.Connection, seq: int, now: float) -> tuple[int, int]:
    """The alert leaves its groups' firing set; (groups touched, escalation steps cancelled)."""
    gids = [r[0] for r in conn.execute(
        "UPDATE group_members SET status = ? WHERE alert_seq = ? RETURNING group_id",
        (AlertStatus.RESOLVED, seq))]
    for gid in gids:
        conn.execute(
            "UPDATE alert_groups SET version = version + 1, next_flush_at = CASE WHEN pending "
            "THEN next_flush_at ELSE MAX(?, COALESCE(last_flush_at + "
            "json_extract(route, '$.group_interval'), ?)) END, pending = 1 WHERE id = ?",
            (now, now, gid),
        )
    # A group with nothing firing any more stops escalating, in this transaction, and its
    # pages still in the outbox are withdrawn.
    quiet = escalations.quiet(conn, gids, acknowledged=False)
    pages.withdraw(conn, [seq], now)
    return len(gids), escalations.cancel(conn, quiet, now, "resolved", acknowledged=False)


def _already_ended(conn: sqlite3.Connection, a: Alert, starts_at: float) -> bool:
    """Whether the last resolved alert of this fingerprint ended at or after ``starts_at``."""
    r = conn.execute(
        "SELECT COALESCE(ends_at, resolved_at) FROM alerts WHERE source = ? AND fingerprint = ? "
        "AND status = 'resolved' ORDER BY seq DESC LIMIT 1", (a.source, a.fingerprint),
    ).fetchone()
    return r is not None and r[0] is not None and starts_at < r[0]


def _ingest_one(conn: sqlite3.Connection, it: AlertIntake, now: float,
                out: IngestResult) -> None:
    a = it.alert
    # What the sender may change, newest wins (as in Alertmanager); a field it left out keeps
    # the last value (an alert sent without annotations keeps its text, and its message).
    annotations, message = (_dumps(a.annotations), it.message) if a.annotations else (None, None)
    extra = _dumps(a.extra) if a.extra else None
    if a.status == AlertStatus.FIRING:
        # Already active (the common case under repeats): one statement records the receipt;
        # grouping decides about repeats.
        row = conn.execute(
            "UPDATE alerts SET last_received_at = ?, receive_count = receive_count + 1, "
            "annotations = COALESCE(?, annotations), message = COALESCE(?, message), "
            "ends_at = ?, extra = COALESCE(?, extra), "
            "generator_url = COALESCE(?, generator_url) "
            "WHERE source = ? AND fingerprint = ? AND status = 'active' RETURNING seq, id",
            (now, annotations, message, a.ends_at, extra, a.generator_url, a.source,
             a.fingerprint),
        ).fetchone()
        if row is not None:
            out.ids.append(row[1])
            out.outcomes.append("updated")
            out.updated += 1
            # Rules may have changed since it was first routed: join any new route's group
            # (Alertmanager routes every receipt).
            out.groups_touched += _touch_groups(conn, row[0], it, now, only_missing=True)
            return
        if a.starts_at is not None and _already_ended(conn, a, a.starts_at):
            # A late copy of a firing alert that already resolved (two Alertmanager peers
            # sending, a retried request): re-opening it would page for an alert that is over.
            out.ids.append(None)
            out.outcomes.append("stale")
            out.stale += 1
            return
        aid = new_id("alt")
        cur = conn.execute(
            f"INSERT INTO alerts ({_COLUMNS.replace('seq, ', '', 1)}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)",
            (aid, a.source, a.fingerprint, ACTIVE, it.type, it.monitor_id,
             a.labels.get("alertname"), it.message, it.severity, _dumps(a.labels),
             _dumps(a.annotations), _dumps(a.extra) if a.extra else None, a.generator_url,
             a.starts_at, a.ends_at, now, now, None, now, a.mode),
        )
        assert cur.lastrowid is not None
        out.ids.append(aid)
        out.outcomes.append("created")
        out.created += 1
        out.groups_touched += _touch_groups(conn, cur.lastrowid, it, now)
        return
    row = conn.execute(
        "UPDATE alerts SET status = ?, resolved_at = ?, updated_at = ?, last_received_at = ?, "
        # No end given: it ended when we heard (as PUT /v1/alerts/{id} does), or earlier if
        # the firing copy said so.
        "ends_at = COALESCE(?, MIN(COALESCE(ends_at, ?), ?)), message = COALESCE(?, message), "
        "annotations = COALESCE(?, annotations), extra = COALESCE(?, extra), "
        "generator_url = COALESCE(?, generator_url) "
        "WHERE source = ? AND fingerprint = ? AND status = 'active' RETURNING seq, id",
        (RESOLVED, now, now, now, a.ends_at, now, now, message, annotations, extra,
         a.generator_url, a.source, a.fingerprint),
    ).fetchone()
    if row is None:
        out.ids.append(None)  # resolved, but nothing active here: nothing to do
        out.outcomes.append("stale")
        out.stale += 1
        return
    out.ids.append(row[1])
    out.outcomes.append("resolved")
    out.resolved += 1
    touched, cancelled = _resolve_memberships(conn, row[0], now)
    out.groups_touched += touched
    out.escalations_cancelled += cancelled


@dataclass(slots=True)
class _Latest:
    """The newest stored alert of a (source, fingerprint): active, or how it ended."""

    active: bool
    ended: float | None  # resolved: COALESCE(ends_at, resolved_at)


def _latest(conn: sqlite3.Connection,
            keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Latest]:
    """The newest alert of each key, in one indexed query per source and chunk of keys.

    An active alert is always the newest of its key (a re-fire inserts after the resolve), so
    the newest row answers both questions a new firing alert asks: is one active, and did
    the last one end after this one started.
    """
    by_source: dict[str, list[str]] = {}
    for source, fp in keys:
        by_source.setdefault(source, []).append(fp)
    out: dict[tuple[str, str], _Latest] = {}
    for source, fps in by_source.items():
        for i in range(0, len(fps), _LOOKUP_CHUNK):
            chunk = fps[i:i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            # Each on its partial index, named: with hundreds of keys the planner would rather
            # walk alerts_status over every active alert. A bare column next to MAX() comes
            # from the row holding the maximum (SQLite).
            for fp, _seq, ended in conn.execute(
                "SELECT fingerprint, MAX(seq), COALESCE(ends_at, resolved_at) FROM alerts "
                f"INDEXED BY alerts_ended WHERE source = ? AND fingerprint IN ({marks}) "
                "AND status = 'resolved' GROUP BY fingerprint", (source, *chunk)):
                out[(source, fp)] = _Latest(False, ended)
            for (fp,) in conn.execute(
                "SELECT fingerprint FROM alerts INDEXED BY alerts_active "
                f"WHERE source = ? AND fingerprint IN ({marks}) AND status = 'active'",
                (source, *chunk)):
                out[(source, fp)] = _Latest(True, None)
    return out


class _NewAlerts:
    """New firing alerts of one transaction, written together: the alert rows with one
    ``executemany``, each group touched with one upsert (not one per alert), the memberships
    with one ``executemany``. Seqs are assigned here (the writer holds the write lock), so
    memberships need no read-back of the inserted rows."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self._conn, self._now = conn, now
        self._rows: list[tuple[object, ...]] = []
        self._groups: dict[str, tuple[GroupRef, list[tuple[int, str]]]] = {}
        self._next_seq = 0
        self._random = b""  # for the ids: one urandom call per payload, not per alert

    def add(self, it: AlertIntake) -> tuple[int, str]:
        if not self._rows:
            self._next_seq = 1 + self._conn.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alerts'), 0), "
                "COALESCE((SELECT MAX(seq) FROM alerts), 0))").fetchone()[0]
        seq, a, now = self._next_seq, it.alert, self._now
        # The seq leads the id (same shape as new_id's: 20 hex digits): unique by
        # construction, and appended to the id index instead of inserted at a random place.
        if not self._random:
            self._random = secrets.token_bytes(5 * 1024)
        aid = f"alt_{seq:010x}{self._random[:5].hex()}"
        self._random = self._random[5:]
        self._next_seq += 1
        self._rows.append((
            seq, aid, a.source, a.fingerprint, ACTIVE, it.type, it.monitor_id,
            a.labels.get("alertname"), it.message, it.severity, _dumps(a.labels),
            _dumps(a.annotations), _dumps(a.extra) if a.extra else None, a.generator_url,
            a.starts_at, a.ends_at, now, now, None, now, a.mode))
        for g in it.groups:
            self._groups.setdefault(g.key, (g, []))[1].append((seq, it.severity))
        return seq, aid

    def write(self) -> int:
        """Write what was added; returns the memberships made (groups touched, per alert)."""
        if not self._rows:
            return 0
        conn, now = self._conn, self._now
        conn.executemany(_INSERT_ALERT, self._rows)
        touched = 0
        for g, seqs in self._groups.values():
            (gid,) = conn.execute(
                _GROUP_UPSERT,
                (g.key, g.route_id, _dumps(g.route), _dumps(g.labels), now + g.group_wait, now,
                 now, g.group_interval, now),
            ).fetchone()
            conn.executemany(_INSERT_MEMBER,
                             [(gid, seq, AlertStatus.FIRING, sev) for seq, sev in seqs])
            touched += len(seqs)
        self._rows, self._groups = [], {}
        return touched


def _ingest_all(conn: sqlite3.Connection, items: Sequence[AlertIntake], now: float,
                out: IngestResult) -> None:
    """Store a payload's alerts in order: new firing alerts in bulk, anything else (a repeat
    with changes, a resolve) one by one after the bulk written so far, as before."""
    latest = _latest(conn, {(it.alert.source, it.alert.fingerprint) for it in items})
    fresh = _NewAlerts(conn, now)
    for it in items:
        a = it.alert
        key = (a.source, a.fingerprint)
        known = latest.get(key, _Latest(False, None))
        if a.status != AlertStatus.FIRING or known.active:
            out.groups_touched += fresh.write()
            _ingest_one(conn, it, now, out)
            # What that did is known to the store only: ask again for a later copy of the key.
            latest.update(_latest(conn, {key}))
            continue
        if a.starts_at is not None and known.ended is not None and a.starts_at < known.ended:
            # A late copy of a firing alert that already resolved (two Alertmanager peers
            # sending, a retried request): re-opening it would page for an alert that is over.
            out.ids.append(None)
            out.outcomes.append("stale")
            out.stale += 1
            continue
        _seq, aid = fresh.add(it)
        latest[key] = _Latest(True, None)
        out.ids.append(aid)
        out.outcomes.append("created")
        out.created += 1
    out.groups_touched += fresh.write()


def _replay(conn: sqlite3.Connection, idem: IdemRequest) -> str | None:
    """The alert a live idempotency key stored for this body; raises on another body."""
    original = check_key(conn, idem.api_key_id, idem.key, idem.request_hash, idem.valid_after)
    if original is None:
        return None
    if conn.execute("SELECT 1 FROM alerts WHERE id = ?", (original,)).fetchone():
        return original
    # Pruned since (retention): the request is stored again, under the same key.
    conn.execute("DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ?",
                 (idem.api_key_id, idem.key))
    return None


class AlertStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ingest(self, items: Sequence[AlertIntake], now: float,
                     idem: IdemRequest | None = None) -> IngestResult:
        """Store a payload's alerts, deduplicated by fingerprint, in one transaction.

        ``idem`` (one alert only) binds the request's idempotency key to the alert it stored,
        in the same transaction; a repeat of that request answers with the original alert and
        changes nothing. Raises IdempotencyConflict for the key with another body.
        """
        if idem is not None and len(items) != 1:
            raise ValueError("an idempotency key covers exactly one alert")

        def op(conn: sqlite3.Connection) -> IngestResult:
            if idem is not None:
                original = _replay(conn, idem)
                if original is not None:
                    return IngestResult(ids=[original], outcomes=["replayed"], replayed=True)
            out = IngestResult(ids=[])
            _ingest_all(conn, items, now, out)
            if idem is not None and out.ids[0] is not None:
                # Only a request that did something binds its key (a refused one can be fixed).
                remember_key(conn, idem.api_key_id, idem.key, idem.request_hash, out.ids[0],
                             now)
            return out

        return await self._db.write(op)

    async def resolve(self, alert_id: str, message: str | None, now: float, mode: str,
                      resolve: bool = True) -> tuple[StoredAlert, int] | None:
        """Resolve an active alert of this key mode by id (API) and/or set its message; None
        when unknown or of the other mode. With the escalation steps the resolve cancelled."""

        def op(conn: sqlite3.Connection) -> tuple[StoredAlert, int] | None:
            r = conn.execute("SELECT seq, status FROM alerts WHERE id = ? AND mode = ?",
                             (alert_id, mode)).fetchone()
            if r is None:
                return None
            cancelled = 0
            if resolve and r["status"] == ACTIVE:
                conn.execute(
                    "UPDATE alerts SET status = ?, resolved_at = ?, updated_at = ?, "
                    "ends_at = COALESCE(ends_at, ?), message = COALESCE(?, message) "
                    "WHERE seq = ?",
                    (RESOLVED, now, now, now, message, r["seq"]),
                )
                cancelled = _resolve_memberships(conn, r["seq"], now)[1]
            elif message is not None:
                conn.execute("UPDATE alerts SET message = ?, updated_at = ? WHERE seq = ?",
                             (message, now, r["seq"]))
            row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE seq = ?",
                               (r["seq"],)).fetchone()
            return _alert(row), cancelled

        return await self._db.write(op)

    async def get(self, alert_id: str,
                  mode: str | None = None) -> tuple[StoredAlert, list[Notification]] | None:
        """The alert and its notifications; None when unknown or (``mode`` given) of the
        other mode."""

        def op(conn: sqlite3.Connection) -> tuple[StoredAlert, list[Notification]] | None:
            r = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?",
                             (alert_id,)).fetchone()
            if r is not None and mode is not None and r["mode"] != mode:
                return None
            if r is None:
                return None
            ntf = conn.execute(
                f"SELECT {NTF_COLUMNS} FROM notifications WHERE id IN (SELECT notification_id "
                "FROM alert_notifications WHERE alert_seq = ?) ORDER BY seq", (r["seq"],)
            ).fetchall()
            return _alert(r), [notification_row(n) for n in ntf]

        return await self._db.read(op)

    async def page(self, status: str | None, monitor_id: str | None, page: int, per_page: int,
                   mode: str) -> tuple[list[StoredAlert], int]:
        """Newest first, of one key mode; returns one page and the total matching."""
        where, args = ["mode = ?"], [mode]  # type: tuple[list[str], list[object]]
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if monitor_id is not None:
            where.append("monitor_id = ?")
            args.append(monitor_id)
        cond = " WHERE " + " AND ".join(where)

        def op(conn: sqlite3.Connection) -> tuple[list[StoredAlert], int]:
            total = conn.execute(f"SELECT count(*) FROM alerts{cond}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM alerts{cond} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, per_page, (page - 1) * per_page],
            ).fetchall()
            return [_alert(r) for r in rows], int(total)

        return await self._db.read(op)

    # --- groups, for the grouper ---------------------------------------------------------

    async def claim_groups(self, now: float, limit: int, lease: float = 300.0,
                           member_budget: int = 20000, display: int = 200,
                           muted: Muted | None = None) -> list[GroupSnapshot]:
        """Claim due groups, oldest due first, with their members.

        ``muted`` (the inhibitor's check, run on the writer thread) marks muted members.
        Stops once ``member_budget`` members are loaded (at least one group per round), so a
        storm's thousands of groups are flushed in slices: bounded memory, and ingest commits
        are never stuck behind one huge transaction.
        """

        def op(conn: sqlite3.Connection) -> list[GroupSnapshot]:
            due = conn.execute(
                "SELECT id, group_key, route_id, route, labels, version, last_flush_at, "
                "created_at FROM alert_groups WHERE next_flush_at <= ? AND (claimed_at IS NULL "
                "OR claimed_at < ?) ORDER BY next_flush_at LIMIT ?",
                (now, now - lease, limit),
            ).fetchall()
            out: list[GroupSnapshot] = []
            loaded = 0
            for g in due:
                if out and loaded >= member_budget:
                    break
                snap = _snapshot(conn, g, display, muted)
                loaded += len(snap.members)
                conn.execute("UPDATE alert_groups SET claimed_at = ? WHERE id = ?", (now, g["id"]))
                out.append(snap)
            return out

        return await self._db.write(op)

    async def apply_flushes(self, results: Sequence[FlushResult]) -> FlushOutcome:
        """Record flush outcomes, each on its own (one group failing leaves the others
        recorded); returns how many notifications were queued and which groups failed."""

        def op(conn: sqlite3.Connection) -> FlushOutcome:
            # All at once first: a SAVEPOINT per group copies every page the group changes to
            # the statement journal again, and a storm's groups all link into the same pages
            # of alert_notifications (~1,000 pages per group, 20 groups a round).
            conn.execute("SAVEPOINT flushes")
            try:
                queued = sum(_apply(conn, r) for r in results)
            except Exception:
                if not conn.in_transaction:  # SQLite rolled everything back: all failed
                    raise
                conn.execute("ROLLBACK TO flushes")  # then group by group, to find which
            else:
                conn.execute("RELEASE flushes")
                return FlushOutcome(queued=queued)
            conn.execute("RELEASE flushes")
            out = FlushOutcome()
            for r in results:
                conn.execute("SAVEPOINT flush")
                try:
                    out.queued += _apply(conn, r)
                except Exception as exc:
                    if not conn.in_transaction:  # SQLite rolled everything back: all failed
                        raise
                    conn.execute("ROLLBACK TO flush")
                    out.failed[r.group_id] = exc
                conn.execute("RELEASE flush")
            return out

        return await self._db.write(op)

    async def defer_groups(self, until: Mapping[int, float]) -> None:
        """Release these claimed groups, due again only at the given time (a failed flush
        backing off); ``pending`` keeps new alerts from bringing the flush forward."""
        await self._db.write(lambda c: c.executemany(
            "UPDATE alert_groups SET claimed_at = NULL, pending = 1, next_flush_at = ? "
            "WHERE id = ?", [(at, gid) for gid, at in until.items()]))

    async def release_group_claims(self, ids: Sequence[int] | None = None) -> int:
        """Release the claims of these groups (all, at start: their claimant is gone)."""
        if ids is None:
            return await self._db.write(lambda c: c.execute(
                "UPDATE alert_groups SET claimed_at = NULL WHERE claimed_at IS NOT NULL").rowcount)
        return await self._db.write(lambda c: c.executemany(
            "UPDATE alert_groups SET claimed_at = NULL WHERE id = ?", [(i,) for i in ids]
        ).rowcount)

    async def next_group_due(self) -> float | None:
        return await self._db.read(lambda c: c.execute(
            "SELECT MIN(next_flush_at) FROM alert_groups WHERE claimed_at IS NULL"
        ).fetchone()[0])

    async def active_labels(self) -> list[tuple[tuple[str, str], dict[str, str]]]:
        """(source, fingerprint) and labels of every active alert (inhibition rebuild).

        Read through the writer, so the snapshot sits between two ingest commits.
        """
        return await self._db.write(lambda c: [
            ((r[0], r[1]), orjson.loads(r[2])) for r in c.execute(
                "SELECT source, fingerprint, labels FROM alerts WHERE status = 'active' "
                "AND mode = 'live'")])

    async def active_alerts(self) -> list[tuple[tuple[str, str], str, Alert]]:
        """Every active alert as (key, id, Alert) with what dedup compares (annotations, end)."""
        return await self._db.read(lambda c: [
            ((r[0], r[1]), r[2], Alert(source=r[0], fingerprint=r[1], status=AlertStatus.FIRING,
                                       labels={}, annotations=orjson.loads(r[3]), ends_at=r[4]))
            for r in c.execute("SELECT source, fingerprint, id, annotations, ends_at FROM alerts "
                               "WHERE status = 'active'")])

    async def record_receipts(self, receipts: dict[str, tuple[int, float]]) -> None:
        """Add batched repeat receipts to the alerts' counters."""
        await self._db.write(lambda c: c.executemany(
            "UPDATE alerts SET receive_count = receive_count + ?, last_received_at = "
            "MAX(last_received_at, ?) WHERE id = ?",
            [(n, at, aid) for aid, (n, at) in receipts.items()]))

    async def active_counts(self) -> tuple[int, int]:
        """(active alerts, groups)."""
        return await self._db.read(lambda c: (
            c.execute("SELECT count(*) FROM alerts WHERE status = 'active'").fetchone()[0],
            c.execute("SELECT count(*) FROM alert_groups").fetchone()[0]))


def _snapshot(conn: sqlite3.Connection, g: sqlite3.Row, display: int,
              muted: Muted | None) -> GroupSnapshot:
    try:
        members, inhibited = _members(conn, g["id"], display, muted)
        route, labels = orjson.loads(g["route"]), orjson.loads(g["labels"])
    except sqlite3.Error:
        raise
    except Exception as exc:  # a stored value this build cannot read: this group alone fails
        return GroupSnapshot(
            id=g["id"], key=g["group_key"], route_id=g["route_id"], route={}, labels={},
            version=g["version"], last_flush_at=g["last_flush_at"],
            created_at=g["created_at"], members=[], error=exc)
    return GroupSnapshot(
        id=g["id"], key=g["group_key"], route_id=g["route_id"], route=route, labels=labels,
        version=g["version"], last_flush_at=g["last_flush_at"], created_at=g["created_at"],
        members=members, inhibited=inhibited)


def _apply(conn: sqlite3.Connection, r: FlushResult) -> int:
    # A storm's group links thousands of alerts per notification: one statement over a JSON
    # array of seqs instead of a row of parameters each.
    seqs = orjson.dumps(r.alert_seqs).decode()
    for n in r.notifications:
        insert_notification(conn, n)
        conn.execute("INSERT OR IGNORE INTO alert_notifications (alert_seq, notification_id) "
                     "SELECT value, ? FROM json_each(?)", (n.id, seqs))
    if r.escalation and r.last_flush_at is not None:
        escalations.start(conn, r.group_id, r.escalation, r.last_flush_at)
    by_status: dict[str, list[int]] = {}
    for seq, status in r.notified.items():
        by_status.setdefault(status, []).append(seq)
    for status, told in by_status.items():
        # A member told the same again (every flush of a growing group) keeps its row as is.
        conn.execute("UPDATE group_members SET notified = ? WHERE group_id = ? "
                     "AND notified IS NOT ? AND alert_seq IN (SELECT value FROM json_each(?))",
                     (status, r.group_id, status, orjson.dumps(told).decode()))
    # Only members whose state we saw leave: a re-fire that arrived meanwhile stays.
    conn.executemany(
        "DELETE FROM group_members WHERE group_id = ? AND alert_seq = ? AND status = ?",
        [(r.group_id, seq, AlertStatus.RESOLVED) for seq in r.remove])
    g = conn.execute("SELECT version FROM alert_groups WHERE id = ?", (r.group_id,)).fetchone()
    if g is None:
        return len(r.notifications)
    if g["version"] != r.version_seen:
        # Alerts changed while we flushed: look again at the next group_interval tick.
        conn.execute(
            "UPDATE alert_groups SET claimed_at = NULL, pending = 1, last_flush_at = "
            "COALESCE(?, last_flush_at), next_flush_at = ? WHERE id = ?",
            (r.last_flush_at, r.retry_at, r.group_id))
        return len(r.notifications)
    left = conn.execute("SELECT count(*) FROM group_members WHERE group_id = ?",
                        (r.group_id,)).fetchone()[0]
    if left == 0 or r.next_flush_at is None:
        conn.execute("DELETE FROM alert_groups WHERE id = ?", (r.group_id,))
    else:
        conn.execute(
            "UPDATE alert_groups SET claimed_at = NULL, pending = 0, last_flush_at = "
            "COALESCE(?, last_flush_at), next_flush_at = ? WHERE id = ?",
            (r.last_flush_at, r.next_flush_at, r.group_id))
    return len(r.notifications)
