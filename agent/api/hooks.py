"""Inbound alert hooks: Alertmanager, Grafana and generic JSON, each with its own auth.

Answered 200 only after the alerts are durably stored, deduplicated and routed: Alertmanager
does not persist what it sent, so an alert acknowledged here must survive a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from agent.api.bodies import parse_json_object, read_raw
from agent.api.context import ApiContext, ctx
from agent.api.errors import ApiError, json_response
from agent.api.hookauth import HookCredentials, authorized
from agent.domain import IngestBatch
from agent.ingest import alertmanager, generic, grafana
from agent.ingest.common import IngestError
from agent.observability import get_logger
from agent.store.alerts import IngestResult

log = get_logger("hooks")
routes = web.RouteTableDef()


def _reject(c: ApiContext, source: str, err: ApiError) -> ApiError:
    c.metrics.alerts_invalid.labels(source).inc()
    log.warning("hook_rejected", source=source, code=err.code, reason=err.message)
    return err


async def _body(request: web.Request, source: str, creds: HookCredentials | None) -> bytes:
    c = ctx(request)
    raw = await read_raw(request, c.settings.max_hook_body_bytes)
    if creds is not None and not authorized(creds, request.headers, raw):
        raise _reject(c, source, ApiError(401, "invalid_credentials",
                                          f"The {source} hook credentials are missing or wrong."))
    return raw


async def _store(c: ApiContext, source: str, batch: IngestBatch) -> web.Response:
    c.metrics.alerts_received.labels(source).inc(len(batch.alerts))
    result: IngestResult = await c.intake.ingest(batch.alerts)
    for outcome in ("created", "updated", "resolved", "stale"):
        n = getattr(result, outcome)
        if n:
            c.metrics.alerts_outcome.labels(outcome).inc(n)
    if result.created or result.resolved:
        log.info("alerts_ingested", source=batch.source, received=len(batch.alerts),
                 created=result.created, resolved=result.resolved, updated=result.updated,
                 group_key=batch.group.get("groupKey"))
    return json_response({
        "status": "ok", "received": len(batch.alerts), "created": result.created,
        "updated": result.updated, "resolved": result.resolved, "ignored": result.stale,
    })


async def _parse_and_store(c: ApiContext, source: str, raw: bytes,
                           parse: Callable[[object], IngestBatch]) -> web.Response:
    try:
        batch = parse(parse_json_object(raw))
    except ApiError as exc:
        raise _reject(c, source, exc) from exc
    except IngestError as exc:
        raise _reject(c, source, ApiError(400, "invalid_payload", exc.message,
                                          exc.param)) from exc
    return await _store(c, source, batch)


def _enabled(c: ApiContext, source: str) -> None:
    if not c.hooks.enabled(source):
        raise ApiError(404, "source_disabled", f"The {source} source is disabled.")


@routes.post("/hooks/alertmanager")
async def alertmanager_hook(request: web.Request) -> web.Response:
    c = ctx(request)
    _enabled(c, "alertmanager")
    raw = await _body(request, "alertmanager", c.hooks.alertmanager)
    return await _parse_and_store(c, "alertmanager", raw, alertmanager.parse)


def _grafana_signature_error(c: ApiContext, headers: Mapping[str, str],
                             raw: bytes) -> ApiError | None:
    """Why Grafana's HMAC (hmacConfig of the contact point) refuses this request, if it does."""
    h = c.hooks
    secret = h.grafana_signing_secret
    if secret is None:
        return None
    stamp = headers.get(h.grafana_timestamp_header)
    if stamp is None and h.grafana_require_timestamp:
        return ApiError(401, "missing_signature_timestamp",
                        f"Signed Grafana requests must carry a timestamp in "
                        f"{h.grafana_timestamp_header} (set hmacConfig.timestampHeader).")
    if not grafana.verify_signature(secret, raw, headers.get(h.grafana_signature_header),
                                    stamp):
        return ApiError(401, "invalid_signature",
                        "The Grafana webhook signature does not verify.")
    problem = None if stamp is None else grafana.check_timestamp(stamp, c.clock())
    if problem == "invalid":
        return ApiError(401, "invalid_signature_timestamp",
                        f"The Grafana signature timestamp ({h.grafana_timestamp_header}) must "
                        "be unix seconds.")
    if problem == "too_old":
        # A signed body replayed later would re-open the alert and page again.
        return ApiError(401, "stale_signature",
                        f"The Grafana signature timestamp is too old (more than "
                        f"{grafana.MAX_AGE_SECONDS:g} s before this host's clock).")
    if problem == "in_future":
        return ApiError(401, "signature_timestamp_in_future",
                        f"The Grafana signature timestamp is in the future (more than "
                        f"{grafana.MAX_FUTURE_SKEW_SECONDS:g} s after this host's clock); "
                        "check the clocks of both hosts.")
    return None


@routes.post("/hooks/grafana")
async def grafana_hook(request: web.Request) -> web.Response:
    c = ctx(request)
    _enabled(c, "grafana")
    raw = await _body(request, "grafana", c.hooks.grafana)
    err = _grafana_signature_error(c, request.headers, raw)
    if err is not None:
        raise _reject(c, "grafana", err)
    return await _parse_and_store(c, "grafana", raw, grafana.parse)


@routes.post("/hooks/generic/{name}")
async def generic_hook(request: web.Request) -> web.Response:
    c = ctx(request)
    name = request.match_info["name"]
    mapping = c.rules().generic_sources.get(name)
    if mapping is None or not c.hooks.enabled(f"generic:{name}"):
        raise _reject(c, "generic", ApiError(
            404, "unknown_source", f"No generic source '{name}' is defined in the rules.",
            "name"))
    creds = c.hooks.generic.get(name)
    if creds is None and not c.hooks.open_allowed:
        # Added to the rules by a reload, with no auth in the config: never open off loopback.
        raise _reject(c, "generic", ApiError(
            401, "source_not_secured",
            f"Generic source '{name}' has no auth configured (sources.generic.{name}.auth)."))
    raw = await _body(request, "generic", creds)
    return await _parse_and_store(c, "generic", raw, lambda body: generic.parse(mapping, body))
