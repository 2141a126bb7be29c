"""API errors: one exception type carrying its HTTP status, one middleware turning it into the
seed's envelope ``{"error": {type, code, message, param, doc_url}}``. No traceback ever leaves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from agent.observability import get_logger
from agent.services.errors import Conflict, Forbidden, MissingField, NotFound, ServiceError
from agent.store import StoreError

log = get_logger("api")
DOC_URL = "https://github.com/alert-agent/alert-agent/blob/main/README.md#errors"

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "payment_required",
    403: "forbidden",
    404: "not_found",
    405: "invalid_request_error",
    409: "conflict",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "validation_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "upstream_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answer: status, machine code, human message, the offending parameter."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def type(self) -> str:
        return _TYPE_BY_STATUS.get(self.status, "api_error")

    def envelope(self) -> dict[str, object]:
        return {
            "error": {
                "type": self.type,
                "code": self.code,
                "message": self.message,
                "param": self.param,
                "doc_url": f"{DOC_URL}-{self.code}",
            }
        }


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json"
    )


def error_response(err: ApiError) -> web.Response:
    resp = json_response(err.envelope(), err.status)
    resp.headers.update(err.headers)
    return resp


def not_found(what: str, ident: str, param: str = "id") -> ApiError:
    return ApiError(404, "resource_missing", f"No such {what}: '{ident}'.", param)


def from_service(exc: ServiceError, items: str = "", force_422: bool = False) -> ApiError:
    """The answer to a service's refusal. ``items`` names the list field of a request with
    several entries (the refusal's ``item`` indexes it); ``force_422``: a batch answers 422
    where a single request answers 400 (seed 000)."""
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Forbidden):
        status = 403
    elif isinstance(exc, Conflict):
        status = 409
    elif isinstance(exc, MissingField) and not force_422:
        status = 400
    else:
        status = 422
    param = exc.param
    if items and exc.item is not None:
        where = f"{items}[{exc.item}]"
        param = f"{where}.{param}" if param else where
    return ApiError(status, exc.code, exc.message, param)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _from_http_exception(exc: web.HTTPException) -> ApiError:
    if exc.status == 404:
        return ApiError(404, "route_not_found", "No such route.")
    if exc.status == 405:
        return ApiError(405, "method_not_allowed", f"Method not allowed: {exc.reason}.")
    if exc.status == 413:
        return ApiError(413, "body_too_large", "The request body is too large.")
    return ApiError(exc.status, "http_error", exc.reason or "HTTP error")


def _route(request: web.Request) -> str:
    """The route's template (``/ack/{token}``), not the path: a path can hold a secret."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes the envelope; unexpected ones are logged, never shown."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except ServiceError as exc:
        return error_response(from_service(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except StoreError as exc:
        log.error("store_unavailable", path=_route(request), error=str(exc))
        return error_response(
            ApiError(503, "store_unavailable", "The store is unavailable; retry with backoff.",
                     headers={"Retry-After": "1"})
        )
    except Exception:
        log.exception("unhandled_error", method=request.method, path=_route(request))
        return error_response(ApiError(500, "internal_error", "An unexpected error occurred."))
