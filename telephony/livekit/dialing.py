"""The dialer's placer for jobs with `via = "livekit"`.

It fits the dialer's `Placer` seam, so a LiveKit job goes through the same discipline
as a Twilio one (validation, compliance, the idempotency key committed before the
dial, outcomes as the job's returnvalue). What Twilio reports through status
callbacks, this placer writes itself, under the same Twilio status names the dial
store ranks: `in-progress` once answered, `completed` (with the duration) when the call
is over, or `busy` / `no-answer` / `failed` for a dial the callee's side refused. The
conversation's outcome is written by the dialer's call observer, as for Twilio calls,
because the call is opened with the same `DialKey` parameters.

`place` returns once the dial has been answered or refused (LiveKit holds the request
until then); the dialer records the call SID right after, so the status writes here
first wait, briefly, for that row. A dial LiveKit could not serve raises `DialFailed`:
5xx, timeouts and lost connections are transient, other 4xx are final.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from telephony.dialer.leg import DialFailed, DialRequest
from telephony.livekit.session import STATUS_OF_OUTCOME, LiveKitCallResult, LiveKitCalls
from telephony.livekit.sip import SipDialError

log = logging.getLogger("leadline.livekit")

# How long the status writer waits for the dialer to record the call SID.
ROW_WAIT_S = 10.0
# Call SIDs of LiveKit calls: ours, so a hang-up or a status finds the right carrier.
SID_PREFIX = "LK"


class LiveKitPlacer:
    def __init__(self, calls: LiveKitCalls, db: Callable[[], Any],
                 notify: Callable[[str], None]) -> None:
        self.calls = calls
        self._db = db
        self._notify = notify
        self._tasks: set[asyncio.Task[None]] = set()

    async def place(self, request: DialRequest, base_url: str) -> str:
        sid = SID_PREFIX + secrets.token_hex(16)
        # "Via": the dialer's observer runs our own machine detection (LiveKit has no AMD).
        parameters = {"Direction": "outbound-api", "From": request.from_, "To": request.to,
                      "Via": "livekit", **request.parameters}
        try:
            dial, final = await self.calls.start(request.to, call_sid=sid,
                                                 from_number=request.from_,
                                                 parameters=parameters)
        except SipDialError as err:
            raise DialFailed(str(err), permanent=err.permanent,
                             status=err.http_status) from err
        task = asyncio.get_running_loop().create_task(self._report(sid, dial, final))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return sid

    async def _row(self, sid: str) -> bool:
        db = self._db()
        deadline = asyncio.get_running_loop().time() + ROW_WAIT_S
        while await db.get_dial_by_call_sid(sid) is None:
            if asyncio.get_running_loop().time() > deadline:
                log.error("livekit call has no dial row; status not recorded",
                          extra={"call_sid": sid})
                return False
            await asyncio.sleep(0.02)
        return True

    async def _report(self, sid: str, dial: LiveKitCallResult,
                      final: asyncio.Future[LiveKitCallResult] | None) -> None:
        try:
            if not await self._row(sid):
                if final is not None:
                    await final
                return
            db = self._db()
            if final is None:
                await db.update_dial_status(sid, STATUS_OF_OUTCOME.get(dial.status, "failed"),
                                            outcome=dial.status if dial.status in
                                            STATUS_OF_OUTCOME else "failed")
            else:
                await db.update_dial_status(sid, "in-progress")
                self._notify(sid)
                result = await final
                await db.update_dial_status(sid, "completed",
                                            duration_s=int(result.duration_s))
        except Exception:
            log.exception("livekit call status not recorded", extra={"call_sid": sid})
        finally:
            self._notify(sid)

    async def find(self, to: str, from_: str, since: datetime) -> str | None:
        """A dial whose request was lost is never adopted: its room is deleted when
        the request fails (which hangs up anything still ringing into it)."""
        return None

    async def hangup(self, call_sid: str) -> None:
        self.calls.hang_up(call_sid)

    async def aclose(self) -> None:
        await self.calls.aclose()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
