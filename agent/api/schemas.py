"""Response bodies and query parameters, as pydantic models used by the OpenAPI document.

Handlers build their JSON with the functions of ``serialize.py`` (plain dicts: the hot paths do
not pay for model construction). These models describe that JSON; they forbid extra fields, so
a field added to a serializer but not here makes the fuzz test's schema check fail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.domain import (
    Channel,
    FailureReason,
    NotificationFailureClass,
    Priority,
    Severity,
    Status,
)

Timestamp = datetime  # ISO 8601 UTC, millisecond precision, "Z" suffix (domain.iso)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Out):
    type: str = Field(description="The error class, e.g. invalid_request_error, not_found.")
    code: str = Field(description="A machine-readable code, e.g. missing_required_field.")
    message: str
    param: str | None = Field(description="The offending parameter, when one is to blame.")
    doc_url: str


class ErrorEnvelope(_Out):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail


class AttemptOut(_Out):
    """One delivery attempt (a row of the deliveries table)."""

    attempt: int = Field(ge=1, description="1 for the first attempt; counts claims.")
    channel: Channel
    started_at: Timestamp
    finished_at: Timestamp
    outcome: Literal["delivered", "retry", "deferred", "failed"]
    failure_reason: str | None
    failure_class: Literal["retryable", "permanent", "technical"] | None = Field(
        description="retryable or permanent as the channel said; technical: the channel crashed."
    )
    failure_details: str | None
    http_status: int | None = Field(description="The far side's HTTP status, when there was one.")
    retry_after: float | None = Field(
        description="Seconds the far side asked to wait (Retry-After), when it did."
    )


class NotificationOut(_Out):
    id: str = Field(pattern=r"^ntf_")
    object: Literal["notification"]
    status: Status
    channel: Channel
    to: str
    message: str | None
    subject: str | None
    severity: Severity
    template_id: str | None
    metadata: dict[str, Any]
    priority: Priority
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: Timestamp | None
    idempotency_key: str | None
    credits_used: int
    simulated: bool
    attempt_count: int = Field(description="How many delivery attempts started so far.")
    attempts: list[AttemptOut] | None = Field(
        default=None,
        description="Every delivery attempt, oldest first (a re-drive's go on numbering). In "
        "GET /v1/notifications/{id}, the list and the retry answer.",
    )
    batch_id: str | None
    parent_id: str | None = Field(
        description="For one member's notification of a send to a team or member: the "
        "notification that was sent (list them with ?parent_id=).")
    member_id: str | None = Field(
        description="The directory member this notification reaches, when known.")
    recipients: int | None = Field(
        description="For a send to a team or member: how many member notifications it made; "
        "its status sums theirs up (queued while any is, delivered when any was).")
    schedule_at: Timestamp | None
    created_at: Timestamp
    sent_at: Timestamp | None
    delivered_at: Timestamp | None
    read_at: Timestamp | None
    failed_at: Timestamp | None
    cancelled_at: Timestamp | None
    failure_reason: str | None
    failure_details: str | None
    failure_class: NotificationFailureClass | None = Field(
        description="Set while failed: permanent (the far side refused this message or "
        "recipient), temporary (retries exhausted or delivery.retry_for passed: worth a "
        "re-drive), technical (our side: a channel crash, a config or template error).")
    last_error: str | None


class _CursorPage(_Out):
    object: Literal["list"]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class NotificationList(_CursorPage):
    data: list[NotificationOut]


class RetryManyOut(_Out):
    object: Literal["retry_result"]
    retried: int = Field(description="Failed notifications queued again.")
    ids: list[str] | None = Field(description="Their ids, oldest first; null when more than "
                                  "100 were re-driven.")
    has_more: bool = Field(description="More failed notifications match: call again.")


class BatchItem(_Out):
    id: str = Field(pattern=r"^ntf_")
    status: Status
    channel: Channel


class BatchOut(_Out):
    object: Literal["batch"]
    id: str = Field(pattern=r"^bat_")
    total: int
    accepted: int
    rejected: int
    notifications: list[BatchItem]
    created_at: Timestamp


class CancelOut(_Out):
    id: str
    object: Literal["notification"]
    status: Status
    cancelled_at: Timestamp | None


class TemplateOut(_Out):
    id: str = Field(pattern=r"^tpl_")
    object: Literal["template"]
    name: str
    channel: Channel
    body: str
    variables: list[str]
    description: str | None
    metadata: dict[str, Any]
    usage_count: int
    last_used_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class TemplateList(_CursorPage):
    data: list[TemplateOut]


class TemplateDeleted(_Out):
    id: str
    object: Literal["template"]
    deleted: Literal[True]


class InboxItemOut(_Out):
    object: Literal["inbox_item"]
    notification_id: str
    to: str
    title: str | None
    body: str
    severity: Severity
    metadata: dict[str, Any]
    created_at: Timestamp
    read_at: Timestamp | None


class InboxList(_CursorPage):
    data: list[InboxItemOut]


class MemberOut(_Out):
    id: str = Field(pattern=r"^mem_")
    object: Literal["member"]
    name: str
    approved: bool = Field(description="Only approved members are ever sent to.")
    timezone: str | None
    addresses: dict[str, str] = Field(
        description="Channel -> address; sms, whatsapp and email masked for test keys.")
    team_ids: list[str] | None = Field(default=None, description="In GET /v1/members/{id}.")


class TeamOut(_Out):
    id: str = Field(pattern=r"^team_")
    object: Literal["team"]
    name: str
    member_ids: list[str]
    approved_count: int
    members: list[MemberOut] | None = Field(default=None,
                                            description="In GET /v1/teams/{id}.")


class TeamList(_Out):
    object: Literal["list"]
    data: list[TeamOut]


class OnCallOut(_Out):
    on_call: list[str] = Field(description="The member ids on call at the instant.")
    next: list[str] = Field(description="Who takes over at 'until' (empty when nobody will).")
    until: Timestamp | None = Field(
        description="When someone else comes on call; null when nobody else ever will.")


class AlertOut(_Out):
    id: str = Field(pattern=r"^alt_")
    object: Literal["alert"]
    monitor_id: str | None
    type: str
    status: Literal["active", "resolved"]
    severity: Severity
    message: str | None
    source: str = Field(description="alertmanager, grafana, generic:<name> or api.")
    alertname: str | None
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str | None
    extra: dict[str, Any]
    starts_at: Timestamp | None
    ends_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    resolved_at: Timestamp | None
    last_received_at: Timestamp
    receive_count: int
    simulated: bool = Field(description="Posted with an sk_test_ key: its notifications are "
                            "simulated.")
    acknowledged: bool = False
    acknowledged_by: str | None = Field(default=None, description="The first acknowledgment's "
                                        "`by` (a member id for a chat click or link).")
    acknowledged_at: Timestamp | None = None
    acknowledged_via: str | None = Field(default=None, description="api, cli, slack, telegram, "
                                         "link or sms.")


class AlertWithNotifications(AlertOut):
    notifications: list[NotificationOut]


class AlertData(_Out):
    data: AlertOut


class AlertDetail(_Out):
    data: AlertWithNotifications


class PageMeta(_Out):
    page: int
    per_page: int
    total: int


class AlertList(_Out):
    object: Literal["list"]
    data: list[AlertOut]
    meta: PageMeta


class RuleProblem(_Out):
    file: str
    line: int | None
    message: str


class RulesStatus(_Out):
    object: Literal["rules_status"]
    rules_dir: str
    last_reload_successful: bool
    last_success_at: Timestamp | None
    last_attempt_at: Timestamp | None
    config_hash: str | None
    files: list[str]
    routes: int
    generic_sources: list[str]
    errors: list[RuleProblem]


class HookResult(_Out):
    status: Literal["ok"]
    received: int = Field(description="Alerts in the payload.")
    created: int
    updated: int
    resolved: int
    ignored: int = Field(description="Alerts older than what is stored (out-of-order).")


class ReceiptResult(_Out):
    status: Literal["ok"]
    outcome: Literal["delivered", "read", "failed", "ignored"] = Field(
        description="What the callback did to its notification: ignored for an intermediate "
        "status, an unknown message or nothing left to change.")


class Health(_Out):
    status: Literal["ok"]


class ReadyChecks(_Out):
    store: bool
    dispatcher: bool


class Ready(_Out):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


# --- query parameters --------------------------------------------------------------------------


class _Query(BaseModel):
    # Unknown query parameters are ignored by the handlers.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class CursorQuery(_Query):
    limit: int = Field(default=25, ge=1, le=100, description="Items per page.")
    cursor: str | None = Field(default=None, description="next_cursor of the previous page.")


class NotificationListQuery(CursorQuery):
    channel: Channel | None = None
    status: Status | None = None
    from_: datetime | None = Field(default=None, alias="from",
                                   description="Created at or after (ISO 8601).")
    to: datetime | None = Field(default=None, description="Created before (ISO 8601).")
    failure_reason: FailureReason | None = None
    failure_class: NotificationFailureClass | None = Field(
        default=None, description="Failed notifications of this class.")
    parent_id: str | None = Field(
        default=None, description="The member notifications of this send to a team or member.")


class TemplateListQuery(CursorQuery):
    channel: Channel | None = None


class InboxQuery(CursorQuery):
    to: str = Field(min_length=1, description="The recipient (alias: recipient).")


class OnCallQuery(_Query):
    at: datetime | None = Field(default=None,
                                description="The instant asked about (ISO 8601); default: now.")


class AlertListQuery(_Query):
    status: Literal["active", "resolved"] | None = None
    monitor_id: str | None = None
    page: int = Field(default=1, ge=1, le=1_000_000)
    per_page: int = Field(default=20, ge=1, le=100)
