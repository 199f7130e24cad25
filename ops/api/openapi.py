"""OpenAPI 3.1 of /v1, generated from the route table and the msgspec structs.

Schemas come from `msgspec.json.schema_components` (JSON Schema 2020-12, which is
OpenAPI 3.1's dialect), so what is documented is what the decoder accepts. Query
parameters are the fields of each route's query struct; every operation carries the
bearer security requirement and the error responses it can give.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ops.api.core import Route
from ops.api.errors import ErrorBody

REF = "#/components/schemas/{name}"
_ERRORS = {
    "400": "bad input (the field is named)",
    "401": "no token, or an unknown, revoked or expired one",
    "403": "the token's role may not do this",
    "413": "body too large",
    "429": "rate limit of the token (see Retry-After)",
}


def _query_params(route: Route, schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for f in msgspec.structs.fields(route.query):
        s = dict(schema.get("properties", {}).get(f.encode_name, {}))
        params.append({"name": f.encode_name, "in": "query", "required": f.required,
                       "schema": s})
    return params


def document(routes: list[Route], *, version: str = "0.1.0") -> dict[str, Any]:
    types: list[Any] = [ErrorBody]
    for r in routes:
        types.append(r.query)
        if r.body is not None:
            types.append(r.body)
        if r.response is not None:
            types.append(r.response)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(types, schemas, strict=True))
    error_ref = by_type[ErrorBody]
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        query_schema = by_type[r.query]
        if "$ref" in query_schema:
            query_schema = components[query_schema["$ref"].rsplit("/", 1)[1]]
        op: dict[str, Any] = {
            "operationId": r.operation_id,
            "summary": r.summary,
            "tags": [r.tag],
            "security": [{"bearer": []}],
            "parameters": [
                {"name": n, "in": "path", "required": True, "description": d,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
                for n, d in r.path_params.items()
            ] + _query_params(r, query_schema),
        }
        if r.role == "admin":
            op["description"] = "Needs an admin token."
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": by_type[r.body]}}}
        elif r.raw_body is not None:
            ctype, desc = r.raw_body
            op["requestBody"] = {"required": True, "description": desc, "content": {
                ctype: {"schema": {"type": "string"}}}}
        responses: dict[str, Any] = {}
        if r.raw_response is not None:
            ctype, desc = r.raw_response
            raw = {"type": "object"} if ctype == "application/json" else {
                "type": "string", "contentMediaType": ctype}
            responses[str(r.status)] = {"description": desc, "content": {
                ctype: {"schema": raw}}}
        elif r.response is not None:
            responses[str(r.status)] = {"description": "OK", "content": {
                "application/json": {"schema": by_type[r.response]}}}
        else:
            responses[str(r.status)] = {"description": "done, no body"}
        errors = dict(_ERRORS)
        if r.path_params:
            errors["404"] = "not found"
        if r.role != "admin":
            errors.pop("403")
        if r.body is None and r.raw_body is None:
            errors.pop("413")
        errors.update(r.errors)
        for code, desc in errors.items():
            responses[code] = {"description": desc, "content": {
                "application/json": {"schema": error_ref}}}
        op["responses"] = responses
        paths.setdefault("/v1" + r.path, {})[r.method.lower()] = op
    # Query structs are flattened into parameters; they need no component of their own.
    for r in routes:
        ref = by_type[r.query].get("$ref")
        if ref is not None:
            components.pop(ref.rsplit("/", 1)[1], None)
    return {
        "openapi": "3.1.0",
        "info": {"title": "leadline admin API", "version": version,
                 "description": "Leads, messages, campaigns, calls and config of a leadline "
                                "server. Every route needs `Authorization: Bearer <token>` "
                                "(`leadline tokens create`); viewer tokens read, admin "
                                "tokens also write."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token from leadline tokens "
                                                          "create"}},
        },
    }
