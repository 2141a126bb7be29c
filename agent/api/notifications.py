"""``/v1/notifications``: send, send-batch, get, list, cancel."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent.api import pagination, serialize
from agent.api.bodies import read_json_object
from agent.api.context import ApiContext, ctx
from agent.api.errors import ApiError, json_response, not_found
from agent.api.idempotency import idempotency_conflict, request_hash
from agent.api.limits import check_metadata
from agent.api.middleware import API_KEY
from agent.api.models import BatchRequest, SendRequest, parse
from agent.api.params import enum_param
from agent.apikeys import ApiKey
from agent.domain import Channel, NewNotification, Status, Template, new_id, parse_iso
from agent.observability import get_logger
from agent.store import IdempotencyConflict
from agent.store.idempotency import ReplayExpired
from agent.store.notifications import ListFilter

log = get_logger("api")
routes = web.RouteTableDef()


async def _build(
    c: ApiContext,
    key: ApiKey,
    raw: dict[str, Any],
    req: SendRequest,
    now: float,
    templates: dict[str, Template | None],
    prefix: str = "",
    replay: bool = False,
) -> NewNotification:
    """Cross-field and cross-resource checks, then the row to queue. Raises ApiError 4xx.

    A ``replay`` (idempotency key already honoured for this body) skips the checks: its original
    passed them, and time or template changes since must not turn a retry into an error.
    """
    if replay:
        row = _row(key, raw, req, now, None, None)
        row.replay_only = True
        return row
    status = 422
    p = prefix + "." if prefix else ""
    if req.message is None and req.template_id is None:
        raise ApiError(400 if not prefix else 422, "missing_required_field",
                       "The 'message' field is required unless 'template_id' is given.",
                       f"{p}message")
    if req.channel == Channel.WEBHOOK and not req.to.startswith(("http://", "https://")):
        raise ApiError(status, "invalid_recipient",
                       "For the webhook channel 'to' must be an http(s) URL.", f"{p}to")
    template_body = None
    if req.template_id is not None:
        if req.template_id not in templates:
            templates[req.template_id] = await c.store.templates.get(req.template_id)
        tpl = templates[req.template_id]
        if tpl is None:
            raise ApiError(status, "template_not_found",
                           f"No such template: '{req.template_id}'.", f"{p}template_id")
        if tpl.channel != req.channel:
            raise ApiError(status, "template_channel_mismatch",
                           f"Template '{tpl.name}' is for channel '{tpl.channel}', "
                           f"not '{req.channel}'.", f"{p}template_id")
        missing = [v for v in tpl.variables if v not in req.metadata]
        if missing:
            raise ApiError(status, "missing_template_variables",
                           "metadata lacks template variables: " + ", ".join(missing) + ".",
                           f"{p}metadata")
        template_body = tpl.body
    schedule_at = None
    if req.schedule_at is not None:
        if req.schedule_at.tzinfo is None:
            raise ApiError(status, "invalid_schedule_at",
                           "'schedule_at' needs a timezone (e.g. '2026-04-14T10:30:00Z').",
                           f"{p}schedule_at")
        schedule_at = req.schedule_at.timestamp()
        ahead = schedule_at - now
        lo, hi = c.settings.schedule_min_ahead_seconds, c.settings.schedule_max_ahead_seconds
        if not lo <= ahead <= hi:
            raise ApiError(status, "invalid_schedule_at",
                           f"'schedule_at' must be between {lo:g} seconds and {hi / 86400:g} "
                           "days in the future.", f"{p}schedule_at")
    return _row(key, raw, req, now, template_body, schedule_at)


def _row(key: ApiKey, raw: dict[str, Any], req: SendRequest, now: float,
         template_body: str | None, schedule_at: float | None) -> NewNotification:
    return NewNotification(
        id=new_id("ntf"), channel=req.channel.value, recipient=req.to, message=req.message,
        subject=req.subject, template_id=req.template_id, template_body=template_body,
        severity=req.severity.value, priority=req.priority.value, metadata=req.metadata,
        idempotency_key=req.idempotency_key,
        request_hash=request_hash(raw) if req.idempotency_key else None,
        simulated=key.simulated, api_key_id=key.id, schedule_at=schedule_at,
        due_at=schedule_at if schedule_at is not None else now, created_at=now,
    )


async def _replays(c: ApiContext, key: ApiKey, pairs: list[tuple[SendRequest, dict[str, Any]]],
                   now: float) -> set[str]:
    wanted = {req.idempotency_key: request_hash(raw) for req, raw in pairs
              if req.idempotency_key}
    if not wanted:
        return set()
    try:
        return await c.store.idempotency.replays(
            key.id, wanted, now - c.settings.idempotency_ttl_seconds)
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from exc


def _accepted(c: ApiContext, rows: list[NewNotification], replayed: list[bool]) -> None:
    now = c.clock()
    for it, again in zip(rows, replayed, strict=True):
        if again:
            continue
        c.metrics.notifications_accepted.labels(it.channel).inc()
        log.info("notification_queued", notification_id=it.id, channel=it.channel,
                 severity=it.severity, scheduled=it.schedule_at is not None,
                 simulated=it.simulated)
    if any(r.due_at <= now for r in rows):
        c.wake_dispatcher()


@routes.post("/v1/notifications/send")
async def send(request: web.Request) -> web.Response:
    c = ctx(request)
    raw = await read_json_object(request)
    req = parse(SendRequest, raw)
    check_metadata(req.metadata, c.settings.max_metadata_bytes, "metadata")
    key, now = request[API_KEY], c.clock()
    replays = await _replays(c, key, [(req, raw)], now)
    item = await _build(c, key, raw, req, now, {}, replay=bool(replays))
    try:
        try:
            out = await c.store.notifications.create([item])
        except ReplayExpired:  # the key expired between our look and the write: a new request
            item = await _build(c, key, raw, req, now, {})
            out = await c.store.notifications.create([item])
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from exc
    _accepted(c, [item], out.replayed)
    return json_response(serialize.notification(out.notifications[0]),
                         200 if out.replayed[0] else 201)


@routes.post("/v1/notifications/send-batch")
async def send_batch(request: web.Request) -> web.Response:
    c = ctx(request)
    body = parse(BatchRequest, await read_json_object(request), force_422=True)
    if not body.notifications:
        raise ApiError(422, "empty_batch", "'notifications' must hold at least one item.",
                       "notifications")
    if len(body.notifications) > c.settings.max_batch_size:
        raise ApiError(422, "batch_too_large",
                       f"A batch holds at most {c.settings.max_batch_size} notifications.",
                       "notifications")
    key = request[API_KEY]
    now, batch_id = c.clock(), new_id("bat")
    templates: dict[str, Template | None] = {}
    parsed: list[tuple[SendRequest, dict[str, Any]]] = []
    seen_keys: set[str] = set()
    for i, raw in enumerate(body.notifications):
        prefix = f"notifications[{i}]"
        req = parse(SendRequest, raw, prefix=prefix, force_422=True)
        check_metadata(req.metadata, c.settings.max_metadata_bytes, f"{prefix}.metadata")
        if req.idempotency_key is not None:
            if req.idempotency_key in seen_keys:
                raise ApiError(422, "duplicate_idempotency_key",
                               "Two items of the batch share an idempotency key.",
                               f"{prefix}.idempotency_key")
            seen_keys.add(req.idempotency_key)
        parsed.append((req, raw))
    replays = await _replays(c, key, parsed, now)
    try:
        try:
            items = await _build_batch(c, key, parsed, now, templates, batch_id, replays)
            out = await c.store.notifications.create(items)
        except ReplayExpired:  # a key expired between our look and the write: validate all
            items = await _build_batch(c, key, parsed, now, templates, batch_id, set())
            out = await c.store.notifications.create(items)
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from exc
    _accepted(c, items, out.replayed)
    return json_response({
        "object": "batch",
        "id": batch_id,
        "total": len(items),
        "accepted": len(items),
        "rejected": 0,
        "notifications": [
            {"id": n.id, "status": n.status, "channel": n.channel}
            for n in out.notifications
        ],
        "created_at": serialize.iso(now),
    })


async def _build_batch(c: ApiContext, key: ApiKey,
                       parsed: list[tuple[SendRequest, dict[str, Any]]], now: float,
                       templates: dict[str, Template | None], batch_id: str,
                       replays: set[str]) -> list[NewNotification]:
    items = []
    for i, (req, raw) in enumerate(parsed):
        item = await _build(c, key, raw, req, now, templates, f"notifications[{i}]",
                            replay=req.idempotency_key in replays)
        item.batch_id = batch_id
        items.append(item)
    return items


@routes.get("/v1/notifications/{id}")
async def get_one(request: web.Request) -> web.Response:
    nid = request.match_info["id"]
    store = ctx(request).store
    n = await store.notifications.get(nid, request[API_KEY].simulated)
    if n is None:
        raise not_found("notification", nid)
    attempts = await store.deliveries.attempts(nid)
    return json_response(serialize.notification(n) | {
        "attempts": [serialize.attempt(a) for a in attempts]})


def _time_param(query: Any, name: str) -> float | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise ApiError(400, "invalid_value", f"'{name}' must be an ISO 8601 timestamp.",
                       name) from None


@routes.get("/v1/notifications")
async def list_all(request: web.Request) -> web.Response:
    c, q = ctx(request), request.query
    now = c.clock()
    f = ListFilter(
        channel=enum_param(q, "channel", Channel),
        status=enum_param(q, "status", Status),
        created_from=_time_param(q, "from"),
        created_to=_time_param(q, "to"),
        limit=pagination.parse_limit(q),
        simulated=request[API_KEY].simulated,
    )
    f.before_seq = pagination.position(q, "ntf", now)
    rows, more = await c.store.notifications.page(f)
    return json_response(pagination.page("ntf", rows, more, serialize.notification,
                                         now + c.settings.cursor_ttl_seconds))


@routes.delete("/v1/notifications/{id}")
async def cancel(request: web.Request) -> web.Response:
    c = ctx(request)
    nid = request.match_info["id"]
    n, cancelled = await c.store.notifications.cancel(nid, c.clock(),
                                                      request[API_KEY].simulated)
    if n is None:
        raise not_found("notification", nid)
    if not cancelled:
        # Seed 000: only queued notifications can be cancelled, a cancelled one included.
        if n.status == Status.QUEUED:
            raise ApiError(409, "notification_in_flight",
                           "The notification is being delivered right now; it cannot be "
                           "cancelled.", "id")
        raise ApiError(409, "notification_not_cancellable",
                       f"Only queued notifications can be cancelled; this one is '{n.status}'.",
                       "id")
    c.metrics.notifications.labels(n.channel, "cancelled").inc()
    log.info("notification_cancelled", notification_id=n.id, channel=n.channel)
    return json_response({"id": n.id, "object": "notification", "status": n.status,
                          "cancelled_at": serialize.iso(n.cancelled_at)})
