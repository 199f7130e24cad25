"""Triage of a caller's words: how soon someone must act, and whether lives are at risk.

The receptionist has to know within one turn whether to say "leave the house and
call 911" before asking for a name, so triage is rules, not a model: instant, the
same answer every time, and auditable line by line against the public safety
guidance the rules cite (triage.toml). A realtime model may raise a priority later
through a tool; it never has to be asked for the safety line.

The rules are data; this module only normalises, cuts the text into clauses and
decides which matches count. A match does not count when, in its clause,
- a negator stands shortly before it ("no gas smell", "I don't smell gas"),
- the clause says it is over or fixed ("we had a leak last year", "was fixed"), or
  the next clause points back at a fix ("…, but the gas company came and fixed it"),
- it follows a hypothetical ("what should I do if a pipe bursts?"), or
- the rule's `unless` matches ("the smoke detector chirps, low battery").
Among the matches left, the highest priority wins; at equal priority a life-safety
rule, then the rule written first.
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

import msgspec

log = logging.getLogger(__name__)

Priority = Literal["LOW", "NORMAL", "HIGH", "URGENT"]
PRIORITIES: tuple[str, ...] = ("LOW", "NORMAL", "HIGH", "URGENT")
# "general" is a generalist front desk: every rule applies, as with no industry.
INDUSTRIES: tuple[str, ...] = (
    "plumbing", "hvac", "electrical", "medical", "dental", "legal", "general",
)

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_PUNCT_BREAK = re.compile(r"[.,;:!?\n]+")


class TriageResult(msgspec.Struct, frozen=True):
    """`cue` is the span that decided (None when nothing matched), for logs and prompts."""

    text: str
    priority: str
    emergency: bool
    life_safety: bool
    category: str
    cue: str | None = None


@dataclass
class TriageStats:
    """Counts for /metrics: results by priority, and refused input by reason."""

    by_priority: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


STATS = TriageStats()


@dataclass(frozen=True)
class _Rule:
    category: str
    priority: int
    life_safety: bool
    industries: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...]
    escalate: tuple[str, ...]
    escalate_to: int | None
    order: int


@dataclass(frozen=True)
class _Rules:
    rules: tuple[_Rule, ...]
    breaks: re.Pattern[str]
    negators: frozenset[str]
    breakers: frozenset[str]
    window: int
    resolved: tuple[re.Pattern[str], ...]
    resolved_back: tuple[re.Pattern[str], ...]
    hypothetical: tuple[re.Pattern[str], ...]
    escalation: Mapping[str, tuple[re.Pattern[str], ...]]
    safety: Mapping[str, str]
    max_chars: int


def normalise(text: str) -> str:
    """Lower case, compatibility-folded, apostrophes dropped, other non-alphanumerics → space."""
    folded = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    return " ".join(_NON_WORD.sub(" ", folded).split())


def _compile_all(patterns: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(re.compile(p) for p in patterns)
    except re.error as exc:
        raise ValueError(f"triage.toml {where}: bad pattern: {exc}") from exc


def _compile(data: dict[str, Any]) -> _Rules:
    escalation = {name: _compile_all(spec["patterns"], f"escalation.{name}")
                  for name, spec in data["escalation"].items()}
    hypothetical = _compile_all(data["hypothetical"]["markers"], "hypothetical")
    safety = dict(data["safety"])
    rules = []
    for order, spec in enumerate(data["rule"]):
        where = f"rule {order} ({spec.get('category')})"
        priority = PRIORITIES.index(spec["priority"])
        life_safety = bool(spec.get("life_safety", False))
        if life_safety and (spec["priority"] != "URGENT" or spec["category"] not in safety):
            raise ValueError(f"triage.toml {where}: life_safety needs URGENT and a safety line")
        industries = frozenset(spec.get("industries", []))
        if not industries <= set(INDUSTRIES):
            raise ValueError(f"triage.toml {where}: unknown industry in {sorted(industries)}")
        escalate = tuple(spec.get("escalate", []))
        if any(name not in escalation for name in escalate):
            raise ValueError(f"triage.toml {where}: unknown escalation group")
        patterns = _compile_all(spec["patterns"], where)
        if spec["category"] == "information":
            patterns += hypothetical  # a question about a hazard is information
        rules.append(_Rule(
            category=spec["category"], priority=priority, life_safety=life_safety,
            industries=industries, patterns=patterns,
            unless=_compile_all(spec.get("unless", []), where), escalate=escalate,
            escalate_to=(PRIORITIES.index(spec["escalate_to"]) if escalate else None),
            order=order,
        ))
    breaks = "|".join(re.escape(normalise(w)) for w in data["clauses"]["breaks"])
    return _Rules(
        rules=tuple(rules),
        breaks=re.compile(rf"\b(?:{breaks})\b"),
        negators=frozenset(data["negation"]["negators"]),
        breakers=frozenset(data["negation"]["breakers"]),
        window=int(data["limits"]["negation_window"]),
        resolved=_compile_all(data["tense"]["resolved"], "tense"),
        resolved_back=_compile_all(data["tense"].get("resolved_back", []), "tense"),
        hypothetical=hypothetical,
        escalation=MappingProxyType(escalation),
        safety=MappingProxyType(safety),
        max_chars=int(data["limits"]["max_text_chars"]),
    )


@cache
def _rules() -> _Rules:
    raw = resources.files("agents.nlu").joinpath("triage.toml").read_text(encoding="utf-8")
    return _compile(tomllib.loads(raw))


def safety_lines() -> Mapping[str, str]:
    """Category → the line to speak first, for every life-safety category."""
    return _rules().safety


def __getattr__(name: str) -> Any:
    # SAFETY_LINE reads the data file on first use, so importing this module stays cheap.
    if name == "SAFETY_LINE":
        return safety_lines()
    raise AttributeError(name)


def safety_instruction(result: TriageResult) -> str | None:
    """What the agent must say before collecting anything, or None when nothing is at risk."""
    if not result.life_safety:
        return None
    return _rules().safety.get(result.category)


def _clauses(text: str, rules: _Rules) -> list[str]:
    out = []
    for part in _PUNCT_BREAK.split(text):
        for clause in rules.breaks.split(normalise(part)):
            clause = clause.strip()
            if clause:
                out.append(clause)
    return out


def _negated(clause: str, start: int, rules: _Rules) -> bool:
    before = clause[:start].split()[-rules.window:] if rules.window else []
    for word in reversed(before):
        if word in rules.breakers:
            return False
        if word in rules.negators:
            return True
    return False


def _counts(rule: _Rule, clause: str, match: re.Match[str], rules: _Rules,
            following: str) -> bool:
    if _negated(clause, match.start(), rules):
        return False
    if rule.unless and any(p.search(clause) for p in rule.unless):
        return False
    if rule.category == "information":
        return True  # services are never cancelled by tense or by being asked about
    if rule.priority >= PRIORITIES.index("HIGH") or rule.life_safety:
        if any(p.search(clause) for p in rules.resolved):
            return False
        if following and any(p.search(following) for p in rules.resolved_back):
            return False  # "…, but they came and fixed it"
        if any((h := p.search(clause)) and h.start() <= match.start()
               for p in rules.hypothetical):
            return False
    return True


def triage(text: str, *, industry: str | None = None) -> TriageResult:
    """Priority, emergency, life safety and category of one caller utterance.

    `industry` narrows the trade-specific rules (life safety applies to every
    industry). Raises ValueError for an unknown industry; never raises on any text.
    """
    if industry is not None and industry not in INDUSTRIES:
        STATS.errors["unknown_industry"] += 1
        log.warning("triage: unknown industry %r (known: %s)", industry, ", ".join(INDUSTRIES))
        raise ValueError(f"unknown industry {industry!r}; known: {', '.join(INDUSTRIES)}")
    if not isinstance(text, str):
        STATS.errors["not_text"] += 1
        log.warning("triage: not text: %r", type(text).__name__)
        text = ""
    rules = _rules()
    clipped = text[:rules.max_chars]
    whole = normalise(clipped)
    clauses = _clauses(clipped, rules)
    best: tuple[int, bool, int, _Rule, str] | None = None
    for rule in rules.rules:
        if industry not in (None, "general") and rule.industries and \
                industry not in rule.industries:
            continue
        found = _first_match(rule, clauses, rules)
        if found is None:
            continue
        priority = rule.priority
        if rule.escalate_to is not None and all(
                any(p.search(whole) for p in rules.escalation[name]) for name in rule.escalate):
            priority = max(priority, rule.escalate_to)
        key = (priority, rule.life_safety, -rule.order, rule, found)
        if best is None or key[:3] > best[:3]:
            best = key
    if best is None:
        result = TriageResult(text, "NORMAL", False, False, "other")
    else:
        priority, life_safety, _, rule, cue = best
        name = PRIORITIES[priority]
        result = TriageResult(text, name, name == "URGENT", life_safety, rule.category, cue)
    STATS.by_priority[result.priority] += 1
    return result


def _first_match(rule: _Rule, clauses: list[str], rules: _Rules) -> str | None:
    for i, clause in enumerate(clauses):
        following = clauses[i + 1] if i + 1 < len(clauses) else ""
        for pattern in rule.patterns:
            for match in pattern.finditer(clause):
                if _counts(rule, clause, match, rules, following):
                    return match.group(0)
    return None
