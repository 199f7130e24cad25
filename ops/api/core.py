"""The route table and the request pipeline every `/v1` route goes through.

One `Route` per operation says everything about it: method, path, the role it needs,
the msgspec structs of its query, body and answer. From that one table the aiohttp
routes are built (`build`), the OpenAPI document is generated (ops/api/openapi.py)
and the auth tests walk every route — so no route can exist undocumented or unguarded.

Per request, in order: bearer token (401 missing/unknown/revoked/expired), role (403),
per-token rate limit (429 + Retry-After), query and body decoded into their structs
(400 naming the field; 413 over the size limit), the handler, and for writes an audit
event `api` with the token id, method, path and status — also when the write failed.
Every error leaves as `{"error": {"code", "message", "field"}}`; an unexpected
exception is logged with its traceback, counted, and answered 500 without details.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from ops.api.errors import ApiError, from_validation
from ops.api.ratelimit import RateLimiter
from ops.api.settings import ApiSettings

log = logging.getLogger("leadline.api")
_encoder = msgspec.json.Encoder()
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Empty(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """No query parameters: any given is an unknown field (400)."""


@dataclass
class ApiRequest:
    request: web.Request
    token: Any  # store.token_models.ApiToken
    query: Any
    body: Any
    path: dict[str, str]


Handler = Callable[["ApiContext", ApiRequest], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below /v1, aiohttp syntax: "/leads/{phone}"
    handler: Handler
    summary: str
    tag: str
    role: str = "viewer"  # "viewer": any valid token; "admin": admin tokens only
    query: type = Empty
    body: type | None = None
    response: Any = None  # msgspec-typed answer; None = no JSON body (e.g. a file)
    status: int = 200
    # Not JSON: (content type, description) of what the route answers instead.
    raw_response: tuple[str, str] | None = None
    raw_body: tuple[str, str] | None = None  # e.g. ("text/csv", "the CSV file")
    path_params: dict[str, str] = field(default_factory=dict)  # name → description
    # Further error answers it can give: status → description (documented).
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.lstrip("_")


class Json:
    """A handler's answer with a status other than the route's default."""

    def __init__(self, value: Any, status: int = 200) -> None:
        self.value, self.status = value, status


class ApiStats:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()  # (route path, status)
        self.errors = 0


class ApiContext:
    """What handlers may use, passed down from the composition root (no upward import):
    the database, the runtime for live views, the config and its writer."""

    def __init__(self, runtime: Any, settings: Callable[[], ApiSettings]) -> None:
        self.runtime = runtime
        self.settings = settings
        cfg = settings()
        self.limiter = RateLimiter(cfg.rate_per_s, cfg.burst, max_keys=cfg.max_tracked_tokens)
        self.stats = ApiStats()

    def db(self) -> Any:
        db = self.runtime.persistence.db
        if db is None:
            raise ApiError(503, "unavailable", "the store is not open yet")
        return db


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes with a 413 before reading it all."""
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, "too_large", f"body over {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > limit:
            raise ApiError(413, "too_large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def authenticate(ctx: ApiContext, request: web.Request, role: str) -> Any:
    token = _bearer(request)
    if token is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": 'Bearer realm="leadline"'})
    rec = await ctx.db().authenticate_token(token)
    if rec is None:
        raise ApiError(401, "unauthorized", "unknown, revoked or expired token",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if role == "admin" and rec.role != "admin":
        raise ApiError(403, "forbidden", f"this needs an admin token; yours is {rec.role}")
    return rec


def _wrap(ctx: ApiContext, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        token = None
        status = 500
        try:
            token = await authenticate(ctx, request, route.role)
            cfg = ctx.settings()
            if (cfg.rate_per_s, cfg.burst) != (ctx.limiter.rate, ctx.limiter.burst):
                ctx.limiter.configure(cfg.rate_per_s, cfg.burst)  # a hot reload changed them
            wait = ctx.limiter.take(token.id)
            if wait:
                raise ApiError(429, "rate_limited",
                               f"more than {ctx.limiter.rate:g} requests/s for this token",
                               headers={"Retry-After": RateLimiter.retry_after(wait)})
            try:
                query = msgspec.convert(dict(request.query), route.query, strict=False)
            except msgspec.ValidationError as exc:
                raise from_validation(exc) from None
            body: Any = None
            if route.raw_body is not None:
                body = await _read_body(request, ctx.settings().max_import_bytes)
            elif route.body is not None:
                raw = await _read_body(request, ctx.settings().max_body_bytes)
                try:
                    body = msgspec.json.decode(raw or b"null", type=route.body)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    raise from_validation(exc) from None
            result = await route.handler(ctx, ApiRequest(request, token, query, body,
                                                         dict(request.match_info)))
            response = _respond(route, result)
        except ApiError as exc:
            response = exc.response()
        except web.HTTPException as exc:  # e.g. a 405 raised by aiohttp helpers
            response = ApiError(exc.status, "http_error", exc.reason).response()
        except Exception:
            ctx.stats.errors += 1
            log.exception("api handler failed", extra={"route": route.path,
                                                       "method": route.method})
            response = ApiError(500, "internal", "internal error (logged)").response()
        status = response.status
        ctx.stats.requests[(route.path, status)] += 1
        if request.method in WRITE_METHODS and token is not None:
            await _audit(ctx, token.id, request, status)
        return response

    handler.__name__ = route.operation_id
    return handler


def _respond(route: Route, result: Any) -> web.Response:
    if isinstance(result, web.StreamResponse):
        return result  # type: ignore[return-value]
    status = route.status
    if isinstance(result, Json):
        status, result = result.status, result.value
    if result is None and status == 204:
        return web.Response(status=204)
    return web.Response(status=status, body=_encoder.encode(result),
                        content_type="application/json")


async def _audit(ctx: ApiContext, token_id: int, request: web.Request, status: int) -> None:
    try:
        await ctx.db().audit("api", detail={"token_id": token_id, "method": request.method,
                                            "path": request.path, "status": status})
    except Exception:  # the answer stands; the lost audit row is logged and counted
        ctx.stats.errors += 1
        log.exception("api audit write failed", extra={"path": request.path})


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own 404/405 (no route matched) in the API's error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return ApiError(exc.status, code, exc.reason).response()


def build(ctx: ApiContext, routes: list[Route]) -> web.Application:
    """The `/v1` sub-application; mount it with `app.add_subapp("/v1", ...)`."""
    sub = web.Application(middlewares=[json_errors])
    for route in routes:
        sub.router.add_route(route.method, route.path, _wrap(ctx, route))
    return sub
