"""``/v1/templates``: create, list, get, update, delete."""

from __future__ import annotations

from aiohttp import web

from agent.api import pagination, serialize
from agent.api.bodies import read_json_object
from agent.api.context import ctx
from agent.api.errors import ApiError, json_response, not_found
from agent.api.idempotency import idempotency_conflict, request_hash
from agent.api.limits import check_metadata
from agent.api.middleware import API_KEY, require_live
from agent.api.models import TemplateCreate, TemplateUpdate, parse
from agent.api.params import enum_param
from agent.domain import Channel, Template, new_id
from agent.observability import get_logger
from agent.rendering import TemplateError, extract_variables
from agent.store import IdempotencyConflict, TemplateNameTaken
from agent.store.idempotency import IdemRequest
from agent.store.templates import TemplateChanges

log = get_logger("api")
routes = web.RouteTableDef()


def _variables(body: str) -> list[str]:
    try:
        return extract_variables(body)
    except TemplateError as exc:
        raise ApiError(422, "invalid_template", f"The template body does not parse: {exc}.",
                       "body") from exc


def _taken(name: str) -> ApiError:
    return ApiError(409, "template_name_taken", f"A template named '{name}' already exists.",
                    "name")


@routes.post("/v1/templates")
async def create(request: web.Request) -> web.Response:
    c = ctx(request)
    require_live(request[API_KEY], "Creating a template")
    raw = await read_json_object(request)
    req = parse(TemplateCreate, raw)
    check_metadata(req.metadata, c.settings.max_metadata_bytes, "metadata")
    now = c.clock.now()
    idem = None
    if req.idempotency_key is not None:
        idem = IdemRequest(request[API_KEY].id, req.idempotency_key, request_hash(raw),
                           now - c.settings.idempotency_ttl_seconds)
    t = Template(
        id=new_id("tpl"), name=req.name, channel=req.channel.value, body=req.body,
        variables=_variables(req.body), description=req.description, metadata=req.metadata,
        usage_count=0, last_used_at=None, created_at=now, updated_at=now,
    )
    try:
        t, replayed = await c.store.templates.create(t, idem)
    except TemplateNameTaken as exc:
        raise _taken(req.name) from exc
    except IdempotencyConflict as exc:
        raise idempotency_conflict(exc) from exc
    if not replayed:
        log.info("template_created", template_id=t.id, name=t.name)
    return json_response(serialize.template(t), 200 if replayed else 201)


@routes.get("/v1/templates")
async def list_all(request: web.Request) -> web.Response:
    c, q = ctx(request), request.query
    now = c.clock.now()
    channel = enum_param(q, "channel", Channel)
    limit = pagination.parse_limit(q)
    before = pagination.position(q, "tpl", now)
    rows, more = await c.store.templates.page(channel, before, limit)
    return json_response(pagination.page("tpl", rows, more, serialize.template,
                                         now + c.settings.cursor_ttl_seconds))


@routes.get("/v1/templates/{id}")
async def get_one(request: web.Request) -> web.Response:
    tid = request.match_info["id"]
    t = await ctx(request).store.templates.get(tid)
    if t is None:
        raise not_found("template", tid)
    return json_response(serialize.template(t))


@routes.put("/v1/templates/{id}")
async def update(request: web.Request) -> web.Response:
    c = ctx(request)
    tid = request.match_info["id"]
    require_live(request[API_KEY], "Changing a template")
    req = parse(TemplateUpdate, await read_json_object(request))
    check_metadata(req.metadata, c.settings.max_metadata_bytes, "metadata")
    changes = TemplateChanges(
        name=req.name, body=req.body, description=req.description, metadata=req.metadata,
        variables=_variables(req.body) if req.body is not None else None,
    )
    try:
        t = await c.store.templates.update(tid, changes, c.clock.now())
    except TemplateNameTaken as exc:
        raise _taken(req.name or "") from exc
    if t is None:
        raise not_found("template", tid)
    log.info("template_updated", template_id=t.id, name=t.name)
    return json_response(serialize.template(t))


@routes.delete("/v1/templates/{id}")
async def delete(request: web.Request) -> web.Response:
    tid = request.match_info["id"]
    require_live(request[API_KEY], "Deleting a template")
    if not await ctx(request).store.templates.delete(tid):
        raise not_found("template", tid)
    log.info("template_deleted", template_id=tid)
    return json_response({"id": tid, "object": "template", "deleted": True})
