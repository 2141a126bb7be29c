"""The rule-file format (YAML), as strict pydantic models: an unknown key is an error.

Alertmanager users should feel at home: ``routes`` with ``matchers``, ``group_by``, ``group_wait``,
``group_interval``, ``repeat_interval``, ``continue``, nested ``routes``; ``inhibit_rules``;
``time_intervals``. Added: ``severity``/``priority`` tags, ``notify`` targets, ``templates``,
``severity_map`` and ``generic_sources`` (mappings for ``POST /hooks/generic/{name}``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from agent.directory import PREFERRED
from agent.domain import Channel, Priority, Severity
from agent.routing.ruleset import Target

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(value: Any) -> float:
    """Prometheus-style duration ('30s', '5m', '1h30m', '4h') or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration like '30s', '5m' or '4h' is required")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ValueError("a duration like '30s', '5m' or '4h' is required")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(value):
        raise ValueError(f"invalid duration {value!r} (use e.g. '30s', '5m', '1h30m')")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration)]
# A Twilio Content SID: a pre-approved WhatsApp template.
ContentSid = Annotated[str, Field(pattern=r"^HX[0-9a-fA-F]{32}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class NotifySpec(_Strict):
    # None: a team, member or on-call target reaches each member on the channels of their
    # ``preferences`` for the alert's severity (within ``channels`` when given).
    channel: Channel | None = None
    to: str = Field(min_length=1)
    channels: list[Channel] | None = None
    template: str | None = None
    # How a later notification of the same group reaches this target: edit the first message
    # (the default where the channel can edit), reply in its thread, or post anew.
    update: Literal["edit", "thread", "new"] | None = None
    # On resolve, delete the message instead of editing it (where the channel can delete).
    retract: bool = False
    # A message over the channel's size budget: numbered parts or truncated with a link;
    # unset: the channel's own default.
    overflow: Literal["split", "truncate"] | None = None
    # WhatsApp: the pre-approved template (Twilio Content SID) to send instead of free text,
    # which WhatsApp refuses outside the 24-hour session window; overrides the template's.
    content_sid: ContentSid | None = None

    @model_validator(mode="after")
    def _whatsapp_only(self) -> Self:
        if self.content_sid is not None and self.channel is not Channel.WHATSAPP:
            raise ValueError("content_sid applies to the whatsapp channel only")
        if self.channel is None and not re.fullmatch(_PEOPLE, self.to):
            raise ValueError("a target without a channel names a team, a member or "
                             "oncall:team_x: their preferences choose the channels")
        if self.channel is not None and self.channels is not None:
            raise ValueError("channels: limits the preferred channels of a target without "
                             "a channel")
        return self

    def target(self) -> Target:
        return Target(self.channel.value if self.channel is not None else PREFERRED, self.to,
                      self.template, self.update, self.retract, self.overflow,
                      self.content_sid,
                      tuple(c.value for c in self.channels) if self.channels else None)


class EscalationStepSpec(_Strict):
    after: Duration  # from the group's first notification
    notify: list[NotifySpec] = Field(min_length=1)


class EscalationSpec(_Strict):
    """Louder until someone answers: ordered steps, each ``after`` the first notification."""

    until: Literal["acknowledged", "resolved"] = "acknowledged"
    repeat: int = Field(default=0, ge=0, le=100)  # runs of the whole policy after the first
    steps: list[EscalationStepSpec] = Field(min_length=1, max_length=20)


class RouteSpec(_Strict):
    name: str | None = None
    matchers: list[str] = []
    sources: list[str] | None = None
    severity: Severity | None = None
    priority: Priority | None = None
    notify: list[NotifySpec] | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool | None = None
    active_time_intervals: list[str] | None = None
    mute_time_intervals: list[str] | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteSpec] = []
    # Teams and members (team_x, mem_y) allowed to acknowledge from a chat click or a link;
    # inherited by nested routes.
    ack_by: list[str] | None = None
    escalation: EscalationSpec | None = None  # inherited by nested routes


class SeverityMapSpec(_Strict):
    label: str = "severity"
    map: dict[str, Severity] = {
        "critical": Severity.CRITICAL,
        "page": Severity.CRITICAL,
        "error": Severity.CRITICAL,
        "warning": Severity.WARNING,
        "warn": Severity.WARNING,
        "info": Severity.INFO,
        "none": Severity.INFO,
    }
    default: Severity = Severity.WARNING


class InhibitRuleSpec(_Strict):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = []


class TimeIntervalSpec(_Strict):
    name: str = Field(min_length=1)
    time_intervals: list[dict[str, Any]]


class TemplateSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    channel: Channel | None = None
    subject: str | None = None
    body: str = Field(min_length=1)
    # WhatsApp targets using this template send the pre-approved one instead (see NotifySpec).
    content_sid: ContentSid | None = None

    @model_validator(mode="after")
    def _whatsapp_only(self) -> Self:
        if self.content_sid is not None and self.channel not in (None, Channel.WHATSAPP):
            raise ValueError("content_sid applies to the whatsapp channel only")
        return self


class RouteDefaults(_Strict):
    """Settings every top-level route inherits unless it sets its own."""

    notify: list[NotifySpec] = [NotifySpec(channel=Channel.CONSOLE, to="ops")]
    group_by: list[str] = []
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 14400.0
    send_resolved: bool = True
    priority: Priority = Priority.NORMAL


# As agent/directory.py's TEAM_ID and MEMBER_ID: what `to` reads as a team or member.
_TEAM_ID = r"^team_[A-Za-z0-9_-]{1,64}$"
_MEMBER_ID = r"^mem_[A-Za-z0-9_-]{1,64}$"


def parse_date_time(value: Any) -> datetime:
    """ISO 8601 date and time ('2026-12-07T09:00:00', with or without an offset or 'Z')."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("a date and time like '2026-12-07T09:00:00' is required")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date and time {value!r} (use e.g. '2026-12-07T09:00:00')"
                         ) from None


# Naive: a wall-clock time in the rotation's time zone; with an offset: that instant.
DateTime = Annotated[datetime, BeforeValidator(parse_date_time)]
# The shortest shift: shorter ones are not shifts anyone works, and would make a two-week
# listing (alert-agent oncall) tens of thousands of lines.
MIN_SHIFT_SECONDS = 3600.0


class OverrideSpec(_Strict):
    """``member`` on call from ``start`` to ``end`` instead of the rotation's member."""

    member: str = Field(pattern=_MEMBER_ID)
    start: DateTime
    end: DateTime


class OnCallSpec(_Strict):
    """A team's on-call rotation (agent/oncall.py has the semantics)."""

    members: list[str] = Field(min_length=1)
    length: Duration
    # The first shift's start, on the wall clock of ``timezone``.
    handoff: DateTime
    timezone: str
    overrides: list[OverrideSpec] = []

    @field_validator("length")
    @classmethod
    def _long_enough(cls, value: float) -> float:
        if value < MIN_SHIFT_SECONDS:
            raise ValueError("a rotation's length must be at least 1h")
        return value

    @field_validator("handoff")
    @classmethod
    def _wall_clock(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            raise ValueError("handoff is a wall-clock time in the rotation's timezone: "
                             "write it without an offset")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use e.g. 'Europe/Lisbon')"
                             ) from None
        return value


