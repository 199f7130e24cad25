"""The live side of an outbound call: the voicemail drop, do-not-call, the outcome.

A `CallObserver` like the store's: the media path is the inbound one, unchanged, and an
outbound call is recognised by the `DialKey` parameter its TwiML carried into the
stream's start message. What it does:

- every final caller transcript goes through `outcome.Conversation`; a revocation
  ("don't call us again") puts the number on the DNC list with a consent event at once,
  says a short goodbye and hangs up;
- a phone menu is navigated by `agents.nlu.ivr.IvrNavigator` on the same transcripts:
  its presses are played in-band on the call (Twilio cannot inject DTMF into a live
  stream), and a menu it gives up on ends the call as `ivr_failed`;
- an answering machine (AMD `machine_end_*`, from `/twilio/amd`) gets the configured
  voicemail message after the beep, then the call is hung up; where the carrier cannot
  tell (LiveKit has no AMD, Twilio says `unknown`) our own detector on the callee's
  first seconds (`telephony.dialer.amd`) gives the same verdicts;
- when the call ends, its outcome and detail go to the dial row, and the worker
  holding the job is woken.

Speech we inject (the voicemail, the goodbye) is synthesised locally, then queued on the
call's own playout like any agent audio; the call hangs up once it has played
(`Call.hangup_reason`, the same mechanism a brain's `end_call` uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agents.nlu.ivr import IvrNavigator
from agents.tts import synthesize_ulaw_async
from telephony.call import Call
from telephony.calls import CallObserver
from telephony.dialer.amd import OwnAmd
from telephony.dialer.jobs import fill_template
from telephony.dialer.outcome import MACHINE_ANSWERS, Conversation
from telephony.dialer.settings import DialerSettings
from telephony.dialer.worker import CallWaiters

log = logging.getLogger("leadline.dialer")

GOODBYE_DNC = "Understood. We will not call you again. Goodbye."
Speak = Callable[[str], Awaitable[bytes]]


@dataclass(slots=True)
class _Live:
    call: Call
    conversation: Conversation = field(default_factory=Conversation)
    answered_by: str | None = None
    speaking: bool = False
    ivr: IvrNavigator | None = None
    own_amd: OwnAmd | None = None


async def _espeak(text: str) -> bytes:
    return await synthesize_ulaw_async(text)


class OutboundCalls(CallObserver):
    """Observer of the dialer's calls in this process (see the module docstring)."""

    def __init__(self, settings: Callable[[], DialerSettings], db: Callable[[], Any],
                 waiters: CallWaiters, *, speak: Speak = _espeak,
                 transcript_url: Callable[[str], str | None] = lambda sid: None) -> None:
        self._settings = settings
        self._db = db
        self.waiters = waiters
        self._speak = speak
        self._transcript_url = transcript_url
        self.live: dict[str, _Live] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.voicemails_left = 0
        self.dnc_recorded = 0
        self.late_amd = 0
        self.errors = 0
        self.ivr_presses = 0
        # Verdicts of our own detector acted upon, by Twilio's name for them.
        self.own_amd_verdicts: dict[str, int] = {}
        self._ivr_timer: asyncio.Task[None] | None = None

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("dialer call task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the writes of calls that have ended (shutdown, tests)."""
        if self._ivr_timer is not None:
            self._ivr_timer.cancel()
            with contextlib.suppress(BaseException):
                await self._ivr_timer
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- CallObserver ---------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        if call.context.direction == "outbound" and call.context.parameters.get("DialKey"):
            # The call's script (set by the sales observer, registered before this one)
            # decides which objection tags the outcome records.
            sales = call.context.sales
            live = self.live[call.call_sid] = _Live(
                call, Conversation(sales.script if sales is not None else None),
                ivr=IvrNavigator(clock=time.monotonic))
            # Our own machine detection: acted upon at once where there is no carrier AMD
            # (LiveKit), else only once Twilio's says `unknown`.
            sid = call.call_sid
            live.own_amd = OwnAmd(lambda answered_by: self._own_verdict(sid, answered_by),
                                  armed=call.context.parameters.get("Via") == "livekit")
            call.audio_tap = self._tap(live)

    def _tap(self, live: _Live) -> Callable[[bytes], None]:
        own = live.own_amd
        assert own is not None
        call = live.call

        def tap(frame: bytes) -> None:
            own.frame(frame)
            if not own.listening:
                call.audio_tap = None  # done: the hot path is back to one test

        return tap

    def _own_verdict(self, call_sid: str, answered_by: str) -> None:
        live = self.live.get(call_sid)
        if live is None:
            return
        self.own_amd_verdicts[answered_by] = self.own_amd_verdicts.get(answered_by, 0) + 1
        if live.answered_by in (None, "unknown"):
            live.answered_by = answered_by
        self._act_on_answer(live, answered_by)

    def transcript(self, call: Call, role: str, text: str) -> None:
        live = self.live.get(call.call_sid)
        if live is None or role != "caller":
            return
        if live.own_amd is not None:
            live.own_amd.transcript(text)
        if live.conversation.heard(text) == "do_not_call":
            self._spawn(self._record_dnc(call, text), "dnc")
            self._spawn(self._say_and_hang_up(live, GOODBYE_DNC, "do not call"), "goodbye")
            return
        if live.ivr is not None and live.ivr.active:
            self._ivr_action(live, live.ivr.feed(text))
            if live.ivr.active and self._ivr_timer is None:
                self._ivr_timer = asyncio.ensure_future(self._tick_ivr())

    def _ivr_action(self, live: _Live, action: object) -> None:
        kind = getattr(action, "kind", None)
        if kind == "press":
            self.ivr_presses += 1
            live.call.send_dtmf(str(getattr(action, "digit", "")))
        elif kind == "failed":
            live.conversation.ivr_failed = True
            live.call.end_call("ivr failed")

    async def _tick_ivr(self) -> None:
        """About once a second while any call is in a phone menu: the navigator's settle
        and timeout rules need time to pass without a transcript. One task for all."""
        try:
            while True:
                await asyncio.sleep(1.0)
                navigating = [lv for lv in self.live.values()
                              if lv.ivr is not None and lv.ivr.active]
                if not navigating:
                    return
                for live in navigating:
                    assert live.ivr is not None
                    self._ivr_action(live, live.ivr.tick())
        finally:
            self._ivr_timer = None

    def call_ended(self, call: Call) -> None:
        live = self.live.pop(call.call_sid, None)
        if live is None:
            return
        if call.end_reason == "voicemail left" or call.hangup_reason == "voicemail left":
            live.conversation.voicemail_left = True
        if call.context.meeting is not None:
            live.conversation.booked_event = dict(call.context.meeting)
        outcome = live.conversation.outcome(live.answered_by)
        detail = live.conversation.detail(live.answered_by)
        detail["transcriptUrl"] = self._transcript_url(call.call_sid)
        if call.context.coach is not None:  # the coach's objectives, done and open
            detail["coach"] = call.context.coach.summary()
        self._spawn(self._finish(call.call_sid, outcome, detail), "finish")

    # -- AMD ----------------------------------------------------------------------------

    def answered_by(self, call_sid: str, answered_by: str) -> bool:
        """The AMD verdict for a call; True if the call is live here (acted upon)."""
        live = self.live.get(call_sid)
        if live is None:
            self.late_amd += 1
            return False
        live.answered_by = live.answered_by or answered_by
        own = live.own_amd
        if own is not None:
            if answered_by == "unknown":
                own.arm()  # ours decides (it may have already: acted on now)
                return True
            own.listening = False  # Twilio could tell: ours is not needed
            live.call.audio_tap = None
        self._act_on_answer(live, answered_by)
        return True

    def _act_on_answer(self, live: _Live, answered_by: str) -> None:
        if answered_by in MACHINE_ANSWERS and not live.speaking:
            params = live.call.context.parameters
            text = fill_template(self._settings().voicemail_message, {
                "firstName": params.get("FirstName", ""),
                "lastName": params.get("LastName", ""),
                "practiceName": params.get("PracticeName", ""),
                "callerId": params.get("CallerId", live.call.context.from_number),
            })
            self._spawn(self._say_and_hang_up(live, text, "voicemail left"), "voicemail")
        elif answered_by == "fax":
            live.call.end_call("fax answered")

    # -- actions --------------------------------------------------------------------

    async def _say_and_hang_up(self, live: _Live, text: str, reason: str) -> None:
        if live.speaking:
            return
        live.speaking = True
        audio = await self._speak(text)
        call = live.call
        if call.ended_at is not None or call.media is None:
            return
        # Cut whatever the brain was saying (and stop it answering), then ours, then hang
        # up when it has played: the order matters, an idle playout with a hang-up reason
        # set ends the call at once.
        call.media.interrupt()
        call.brain.cancel()
        call.hangup_reason = reason
        item = "dialer-" + reason.replace(" ", "-")
        call.media.agent_audio(item, audio)
        call.media.agent_done(item)
        call.transcript_add("agent", text)
        if reason == "voicemail left":
            self.voicemails_left += 1

    async def _record_dnc(self, call: Call, text: str) -> None:
        db = self._db()
        phone = call.context.to_number
        await db.add_consent_event(phone, "opt_out", "voice", text[:2000],
                                   source=f"call {call.call_sid}")
        await db.dnc_add([phone], reason=f"asked on call {call.call_sid}")
        self.dnc_recorded += 1
        log.info("do-not-call recorded from a call", extra={"call_sid": call.call_sid})

    async def _finish(self, call_sid: str, outcome: str, detail: dict[str, Any]) -> None:
        try:
            await self._db().finish_dial_media(call_sid, outcome=outcome, detail=detail)
        finally:
            self.waiters.notify(call_sid)
