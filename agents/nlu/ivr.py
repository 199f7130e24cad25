"""Phone trees: which key to press, heard from the callee's transcript of a menu.

An outbound call to a business usually meets an auto attendant before a person. The
agent must get through it the way a person would — listen, press the key for the front
desk (or the goal of the call), fall back to the operator — without ever occupying an
emergency, urgent-care, nurse or on-call line, which exist for patients in need.

Rules, not a model, for the same reasons as triage: instant, deterministic, auditable
against the data file (ivr.toml). `parse_menu` turns text into options, `choose` picks
one for a goal, `IvrNavigator` is the sans-I/O state machine a call drives with
transcripts and clock ticks (multi-level menus, repeated menus, the live person).

How labels attach to keys: menus say "for billing, press 1" (label before) or "press 1
for billing" (label after). Punctuation settles it when ASR gives any; otherwise both
readings are scored and the one whose labels start with "for/to/if" more often wins,
which is how a listener disambiguates "for billing press one for sales press two".
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

log = logging.getLogger(__name__)

Reason = Literal["goal", "operator", "wait", "no_safe_option", "no_match", "not_a_menu"]
BOUNDARY = "."
DEFAULT_GOAL = "front desk"

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`´]")
_SENTENCE = re.compile(r"[.,;:!?\n]+")
_OTHER = re.compile(r"[^a-z0-9*#. ]+")


@dataclass
class IvrStats:
    """Counts for /metrics: choices by reason, navigator outcomes, refused input."""

    by_reason: Counter[str] = field(default_factory=Counter)
    navigator: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


STATS = IvrStats()


@dataclass(frozen=True, slots=True)
class Option:
    """One key of a menu. `key` None is the stay-on-the-line option."""

    key: str | None
    label: str
    categories: frozenset[str]
    unsafe: bool


@dataclass(frozen=True, slots=True)
class Choice:
    digit: str | None
    reason: Reason
    option: Option | None = None


@dataclass(frozen=True, slots=True)
class Menu:
    options: tuple[Option, ...]
    extension_prompt: bool

    @property
    def keyed(self) -> tuple[Option, ...]:
        return tuple(o for o in self.options if o.key is not None)

    def signature(self) -> frozenset[tuple[str, str]]:
        """What identifies a menu when it plays again: its keys and their labels."""
        return frozenset((o.key, o.label) for o in self.options if o.key is not None)


@dataclass(frozen=True)
class _Rules:
    keys: Mapping[str, str]
    verbs: tuple[tuple[str, ...], ...]
    fillers: frozenset[str]
    cues: frozenset[str]
    extension: tuple[re.Pattern[str], ...]
    wait: tuple[re.Pattern[str], ...]
    human: tuple[re.Pattern[str], ...]
    not_human: tuple[re.Pattern[str], ...]
    categories: Mapping[str, tuple[re.Pattern[str], ...]]
    unsafe: tuple[re.Pattern[str], ...]
    goals: Mapping[str, Mapping[str, int]]
    max_chars: int
    max_options: int


def _compile_all(patterns: list[str], where: str) -> tuple[re.Pattern[str], ...]:
    try:
        return tuple(re.compile(p) for p in patterns)
    except re.error as exc:
        raise ValueError(f"ivr.toml {where}: bad pattern: {exc}") from exc


def _compile(data: dict[str, Any]) -> _Rules:
    keys = {k: str(v) for k, v in data["keys"].items()}
    bad = [v for v in keys.values() if v not in "0123456789*#" or len(v) != 1]
    if bad:
        raise ValueError(f"ivr.toml [keys]: not a DTMF key: {bad}")
    categories = {name: _compile_all(spec["patterns"], f"category.{name}")
                  for name, spec in data["category"].items()}
    goals: dict[str, dict[str, int]] = {}
    for goal, weights in data["goal"].items():
        unknown = set(weights) - set(categories)
        if unknown:
            raise ValueError(f"ivr.toml goal {goal!r}: unknown categories {sorted(unknown)}")
        goals[goal] = {c: int(w) for c, w in weights.items()}
    verbs = sorted((tuple(v.split()) for v in data["actions"]["verbs"]), key=len, reverse=True)
    menu = data["menu"]
    return _Rules(
        keys=keys, verbs=tuple(verbs), fillers=frozenset(data["actions"]["fillers"]),
        cues=frozenset(menu["label_cues"]),
        extension=_compile_all(menu["extension"], "menu.extension"),
        wait=_compile_all(menu["wait"], "menu.wait"),
        human=_compile_all(menu["human"], "menu.human"),
        not_human=_compile_all(menu["not_human"], "menu.not_human"),
        categories=categories, unsafe=_compile_all(data["unsafe"]["patterns"], "unsafe"),
        goals=goals, max_chars=int(data["limits"]["max_text_chars"]),
        max_options=int(data["limits"]["max_options"]),
    )


@cache
def _rules() -> _Rules:
    raw = resources.files("agents.nlu").joinpath("ivr.toml").read_text(encoding="utf-8")
    return _compile(tomllib.loads(raw))


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped, sentence punctuation → ' . ', other symbols → space.

    `*` and `#` survive: ASR writes "press #" as often as "press pound".
    """
    folded = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    folded = _SENTENCE.sub(" . ", folded)
    return " ".join(_OTHER.sub(" ", folded).split())


