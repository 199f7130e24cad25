"""The `/v1` admin API: a route table (ops/api/handlers.py) served by an aiohttp
sub-application behind bearer tokens, roles and a per-token rate limit (ops/api/core.py),
documented as OpenAPI 3.1 at `/v1/openapi.json` (ops/api/openapi.py).

Mounted under `/v1` of the main app, so its middleware and error shape never touch the
Twilio webhooks (which keep their own signature checks and need no token).
"""
