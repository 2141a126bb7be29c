"""The acknowledge use case: API calls, the CLI, chat buttons and ack links all end here.

The first acknowledgment of an alert wins and is recorded with who gave it and through what;
it stops the group's repeats, and every delivered message about it on a channel that can edit is
edited to say so (a notification that edits in place, through the dispatcher like any other).
A click in a chat is honoured only from an approved member allowed for the alert: the member
the message reached, members of the team or member it was sent to, and of the route's
``ack_by`` teams and members; a route to a room with no ``ack_by``: any approved member.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.addresses import AddressError
from agent.channels.base import ChannelSender
from agent.clock import Clock
from agent.directory import MEMBER_ID, ONCALL, TEAM_ID, Directory, canonical, on_call
from agent.domain import NewNotification, Notification, Priority, ack_code, new_id
from agent.observability import Metrics, get_logger
from agent.services.errors import Conflict, Forbidden, NotFound
from agent.store import Store
from agent.store.acks import Acked

log = get_logger("acknowledge")
# "ACK", "ack 3f9a1c": the reply a text message acknowledges with (its optional code names one
# of the member's open alerts: domain.ack_code).
_ACK_TEXT = re.compile(r"(?i)ack(?:\s+([0-9a-f]{6}))?")
# Ways in whose buttons name a notification for as long as the message shows them: a click is
# honoured for ``ack.link_ttl`` after that message was sent, as a link is.
BUTTON_CHANNELS = frozenset({"slack", "telegram"})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acknowledges, as the way in knows them."""

    channel: str  # "api" | "cli" | "slack" | "telegram" | "link" | "sms"
    user_id: str | None = None  # the provider's user id (Slack U…, Telegram digits)
    name: str | None = None  # a display name, as the provider gave it
    member_id: str | None = None  # known already (an ack link is issued to a member)


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_ids: list[str]
    acknowledged_by: str | None
    acknowledged_at: float | None
    first: bool  # this call recorded the acknowledgment
    # For people: the member's name when ``acknowledged_by`` is a member id.
    acknowledged_by_name: str | None = None


