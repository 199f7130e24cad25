"""Intent of one inbound text message, by rules, before (and without) any LLM.

Rules first because the common replies to a re-engagement text are few and
short ("yes", "no thanks", "wrong number", "tuesday at 3 works"), a rule is
instant and free, and its answer is the same every time, which the compliance
side relies on. The LLM (agents/chat) may refine what the rules call weak.

The consent intents (opt_out, opt_in, help) are decided by
`agents.compliance.consent.classify_consent` and nothing else, so the channel,
the agent and the dialer can never disagree on whether a text revoked consent.
Every other rule is data in intents.toml (phrases, patterns, weights, the
negation words); this module only normalises, matches and scores.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from functools import cache
from importlib import resources
from typing import Any, Literal

import msgspec

Intent = Literal[
    "opt_out", "opt_in", "help", "booking", "interested", "question", "not_interested",
    "wrong_number", "unknown",
]
INTENTS: tuple[str, ...] = (
    "opt_out", "opt_in", "help", "booking", "interested", "question", "not_interested",
    "wrong_number", "unknown",
)
CONSENT_INTENTS = frozenset({"opt_out", "opt_in", "help"})
# Longer texts are cut before matching: an SMS thread message is rarely longer, and the
# rules must cost the same whatever arrives.
MAX_TEXT_CHARS = 2000

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_CLAUSE_BREAK = re.compile(r"[.,;:!?\n]+|\bbut\b")


class IntentResult(msgspec.Struct, frozen=True):
    intent: str
    confidence: float


class _Rule(msgspec.Struct, frozen=True):
    intent: str
    kind: Literal["phrase", "pattern", "raw"]
    weight: float
    tokens: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None


class _Rules(msgspec.Struct, frozen=True):
    exact: dict[str, tuple[str, float]]  # normalised whole message → (intent, weight)
    rules: tuple[_Rule, ...]
    negators: frozenset[str]
    window: int
    negated: dict[str, tuple[str, float]]
    symbols: dict[str, tuple[str, float]]
    priority: tuple[str, ...]
    bonus: float
    max_bonus: int
    cap: float
    no_text_confidence: float
    no_match_confidence: float


def normalise(text: str) -> str:
    """Lower case, compatibility-folded, apostrophes dropped, other non-alphanumerics → space."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).split())


def _clauses(text: str) -> list[str]:
    folded = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    return [c for c in (normalise(part) for part in _CLAUSE_BREAK.split(folded)) if c]


def _compile(data: dict[str, Any]) -> _Rules:
    scoring = data["scoring"]
    exact: dict[str, tuple[str, float]] = {}
    rules: list[_Rule] = []
    # Iterate in priority order so an exact phrase listed under two intents goes to the
    # one that must win ties.
    priority = tuple(scoring["priority"])
    for intent in priority:
        spec = data["intents"][intent]
        for phrase in spec.get("exact", []):
            exact.setdefault(normalise(phrase), (intent, scoring["exact"]))
        for phrase in spec.get("phrases", []):
            rules.append(_Rule(intent, "phrase", scoring["phrase"],
                               tokens=tuple(normalise(phrase).split())))
        for phrase in spec.get("weak", []):
            rules.append(_Rule(intent, "phrase", scoring["weak"],
                               tokens=tuple(normalise(phrase).split())))
        for pat in spec.get("patterns", []):
            rules.append(_Rule(intent, "pattern", float(pat["weight"]),
                               regex=re.compile(pat["re"])))
        for pat in spec.get("raw_patterns", []):
            rules.append(_Rule(intent, "raw", float(pat["weight"]), regex=re.compile(pat["re"])))
    negated = {k: (v["intent"], float(v["weight"])) for k, v in data["negated"].items()}
    symbols = {k: (v["intent"], float(v["weight"])) for k, v in data.get("symbols", {}).items()}
    for intent, _ in [*negated.values(), *symbols.values()]:
        if intent and intent not in INTENTS:
            raise ValueError(f"intents.toml: unknown intent {intent!r}")
    return _Rules(
        exact=exact, rules=tuple(rules),
        negators=frozenset(normalise(w) for w in data["negation"]["words"]),
        window=int(data["negation"]["window"]), negated=negated, symbols=symbols,
        priority=priority, bonus=float(scoring["bonus"]),
        max_bonus=int(scoring["max_bonus"]), cap=float(scoring["cap"]),
        no_text_confidence=float(scoring["no_text_confidence"]),
        no_match_confidence=float(scoring["no_match_confidence"]),
    )


