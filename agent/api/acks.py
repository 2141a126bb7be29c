"""Acknowledge over the API: ``POST /v1/notifications/{id}/acknowledge``,
``POST /v1/alerts/{id}/acknowledge`` and ``/unacknowledge``. Each answers ``200`` on a repeat
too; the first acknowledgment is the one recorded (``acknowledged_by``, ``acknowledged_at``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from agent import CLI_PRODUCT
from agent.api.alerts import serialize as alert_json
from agent.api.bodies import parse_json_object, read_raw
from agent.api.context import ctx
from agent.api.errors import json_response
from agent.api.middleware import API_KEY
from agent.api.models import _Strict, parse
from agent.api.serialize import notification
from agent.services.acknowledge import Actor
from agent.services.errors import NotFound

routes = web.RouteTableDef()


class AckRequest(_Strict):
    by: str | None = Field(default=None, min_length=1, max_length=200,
                           description="Who acknowledges: a member id or free text.")


async def _by(request: web.Request) -> str | None:
    raw = await read_raw(request)
    if not raw.strip():  # the body is optional
        return None
    return parse(AckRequest, parse_json_object(raw, ctx(request).settings.max_json_depth)).by


def _actor(request: web.Request) -> Actor:
    """An API caller; ``alert-agent ack`` says so in its User-Agent (recorded as "cli")."""
    product = request.headers.get("User-Agent", "").partition("/")[0]
    return Actor("cli" if product == CLI_PRODUCT else "api")


async def _alert(request: web.Request, aid: str) -> dict[str, Any]:
    found = await ctx(request).store.alerts.get(aid, request[API_KEY].mode)
    if found is None:
        raise NotFound("alert_not_found", f"No such alert: '{aid}'.", "id")
    return {"data": alert_json(found[0])}


@routes.post("/v1/notifications/{id}/acknowledge")
async def acknowledge_notification(request: web.Request) -> web.Response:
    c, nid = ctx(request), request.match_info["id"]
    key = request[API_KEY]
    await c.acks.acknowledge_notification(nid, _actor(request), await _by(request),
                                          simulated=key.simulated)
    n = await c.store.notifications.get(nid, key.simulated)
    assert n is not None
    return json_response(notification(n))


@routes.post("/v1/alerts/{id}/acknowledge")
async def acknowledge_alert(request: web.Request) -> web.Response:
    c, aid = ctx(request), request.match_info["id"]
    await c.acks.acknowledge_alert(aid, _actor(request), await _by(request),
                                   simulated=request[API_KEY].simulated)
    return json_response(await _alert(request, aid))


@routes.post("/v1/alerts/{id}/unacknowledge")
async def unacknowledge_alert(request: web.Request) -> web.Response:
    c, aid = ctx(request), request.match_info["id"]
    await c.acks.unacknowledge_alert(aid, simulated=request[API_KEY].simulated)
    return json_response(await _alert(request, aid))
