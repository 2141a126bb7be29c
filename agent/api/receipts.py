"""Delivery receipts from providers: ``POST /hooks/twilio/status`` (Twilio's status callbacks,
form-encoded, signed with ``X-Twilio-Signature``). The checks and the move of the notification
are services/receipts.py's; this only translates HTTP.

Not configured (no Twilio channel): 404. A missing or wrong signature: 403 in the error envelope,
nothing changed. Otherwise 200, whether or not the receipt moved anything: Twilio retries a
callback answered otherwise.
"""

from __future__ import annotations

from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from aiohttp import web

from agent.api.bodies import read_raw
from agent.api.context import ctx
from agent.api.errors import ApiError, json_response
from agent.channels.twilio import INBOUND_PATH, SIGNATURE_HEADER, STATUS_PATH
from agent.observability import get_logger

log = get_logger("hooks")
routes = web.RouteTableDef()


async def _verified(request: web.Request, path: str) -> list[tuple[str, str]]:
    """The form of a request Twilio signed for ``path``; 404 without Twilio, 403 unsigned."""
    c = ctx(request)
    service = c.receipts
    if service is None or not service.twilio_configured:
        raise ApiError(404, "not_configured",
                       "Twilio is not configured on this agent (channels.twilio).")
    raw = await read_raw(request, c.settings.max_hook_body_bytes)
    try:
        params = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        params = []
    if not service.twilio_signature_ok(request.rel_url.raw_query_string, params,
                                       request.headers.get(SIGNATURE_HEADER), path):
        log.warning("hook_rejected", source="twilio", code="invalid_signature")
        raise ApiError(403, "invalid_signature",
                       f"The {SIGNATURE_HEADER} header is missing or does not verify.")
    return params


@routes.post(INBOUND_PATH)
async def twilio_inbound(request: web.Request) -> web.Response:
    """An SMS or WhatsApp message to the agent's number: ``ACK [code]`` acknowledges; the
    answer is TwiML, whose ``<Message>`` Twilio sends back as the reply."""
    form = dict(await _verified(request, INBOUND_PATH))
    sender = form.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    reply = await ctx(request).acks.acknowledge_by_text(
        channel, sender.removeprefix("whatsapp:"), form.get("Body", ""))
    message = f"<Message>{escape(reply)}</Message>" if reply else ""
    return web.Response(text=f'<?xml version="1.0" encoding="UTF-8"?><Response>{message}'
                             "</Response>", content_type="text/xml")


@routes.post(STATUS_PATH)
async def twilio_status(request: web.Request) -> web.Response:
    params = await _verified(request, STATUS_PATH)
    service = ctx(request).receipts
    assert service is not None
    result = await service.twilio_status(params)
    return json_response({"status": "ok", "outcome": result.outcome})
