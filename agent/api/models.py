"""Request bodies (pydantic, strict shape) and the translation of their errors into ApiErrors.

Status policy, from seed 000: a malformed body, a missing field, a wrong type or an unknown
parameter is 400 ``invalid_request_error``; a well-formed value that is semantically wrong (unknown
channel, out-of-range date, too long) is 422 ``validation_error``. Batches answer 422 for any item.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.api.errors import ApiError
from agent.domain import Channel, FailureReason, NotificationFailureClass, Priority, Severity
from agent.services.notifications import REDRIVE_DEFAULT_LIMIT, REDRIVE_MAX_LIMIT

M = TypeVar("M", bound=BaseModel)

MAX_MESSAGE_CHARS = 16_384
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# Cross-field rules the handler checks after the model (notifications._build), stated in the
# OpenAPI document so generated requests and clients know them.
_SEND_RULES: dict[str, Any] = {
    "anyOf": [{"required": ["message"]}, {"required": ["template_id"]}],
    "if": {"properties": {"channel": {"const": "webhook"}}, "required": ["channel"]},
    "then": {"properties": {"to": {"pattern": "^https?://"}}},
}
# The document states the name rule as a pattern; the validator keeps its friendlier message.
_NAME_SCHEMA: dict[str, Any] = {"pattern": f"^{TEMPLATE_NAME.pattern}$"}


class SendRequest(_Strict):
    model_config = ConfigDict(json_schema_extra=_SEND_RULES)

    channel: Channel
    to: str = Field(
        min_length=1, max_length=512, validation_alias=AliasChoices("to", "recipient"),
        description="A team (team_…: each approved member), a member (mem_…) or an address: "
        "E.164 phone, email, Slack channel, Telegram chat id, ... Literal sms, whatsapp and "
        "email addresses must be approved members' unless recipients.allow_unlisted says.",
    )
    message: str | None = Field(default=None, min_length=1, max_length=MAX_MESSAGE_CHARS)
    subject: str | None = Field(default=None, max_length=998)
    template_id: str | None = Field(default=None, min_length=1, max_length=64)
    severity: Severity = Severity.INFO
    metadata: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("metadata", "variables")
    )
    schedule_at: datetime | None = None
    priority: Priority = Priority.NORMAL
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("to")
    @classmethod
    def _to_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class BatchRequest(_Strict):
    notifications: list[dict[str, Any]]


class RetryManyRequest(_Strict):
    """Which failed notifications to re-drive: the list's filters; only failed rows are
    touched, oldest first, at most ``limit`` per call."""

    channel: Channel | None = None
    from_: datetime | None = Field(default=None, alias="from",
                                   description="Created at or after (ISO 8601).")
    to: datetime | None = Field(default=None, description="Created at or before (ISO 8601).")
    failure_reason: FailureReason | None = None
    failure_class: NotificationFailureClass | None = None
    limit: int = Field(default=REDRIVE_DEFAULT_LIMIT, ge=1, le=REDRIVE_MAX_LIMIT,
                       description="At most this many per call (has_more says if more match).")


class TemplateCreate(_Strict):
    name: str = Field(json_schema_extra=_NAME_SCHEMA)
    channel: Channel
    body: str = Field(min_length=1, max_length=4096)
    description: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_template_name(v)


class TemplateUpdate(_Strict):
    name: str | None = Field(default=None, json_schema_extra=_NAME_SCHEMA)
    body: str | None = Field(default=None, min_length=1, max_length=4096)
    description: str | None = Field(default=None, max_length=256)
    metadata: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_template_name(v)


def check_template_name(v: str) -> str:
    if not TEMPLATE_NAME.fullmatch(v):
        raise ValueError("use 1-64 letters, digits, '_' or '-'")
    return v


_TYPE_ERRORS = ("_type", "_parsing")
_CHOICES = {
    "channel": ", ".join(c.value for c in Channel),
    "severity": ", ".join(s.value for s in Severity),
    "priority": ", ".join(p.value for p in Priority),
    "failure_reason": ", ".join(r.value for r in FailureReason),
    "failure_class": ", ".join(c.value for c in NotificationFailureClass),
}


def _param(loc: tuple[int | str, ...], prefix: str) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def api_error_from(exc: ValidationError, prefix: str = "", force_422: bool = False) -> ApiError:
    """The first problem of a pydantic error, as the seed's envelope would name it."""
    err = exc.errors(include_url=False)[0]
    kind, loc = err["type"], tuple(err["loc"])
    field = str(loc[-1]) if loc else ""
    param = _param(loc, prefix) or None
    if kind == "missing":
        status, code, msg = 400, "missing_required_field", f"The '{param}' field is required."
    elif kind == "extra_forbidden":
        status, code, msg = 400, "unknown_parameter", f"Received unknown parameter: '{param}'."
    elif kind == "enum":
        status, code = 422, f"invalid_{field}" if field in _CHOICES else "invalid_value"
        choices = _CHOICES.get(field)
        msg = f"Invalid {field} {err.get('input')!r}." + (f" One of: {choices}." if choices else "")
    elif kind.endswith(_TYPE_ERRORS):
        status, code = 400, "invalid_type"
        msg = f"The '{param}' field has the wrong type: {err['msg'].lower()}."
    else:
        status, code = 422, "invalid_value"
        msg = f"Invalid '{param}': {err['msg']}."
    if force_422:
        status = 422
    return ApiError(status, code, msg, param)


def parse(model: type[M], data: Any, prefix: str = "", force_422: bool = False) -> M:
    """Validate ``data`` into ``model`` or raise the matching ApiError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise api_error_from(exc, prefix, force_422) from exc
