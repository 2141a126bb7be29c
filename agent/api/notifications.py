"""``/v1/notifications``: send, send-batch, get, list, cancel, retry (re-drive dead letters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent.api import pagination, serialize
from agent.api.bodies import read_json_object
from agent.api.context import ctx
from agent.api.errors import ApiError, from_service, json_response, not_found
from agent.api.idempotency import request_hash
from agent.api.limits import check_metadata
from agent.api.middleware import API_KEY
from agent.api.models import BatchRequest, RetryManyRequest, SendRequest, parse
from agent.api.params import enum_param
from agent.domain import (
    Channel,
    FailureReason,
    Notification,
    NotificationFailureClass,
    Status,
    parse_iso,
)
from agent.services.errors import ServiceError
from agent.services.notifications import RedriveFilter, SendCommand
from agent.store import Store
from agent.store.notifications import ListFilter

routes = web.RouteTableDef()


def _command(req: SendRequest, raw: dict[str, Any]) -> SendCommand:
    return SendCommand(
        channel=req.channel, to=req.to, message=req.message, subject=req.subject,
        template_id=req.template_id, severity=req.severity, priority=req.priority,
        metadata=req.metadata, schedule_at=req.schedule_at, idempotency_key=req.idempotency_key,
        request_hash=request_hash(raw) if req.idempotency_key else None,
    )


@routes.post("/v1/notifications/send")
async def send(request: web.Request) -> web.Response:
    c = ctx(request)
    raw = await read_json_object(request)
    req = parse(SendRequest, raw)
    check_metadata(req.metadata, c.settings.max_metadata_bytes, "metadata")
    sent = await c.notifications.send(request[API_KEY], _command(req, raw))
    return json_response(serialize.notification(sent.notification),
                         200 if sent.replayed else 201)


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
    commands: list[SendCommand] = []
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
        commands.append(_command(req, raw))
    try:
        batch = await c.notifications.send_batch(request[API_KEY], commands)
    except ServiceError as exc:  # seed 000: a batch answers 422 for any item
        raise from_service(exc, "notifications", force_422=True) from exc
    return json_response({
        "object": "batch",
        "id": batch.id,
        "total": len(batch.notifications),
        "accepted": len(batch.notifications),
        "rejected": 0,
        "notifications": [
            {"id": n.id, "status": n.status, "channel": n.channel}
            for n in batch.notifications
        ],
        "created_at": serialize.iso(batch.created_at),
    })


async def _with_attempts(store: Store, n: Notification) -> dict[str, Any]:
    attempts = await store.deliveries.attempts(n.id)
    return serialize.notification(n) | {"attempts": [serialize.attempt(a) for a in attempts]}


@routes.get("/v1/notifications/{id}")
async def get_one(request: web.Request) -> web.Response:
    nid = request.match_info["id"]
    store = ctx(request).store
    n = await store.notifications.get(nid, request[API_KEY].simulated)
    if n is None:
        raise not_found("notification", nid)
    return json_response(await _with_attempts(store, n))


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
    now = c.clock.now()
    f = ListFilter(
        channel=enum_param(q, "channel", Channel),
        status=enum_param(q, "status", Status),
        created_from=_time_param(q, "from"),
        created_to=_time_param(q, "to"),
        limit=pagination.parse_limit(q),
        simulated=request[API_KEY].simulated,
        failure_reason=enum_param(q, "failure_reason", FailureReason),
        failure_class=enum_param(q, "failure_class", NotificationFailureClass),
        parent_id=q.get("parent_id"),
    )
    f.before_seq = pagination.position(q, "ntf", now)
    rows, more = await c.store.notifications.page(f)
    # Each item carries its attempts (the dead letters' history): one query for the page.
    attempts = await c.store.deliveries.attempts_of([n.id for n in rows])

    def item(n: Notification) -> dict[str, Any]:
        return serialize.notification(n) | {
            "attempts": [serialize.attempt(a) for a in attempts[n.id]]}

    return json_response(pagination.page("ntf", rows, more, item,
                                         now + c.settings.cursor_ttl_seconds))


@routes.delete("/v1/notifications/{id}")
async def cancel(request: web.Request) -> web.Response:
    n = await ctx(request).notifications.cancel(request[API_KEY], request.match_info["id"])
    return json_response({"id": n.id, "object": "notification", "status": n.status,
                          "cancelled_at": serialize.iso(n.cancelled_at)})


@routes.post("/v1/notifications/{id}/retry")
async def retry(request: web.Request) -> web.Response:
    c = ctx(request)
    n = await c.notifications.retry(request[API_KEY], request.match_info["id"])
    return json_response(await _with_attempts(c.store, n))


def _utc(dt: datetime | None) -> float | None:
    """A body timestamp as unix seconds; a naive one is UTC (as in the list's query)."""
    if dt is None:
        return None
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


# Ids are listed in the answer up to this many re-driven notifications.
_LIST_IDS_UP_TO = 100


@routes.post("/v1/notifications/retry")
async def retry_many(request: web.Request) -> web.Response:
    c = ctx(request)
    body = parse(RetryManyRequest, await read_json_object(request))
    done = await c.notifications.retry_many(request[API_KEY], RedriveFilter(
        channel=None if body.channel is None else body.channel.value,
        created_from=_utc(body.from_), created_to=_utc(body.to),
        failure_reason=None if body.failure_reason is None else body.failure_reason.value,
        failure_class=None if body.failure_class is None else body.failure_class.value,
        limit=body.limit))
    return json_response({"object": "retry_result", "retried": len(done.ids),
                          "ids": done.ids if len(done.ids) <= _LIST_IDS_UP_TO else None,
                          "has_more": done.has_more})
