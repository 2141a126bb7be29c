"""The hook payloads the ingest parsers accept, as permissive pydantic models for the document.

The parsers in ``agent/ingest`` validate field by field (with messages naming the field) and
are a superset of these shapes: they coerce scalar label values and accept unknown fields.
``tests/integration/test_openapi.py`` checks real sender samples against both these models and
the parsers, and the fuzz test sends what these models generate to the live hooks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    # Senders grow: unknown fields are kept (group fields, Alert.extra), never refused.
    model_config = ConfigDict(extra="allow")


StrMap = dict[str, str]


class WebhookAlert(_Open):
    """One alert of an Alertmanager (or Grafana unified) webhook."""

    status: Literal["firing", "resolved"] | None = Field(
        default=None, description="Absent: resolved when endsAt is at or before receipt.")
    labels: StrMap | None = None
    annotations: StrMap | None = None
    startsAt: datetime | None = None
    endsAt: datetime | None = Field(
        default=None, description="0001-01-01T00:00:00Z (Go's zero time) means not set.")
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(_Open):
    """Alertmanager's ``webhook_config`` body, version 4."""

    version: Literal["4"] | None = None
    groupKey: str | None = None
    truncatedAlerts: int | None = None
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    groupLabels: StrMap | None = None
    commonLabels: StrMap | None = None
    commonAnnotations: StrMap | None = None
    externalURL: str | None = None
    alerts: list[WebhookAlert]


class GrafanaWebhook(_Open):
    """Grafana unified alerting (8+): Alertmanager's shape plus Grafana's group fields."""

    version: Literal["1"] | None = None
    groupKey: str | None = None
    truncatedAlerts: int | None = None
    status: Literal["firing", "resolved"] | None = None
    receiver: str | None = None
    orgId: int | None = None
    title: str | None = None
    state: str | None = None
    message: str | None = None
    groupLabels: StrMap | None = None
    commonLabels: StrMap | None = None
    commonAnnotations: StrMap | None = None
    externalURL: str | None = None
    alerts: list[WebhookAlert]


class EvalMatch(_Open):
    metric: str | None = None
    value: float | None = None
    tags: StrMap | None = None


class GrafanaLegacyWebhook(_Open):
    """Grafana legacy dashboard alerting: one rule's state change (no ``alerts`` array)."""

    ruleName: str = Field(min_length=1)
    state: Literal["alerting", "no_data", "ok", "paused", "pending", "unknown"]
    ruleId: int | str | None = None
    ruleUrl: str | None = None
    evalMatches: list[EvalMatch] | None = None
    tags: StrMap | None = None
    title: str | None = None
    message: str | None = None
    imageUrl: str | None = None
    orgId: int | None = None
    dashboardId: int | None = None
    panelId: int | None = None


def grafana_schema(ref: str) -> dict[str, Any]:
    """The /hooks/grafana body: either format, told apart by the ``alerts`` array."""
    return {"anyOf": [{"$ref": ref.format(model="GrafanaWebhook")},
                      {"$ref": ref.format(model="GrafanaLegacyWebhook")}]}


GENERIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Any JSON object; the source's mapping in the rules turns it into alerts.",
}
