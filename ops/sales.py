"""Sales scripts wired into calls: the follower set on each outbound call with a script,
and what the call came to written to the audit trail when it ends.

Wiring only: the script, its rendering and the follower live in `agents.sales`. An
outbound call's script name and contact fields arrive as the `<Parameter>`s the dialer
put in its TwiML (or the LiveKit dial's attributes): `Script`, `FirstName`, `LastName`,
`PracticeName`, `State`, `Email`; the phone is the number called. This observer must be
registered before the dialer's and the coach's: they read `context.sales` when the call
starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agents.nlu.intents import classify_intent
from agents.sales.follower import DECLINE_INTENTS, SalesFollower
from agents.sales.objections import find_objections
from telephony.calls import CallObserver

if TYPE_CHECKING:
    from agents.brain import Role
    from ops.config import Config
    from telephony.call import Call

log = logging.getLogger("leadline.sales")
MAX_PENDING = 256
AUDIT_KIND = "sales_call"


def follower_for(config: Config, parameters: dict[str, str] | Any,
                 phone: str) -> SalesFollower | None:
    """The follower for an outbound call whose parameters name a script (the dialer's
    calls always do); None for a call without one."""
    name = str(parameters.get("Script", "") or "")
    if not name:
        return None
    sales = config.sales
    resolved = sales.resolve(name)
    contact = {"firstName": parameters.get("FirstName", ""),
               "lastName": parameters.get("LastName", ""),
               "practiceName": parameters.get("PracticeName", ""),
               "state": parameters.get("State", ""),
               "email": parameters.get("Email", ""),
               "phone": phone}
    return SalesFollower(sales.script(resolved), contact, name=resolved)


class SalesCalls(CallObserver):
    """Sets `context.sales` on outbound sales calls; records their summary at the end."""

    def __init__(self, config: Callable[[], Config], db: Callable[[], Any]) -> None:
        self._config = config
        self._db = db
        self._tasks: set[asyncio.Task[None]] = set()
        # Per live sales call, what the callee's words came to whichever brain answered
        # (the realtime one does not move the follower): objection keys, decline reason.
        self._heard: dict[str, tuple[list[str], list[str]]] = {}
        self.calls = 0
        self.errors = 0

    def call_started(self, call: Call) -> None:
        context = call.context
        if context.direction != "outbound" or context.sales is not None:
            return
        follower = follower_for(self._config(), context.parameters, context.to_number)
        if follower is not None:
            context.sales = follower
            self._heard[call.call_sid] = ([], [])
            self.calls += 1

    def transcript(self, call: Call, role: Role, text: str) -> None:
        heard = self._heard.get(call.call_sid)
        sales = call.context.sales
        if heard is None or sales is None or role != "caller" or len(heard[0]) > 50:
            return
        objections, declines = heard
        raised = find_objections(text, sales.script)
        objections.extend(k for k in raised if k not in objections)
        # A turn that raised an objection is one to answer, not the decline (as the
        # follower decides); the first plain no is the reason.
        if not raised and not declines \
                and (intent := classify_intent(text).intent) in DECLINE_INTENTS:
            declines.append(DECLINE_INTENTS[intent] or " ".join(text.split())[:300])

    def call_ended(self, call: Call) -> None:
        sales = call.context.sales
        heard = self._heard.pop(call.call_sid, ([], []))
        if sales is None or self._db() is None:
            return
        detail = sales.summary()
        detail["objections"] = [*sales.objections,
                                *(k for k in heard[0] if k not in sales.objections)]
        if detail["declineReason"] is None and heard[1]:
            detail["declineReason"] = heard[1][0]
        if len(self._tasks) >= MAX_PENDING:
            self.errors += 1
            log.warning("sales summary dropped: too many pending writes",
                        extra={"call_sid": call.call_sid})
            return
        task = asyncio.ensure_future(self._record(call.call_sid, detail))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, call_sid: str, detail: dict[str, Any]) -> None:
        try:
            await self._db().audit(AUDIT_KIND, call_sid=call_sid, detail=detail)
        except Exception:
            self.errors += 1
            log.exception("sales summary not recorded", extra={"call_sid": call_sid})

    async def drain(self) -> None:
        """Wait for the summaries of calls that have ended (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
