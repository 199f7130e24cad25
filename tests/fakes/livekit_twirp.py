"""A fake LiveKit server API: the Twirp endpoints the leg uses, over real HTTP.

Speaks what the official `livekit-api` client speaks: `POST /twirp/livekit.<Service>/
<Method>` with a protobuf body (a JSON body, the other Twirp encoding, is accepted
too and answered in kind), `Authorization: Bearer <JWT>` signed HS256 with the API
secret, API key as issuer. The fake verifies the token with the secret (expiry
required, and the grant the method needs: `sip.call` for dialing, `video.roomCreate`
for deleting a room) and answers with the real response message, or a Twirp error
`{"code", "msg", "meta"}` whose meta carries `sip_status_code` / `sip_status` for a
failed INVITE, shaped like the errors LiveKit returns (e.g. `invalid_argument` /
HTTP 400 with `sip_status_code: "400"`).

Per number the test scripts what the callee does: answer (after a delay), a SIP
failure code, an HTTP error without a SIP code, or never answering the request.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

# SIP code → (reason phrase as LiveKit's SIPStatusCode enum names it, Twirp code, HTTP).
SIP_ERRORS: dict[int, tuple[str, str, int]] = {
    400: ("SIP_STATUS_BAD_REQUEST", "invalid_argument", 400),
    404: ("SIP_STATUS_NOTFOUND", "not_found", 404),
    408: ("SIP_STATUS_REQUEST_TIMEOUT", "deadline_exceeded", 408),
    480: ("SIP_STATUS_TEMPORARILY_UNAVAILABLE", "unavailable", 503),
    486: ("SIP_STATUS_BUSY_HERE", "unavailable", 503),
    500: ("SIP_STATUS_INTERNAL_SERVER_ERROR", "internal", 500),
    503: ("SIP_STATUS_SERVICE_UNAVAILABLE", "unavailable", 503),
    603: ("SIP_STATUS_DECLINE", "permission_denied", 403),
}
_TWIRP_HTTP = {"unauthenticated": 401, "permission_denied": 403, "not_found": 404,
               "invalid_argument": 400, "malformed": 400, "bad_route": 404,
               "internal": 500, "unavailable": 503, "deadline_exceeded": 408}


@dataclass(frozen=True)
class Callee:
    """What the fake does with a dial to one number."""

    answer: bool = True
    delay_s: float = 0.0
    sip_status_code: int | None = None  # a failed INVITE
    http_status: int | None = None  # an error without SIP code (e.g. 500, 401)
    hang: bool = False  # never answer the request


@dataclass
class Received:
    method: str
    claims: dict[str, Any]
    request: Message
    encoding: str


@dataclass
class FakeLiveKit:
    api_key: str = "APIfake"
    api_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    trunks: frozenset[str] = frozenset({"ST_fake0trunk"})
    callees: dict[str, Callee] = field(default_factory=dict)
    # Called with each answered dial before its response goes out (the room joins).
    on_answer: Callable[[proto_sip.CreateSIPParticipantRequest], Awaitable[None]] | None = None
    on_delete: Callable[[str], Awaitable[None]] | None = None
    received: list[Received] = field(default_factory=list)
    rejected_auth: int = 0
    deleted_rooms: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/twirp/livekit.SIP/CreateSIPParticipant", self._create)
        app.router.add_post("/twirp/livekit.RoomService/DeleteRoom", self._delete_room)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- wire ------------------------------------------------------------------

    @staticmethod
    def _error(code: str, msg: str, status: int | None = None,
               meta: dict[str, str] | None = None) -> web.Response:
        body: dict[str, Any] = {"code": code, "msg": msg}
        if meta:
            body["meta"] = meta
        return web.json_response(body, status=status or _TWIRP_HTTP.get(code, 500))

    def _claims(self, request: web.Request) -> dict[str, Any] | web.Response:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            self.rejected_auth += 1
            return self._error("unauthenticated", "permissions denied")
        try:
            return jwt.decode(header[7:], self.api_secret, algorithms=["HS256"],
                              issuer=self.api_key, options={"require": ["exp", "iss"]})
        except jwt.PyJWTError as exc:
            self.rejected_auth += 1
            return self._error("unauthenticated", f"invalid token: {exc}")

    async def _parse(self, request: web.Request, message: Message) -> str | web.Response:
        body = await request.read()
        ctype = request.content_type
        try:
            if ctype == "application/protobuf":
                message.ParseFromString(body)
                return "protobuf"
            if ctype == "application/json":
                json_format.Parse(body.decode(), message)
                return "json"
        except Exception as exc:
            return self._error("malformed", f"the request body could not be decoded: {exc}")
        return self._error("bad_route", f"unexpected Content-Type: {ctype!r}")

    @staticmethod
    def _reply(message: Message, encoding: str) -> web.Response:
        if encoding == "json":
            return web.Response(body=json_format.MessageToJson(message).encode(),
                                content_type="application/json")
        return web.Response(body=message.SerializeToString(),
                            content_type="application/protobuf")

    # -- SIP ---------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request)
        if isinstance(claims, web.Response):
            return claims
        if not (claims.get("sip") or {}).get("call"):
            return self._error("permission_denied", "requires SIP call grant")
        req = proto_sip.CreateSIPParticipantRequest()
        encoding = await self._parse(request, req)
        if isinstance(encoding, web.Response):
            return encoding
        self.received.append(Received("CreateSIPParticipant", claims, req, encoding))
        if not req.sip_call_to or not req.room_name:
            return self._error("invalid_argument", "sip_call_to and room_name are required")
        if req.sip_trunk_id not in self.trunks:
            return self._error("not_found", "requested sip trunk does not exist")
        callee = self.callees.get(req.sip_call_to, Callee())
        if callee.hang:
            await asyncio.sleep(3600)
        if callee.delay_s:
            await asyncio.sleep(callee.delay_s)
        if callee.sip_status_code is not None:
            code = callee.sip_status_code
            name, twirp, http = SIP_ERRORS.get(code, (f"SIP_STATUS_{code}", "unknown", 500))
            return self._error(twirp, f"twirp error unknown: INVITE failed: sip status: "
                               f"{code} ({name.removeprefix('SIP_STATUS_')})", http,
                               {"sip_status_code": str(code), "sip_status": name})
        if callee.http_status is not None:
            status = callee.http_status
            code = {401: "unauthenticated", 429: "resource_exhausted"}.get(
                status, "internal" if status >= 500 else "invalid_argument")
            return self._error(code, f"fake error {status}", status)
        if self.on_answer is not None:
            await self.on_answer(req)
        info = proto_sip.SIPParticipantInfo(
            participant_id="PA_" + secrets.token_hex(6),
            participant_identity=req.participant_identity or f"sip_{req.sip_call_to}",
            room_name=req.room_name, sip_call_id="SCL_" + secrets.token_hex(6))
        return self._reply(info, encoding)

    async def _delete_room(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request)
        if isinstance(claims, web.Response):
            return claims
        if not (claims.get("video") or {}).get("roomCreate"):
            return self._error("permission_denied", "requires roomCreate grant")
        req = proto_room.DeleteRoomRequest()
        encoding = await self._parse(request, req)
        if isinstance(encoding, web.Response):
            return encoding
        self.received.append(Received("DeleteRoom", claims, req, encoding))
        self.deleted_rooms.append(req.room)
        if self.on_delete is not None:
            await self.on_delete(req.room)
        return self._reply(proto_room.DeleteRoomResponse(), encoding)
