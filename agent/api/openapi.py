"""``GET /openapi.json``: the OpenAPI 3.1 document of every route, built from the pydantic models.

Request bodies come from the models the handlers validate with (``models.py``, ``alerts.py``),
responses and query parameters from ``schemas.py``, hook payloads from ``hookmodels.py``.
``OPERATIONS`` lists every route; ``tests/integration/test_openapi.py`` checks it against the
routes registered on the app in both directions, and the fuzz test (``tests/e2e/test_fuzz.py``)
checks every answer of a live daemon against the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from agent import __version__
from agent.api import hookmodels as hm
from agent.api import schemas as s
from agent.api.acks import AckRequest
from agent.api.alerts import AlertCreate, AlertUpdate
from agent.api.context import ctx
from agent.api.models import (
    BatchRequest,
    RetryManyRequest,
    SendRequest,
    TemplateCreate,
    TemplateUpdate,
)
from agent.settings import ApiSettings

routes = web.RouteTableDef()
# The fields of a Twilio status callback the agent reads; Twilio sends more (all signed).
TWILIO_STATUS: dict[str, Any] = {"type": "object", "properties": {
    name: {"type": "string"} for name in ("MessageSid", "MessageStatus", "ErrorCode",
                                          "AccountSid", "To", "From")}}
TWILIO_INBOUND: dict[str, Any] = {"type": "object", "properties": {
    name: {"type": "string"} for name in ("From", "To", "Body", "MessageSid", "AccountSid")}}
SLACK_INTERACTION: dict[str, Any] = {"type": "object", "properties": {
    "payload": {"type": "string", "description": "A block_actions interaction, as JSON."}}}
ACK_FORM: dict[str, Any] = {"type": "object", "properties": {
    "csrf": {"type": "string", "description": "The value of the page's hidden field."}}}
_PAGE = "text/html"
# An acknowledge link's answers are pages for people: every status is HTML.
_ACK_PAGES: dict[int, type[BaseModel] | str] = {c: _PAGE for c in (200, 403, 404, 409, 410)}
_TOKEN = {"token": "The signed token of the link."}
REF = "#/components/schemas/{model}"

Auth = Literal["key", "hook", "none"]
Body = type[BaseModel] | dict[str, Any] | None

# Why each error status happens; an operation lists the ones it can answer.
ERRORS: dict[int, str] = {
    400: "Malformed request: invalid JSON, a missing field, a wrong type, an unknown parameter, "
         "an invalid cursor or payload.",
    401: "Missing, invalid or revoked credentials.",
    403: "The key may not do this (sk_test_ keys cannot change shared configuration).",
    404: "No such resource (or not visible to this key), or the source is unknown/disabled.",
    409: "Conflict with the resource's state or an idempotency key reused with another body.",
    413: "The request body is larger than the configured limit.",
    422: "Well-formed but semantically invalid (out of range, unknown reference, bad rules).",
    429: "Rate limit exceeded; retry after Retry-After seconds.",
    503: "The store is unavailable (e.g. a SQLite write failed); retry with backoff.",
}
_BODY_ERRORS = (400, 413)
_V1 = (401, 429, 503)


@dataclass(frozen=True)
class Operation:
    """One route as the document describes it."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    ok: dict[int, type[BaseModel] | str]  # status -> model, or a content type for raw bodies
    errors: tuple[int, ...] = ()
    body: Body = None
    query: type[s._Query] | None = None
    auth: Auth = "key"
    description: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    body_type: str = "application/json"  # Twilio's callbacks are form-encoded
    body_required: bool = True
    # OpenAPI links from a success answer: operationId -> {parameter: runtime expression}.
    links: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def statuses(self) -> set[int]:
        return set(self.ok) | set(self.errors)


def _op(method: str, path: str, op_id: str, summary: str, tag: str,
        ok: dict[int, type[BaseModel] | str], errors: tuple[int, ...] = (),
        **kw: Any) -> Operation:
    return Operation(method, path, op_id, summary, tag, ok, errors, **kw)


_ID = {"id": "The resource id."}
_BY_ID = {"id": "$response.body#/id"}
_BY_DATA_ID = {"id": "$response.body#/data/id"}
_KEY_ERRORS = (*_V1,)

