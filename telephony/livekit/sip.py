"""Outbound calls through LiveKit SIP: `CreateSIPParticipant` with the official client.

`livekit-api` signs each request with a short-lived JWT (API key as issuer, a `sip.call`
grant) and speaks Twirp (protobuf body; errors as JSON with `code`, `msg`, `meta`).
With `wait_until_answered` the request returns only once the callee picked up, so the
answer is the dial's first verdict: a participant (answered), or an error whose meta
carries the SIP final response (`sip_status_code`). That code is the callee's answer,
not a fault of ours: it becomes the call's outcome (busy, no answer, failed) and is not
retried. An error without a SIP code is about the request: a 5xx, timeout or lost
connection may pass (transient), any other 4xx (bad trunk, bad credentials) will not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from telephony.livekit.settings import LiveKitSettings

log = logging.getLogger("leadline.livekit")

# Seconds a dial may take beyond its ringing window (LiveKit's own margin is 2 s).
DIAL_MARGIN_S = 5.0


@cache
def _outcome_table() -> dict[int, str]:
    text = resources.files(__package__).joinpath("sip_outcomes.toml").read_text("utf-8")
    table: dict[int, str] = {}
    for outcome, codes in tomllib.loads(text)["outcomes"].items():
        for code in codes:
            table[int(code)] = outcome
    return table


def sip_outcome(sip_status_code: int) -> str:
    """The dial's outcome for a SIP final response code (busy, no_answer, failed)."""
    return _outcome_table().get(sip_status_code, "failed")


class SipDialError(RuntimeError):
    """The dial did not connect.

    `outcome` is set when the callee's side answered with a SIP code (the call
    happened and ended: busy, no_answer, failed); otherwise `permanent` says whether
    trying again could help.
    """

    def __init__(self, message: str, *, outcome: str | None, permanent: bool,
                 sip_status_code: int | None = None, http_status: int | None = None,
                 code: str = "") -> None:
        super().__init__(message)
        self.outcome = outcome
        self.permanent = permanent
        self.sip_status_code = sip_status_code
        self.http_status = http_status
        self.code = code


@dataclass(frozen=True, slots=True)
class SipCall:
    """An answered outbound call: who and where it is in LiveKit."""

    room: str
    participant_identity: str
    participant_id: str
    sip_call_id: str


def new_room_name(prefix: str) -> str:
    """A fresh room per call: two calls never share a room, nothing to clean up between."""
    return f"{prefix}{secrets.token_hex(8)}"


def classify(exc: BaseException) -> SipDialError:
    """What an exception from `create_sip_participant` means for the dial."""
    from livekit.api.twirp_client import ServerError

    if isinstance(exc, ServerError):
        # Read from the meta ourselves, strictly (the SDK's int() would take "٣" or "+5").
        raw = str((exc.metadata or {}).get("sip_status_code", ""))
        sip_code = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else None
        message = f"livekit {exc.status} {exc.code}: {exc.message}"[:500]
        if sip_code is not None:
            return SipDialError(message, outcome=sip_outcome(sip_code), permanent=True,
                                sip_status_code=sip_code, http_status=exc.status,
                                code=exc.code)
        transient = exc.status >= 500 or exc.status in (408, 429)
        return SipDialError(message, outcome=None, permanent=not transient,
                            http_status=exc.status, code=exc.code)
    if isinstance(exc, TimeoutError | OSError):
        return SipDialError(f"livekit unreachable: {exc!r}"[:500], outcome=None,
                            permanent=False)
    import aiohttp

    if isinstance(exc, aiohttp.ClientError):
        return SipDialError(f"livekit unreachable: {exc!r}"[:500], outcome=None,
                            permanent=False)
    raise exc


class LiveKitSip:
    """The Twirp side of LiveKit for the leg: dial, room token, end the room.

    Made inside the running loop (the client owns an aiohttp session)."""

    def __init__(self, settings: LiveKitSettings) -> None:
        from livekit import api

        if not settings.configured:
            raise ValueError("livekit: url, api_key, api_secret and sip_trunk_id must be set")
        self.settings = settings
        # Region failover only engages for LiveKit Cloud hosts; ours may be self-hosted.
        self._api = api.LiveKitAPI(settings.url, settings.api_key, settings.api_secret,
                                   timeout=None, failover=False)
        self.dials = 0
        self.dial_errors: dict[str, int] = {}

    async def dial(self, to: str, room: str, identity: str, *, from_number: str = "",
                   attributes: dict[str, str] | None = None) -> SipCall:
        """Ring `to` into `room`; returns once answered, raises `SipDialError` if not."""
        from google.protobuf.duration_pb2 import Duration
        from livekit import api

        s = self.settings
        request = api.CreateSIPParticipantRequest(
            sip_trunk_id=s.sip_trunk_id,
            sip_call_to=to,
            sip_number=from_number,
            room_name=room,
            participant_identity=identity,
            participant_name=f"callee {to}"[:64],
            participant_attributes=attributes or {},
            wait_until_answered=True,
            play_dialtone=False,
            ringing_timeout=Duration(seconds=s.ringing_timeout_s),
            max_call_duration=Duration(seconds=s.max_call_duration_s),
        )
        self.dials += 1
        try:
            # The client derives its own request timeout from the ringing window; the
            # outer bound is ours, in case a response never completes.
            info = await asyncio.wait_for(
                self._api.sip.create_sip_participant(request),
                s.ringing_timeout_s + DIAL_MARGIN_S)
        except Exception as exc:
            err = classify(exc)
            kind = err.outcome or ("rejected" if err.permanent else "transient")
            self.dial_errors[kind] = self.dial_errors.get(kind, 0) + 1
            log.info("livekit dial did not connect", extra={
                "room": room, "error": str(err), "sip_status_code": err.sip_status_code})
            raise err from exc
        return SipCall(room=info.room_name or room,
                       participant_identity=info.participant_identity or identity,
                       participant_id=info.participant_id, sip_call_id=info.sip_call_id)

    def agent_token(self, room: str, identity: str, ttl_s: int | None = None) -> str:
        """A join token for the agent: this room only, publish and subscribe."""
        from datetime import timedelta

        from livekit import api

        ttl = ttl_s or self.settings.max_call_duration_s + 300
        return (api.AccessToken(self.settings.api_key, self.settings.api_secret)
                .with_identity(identity).with_name("agent").with_kind("agent")
                .with_ttl(timedelta(seconds=ttl))
                .with_grants(api.VideoGrants(room_join=True, room=room, can_publish=True,
                                             can_subscribe=True, can_publish_data=True))
                .to_jwt())

    async def end_room(self, room: str) -> bool:
        """Delete the room: LiveKit hangs up every SIP participant in it. False on error."""
        from livekit import api

        try:
            await asyncio.wait_for(self._api.room.delete_room(api.DeleteRoomRequest(room=room)),
                                   self.settings.request_timeout_s)
        except Exception as exc:
            log.warning("livekit room not deleted", extra={"room": room, "error": repr(exc)})
            return False
        return True

    async def aclose(self) -> None:
        await self._api.aclose()


def as_meta(err: SipDialError) -> dict[str, Any]:
    """The dial error as the fields a dial record keeps."""
    return {"outcome": err.outcome, "sip_status_code": err.sip_status_code,
            "http_status": err.http_status, "code": err.code, "error": str(err)}
