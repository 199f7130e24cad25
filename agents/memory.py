"""Caller memory: what we know about the person on the line, decided in one place.

Three cases, and every consumer (both voice brains, the store wiring, the SMS
agent) must read them the same way, so they are a closed union rather than a
convention on a string:

- `Known(name, last_issue)`: a returning caller whose name we have: greet them
  by it, and say what they called about last time when we know it.
- `NewCaller()`: we looked the number up and have no name: ask for it.
- `Unknown()`: nothing is known (no number, no lookup, or it missed its
  budget): the plain greeting, and no claim either way.

`CallContext.caller_name` still carries the case across the call (a name, "",
or None) because that is what the telephony layer and the tool set; `recall`
and `remember` are the only translation between the two. The last issue travels
beside it (`CallContext.last_issue`): it is stored at the end of a call for a
business (the call's triage category, else the caller's words) and read back
before the next call's greeting; only a `Known` caller is told about it (a
number we cannot put a name to may be someone else on the same line).

Names arrive two ways: the brain's `capture_caller_name` tool, and the
`NameListener` below, which runs the rule-based extractor over caller
transcripts (a lone "Maria." counts right after the agent asked for the name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.nlu.names import extract_name

# Longest caller name put into a spoken greeting (a long one would sound like a list).
MAX_GREETING_NAME_CHARS = 60
# Longest last issue said back ("a burst pipe", or the caller's own words cut short).
MAX_ISSUE_CHARS = 80

ASK_NAME_NOTE = (
    "This caller has not told us their name yet: after greeting them, ask for their name, "
    "and when they say it, call capture_caller_name."
)

# An agent line that asks for the caller's name: the next caller turn may be a lone name.
_ASKS_NAME = re.compile(
    r"\b(your (full |first )?name|who am i speaking|who('s| is) (calling|this))\b", re.I
)


@dataclass(frozen=True, slots=True)
class Known:
    """A returning caller; `name` has its whitespace collapsed. `last_issue` is what
    they called about last time (a short phrase, "" when we do not know)."""

    name: str
    last_issue: str = ""


@dataclass(frozen=True, slots=True)
class NewCaller:
    """The lookup ran and found no name for this number."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """Nothing is known about the caller."""


CallerMemory = Known | NewCaller | Unknown


def clean_issue(text: str | None) -> str:
    """`text` fit to be said back: one line, at most `MAX_ISSUE_CHARS`, cut at a word,
    without the caller's closing punctuation ("" for nothing worth saying)."""
    issue = " ".join(str(text or "").split()).strip(" .!?,;:")
    if len(issue) > MAX_ISSUE_CHARS:
        issue = issue[:MAX_ISSUE_CHARS].rsplit(" ", 1)[0].rstrip(" .!?,;:")
    return issue


def recall(caller_name: str | None, last_issue: str | None = "") -> CallerMemory:
    """The memory carried by `CallContext.caller_name` (a name, "", or None) and
    `CallContext.last_issue`."""
    if caller_name is None:
        return Unknown()
    name = " ".join(caller_name.split())
    if name:
        return Known(name, clean_issue(last_issue))
    # A blank that is not "" is not the lookup's answer but noise: claim nothing.
    return NewCaller() if caller_name == "" else Unknown()


def remember(memory: CallerMemory) -> str | None:
    """`memory` as `CallContext.caller_name` carries it."""
    match memory:
        case Known(name):
            return name
        case NewCaller():
            return ""
        case _:
            return None


def from_lookup(stored_name: str | None) -> Known | NewCaller:
    """What a caller lookup that answered means (the caller row's name, or None)."""
    name = " ".join((stored_name or "").split())
    return Known(name) if name else NewCaller()


def session_flag(memory: Known | NewCaller) -> str:
    """The flag the live session records for a lookup's outcome."""
    return "returning_caller" if isinstance(memory, Known) else "new_caller"


def greeting(memory: CallerMemory, greeting_text: str, ask_name: str = "") -> str:
    """The first words a caller hears: welcomed back by name, asked for it, or neither."""
    match memory:
        case Known(name):
            welcome = f"Welcome back, {name[:MAX_GREETING_NAME_CHARS]}."
            return " ".join(p for p in (welcome, issue_sentence(memory), greeting_text) if p)
        case NewCaller() if ask_name.strip():
            return greeting_asking_name(greeting_text, ask_name)
        case _:
            return greeting_text


def greeting_asking_name(greeting_text: str, ask_name: str) -> str:
    """A new caller's greeting (the scripted brain renders it at start-up)."""
    return f"{greeting_text} {ask_name}".strip()


def issue_sentence(memory: CallerMemory) -> str:
    """What a returning caller hears about their last call, or "" (none known)."""
    if isinstance(memory, Known) and memory.last_issue:
        return f"Last time you called about {memory.last_issue}."
    return ""


def known_fact(memory: CallerMemory) -> str:
    """The fact a model is told about the caller, or ""."""
    if not isinstance(memory, Known):
        return ""
    fact = f"The caller's name is {memory.name}."
    if memory.last_issue:
        fact += f" Last time they called about {memory.last_issue}."
    return fact


def instructions_note(memory: CallerMemory) -> str:
    """What caller memory asks of a model's greeting, or "" (nothing to ask)."""
    match memory:
        case Known(name, last_issue):
            note = f"They have called before: greet them by name and welcome them back, {name}."
            if last_issue:
                note += (f" Mention that last time they called about {last_issue}, and ask "
                         "whether this call is about the same thing.")
            return note
        case NewCaller():
            return ASK_NAME_NOTE
        case _:
            return ""


class NameListener:
    """Hears the caller's name in a conversation's transcripts, once.

    Stops listening as soon as a name is known (from the lookup, the tool or
    itself): a second extraction could only overwrite a good name with a
    worse one. The name question is remembered for one caller turn only.
    """

    __slots__ = ("_wants_name", "name")

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self._wants_name = False

    def agent_said(self, text: str) -> None:
        self._wants_name = self.name is None and _ASKS_NAME.search(text) is not None

    def caller_said(self, text: str) -> str | None:
        """A name newly heard in the caller's `text` (not yet adopted: see `named`)."""
        if self.name is not None:
            return None
        after_question, self._wants_name = self._wants_name, False
        return extract_name(text, after_name_question=after_question)

    def named(self, name: str) -> None:
        """The caller's name is now known (stored); listen no more."""
        self.name = name
        self._wants_name = False
