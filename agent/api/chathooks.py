"""Acknowledge buttons: ``POST /hooks/slack/interactive`` (Slack's interactivity requests,
form-encoded, signed with the app's signing secret) and ``POST /hooks/telegram`` (the bot's
webhook, with the secret token set by setWebhook). The checks and the acknowledging are
services/chatacks.py's; this only translates HTTP.

Not configured (the channel is off, or has no signing secret / webhook secret): 404. A request
that fails verification: 401 in the error envelope, nothing changed. Otherwise 200 with an
empty body, whatever the click did: the person who clicked is told through the provider.
"""

from __future__ import annotations

from aiohttp import web

from agent.api.bodies import read_raw
from agent.api.context import ctx
from agent.api.errors import ApiError
from agent.channels.slack_interactions import SIGNATURE_HEADER, TIMESTAMP_HEADER
from agent.channels.telegram_updates import SECRET_HEADER
from agent.services.chatacks import WEBHOOK_PATH, ChatAcks, Unverified

routes = web.RouteTableDef()
SLACK_PATH = "/hooks/slack/interactive"


def _service(request: web.Request, name: str, setting: str) -> ChatAcks:
    service = ctx(request).chat_acks
    ready = service is not None and (service.slack() if name == "slack"
                                     else service.telegram()) is not None
    if service is None or not ready:
        raise ApiError(404, "not_configured",
                       f"{name} buttons are not configured on this agent "
                       f"(channels.{name}.{setting}).")
    return service


@routes.post(SLACK_PATH)
async def slack_interactive(request: web.Request) -> web.Response:
    service = _service(request, "slack", "signing_secret")
    raw = await read_raw(request, ctx(request).settings.max_hook_body_bytes)
    try:
        await service.slack_interaction(raw, request.headers.get(TIMESTAMP_HEADER),
                                        request.headers.get(SIGNATURE_HEADER))
    except Unverified as exc:
        raise ApiError(401, "invalid_signature",
                       f"The {SIGNATURE_HEADER} header is missing, too old or does not "
                       "verify.") from exc
    return web.Response(status=200, text="")


@routes.post(WEBHOOK_PATH)
async def telegram_webhook(request: web.Request) -> web.Response:
    service = _service(request, "telegram", "webhook_secret")
    try:  # the secret is a header: a stranger is refused before the body is read
        service.telegram_verify(request.headers.get(SECRET_HEADER))
    except Unverified as exc:
        raise ApiError(401, "invalid_secret_token",
                       f"The {SECRET_HEADER} header is missing or wrong.") from exc
    raw = await read_raw(request, ctx(request).settings.max_hook_body_bytes)
    await service.telegram_update(raw)
    return web.Response(status=200, text="")
