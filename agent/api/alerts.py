"""``/v1/alerts`` (seed 002): alerts ingested or posted, with the notifications they produced."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from agent.api.bodies import read_json_object
from agent.api.context import ctx
from agent.api.errors import ApiError, json_response
from agent.api.idempotency import idempotency_conflict, request_hash
from agent.api.limits import check_metadata, ingest_limits, limit_error
from agent.api.middleware import API_KEY
from agent.api.models import _Strict, parse
from agent.api.serialize import notification
from agent.domain import (
    TEST_MODE,
    Alert,
    AlertStatus,
    AlertType,
    Channel,
    Severity,
    StoredAlert,
    iso,
)
from agent.domain import fingerprint_of as _fp
from agent.ingest.common import LimitExceeded, check_alert
from agent.observability import get_logger
from agent.store import IdempotencyConflict
from agent.store.idempotency import IdemRequest

log = get_logger("api")
routes = web.RouteTableDef()


class AlertCreate(_Strict):
    monitor_id: str = Field(min_length=1, max_length=256)
    type: AlertType
    message: str | None = Field(default=None, max_length=4096)
    severity: Severity | None = None
    channels: list[Channel] | None = None
    threshold: dict[str, Any] | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class AlertUpdate(_Strict):
    status: AlertStatus | None = None
    message: str | None = Field(default=None, max_length=4096)


def serialize(a: StoredAlert) -> dict[str, Any]:
    return {
        "id": a.id, "object": "alert", "monitor_id": a.monitor_id, "type": a.type,
        "status": a.status, "severity": a.severity, "message": a.message, "source": a.source,
        "alertname": a.alertname, "fingerprint": a.fingerprint, "labels": a.labels,
        "annotations": a.annotations, "generator_url": a.generator_url,
        "extra": a.extra or {}, "starts_at": iso(a.starts_at), "ends_at": iso(a.ends_at),
        "created_at": iso(a.created_at), "updated_at": iso(a.updated_at),
        "resolved_at": iso(a.resolved_at), "last_received_at": iso(a.last_received_at),
        "receive_count": a.receive_count,
        "acknowledged": a.acknowledged_at is not None,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": iso(a.acknowledged_at),
        "acknowledged_via": a.acknowledged_via,
        # Alerts posted with an sk_test_ key: their notifications are simulated.
        "simulated": a.mode == TEST_MODE,
    }


def _int_param(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_type", f"'{name}' must be an integer.", name) from None
    if not lo <= value <= hi:
        raise ApiError(422, "invalid_value", f"'{name}' must be between {lo} and {hi}.", name)
    return value


@routes.get("/v1/alerts")
async def list_alerts(request: web.Request) -> web.Response:
    c, q = ctx(request), request.query
    status = q.get("status")
    if status is not None and status not in ("active", "resolved"):
        raise ApiError(422, "invalid_status", "'status' must be 'active' or 'resolved'.",
                       "status")
    page = _int_param(q, "page", 1, 1, 1_000_000)
    per_page = _int_param(q, "per_page", 20, 1, 100)
    rows, total = await c.store.alerts.page(status, q.get("monitor_id"), page, per_page,
                                            request[API_KEY].mode)
    return json_response({"object": "list", "data": [serialize(a) for a in rows],
                          "meta": {"page": page, "per_page": per_page, "total": total}})


@routes.get("/v1/alerts/{id}")
async def get_alert(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    found = await ctx(request).store.alerts.get(aid, request[API_KEY].mode)
    if found is None:
        raise ApiError(404, "alert_not_found", f"No such alert: '{aid}'.", "id")
    alert, notifications = found
    return json_response({"data": serialize(alert) | {
        "notifications": [notification(n) for n in notifications]}})


@routes.post("/v1/alerts")
async def create_alert(request: web.Request) -> web.Response:
    c = ctx(request)
    raw = await read_json_object(request)
    req = parse(AlertCreate, raw)
    check_metadata(req.threshold, c.settings.max_metadata_bytes, "threshold")
    labels = {**req.labels, "alertname": req.labels.get("alertname", req.monitor_id),
              "monitor_id": req.monitor_id, "type": req.type.value}
    if req.severity is not None:
        labels["severity"] = req.severity.value
    annotations = dict(req.annotations)
    if req.message:
        annotations.setdefault("summary", req.message)
    extra = {"threshold": req.threshold} if req.threshold else None
    # "up" closes the monitor's open alert; every other type opens (or re-reports) one.
    status = AlertStatus.RESOLVED if req.type == AlertType.UP else AlertStatus.FIRING
    mode = request[API_KEY].mode
    # A test key's monitor is not the live one of the same name: its own fingerprint keeps
    # the two apart in deduplication, grouping and resolution.
    fingerprint = _fp({"monitor_id": req.monitor_id}
                      | ({"mode": TEST_MODE} if mode == TEST_MODE else {}))
    alert = Alert(source="api", fingerprint=fingerprint, status=status.value, labels=labels,
                  annotations=annotations, starts_at=c.clock.now(), extra=extra, mode=mode)
    try:
        check_alert(alert, "", ingest_limits(c.settings))
    except LimitExceeded as exc:
        raise limit_error(exc) from exc
    channels = {0: frozenset(ch.value for ch in req.channels)} if req.channels else None
    idem = None
    if req.idempotency_key is not None:
        idem = IdemRequest(request[API_KEY].id, req.idempotency_key, request_hash(raw),
                           c.clock.now() - c.settings.idempotency_ttl_seconds)
    c.metrics.alerts_received.labels("api").inc()
    try:
        result = await c.intake.ingest([alert], channels, idem)
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from exc
    aid = result.ids[0]
    if aid is None:
        raise ApiError(409, "no_active_alert",
                       f"Monitor '{req.monitor_id}' has no active alert to resolve.",
                       "monitor_id")
    found = await c.store.alerts.get(aid)
    assert found is not None
    created = result.created == 1 and not result.replayed
    return json_response({"data": serialize(found[0])}, 201 if created else 200)


@routes.put("/v1/alerts/{id}")
async def update_alert(request: web.Request) -> web.Response:
    c = ctx(request)
    aid = request.match_info["id"]
    req = parse(AlertUpdate, await read_json_object(request))
    if req.status == AlertStatus.FIRING:
        raise ApiError(422, "invalid_status",
                       "An alert can only be resolved here; post a new alert to re-open.",
                       "status")
    resolve = req.status == AlertStatus.RESOLVED
    found = await c.intake.resolve(aid, req.message, request[API_KEY].mode, resolve=resolve)
    if found is None:
        raise ApiError(404, "alert_not_found", f"No such alert: '{aid}'.", "id")
    if resolve:
        log.info("alert_resolved", alert_id=aid, via="api")
    return json_response({"data": serialize(found)})
