"""What an outbound call came to: from the carrier's statuses, the answering-machine
verdict and the callee's words. Pure functions and one small accumulator; no I/O.

The consent decision is `agents.compliance.consent.classify_consent`, the same one the SMS
side uses, so "don't call us again" means do-not-call on every channel alike; the other
intents come from the shared intent rules plus this package's `outcomes.toml`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from agents.compliance.consent import classify_consent
from agents.nlu.intents import classify_intent, normalise
from agents.sales.objections import find_objections
from agents.sales.script import SalesScript

MACHINE_ANSWERS = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
# Twilio's final statuses for a call nobody answered, and the outcome each is.
UNANSWERED = {"busy": "busy", "no-answer": "no_answer", "failed": "failed",
              "canceled": "failed"}
# Caller turns kept per call for the decision (the store keeps the whole transcript).
MAX_TURNS = 200


@cache
def _tables() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("outcomes.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return {
        "callback": tuple(normalise(p) for p in data["callback"]["phrases"]),
        "ivr": tuple(re.compile(p) for p in data["ivr"]["patterns"]),
    }


def _contains(text: str, phrase: str) -> bool:
    return f" {phrase} " in f" {text} "


def status_outcome(status: str) -> str | None:
    """The outcome a final status gives on its own (a call that was never answered)."""
    return UNANSWERED.get(status)


class Conversation:
    """The callee's side of one answered call, folded into an outcome as it goes."""

    __slots__ = ("booked", "booked_event", "callback", "decline", "do_not_call", "ivr_failed",
                 "ivr_menus", "meeting", "objections", "script", "turns", "voicemail_left")

    def __init__(self, script: SalesScript | None = None) -> None:
        # The call's sales script: its objection triggers are the tags recorded (None: the
        # built-in script's), the same table the agent answered the objections from.
        self.script = script
        self.turns = 0
        self.do_not_call = False
        self.booked = False
        self.callback = False
        self.meeting: str | None = None
        # The meeting a booking tool created (start, end, zone, attendee, eventId, link).
        self.booked_event: dict[str, Any] | None = None
        self.decline: str | None = None
        self.objections: list[str] = []
        self.voicemail_left = False
        # Turns that were a phone menu, not a person; set when the navigator gave up.
        self.ivr_menus = 0
        self.ivr_failed = False

    def heard(self, text: str) -> str | None:
        """One final caller transcript. Returns "do_not_call" the moment consent is
        revoked (the caller of this method ends the call), else None."""
        if not isinstance(text, str) or not text.strip():
            return None
        self.turns += 1
        if self.turns > MAX_TURNS:
            return None
        if classify_consent(text) == "opt_out":
            self.do_not_call = True
            return "do_not_call"
        norm = normalise(text)
        tables = _tables()
        if any(p.search(norm) for p in tables["ivr"]):
            self.ivr_menus += 1
            return None
        for tag in find_objections(text, self.script):
            if tag not in self.objections:
                self.objections.append(tag)
        if any(_contains(norm, p) for p in tables["callback"]):
            self.callback = True
            return None
        intent = classify_intent(text).intent
        if intent == "booking":
            self.booked = True
            self.meeting = text.strip()[:300]
        elif intent in ("not_interested", "wrong_number") and not self.booked:
            self.decline = "wrong number" if intent == "wrong_number" else text.strip()[:300]
        return None

    def outcome(self, answered_by: str | None) -> str:
        """The call's outcome once it is over. Do-not-call beats everything; a booking
        beats a later hesitation; a machine that got our message is voicemail_left."""
        if self.do_not_call:
            return "do_not_call"
        if self.voicemail_left or (answered_by in MACHINE_ANSWERS and not self.turns):
            return "voicemail_left" if self.voicemail_left else "failed"
        if self.ivr_failed or (self.ivr_menus and self.turns == self.ivr_menus):
            return "ivr_failed"  # only ever a menu: no person was reached
        if self.booked or self.booked_event is not None:
            return "meeting_booked"
        if self.callback:
            return "callback_requested"
        if self.decline is None and self.turns == self.ivr_menus:
            self.decline = "no response"
        elif self.decline is None:
            self.decline = "no commitment"
        return "declined"

    def detail(self, answered_by: str | None) -> dict[str, Any]:
        outcome = self.outcome(answered_by)
        return {
            # "request" (the callee's words) stays for older producers; a booking tool's
            # event adds start, end, zone, attendee, eventId and link.
            "meeting": {"request": self.meeting, **(self.booked_event or {})}
            if outcome == "meeting_booked" else None,
            "declineReason": self.decline if outcome == "declined" else None,
            "objections": list(self.objections),
        }


def returnvalue(record: Any, *, transcript_url: str | None = None) -> dict[str, Any]:
    """The job's `returnvalue`, the contract with the producers (see README)."""
    detail: Mapping[str, Any] = record.detail or {}
    outcome = record.outcome or status_outcome(record.status) or "failed"
    return {
        "outcome": outcome,
        "callSid": record.call_sid,
        "durationS": record.duration_s,
        "transcriptUrl": detail.get("transcriptUrl", transcript_url),
        "meeting": detail.get("meeting"),
        "declineReason": detail.get("declineReason"),
        "objections": list(detail.get("objections") or []),
    }