OPERATIONS: tuple[Operation, ...] = (
    _op("GET", "/healthz", "healthz", "Liveness", "operations", {200: s.Health}, auth="none"),
    _op("GET", "/readyz", "readyz", "Readiness: store and dispatcher", "operations",
        {200: s.Ready, 503: s.Ready}, auth="none"),
    _op("GET", "/metrics", "metrics", "Prometheus metrics", "operations",
        {200: CONTENT_TYPE_LATEST}, auth="none"),
    _op("GET", "/openapi.json", "openapi", "This document", "operations",
        {200: "application/json"}, auth="none"),
    # notifications
    _op("POST", "/v1/notifications/send", "sendNotification", "Send (or schedule) one",
        "notifications", {201: s.NotificationOut, 200: s.NotificationOut},
        (*_BODY_ERRORS, 409, 422, *_KEY_ERRORS), body=SendRequest,
        links={"getNotification": _BY_ID, "cancelNotification": _BY_ID},
        description="200 replays an earlier request with the same idempotency_key."),
    _op("POST", "/v1/notifications/send-batch", "sendBatch", "Send up to max_batch_size",
        "notifications", {200: s.BatchOut}, (*_BODY_ERRORS, 409, 422, *_KEY_ERRORS),
        body=BatchRequest, description="All or nothing: any invalid item rejects the batch "
        "with 422 naming it (param notifications[i].field)."),
    _op("GET", "/v1/notifications", "listNotifications", "List, newest first", "notifications",
        {200: s.NotificationList}, (400, 422, *_KEY_ERRORS), query=s.NotificationListQuery),
    _op("GET", "/v1/notifications/{id}", "getNotification", "Get one", "notifications",
        {200: s.NotificationOut}, (404, *_KEY_ERRORS), path_params=_ID),
    _op("DELETE", "/v1/notifications/{id}", "cancelNotification", "Cancel a queued one",
        "notifications", {200: s.CancelOut}, (404, 409, *_KEY_ERRORS), path_params=_ID,
        description="Only queued notifications can be cancelled; anything else is 409."),
    _op("POST", "/v1/notifications/{id}/retry", "retryNotification", "Re-drive a failed one",
        "notifications", {200: s.NotificationOut}, (404, 409, *_KEY_ERRORS), path_params=_ID,
        links={"getNotification": _BY_ID},
        description="Queues a failed notification again under the same id (a webhook "
        "receiver sees the same Idempotency-Key), due now; its attempts stay listed and new "
        "ones go on numbering; delivery.retry_for and delivery.max_attempts count from the "
        "re-drive. Anything not failed is 409 (notification_not_retryable)."),
    _op("POST", "/v1/notifications/retry", "retryNotifications", "Re-drive failed ones by "
        "filter", "notifications", {200: s.RetryManyOut}, (*_BODY_ERRORS, 422, *_KEY_ERRORS),
        body=RetryManyRequest,
        description="Failed notifications matching the filters, oldest first, at most limit "
        "per call; each as POST /v1/notifications/{id}/retry."),
    _op("POST", "/v1/notifications/{id}/acknowledge", "acknowledgeNotification",
        "Acknowledge one, and the alerts it is about", "notifications", {200: s.NotificationOut},
        (*_BODY_ERRORS, 403, 404, 409, 422, *_KEY_ERRORS), body=AckRequest,
        body_required=False, path_params=_ID,
        description="The first acknowledgment wins and is the one recorded (acknowledged_by, "
        "acknowledged_at); a repeat answers 200 too. A delivered notification becomes "
        "acknowledged (terminal); its alerts stop repeating and their delivered messages on "
        "channels that can edit are edited to say who acknowledged."),
    # templates
    _op("POST", "/v1/templates", "createTemplate", "Create", "templates",
        {201: s.TemplateOut, 200: s.TemplateOut}, (*_BODY_ERRORS, 403, 409, 422, *_KEY_ERRORS),
        body=TemplateCreate, links={"getTemplate": _BY_ID, "updateTemplate": _BY_ID,
                                    "deleteTemplate": _BY_ID}),
    _op("GET", "/v1/templates", "listTemplates", "List, newest first", "templates",
        {200: s.TemplateList}, (400, 422, *_KEY_ERRORS), query=s.TemplateListQuery),
    _op("GET", "/v1/templates/{id}", "getTemplate", "Get one", "templates",
        {200: s.TemplateOut}, (404, *_KEY_ERRORS), path_params=_ID),
    _op("PUT", "/v1/templates/{id}", "updateTemplate", "Change name, body, description, "
        "metadata", "templates", {200: s.TemplateOut},
        (*_BODY_ERRORS, 403, 404, 409, 422, *_KEY_ERRORS), body=TemplateUpdate, path_params=_ID),
    _op("DELETE", "/v1/templates/{id}", "deleteTemplate", "Delete", "templates",
        {200: s.TemplateDeleted}, (403, 404, *_KEY_ERRORS), path_params=_ID),
    # inbox
    _op("GET", "/v1/inbox", "listInbox", "What the in-app channel delivered to a recipient",
        "inbox", {200: s.InboxList}, (400, 422, *_KEY_ERRORS), query=s.InboxQuery),
    # directory
    _op("GET", "/v1/teams", "listTeams", "The teams of the directory (rule files)", "directory",
        {200: s.TeamList}, _KEY_ERRORS),
    _op("GET", "/v1/teams/{id}", "getTeam", "One team with its members", "directory",
        {200: s.TeamOut}, (404, *_KEY_ERRORS), path_params=_ID),
    _op("GET", "/v1/teams/{id}/oncall", "getTeamOnCall", "Who of the team's rotation is on "
        "call, until when, and who is next", "directory", {200: s.OnCallOut},
        (400, 404, *_KEY_ERRORS), path_params=_ID, query=s.OnCallQuery),
    _op("GET", "/v1/members/{id}", "getMember", "One member of the directory", "directory",
        {200: s.MemberOut}, (404, *_KEY_ERRORS), path_params=_ID),
    # alerts
    _op("GET", "/v1/alerts", "listAlerts", "List alerts, newest first", "alerts",
        {200: s.AlertList}, (400, 422, *_KEY_ERRORS), query=s.AlertListQuery),
    _op("GET", "/v1/alerts/{id}", "getAlert", "Get one with its notifications", "alerts",
        {200: s.AlertDetail}, (404, *_KEY_ERRORS), path_params=_ID),
    _op("POST", "/v1/alerts", "createAlert", "Report a monitor's alert", "alerts",
        {201: s.AlertData, 200: s.AlertData}, (*_BODY_ERRORS, 409, 422, *_KEY_ERRORS),
        body=AlertCreate, links={"getAlert": _BY_DATA_ID, "updateAlert": _BY_DATA_ID},
        description="type 'up' resolves the monitor's open alert (409 when "
        "there is none); 200 when an open alert was re-reported."),
    _op("POST", "/v1/alerts/{id}/acknowledge", "acknowledgeAlert", "Acknowledge an alert",
        "alerts", {200: s.AlertData}, (*_BODY_ERRORS, 404, 409, 422, *_KEY_ERRORS),
        body=AckRequest, body_required=False, path_params=_ID,
        description="As acknowledgeNotification, for the alert; 200 on a repeat; 409 "
        "alert_resolved when the alert is resolved and was never acknowledged."),
    _op("POST", "/v1/alerts/{id}/unacknowledge", "unacknowledgeAlert",
        "Clear an alert's acknowledgment", "alerts", {200: s.AlertData},
        (404, *_KEY_ERRORS), path_params=_ID,
        description="The group repeats the alert again."),
    _op("PUT", "/v1/alerts/{id}", "updateAlert", "Resolve, or change the message", "alerts",
        {200: s.AlertData}, (*_BODY_ERRORS, 404, 422, *_KEY_ERRORS), body=AlertUpdate,
        path_params=_ID),
    # rules
    _op("GET", "/v1/rules/status", "rulesStatus", "The running rules and the last reload",
        "rules", {200: s.RulesStatus}, (*_KEY_ERRORS,)),
    _op("POST", "/-/reload", "reloadRules", "Reload the rule files now", "rules",
        {200: s.RulesStatus}, (401, 403, 422, 429, 503),
        description="422 when the files do not load: the running rules stay. 429 (with "
        "Retry-After) within api.reload_min_interval_seconds of the last reload."),
    # hooks
    _op("POST", "/hooks/alertmanager", "alertmanagerHook", "Prometheus Alertmanager webhook",
        "hooks", {200: s.HookResult}, (400, 401, 404, 413, 422, 503),
        body=hm.AlertmanagerWebhook, auth="hook",
        description="Answered after the alerts are stored and routed."),
    _op("POST", "/hooks/grafana", "grafanaHook", "Grafana webhook contact point", "hooks",
        {200: s.HookResult}, (400, 401, 404, 413, 422, 503), body=hm.grafana_schema(REF),
        auth="hook", description="Unified alerting (version 1) or legacy dashboard alerting. "
        "With a signing secret configured, X-Grafana-Alerting-Signature is verified."),
    _op("POST", "/hooks/generic/{name}", "genericHook", "Any JSON, mapped by the rules",
        "hooks", {200: s.HookResult}, (400, 401, 404, 413, 422, 503), body=hm.GENERIC_SCHEMA,
        auth="hook", path_params={"name": "A generic source defined in the rules."}),
    _op("POST", "/hooks/twilio/status", "twilioStatus", "Twilio message status callback",
        "hooks", {200: s.ReceiptResult}, (403, 404, 413, 503), auth="none",
        body=TWILIO_STATUS, body_type="application/x-www-form-urlencoded",
        description="Moves a sent sms or whatsapp notification to delivered or failed. "
        "Verified with X-Twilio-Signature (403 when it does not verify); 404 when Twilio is "
        "not configured."),
    _op("GET", "/ack/{token}", "ackLinkPage", "An acknowledge link's page", "acknowledge",
        _ACK_PAGES, (503,), auth="none", path_params=_TOKEN,
        description="Shows the alert and a button; changes nothing (scanners fetch links). "
        "404 for a token that is not valid, 410 once it expired."),
    _op("POST", "/ack/{token}", "ackLinkConfirm", "Acknowledge through a link's page",
        "acknowledge", _ACK_PAGES, (413, 503), auth="none", path_params=_TOKEN,
        body=ACK_FORM, body_type="application/x-www-form-urlencoded",
        description="The page's form: acknowledges as the member the link was issued to. 403 "
        "without the page's csrf value or when the member may no longer acknowledge; 409 when "
        "the alert resolved."),
    _op("POST", "/hooks/twilio/inbound", "twilioInbound",
        "An SMS or WhatsApp message to the agent's number", "hooks", {200: "text/xml"},
        (403, 404, 413, 503), auth="none", body=TWILIO_INBOUND,
        body_type="application/x-www-form-urlencoded",
        description="The number's \"A message comes in\" webhook. ACK, or ACK and the code the "
        "alert's message gave, from a member's number acknowledges its newest (or that) open "
        "alert; the TwiML answer's <Message> is the reply. Verified with X-Twilio-Signature."),
    _op("POST", "/hooks/slack/interactive", "slackInteractive",
        "Slack interactivity: an Acknowledge click", "hooks", {200: "text/plain"},
        (401, 404, 413, 503), auth="none", body=SLACK_INTERACTION,
        body_type="application/x-www-form-urlencoded",
        description="The Slack app's Interactivity Request URL. Verified with X-Slack-Signature "
        "and X-Slack-Request-Timestamp (v0, the signing secret, 5 minutes): 401 when it does "
        "not verify, nothing changed; 404 without channels.slack.signing_secret. 200 with an "
        "empty body once the click is acknowledged or refused (the clicker is told in Slack)."),
    _op("POST", "/hooks/telegram", "telegramWebhook", "Telegram bot webhook: button presses",
        "hooks", {200: "text/plain"}, (401, 404, 413, 503), auth="none",
        body={"type": "object", "description": "A Telegram Update."},
        description="Registered with setWebhook at start. Verified with "
        "X-Telegram-Bot-Api-Secret-Token (401 when missing or wrong, nothing changed); 404 "
        "without channels.telegram.webhook_secret. A callback_query of an Acknowledge button "
        "is acknowledged and answered with answerCallbackQuery; other updates are ignored."),
)