def _key_at(tokens: list[str], i: int, rules: _Rules) -> tuple[str, int] | None:
    """The key named at tokens[i:] (and the index after it), '911' for the emergency number."""
    if i >= len(tokens):
        return None
    tok = tokens[i]
    if tok == "911" or tokens[i:i + 3] == ["nine", "one", "one"]:
        return "911", i + (1 if tok == "911" else 3)
    if len(tok) == 1 and tok in "0123456789*#":
        return tok, i + 1
    two = " ".join(tokens[i:i + 2])
    if two in rules.keys:
        return rules.keys[two], i + 2
    if tok in rules.keys:
        return rules.keys[tok], i + 1
    return None


def _actions(tokens: list[str], rules: _Rules) -> list[tuple[int, int, str]]:
    """(start, end, key) of every "press N" in the token list.

    Once a menu has said "press", later options often drop the verb ("press one for
    sales, two for support"): a key that opens a clause (after a boundary, "or", "and")
    and is followed by a label cue counts as an action too.
    """
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        if out and (tokens[i - 1] in (BOUNDARY, "or", "and") if i else False):
            found = _key_at(tokens, i, rules)
            if found is not None and found[1] < len(tokens) and found[0] != "911" \
                    and tokens[found[1]] in rules.cues:
                out.append((i, found[1], found[0]))
                i = found[1]
                continue
        for verb in rules.verbs:
            if tuple(tokens[i:i + len(verb)]) == verb:
                j = i + len(verb)
                while j < len(tokens) and tokens[j] in rules.fillers:
                    j += 1
                found = _key_at(tokens, j, rules)
                if found is not None:
                    key, end = found
                    while end < len(tokens) and tokens[end] in ("key", "button", "now"):
                        end += 1
                    out.append((i, end, key))
                    i = end - 1
                break
        i += 1
    return out


