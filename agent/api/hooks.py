"""Inbound alert hooks: Alertmanager, Grafana and generic JSON, each with its own auth.

Answered 200 only after the alerts are durably stored, deduplicated and routed: Alertmanager
does not persist what it sent, so an alert acknowledged here must survive a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiohttp import web

from agent.api.bodies import parse_json_object, read_raw
from agent.api.context import ApiContext, ctx
from agent.api.errors import ApiError, json_response
from agent.api.hookauth import HookCredentials, authorized_before_body, signature_ok
from agent.api.limits import ingest_limits, limit_error
from agent.domain import IngestBatch
from agent.ingest import alertmanager, generic, grafana
from agent.ingest.common import IngestError, LimitExceeded, Limits
from agent.observability import get_logger
from agent.store.alerts import IngestResult

log = get_logger("hooks")
routes = web.RouteTableDef()


def _reject(c: ApiContext, source: str, err: ApiError) -> ApiError:
    c.metrics.alerts_invalid.labels(source).inc()
    log.warning("hook_rejected", source=source, code=err.code, reason=err.message)
    return err


# Bodies above this are decoded and parsed on a worker thread: a 10,000-alert body takes
# ~0.3 s of Python, which would otherwise hold the event loop (and every other request).
_INLINE_PARSE_BYTES = 256 * 1024


async def _body(request: web.Request, source: str, creds: HookCredentials | None) -> bytes:
    c = ctx(request)
    # Bearer and basic credentials are in the headers: a stranger is refused before a byte of
    # the body (up to max_hook_body_bytes) is read. Only an HMAC signature needs the body.
    verdict = True if creds is None else authorized_before_body(creds, request.headers)
    if verdict is False:
        raise _denied(c, source)
    raw = await read_raw(request, c.settings.max_hook_body_bytes)
    if creds is not None and verdict is None and not signature_ok(creds, request.headers, raw):
        raise _denied(c, source)
    return raw


def _denied(c: ApiContext, source: str) -> ApiError:
    return _reject(c, source, ApiError(401, "invalid_credentials",
                                       f"The {source} hook credentials are missing or wrong."))


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


Parser = Callable[[object, Limits], IngestBatch]


async def _parse_and_store(c: ApiContext, source: str, raw: bytes,
                           parse: Parser) -> web.Response:
    limits, depth = ingest_limits(c.settings), c.settings.max_json_depth

    def decode() -> IngestBatch:
        return parse(parse_json_object(raw, depth), limits)

    try:
        batch = decode() if len(raw) <= _INLINE_PARSE_BYTES else await asyncio.to_thread(decode)
    except ApiError as exc:
        raise _reject(c, source, exc) from exc
    except LimitExceeded as exc:
        raise _reject(c, source, limit_error(exc)) from exc
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
    # The receipt time decides alerts sent without a status (an end still ahead: firing).
    now = c.clock.now()
    return await _parse_and_store(
        c, "alertmanager", raw,
        lambda body, limits: alertmanager.parse(body, received_at=now, limits=limits))


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
    problem = None if stamp is None else grafana.check_timestamp(stamp, c.clock.now())
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
    now = c.clock.now()
    return await _parse_and_store(
        c, "grafana", raw, lambda body, limits: grafana.parse(body, received_at=now, limits=limits))


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
    return await _parse_and_store(c, "generic", raw,
                                  lambda body, limits: generic.parse(mapping, body, limits))