_MODELS: tuple[type[BaseModel], ...] = (
    s.ErrorEnvelope, SendRequest, BatchRequest, TemplateCreate, TemplateUpdate, AlertCreate,
    AlertUpdate, hm.AlertmanagerWebhook, hm.GrafanaWebhook, hm.GrafanaLegacyWebhook,
    RetryManyRequest, AckRequest,
)


def _components() -> dict[str, Any]:
    ops_models: set[type[BaseModel]] = set()
    for op in OPERATIONS:
        ops_models |= {m for m in op.ok.values() if isinstance(m, type)}
        if op.query is not None:
            ops_models.add(op.query)
    inputs = [(m, "validation") for m in _MODELS]
    outputs = [(m, "serialization") for m in sorted(ops_models, key=lambda m: m.__name__)]
    _, top = models_json_schema([*inputs, *outputs], ref_template=REF)  # type: ignore[list-item]
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string: drop the ``null`` branch of ``X | None``."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    rest = [b for b in branches if b != {"type": "null"}]
    out = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    if len(rest) == 1:
        out.update(rest[0])
    else:
        out["anyOf"] = rest
    return out


def _query_params(model: type[BaseModel], defs: dict[str, Any]) -> list[dict[str, Any]]:
    schema = defs[model.__name__]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = _without_null(dict(prop))
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": prop}
        if "description" in prop:
            param["description"] = prop.pop("description")
        out.append(param)
    return out


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


