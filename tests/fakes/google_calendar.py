"""A fake of the parts of Google Calendar and Google's OAuth token endpoint we use.

Speaks the REST shapes of https://developers.google.com/calendar/api/v3/reference:
`POST /calendar/v3/freeBusy` ({timeMin, timeMax, timeZone, items:[{id}]} →
{kind: "calendar#freeBusy", calendars: {id: {busy: [{start, end}]}}}, an unknown
calendar answering `errors: [{domain, reason: "notFound"}]`),
`POST /calendar/v3/calendars/{calendarId}/events?sendUpdates=…` (the event resource
back, attendees with `responseStatus: "needsAction"`, a client-chosen `id` answered
409 `duplicate` the second time), `GET …/events/{eventId}`, and Google's error JSON
({error: {code, message, errors: [{domain, reason, message}], status}}).

`POST /token` is the OAuth 2.0 token endpoint: `grant_type=refresh_token` (checks
client id, secret and refresh token) and the JWT bearer grant a service account uses
(the assertion's signature is verified with the key's public half when given; its
claims are recorded: `sub` is the delegated user). Like Google, a service account
token without `sub` may not invite attendees (403 forbiddenForServiceAccounts).

Bearer tokens are checked on every calendar request (401 authError otherwise);
`expire_tokens()` makes the issued ones stale. `faults` is a list of (status, reason)
answered, one per calendar request, before the real handling; `hang_s` delays answers.
Every request is recorded in `requests` for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

_EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code: int, reason: str, message: str, domain: str = "global") -> dict[str, Any]:
    return {"error": {"code": code, "message": message,
                      "errors": [{"domain": domain, "reason": reason, "message": message}],
                      "status": _STATUS_NAMES.get(code, "UNKNOWN")}}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str


@dataclass
class FakeGoogleCalendar:
    calendar_id: str = "primary"
    client_id: str = "client-id.apps.googleusercontent.com"
    client_secret: str = "client-secret"
    refresh_token: str = "1//refresh-token"
    # PEM of the service account's public key: JWT assertions are verified against it.
    service_account_public_pem: bytes | None = None
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)
    faults: list[tuple[int, str]] = field(default_factory=list)
    retry_after: str | None = None
    hang_s: float = 0.0
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwt_claims: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    # token -> whether it may invite attendees (False: a service account without sub)
    _tokens: dict[str, bool] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/calendar/v3"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def accept_token(self, token: str, *, can_invite: bool = True) -> None:
        self._tokens[token] = can_invite

    async def start(self) -> FakeGoogleCalendar:
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/calendar/v3/freeBusy", self.free_busy)
        app.router.add_post("/calendar/v3/calendars/{calendar}/events", self.insert)
        app.router.add_get("/calendar/v3/calendars/{calendar}/events/{event}", self.get_event)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- OAuth ------------------------------------------------------------------------

    def _issue(self, can_invite: bool) -> web.Response:
        token = f"ya29.fake-{next(self._ids)}"
        self._tokens[token] = can_invite
        return web.json_response({"access_token": token, "expires_in": 3599,
                                  "scope": "https://www.googleapis.com/auth/calendar",
                                  "token_type": "Bearer"})

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                       self.client_secret):
                return web.json_response({"error": "invalid_client",
                                          "error_description": "The OAuth client was not found."},
                                         status=401)
            if form.get("refresh_token") != self.refresh_token:
                return web.json_response(
                    {"error": "invalid_grant",
                     "error_description": "Token has been expired or revoked."}, status=400)
            return self._issue(True)
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = self._check_jwt(form.get("assertion", ""))
            if claims is None:
                return web.json_response({"error": "invalid_grant",
                                          "error_description": "Invalid JWT Signature."},
                                         status=400)
            self.jwt_claims.append(claims)
            return self._issue(bool(claims.get("sub")))
        return web.json_response({"error": "unsupported_grant_type",
                                  "error_description": "Invalid grant_type: " + str(grant)},
                                 status=400)

    def _check_jwt(self, assertion: str) -> dict[str, Any] | None:
        parts = assertion.split(".")
        if len(parts) != 3:
            return None
        try:
            header, claims = _b64json(parts[0]), _b64json(parts[1])
        except ValueError:
            return None
        if header.get("alg") != "RS256":
            return None
        if self.service_account_public_pem is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import padding

            key = serialization.load_pem_public_key(self.service_account_public_pem)
            signature = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            try:
                key.verify(signature, f"{parts[0]}.{parts[1]}".encode(),  # type: ignore[union-attr,call-arg]
                           padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
            except InvalidSignature:
                return None
        return claims

    # -- calendar ---------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> tuple[web.Response | None, Any, bool]:
        """Record, hang, fault, authenticate: (error response or None, body, can_invite)."""
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response(google_error(400, "parseError", "Parse Error"),
                                         status=400), None, False
        auth = request.headers.get("Authorization", "")
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      body, auth))
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if self.faults:
            status, reason = self.faults.pop(0)
            headers = {"Retry-After": self.retry_after} if self.retry_after else None
            return web.json_response(google_error(status, reason, f"fault {reason}"),
                                     status=status, headers=headers), body, False
        token = auth.removeprefix("Bearer ").strip()
        if not auth.startswith("Bearer ") or token not in self._tokens:
            return web.json_response(google_error(
                401, "authError", "Invalid Credentials"), status=401), body, False
        return None, body, self._tokens[token]

    def _busy_of(self, start: datetime, end: datetime) -> list[dict[str, str]]:
        spans = list(self.busy) + [
            (datetime.fromisoformat(e["start"]["dateTime"].replace("Z", "+00:00")),
             datetime.fromisoformat(e["end"]["dateTime"].replace("Z", "+00:00")))
            for e in self.events.values() if e["status"] == "confirmed"]
        out = []
        for b_start, b_end in sorted(spans):
            if b_start < end and b_end > start:
                out.append({"start": max(b_start, start).astimezone(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"), "end": min(b_end, end).astimezone(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ")})
        return out

    async def free_busy(self, request: web.Request) -> web.Response:
        error, body, _ = await self._gate(request)
        if error is not None:
            return error
        start, end = _time((body or {}).get("timeMin")), _time((body or {}).get("timeMax"))
        items = (body or {}).get("items")
        if start is None or end is None or not isinstance(items, list) or end <= start:
            return web.json_response(google_error(400, "badRequest", "Bad Request"), status=400)
        calendars: dict[str, Any] = {}
        for item in items:
            cal = item.get("id") if isinstance(item, dict) else None
            if cal == self.calendar_id:
                calendars[cal] = {"busy": self._busy_of(start, end)}
            else:
                calendars[str(cal)] = {"errors": [{"domain": "global", "reason": "notFound"}],
                                       "busy": []}
        return web.json_response({"kind": "calendar#freeBusy", "timeMin": body["timeMin"],
                                  "timeMax": body["timeMax"], "calendars": calendars})

    async def insert(self, request: web.Request) -> web.Response:
        error, body, can_invite = await self._gate(request)
        if error is not None:
            return error
        if request.match_info["calendar"] != self.calendar_id:
            return web.json_response(google_error(404, "notFound", "Not Found"), status=404)
        if not isinstance(body, dict):
            return web.json_response(google_error(400, "required", "Missing body"), status=400)
        start = _time((body.get("start") or {}).get("dateTime"))
        end = _time((body.get("end") or {}).get("dateTime"))
        if start is None or end is None:
            return web.json_response(google_error(400, "required", "Missing time"), status=400)
        if end <= start:
            return web.json_response(google_error(400, "timeRangeEmpty",
                                                  "The specified time range is empty."),
                                     status=400)
        attendees = body.get("attendees") or []
        if attendees and not can_invite:
            return web.json_response(google_error(
                403, "forbiddenForServiceAccounts",
                "Service accounts cannot invite attendees without Domain-Wide Delegation of "
                "Authority.", domain="calendar"), status=403)
        event_id = body.get("id") or f"fake{next(self._ids):08d}"
        if not _EVENT_ID.match(str(event_id)):
            return web.json_response(google_error(400, "invalid", "Invalid resource id value."),
                                     status=400)
        if event_id in self.events:
            return web.json_response(google_error(409, "duplicate",
                                                  "The requested identifier already exists."),
                                     status=409)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        event = {
            "kind": "calendar#event", "etag": f'"{next(self._ids)}"', "id": event_id,
            "status": "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": now, "updated": now, "summary": body.get("summary", ""),
            "description": body.get("description", ""),
            "creator": {"email": "owner@example.com"},
            "organizer": {"email": self.calendar_id, "self": True},
            "start": body["start"], "end": body["end"], "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "attendees": [{"email": a.get("email"), "responseStatus": "needsAction"}
                          for a in attendees if isinstance(a, dict)],
            "reminders": body.get("reminders", {"useDefault": True}),
            "eventType": "default",
            "_sendUpdates": request.query.get("sendUpdates", ""),
        }
        self.events[event_id] = event
        return web.json_response({k: v for k, v in event.items() if not k.startswith("_")})

    async def get_event(self, request: web.Request) -> web.Response:
        error, _, _ = await self._gate(request)
        if error is not None:
            return error
        event = self.events.get(request.match_info["event"])
        if event is None or request.match_info["calendar"] != self.calendar_id:
            return web.json_response(google_error(404, "notFound", "Not Found"), status=404)
        return web.json_response({k: v for k, v in event.items() if not k.startswith("_")})
