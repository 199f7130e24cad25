"""Mounting the /v1 API on the main app; see the package docstring."""


from __future__ import annotations

from typing import Any

from aiohttp import web

from ops.api.core import ApiContext, ApiRequest, Route, build

API_CONTEXT: web.AppKey[ApiContext] = web.AppKey("api_context", ApiContext)


def routes() -> list[Route]:
    """Every /v1 operation, the OpenAPI document's own route included."""
    from ops.api.admin import ROUTES as ADMIN_ROUTES
    from ops.api.handlers import ROUTES

    doc_cache: dict[str, Any] = {}

    async def openapi_json(ctx: ApiContext, r: ApiRequest) -> Any:
        if "doc" not in doc_cache:
            from ops.api.openapi import document

            doc_cache["doc"] = document(table)
        return doc_cache["doc"]

    table = [*ROUTES, *ADMIN_ROUTES, Route("GET", "/openapi.json", openapi_json,
                            "This document (OpenAPI 3.1)", "meta",
                            raw_response=("application/json", "the OpenAPI document"))]
    return table


def mount(app: web.Application, runtime: Any) -> ApiContext:
    """Serve the API under /v1 of `app`, over `runtime`'s store, calls and config."""
    ctx = ApiContext(runtime, lambda: runtime.config.api)
    app.add_subapp("/v1", build(ctx, routes()))
    app[API_CONTEXT] = ctx
    return ctx