class TeamSpec(_Strict):
    """A team of the directory: ``to: team_x`` reaches each approved member."""

    id: str = Field(pattern=_TEAM_ID)
    name: str | None = Field(default=None, max_length=200)
    members: list[str] = []
    # ``to: oncall:team_x`` reaches whoever of the rotation is on call when it is resolved.
    oncall: OnCallSpec | None = None


_PEOPLE = r"(team_|mem_|oncall:team_)[A-Za-z0-9_-]{1,64}"


class MemberSpec(_Strict):
    """A person of the directory and their address per channel (``addresses: {sms: "+351…"}``)."""

    id: str = Field(pattern=_MEMBER_ID)
    name: str | None = Field(default=None, max_length=200)
    # Seed 000: every recipient is an approved, opted-in member; not approved reaches nobody.
    approved: bool = False
    timezone: str | None = None
    addresses: dict[Channel, str] = {}
    # Severity -> the channels a target without a channel reaches this member on
    # (``{warning: [email], critical: [sms, push]}``); a severity not listed takes the next
    # lower one's, and nothing listed means in-app.
    preferences: dict[Severity, list[Channel]] = {}


class RuleFile(_Strict):
    """One YAML file of the rules directory; files are merged in file-name order."""

    defaults: RouteDefaults | None = None
    routes: list[RouteSpec] = []
    severity_map: SeverityMapSpec | None = None
    inhibit_rules: list[InhibitRuleSpec] = []
    time_intervals: list[TimeIntervalSpec] = []
    templates: list[TemplateSpec] = []
    generic_sources: dict[str, dict[str, Any]] = {}
    teams: list[TeamSpec] = []
    members: list[MemberSpec] = []