class AcknowledgeService:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock,
                 directory: Callable[[], Directory], channels: Mapping[str, ChannelSender],
                 on_due: Callable[[], None], button_ttl: float = 86400.0) -> None:
        self._store = store
        self._button_ttl = button_ttl
        self._metrics = metrics
        self._clock = clock
        self._directory = directory
        self._channels = channels
        self._on_due = on_due

    async def acknowledge_notification(self, notification_id: str, actor: Actor,
                                       by: str | None = None,
                                       simulated: bool = False) -> AckResult:
        """Acknowledge a notification and the alerts it is about."""
        if actor.user_id is not None or actor.member_id is not None:
            n = await self._store.notifications.get(notification_id, simulated)
            if n is None:
                raise _missing("notification", notification_id)
            if actor.channel in BUTTON_CHANNELS:
                self._check_fresh(actor, n)
            parent = (await self._store.notifications.get(n.parent_id)
                      if n.parent_id is not None else None)
            by = self._allowed(actor, n, parent)
        done = await self._store.acks.acknowledge(
            notification_id=notification_id, alert_id=None, by=_who(actor, by), via=actor.channel,
            now=self._clock.now(), simulated=simulated)
        if done is None:
            raise _missing("notification", notification_id)
        return await self._acknowledged(done, actor)

    async def acknowledge_alert(self, alert_id: str, actor: Actor, by: str | None = None,
                                simulated: bool = False) -> AckResult:
        """Acknowledge an alert (API and CLI callers, authenticated by their key)."""
        done = await self._store.acks.acknowledge(
            notification_id=None, alert_id=alert_id, by=_who(actor, by), via=actor.channel,
            now=self._clock.now(), simulated=simulated)
        if done is None:
            raise _missing("alert", alert_id)
        return await self._acknowledged(done, actor)

    async def acknowledge_by_text(self, channel: str, sender: str, body: str) -> str | None:
        """A text message ``ACK`` or ``ACK <code>`` from a member's number acknowledges the
        newest (or the named) open alert sent to it; the reply to send back, None when the
        text is not an acknowledgment."""
        found = _ACK_TEXT.fullmatch(body.strip())
        if found is None:
            return None
        d = self._directory()
        try:
            number = canonical(channel, sender)
        except AddressError:
            number = sender
        mid = d.owners.get((channel, number))
        member = d.members.get(mid) if mid is not None else None
        if member is None or not member.approved:
            self._metrics.acks_refused.labels(channel, "not_allowed").inc()
            log.warning("acknowledgment_refused", channel=channel, member_id=mid)
            return "This number may not acknowledge alerts."
        code = (found.group(1) or "").lower()
        candidates = [n for n in await self._store.acks.open_to(channel, number)
                      if not code or ack_code(n.id) == code]
        if not candidates:
            return (f"No open alert with code {code}." if code
                    else "No open alert to acknowledge.")
        try:
            done = await self.acknowledge_notification(
                candidates[0].id, Actor(channel, member_id=member.id))
        except (Forbidden, Conflict) as exc:
            return exc.message
        return ("Acknowledged." if done.first
                else f"Already acknowledged by {done.acknowledged_by_name}.")

    async def unacknowledge_alert(self, alert_id: str, simulated: bool = False) -> bool:
        """Clear an alert's acknowledgment: its group repeats again. Whether one was there."""
        done = await self._store.acks.unacknowledge(alert_id, self._clock.now(), simulated)
        if done is None:
            raise _missing("alert", alert_id)
        if done.cleared:
            log.info("alert_unacknowledged", alert_id=alert_id)
        return done.cleared

    def _check_fresh(self, actor: Actor, n: Notification) -> None:
        """A chat button works for ``ack.link_ttl`` after its message was sent (a repeat or an
        edit of the message carries a new one); an older click is refused: Conflict."""
        if self._clock.now() - (n.sent_at or n.created_at) <= self._button_ttl:
            return
        log.info("acknowledgment_refused", channel=actor.channel, user_id=actor.user_id,
                 notification_id=n.id, reason="expired")
        self._metrics.acks_refused.labels(actor.channel, "expired").inc()
        raise Conflict("ack_expired", "This button has expired: acknowledge from a newer "
                       "message, or with alert-agent ack.", "id")

    def _allowed(self, actor: Actor, n: Notification, parent: Notification | None) -> str:
        """The member id of a chat or link actor allowed to acknowledge ``n``; else Forbidden
        (logged and counted)."""
        d = self._directory()
        mid = actor.member_id or (d.owners.get((actor.channel, actor.user_id))
                                  if actor.user_id is not None else None)
        member = d.members.get(mid) if mid is not None else None
        # The member a message reached may answer it (a link issued to them, a reply from
        # their number, a button in their own chat), whoever else the route names.
        allowed = (None if member is not None and member.id == n.member_id
                   else _allowed_members(d, n, parent, self._clock.now()))
        if member is None or not member.approved or (allowed is not None
                                                     and member.id not in allowed):
            log.warning("acknowledgment_refused", channel=actor.channel, user_id=actor.user_id,
                        member_id=mid, notification_id=n.id)
            self._metrics.acks_refused.labels(actor.channel, "not_allowed").inc()
            raise Forbidden("ack_not_allowed", "Only members of the alert's team may "
                            "acknowledge it.", "by")
        return member.id

    async def _acknowledged(self, done: Acked, actor: Actor) -> AckResult:
        if done.all_resolved and done.at is None:  # resolved, never acknowledged
            raise Conflict("alert_resolved", "The alert is resolved: there is nothing left to "
                           "acknowledge.", "id")
        if done.first:
            self._metrics.acknowledgments.labels(actor.channel).inc()
            if done.since is not None and done.at is not None:
                self._metrics.time_to_acknowledge.observe(max(0.0, done.at - done.since))
            log.info("acknowledged", alert_ids=done.alert_ids, by=done.by, via=actor.channel,
                     escalation_steps_cancelled=done.escalations_cancelled,
                     pages_withdrawn=done.withdrawn)
            if done.escalations_cancelled:
                self._metrics.escalation_steps.labels("cancelled").inc(
                    done.escalations_cancelled)
            await self._edit_delivered(done)
        return AckResult(done.alert_ids, done.by, done.at, done.first,
                         self._name(done.by) if done.by else None)

    async def _edit_delivered(self, done: Acked) -> None:
        """Edit each thread's latest delivered message, on channels that can edit, to say who
        acknowledged (the dispatcher finds the message by the group's thread)."""
        name = self._name(done.by)
        at = datetime.fromtimestamp(done.at or self._clock.now(), tz=UTC).strftime("%H:%M UTC")
        latest: dict[tuple[object, str, str], Notification] = {}
        for n in done.delivered:  # newest first
            channel = self._channels.get(n.channel)
            if channel is None or not channel.limits.can_edit or "group_id" not in n.metadata:
                continue
            latest.setdefault((n.metadata["group_id"], n.channel, n.recipient), n)
        now = self._clock.now()
        edits = [_edit(n, f"Acknowledged by {name} at {at}", done.by, now)
                 for n in latest.values()]
        if edits:
            await self._store.notifications.create(edits)
            self._on_due()

    def _name(self, by: str | None) -> str:
        member = self._directory().members.get(by or "")
        return member.name if member is not None else (by or "someone")


def _who(actor: Actor, by: str | None) -> str:
    return by or actor.member_id or actor.name or actor.channel


def _missing(what: str, ident: str) -> NotFound:
    code = "alert_not_found" if what == "alert" else "resource_missing"
    return NotFound(code, f"No such {what}: '{ident}'.", "id")


def _allowed_members(d: Directory, n: Notification, parent: Notification | None,
                     now: float) -> set[str] | None:
    """Who may acknowledge ``n`` from a chat or link: the team or member it was sent to and
    the route's ``ack_by``; None: any approved member (a room, with no ``ack_by``)."""
    named = [x for x in n.metadata.get("ack_by", []) if isinstance(x, str)]
    sent_to = parent.recipient if parent is not None else n.recipient
    if any(p.fullmatch(sent_to) for p in (TEAM_ID, MEMBER_ID, ONCALL)):
        named.append(sent_to)
    if not named:
        return None
    out: set[str] = set()
    for ref in named:
        rota = ONCALL.fullmatch(ref)
        if rota is not None:  # whoever is on call at the click, not when the alert came
            shift = on_call(d, rota.group(1), now)
            out.update(shift.members if shift is not None else ())
            continue
        team = d.teams.get(ref)
        out.update(team.members if team is not None else (ref,))
    return out


def _edit(n: Notification, line: str, by: str | None, now: float) -> NewNotification:
    """A notification that edits ``n``'s message in place to carry ``line``."""
    text = f"{n.message or ''}\n\n{line}".strip()
    return NewNotification(
        id=new_id("ntf"), channel=n.channel, recipient=n.recipient, message=text,
        subject=n.subject, template_id=None, template_body=None, severity=n.severity,
        priority=Priority.HIGH.value, metadata={**n.metadata, "reason": "acknowledged",
                                                "update": "edit", "acknowledged_by": by},
        idempotency_key=None, request_hash=None, simulated=n.simulated, api_key_id=None,
        schedule_at=None, due_at=now, created_at=now, member_id=n.member_id)


