"""The end-of-call analysis record, built without I/O from what the call left behind.

`build_analysis(facts)` is a pure function of a `CallFacts` (transcript, the call's
`CallFlow` state, how it ended): the same call always gives the same record, so the
rules below are tested without a server and fuzzed with any text.

Outcome, one of:

- outbound calls: the dialer's outcome as it is (`meeting_booked`,
  `callback_requested`, `declined`, `do_not_call`, `voicemail_left`, `ivr_failed`,
  `failed`), or `completed` for an outbound call the dialer did not place;
- inbound calls, the first that holds:
  `abandoned` (the caller said nothing), `transferred` (handed to a person),
  `emergency_alerted` (the call went URGENT and the owner alert started),
  `message_taken` (triage recognised a need: any category but "other" and
  "information"; or a capture question got a real answer; or the caller gave a
  phone number, email or address), else `info_only`.

Success (`success`, with the reason in `success_reason`):

- outbound: `meeting_booked` or `callback_requested`;
- inbound: `transferred` or `emergency_alerted`; `message_taken` only when the
  business can call back (a valid caller number, or one said on the call) and
  every required capture question has a real answer (a refusal such as "I'd rather
  not say", refusals.toml, is no answer; a `name`, `address`, `phone` or `email`
  heard elsewhere in the call counts); `info_only` and `abandoned` never.

Everything is bounded: at most `MAX_TURNS` turns, `MAX_TURN_CHARS` per turn,
`MAX_ENTITY_CHARS` of caller speech through the entity extractor, `MAX_TRIAGE_CHARS`
through triage (only without a CallFlow) and `MAX_INTENT_TURNS` through the intent
rules, so a huge transcript costs a fixed amount of work.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import msgspec

from agents.nlu.triage import PRIORITIES, triage

log = logging.getLogger(__name__)

MAX_TURNS = 200
MAX_TURN_CHARS = 2_000
# Caller speech (in turn order) the entity extractor reads; later speech is skipped.
MAX_ENTITY_CHARS = 8_000
# Caller speech triaged when the call had no CallFlow (it keeps its own priority).
MAX_TRIAGE_CHARS = 6_000
# Caller turns (and characters of each) the intent is classified over.
MAX_INTENT_TURNS = 8
MAX_INTENT_CHARS = 300
MAX_SUMMARY_CHARS = 600
MAX_ENTITIES = 16

OUTBOUND_SUCCESS = frozenset({"meeting_booked", "callback_requested"})
INBOUND_OUTCOMES = ("abandoned", "info_only", "message_taken", "transferred",
                    "emergency_alerted")
INBOUND_SUCCESS = frozenset({"message_taken", "transferred", "emergency_alerted"})
SummarySource = Literal["extractive", "model"]
# Triage categories that are no problem to act on: nothing matched, or a question.
NO_PROBLEM = frozenset({"", "other", "information"})


class Question(msgspec.Struct, frozen=True):
    field: str
    text: str
    required: bool = False


class CallFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the call left behind, gathered by the shell at call end."""

    call_sid: str
    started_at: datetime
    direction: str = "inbound"
    # The other party's number (the caller inbound, the callee outbound).
    caller_number: str = ""
    caller_number_valid: bool = False
    business: str = ""
    industry: str = "general"
    zone: str = "UTC"
    # (role, text) in order; roles "caller" and "agent".
    turns: Sequence[tuple[str, str]] = ()
    caller_name: str = ""
    # Caller memory at the greeting: True a number never seen before, False a
    # returning caller, None unknown (no lookup, or it missed its budget).
    new_caller: bool | None = None
    # The CallFlow's state (with a business); without one, triage runs here.
    priority: str | None = None
    category: str = ""
    problem: str = ""
    address: str = ""
    answers: dict[str, str] = msgspec.field(default_factory=dict)
    questions: Sequence[Question] = ()
    transferred: bool = False
    alerted: bool = False
    dial_outcome: str | None = None
    end_reason: str = ""
    duration_s: float = 0.0


class CapturedAnswer(msgspec.Struct, frozen=True):
    question: str
    answer: str
    refused: bool


class CallAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    call_sid: str
    direction: str
    business: str
    caller_name: str
    caller_number: str
    new_lead: bool
    summary: str
    summary_source: SummarySource
    intent: str
    priority: str
    category: str
    problem: str
    entities: dict[str, list[dict[str, Any]]]
    answers: dict[str, CapturedAnswer]
    outcome: str
    success: bool
    success_reason: str
    caller_turns: int
    duration_s: float


@cache
def _refusals() -> frozenset[str]:
    text = resources.files(__package__).joinpath("refusals.toml").read_text("utf-8")
    return frozenset(_plain(p) for p in tomllib.loads(text)["phrases"])


def _plain(text: str) -> str:
    text = text.lower().replace("’", "'")
    return " ".join(re.findall(r"[a-z0-9'/]+", text))