@cache
def _rules() -> _Rules:
    raw = resources.files("agents.nlu").joinpath("intents.toml").read_text(encoding="utf-8")
    return _compile(tomllib.loads(raw))


def _find(tokens: list[str], phrase: tuple[str, ...]) -> list[int]:
    n = len(phrase)
    if not n:
        return []
    return [i for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n]) == phrase]


def _negated(tokens: list[str], start: int, rules: _Rules) -> bool:
    return any(t in rules.negators for t in tokens[max(0, start - rules.window):start])


def _consent(text: str) -> str | None:
    # Imported here: the compliance package loads its own keyword table, and this keeps
    # `import agents.nlu.intents` cheap for callers that never classify.
    from agents.compliance.consent import classify_consent

    return classify_consent(text)


def classify_intent(text: str) -> IntentResult:
    """The intent of one inbound message, with a confidence in [0, 1].

    Never raises on any string: bad input (empty, emoji only, control characters,
    very long) is `unknown`.
    """
    if not isinstance(text, str):
        return IntentResult("unknown", _rules().no_text_confidence)
    text = text[:MAX_TEXT_CHARS]
    consent = _consent(text)
    if consent in CONSENT_INTENTS:
        keyword = len(normalise(text).split()) <= 1
        return IntentResult(consent, 0.99 if keyword else 0.9)
    return _classify_rules(text, _rules())


def _classify_rules(text: str, rules: _Rules) -> IntentResult:
    scores: dict[str, list[float]] = {}

    def add(intent: str, weight: float) -> None:
        if intent and weight > 0:
            scores.setdefault(intent, []).append(weight)

    whole = normalise(text)
    if whole in rules.exact:
        add(*rules.exact[whole])
    for symbol, (intent, weight) in rules.symbols.items():
        if symbol in text:
            add(intent, weight)
    lowered = unicodedata.normalize("NFKC", text).lower()
    clauses = _clauses(text)
    for rule in rules.rules:
        if rule.kind == "raw":
            assert rule.regex is not None
            if rule.regex.search(lowered):
                add(rule.intent, rule.weight)
            continue
        for clause in clauses:
            tokens = clause.split()
            if rule.kind == "phrase":
                starts = _find(tokens, rule.tokens)
            else:
                assert rule.regex is not None
                starts = [clause.count(" ", 0, m.start()) for m in rule.regex.finditer(clause)]
            for start in starts:
                if _negated(tokens, start, rules):
                    add(*rules.negated.get(rule.intent, ("", 0.0)))
                else:
                    add(rule.intent, rule.weight)
    if not scores:
        if not whole:
            return IntentResult("unknown", rules.no_text_confidence)
        return IntentResult("unknown", rules.no_match_confidence)
    best: tuple[float, int, str] | None = None
    for intent, weights in scores.items():
        top = max(weights)
        support = min(rules.max_bonus, sum(1 for w in weights if w >= top - 0.05) - 1)
        score = top if top >= rules.cap else min(rules.cap, top + rules.bonus * support)
        rank = rules.priority.index(intent) if intent in rules.priority else len(rules.priority)
        key = (score, -rank, intent)
        if best is None or key > best:
            best = key
    assert best is not None
    return IntentResult(best[2], round(best[0], 3))
