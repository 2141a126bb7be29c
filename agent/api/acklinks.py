"""``/ack/{token}``: the page an acknowledge link opens. ``GET`` shows it and changes nothing;
its form ``POST``s back with the page's CSRF value and acknowledges, as the member the link was
issued to. Answers are small HTML pages, never a traceback."""

from __future__ import annotations

import html

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from agent.api.context import ctx
from agent.domain import Notification
from agent.services.acklinks import CSRF_FIELD, Claim, LinkRefused
from agent.services.acknowledge import Actor
from agent.services.errors import ServiceError

routes = web.RouteTableDef()


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                 "X-Frame-Options": "DENY",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                            "form-action 'self'"},
        text=("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
              "content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\">"
              f"<title>{html.escape(title)}</title></head><body style=\"font-family:sans-serif;"
              f"max-width:36em;margin:2em auto\"><h1>{html.escape(title)}</h1>{body}"
              "</body></html>\n"))


def _claim(request: web.Request) -> Claim | web.Response:
    """What the request's token grants, or the page that says why not."""
    links = ctx(request).ack_links
    try:
        return links.open(request.match_info["token"])
    except LinkRefused as exc:
        if exc.expired:
            return _page("Link expired", "<p>This acknowledge link has expired.</p>", 410)
        return _page("Not found", "<p>This acknowledge link is not valid.</p>", 404)


async def _notification(request: web.Request, claim: Claim) -> Notification | web.Response:
    """The notification the link names, or the page that says it is gone."""
    n = await ctx(request).store.notifications.get(claim.notification_id)
    return n if n is not None else _page("Not found",
                                         "<p>This alert is no longer stored.</p>", 404)


@routes.get("/ack/{token}")
async def show(request: web.Request) -> web.Response:
    c, token = ctx(request), request.match_info["token"]
    claim = _claim(request)
    n = claim if isinstance(claim, web.Response) else await _notification(request, claim)
    if isinstance(n, web.Response):
        return n
    ids = [a for a in n.metadata.get("alert_ids") or [] if isinstance(a, str)]
    if await c.store.acks.all_resolved(ids, n.simulated):
        return _page("Alert resolved", "<p>This alert is resolved: the link no longer "
                     "acknowledges.</p>", 410)
    what = html.escape(n.subject or (n.message or "").split("\n", 1)[0])
    return _page("Acknowledge this alert?", (
        f"<p>{what}</p>"
        # No action: the form posts back to the URL as opened (a public_url with a path).
        "<form method=\"post\">"
        f"<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{c.ack_links.csrf(token)}\">"
        "<button type=\"submit\">Acknowledge</button></form>"))


@routes.post("/ack/{token}")
async def acknowledge(request: web.Request) -> web.Response:
    c, token = ctx(request), request.match_info["token"]
    claim = _claim(request)
    if isinstance(claim, web.Response):
        return claim
    try:
        form = await request.post()
    except (ValueError, AssertionError, HttpProcessingError, web.HTTPException):
        # Not a form aiohttp can read (a multipart body with bad parts, bytes that are not
        # text): a page, not a 500.
        return _page("Not acknowledged", "<p>Open the link again and use its button.</p>", 400)
    value = form.get(CSRF_FIELD)
    if not isinstance(value, str) or not c.ack_links.csrf_ok(token, value):
        return _page("Not acknowledged", "<p>Open the link again and use its button.</p>", 403)
    n = await _notification(request, claim)
    if isinstance(n, web.Response):
        return n
    try:
        done = await c.acks.acknowledge_notification(
            n.id, Actor("link", member_id=claim.member_id), simulated=n.simulated)
    except ServiceError as exc:
        status = {"ack_not_allowed": 403, "alert_resolved": 409}.get(exc.code, 404)
        return _page("Not acknowledged", f"<p>{html.escape(exc.message)}</p>", status)
    who = html.escape(done.acknowledged_by_name or "")
    if done.first:
        return _page("Acknowledged", "<p>Thank you: the alert is acknowledged.</p>")
    return _page("Already acknowledged", f"<p>Acknowledged already by {who}.</p>")