def is_refusal(answer: str) -> bool:
    """A declined answer ("I'd rather not say", "no", "none of your business")."""
    plain = _plain(answer)
    if not plain:
        return True
    refusals = _refusals()
    if plain in refusals:
        return True
    words = plain.split()
    # "no, I'd rather not say that" / "rather not say, sorry": a refusal leads the turn.
    return any(" ".join(words[:n]) in refusals and n >= 2 for n in range(2, min(6, len(words)) + 1))


def _clean_turns(turns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for item in list(turns)[:MAX_TURNS]:
        try:
            role, text = item
        except (TypeError, ValueError):
            continue
        if not isinstance(text, str) or not isinstance(role, str):
            continue
        text = " ".join(text.split())[:MAX_TURN_CHARS]
        if text:
            out.append((role, text))
    return out


def _rank(priority: str) -> int:
    return PRIORITIES.index(priority) if priority in PRIORITIES else 0


def build_analysis(facts: CallFacts, *, summary: str | None = None,
                   summary_source: SummarySource = "extractive",
                   sentences: int = 3) -> CallAnalysis:
    """The record for one finished call (`summary` given: a model's, else extractive)."""
    turns = _clean_turns(facts.turns)
    caller = [t for r, t in turns if r == "caller"]
    priority, category, problem = _priority(facts, caller)
    entities = _entities(caller, facts)
    answers = {f: CapturedAnswer(_question_text(facts, f), a[:500], is_refusal(a))
               for f, a in list(facts.answers.items())[:50] if isinstance(a, str)}
    name = facts.caller_name or _named(_answer(answers, "name")) or _first_name(entities)
    outcome = _outcome(facts, caller, category, answers, entities)
    success, reason = _success(facts, outcome, answers, entities, name)
    new_lead = _new_lead(facts, outcome)
    intent = _intent(caller)
    analysis = CallAnalysis(
        call_sid=facts.call_sid, direction=facts.direction, business=facts.business,
        caller_name=name[:120], caller_number=facts.caller_number, new_lead=new_lead,
        summary="", summary_source="extractive", intent=intent, priority=priority,
        category=category, problem=problem[:300], entities=entities, answers=answers,
        outcome=outcome, success=success, success_reason=reason, caller_turns=len(caller),
        duration_s=round(max(0.0, float(facts.duration_s)), 3))
    if summary is not None and summary.strip():
        text, source = " ".join(summary.split())[:MAX_SUMMARY_CHARS], summary_source
    else:
        text, source = extractive_summary(analysis, caller, sentences), "extractive"
    return msgspec.structs.replace(analysis, summary=text, summary_source=source)


def _question_text(facts: CallFacts, field: str) -> str:
    for q in facts.questions:
        if q.field == field:
            return q.text
    return ""


def _answer(answers: dict[str, CapturedAnswer], field: str) -> str:
    a = answers.get(field)
    return a.answer if a is not None and not a.refused else ""


def _named(answer: str) -> str:
    """The name in the answer to the name question ("umm, it's Raj" → "Raj")."""
    if not answer:
        return ""
    from agents.nlu.names import extract_name

    try:
        return extract_name(answer, after_name_question=True) or ""
    except Exception:
        log.exception("name extraction failed")
        return ""


def _first_name(entities: dict[str, list[dict[str, Any]]]) -> str:
    names = entities.get("names") or []
    return str(names[0].get("value", "")) if names else ""


def _priority(facts: CallFacts, caller: list[str]) -> tuple[str, str, str]:
    if facts.priority in PRIORITIES:
        return facts.priority, facts.category, facts.problem
    best, category, problem = "LOW", "", ""
    budget = MAX_TRIAGE_CHARS
    for text in caller:
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        try:
            result = triage(text, industry=facts.industry)
        except Exception:  # an unknown industry: every rule, as "general"
            result = triage(text)
        if _rank(result.priority) > _rank(best):
            best, category, problem = result.priority, result.category, text
    return best, category, problem


def _entities(caller: list[str], facts: CallFacts) -> dict[str, list[dict[str, Any]]]:
    from agents.nlu.entities import extract_entities

    kinds = ("phones", "emails", "dates", "amounts", "addresses", "names")
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    seen: dict[str, set[str]] = {k: set() for k in kinds}
    budget = MAX_ENTITY_CHARS
    for text in caller:
        if budget <= 0:
            break
        chunk = text[:budget]
        budget -= len(chunk)
        try:
            found = extract_entities(chunk, now=facts.started_at, zone=facts.zone)
        except Exception:
            log.exception("entity extraction failed", extra={"call_sid": facts.call_sid})
            continue
        for kind in kinds:
            for item in getattr(found, kind):
                data = msgspec.to_builtins(item)
                key = str(data.get("value", data.get("text", "")))
                if key in seen[kind] or len(out[kind]) >= MAX_ENTITIES:
                    continue
                seen[kind].add(key)
                out[kind].append(data)
    return out


def _intent(caller: list[str]) -> str:
    from agents.nlu.intents import classify_intent

    best, confidence = "unknown", 0.0
    for text in caller[:MAX_INTENT_TURNS]:
        result = classify_intent(text[:MAX_INTENT_CHARS])
        if result.intent != "unknown" and result.confidence > confidence:
            best, confidence = result.intent, result.confidence
    return best


def _useful(answers: dict[str, CapturedAnswer]) -> list[str]:
    return [f for f, a in answers.items() if not a.refused]


def _outcome(facts: CallFacts, caller: list[str], category: str,
             answers: dict[str, CapturedAnswer],
             entities: dict[str, list[dict[str, Any]]]) -> str:
    if facts.direction == "outbound":
        return facts.dial_outcome or "completed"
    if not caller:
        return "abandoned"
    if facts.transferred:
        return "transferred"
    if facts.alerted:
        return "emergency_alerted"
    if category not in NO_PROBLEM or _useful(answers) or any(
            entities.get(k) for k in ("phones", "emails", "addresses")):
        return "message_taken"
    return "info_only"


def _heard(field: str, name: str, facts: CallFacts,
           entities: dict[str, list[dict[str, Any]]]) -> bool:
    """A required field said elsewhere in the call counts as answered."""
    if field == "name":
        return bool(name)
    if field == "address":
        return bool(facts.address or entities.get("addresses"))
    if field in ("phone", "callback_number", "number"):
        return bool(entities.get("phones"))
    if field == "email":
        return bool(entities.get("emails"))
    return False


def _success(facts: CallFacts, outcome: str, answers: dict[str, CapturedAnswer],
             entities: dict[str, list[dict[str, Any]]], name: str) -> tuple[bool, str]:
    if facts.direction == "outbound":
        if outcome in OUTBOUND_SUCCESS:
            return True, f"outbound call ended {outcome}"
        return False, f"outbound call ended {outcome}, not a booking or a callback"
    if outcome in ("transferred", "emergency_alerted"):
        return True, outcome.replace("_", " ")
    if outcome != "message_taken":
        return False, f"{outcome.replace('_', ' ')}: nothing for the business to act on"
    reachable = facts.caller_number_valid or bool(entities.get("phones"))
    missing = [q.field for q in facts.questions
               if q.required and q.field not in _useful(answers)
               and not _heard(q.field, name, facts, entities)]
    if not reachable:
        return False, "message taken but no number to call back"
    if missing:
        return False, "message taken but required answers missing: " + ", ".join(missing)
    return True, "message taken with a callback number and every required answer"


def _new_lead(facts: CallFacts, outcome: str) -> bool:
    if facts.direction == "outbound":
        return outcome in OUTBOUND_SUCCESS
    return facts.new_caller is True and outcome != "abandoned"


# --- extractive summary -------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|yes|yeah|yep|no|ok|okay|sure|thanks|thank you|bye|goodbye|um+|uh+|"
    r"hmm+|right|great|alright|good morning|good afternoon|good evening|sounds good|"
    r"that's all|thats all|that's it|thats it)[\s,.!?]*)+$", re.I)
