"""Which objections a callee's words raise, and whether they asked if we are an AI.

The trigger phrases are the script's (`SalesScript.triggers`): the one table both the
keyless brain's follower and the dialer's outcome read, so the tag a producer sees in a
job's `objections` is the objection the agent answered. Matching is on normalised words
(`agents.nlu.intents.normalise`), whole words only, total over any string.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

from agents.nlu.intents import normalise
from agents.sales.script import SalesScript, builtin_script

# Only the start of a very long turn is matched (a transcript is bounded, but be sure).
MAX_CHARS = 2_000


def _norm(text: object) -> str:
    if not isinstance(text, str):
        return ""
    return normalise(text[:MAX_CHARS])


def find_objections(text: object, script: SalesScript | None = None) -> list[str]:
    """The objection keys `text` raises, in the order they were said."""
    norm = _norm(text)
    if not norm:
        return []
    padded = f" {norm} "
    found: list[tuple[int, int, str]] = []
    table = (script or builtin_script()).triggers
    for order, (key, phrases) in enumerate(table.items()):
        positions = [i for i in (padded.find(f" {p} ") for p in phrases) if i >= 0]
        if positions:
            found.append((min(positions), order, key))
    return [key for _, _, key in sorted(found)]


@cache
def _ai_patterns() -> tuple[re.Pattern[str], ...]:
    text = resources.files(__package__).joinpath("rules.toml").read_text("utf-8")
    return tuple(re.compile(p) for p in tomllib.loads(text)["ai_question"]["patterns"])


def asks_if_ai(text: object) -> bool:
    """The callee asked whether they are talking to a machine ("are you a robot?")."""
    norm = _norm(text)
    return bool(norm) and any(p.search(norm) for p in _ai_patterns())


def contains_any(text: object, phrases: list[str] | tuple[str, ...]) -> bool:
    """Any of `phrases` (normalised here) is in `text`, as whole words."""
    norm = _norm(text)
    if not norm:
        return False
    padded = f" {norm} "
    return any(f" {p} " in padded for p in (normalise(x) for x in phrases) if p)
