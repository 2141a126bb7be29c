"""Request models and the mapping of pydantic errors onto ApiErrors (agent.api.models)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.api.errors import ApiError
from agent.api.models import SendRequest, TemplateCreate, TemplateUpdate, parse
from agent.domain import Channel, Priority, Severity


def _send(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"channel": "webhook", "to": "https://example.test/h", "message": "hi"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _error(model: Any, data: Any, **kwargs: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse(model, data, **kwargs)
    return info.value


# --- SendRequest: success ----------------------------------------------------------------------


def test_send_minimal_valid_request_has_defaults() -> None:
    req = parse(SendRequest, _send())
    assert req.channel is Channel.WEBHOOK
    assert req.to == "https://example.test/h"
    assert req.message == "hi"
    assert req.severity is Severity.INFO
    assert req.priority is Priority.NORMAL
    assert req.metadata == {}
    assert req.idempotency_key is None


def test_send_aliases_recipient_and_variables() -> None:
    data = {"channel": "email", "recipient": "ops@example.test", "template_id": "tpl_1",
            "variables": {"server": "db-1"}}
    req = parse(SendRequest, data)
    assert req.to == "ops@example.test"
    assert req.metadata == {"server": "db-1"}


def test_send_idempotency_key_of_255_chars_accepted() -> None:
    assert parse(SendRequest, _send(idempotency_key="k" * 255)).idempotency_key == "k" * 255


# --- SendRequest: 400s -------------------------------------------------------------------------


def test_missing_channel_is_400_missing_required_field() -> None:
    err = _error(SendRequest, _send(channel=None))
    assert (err.status, err.code, err.param) == (400, "missing_required_field", "channel")
    assert err.type == "invalid_request_error"


def test_missing_to_is_400_missing_required_field() -> None:
    err = _error(SendRequest, _send(to=None))
    assert (err.status, err.code, err.param) == (400, "missing_required_field", "to")


def test_unknown_field_is_400_unknown_parameter() -> None:
    err = _error(SendRequest, _send(colour="red"))
    assert (err.status, err.code, err.param) == (400, "unknown_parameter", "colour")
    assert "colour" in err.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("to", 5), ("metadata", "x"), ("message", ["a"]), ("idempotency_key", 12)],
)
def test_wrong_type_is_400_invalid_type(field: str, value: Any) -> None:
    err = _error(SendRequest, _send(**{field: value}))
    assert (err.status, err.code, err.param) == (400, "invalid_type", field)


def test_body_that_is_not_an_object_is_400_invalid_type() -> None:
    err = _error(SendRequest, ["not", "an", "object"])
    assert (err.status, err.code) == (400, "invalid_type")


# --- SendRequest: 422s -------------------------------------------------------------------------


def test_unknown_channel_is_422_invalid_channel() -> None:
    err = _error(SendRequest, _send(channel="nope"))
    assert (err.status, err.code, err.param) == (422, "invalid_channel", "channel")
    assert err.type == "validation_error"
    assert "'nope'" in err.message
    assert "webhook" in err.message  # the choices are listed


def test_unknown_severity_is_422_invalid_severity() -> None:
    err = _error(SendRequest, _send(severity="loud"))
    assert (err.status, err.code, err.param) == (422, "invalid_severity", "severity")


def test_unknown_priority_is_422_invalid_priority() -> None:
    err = _error(SendRequest, _send(priority="urgent"))
    assert (err.status, err.code, err.param) == (422, "invalid_priority", "priority")


def test_idempotency_key_of_256_chars_is_422_invalid_value() -> None:
    err = _error(SendRequest, _send(idempotency_key="k" * 256))
    assert (err.status, err.code, err.param) == (422, "invalid_value", "idempotency_key")


@pytest.mark.parametrize("to", ["", "   "])
def test_empty_or_blank_recipient_is_422(to: str) -> None:
    err = _error(SendRequest, _send(to=to))
    assert (err.status, err.code, err.param) == (422, "invalid_value", "to")


def test_message_too_long_is_422() -> None:
    err = _error(SendRequest, _send(message="m" * 16_385))
    assert (err.status, err.code, err.param) == (422, "invalid_value", "message")


# --- prefix and force_422 (batch items) --------------------------------------------------------


def test_prefix_and_force_422_name_the_batch_item() -> None:
    err = _error(SendRequest, _send(channel=None), prefix="notifications[3]", force_422=True)
    assert err.status == 422
    assert err.code == "missing_required_field"
    assert err.param == "notifications[3].channel"


def test_prefix_without_force_keeps_status() -> None:
    err = _error(SendRequest, _send(colour="red"), prefix="notifications[0]")
    assert (err.status, err.param) == (400, "notifications[0].colour")


def test_nested_location_is_rendered_in_param() -> None:
    err = _error(TemplateUpdate, {"metadata": "x"}, prefix="body")
    assert err.param == "body.metadata"


# --- TemplateCreate ----------------------------------------------------------------------------


def _tpl(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "disk_full-1", "channel": "email", "body": "{{ host }}"}
    data.update(overrides)
    return data


@pytest.mark.parametrize("name", ["a", "disk_full-1", "ABC_def-123", "n" * 64])
def test_template_valid_names(name: str) -> None:
    assert parse(TemplateCreate, _tpl(name=name)).name == name


@pytest.mark.parametrize("name", ["bad name!", "", "n" * 65, "dots.no", "slash/no", "émoji"])
def test_template_invalid_names_are_422(name: str) -> None:
    err = _error(TemplateCreate, _tpl(name=name))
    assert (err.status, err.code, err.param) == (422, "invalid_value", "name")


def test_template_name_with_trailing_newline_is_rejected() -> None:
    err = _error(TemplateCreate, _tpl(name="disk_full\n"))
    assert (err.status, err.param) == (422, "name")


def test_template_body_limits() -> None:
    assert parse(TemplateCreate, _tpl(body="b" * 4096)).body == "b" * 4096
    for body in ("b" * 4097, ""):
        err = _error(TemplateCreate, _tpl(body=body))
        assert (err.status, err.code, err.param) == (422, "invalid_value", "body")


def test_template_description_limits() -> None:
    assert parse(TemplateCreate, _tpl(description="d" * 256)).description == "d" * 256
    err = _error(TemplateCreate, _tpl(description="d" * 257))
    assert (err.status, err.code, err.param) == (422, "invalid_value", "description")


def test_template_unknown_channel_is_422_invalid_channel() -> None:
    err = _error(TemplateCreate, _tpl(channel="pager"))
    assert (err.status, err.code) == (422, "invalid_channel")


def test_template_update_name_rules_apply_and_none_allowed() -> None:
    assert parse(TemplateUpdate, {}).name is None
    err = _error(TemplateUpdate, {"name": "bad name!"})
    assert (err.status, err.param) == (422, "name")
