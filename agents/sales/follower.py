"""The keyless brain's way through a sales script: stages moved on by keywords.

Sans-I/O and per call: the scripted brain asks `opening()` for its first words and
hands every final caller transcript to `caller_turn`, which answers with what to say
next (or None). The order of the checks is the order of a careful caller's priorities:

1. the callee revoked consent ("don't call me again"): say nothing here — the dialer's
   observer puts the number on the DNC list and says the goodbye — and stop;
2. "are you a robot?": the script's AI disclosure, at once, whatever the stage;
3. an objection: its handling line (the key is recorded once, in order; one is answered
   at most twice);
4. a plain no ("not interested", "wrong number"): the script's `declined` line, done;
5. an interest signal (`schedule_when.signals`) from `schedule_when.after` on: jump to
   the schedule stage;
6. the stage's `advance` words (any reply when it has none): the next stage's lines;
   the close stage ends the script. Otherwise the stage's `retry` line.

No turn ever raises: the input is a transcript of anything a person may say.
"""

from __future__ import annotations

from collections.abc import Mapping

from agents.compliance.consent import classify_consent
from agents.nlu.intents import classify_intent
from agents.sales.objections import asks_if_ai, contains_any, find_objections
from agents.sales.script import STAGES, SalesScript, contact_values, render_line, render_lines

# Turns after which the follower stops (a conversation going nowhere ends politely).
MAX_TURNS = 60
DECLINE_INTENTS = {"not_interested": None, "wrong_number": "wrong number"}


class SalesFollower:
    """One call's place in its script (see the module docstring)."""

    __slots__ = ("_answered", "_values", "contact", "decline_reason", "done", "name",
                 "objections", "script", "stage", "turns")

    def __init__(self, script: SalesScript, contact: Mapping[str, object] | None = None,
                 *, name: str = "default") -> None:
        self.script = script
        self.name = name
        self.contact = dict(contact or {})
        self._values = contact_values(script, self.contact)
        self.stage = "greeting"
        self.objections: list[str] = []
        self.decline_reason: str | None = None
        self.done = False
        self.turns = 0
        self._answered: dict[str, int] = {}

    # -- what to say --------------------------------------------------------------

    def say(self, text: str) -> str:
        """A script line for this contact (placeholders filled)."""
        return render_line(text, self._values)

    def _enter(self, stage: str) -> str:
        self.stage = stage
        if stage == "close":
            self.done = True
        text = render_lines(self.script.stage(stage).lines, self._values)
        # An empty stage is skipped: straight on to the next one with lines.
        if not text and stage != "close":
            return self._enter(STAGES[STAGES.index(stage) + 1])
        return text

    def opening(self) -> str:
        """The first words of the call: the greeting and the intro."""
        greeting = render_lines(self.script.stages.greeting.lines, self._values)
        intro = self._enter("intro")
        return " ".join(t for t in (greeting, intro) if t)

    def disclosure(self) -> str:
        return self.say(self.script.disclosure)

    def caller_turn(self, text: str) -> str | None:
        """What to say after the callee said `text`; None when there is nothing to say."""
        if self.done or not isinstance(text, str) or not text.strip():
            return None
        self.turns += 1
        if self.turns > MAX_TURNS:
            self.done = True
            self.decline_reason = self.decline_reason or "no commitment"
            return self.say(self.script.declined)
        if classify_consent(text) == "opt_out":
            self.done = True
            self.decline_reason = "do not call"
            return None
        if asks_if_ai(text):
            return self.disclosure()
        raised = find_objections(text, self.script)
        self.objections.extend(key for key in raised if key not in self.objections)
        intent = classify_intent(text).intent
        # An objection is answered (a repeated one once more); one answered twice already
        # and said again with a no is the decline it sounds like.
        for key in raised:
            objection = self.script.objection(key)
            if objection is not None and self._answered.get(key, 0) < 2:
                self._answered[key] = self._answered.get(key, 0) + 1
                return self.say(objection.handling)
        if intent in DECLINE_INTENTS:
            self.done = True
            self.stage = "close"
            self.decline_reason = DECLINE_INTENTS[intent] or " ".join(text.split())[:300]
            return self.say(self.script.declined)
        order = STAGES.index(self.stage)
        when = self.script.schedule_when
        if (order >= STAGES.index(when.after) and order < STAGES.index("schedule")
                and when.signals and contains_any(text, when.signals)):
            return self._enter("schedule") or None
        stage = self.script.stage(self.stage)
        if not stage.advance or contains_any(text, stage.advance) \
                or (self.stage == "schedule" and intent == "booking"):
            return self._enter(STAGES[order + 1]) or None
        retry = stage.retry or (stage.lines[-1] if stage.lines else "")
        return self.say(retry) or None

    def summary(self) -> dict[str, object]:
        """What the call came to, for the call's record."""
        return {"script": self.name, "stage": self.stage, "done": self.done,
                "objections": list(self.objections), "declineReason": self.decline_reason}
