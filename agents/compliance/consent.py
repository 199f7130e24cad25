"""Is this inbound text an opt-out, an opt-in or a HELP request?

Two layers, because the law has two:

- Keywords (CTIA, Twilio defaults): the message *is* STOP, UNSUBSCRIBE, START, HELP…,
  insensitive to case, spacing, punctuation, emoji, repetition and politeness ("Stop
  please", "STOP!!", "stop stop"). CANCEL/END/QUIT are ordinary English words too, so they
  count only as the whole message; STOP-like words also count as a clause of their own
  ("Wrong number. Stop.").
- FCC 24-24 "reasonable means": any phrasing that plainly revokes consent ("take me off
  your list", "dont text me again", "leave me alone") revokes it wherever it appears.

Everything that can be tuned is data (`keywords.toml`, sources cited there); this module
only normalises text and applies the tables. Opt-outs are checked first and win over the
other kinds: a message that says both "yes" and "stop" revokes. Opt-in is deliberately
strict (the bare keyword only): a false opt-in would resume messages to someone who
said stop, which is far worse than asking them to send START again.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

ConsentKind = Literal["opt_out", "opt_in", "help"]

# Longest text inspected. An SMS of 10 concatenated segments is at most 1530 GSM-7
# characters; anything longer is not a phone reply, and bounding it bounds regex work.
MAX_CHARS = 2000
# Words before a phrase match that the negation/question guards look at.
_PREFIX_WORDS = 4
# Words after a phrase match that the timing/channel guards look at.
_SUFFIX_WORDS = 8

_APOSTROPHES = re.compile(r"['’‘`´ʼʹ′]")
_NON_WORD = re.compile(r"[\W_]+")
# Sentence ends for phrase matching: a timing guard must see the rest of its own sentence
# only ("Don't text me. Call me at 5 if needed" still revokes texting).
_SENTENCE = re.compile(r"[.!?;\n\r]+|\s[-–—]\s")
# Clause ends for the clause-level keyword rule ("wrong number, stop").
_CLAUSE = re.compile(r"[.!?;:,\n\r()]+|\s[-–—]\s")


@dataclass(frozen=True, slots=True)
class _Phrase:
    pattern: re.Pattern[str]
    time_guard: bool
    booking_guard: bool
    guarded: bool


@dataclass(frozen=True, slots=True)
class _Tables:
    keywords: dict[str, tuple[tuple[str, ...], ...]]
    clause_opt_out: tuple[tuple[str, ...], ...]
    politeness: frozenset[str]
    phrases: tuple[_Phrase, ...]
    prefix_guards: tuple[re.Pattern[str], ...]
    time_guards: tuple[re.Pattern[str], ...]
    booking_guards: tuple[re.Pattern[str], ...]


def normalize(text: str) -> str:
    """The form every table entry is written in: NFKC, case-folded, apostrophes dropped
    ("don't" = "dont"), any other non-letter/digit a single space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", folded)).split())


def _words(entries: list[str]) -> tuple[tuple[str, ...], ...]:
    # Longest first, so "stop all" is tried before "stop".
    units = {tuple(normalize(e).split()) for e in entries}
    return tuple(sorted((u for u in units if u), key=len, reverse=True))


@lru_cache(maxsize=1)
def tables() -> _Tables:
    """The parsed keywords.toml (read once per process)."""
    raw = tomllib.loads(
        resources.files("agents.compliance").joinpath("keywords.toml").read_text("utf-8")
    )
    kw = raw["keywords"]
    return _Tables(
        keywords={kind: _words(kw[kind]) for kind in ("opt_out", "opt_in", "help")},
        clause_opt_out=_words(kw["clause_opt_out"]),
        politeness=frozenset(normalize(w) for w in kw["politeness"]),
        phrases=tuple(
            _Phrase(re.compile(p["pattern"]), bool(p.get("time_guard", False)),
                    bool(p.get("booking_guard", False)), bool(p.get("guarded", True)))
            for p in raw["phrase"]
        ),
        prefix_guards=tuple(re.compile(g) for g in raw["guards"]["prefix"]),
        time_guards=tuple(re.compile(g) for g in raw["guards"]["time"]),
        booking_guards=tuple(re.compile(g) for g in raw["guards"]["booking"]),
    )


def _alone(tokens: list[str], units: tuple[tuple[str, ...], ...],
           filler: frozenset[str]) -> bool:
    """True when the tokens are one or more keyword units with only filler around them."""
    i, found = 0, False
    while i < len(tokens):
        for unit in units:
            if tuple(tokens[i : i + len(unit)]) == unit:
                i += len(unit)
                found = True
                break
        else:
            if tokens[i] not in filler:
                return False
            i += 1
    return found


def _phrase_revokes(sentence: str, t: _Tables) -> bool:
    for phrase in t.phrases:
        for match in phrase.pattern.finditer(sentence):
            if phrase.guarded:
                before = " ".join(sentence[: match.start()].split()[-_PREFIX_WORDS:])
                if any(g.search(before) for g in t.prefix_guards):
                    continue
            after = " ".join(sentence[match.end() :].split()[:_SUFFIX_WORDS])
            if phrase.time_guard and any(g.search(after) for g in t.time_guards):
                continue
            if phrase.booking_guard and any(g.search(after) for g in t.booking_guards):
                continue
            return True
    return False


def classify_consent(text: str) -> ConsentKind | None:
    """"opt_out", "opt_in", "help", or None for an ordinary message.

    Total over all strings (never raises); only the first MAX_CHARS characters count.
    """
    if not isinstance(text, str):  # callers are typed, but a webhook field may be anything
        return None
    text = text[:MAX_CHARS]
    t = tables()
    whole = normalize(text).split()
    if not whole:
        return None
    # Other keywords beside an opt-out keyword do not dilute it: "STOP HELP" revokes.
    others = frozenset(u[0] for k in ("opt_in", "help") for u in t.keywords[k] if len(u) == 1)
    if _alone(whole, t.keywords["opt_out"], t.politeness | others):
        return "opt_out"
    for clause in _CLAUSE.split(text):
        tokens = normalize(clause).split()
        if tokens and _alone(tokens, t.clause_opt_out, t.politeness):
            return "opt_out"
    for sentence in _SENTENCE.split(text):
        norm = normalize(sentence)
        if norm and _phrase_revokes(norm, t):
            return "opt_out"
    if _alone(whole, t.keywords["help"], t.politeness):
        return "help"
    if _alone(whole, t.keywords["opt_in"], frozenset()):
        return "opt_in"
    return None