_DETAIL = re.compile(r"\d|\b(?:street|st|avenue|ave|road|rd|drive|lane|tomorrow|today|"
                     r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|morning|"
                     r"afternoon|evening|am|pm|dollars?|leak|broken|need|want|quote|"
                     r"appointment|emergency)\b", re.I)


def extractive_summary(analysis: CallAnalysis, caller: list[str], sentences: int = 3) -> str:
    """Priority and category, who called, the caller's key sentences, the outcome.

    Key sentences: the one that set the priority first, then those carrying details
    (numbers, places, days, the trade's words), then the longest; fillers ("yes",
    "thanks") and refusals never; kept in the order they were said.
    """
    scored: list[tuple[int, int, str]] = []
    order = 0
    problem = analysis.problem.lower()
    for text in caller:
        for piece in _SENTENCE.findall(text):
            s = piece.strip()
            if len(s) < 3 or _FILLER.match(s) or is_refusal(s):
                continue
            score = len(s.split()) // 4
            if problem and (s.lower() in problem or problem in s.lower()):
                score += 100
            if _DETAIL.search(s):
                score += 10
            scored.append((score, order, s))
            order += 1
            if order >= 400:
                break
    keep = sorted(sorted(scored, key=lambda t: (-t[0], t[1]))[:max(1, sentences)],
                  key=lambda t: t[1])
    head = analysis.priority + (f" ({analysis.category})" if analysis.category else "")
    who = analysis.caller_name or "caller"
    body = " ".join(s if s[-1] in ".!?" else s + "." for _, _, s in keep) or "(nothing said)"
    tail = f"Outcome: {analysis.outcome.replace('_', ' ')}."
    text = f"{head}, {who}: {body} {tail}"
    if len(text) > MAX_SUMMARY_CHARS:
        room = MAX_SUMMARY_CHARS - len(tail) - 2
        text = text[:room].rsplit(" ", 1)[0] + "… " + tail
    return text