def _clauses(words: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for w in words:
        if w == BOUNDARY:
            parts.append([])
        else:
            parts[-1].append(w)
    return parts


def _starts_with_cue(label: str, rules: _Rules) -> bool:
    words = label.split()
    if words[:1] in (["or"], ["and"]):
        words = words[1:]
    return bool(words) and words[0] in rules.cues


def _clean(label: str) -> str:
    label = re.sub(r"^(or|and|please|now|then)\s+", "", label)
    label = re.sub(r"\s+(or|and|please|you may|you can|now)$", "", label)
    return label.strip()


_PREAMBLE_CUE = re.compile(r"\b(for|to) (calling|contacting|choosing|holding|your patience)\b"
                           r"|\bwelcome to\b")


def _label_from_cue(label: str, rules: _Rules) -> str:
    """A label read before its key, from its first cue on ("thank you for calling acme for
    billing" → "for billing"); the text itself when it has no cue."""
    words = _PREAMBLE_CUE.sub(lambda m: "_" * len(m.group(0)), label).split()
    for n, w in enumerate(words):
        if w in rules.cues:
            return " ".join(label.split()[n:])
    return label


def _segment(tokens: list[str], acts: list[tuple[int, int, str]],
             rules: _Rules) -> list[str]:
    """The label of each action, label-before or label-after per action.

    Each reading is scored by labels that carry a cue ("for", "to", "if") minus the
    labels it leaves empty; punctuation right after a key (or right before a verb)
    overrides the score for that one key.
    """
    before: list[str] = []
    after: list[str] = []
    for n, (start, end, _key) in enumerate(acts):
        prev_end = acts[n - 1][1] if n else 0
        next_start = acts[n + 1][0] if n + 1 < len(acts) else len(tokens)
        clauses = [c for c in _clauses(tokens[prev_end:start]) if c]
        before.append(_label_from_cue(" ".join(clauses[-1]), rules) if clauses else "")
        after.append(" ".join(_clauses(tokens[end:next_start])[0]))
    score_before = sum(_starts_with_cue(b, rules) for b in before) - before.count("")
    score_after = sum(_starts_with_cue(a, rules) for a in after) - after.count("")
    default_after = score_after > score_before
    labels = []
    for n, (start, end, _key) in enumerate(acts):
        bound_before = start == 0 or tokens[start - 1] == BOUNDARY
        bound_after = end >= len(tokens) or tokens[end] == BOUNDARY
        if bound_after and not bound_before and before[n]:
            use_after = False
        elif bound_before and not bound_after and after[n]:
            use_after = True
        else:
            use_after = default_after
        labels.append(after[n] if use_after else before[n])
    return labels


def _strip_spans(text: str, patterns: tuple[re.Pattern[str], ...]) -> tuple[str, bool]:
    hit = False
    for p in patterns:
        text, n = p.subn(" ", text)
        hit = hit or n > 0
    return " ".join(text.split()), hit


def _option(key: str | None, label: str, rules: _Rules) -> Option:
    label = _clean(label)
    cats = frozenset(name for name, pats in rules.categories.items()
                     if any(p.search(label) for p in pats))
    unsafe = key == "911" or any(p.search(label) for p in rules.unsafe)
    if key == "0" and not cats:
        cats = frozenset({"operator"})  # the keypad convention: 0 is the operator
    return Option(key=key, label=label, categories=cats, unsafe=unsafe)


def parse_menu(text: str) -> Menu:
    """Options heard in `text` (a whole menu, or part of one)."""
    rules = _rules()
    norm = normalise(text[: rules.max_chars])
    norm, extension = _strip_spans(norm, rules.extension)
    tokens = norm.split()
    acts = _actions(tokens, rules)
    options: list[Option] = []
    waits: list[str] = []
    labels = _segment(tokens, acts, rules) if acts else []
    for (_s, _e, key), label in zip(acts, labels, strict=True):
        for p in rules.wait:
            m = p.search(label)
            if m:
                waits.append(label[m.start():])
                label = label[:m.start()]
                break
        options.append(_option(key, label, rules))
    # A stay-on-the-line clause is an option of its own (pressing nothing).
    for clause in _clauses(tokens):
        joined = " ".join(clause)
        for p in rules.wait:
            m = p.search(joined)
            if m and not any(joined[m.start():] in w or w in joined for w in waits):
                waits.append(joined[m.start():])
                break
    for w in waits[:1]:
        options.append(_option(None, w, rules))
    if len(options) > rules.max_options:
        options = options[: rules.max_options]
    return Menu(options=tuple(options), extension_prompt=extension)


def is_live_person(text: str) -> bool:
    """A person answering ("front desk, this is Sarah"), not a recording or a menu."""
    rules = _rules()
    norm = normalise(text[: rules.max_chars])
    if not norm or _actions(norm.split(), rules):
        return False
    if any(p.search(norm) for p in rules.not_human):
        return False
    return any(p.search(norm) for p in rules.human)


def goal_weights(goal: str) -> Mapping[str, int] | None:
    """Category weights of a known goal (None: match the goal's own words)."""
    key = " ".join(normalise(goal).replace(BOUNDARY, " ").split()) or DEFAULT_GOAL
    rules = _rules()
    if key in rules.goals:
        return rules.goals[key]
    if key.endswith("s") and key[:-1] in rules.goals:
        return rules.goals[key[:-1]]
    if key in rules.categories:
        return {key: 4}
    return None


def _score(option: Option, goal: str, weights: Mapping[str, int] | None) -> int:
    if weights is not None:
        return max((weights.get(c, 0) for c in option.categories), default=0)
    words = {w for w in normalise(goal).split() if len(w) > 2}
    return 2 if words & set(option.label.split()) else 0


def choose(menu: Menu, goal: str = DEFAULT_GOAL) -> Choice:
    """The key toward `goal`: a match, else the operator, else wait; never an unsafe line."""
    weights = goal_weights(goal)
    safe = [o for o in menu.options if not o.unsafe]
    best: tuple[int, int, Option] | None = None
    for order, o in enumerate(safe):
        score = _score(o, goal, weights)
        if score and (best is None or score > best[0]):
            best = (score, -order, o)
    if best is not None:
        o = best[2]
        return Choice(o.key, "goal" if o.key is not None else "wait", o)
    for o in safe:
        if "operator" in o.categories:
            return Choice(o.key, "operator" if o.key is not None else "wait", o)
    if any(o.key is None for o in safe):
        return Choice(None, "wait", next(o for o in safe if o.key is None))
    if not menu.options:
        return Choice(None, "wait" if menu.extension_prompt else "not_a_menu")
    if not safe:
        return Choice(None, "no_safe_option")
    return Choice(None, "no_match")


def ivr_choice(text: str, goal: str | None = None) -> dict[str, Any]:
    """`{"text", "digit", "reason"}` for one transcript (what `leadline nlu ivr` prints)."""
    choice = choose(parse_menu(text), goal or DEFAULT_GOAL)
    STATS.by_reason[choice.reason] += 1
    return {"text": text, "digit": choice.digit, "reason": choice.reason}


# -- the navigator ------------------------------------------------------------------

ActionKind = Literal["press", "human", "failed"]


@dataclass(frozen=True, slots=True)
class IvrAction:
    """What the call does next: press `digit`, leave IVR mode (human), or give up."""

    kind: ActionKind
    digit: str | None
    reason: str


class IvrNavigator:
    """One call's way through a phone tree (sans-I/O: transcripts and clock in, actions out).

    Goal matches are pressed at once; fallbacks (the operator) wait `settle_s` of quiet,
    because the option we want may still be coming. A menu heard again after we pressed
    means the press did not take: try "0" once, then give up. Everything ends after
    `timeout_s` in IVR mode. Memory is bounded: the pending text and the menus pressed.
    """

    def __init__(self, goal: str = DEFAULT_GOAL, *, clock: Callable[[], float],
                 timeout_s: float = 120.0, settle_s: float = 2.5, max_presses: int = 8,
                 max_pending_chars: int = 4000) -> None:
        self.goal = goal
        self._clock = clock
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.max_presses = max_presses
        self._max_pending = max_pending_chars
        self.started_at = clock()
        self.state: Literal["navigating", "human", "failed"] = "navigating"
        self.presses: list[str] = []
        self._pending = ""
        self._last_heard = self.started_at
        self._fallback: Choice | None = None
        self._pressed: deque[frozenset[tuple[str, str]]] = deque(maxlen=16)
        self._tried_zero = False

    @property
    def active(self) -> bool:
        return self.state == "navigating"

    def _fail(self, reason: str) -> IvrAction:
        self.state = "failed"
        STATS.navigator["failed_" + reason] += 1
        log.info("ivr navigation gave up", extra={"reason": reason, "presses": self.presses})
        return IvrAction("failed", None, reason)

    def _press(self, digit: str, reason: str, menu: Menu | None) -> IvrAction:
        if len(self.presses) >= self.max_presses:
            return self._fail("too_many_presses")
        self.presses.append(digit)
        self._tried_zero = self._tried_zero or digit == "0"
        if menu is not None and menu.keyed:
            self._pressed.append(menu.signature())
        self._pending = ""
        self._fallback = None
        STATS.navigator["press"] += 1
        return IvrAction("press", digit, reason)

    def _repeated(self, menu: Menu) -> bool:
        sig = menu.signature()
        return any(sig == old or (len(sig & old) >= 2) for old in self._pressed)

    def feed(self, text: str) -> IvrAction | None:
        """One final transcript of the callee."""
        if not self.active:
            return None
        now = self._clock()
        if now - self.started_at > self.timeout_s:
            return self._fail("timeout")
        self._last_heard = now
        if is_live_person(text):
            self.state = "human"
            STATS.navigator["human"] += 1
            return IvrAction("human", None, "live_person")
        self._pending = (self._pending + " . " + text)[-self._max_pending:]
        menu = parse_menu(self._pending)
        if menu.keyed and self._repeated(menu):
            self._pending = ""
            if self._tried_zero:
                return self._fail("repeated_menu")
            self._tried_zero = True
            return self._press("0", "repeated_menu", None)
        choice = choose(menu, self.goal)
        if choice.digit is not None and choice.reason == "goal":
            return self._press(choice.digit, "goal", menu)
        self._fallback = choice if choice.digit is not None else None
        return None

    def tick(self) -> IvrAction | None:
        """Called on a timer (about once a second): settles fallbacks, enforces the timeout."""
        if not self.active:
            return None
        now = self._clock()
        if now - self.started_at > self.timeout_s:
            return self._fail("timeout")
        if self._fallback is not None and now - self._last_heard >= self.settle_s:
            fb = self._fallback
            assert fb.digit is not None
            return self._press(fb.digit, fb.reason, parse_menu(self._pending))
        return None
