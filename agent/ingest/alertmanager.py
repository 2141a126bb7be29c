"""Prometheus Alertmanager's ``webhook_config`` payload (version "4") -> alerts.

Lenient where Alertmanager grows: unknown top-level fields (``notification_reason``,
``routeLabels``, ...) stay in ``IngestBatch.group`` and unknown per-alert fields in
``Alert.extra``. Strict where a wrong guess would mis-route: ``alerts`` must be an array,
label sets objects of strings, statuses firing|resolved, times RFC 3339. A payload without
``version`` is accepted when the shape matches, and so is "3" (the same shape, still sent by
old Alertmanagers); any other explicit version is rejected.
"""

from __future__ import annotations

from agent.domain import IngestBatch
from agent.ingest.common import (
    DEFAULT_LIMITS,
    Limits,
    check_version,
    group_fields,
    parse_webhook_alerts,
    require_object,
)

SOURCE = "alertmanager"
VERSION = "4"
OLD_VERSION = "3"  # Alertmanager before 0.16: no truncatedAlerts, otherwise the same body


def parse(payload: object, *, received_at: float | None = None,
          limits: Limits = DEFAULT_LIMITS) -> IngestBatch:
    """An Alertmanager webhook body (decoded JSON) -> its alerts and group fields.

    ``received_at`` decides only an alert that lacks ``status``: ended by then -> resolved.
    Raises IngestError (LimitExceeded past ``limits``).
    """
    obj = require_object(payload)
    check_version(obj, VERSION, OLD_VERSION)
    alerts = parse_webhook_alerts(obj, SOURCE, received_at, limits)
    return IngestBatch(source=SOURCE, alerts=alerts, group=group_fields(obj))
