"""The team directory: who the people are, and who a notification's ``to`` reaches.

Declared in the rule files (``teams:``, ``members:``) and loaded with them. Pure: the API edge,
the grouper and the dispatcher ask the same questions of the same immutable value.

``to`` is read as:

- ``team_…``: every approved member of the team with an address on the channel, one
  notification each (linked to a parent notification by ``parent_id``);
- ``mem_…``: that member's address on the channel, if the member is approved;
- ``oncall:team_…``: as a team, but only the member(s) of its rotation on call at the instant of
  resolution (agent/oncall.py), which every caller passes in;
- anything else: a literal address, allowed when it belongs to an approved member, or when the
  channel accepts unlisted addresses (``recipients.allow_unlisted``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from agent import addresses
from agent.addresses import AddressError
from agent.domain import Channel, FailureReason, NewNotification, iso
from agent.oncall import OnCall, Rotation, who

# A team or member id (as the rule-file schema requires them); anything else in ``to`` is an
# address, also one that starts alike (``team_ops@example.com``).
# The channel of a rule-file target that names people but no channel: each member's
# preferences choose (``by_preference``); expanded before a notification is stored.
PREFERRED = "preferred"
TEAM_ID = re.compile(r"team_[A-Za-z0-9_-]{1,64}")
MEMBER_ID = re.compile(r"mem_[A-Za-z0-9_-]{1,64}")
# Whoever of the team's rotation is on call when the target is resolved.
ONCALL = re.compile(r"oncall:(team_[A-Za-z0-9_-]{1,64})")
# Channels that reach a person's own phone or mailbox take only approved members' addresses
# unless the operator says otherwise; the others reach rooms, topics and endpoints.
UNLISTED_REFUSED_BY_DEFAULT = frozenset({"sms", "whatsapp", "email"})
# Addresses of these channels are personal data: masked where test keys read the directory.
MASKED_CHANNELS = frozenset({"sms", "whatsapp", "email"})


def allow_unlisted_setting(value: bool | Mapping[str, bool]) -> frozenset[str]:
    """The channels that accept unlisted addresses, from ``recipients.allow_unlisted``: one
    boolean for every channel, or a per-channel mapping over the defaults."""
    every = {c.value for c in Channel}
    if isinstance(value, bool):
        return frozenset(every if value else ())
    allowed = {c for c in every if c not in UNLISTED_REFUSED_BY_DEFAULT}
    for channel, ok in value.items():
        (allowed.add if ok else allowed.discard)(channel)
    return frozenset(allowed)


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    name: str
    approved: bool
    timezone: str | None
    # channel -> the member's address on it, canonical (see ``canonical``).
    addresses: Mapping[str, str]
    # severity -> the channels a target without a channel reaches the member on.
    preferences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def preferred(self, severity: str) -> tuple[str, ...]:
        """The member's channels for an alert of ``severity``: its own entry, else the next
        lower severity's, else in-app (every member has an inbox)."""
        ladder = ("critical", "warning", "info")
        start = ladder.index(severity) if severity in ladder else len(ladder) - 1
        for level in ladder[start:]:
            if self.preferences.get(level):
                return self.preferences[level]
        return ("in-app",)

    def address(self, channel: str) -> str | None:
        """The member's address on ``channel``; in-app reaches a member by id by default."""
        found = self.addresses.get(channel)
        if found is None and channel == "in-app":
            return self.id
        return found


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    members: tuple[str, ...]
    # The on-call rotation (``oncall:`` in the rule file), over members of the team.
    oncall: Rotation | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    teams: Mapping[str, Team] = field(default_factory=dict)
    members: Mapping[str, Member] = field(default_factory=dict)
    # Channels on which a literal address nobody in the directory owns is accepted.
    allow_unlisted: frozenset[str] = field(default_factory=lambda: allow_unlisted_setting({}))
    # (channel, canonical address) -> the member it belongs to.
    owners: Mapping[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def build(cls, teams: Iterable[Team], members: Iterable[Member],
              allow_unlisted: frozenset[str]) -> Directory:
        by_id = {m.id: m for m in members}
        owners = {(ch, addr): m.id for m in by_id.values() for ch, addr in m.addresses.items()}
        return cls({t.id: t for t in teams}, by_id, allow_unlisted, owners)


class Refused(Exception):
    """``to`` cannot be reached: ``code`` is the API error code, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    member_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What ``to`` reaches: ``fan_out`` when it names a team or member (a parent notification
    with one child per recipient), else the one literal recipient."""

    recipients: tuple[Recipient, ...]
    fan_out: bool
    # Members of a named team left out, with why (not approved, no address on the channel).
    skipped: tuple[tuple[str, str], ...] = ()


def canonical(channel: str, address: str) -> str:
    """``address`` in the one form the directory compares: E.164 for phones, a normalized
    domain for email, as given elsewhere. Raises AddressError (``invalid_phone``,
    ``invalid_email``, ``invalid_recipient``) for a malformed phone, email, FCM or Telegram
    address."""
    if channel == "email":
        return addresses.email(address)
    if channel == "sms":
        return addresses.phone(address)
    if channel == "whatsapp":
        return addresses.phone(address.removeprefix("whatsapp:"))
    if channel == "telegram":
        return addresses.telegram_chat(address)
    if channel == "push" and address.startswith(addresses.FCM_PREFIX):
        return addresses.fcm_token(address)
    return address


def is_reference(to: str) -> bool:
    """``to`` names a team, a member or a team's on-call rather than an address."""
    return any(p.fullmatch(to) is not None for p in (TEAM_ID, MEMBER_ID, ONCALL))


def on_call(directory: Directory, team_id: str, at: float) -> OnCall | None:
    """Who of team ``team_id`` is on call at ``at`` (unix seconds); None for an unknown team or
    one without a rotation. Raises ValueError for an instant beyond the years ``datetime``
    holds."""
    team = directory.teams.get(team_id)
    if team is None or team.oncall is None:
        return None
    return who(team.oncall, at)


def resolve(directory: Directory, channel: str, to: str, at: float | None = None
            ) -> Resolution:
    """Who ``to`` reaches on ``channel``; ``at`` (unix seconds) is the instant an
    ``oncall:team_x`` target is resolved for, required for one. Raises Refused
    (``recipient_not_found``, ``recipient_not_approved``, ``recipient_has_no_address``) or
    AddressError (syntax)."""
    if TEAM_ID.fullmatch(to):
        team = directory.teams.get(to)
        if team is None:
            raise Refused("recipient_not_found", f"No such team: '{to}'.")
        return _reach(directory, channel, team.members,
                      f"Team '{to}' has no approved member with a {channel} address.")
    oncall = ONCALL.fullmatch(to)
    if oncall:
        if at is None:  # a caller's bug: the pure directory has no clock to fall back on
            raise ValueError("resolving an on-call target needs the instant ('at')")
        found = on_call(directory, oncall.group(1), at)
        if found is None:
            raise Refused("recipient_not_found",
                          f"No such team with an on-call rotation: '{oncall.group(1)}'.")
        return _reach(directory, channel, found.members,
                      f"Nobody on call for '{oncall.group(1)}' at {iso(at)} "
                      f"({', '.join(found.members)}) is approved with a {channel} address.")
    if MEMBER_ID.fullmatch(to):
        return Resolution((Recipient(_member_address(directory, channel, to), to),), True)
    address = canonical(channel, to)
    owner = directory.owners.get((channel, address))
    if owner is not None:
        if not directory.members[owner].approved:
            raise Refused("recipient_not_approved",
                          f"'{to}' belongs to a member who is not approved.")
        return Resolution((Recipient(to, owner),), False)
    if channel not in directory.allow_unlisted:
        raise Refused("recipient_not_approved",
                      f"'{to}' is not the {channel} address of an approved member, and "
                      f"recipients.allow_unlisted does not allow unlisted {channel} addresses.")
    return Resolution((Recipient(to),), False)


def _reach(directory: Directory, channel: str, member_ids: Iterable[str],
           nobody: str) -> Resolution:
    """A fan-out to the approved ones of ``member_ids`` with an address on ``channel``; Refused
    (``recipient_not_approved``, ``nobody`` its message) when there is none."""
    reached, skipped = [], []
    for mid in member_ids:
        member = directory.members[mid]
        address = member.address(channel)
        if not member.approved:
            skipped.append((mid, "not approved"))
        elif address is None:
            skipped.append((mid, f"no {channel} address"))
        else:
            reached.append(Recipient(address, mid))
    if not reached:
        raise Refused("recipient_not_approved", nobody)
    return Resolution(tuple(reached), True, tuple(skipped))


def _member_address(directory: Directory, channel: str, mid: str) -> str:
    member = directory.members.get(mid)
    if member is None:
        raise Refused("recipient_not_found", f"No such member: '{mid}'.")
    if not member.approved:
        raise Refused("recipient_not_approved", f"Member '{mid}' is not approved.")
    address = member.address(channel)
    if address is None:
        raise Refused("recipient_has_no_address", f"Member '{mid}' has no {channel} address.")
    return address


def still_approved(directory: Directory, channel: str, recipient: str,
                   member_id: str | None) -> str | None:
    """At delivery: why a queued notification may no longer go out (its member was removed or
    unapproved by a reload since it was queued), or None."""
    if member_id is None and is_reference(recipient):
        return f"'{recipient}' names a team or member: only its per-member notifications go out"
    if member_id is not None:
        member = directory.members.get(member_id)
        if member is None:
            return f"member '{member_id}' is no longer in the directory"
        if not member.approved:
            return f"member '{member_id}' is no longer approved"
        return None
    if channel in directory.allow_unlisted:
        return None
    try:
        owner = directory.owners.get((channel, canonical(channel, recipient)))
    except AddressError:
        owner = None
    if owner is None or not directory.members[owner].approved:
        return f"'{recipient}' is not the {channel} address of an approved member"
    return None


def fan_out(directory: Directory, item: NewNotification,
            make_id: Callable[[str], str], at: float | None = None) -> list[NewNotification]:
    """``item`` as the rows to store: itself for a literal address (with its owner when one is
    listed), or a parent plus one child per recipient (on call at ``at``, for an
    ``oncall:team_x``). Raises Refused or AddressError."""
    resolution = resolve(directory, item.channel, item.recipient, at)
    if not resolution.fan_out:
        return [replace(item, member_id=resolution.recipients[0].member_id)]
    parent = replace(item, fanout=len(resolution.recipients))
    children = [replace(item, id=make_id("ntf"), recipient=r.address, member_id=r.member_id,
                        parent_id=item.id, idempotency_key=None, request_hash=None,
                        metadata=dict(item.metadata))
                for r in resolution.recipients]
    return [parent, *children]


def by_preference(directory: Directory, item: NewNotification,
                  at: float | None = None) -> list[NewNotification]:
    """A target without a channel (``PREFERRED``): one item per member it names and channel
    that member prefers for the alert's severity (within the target's ``channels``), each to
    the member. Raises Refused when nobody is left."""
    resolution = resolve(directory, "in-app", item.recipient, at)
    allowed = item.metadata.get("preferred_channels")
    out = []
    for r in resolution.recipients:
        member = directory.members[r.member_id] if r.member_id else None
        if member is None:
            continue
        for channel in member.preferred(item.severity):
            if allowed is None or channel in allowed:
                out.append(replace(item, channel=channel, recipient=member.id))
    if not out:
        raise Refused("recipient_not_approved",
                      f"Nobody '{item.recipient}' names prefers a channel this target allows.")
    return out


def flush_rows(directory: Directory, items: Iterable[NewNotification],
               make_id: Callable[[str], str], at: float | None = None
               ) -> list[NewNotification]:
    """A group flush's notifications as the rows to store (``fan_out`` each, on-call targets
    resolved at ``at``, targets without a channel by each member's preferences); a target
    nobody can be reached through any more (its team lost its approved members in a reload) is
    stored failed, so the operator sees it."""
    out: list[NewNotification] = []
    expanded: list[NewNotification] = []
    for item in items:
        if item.channel != PREFERRED:
            expanded.append(item)
            continue
        try:
            expanded.extend(replace(x, id=make_id("ntf")) if i else x
                            for i, x in enumerate(by_preference(directory, item, at)))
        except (Refused, AddressError) as exc:  # stored on the inbox nobody can miss
            out.append(failed_parent(replace(item, channel="in-app"), exc))
    for item in expanded:
        try:
            out.extend(fan_out(directory, item, make_id, at))
        except (Refused, AddressError) as exc:
            out.append(failed_parent(item, exc))
    return out


def failed_parent(item: NewNotification, refused: Refused | AddressError) -> NewNotification:
    """``item`` stored as failed (``recipient_not_approved``) because nobody it names can be
    reached any more: a rule-file target whose team lost its approved members."""
    return replace(item, failure=(FailureReason.RECIPIENT_NOT_APPROVED.value, refused.message))


def mask(channel: str, address: str) -> str:
    """A personal address shown to test keys: enough to recognise, not to use."""
    if channel not in MASKED_CHANNELS:
        return address
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return address[:4] + "*" * max(0, len(address) - 6) + address[-2:]
