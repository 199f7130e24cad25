"""One LiveKit call from dial to hang-up, and the dialer's placer for `via = "livekit"`.

Order matters for the greeting: the agent joins the (new, per-call) room first and
publishes its track, then asks LiveKit to dial into it with `wait_until_answered`, so
the moment the callee picks up the agent is already there and the call opens at once
(brain started, greeting on the media clock). A dial the callee's side refused (busy,
no answer: a SIP code) is an outcome; a request LiveKit could not serve is an error
for the caller of `dial` to retry or not. The call ends when the callee hangs up
(`sip.callStatus = hangup` or leaving), when the room goes away, when the call ends
itself (the agent's goodbye: the leg deletes the room, which hangs up the phone), or
at `max_call_duration_s`. Whatever ends it, the room is deleted and left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.brain import CallContext
from telephony.call import Call, Leg
from telephony.livekit.leg import LegStats, LiveKitLeg
from telephony.livekit.room import LiveKitRoom, RoomPort
from telephony.livekit.settings import LiveKitSettings
from telephony.livekit.sip import LiveKitSip, SipDialError, new_room_name

log = logging.getLogger("leadline.livekit")

# How long joining the room may take before the dial is given up.
JOIN_TIMEOUT_S = 10.0
# Beyond max_call_duration_s, how long we wait for LiveKit's own hang-up before ours.
END_GRACE_S = 5.0
# Twilio's status names, which the dial store and the outcome rules already speak.
STATUS_OF_OUTCOME = {"busy": "busy", "no_answer": "no-answer", "failed": "failed"}

RoomFactory = Callable[[str, str, str], RoomPort]


class Calls(Protocol):
    """`telephony.calls.CallManager` as the session uses it."""

    def open(self, context: CallContext, leg: Leg) -> Call: ...
    async def close(self, call: Call, reason: str) -> None: ...


@dataclass
class LiveKitCallResult:
    call_sid: str
    room: str
    # "completed" (answered, then ended), or the dial's outcome: busy, no_answer, failed.
    status: str
    answered: bool = False
    duration_s: float = 0.0
    end_reason: str = ""
    error: str = ""
    sip_status_code: int | None = None
    transcript: list[tuple[str, str]] = field(default_factory=list)


def _add(total: LegStats, stats: LegStats) -> None:
    for name in ("frames_in", "frames_out", "checkpoints", "cleared", "overflows",
                 "capture_errors"):
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    for reason, n in stats.bad_frames.items():
        total.bad_frames[reason] = total.bad_frames.get(reason, 0) + n


def _default_room(settings: LiveKitSettings) -> RoomFactory:
    def make(url: str, token: str, callee: str) -> RoomPort:
        return LiveKitRoom(url, token, callee, queue_ms=settings.source_queue_ms)
    return make


class LiveKitCalls:
    """Outbound calls through LiveKit for one process."""

    def __init__(self, settings: Callable[[], LiveKitSettings], calls: Calls, *,
                 sip: LiveKitSip | None = None, room_factory: RoomFactory | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._calls = calls
        self._sip = sip
        self._room_factory = room_factory
        self._now = now
        self.active: dict[str, LiveKitLeg] = {}
        self.results: dict[str, int] = {}
        # Counters of the legs that have ended; `leg_totals()` adds the live ones.
        self._ended = LegStats()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def sip(self) -> LiveKitSip:
        if self._sip is None:  # made in the loop, with the settings of the first call
            self._sip = LiveKitSip(self._settings())
        return self._sip

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, to: str, *, call_sid: str | None = None, from_number: str = "",
                    parameters: Mapping[str, str] | None = None
                    ) -> tuple[LiveKitCallResult, asyncio.Future[LiveKitCallResult] | None]:
        """Join, dial and, if answered, open the call.

        Returns the dial's result and, for an answered call, a future of the final one
        (the call runs on in the background). Raises `SipDialError` when LiveKit could
        not serve the dial (no SIP answer): the caller decides whether to retry.
        """
        s = self._settings()
        room = new_room_name(s.room_prefix)
        sid = call_sid or "LK" + secrets.token_hex(16)
        callee = f"callee-{secrets.token_hex(4)}"
        factory = self._room_factory or _default_room(s)
        port = factory(s.url, self.sip.agent_token(room, s.agent_identity), callee)
        # Whatever ends the call, `_run` deletes the room (which hangs up the phone).
        leg = LiveKitLeg(port)
        try:
            await asyncio.wait_for(port.connect(leg), JOIN_TIMEOUT_S)
        except Exception as exc:
            await port.disconnect()
            raise SipDialError(f"livekit room join failed: {exc!r}"[:500], outcome=None,
                               permanent=False) from exc
        try:
            await self.sip.dial(to, room, callee, from_number=from_number,
                                attributes={"leadline.callSid": sid})
        except SipDialError as err:
            await port.disconnect()
            await leg.close()
            if err.outcome is None:
                # The request failed, not the call: a dial LiveKit may still be ringing
                # is hung up with the room rather than answered into an empty one.
                await self.sip.end_room(room)
                raise
            self._count(err.outcome)
            return LiveKitCallResult(sid, room, err.outcome, error=str(err),
                                     sip_status_code=err.sip_status_code), None
        except BaseException:
            await port.disconnect()
            await leg.close()
            raise
        if leg.state == "dialing":  # answered: the status attribute may trail the reply
            leg.on_call_status("active")
        context = CallContext(call_sid=sid, from_number=from_number, to_number=to,
                              direction="outbound", parameters=dict(parameters or {}))
        call = self._calls.open(context, leg)
        leg.start(call)
        self.active[sid] = leg
        answered = LiveKitCallResult(sid, room, "answered", answered=True)
        final: asyncio.Future[LiveKitCallResult] = asyncio.get_running_loop().create_future()
        self._spawn(self._run(call, leg, port, room, s, final))
        return answered, final

    async def _run(self, call: Call, leg: LiveKitLeg, port: RoomPort, room: str,
                   s: LiveKitSettings, final: asyncio.Future[LiveKitCallResult]) -> None:
        started = self._now()
        try:
            try:
                await asyncio.wait_for(leg.ended.wait(), s.max_call_duration_s + END_GRACE_S)
            except TimeoutError:
                leg.hang_up("max call duration")
            reason = leg.end_reason or "ended"
            await self._calls.close(call, reason)
        finally:
            self.active.pop(call.call_sid, None)
            _add(self._ended, leg.stats)
            await leg.close()
            with contextlib.suppress(Exception):
                await self.sip.end_room(room)
            await port.disconnect()
            self._count("completed")
            result = LiveKitCallResult(
                call.call_sid, room, "completed", answered=True,
                duration_s=self._now() - started, end_reason=leg.end_reason or "ended",
                transcript=[(str(r), t) for r, t in call.transcript_tail])
            if not final.done():
                final.set_result(result)

    def leg_totals(self) -> LegStats:
        """Every leg's counters, ended and live, for /metrics (read at scrape time)."""
        total = LegStats()
        _add(total, self._ended)
        for leg in list(self.active.values()):
            _add(total, leg.stats)
        return total

    def _count(self, status: str) -> None:
        self.results[status] = self.results.get(status, 0) + 1

    def hang_up(self, call_sid: str) -> bool:
        leg = self.active.get(call_sid)
        if leg is None:
            return False
        leg.hang_up("hung up by us")
        return True

    async def aclose(self) -> None:
        for leg in list(self.active.values()):
            leg.hang_up("shutting down")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._sip is not None:
            await self._sip.aclose()