_RATE_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed per key per minute.",
    "X-RateLimit-Remaining": "Requests left in the current window.",
    "X-RateLimit-Reset": "Unix time (seconds) at which the window resets.",
}


def _headers(op: Operation, status: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.path.startswith("/v1/") and status != 401:  # counted once the key is known
        out = {n: {"$ref": f"#/components/headers/{n}"} for n in _RATE_HEADERS}
    if status == 429 and op.path.startswith("/v1/"):
        out["Retry-After"] = {"$ref": "#/components/headers/Retry-After-Required"}
    elif status in (429, 503):
        out["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return out


def _header_components() -> dict[str, Any]:
    out: dict[str, Any] = {n: {"description": d, "schema": {"type": "integer"}}
                           for n, d in _RATE_HEADERS.items()}
    seconds = {"description": "Seconds to wait before retrying.",
               "schema": {"type": "integer", "minimum": 1}}
    out["Retry-After"] = seconds
    out["Retry-After-Required"] = {**seconds, "required": True}
    return out


def _response(op: Operation, status: int) -> dict[str, Any]:
    target = op.ok.get(status)
    if target is None:
        resp: dict[str, Any] = {"description": ERRORS[status], **_json(_ref(s.ErrorEnvelope))}
    elif isinstance(target, str):
        schema = {"type": "object"} if target == "application/json" else {"type": "string"}
        resp = {"description": "OK", "content": {target: {"schema": schema}}}
    else:
        resp = {"description": "OK" if status < 300 else target.__name__, **_json(_ref(target))}
    headers = _headers(op, status)
    if headers:
        resp["headers"] = headers
    if op.links and status in op.ok:
        resp["links"] = {target: {"operationId": target, "parameters": params}
                         for target, params in op.links.items()}
    return resp


_SECURITY: dict[Auth, list[dict[str, list[str]]]] = {
    "key": [{"apiKey": []}],
    # A hook source may be open (loopback) or want any one of these.
    "hook": [{}, {"hookBearer": []}, {"hookBasic": []}],
    "none": [],
}


def _body_schema(op: Operation, settings: ApiSettings) -> dict[str, Any] | None:
    if op.body is None:
        return None
    if isinstance(op.body, dict):
        return op.body
    if op.body is BatchRequest:
        # Items are validated one by one with SendRequest (errors name notifications[i]).
        return {"allOf": [_ref(BatchRequest)], "properties": {"notifications": {
            "type": "array", "items": _ref(SendRequest), "minItems": 1,
            "maxItems": settings.max_batch_size}}}
    return _ref(op.body)


def _operation(op: Operation, defs: dict[str, Any], settings: ApiSettings) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                           "tags": [op.tag], "security": _SECURITY[op.auth]}
    if op.description:
        out["description"] = op.description
    params = [{"name": n, "in": "path", "required": True, "description": d,
               "schema": {"type": "string", "minLength": 1}} for n, d in op.path_params.items()]
    if op.query is not None:
        params += _query_params(op.query, defs)
    if params:
        out["parameters"] = params
    body = _body_schema(op, settings)
    if body is not None:
        out["requestBody"] = {"required": op.body_required,
                              "content": {op.body_type: {"schema": body}}}
    out["responses"] = {str(code): _response(op, code) for code in sorted(op.statuses)}
    return out


def build_document(settings: ApiSettings) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document; limits that are settings are taken from ``settings``."""
    defs = _components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, defs, settings)
    for op in OPERATIONS:  # query models are inlined as parameters, not referenced
        if op.query is not None:
            defs.pop(op.query.__name__, None)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "alert-agent",
            "version": __version__,
            "description": "Self-hosted alert routing daemon. Errors share one envelope "
                           "(ErrorEnvelope). Limits of this agent: bodies "
                           f"{settings.max_body_bytes} bytes ({settings.max_hook_body_bytes} for "
                           f"/hooks), JSON nesting {settings.max_json_depth} levels, metadata "
                           f"{settings.max_metadata_bytes} bytes as JSON, "
                           f"{settings.max_alerts_per_payload} alerts per hook payload, "
                           f"{settings.max_labels_per_alert} labels per alert.",
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "headers": _header_components(),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "sk_live_... delivers; sk_test_... simulates."},
                "hookBearer": {"type": "http", "scheme": "bearer"},
                "hookBasic": {"type": "http", "scheme": "basic"},
            },
        },
    }


# Built on first request and kept: the models do not change while the process runs.
DOCUMENT_CACHE = web.AppKey("openapi_document", list)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    cache: list[bytes] = request.app[DOCUMENT_CACHE]
    if not cache:
        cache.append(orjson.dumps(build_document(ctx(request).settings)))
    return web.Response(body=cache[0], content_type="application/json")
