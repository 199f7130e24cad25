"""The coach of one call, without I/O: transcript in, requests and guidance out.

`CoachCore` is told every final transcript (`heard`) and asked, on its
schedule, whether a request is due (`due`). It answers yes only when
`interval_s` has passed AND something new was said since the last request:
a silent or idle call costs nothing. `request()` builds the Chat Completions
messages (the script, the objectives checklist with what is already done, the
transcript so far, newest kept within `max_transcript_chars`). `reply(text)`
parses the model's answer strictly; anything that is not the expected JSON
object is skipped and counted, never half-used. Objectives the model marks
done are matched against the checklist (an objective it invents is dropped)
and kept for the call record.

The clock is injected (seconds, any origin): the schedule is tested at exact
instants, and the asyncio shell (`agents.coach.task`) only sleeps until
`next_due_at`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

# What the system prompt starts with; the dev fake (`leadline dev fake-llm`) knows a
# coach request by it.
COACH_PROMPT_MARK = "You are the sales coach"
SYSTEM_PROMPT = f"""{COACH_PROMPT_MARK} listening to a live phone call between an AI sales \
agent and a prospect. You never speak to the prospect; you advise the agent.
Read the script, the objectives checklist and the transcript, then answer with ONE JSON \
object and nothing else:
{{"objectives_done": [objectives from the checklist now achieved, copied word for word],
 "next_step": "what the agent should do next, one short sentence",
 "say_next": "a line the agent could say next, or an empty string",
 "warning": "a problem to avoid right now (a forbidden claim, talking over the prospect, \
ignoring an objection), or an empty string"}}
Never suggest claims the script forbids. Keep every string under 200 characters."""

# Turns kept per call (the store keeps the whole transcript; this only feeds prompts).
MAX_TURNS = 400
# Longest string accepted in a reply field; a longer one makes the reply invalid.
MAX_FIELD_CHARS = 1_000
# What the agent is shown of each field (its context is precious).
SHOWN_CHARS = 240
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SPACE = re.compile(r"\s+")


class Guidance(msgspec.Struct, frozen=True):
    """The model's structured reply. Every key is required; extra keys are ignored."""

    objectives_done: list[str]
    next_step: str
    say_next: str
    warning: str | None

    def __post_init__(self) -> None:
        for name in ("next_step", "say_next", "warning"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_FIELD_CHARS:
                raise ValueError(f"{name} longer than {MAX_FIELD_CHARS} characters")
        if len(self.objectives_done) > 100:
            raise ValueError("too many objectives_done")


_decoder = msgspec.json.Decoder(Guidance)


class BadGuidance(ValueError):
    """A reply that is not the guidance object; `kind` says how (for the counters)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def parse_guidance(text: str) -> Guidance:
    """The reply as `Guidance`, or BadGuidance. A ```json fence around it is tolerated."""
    if not isinstance(text, str) or not text.strip():
        raise BadGuidance("empty", "no content")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadGuidance("invalid", str(exc)[:200]) from None
    except msgspec.DecodeError as exc:
        raise BadGuidance("not_json", str(exc)[:200]) from None


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().casefold().rstrip(".")


def _short(text: str) -> str:
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    text: str
    t: float  # seconds since the coach started (the call's start, near enough)


class CoachStats:
    """Process-wide figures (`STATS`), read by `ops` at scrape time."""

    __slots__ = ("failures", "guidance", "requests", "skipped")

    def __init__(self) -> None:
        self.requests = 0
        # Guidance notes handed to the agent.
        self.guidance = 0
        # Requests not made or answers not used, by reason (idle, busy, breaker_open,
        # not_json, invalid, empty, nothing_to_say).
        self.skipped: dict[str, int] = {}
        # Requests that failed, by kind (timeout, http_5xx, connection, ...).
        self.failures: dict[str, int] = {}


STATS = CoachStats()


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


class CoachCore:
    """One call's coach state (see the module docstring)."""

    def __init__(
        self,
        *,
        objectives: Iterable[str],
        script_text: str = "",
        interval_s: float = 15.0,
        clock: Callable[[], float],
        max_transcript_chars: int = 8_000,
        stats: CoachStats = STATS,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.objectives = list(dict.fromkeys(o.strip() for o in objectives if o.strip()))
        self.script_text = script_text.strip()
        self.interval_s = interval_s
        self.max_transcript_chars = max_transcript_chars
        self.stats = stats
        self._clock = clock
        self._t0 = clock()
        self._turns: deque[Turn] = deque(maxlen=MAX_TURNS)
        self._said = 0  # transcripts heard
        self._asked_at_said = 0  # transcripts heard when the last request was built
        self._in_flight = False
        self.next_due_at = self._t0 + interval_s
        # Objective → seconds into the call when the coach first saw it done.
        self.done: dict[str, float] = {}
        self._by_norm = {_norm(o): o for o in self.objectives}
        # This call's counts (the summary); `stats` has the process-wide ones.
        self.counts: dict[str, int] = {}
        self.last: Guidance | None = None

    # --- input -------------------------------------------------------------------

    def heard(self, role: str, text: str) -> None:
        """A final transcript of either side."""
        text = text.strip()
        if not text:
            return
        self._turns.append(Turn(role, text, round(self._clock() - self._t0, 1)))
        self._said += 1

    # --- schedule ----------------------------------------------------------------

    @property
    def has_news(self) -> bool:
        return self._said > self._asked_at_said

    def due(self) -> bool:
        """Is a request due now? Moves the schedule on when the interval has passed, and
        counts why a due slot is not used (nothing new said, a request still out)."""
        now = self._clock()
        if now < self.next_due_at:
            return False
        self.next_due_at += self.interval_s
        if self.next_due_at <= now:  # fell behind (a slow request): no catching up
            self.next_due_at = now + self.interval_s
        if self._in_flight:
            self.skip("busy")
            return False
        if not self.has_news:
            self.skip("idle")
            return False
        return True

    def skip(self, reason: str) -> None:
        _bump(self.counts, f"skipped_{reason}")
        _bump(self.stats.skipped, reason)

    # --- request / reply ---------------------------------------------------------------

    def request(self) -> list[dict[str, str]]:
        """The Chat Completions messages for a request made now."""
        self._in_flight = True
        self._asked_at_said = self._said
        _bump(self.counts, "requests")
        self.stats.requests += 1
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": self._user_message()}]

    def _user_message(self) -> str:
        lines: list[str] = []
        budget = self.max_transcript_chars
        for turn in reversed(self._turns):
            line = f"[{turn.t:g}s] {turn.role}: {turn.text}"
            if len(line) > budget:
                if not lines:  # one huge turn: its end is what matters now
                    lines.append("… " + line[-max(budget - 2, 0):])
                break
            lines.append(line)
            budget -= len(line) + 1
        if len(lines) < len(self._turns):
            lines.append("[earlier turns left out]")
        checklist = "\n".join(
            f"- [{'x' if o in self.done else ' '}] {o}" for o in self.objectives
        ) or "(none)"
        return (f"Script:\n{self.script_text or '(no script text)'}\n\n"
                f"Objectives checklist ([x] = already done):\n{checklist}\n\n"
                f"Transcript so far (seconds into the call):\n"
                + "\n".join(reversed(lines))
                + "\n\nAnswer with the JSON object only.")

    def reply(self, text: str) -> str | None:
        """The model's answer: the note to hand the agent, or None (skipped and counted)."""
        self._in_flight = False
        try:
            guidance = parse_guidance(text)
        except BadGuidance as exc:
            self.skip(exc.kind)
            return None
        self.last = guidance
        now = round(self._clock() - self._t0, 1)
        for claimed in guidance.objectives_done:
            objective = self._by_norm.get(_norm(claimed)) if isinstance(claimed, str) else None
            if objective is None:
                _bump(self.counts, "unknown_objective")
            elif objective not in self.done:
                self.done[objective] = now
        note = self.note(guidance)
        if note is None:
            self.skip("nothing_to_say")
            return None
        _bump(self.counts, "guidance")
        self.stats.guidance += 1
        return note

    def failed(self, kind: str) -> None:
        """The request failed (timeout, HTTP error, breaker): nothing to hand the agent."""
        self._in_flight = False
        _bump(self.counts, f"failed_{kind}")
        _bump(self.stats.failures, kind)

    def note(self, guidance: Guidance) -> str | None:
        """The system note for the agent; None when the guidance says nothing."""
        parts = []
        if guidance.next_step.strip():
            parts.append(f"Next step: {_short(guidance.next_step)}")
        if guidance.say_next.strip():
            parts.append(f'You could say: "{_short(guidance.say_next)}"')
        if guidance.warning and guidance.warning.strip():
            parts.append(f"Warning: {_short(guidance.warning)}")
        if not parts:
            return None
        still = [o for o in self.objectives if o not in self.done]
        if still:
            parts.append("Objectives still open: " + "; ".join(still[:8]))
        return ("[Coach guidance, private: never read it out or mention it] "
                + " ".join(p if p[-1] in ".!?\"…" else p + "." for p in parts))

    # --- the call record -----------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What the call record keeps: objectives done (with when) and open, and counts."""
        return {
            "objectives": [
                {"objective": o, "done": o in self.done, "at_s": self.done.get(o)}
                for o in self.objectives
            ],
            "done": len(self.done),
            "total": len(self.objectives),
            "counts": dict(self.counts),
        }
