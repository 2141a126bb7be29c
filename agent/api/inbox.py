"""``/v1/inbox``: what the in-app channel delivered to a recipient, newest first."""

from __future__ import annotations

from aiohttp import web

from agent.api import pagination, serialize
from agent.api.context import ctx
from agent.api.errors import ApiError, json_response
from agent.api.middleware import API_KEY

routes = web.RouteTableDef()


@routes.get("/v1/inbox")
async def list_inbox(request: web.Request) -> web.Response:
    c, q = ctx(request), request.query
    recipient = q.get("to") or q.get("recipient")
    if not recipient:
        raise ApiError(400, "missing_required_field", "The 'to' query parameter is required.",
                       "to")
    now = c.clock.now()
    limit = pagination.parse_limit(q)
    before = pagination.position(q, "inbox", now)
    rows, more = await c.store.inbox.page(recipient, request[API_KEY].mode, before, limit)
    return json_response(pagination.page("inbox", rows, more, serialize.inbox_item,
                                         now + c.settings.cursor_ttl_seconds))
