"""One call's business logic without I/O: its priority, the safety line, capture questions.

Every caller turn is scored by the triage rules for the business's industry and
the call keeps the highest priority seen: a caller who says "gas" and then "it's
fine now, just come Tuesday" is still an emergency until a person decides it is
not. The realtime model may raise the priority (`set_priority`), never lower it.

The life-safety line is handed out once, the first time a turn needs it, so the
brain says it before anything else and never repeats it every turn. Capture
questions are asked in the configured order; once the call is an emergency only
the `essential_for_emergency` ones are left to ask. An answer is the caller turn
that follows its question.

Listeners (`on_urgent`) hear the call turn URGENT exactly once: that is where the
owner alert starts, and "once" is what keeps an owner from being phoned twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.business.settings import BusinessSettings, CaptureQuestion
from agents.nlu.triage import PRIORITIES, TriageResult, safety_instruction, triage

log = logging.getLogger(__name__)

# A caller turn longer than this is cut before triage and storage (bounded memory).
MAX_TURN_CHARS = 2_000
MAX_ANSWER_CHARS = 500


def rank(priority: str) -> int:
    """Position in LOW < NORMAL < HIGH < URGENT; unknown values rank lowest."""
    return PRIORITIES.index(priority) if priority in PRIORITIES else 0


@dataclass(frozen=True, slots=True)
class Answer:
    field: str
    question: str
    text: str


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What one caller turn changed: `raised` when the kept priority went up,
    `safety_line` the first time life is at risk, `answer` when it answered a question."""

    triage: TriageResult
    priority: str
    raised: bool
    safety_line: str | None = None
    answer: Answer | None = None


@dataclass
class CallFlow:
    business: BusinessSettings
    caller_number: str = ""
    priority: str = "LOW"
    emergency: bool = False
    life_safety: bool = False
    category: str = ""
    # The caller's words that decided the priority (the owner alert says it back).
    problem: str = ""
    address: str = ""
    reason: str = ""
    answers: dict[str, Answer] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    on_urgent: list[Callable[[CallFlow], None]] = field(default_factory=list)
    _pending: CaptureQuestion | None = None
    _safety_given: bool = False
    _urgent_fired: bool = False

    # -- priority --------------------------------------------------------------

    def caller_turn(self, text: str) -> TurnOutcome:
        """Score one caller turn, record it as an answer if a question was pending."""
        text = " ".join(text.split())[:MAX_TURN_CHARS]
        answer = None
        pending = self._pending
        if pending is not None and text:
            answer = Answer(pending.field, pending.text, text[:MAX_ANSWER_CHARS])
            self.answers[pending.field] = answer
            self._pending = None
        result = triage(text, industry=self.business.industry)
        raised = self._raise(result.priority, result.cue or text, "rules")
        if result.emergency:
            self.emergency = True
        if result.life_safety:
            self.life_safety = True
        if raised or (result.emergency and not self.problem):
            self.category = result.category
            self.problem = text[:300]
        if not self.address:
            self.address = _address_in(text)
        line = None
        if result.life_safety and not self._safety_given:
            line = safety_instruction(result)
            self._safety_given = line is not None
        if rank(self.priority) == rank("URGENT"):
            self._fire_urgent()
        return TurnOutcome(result, self.priority, raised, line, answer)

    def set_priority(self, priority: str, reason: str = "") -> bool:
        """The model's refinement: raises the kept priority (never lowers it).
        True when it changed anything."""
        if priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}")
        raised = self._raise(priority, reason[:300], "model")
        if raised:
            self.reason = reason[:300]
            if rank(priority) >= rank("HIGH"):
                self.emergency = True
            if not self.problem:
                self.problem = reason[:300]
        if rank(self.priority) == rank("URGENT"):
            self._fire_urgent()
        return raised

    def _raise(self, priority: str, cue: str, source: str) -> bool:
        if rank(priority) <= rank(self.priority):
            return False
        log.info("call priority raised", extra={
            "business": self.business.name, "from": self.priority, "to": priority,
            "source": source, "cue": cue[:80]})
        self.priority = priority
        return True

    def _fire_urgent(self) -> None:
        if self._urgent_fired:
            return
        self._urgent_fired = True
        for listener in list(self.on_urgent):
            try:
                listener(self)
            except Exception:
                log.exception("urgent listener failed", extra={"business": self.business.name})

    # -- capture questions -----------------------------------------------------

    def remaining(self) -> list[CaptureQuestion]:
        """Questions still to ask, in order (only the essential ones on an emergency)."""
        return [q for q in self.business.questions if q.field not in self.asked
                and (q.essential_for_emergency or not self.emergency)]

    def next_question(self) -> CaptureQuestion | None:
        """The next question to ask; the caller's next turn is taken as its answer."""
        left = self.remaining()
        if not left:
            self._pending = None
            return None
        question = left[0]
        self.asked.append(question.field)
        self._pending = question
        return question

    def agent_said(self, text: str) -> CaptureQuestion | None:
        """A model asks the questions in its own words: when an agent turn carries most of
        a question's words, that question is the one the caller answers next."""
        said = set(_words(text))
        if not said:
            return None
        for question in self.business.questions:
            if question.field in self.asked:
                continue
            words = [w for w in _words(question.text) if len(w) > 2]
            if words and sum(w in said for w in words) >= 0.7 * len(words):
                self.asked.append(question.field)
                self._pending = question
                return question
        return None

    def summary(self) -> dict[str, str]:
        """What the owner is told: who, from where, what, and where."""
        answers = {a.field: a.text for a in self.answers.values()}
        return {
            "business": self.business.name,
            "caller": answers.get("name", ""),
            "number": self.caller_number,
            "problem": self.problem,
            "address": answers.get("address", "") or self.address,
            "priority": self.priority,
            "category": self.category,
        }

    def issue(self) -> str:
        """What this call was about, for the caller's memory ("" when nothing was said)."""
        return issue_of(self.category, self.problem)


# How a triage category is said back to a returning caller ("last time you called
# about ..."); a category not listed is said as its words ("water leak" -> "a water leak").
_ISSUE_WORDS = {
    "gas_leak": "a gas smell", "carbon_monoxide": "a carbon monoxide alarm",
    "electrical_hazard": "an electrical hazard", "no_heat": "having no heat",
    "no_cooling": "having no cooling", "no_hot_water": "having no hot water",
    "no_water": "having no water", "drain_clog": "a clogged drain",
    "sewage": "a sewage backup", "medical": "a medical problem",
    "dental_pain": "dental pain", "legal_urgent": "an urgent legal matter",
    "information": "a question", "appointment": "an appointment",
    "violence": "a safety emergency", "alarm": "an alarm",
}


def issue_of(category: str, problem: str) -> str:
    """What a call was about, as a caller would hear it said back next time: the
    category in words, else the caller's own words, else ""."""
    if category and category != "other":
        words = category.replace("_", " ")
        article = "an" if words[:1] in "aeiou" else "a"
        return _ISSUE_WORDS.get(category, f"{article} {words}")
    return " ".join(problem.split())[:MAX_ANSWER_CHARS]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _address_in(text: str) -> str:
    """A street address the caller said, if any ("" when none or the extractor fails)."""
    try:
        from agents.nlu.entities import extract_addresses

        found = extract_addresses(text)
    except Exception:
        log.exception("address extraction failed")
        return ""
    return found[0].value if found else ""
